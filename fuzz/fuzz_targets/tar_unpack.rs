//! Layer tars unpacked by the runtime into a fresh directory, then checked
//! for writes beside it (see `petrel_fuzz::unpack`).
#![no_main]

use libfuzzer_sys::fuzz_target;
use petrel_fuzz::{report, unpack, write_seeds_if_asked};

fuzz_target!(
    init: write_seeds_if_asked(unpack::seeds),
    |data: &[u8]| report(unpack::run(data))
);
