//! The `verification` object of an exec record: what the agent decided
//! about the executed file, when drift verification is on.

use serde::Serialize;

use verifier_sbom::PackageRef;

use crate::verify::{
    engine::Decision,
    locate::Via,
    root::ExecRoot,
    verdict::{self, Judgement, Verdict},
};

/// `exec.verification`.
#[derive(Debug, Serialize)]
pub(crate) struct VerificationJson {
    /// For a library: the file's own verdict (`unknown-binary`, ...) when
    /// `verdict` is `library-drift`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file_verdict: Option<Verdict>,
    /// `ok`, `unknown-binary`, `modified-binary`, `fileless`,
    /// `unverifiable`, `relocated-binary`, `sbom-gap`; absent when skipped.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verdict: Option<Verdict>,
    /// Why (one sentence), or why the exec was not verified.
    pub reason: String,
    /// The canonical path inside the container that was judged.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path_hex: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    /// `alg:hex` the SBOM (or the image's layers) expected.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expected: Option<String>,
    /// Only a SHA-1/MD5 was available to compare.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub weak: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub package: Option<PackageJson>,
    /// `relocated-binary`: where the SBOM lists these bytes.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub listed_at: Vec<String>,
    /// How the file was reached: `path`, `exe-link`, `proc-exe`, `shebang`,
    /// `index`, `descriptor` (see [`Via`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub via: Option<Via>,
    /// `chroot`: the process ran in a root other than the container's and
    /// exited before it could be read, so `path` is the name it was run by
    /// in that root (never looked up in the container's).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub root: Option<ExecRoot>,
    /// The script of a `#!` exec, judged on its own.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub script: Option<Box<VerificationJson>>,
    /// Microseconds from the exec (kernel time) to this record: what the
    /// verdict cost, including waiting for the container and hashing.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub latency_us: Option<u64>,
}

#[derive(Debug, Serialize)]
pub(crate) struct PackageJson {
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub purl: Option<String>,
}

impl From<&PackageRef> for PackageJson {
    fn from(p: &PackageRef) -> Self {
        Self { name: p.name.clone(), version: p.version.clone(), purl: p.purl.clone() }
    }
}

impl VerificationJson {
    /// The exec was not verified (no SBOM for the image, ...).
    pub(crate) fn skipped(reason: &str) -> Self {
        Self::judged(None, reason.to_owned(), &[], None, None)
    }

    /// For a file mapped executable: the library's verdict
    /// ([`verdict::as_library`]), keeping the file's own in `file_verdict`.
    pub(crate) fn as_library(&mut self) {
        if let Some(v) = self.verdict {
            let lib = verdict::as_library(v, &self.reason);
            self.verdict = Some(lib.verdict);
            self.file_verdict = lib.file_verdict;
            self.reason = lib.reason;
        }
    }

    pub(crate) fn from_decision(d: &Decision) -> Self {
        let mut v = Self::judged(Some(&d.judgement), d.judgement.reason.clone(), &d.path, d.sha256, d.via);
        v.root = d.root;
        v.script = d.script.as_ref().map(|s| {
            Box::new(Self::judged(Some(&s.judgement), s.judgement.reason.clone(), &s.path, s.sha256, None))
        });
        v
    }

    fn judged(
        j: Option<&Judgement>,
        reason: String,
        path: &[u8],
        sha: Option<[u8; 32]>,
        via: Option<Via>,
    ) -> Self {
        let text = String::from_utf8_lossy(path);
        let exact = matches!(text, std::borrow::Cow::Borrowed(_));
        Self {
            file_verdict: None,
            verdict: j.map(|j| j.verdict),
            reason,
            path: (!path.is_empty()).then(|| text.into_owned()),
            path_hex: (!exact).then(|| hex::encode(path)),
            sha256: sha.map(hex::encode),
            expected: j.and_then(|j| j.expected.clone()),
            weak: j.is_some_and(|j| j.weak),
            package: j.and_then(|j| j.package.as_ref()).map(PackageJson::from),
            listed_at: j.map(|j| j.listed_at.clone()).unwrap_or_default(),
            via,
            root: None,
            script: None,
            latency_us: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_root_marker_is_written_only_for_another_root() {
        let mut d = Decision {
            judgement: Judgement::new(Verdict::UnknownBinary, "ran from another root"),
            path: b"/bin/true".to_vec(),
            via: None,
            sha256: None,
            script: None,
            trusted: false,
            root: Some(ExecRoot::Chroot),
        };
        let json = serde_json::to_value(VerificationJson::from_decision(&d)).expect("serialize");
        assert_eq!((&json["root"], &json["path"]), (&"chroot".into(), &"/bin/true".into()));
        d.root = None;
        let json = serde_json::to_value(VerificationJson::from_decision(&d)).expect("serialize");
        assert!(json.get("root").is_none(), "{json}");
    }

    #[test]
    fn a_library_record_names_library_drift_and_the_file_verdict() {
        let mut j = Judgement::new(Verdict::ModifiedBinary, "the SBOM lists this path with another SHA-256");
        j.weak = true;
        let mut v = VerificationJson::judged(Some(&j), j.reason.clone(), b"/usr/lib/libx.so", None, None);
        v.as_library();
        let json = serde_json::to_value(&v).expect("serialize");
        assert_eq!(json["verdict"], "library-drift");
        assert_eq!(json["file_verdict"], "modified-binary");
        assert_eq!(json["reason"], "mapped as code: the SBOM lists this path with another SHA-256");
        let mut ok = VerificationJson::judged(
            Some(&Judgement::new(Verdict::Ok, "SHA-256 matches the SBOM")),
            "SHA-256 matches the SBOM".into(),
            b"/usr/lib/libx.so",
            None,
            None,
        );
        ok.as_library();
        let json = serde_json::to_value(&ok).expect("serialize");
        assert_eq!(json["verdict"], "ok");
        assert!(json.get("file_verdict").is_none());
        let mut skipped = VerificationJson::skipped("no SBOM");
        skipped.as_library();
        assert!(skipped.verdict.is_none() && skipped.file_verdict.is_none());
    }
}
