#![no_main]
//! Arbitrary bytes into the dpkg reader (in memory).

use libfuzzer_sys::fuzz_target;
use verifier_sbom::{SbomFormat, load_bytes};

mod common;

fuzz_target!(|data: &[u8]| {
    common::check(load_bytes(
        data,
        "fuzz-input",
        &common::opts(Some(SbomFormat::DpkgMd5sums)),
    ));
});
