//! `petrel-delta`: make, apply and inspect layer deltas from the shell,
//! and benchmark them on a corpus. Thin on purpose: argument parsing and
//! printing live in `cli`, the benchmark in `bench`, the work in the
//! library.

mod bench;
mod cli;

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    match cli::run(cli::Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprint!("{}", cli::error_report(&e));
            ExitCode::FAILURE
        }
    }
}
