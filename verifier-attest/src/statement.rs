//! The in-toto Statement inside an envelope (v0.1 and v1): which artefacts
//! it is about (`subject`: name + digests) and what it says about them
//! (`predicateType` + `predicate`).
//!
//! The predicate is kept as the raw JSON text it was signed as and handed
//! to the SBOM readers unchanged; a predicate held as a JSON string
//! (cosign's custom type, `{"Data": "..."}`) is unwrapped once here, so the
//! readers see one plain document and keep their one nesting check.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::value::RawValue;

use crate::error::{Check, Rejection};

const STATEMENT_TYPES: [&str; 2] = ["https://in-toto.io/Statement/v0.1", "https://in-toto.io/Statement/v1"];

/// Families of predicate types, as a policy names them.
pub const SPDX_PREFIX: &str = "https://spdx.dev/Document";
pub const CYCLONEDX_PREFIX: &str = "https://cyclonedx.org/bom";
/// cosign's `--type custom` (the SBOM then sits in `Data`).
pub const COSIGN_CUSTOM: &str = "https://cosign.sigstore.dev/attestation/v1";

#[derive(Deserialize)]
struct Raw<'a> {
    #[serde(rename = "_type")]
    kind: String,
    #[serde(default)]
    subject: Vec<Subject>,
    #[serde(rename = "predicateType")]
    predicate_type: String,
    #[serde(borrow, default)]
    predicate: Option<&'a RawValue>,
}

/// One artefact a statement is about.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
pub struct Subject {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub digest: BTreeMap<String, String>,
}

/// A parsed statement; `predicate` is the SBOM document's JSON text.
#[derive(Clone, Debug)]
pub struct Statement {
    pub subjects: Vec<Subject>,
    pub predicate_type: String,
    pub predicate: Vec<u8>,
}

impl Statement {
    /// Reads a statement from a DSSE payload.
    pub fn parse(payload: &[u8]) -> Result<Self, Rejection> {
        let raw: Raw<'_> = serde_json::from_slice(payload).map_err(|e| {
            Rejection::new(Check::Malformed, format!("the payload is not an in-toto statement: {e}"))
        })?;
        if !STATEMENT_TYPES.contains(&raw.kind.as_str()) {
            return Err(Rejection::new(
                Check::Malformed,
                format!("statement type `{}` is not an in-toto Statement v0.1 or v1", raw.kind),
            ));
        }
        let predicate = match raw.predicate {
            None => Vec::new(),
            Some(p) => unwrap_text(p.get()),
        };
        Ok(Self { subjects: raw.subject, predicate_type: raw.predicate_type, predicate })
    }

    /// The subject whose sha256 equals one of `digests` (`sha256:<hex>` or
    /// bare hex), if any.
    pub fn subject_matching(&self, digests: &[&str]) -> Option<&Subject> {
        let want: Vec<String> =
            digests.iter().map(|d| d.strip_prefix("sha256:").unwrap_or(d).to_ascii_lowercase()).collect();
        self.subjects
            .iter()
            .find(|s| s.digest.get("sha256").is_some_and(|h| want.iter().any(|w| w.eq_ignore_ascii_case(h))))
    }
}

/// A predicate that is a JSON string, or an object whose only member is the
/// string `Data`, holds the document as text: return that text.
fn unwrap_text(json: &str) -> Vec<u8> {
    if let Ok(s) = serde_json::from_str::<String>(json) {
        return s.into_bytes();
    }
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Data {
        #[serde(rename = "Data")]
        data: String,
        #[serde(default, rename = "Timestamp")]
        _timestamp: Option<serde::de::IgnoredAny>,
    }
    match serde_json::from_str::<Data>(json) {
        Ok(d) => d.data.into_bytes(),
        Err(_) => json.as_bytes().to_vec(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v1_statement_with_subject_and_object_predicate() {
        let s = Statement::parse(br#"{"_type":"https://in-toto.io/Statement/v1","subject":[{"name":"img","digest":{"sha256":"AB12"}}],"predicateType":"https://spdx.dev/Document","predicate":{"spdxVersion":"SPDX-2.3"}}"#).expect("statement");
        assert_eq!(s.predicate, br#"{"spdxVersion":"SPDX-2.3"}"#);
        assert!(s.subject_matching(&["sha256:ab12"]).is_some());
        assert!(s.subject_matching(&["sha256:ab13"]).is_none());
    }

    #[test]
    fn cosign_custom_data_is_unwrapped_once() {
        let s = Statement::parse(br#"{"_type":"https://in-toto.io/Statement/v0.1","predicateType":"https://cosign.sigstore.dev/attestation/v1","predicate":{"Data":"{\"bomFormat\":\"CycloneDX\"}","Timestamp":"2024"}}"#).expect("statement");
        assert_eq!(s.predicate, br#"{"bomFormat":"CycloneDX"}"#);
    }

    #[test]
    fn not_a_statement_is_malformed() {
        let e = Statement::parse(br#"{"_type":"x","predicateType":"p"}"#).expect_err("wrong type");
        assert_eq!(e.check, Check::Malformed);
        assert_eq!(Statement::parse(b"[1]").expect_err("array").check, Check::Malformed);
    }
}
