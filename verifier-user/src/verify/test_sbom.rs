//! Test support: small SPDX documents and the manifests they load into,
//! so the verification tests state only the files they list.

use verifier_sbom::{LoadOptions, Manifest, load_bytes};

/// SPDX 2.3 JSON listing each (path, SHA-256 hex).
pub(crate) fn spdx_text(files: &[(&str, &str)]) -> String {
    let files: Vec<_> = files
        .iter()
        .enumerate()
        .map(|(i, (p, sha))| {
            serde_json::json!({"SPDXID": format!("SPDXRef-f{i}"), "fileName": p,
                "checksums": [{"algorithm": "SHA256", "checksumValue": sha}]})
        })
        .collect();
    serde_json::json!({
        "spdxVersion": "SPDX-2.3", "SPDXID": "SPDXRef-DOCUMENT", "name": "t", "dataLicense": "CC0-1.0",
        "documentNamespace": "https://example.com/t",
        "creationInfo": {"created": "2026-01-01T00:00:00Z", "creators": ["Tool: test"]},
        "files": files
    })
    .to_string()
}

/// The manifest of [`spdx_text`], paths taken as they are.
pub(crate) fn manifest(files: &[(&str, &str)]) -> Manifest {
    let opts = LoadOptions { root_prefix: Some(String::new()), format: None };
    load_bytes(spdx_text(files).as_bytes(), "t.spdx.json", &opts).expect("SPDX")
}

/// A manifest listing `paths` with a placeholder digest (for locating,
/// where digests do not matter).
pub(crate) fn listing(paths: &[&str]) -> Manifest {
    let zeros = "00".repeat(32);
    manifest(&paths.iter().map(|p| (*p, zeros.as_str())).collect::<Vec<_>>())
}
