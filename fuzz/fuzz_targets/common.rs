// Shared by the fuzz targets: whatever loads must be self-consistent.

use verifier_sbom::{LoadOptions, Manifest, SbomError, SbomFormat};

pub fn opts(format: Option<SbomFormat>) -> LoadOptions {
    LoadOptions {
        format,
        ..LoadOptions::default()
    }
}

/// Every listed path is absolute, clean and found again by `get`; errors
/// render (and name the file).
pub fn check(result: Result<Manifest, SbomError>) {
    match result {
        Ok(m) => {
            for (path, entry) in m.files() {
                assert!(path.starts_with('/'), "{path:?}");
                assert_eq!(verifier_sbom::normalize_path(path).as_deref(), Some(path));
                assert_eq!(m.get(path), Some(entry));
                for d in entry.digests() {
                    assert_eq!(d.value.len(), d.alg.digest_len());
                }
                if let Some(sha) = entry.sha256() {
                    assert!(m.paths_with_sha256(sha).contains(&path));
                }
            }
            let _ = m.warnings().join("\n");
        }
        Err(e) => assert!(e.to_string().contains("fuzz")),
    }
}
