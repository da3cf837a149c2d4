#![no_main]
//! Arbitrary bytes into the auto reader (in memory).

use libfuzzer_sys::fuzz_target;
use verifier_sbom::load_bytes;

mod common;

fuzz_target!(|data: &[u8]| {
    common::check(load_bytes(data, "fuzz-input", &common::opts(None)));
});
