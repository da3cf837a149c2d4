//! `--sbom-rules FILE`: the image -> SBOM mapping as a file, for a
//! DaemonSet that mounts it from a ConfigMap and edits it without
//! restarting the agent.
//!
//! One rule per line, `PATTERN=SBOM-FILE` as with `--sbom` (PATTERN matches
//! the image name, image digest, container id or name, `*` wildcards; first
//! match wins); `#` starts a comment; a relative SBOM path is relative to
//! the rules file. The file is read again when its size or mtime changes;
//! an edit that does not parse keeps the previous rules and is reported
//! once, with the line at fault.

use std::{
    os::unix::fs::MetadataExt as _,
    path::{Path, PathBuf},
    sync::Mutex,
};

use super::{
    BaselineSource, ImageKeys,
    rules::{SbomRule, first_match},
};

/// Parses rules text; `base` is the directory relative paths start from.
pub(crate) fn parse(text: &str, base: &Path, name: &Path) -> Result<Vec<SbomRule>, String> {
    let mut rules = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.split_once('#').map_or(line, |(l, _)| l).trim();
        if line.is_empty() {
            continue;
        }
        let mut rule: SbomRule = line.parse().map_err(|e| format!("{}:{}: {e}", name.display(), n + 1))?;
        if rule.sbom.is_relative() {
            rule.sbom = base.join(&rule.sbom);
        }
        rules.push(rule);
    }
    Ok(rules)
}

type Signature = (u64, i64, i64);

struct State {
    signature: Option<Signature>,
    rules: Vec<SbomRule>,
    /// The last error reported, so that it is said once.
    error: Option<String>,
}

/// A rules file, re-read when it changes.
pub(crate) struct RulesFile {
    path: PathBuf,
    state: Mutex<State>,
}

fn signature(path: &Path) -> Result<Signature, String> {
    let m = std::fs::metadata(path).map_err(|e| format!("SBOM rules {}: {e}", path.display()))?;
    if !m.is_file() {
        // A FIFO or device would block the read (or never end).
        return Err(format!(
            "SBOM rules {}: a {}, not a regular file",
            path.display(),
            verifier_sbom::file_kind(&m)
        ));
    }
    Ok((m.size(), m.mtime(), m.mtime_nsec()))
}

fn load(path: &Path) -> Result<(Signature, Vec<SbomRule>), String> {
    let sig = signature(path)?;
    let text = std::fs::read_to_string(path).map_err(|e| format!("SBOM rules {}: {e}", path.display()))?;
    let base = path.parent().unwrap_or(Path::new("."));
    Ok((sig, parse(&text, base, path)?))
}

impl RulesFile {
    /// Reads the file now: a missing or malformed file is an error at start.
    pub(crate) fn open(path: &Path) -> Result<Self, String> {
        let (sig, rules) = load(path)?;
        Ok(Self {
            path: path.to_path_buf(),
            state: Mutex::new(State { signature: Some(sig), rules, error: None }),
        })
    }

    /// The current rules (re-read if the file changed).
    pub(crate) fn rules(&self) -> Vec<SbomRule> {
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let now = signature(&self.path).ok();
        if now.is_some() && now != st.signature {
            match load(&self.path) {
                Ok((sig, rules)) => {
                    tracing::info!("SBOM rules {} reloaded: {} rule(s)", self.path.display(), rules.len());
                    *st = State { signature: Some(sig), rules, error: None };
                }
                Err(e) => {
                    if st.error.as_ref() != Some(&e) {
                        tracing::warn!("{e}; keeping the previous {} rule(s)", st.rules.len());
                        st.error = Some(e);
                    }
                }
            }
        }
        st.rules.clone()
    }
}

impl BaselineSource for RulesFile {
    fn sbom_files(&self, keys: &ImageKeys<'_>) -> Vec<PathBuf> {
        first_match(&self.rules(), keys).map(|r| vec![r.sbom.clone()]).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn comments_blank_lines_and_relative_paths() {
        let text =
            "# images of team A\n\nregistry.example/a:*=a.spdx.json   # SPDX\n  sha256:ab*=/abs/b.cdx.json\n";
        let rules = parse(text, Path::new("/etc/verifier"), Path::new("rules")).expect("parses");
        assert_eq!(rules.len(), 2);
        assert_eq!(rules[0].pattern, "registry.example/a:*");
        assert_eq!(rules[0].sbom, Path::new("/etc/verifier/a.spdx.json"));
        assert_eq!(rules[1].sbom, Path::new("/abs/b.cdx.json"));
    }

    #[test]
    fn a_fifo_rules_file_is_refused_without_blocking() {
        let dir = tempfile::tempdir().expect("tempdir");
        let fifo = dir.path().join("rules");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::S_IRWXU).expect("mkfifo");
        let e = RulesFile::open(&fifo).err().expect("refused");
        assert!(e.contains("FIFO"), "{e}");
    }

    #[test]
    fn a_bad_line_is_named() {
        let e = parse("a=b\nno equals here\n", Path::new("/"), Path::new("/etc/rules")).expect_err("bad");
        assert!(e.starts_with("/etc/rules:2:") && e.contains("PATTERN=SBOM-FILE"), "{e}");
    }

    #[test]
    fn edits_are_picked_up_and_a_broken_edit_keeps_the_old_rules() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("rules");
        std::fs::write(&path, "a=one.json\n").expect("write");
        let f = RulesFile::open(&path).expect("open");
        assert_eq!(f.rules()[0].sbom, dir.path().join("one.json"));
        std::fs::write(&path, "a=two.json\nb=three.json\n").expect("edit");
        assert_eq!(f.rules().len(), 2, "reloaded");
        std::fs::write(&path, "broken line without the sign\n").expect("break");
        assert_eq!(f.rules().len(), 2, "kept");
        assert!(RulesFile::open(&dir.path().join("missing")).is_err());
    }
}
