//! `petrel-delta`: make, apply and inspect layer deltas from the shell,
//! and benchmark them on a corpus. Thin on purpose: argument parsing and
//! printing live in `cli`, the benchmark in `bench`, the work in the
//! library.

mod bench;
mod cli;

use clap::Parser;

fn main() -> anyhow::Result<()> {
    cli::run(cli::Cli::parse())
}
