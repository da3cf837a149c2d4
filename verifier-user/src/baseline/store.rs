//! `--sbom-store DIR`: SBOMs kept by image digest, for images whose
//! digest the runtime reports. `DIR/sha256-<hex>/` holds any number of
//! files (merged), or `DIR/sha256-<hex>.<ext>` files stand on their own.

use std::path::{Path, PathBuf};

use super::{BaselineSource, ImageKeys};

/// A directory of SBOMs keyed by image digest.
pub(crate) struct Store(pub PathBuf);

impl Store {
    fn files(&self, digest: &str) -> Vec<PathBuf> {
        let stem = digest.replace(':', "-");
        let dir = self.0.join(&stem);
        let mut files: Vec<PathBuf> = if dir.is_dir() {
            regular_files(&dir).collect()
        } else {
            let prefix = format!("{stem}.");
            regular_files(&self.0)
                .filter(|p| p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with(&prefix)))
                .collect()
        };
        files.sort();
        files
    }
}

fn regular_files(dir: &Path) -> impl Iterator<Item = PathBuf> {
    std::fs::read_dir(dir).into_iter().flatten().flatten().map(|e| e.path()).filter(|p| p.is_file())
}

impl BaselineSource for Store {
    fn sbom_files(&self, keys: &ImageKeys<'_>) -> Vec<PathBuf> {
        keys.image_digest.map(|d| self.files(d)).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_digest_directory_is_merged_and_single_files_stand_alone() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store(dir.path().to_path_buf());
        std::fs::create_dir_all(dir.path().join("sha256-beef")).expect("mkdir");
        std::fs::write(dir.path().join("sha256-beef/b.json"), "{}").expect("b");
        std::fs::write(dir.path().join("sha256-beef/a.json"), "{}").expect("a");
        std::fs::write(dir.path().join("sha256-cafe.spdx.json"), "{}").expect("c");
        std::fs::write(dir.path().join("sha256-cafebabe.spdx.json"), "{}").expect("d");
        let keys = |d| ImageKeys { image_digest: Some(d), container_id: "c", ..ImageKeys::default() };
        assert_eq!(
            store.sbom_files(&keys("sha256:beef")),
            vec![dir.path().join("sha256-beef/a.json"), dir.path().join("sha256-beef/b.json")]
        );
        assert_eq!(store.sbom_files(&keys("sha256:cafe")), vec![dir.path().join("sha256-cafe.spdx.json")]);
        assert!(store.sbom_files(&keys("sha256:none")).is_empty());
        assert!(store.sbom_files(&ImageKeys::default()).is_empty(), "no digest, no answer");
    }
}
