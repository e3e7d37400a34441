//! Desired-state envelopes and manifests through `petrel_protocol::codec`
//! (see `petrel_fuzz::desired`).
#![no_main]

use libfuzzer_sys::fuzz_target;
use petrel_fuzz::{desired, report, write_seeds_if_asked};

fuzz_target!(
    init: write_seeds_if_asked(desired::seeds),
    |data: &[u8]| report(desired::run(data))
);
