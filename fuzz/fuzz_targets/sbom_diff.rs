#![no_main]
//! The streaming JSON path and the in-memory one must agree on whatever
//! both accept: same files, same digests, same packages.

use libfuzzer_sys::fuzz_target;
use verifier_sbom::{SbomFormat, load_bytes, load_reader};

mod common;

fuzz_target!(|data: &[u8]| {
    let opts = common::opts(Some(SbomFormat::Spdx2Json));
    let (Ok(a), Ok(b)) = (
        load_reader(data, "fuzz-input", &opts),
        load_bytes(data, "fuzz-input", &opts),
    ) else {
        return;
    };
    assert_eq!(a.len(), b.len());
    assert_eq!(a.packages(), b.packages());
    for (path, entry) in a.files() {
        assert_eq!(b.get(path), Some(entry), "{path}");
    }
});
