//! Harnesses of Petrel's fuzz targets: what each target does with the
//! fuzzer's bytes, and the seeds that start its corpus. A harness returns
//! why an input was refused (printed under `PETREL_FUZZ_DEBUG`); a panic,
//! in product code or in a harness's own check, is a finding.
//!
//! Layout:
//! - `desired`: desired-state envelopes, desired states and manifests
//!   through `petrel_protocol::codec`, then the release checks.
//! - `delta`: patches applied to a fixed old layer as the agent applies them.
//! - `unpack`: layer tars unpacked by the runtime into a fresh directory,
//!   then a check that nothing was written beside it.
//! - `scratch`: fresh directories, on tmpfs when there is one.

pub mod delta;
pub mod desired;
mod scratch;
pub mod unpack;

use std::path::PathBuf;

/// A seed: a file name in the corpus and its bytes.
pub type Seed = (String, Vec<u8>);

/// Writes the target's seeds into the directory named by
/// `PETREL_FUZZ_SEEDS`, if set (scripts/fuzz.sh sets it to the target's
/// corpus). Runs once, before libFuzzer reads the corpus.
pub fn write_seeds_if_asked(seeds: impl FnOnce() -> Vec<Seed>) {
    let Some(dir) = std::env::var_os("PETREL_FUZZ_SEEDS") else {
        return;
    };
    let dir = PathBuf::from(dir);
    std::fs::create_dir_all(&dir).expect("create the seed directory");
    for (name, bytes) in seeds() {
        let path = dir.join(format!("seed-{name}"));
        std::fs::write(&path, bytes).expect("write a seed");
    }
}

/// Prints why an input was refused when `PETREL_FUZZ_DEBUG` is set, to see
/// how far a seed or a crash input gets.
pub fn report(outcome: Result<(), String>) {
    if std::env::var_os("PETREL_FUZZ_DEBUG").is_some() {
        match outcome {
            Ok(()) => eprintln!("accepted"),
            Err(why) => eprintln!("refused: {why}"),
        }
    }
}
