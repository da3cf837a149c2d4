//! Transparency-log evidence carried by a Sigstore bundle (Rekor v1
//! entries), checked offline against the logs of the trusted root.
//!
//! - The inclusion promise (SET) is the log's signature over the entry's
//!   body, integrated time, log id and index (canonical JSON): it is what
//!   makes the integrated time trustworthy.
//! - The inclusion proof is an RFC 6962 Merkle audit path from the entry to
//!   a root hash, and the checkpoint is the log's signed note over that
//!   root (its size, hash, origin).
//! - The entry's body must be about this envelope: the payload hash and a
//!   signature (and, for `dsse`, the signer's certificate or key).
//!
//! A bundle v0.1 may carry a promise alone; v0.2 and later must carry a
//! proof with a checkpoint (the bundle specification). Whatever is present
//! must verify: a bad promise next to a good proof is a rejection.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::Deserialize;
use sha2::{Digest as _, Sha256};

use crate::dsse::decode_b64;
use crate::error::{Check, Rejection};
use crate::trust_root::{TlogKey, TrustedRoot};

/// One `tlogEntries[]` element of a bundle.
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Entry {
    #[serde(deserialize_with = "int64")]
    pub log_index: i64,
    pub log_id: LogId,
    #[serde(default)]
    pub kind_version: Option<KindVersion>,
    #[serde(deserialize_with = "int64")]
    pub integrated_time: i64,
    #[serde(default)]
    pub inclusion_promise: Option<Promise>,
    #[serde(default)]
    pub inclusion_proof: Option<Proof>,
    pub canonicalized_body: String,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LogId {
    pub key_id: String,
}

#[derive(Clone, Debug, Deserialize)]
pub struct KindVersion {
    pub kind: String,
    pub version: String,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Promise {
    pub signed_entry_timestamp: String,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Proof {
    #[serde(deserialize_with = "int64")]
    pub log_index: i64,
    pub root_hash: String,
    #[serde(deserialize_with = "int64")]
    pub tree_size: i64,
    #[serde(default)]
    pub hashes: Vec<String>,
    #[serde(default)]
    pub checkpoint: Option<Checkpoint>,
}

#[derive(Clone, Debug, Deserialize)]
pub struct Checkpoint {
    pub envelope: String,
}

/// Protobuf JSON writes int64 as a string; accept both.
fn int64<'de, D: serde::Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum N {
        S(String),
        I(i64),
    }
    match N::deserialize(d)? {
        N::I(i) => Ok(i),
        N::S(s) => s.parse().map_err(serde::de::Error::custom),
    }
}

/// What a verified entry proves.
#[derive(Clone, Debug)]
pub struct Verified {
    pub log_index: i64,
    pub log_url: String,
    /// The integrated time, when the log signed it (a verified promise).
    pub signed_time: Option<i64>,
}

/// What the entry's body must match.
pub(crate) struct Expect<'a> {
    pub payload: &'a [u8],
    /// Base64 signatures of the envelope.
    pub signatures: Vec<Vec<u8>>,
    /// The DER of the signer's certificate or key, if any.
    pub verifier_der: Option<&'a [u8]>,
}

fn rej(detail: impl Into<String>) -> Rejection {
    Rejection::new(Check::Tlog, detail)
}

/// Checks one entry. `need_proof`: bundle v0.2 and later.
pub(crate) fn verify(
    entry: &Entry,
    root: &TrustedRoot,
    need_proof: bool,
    expect: &Expect<'_>,
) -> Result<Verified, Rejection> {
    let log_id = decode_b64(&entry.log_id.key_id).ok_or_else(|| rej("the log id is not base64"))?;
    let log = root
        .tlogs
        .iter()
        .find(|t| t.log_id == log_id)
        .ok_or_else(|| rej(format!("log {} is not in the trusted root", hex::encode(&log_id))))?;
    let body = decode_b64(&entry.canonicalized_body).ok_or_else(|| rej("the entry body is not base64"))?;
    body_matches(&body, expect)?;
    let mut signed_time = None;
    if let Some(p) = &entry.inclusion_promise {
        verify_promise(entry, &body, log, p)?;
        if !log.valid.contains(entry.integrated_time) {
            return Err(rej(format!(
                "the log key of {} was not valid at {}",
                log.base_url, entry.integrated_time
            )));
        }
        signed_time = Some(entry.integrated_time);
    }
    match &entry.inclusion_proof {
        Some(p) => verify_proof(&body, log, p)?,
        None if need_proof => return Err(rej("the bundle (v0.2 or later) carries no inclusion proof")),
        None if signed_time.is_none() => {
            return Err(rej("the entry carries neither an inclusion promise nor an inclusion proof"));
        }
        None => {}
    }
    Ok(Verified { log_index: entry.log_index, log_url: log.base_url.clone(), signed_time })
}

fn verify_promise(entry: &Entry, body: &[u8], log: &TlogKey, p: &Promise) -> Result<(), Rejection> {
    let sig =
        decode_b64(&p.signed_entry_timestamp).ok_or_else(|| rej("the inclusion promise is not base64"))?;
    // Canonical JSON: keys sorted, no spaces; the same bytes Rekor signed.
    let msg = format!(
        r#"{{"body":"{}","integratedTime":{},"logID":"{}","logIndex":{}}}"#,
        STANDARD.encode(body),
        entry.integrated_time,
        hex::encode(&log.log_id),
        entry.log_index
    );
    if log.key.verify(msg.as_bytes(), &sig) {
        Ok(())
    } else {
        Err(rej(format!(
            "the inclusion promise (signed entry timestamp) does not verify with the key of {}",
            log.base_url
        )))
    }
}

fn verify_proof(body: &[u8], log: &TlogKey, p: &Proof) -> Result<(), Rejection> {
    let root_hash = decode_b64(&p.root_hash).ok_or_else(|| rej("the proof's root hash is not base64"))?;
    let hashes = p
        .hashes
        .iter()
        .map(|h| decode_b64(h))
        .collect::<Option<Vec<_>>>()
        .ok_or_else(|| rej("a proof hash is not base64"))?;
    let (Ok(index), Ok(size)) = (u64::try_from(p.log_index), u64::try_from(p.tree_size)) else {
        return Err(rej("negative index or tree size in the inclusion proof"));
    };
    let leaf: Vec<u8> = Sha256::new().chain_update([0u8]).chain_update(body).finalize().to_vec();
    let computed = merkle_root(index, size, leaf, &hashes)
        .ok_or_else(|| rej("the inclusion proof has the wrong shape for its index and tree size"))?;
    if computed != root_hash {
        return Err(rej("the inclusion proof does not lead to its root hash"));
    }
    let cp = p.checkpoint.as_ref().ok_or_else(|| rej("the inclusion proof carries no checkpoint"))?;
    verify_checkpoint(&cp.envelope, log, size, &root_hash)
}

/// RFC 9162 section 2.1.3.2: the root from a leaf hash and its audit path.
pub(crate) fn merkle_root(index: u64, size: u64, leaf: Vec<u8>, path: &[Vec<u8>]) -> Option<Vec<u8>> {
    if index >= size {
        return None;
    }
    let (mut fnode, mut snode) = (index, size - 1);
    let mut r = leaf;
    for p in path {
        if snode == 0 {
            return None;
        }
        let node = |l: &[u8], rr: &[u8]| {
            Sha256::new().chain_update([1u8]).chain_update(l).chain_update(rr).finalize().to_vec()
        };
        if fnode & 1 == 1 || fnode == snode {
            r = node(p, &r);
            if fnode & 1 == 0 {
                while fnode & 1 == 0 && fnode != 0 {
                    fnode >>= 1;
                    snode >>= 1;
                }
            }
        } else {
            r = node(&r, p);
        }
        fnode >>= 1;
        snode >>= 1;
    }
    (snode == 0).then_some(r)
}

/// A signed note: `origin\nsize\nbase64(root)\n[extra lines]\n\n— name base64(hint||sig)\n...`.
fn verify_checkpoint(note: &str, log: &TlogKey, size: u64, root_hash: &[u8]) -> Result<(), Rejection> {
    let (text, sigs) = note.split_once("\n\n").ok_or_else(|| rej("the checkpoint is not a signed note"))?;
    let text = format!("{text}\n");
    let mut lines = text.lines();
    let _origin = lines.next();
    let cp_size: Option<u64> = lines.next().and_then(|s| s.parse().ok());
    let cp_root = lines.next().and_then(decode_b64);
    if cp_size != Some(size) || cp_root.as_deref() != Some(root_hash) {
        return Err(rej("the checkpoint is for another tree than the inclusion proof"));
    }
    let signed = sigs
        .lines()
        .filter_map(|l| l.strip_prefix("\u{2014} "))
        .filter_map(|l| l.split_once(' '))
        .filter_map(|(_, b)| decode_b64(b));
    for s in signed {
        if s.len() > 4 && log.key.verify(text.as_bytes(), &s[4..]) {
            return Ok(());
        }
    }
    Err(rej(format!("no checkpoint signature verifies with the key of {}", log.base_url)))
}

/// The body must be about this envelope: same payload hash, one of its
/// signatures, and (dsse) the same signer.
fn body_matches(body: &[u8], e: &Expect<'_>) -> Result<(), Rejection> {
    let v: serde_json::Value = serde_json::from_slice(body).map_err(|_| rej("the entry body is not JSON"))?;
    let kind = v["kind"].as_str().unwrap_or_default();
    let spec = &v["spec"];
    let payload_hash = hex::encode(Sha256::digest(e.payload));
    let hash_in_body = match kind {
        "dsse" => spec["payloadHash"]["value"].as_str(),
        "intoto" => spec["content"]["payloadHash"]["value"].as_str(),
        other => return Err(rej(format!("entry kind `{other}` is not a DSSE or in-toto entry"))),
    };
    if hash_in_body != Some(payload_hash.as_str()) {
        return Err(rej("the log entry is for another payload"));
    }
    if kind == "dsse" {
        let sigs = spec["signatures"].as_array().cloned().unwrap_or_default();
        let found = sigs.iter().any(|s| {
            let sig = s["signature"].as_str().and_then(decode_b64);
            let sig_ok = sig.is_some_and(|sig| e.signatures.contains(&sig));
            let verifier_ok = match e.verifier_der {
                None => true,
                Some(der) => s["verifier"]
                    .as_str()
                    .and_then(decode_b64)
                    .is_some_and(|pem| pem_der(&pem).is_some_and(|d| d == der)),
            };
            sig_ok && verifier_ok
        });
        if !found {
            return Err(rej("the log entry records another signature or signer"));
        }
    }
    Ok(())
}

fn pem_der(pem: &[u8]) -> Option<Vec<u8>> {
    der::pem::decode_vec(pem).ok().map(|(_, d)| d)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leaf(i: u8) -> Vec<u8> {
        Sha256::new().chain_update([0u8, i]).finalize().to_vec()
    }
    fn node(l: &[u8], r: &[u8]) -> Vec<u8> {
        Sha256::new().chain_update([1u8]).chain_update(l).chain_update(r).finalize().to_vec()
    }

    #[test]
    fn merkle_paths_of_a_five_leaf_tree() {
        let l: Vec<_> = (0..5).map(leaf).collect();
        let (ab, cd) = (node(&l[0], &l[1]), node(&l[2], &l[3]));
        let abcd = node(&ab, &cd);
        let root = node(&abcd, &l[4]);
        assert_eq!(
            merkle_root(2, 5, l[2].clone(), &[l[3].clone(), ab.clone(), l[4].clone()]),
            Some(root.clone())
        );
        assert_eq!(merkle_root(4, 5, l[4].clone(), std::slice::from_ref(&abcd)), Some(root.clone()));
        // A wrong sibling or a path of the wrong length fails.
        assert_ne!(
            merkle_root(2, 5, l[2].clone(), &[l[1].clone(), ab.clone(), l[4].clone()]),
            Some(root.clone())
        );
        assert_eq!(merkle_root(4, 5, l[4].clone(), &[abcd, l[0].clone()]), None);
        assert_eq!(merkle_root(5, 5, l[4].clone(), &[]), None);
    }
}
