//! `--sbom PATTERN=FILE`: containers whose image name, digest, id or name
//! matches PATTERN (`*` matches any run of characters) are verified
//! against FILE. The first matching rule wins.

use std::path::PathBuf;

use super::{BaselineSource, ImageKeys};

/// `PATTERN=FILE`: containers whose image name, digest, id or name matches
/// PATTERN are verified against FILE.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SbomRule {
    pub pattern: String,
    pub sbom: PathBuf,
}

impl std::str::FromStr for SbomRule {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let (pattern, file) = s.rsplit_once('=').ok_or_else(|| {
            format!("{s:?}: expected PATTERN=SBOM-FILE, e.g. 'registry.example/app:*=app.spdx.json'")
        })?;
        if pattern.is_empty() || file.is_empty() {
            return Err(format!("{s:?}: both PATTERN and SBOM-FILE are needed"));
        }
        Ok(Self { pattern: pattern.to_owned(), sbom: file.into() })
    }
}

/// `*`-glob match.
pub(crate) fn glob_match(pattern: &str, text: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == text;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !text.starts_with(first)
        || !text[first.len()..].ends_with(last)
        || text.len() < first.len() + last.len()
    {
        return false;
    }
    let mut rest = &text[first.len()..text.len() - last.len()];
    for mid in &parts[1..parts.len() - 1] {
        match rest.find(mid) {
            Some(i) => rest = &rest[i + mid.len()..],
            None => return false,
        }
    }
    true
}

/// Rules given on the command line.
pub(crate) struct Rules(pub Vec<SbomRule>);

impl Rules {
    /// The rules, once every SBOM they name is there and is a file (or a
    /// dpkg directory): a typo in `--sbom` is an error at start, not every
    /// later exec of that image `unverifiable`.
    pub(crate) fn checked(rules: Vec<SbomRule>) -> Result<Self, String> {
        for r in &rules {
            let arg = format!("--sbom {}={}", r.pattern, r.sbom.display());
            let meta = std::fs::metadata(&r.sbom)
                .map_err(|e| format!("{arg}: {e}; the SBOM must exist when the agent starts"))?;
            if !meta.is_file() && !meta.is_dir() {
                return Err(format!(
                    "{arg}: {} is a {}, not a regular file; point to the SBOM file itself",
                    r.sbom.display(),
                    verifier_sbom::file_kind(&meta)
                ));
            }
        }
        Ok(Self(rules))
    }
}

/// The first rule matching any of `keys`.
pub(crate) fn first_match<'r>(rules: &'r [SbomRule], keys: &ImageKeys<'_>) -> Option<&'r SbomRule> {
    rules.iter().find(|r| keys.all().any(|k| glob_match(&r.pattern, k)))
}

impl BaselineSource for Rules {
    fn sbom_files(&self, keys: &ImageKeys<'_>) -> Vec<PathBuf> {
        first_match(&self.0, keys).map(|r| vec![r.sbom.clone()]).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    #[test]
    fn a_missing_or_special_sbom_is_an_error_at_start() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("app.spdx.json");
        std::fs::write(&file, b"{}").expect("write");
        let rule = |p: &Path| SbomRule { pattern: "app*".into(), sbom: p.to_owned() };
        assert!(Rules::checked(vec![rule(&file), rule(dir.path())]).is_ok());
        let missing = dir.path().join("typo.json");
        let err = Rules::checked(vec![rule(&missing)]).err().expect("missing");
        assert!(err.contains("typo.json") && err.contains("must exist"), "{err}");
        let err = Rules::checked(vec![rule(Path::new("/dev/null"))]).err().expect("a device");
        assert!(err.contains("/dev/null") && err.contains("character device"), "{err}");
    }

    #[test]
    fn rules_parse_and_say_what_is_wrong() {
        let r: SbomRule = "registry.example/app:*=sboms/app.json".parse().expect("rule");
        assert_eq!(
            (r.pattern.as_str(), r.sbom.as_path()),
            ("registry.example/app:*", Path::new("sboms/app.json"))
        );
        assert!("no-equals".parse::<SbomRule>().expect_err("invalid").contains("PATTERN=SBOM-FILE"));
        assert!("=x".parse::<SbomRule>().is_err());
    }

    #[test]
    fn globs_match_like_a_shell_star() {
        assert!(glob_match("app:*", "app:1.2"));
        assert!(glob_match("*", ""));
        assert!(glob_match("a*b*c", "aXXbYYc"));
        assert!(glob_match("exact", "exact"));
        assert!(!glob_match("exact", "exact2"));
        assert!(!glob_match("a*b", "ab-not"));
        assert!(!glob_match("ab*ba", "aba"), "the two ends must not overlap");
    }

    #[test]
    fn the_first_rule_matching_any_key_wins() {
        let rules = Rules(vec![
            "other:*=a.json".parse().expect("rule"),
            "c1=b.json".parse().expect("rule"),
            "demo:*=c.json".parse().expect("rule"),
        ]);
        let keys = ImageKeys { image_name: Some("demo:1"), container_id: "c1", ..ImageKeys::default() };
        assert_eq!(rules.sbom_files(&keys), vec![PathBuf::from("b.json")]);
        let none = ImageKeys { container_id: "zz", ..ImageKeys::default() };
        assert!(rules.sbom_files(&none).is_empty());
    }
}
