//! `petrel`: the operator CLI (see `petrel_controller::cli`).
use clap::Parser;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = petrel_controller::cli::Cli::parse();
    match petrel_controller::cli::run(cli).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
