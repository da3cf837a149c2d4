//! Small serde building blocks shared by the JSON readers and the sink: values decoded
//! as they are read (hex digests, algorithm names) so that a file element
//! costs no allocation beyond its path, and tolerance for `null` where a
//! list or object belongs.

use std::fmt;

use serde::de::{self, Deserialize, Deserializer, Visitor};

use crate::model::HashAlg;

/// `null` reads as the default (empty list, `None`).
pub(crate) fn nullable<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// A string or a list of strings (JSON-LD compaction writes a one-element
/// list as the element itself).
pub(crate) fn one_or_many<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    struct V;
    impl<'de> Visitor<'de> for V {
        type Value = Vec<String>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a string or a list of strings")
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<Vec<String>, E> {
            Ok(vec![v.to_owned()])
        }
        fn visit_unit<E: de::Error>(self) -> Result<Vec<String>, E> {
            Ok(Vec::new())
        }
        fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<String>, A::Error> {
            let mut out = Vec::new();
            while let Some(s) = seq.next_element::<String>()? {
                out.push(s);
            }
            Ok(out)
        }
    }
    d.deserialize_any(V)
}

/// An algorithm name, parsed as read; unknown names are kept (truncated)
/// for the warning.
#[derive(Debug, Default)]
pub(crate) enum Alg {
    Known(HashAlg),
    Unknown(Box<str>),
    #[default]
    Missing,
}

impl<'de> Deserialize<'de> for Alg {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Alg, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Alg;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a hash algorithm name")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Alg, E> {
                Ok(match HashAlg::parse(v) {
                    Some(a) => Alg::Known(a),
                    None => Alg::Unknown(v.chars().take(40).collect::<String>().into()),
                })
            }
            fn visit_unit<E: de::Error>(self) -> Result<Alg, E> {
                Ok(Alg::Missing)
            }
        }
        d.deserialize_any(V)
    }
}

/// A hex digest decoded as read: up to 64 bytes (SHA-512), else `bad`.
pub(crate) struct Hex {
    bytes: [u8; 64],
    len: u8,
    bad: Option<Box<str>>,
}

impl Default for Hex {
    fn default() -> Hex {
        Hex { bytes: [0; 64], len: 0, bad: Some("".into()) }
    }
}

impl fmt::Debug for Hex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.value() {
            Ok(v) => write!(f, "Hex({})", hex::encode(v)),
            Err(s) => write!(f, "Hex(bad {s:?})"),
        }
    }
}

impl Hex {
    /// The bytes, or the (truncated) text that was not valid hex.
    pub fn value(&self) -> Result<&[u8], &str> {
        match &self.bad {
            None => Ok(&self.bytes[..self.len as usize]),
            Some(s) => Err(s),
        }
    }
}

impl<'de> Deserialize<'de> for Hex {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Hex, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Hex;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a hex digest")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Hex, E> {
                let v = v.trim();
                let mut h = Hex { bytes: [0; 64], len: 0, bad: None };
                let n = v.len() / 2;
                if !v.len().is_multiple_of(2) || n > 64 || !decode_hex(v.as_bytes(), &mut h.bytes[..n]) {
                    h.bad = Some(v.chars().take(80).collect::<String>().into());
                } else {
                    h.len = n as u8;
                }
                Ok(h)
            }
            fn visit_unit<E: de::Error>(self) -> Result<Hex, E> {
                Ok(Hex::default())
            }
        }
        d.deserialize_any(V)
    }
}

/// Hex digit values; 0xff for bytes that are not hex digits.
const HEX: [u8; 256] = {
    let mut t = [0xffu8; 256];
    let mut i = 0;
    while i < 10 {
        t[b'0' as usize + i] = i as u8;
        i += 1;
    }
    let mut i = 0;
    while i < 6 {
        t[b'a' as usize + i] = 10 + i as u8;
        t[b'A' as usize + i] = 10 + i as u8;
        i += 1;
    }
    t
};

/// Decodes `2 * out.len()` hex digits (either case) into `out`; false if
/// any is not a hex digit. A table lookup per digit: digests are the bulk
/// of what an SBOM's file entries hold.
pub(crate) fn decode_hex(hex: &[u8], out: &mut [u8]) -> bool {
    if hex.len() != 2 * out.len() {
        return false;
    }
    let mut bad = 0u8;
    for (o, pair) in out.iter_mut().zip(hex.chunks_exact(2)) {
        let (hi, lo) = (HEX[pair[0] as usize], HEX[pair[1] as usize]);
        bad |= (hi | lo) & 0xf0;
        *o = (hi << 4) | (lo & 0x0f);
    }
    bad == 0
}

#[cfg(test)]
mod tests {
    use super::decode_hex;

    #[test]
    fn hex_decoding_matches_the_hex_crate() {
        let mut out = [0u8; 4];
        assert!(decode_hex(b"00fFa9B7", &mut out));
        assert_eq!(out, [0x00, 0xff, 0xa9, 0xb7]);
        for bad in [&b"0g000000"[..], b"000000 0", b"0000000\xff", b"000000"] {
            assert!(!decode_hex(bad, &mut out), "{bad:?}");
        }
        for b in 0..=255u8 {
            let s = [b, b'0'];
            let mut one = [0u8; 1];
            assert_eq!(decode_hex(&s, &mut one), hex::decode(s).is_ok(), "{b}");
        }
    }
}

/// A digest as written: algorithm name and hex text, `None` for `null` or
/// missing.
#[derive(Clone, Copy, Default)]
pub(crate) struct DigestText<'a> {
    pub alg: Option<&'a str>,
    pub hex: Option<&'a str>,
}
