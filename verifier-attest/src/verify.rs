//! One attestation, every check, in a fixed order; the first that fails
//! is the [`Rejection`]:
//!
//! 1. `malformed`: a DSSE envelope, a Sigstore bundle v0.1-v0.3 or JSON
//!    lines of envelopes; a bare in-toto statement is `unsigned`.
//! 2. `unsigned`: an envelope with no signature.
//! 3. `signature`: a trusted key verifies one signature over the PAE
//!    (any one suffices), or the bundle's certificate key verifies it.
//! 4. `tlog`: the bundle's log entries verify against the trusted root
//!    (keyless always; keyed when the policy says `require_tlog`).
//! 5. `expired` / `signature`: the certificate chains to a Fulcio CA of
//!    the trusted root and was valid at the log's signed time.
//! 6. `identity`: issuer and subject of the certificate are trusted.
//! 7. `subject-digest`: a statement subject's sha256 is the image's
//!    manifest or index digest.
//! 8. `predicate-type`: the predicate is a type the policy accepts.
//!
//! Only then is the predicate handed back, as the document to read.

use serde::Deserialize;

use crate::bundle::{Bundle, Signer, Version};
use crate::cert::Leaf;
use crate::dsse::{Envelope, decode_b64, pae};
use crate::error::{Check, Rejection};
use crate::policy::{Identity, Trust};
use crate::statement::Statement;
use crate::tlog;

/// Who signed a verified attestation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SignedBy {
    /// A trusted key: its name in the policy and key id.
    Key { name: String, keyid: String },
    /// A keyless certificate: its subject and OIDC issuer.
    Identity { subject: String, issuer: String },
}

/// An attestation that passed every check.
#[derive(Clone, Debug)]
pub struct VerifiedSbom {
    /// The SBOM document (the statement's predicate), as signed.
    pub document: Vec<u8>,
    pub predicate_type: String,
    /// The subject that matched: `name@sha256:<hex>`.
    pub subject: String,
    pub signed_by: SignedBy,
    /// Index of the verified log entry, when there was one.
    pub tlog_index: Option<i64>,
    /// The log's signed integrated time (Unix seconds), when there was one.
    pub signed_time: Option<i64>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Probe {
    #[serde(default)]
    media_type: Option<String>,
    #[serde(default)]
    payload_type: Option<String>,
    #[serde(default, rename = "_type")]
    statement_type: Option<String>,
}

/// Verifies attestation bytes (an envelope, a bundle, or JSON lines of
/// envelopes: the first that verifies wins) for an image known by
/// `digests` (its manifest and/or index digest, `sha256:<hex>`).
pub fn verify(bytes: &[u8], digests: &[&str], trust: &Trust) -> Result<VerifiedSbom, Rejection> {
    match serde_json::from_slice::<Probe>(bytes) {
        Ok(p) => verify_one(bytes, &p, digests, trust),
        Err(whole) => {
            let mut last = Rejection::new(Check::Malformed, format!("not JSON: {whole}"));
            let lines = bytes.split(|b| *b == b'\n').filter(|l| !l.iter().all(u8::is_ascii_whitespace));
            for line in lines {
                let r = serde_json::from_slice::<Probe>(line)
                    .map_err(|e| Rejection::new(Check::Malformed, format!("a line is not JSON: {e}")))
                    .and_then(|p| verify_one(line, &p, digests, trust));
                match r {
                    Ok(v) => return Ok(v),
                    Err(e) => last = e,
                }
            }
            Err(last)
        }
    }
}

fn verify_one(
    bytes: &[u8],
    probe: &Probe,
    digests: &[&str],
    trust: &Trust,
) -> Result<VerifiedSbom, Rejection> {
    let malformed = |e: serde_json::Error| Rejection::new(Check::Malformed, e.to_string());
    if probe.media_type.as_deref().is_some_and(|m| m.starts_with("application/vnd.dev.sigstore.bundle")) {
        let bundle: Bundle = serde_json::from_slice(bytes).map_err(malformed)?;
        return verify_bundle(&bundle, digests, trust);
    }
    if probe.payload_type.is_some() {
        let env: Envelope = serde_json::from_slice(bytes).map_err(malformed)?;
        let (payload, name, keyid) = verify_keyed(&env, trust)?;
        if trust.require_tlog {
            return Err(Rejection::new(
                Check::Tlog,
                "a bare envelope carries no transparency-log evidence and the policy requires it",
            ));
        }
        return finish(&payload, digests, trust, SignedBy::Key { name, keyid }, None);
    }
    if probe.statement_type.is_some() {
        return Err(Rejection::new(
            Check::Unsigned,
            "an in-toto statement without an envelope: nothing signs it",
        ));
    }
    Err(Rejection::new(Check::Malformed, "neither a DSSE envelope nor a Sigstore bundle"))
}

/// The envelope's decoded payload and signatures, or `unsigned`.
fn open(env: &Envelope) -> Result<(Vec<u8>, Vec<Vec<u8>>), Rejection> {
    let payload = env
        .payload_bytes()
        .ok_or_else(|| Rejection::new(Check::Malformed, "the envelope payload is not base64"))?;
    let sigs: Vec<Vec<u8>> =
        env.signatures.iter().filter_map(|s| decode_b64(&s.sig)).filter(|s| !s.is_empty()).collect();
    if sigs.is_empty() {
        return Err(Rejection::new(Check::Unsigned, "the envelope carries no signature"));
    }
    Ok((payload, sigs))
}

/// Any signature by any trusted key: (payload, key name, keyid).
fn verify_keyed(env: &Envelope, trust: &Trust) -> Result<(Vec<u8>, String, String), Rejection> {
    let (payload, sigs) = open(env)?;
    if trust.keys.is_empty() {
        return Err(Rejection::new(
            Check::Signature,
            "signed with a key, but no key is trusted for this image",
        ));
    }
    let msg = pae(&env.payload_type, &payload);
    for k in &trust.keys {
        if sigs.iter().any(|s| k.key.verify(&msg, s)) {
            return Ok((payload, k.name.clone(), k.key.keyid()));
        }
    }
    let names: Vec<&str> = trust.keys.iter().map(|k| k.name.as_str()).collect();
    Err(Rejection::new(
        Check::Signature,
        format!("none of {} signature(s) verifies with the trusted keys ({})", sigs.len(), names.join(", ")),
    ))
}

fn verify_bundle(b: &Bundle, digests: &[&str], trust: &Trust) -> Result<VerifiedSbom, Rejection> {
    let version = b.version()?;
    let env = b.envelope()?;
    match b.signer()? {
        Signer::Key => {
            let (payload, name, keyid) = verify_keyed(env, trust)?;
            let (_, sigs) = open(env)?;
            let entries = &b.verification_material.tlog_entries;
            let mut tlog = None;
            if !entries.is_empty() || trust.require_tlog {
                let Some(root) = trust.identities.first().map(|i| &i.root) else {
                    return Err(Rejection::new(
                        Check::Tlog,
                        "log evidence cannot be checked: the policy names no trusted root for this image",
                    ));
                };
                let expect = tlog::Expect { payload: &payload, signatures: sigs, verifier_der: None };
                tlog = Some(first_entry(entries, root, version, &expect)?);
            }
            finish(&payload, digests, trust, SignedBy::Key { name, keyid }, tlog)
        }
        Signer::Certificate(der) => verify_keyless(b, version, env, &der, digests, trust),
    }
}

fn first_entry(
    entries: &[tlog::Entry],
    root: &crate::TrustedRoot,
    v: Version,
    e: &tlog::Expect<'_>,
) -> Result<tlog::Verified, Rejection> {
    let mut last = Rejection::new(Check::Tlog, "the bundle carries no transparency-log entry");
    for entry in entries {
        match tlog::verify(entry, root, v >= Version::V02, e) {
            Ok(ok) => return Ok(ok),
            Err(err) => last = err,
        }
    }
    Err(last)
}

fn verify_keyless(
    b: &Bundle,
    v: Version,
    env: &Envelope,
    der: &[u8],
    digests: &[&str],
    trust: &Trust,
) -> Result<VerifiedSbom, Rejection> {
    let (payload, sigs) = open(env)?;
    let leaf = Leaf::parse(der)?;
    let msg = pae(&env.payload_type, &payload);
    if !sigs.iter().any(|s| leaf.key.verify(&msg, s)) {
        return Err(Rejection::new(
            Check::Signature,
            "no envelope signature verifies with the bundle's certificate",
        ));
    }
    if trust.identities.is_empty() {
        return Err(Rejection::new(
            Check::Identity,
            "signed keyless, but no keyless identity is trusted for this image",
        ));
    }
    // Each identity may name its own trusted root: the furthest any of them
    // gets is the rejection reported.
    let mut best: Option<(u8, Rejection)> = None;
    for id in &trust.identities {
        let expect = tlog::Expect { payload: &payload, signatures: sigs.clone(), verifier_der: Some(der) };
        match keyless_with(b, v, &leaf, id, &expect) {
            Ok((subject, entry)) => {
                let by = SignedBy::Identity { subject, issuer: id.issuer.clone() };
                return finish(&payload, digests, trust, by, Some(entry));
            }
            Err((stage, e)) => {
                if best.as_ref().is_none_or(|(s, _)| stage > *s) {
                    best = Some((stage, e));
                }
            }
        }
    }
    Err(best.map_or_else(|| Rejection::new(Check::Identity, "no identity"), |(_, e)| e))
}

fn keyless_with(
    b: &Bundle,
    v: Version,
    leaf: &Leaf,
    id: &Identity,
    e: &tlog::Expect<'_>,
) -> Result<(String, tlog::Verified), (u8, Rejection)> {
    let entry = first_entry(&b.verification_material.tlog_entries, &id.root, v, e).map_err(|r| (0, r))?;
    let Some(at) = entry.signed_time else {
        return Err((
            0,
            Rejection::new(
                Check::Tlog,
                "no signed time for the certificate: the log entry has no inclusion promise (RFC 3161 timestamps are not checked)",
            ),
        ));
    };
    leaf.verify_chain(&id.root, at).map_err(|r| (1, r))?;
    let issuer = leaf.issuer.as_deref().unwrap_or_default();
    if issuer != id.issuer {
        return Err((
            2,
            Rejection::new(
                Check::Identity,
                format!("certificate issuer `{issuer}` is not the trusted `{}`", id.issuer),
            ),
        ));
    }
    match leaf.subjects.iter().find(|s| id.subject.matches(s)) {
        Some(s) => Ok((s.clone(), entry)),
        None => Err((
            2,
            Rejection::new(
                Check::Identity,
                format!(
                    "certificate subject {:?} does not match the trusted {:?}",
                    leaf.subjects, id.subject
                ),
            ),
        )),
    }
}

fn finish(
    payload: &[u8],
    digests: &[&str],
    trust: &Trust,
    signed_by: SignedBy,
    tlog: Option<tlog::Verified>,
) -> Result<VerifiedSbom, Rejection> {
    let st = Statement::parse(payload)?;
    let subject = st.subject_matching(digests).ok_or_else(|| {
        let seen: Vec<String> = st
            .subjects
            .iter()
            .map(|s| format!("{}@sha256:{}", s.name, s.digest.get("sha256").map_or("-", String::as_str)))
            .collect();
        Rejection::new(
            Check::SubjectDigest,
            format!("the statement is about [{}], not the image {}", seen.join(", "), digests.join(" / ")),
        )
    })?;
    let hex = subject.digest.get("sha256").map_or("", String::as_str);
    let subject = if subject.name.is_empty() {
        format!("sha256:{hex}")
    } else {
        format!("{}@sha256:{hex}", subject.name)
    };
    if !trust.accepts_type(&st.predicate_type) {
        return Err(Rejection::new(
            Check::PredicateType,
            format!("predicate type `{}` is not one of {:?}", st.predicate_type, trust.predicate_types),
        ));
    }
    Ok(VerifiedSbom {
        document: st.predicate,
        predicate_type: st.predicate_type,
        subject,
        signed_by,
        tlog_index: tlog.as_ref().map(|t| t.log_index),
        signed_time: tlog.and_then(|t| t.signed_time),
    })
}

#[cfg(test)]
#[path = "verify_tests.rs"]
mod tests;
