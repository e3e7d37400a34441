//! Patches applied to a fixed old layer by `petrel_delta::apply` (see
//! `petrel_fuzz::delta`).
#![no_main]

use libfuzzer_sys::fuzz_target;
use petrel_fuzz::{delta, report, write_seeds_if_asked};

fuzz_target!(
    init: write_seeds_if_asked(delta::seeds),
    |data: &[u8]| report(delta::run(data))
);
