#![no_main]
//! Arbitrary bytes into the streaming readers (`load_reader`, format detected).

use libfuzzer_sys::fuzz_target;
use verifier_sbom::load_reader;

mod common;

fuzz_target!(|data: &[u8]| {
    common::check(load_reader(data, "fuzz-input", &common::opts(None)));
});
