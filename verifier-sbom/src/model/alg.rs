//! Hash algorithms as SBOMs state them, and digests as values.

use std::fmt;

/// A hash algorithm an SBOM can state for a file.
///
/// Only algorithms whose digests we can at least compare are kept; others
/// (MD2, MD4, MD6, ADLER32, ...) are dropped with a warning.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
#[repr(u8)]
pub enum HashAlg {
    Sha256 = 1,
    Sha512 = 2,
    Sha384 = 3,
    Sha224 = 4,
    Sha1 = 5,
    Md5 = 6,
    Sha3_256 = 7,
    Sha3_384 = 8,
    Sha3_512 = 9,
    Blake2b256 = 10,
    Blake2b384 = 11,
    Blake2b512 = 12,
    Blake3 = 13,
}

/// Whether a digest still proves content today.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Strength {
    /// Collisions are practical (MD5, SHA-1): fine to spot accidents, not
    /// proof against an attacker.
    Weak,
    /// No practical collisions known.
    Strong,
}

impl HashAlg {
    pub(super) const ALL: [HashAlg; 13] = [
        HashAlg::Sha256,
        HashAlg::Sha512,
        HashAlg::Sha384,
        HashAlg::Sha224,
        HashAlg::Sha1,
        HashAlg::Md5,
        HashAlg::Sha3_256,
        HashAlg::Sha3_384,
        HashAlg::Sha3_512,
        HashAlg::Blake2b256,
        HashAlg::Blake2b384,
        HashAlg::Blake2b512,
        HashAlg::Blake3,
    ];

    /// Parses an algorithm name the way SBOM tools spell it: `SHA256`,
    /// `SHA-256`, `sha256`, `sha_256`, `SHA3-256`, `BLAKE2b-256`, `blake3`.
    pub fn parse(name: &str) -> Option<HashAlg> {
        let mut buf = [0u8; 16];
        let mut n = 0;
        for b in name.bytes() {
            if b == b'-' || b == b'_' || b == b' ' {
                continue;
            }
            if n == buf.len() {
                return None;
            }
            buf[n] = b.to_ascii_lowercase();
            n += 1;
        }
        Some(match &buf[..n] {
            b"sha256" => HashAlg::Sha256,
            b"sha512" => HashAlg::Sha512,
            b"sha384" => HashAlg::Sha384,
            b"sha224" => HashAlg::Sha224,
            b"sha1" => HashAlg::Sha1,
            b"md5" => HashAlg::Md5,
            b"sha3256" => HashAlg::Sha3_256,
            b"sha3384" => HashAlg::Sha3_384,
            b"sha3512" => HashAlg::Sha3_512,
            b"blake2b256" => HashAlg::Blake2b256,
            b"blake2b384" => HashAlg::Blake2b384,
            b"blake2b512" => HashAlg::Blake2b512,
            b"blake3" => HashAlg::Blake3,
            _ => return None,
        })
    }

    /// The name used in output: lowercase, no dash (`sha256`, `sha3-256`
    /// keeps its dash because `sha3256` reads badly).
    pub fn name(&self) -> &'static str {
        match self {
            HashAlg::Sha256 => "sha256",
            HashAlg::Sha512 => "sha512",
            HashAlg::Sha384 => "sha384",
            HashAlg::Sha224 => "sha224",
            HashAlg::Sha1 => "sha1",
            HashAlg::Md5 => "md5",
            HashAlg::Sha3_256 => "sha3-256",
            HashAlg::Sha3_384 => "sha3-384",
            HashAlg::Sha3_512 => "sha3-512",
            HashAlg::Blake2b256 => "blake2b-256",
            HashAlg::Blake2b384 => "blake2b-384",
            HashAlg::Blake2b512 => "blake2b-512",
            HashAlg::Blake3 => "blake3",
        }
    }

    /// Length of a digest in bytes.
    pub fn digest_len(&self) -> usize {
        match self {
            HashAlg::Sha256 | HashAlg::Sha3_256 | HashAlg::Blake2b256 | HashAlg::Blake3 => 32,
            HashAlg::Sha512 | HashAlg::Sha3_512 | HashAlg::Blake2b512 => 64,
            HashAlg::Sha384 | HashAlg::Sha3_384 | HashAlg::Blake2b384 => 48,
            HashAlg::Sha224 => 28,
            HashAlg::Sha1 => 20,
            HashAlg::Md5 => 16,
        }
    }

    pub fn strength(&self) -> Strength {
        match self {
            HashAlg::Sha1 | HashAlg::Md5 => Strength::Weak,
            _ => Strength::Strong,
        }
    }

    pub(super) fn from_u8(v: u8) -> Option<HashAlg> {
        HashAlg::ALL.into_iter().find(|a| *a as u8 == v)
    }
}

impl fmt::Display for HashAlg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// An owned digest: algorithm and raw bytes (not hex).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Digest {
    pub alg: HashAlg,
    pub value: Box<[u8]>,
}

impl Digest {
    pub fn as_ref(&self) -> DigestRef<'_> {
        DigestRef { alg: self.alg, value: &self.value }
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.as_ref().fmt(f)
    }
}

/// A digest borrowed from a [`FileEntry`]. Displays as `sha256:<hex>`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct DigestRef<'a> {
    pub alg: HashAlg,
    pub value: &'a [u8],
}

impl DigestRef<'_> {
    pub fn to_owned(&self) -> Digest {
        Digest { alg: self.alg, value: self.value.into() }
    }

    pub fn hex(&self) -> String {
        hex::encode(self.value)
    }
}

impl fmt::Display for DigestRef<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.alg, hex::encode(self.value))
    }
}
