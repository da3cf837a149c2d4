//! Image references as container runtimes report them (`host:port/repo:tag`,
//! `busybox`, `docker.io/library/x@sha256:...`) split into what the
//! distribution API needs: the registry to talk to, the repository, the tag
//! (kept: it finds the index of a platform manifest) and the digest.
//!
//! Docker's defaults apply: a first component without a dot, a colon or
//! `localhost` is a repository path on `docker.io`, and a one-component
//! name there lives under `library/`.

use std::fmt;

/// Errors from reading an image reference or a digest.
#[derive(Debug, thiserror::Error)]
pub enum RefError {
    #[error("image reference {reference:?}: {why} (expected REGISTRY/REPO[:TAG]@sha256:<64 hex>)")]
    Invalid { reference: String, why: &'static str },
}

/// A `sha256:<64 lowercase hex>` content digest: the only algorithm the
/// cache and the verifiers accept.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Digest(String);

impl TryFrom<String> for Digest {
    type Error = RefError;
    fn try_from(s: String) -> Result<Self, RefError> {
        Self::parse(&s)
    }
}

impl From<Digest> for String {
    fn from(d: Digest) -> Self {
        d.0
    }
}

impl Digest {
    /// Parses `sha256:<64 hex>` (upper-case hex is folded).
    pub fn parse(s: &str) -> Result<Self, RefError> {
        let invalid = |why| RefError::Invalid { reference: s.to_owned(), why };
        let hex = s.strip_prefix("sha256:").ok_or_else(|| invalid("digest must start with sha256:"))?;
        if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(invalid("digest must be 64 hex digits after sha256:"));
        }
        Ok(Self(format!("sha256:{}", hex.to_ascii_lowercase())))
    }

    /// The digest of `bytes`.
    pub fn of(bytes: &[u8]) -> Self {
        use sha2::Digest as _;
        Self(format!("sha256:{}", hex::encode(sha2::Sha256::digest(bytes))))
    }

    /// The 64 hex digits.
    pub fn hex(&self) -> &str {
        &self.0["sha256:".len()..]
    }

    /// `sha256-<hex>`: the tag form cosign and the OCI referrers tag schema use.
    pub fn tag(&self) -> String {
        format!("sha256-{}", self.hex())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A parsed image reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageRef {
    /// Registry as written (`docker.io`, `127.0.0.1:5000`): the key for
    /// credentials and `--insecure-registry`.
    pub registry: String,
    /// Repository path (`library/busybox`).
    pub repository: String,
    pub tag: Option<String>,
    pub digest: Option<Digest>,
}

impl ImageRef {
    pub fn parse(reference: &str) -> Result<Self, RefError> {
        let invalid = |why| RefError::Invalid { reference: reference.to_owned(), why };
        if reference.is_empty() || reference.chars().any(|c| c.is_whitespace()) {
            return Err(invalid("empty or contains whitespace"));
        }
        let (name, digest) = match reference.split_once('@') {
            Some((n, d)) => (n, Some(Digest::parse(d)?)),
            None => (reference, None),
        };
        // A tag is after the last colon that follows the last slash.
        let slash = name.rfind('/').map_or(0, |i| i + 1);
        let (name, tag) = match name[slash..].rfind(':') {
            Some(i) => (&name[..slash + i], Some(name[slash + i + 1..].to_owned())),
            None => (name, None),
        };
        if tag.as_deref() == Some("") {
            return Err(invalid("empty tag"));
        }
        let (registry, repository) = match name.split_once('/') {
            Some((first, rest)) if first.contains(['.', ':']) || first == "localhost" => {
                (first.to_owned(), rest.to_owned())
            }
            _ => ("docker.io".to_owned(), name.to_owned()),
        };
        let repository = if registry == "docker.io" && !repository.contains('/') {
            format!("library/{repository}")
        } else {
            repository
        };
        if repository.is_empty()
            || !repository
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-/".contains(&b))
        {
            return Err(invalid("repository must be lower-case letters, digits, '.', '_', '-', '/'"));
        }
        Ok(Self { registry, repository, tag, digest })
    }

    /// Host (and port) the HTTP API is served on: Docker Hub's API host
    /// differs from its name.
    pub fn api_host(&self) -> &str {
        match self.registry.as_str() {
            "docker.io" | "index.docker.io" => "registry-1.docker.io",
            other => other,
        }
    }
}

impl fmt::Display for ImageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn docker_defaults_and_ports() {
        let r = ImageRef::parse("busybox").expect("valid reference");
        assert_eq!(
            (r.registry.as_str(), r.repository.as_str(), r.api_host()),
            ("docker.io", "library/busybox", "registry-1.docker.io")
        );
        let r = ImageRef::parse(&format!("127.0.0.1:5000/team/app:v1@{D}")).expect("valid reference");
        assert_eq!(r.registry, "127.0.0.1:5000");
        assert_eq!(r.repository, "team/app");
        assert_eq!(r.tag.as_deref(), Some("v1"));
        assert_eq!(r.digest.as_ref().map(Digest::tag), Some(format!("sha256-{}", &D[7..])));
        let r = ImageRef::parse("localhost/app").expect("valid reference");
        assert_eq!((r.registry.as_str(), r.tag), ("localhost", None));
    }

    #[test]
    fn bad_references_say_why() {
        for bad in ["", "a b", "x@sha256:12", "x@md5:00", "Upper/Case", "x:"] {
            assert!(ImageRef::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(
            Digest::parse(&D.to_uppercase().replace("SHA256", "sha256")).expect("valid reference").as_str(),
            D
        );
    }
}
