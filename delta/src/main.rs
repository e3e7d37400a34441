//! `petrel-delta`: make, apply and inspect layer deltas from the shell.
//! Thin on purpose: argument parsing and printing live in `cli`, the work
//! in the library.

mod cli;

use clap::Parser;

fn main() -> anyhow::Result<()> {
    cli::run(cli::Cli::parse())
}
