//! A Sigstore `trusted_root.json` (media type
//! `application/vnd.dev.sigstore.trustedroot+json;version=0.1`): the
//! Fulcio certificate authorities and transparency-log keys an offline
//! verifier needs, each with the period it was valid for.
//!
//! It is read from a file the operator supplies (from the instance's TUF
//! repository, or `cosign trusted-root create` for a private instance);
//! nothing is fetched. CT logs and timestamp authorities are read past:
//! SCTs and RFC 3161 timestamps are not checked (see docs/trust.md).

use std::path::Path;

use serde::Deserialize;

use crate::dsse::decode_b64;
use crate::error::AttestError;
use crate::keys::PublicKey;

/// One transparency log (Rekor): its key and log id.
#[derive(Clone, Debug)]
pub struct TlogKey {
    pub base_url: String,
    /// The log id: SHA-256 of the key's DER SubjectPublicKeyInfo.
    pub log_id: Vec<u8>,
    pub key: PublicKey,
    pub valid: Validity,
}

/// A Fulcio CA: its chain, leaf-most first, as DER certificates.
#[derive(Clone, Debug)]
pub struct CertAuthority {
    pub uri: String,
    pub chain: Vec<Vec<u8>>,
    pub valid: Validity,
}

/// A period in Unix seconds; `end` open when absent.
#[derive(Clone, Copy, Debug, Default)]
pub struct Validity {
    pub start: i64,
    pub end: Option<i64>,
}

impl Validity {
    pub fn contains(&self, t: i64) -> bool {
        t >= self.start && self.end.is_none_or(|e| t <= e)
    }
}

/// The parsed trusted root.
#[derive(Clone, Debug, Default)]
pub struct TrustedRoot {
    pub tlogs: Vec<TlogKey>,
    pub cas: Vec<CertAuthority>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawRoot {
    #[serde(default)]
    tlogs: Vec<RawTlog>,
    #[serde(default)]
    certificate_authorities: Vec<RawCa>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawTlog {
    #[serde(default)]
    base_url: String,
    public_key: RawKey,
    log_id: RawLogId,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawKey {
    raw_bytes: String,
    #[serde(default)]
    valid_for: RawValidity,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawLogId {
    key_id: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawCa {
    #[serde(default)]
    uri: String,
    cert_chain: RawChain,
    #[serde(default)]
    valid_for: RawValidity,
}

#[derive(Deserialize)]
struct RawChain {
    certificates: Vec<RawCert>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawCert {
    raw_bytes: String,
}

#[derive(Default, Deserialize)]
struct RawValidity {
    #[serde(default)]
    start: Option<String>,
    #[serde(default)]
    end: Option<String>,
}

impl TrustedRoot {
    /// Reads a trusted root file.
    pub fn load(path: &Path) -> Result<Self, AttestError> {
        let bytes =
            std::fs::read(path).map_err(|source| AttestError::Read { path: path.to_owned(), source })?;
        Self::parse(&bytes).map_err(|message| AttestError::TrustRoot { path: path.to_owned(), message })
    }

    /// Parses a trusted root from JSON.
    pub fn parse(bytes: &[u8]) -> Result<Self, String> {
        let raw: RawRoot = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
        let mut root = Self::default();
        for t in raw.tlogs {
            let der = decode_b64(&t.public_key.raw_bytes).ok_or("a tlog key is not base64")?;
            // A log whose key type we cannot use (a future algorithm) is
            // skipped: entries from it then fail the tlog check by name.
            let Ok(key) = PublicKey::from_spki_der(&der) else { continue };
            root.tlogs.push(TlogKey {
                base_url: t.base_url,
                log_id: decode_b64(&t.log_id.key_id).ok_or("a tlog log id is not base64")?,
                key,
                valid: validity(&t.public_key.valid_for)?,
            });
        }
        for ca in raw.certificate_authorities {
            let chain = ca
                .cert_chain
                .certificates
                .iter()
                .map(|c| decode_b64(&c.raw_bytes))
                .collect::<Option<Vec<_>>>();
            let chain = chain.ok_or("a CA certificate is not base64")?;
            root.cas.push(CertAuthority { uri: ca.uri, chain, valid: validity(&ca.valid_for)? });
        }
        if root.cas.is_empty() && root.tlogs.is_empty() {
            return Err("it names no certificate authority and no transparency log".into());
        }
        Ok(root)
    }
}

fn validity(v: &RawValidity) -> Result<Validity, String> {
    let start = v.start.as_deref().map(parse_rfc3339).transpose()?.unwrap_or(0);
    let end = v.end.as_deref().map(parse_rfc3339).transpose()?;
    Ok(Validity { start, end })
}

/// `YYYY-MM-DDTHH:MM:SS[.frac](Z|+HH:MM|-HH:MM)` to Unix seconds.
pub(crate) fn parse_rfc3339(s: &str) -> Result<i64, String> {
    let bad = || format!("`{s}` is not an RFC 3339 time");
    let b = s.as_bytes();
    if b.len() < 20
        || b[4] != b'-'
        || b[7] != b'-'
        || !matches!(b[10], b'T' | b't')
        || b[13] != b':'
        || b[16] != b':'
    {
        return Err(bad());
    }
    let num = |r: std::ops::Range<usize>| s.get(r).and_then(|x| x.parse::<i64>().ok()).ok_or_else(bad);
    let (y, mo, d, h, mi, se) =
        (num(0..4)?, num(5..7)?, num(8..10)?, num(11..13)?, num(14..16)?, num(17..19)?);
    let mut rest = &s[19..];
    if let Some(frac) = rest.strip_prefix('.') {
        rest = frac.trim_start_matches(|c: char| c.is_ascii_digit());
    }
    let offset = match rest {
        "Z" | "z" => 0,
        o if o.len() == 6 && (o.starts_with('+') || o.starts_with('-')) => {
            let hh: i64 = o[1..3].parse().map_err(|_| bad())?;
            let mm: i64 = o[4..6].parse().map_err(|_| bad())?;
            let sign = if o.starts_with('-') { -1 } else { 1 };
            sign * (hh * 3600 + mm * 60)
        }
        _ => return Err(bad()),
    };
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || se > 60 {
        return Err(bad());
    }
    Ok(days_from_civil(y, mo, d) * 86_400 + h * 3600 + mi * 60 + se - offset)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_times() {
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Ok(0));
        assert_eq!(parse_rfc3339("2021-03-07T03:20:29Z"), Ok(1_615_087_229));
        assert_eq!(parse_rfc3339("2022-12-31T23:59:59.999Z"), Ok(1_672_531_199));
        assert_eq!(parse_rfc3339("2021-03-07T05:20:29+02:00"), Ok(1_615_087_229));
        assert!(parse_rfc3339("2021-13-07T03:20:29Z").is_err());
        assert!(parse_rfc3339("yesterday").is_err());
    }
}
