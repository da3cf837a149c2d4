//! `verifier.warning.v1`: something about the agent's inputs that makes
//! its verdicts weaker than the user may think, said once when it is
//! found: an SBOM that lists packages and no file digests, a signed
//! attestation that did not verify (or a required one that is missing).

use serde::Serialize;

use crate::baseline::Warning;

pub(crate) const SCHEMA_WARNING: &str = "verifier.warning.v1";

/// `verifier.warning.v1`
#[derive(Clone, Debug, Serialize)]
pub(crate) struct WarningJson {
    pub schema: &'static str,
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub time: String,
    /// What is wrong, stable for filtering: `sbom-package-only`,
    /// `policy-reload-failed`, `attestation-rejected`, `attestation-missing`.
    pub code: &'static str,
    /// The SBOM files concerned (absent for a warning about the policy).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub sbom: Vec<String>,
    /// The image (name, else digest, else the container it was seen for);
    /// absent for a warning about the policy.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub image: String,
    /// The policy file, for `policy-reload-failed`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    /// The package database joined with the SBOM (`dpkg`, `apk`), if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub database: Option<&'static str>,
    /// `attestation-*`: the image digest the attestation was checked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
    /// `attestation-*`: the `--attestation` file, or the registry source
    /// (`referrers`, `cosign-tag`, `buildkit`) and image.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attestation: Option<String>,
    /// `attestation-*`: the attestation blob's digest (registry only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attestation_digest: Option<String>,
    /// `attestation-*`: the failed check (`signature`, `subject-digest`,
    /// ..., `missing`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub check: Option<&'static str>,
    /// `attestation-*`: why the check failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// `attestation-*`: what was done: `unverifiable` (every exec of the
    /// image), `alert` (an alert, no SBOM), `not-used` (the next source).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub action: Option<&'static str>,
    /// What it means and what to do.
    pub message: String,
}

impl WarningJson {
    pub(crate) fn new(w: &Warning) -> Self {
        Self {
            schema: SCHEMA_WARNING,
            kind: "warning",
            time: super::rfc3339(unix_now_ns()),
            code: w.code,
            sbom: w.sbom.clone(),
            image: w.image.clone(),
            database: w.database,
            message: w.message.clone(),
            file: None,
            digest: w.rejection.as_ref().and_then(|r| r.digest.clone()),
            attestation: w.rejection.as_ref().map(|r| r.rejected.attestation.clone()),
            attestation_digest: w.rejection.as_ref().and_then(|r| r.rejected.attestation_digest.clone()),
            check: w.rejection.as_ref().map(|r| r.rejected.check),
            detail: w.rejection.as_ref().map(|r| r.rejected.detail.clone()),
            action: w.rejection.as_ref().map(|r| r.action),
        }
    }

    /// A policy edit that did not load: the last good policy stays.
    pub(crate) fn policy_reload_failed(file: &str, message: String) -> Self {
        Self {
            schema: SCHEMA_WARNING,
            kind: "warning",
            time: super::rfc3339(unix_now_ns()),
            code: "policy-reload-failed",
            sbom: Vec::new(),
            image: String::new(),
            database: None,
            message,
            file: Some(file.to_owned()),
            digest: None,
            attestation: None,
            attestation_digest: None,
            check: None,
            detail: None,
            action: None,
        }
    }
}

fn unix_now_ns() -> i128 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as i128)
}
