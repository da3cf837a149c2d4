//! Images whose SBOM must be signed: the trust policy's `require` and
//! `on_missing`, applied where the baseline sources are asked.
//!
//! Without this, a rejected attestation only stops its own SBOM, and the
//! next source (`--sbom`, `--sbom-rules`, the store) is asked: an attacker
//! who can break the signature could still have the image judged against
//! an unsigned file that sits on the node. For an image whose policy rule
//! says `require = true`, only the attested sources (`--attestation`, the
//! registry) are asked; when none verifies, the answer is a refusal that
//! names every attestation tried and the check it failed, and the agent
//! judges the container per `on_missing` (`unverifiable`, or an alert and
//! no SBOM). Every rejection is also reported once as a record.

use std::path::PathBuf;

use verifier_attest::{OnMissing, TrustPolicy};

use super::rules::glob_match;
use super::{BaselineSource, ImageKeys};

/// An attestation that did not verify for an image (or, with check
/// `missing`, a required one that was not found).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct Rejected {
    /// Where it came from: the `--attestation` file, or the registry source
    /// (`referrers`, `cosign-tag`, `buildkit`) and the image reference.
    pub attestation: String,
    /// The attestation blob's digest, when it came from a registry.
    pub attestation_digest: Option<String>,
    /// The failed check (`signature`, `subject-digest`, ... or `missing`).
    pub check: &'static str,
    pub detail: String,
}

/// A rejection as reported: for which image digest, and what was done.
#[derive(Clone, Debug)]
pub(crate) struct Refusal {
    pub digest: Option<String>,
    pub rejected: Rejected,
    /// `unverifiable`, `alert` or `not-used` (see [`Found::action`]).
    pub action: &'static str,
}

/// What one source answered: files, and the attestations it refused.
#[derive(Debug, Default)]
pub(crate) struct Answer {
    pub files: Vec<PathBuf>,
    pub rejected: Vec<Rejected>,
}

/// What the sources together answered for an image.
#[derive(Debug)]
pub(crate) enum Lookup {
    /// The SBOM files of the first source that knows the image (none: no
    /// SBOM is configured for it).
    Files(Vec<PathBuf>),
    /// The image requires a verified SBOM and has none: judge it per
    /// `on_missing`, never against another source's SBOM.
    Refused { on_missing: OnMissing, why: String },
}

/// The sources' answer and every rejection met on the way.
#[derive(Debug)]
pub(crate) struct Found {
    pub lookup: Lookup,
    pub rejected: Vec<Rejected>,
    /// What was done about the rejections: `unverifiable`, `alert` or
    /// `not-used` (not required: the next source was asked).
    pub action: &'static str,
}

/// Asks `sources` in order for `keys`, under `policy`.
pub(crate) fn lookup(
    sources: &[Box<dyn BaselineSource>],
    policy: Option<&TrustPolicy>,
    keys: &ImageKeys<'_>,
) -> Found {
    let required = policy
        .and_then(|p| p.rule_for(|pat| keys.all().any(|k| glob_match(pat, k))))
        .filter(|r| r.require)
        .map(|r| r.on_missing);
    let mut rejected = Vec::new();
    for s in sources {
        if required.is_some() && !s.attested() {
            continue;
        }
        let a = s.answer(keys);
        rejected.extend(a.rejected);
        if !a.files.is_empty() {
            // An unsigned SBOM beside the signed one is cosign's usual
            // layout (`.sbom` and `.att`), not news; a bad signature is.
            rejected.retain(|r| r.check != "unsigned");
            return Found { lookup: Lookup::Files(a.files), rejected, action: "not-used" };
        }
    }
    let Some(on_missing) = required else {
        return Found { lookup: Lookup::Files(Vec::new()), rejected, action: "not-used" };
    };
    if rejected.is_empty() {
        rejected.push(Rejected {
            attestation: "none found".into(),
            attestation_digest: None,
            check: "missing",
            detail: "the trust policy requires a signed SBOM for this image and no --attestation rule or \
                     registry attestation was found for it"
                .into(),
        });
    }
    let tried: Vec<String> =
        rejected.iter().map(|r| format!("{} failed {}: {}", r.attestation, r.check, r.detail)).collect();
    let why =
        format!("no verified SBOM for an image the trust policy requires one for ({})", tried.join("; "));
    let action = match on_missing {
        OnMissing::Unverifiable => "unverifiable",
        OnMissing::Alert => "alert",
    };
    Found { lookup: Lookup::Refused { on_missing, why }, rejected, action }
}

#[cfg(test)]
#[path = "required_tests.rs"]
mod tests;
