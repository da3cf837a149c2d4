//! Registry credentials and the challenges that ask for them.
//!
//! Credentials come from the files a node already has: Docker's
//! `config.json` (`auths.<host>.auth` = base64 `user:pass`, or
//! `identitytoken` for an OAuth2 refresh token) and a Kubernetes pull
//! secret (`kubernetes.io/dockerconfigjson`) saved as JSON or YAML. Only the
//! `.dockerconfigjson` key of a YAML Secret is read, so a line reader does
//! instead of a YAML parser; a Secret in another YAML shape should be saved
//! with `kubectl get secret NAME -o json`.
//!
//! A registry says how to authenticate in `WWW-Authenticate`: `Basic` (the
//! credentials on every request) or `Bearer realm=..,service=..,scope=..`
//! (exchange them at the realm for a short-lived token).

use std::{collections::HashMap, fs, path::Path};

use base64::Engine as _;

/// Errors from reading a credentials file.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("reading registry credentials {path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error(
        "registry credentials {path}: {why} (give a Docker config.json or a \
         kubernetes.io/dockerconfigjson Secret as JSON or YAML)"
    )]
    Parse { path: String, why: String },
}

/// One registry's credentials.
#[derive(Clone, PartialEq, Eq)]
pub(crate) enum Credential {
    Basic {
        user: String,
        pass: String,
    },
    /// An OAuth2 refresh token (`identitytoken`), exchanged at the Bearer realm.
    IdentityToken(String),
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print secrets, not even in debug logs.
        match self {
            Self::Basic { user, .. } => write!(f, "Basic({user}, <redacted>)"),
            Self::IdentityToken(_) => f.write_str("IdentityToken(<redacted>)"),
        }
    }
}

/// Credentials by registry host.
#[derive(Debug, Clone, Default)]
pub struct Credentials {
    by_host: HashMap<String, Credential>,
}

impl Credentials {
    /// Reads a Docker `config.json` or a Kubernetes pull secret.
    pub fn load(path: &Path) -> Result<Self, AuthError> {
        let p = path.display().to_string();
        let text = fs::read_to_string(path).map_err(|source| AuthError::Read { path: p.clone(), source })?;
        Self::parse(&text).map_err(|why| AuthError::Parse { path: p, why })
    }

    pub(crate) fn parse(text: &str) -> Result<Self, String> {
        let config = match serde_json::from_str::<serde_json::Value>(text) {
            Ok(v) if v.get("auths").is_some() => v,
            Ok(v) => docker_config_of_secret_json(&v)?,
            Err(_) => docker_config_of_secret_yaml(text)?,
        };
        let auths = config.get("auths").and_then(|a| a.as_object()).ok_or("no \"auths\" object")?;
        let mut by_host = HashMap::new();
        for (key, entry) in auths {
            let cred = if let Some(tok) =
                entry.get("identitytoken").and_then(|t| t.as_str()).filter(|t| !t.is_empty())
            {
                Credential::IdentityToken(tok.to_owned())
            } else if let Some(auth) = entry.get("auth").and_then(|a| a.as_str()).filter(|a| !a.is_empty()) {
                let raw = base64::engine::general_purpose::STANDARD
                    .decode(auth.trim())
                    .map_err(|e| format!("auths.{key}.auth is not base64: {e}"))?;
                let raw = String::from_utf8(raw).map_err(|_| format!("auths.{key}.auth is not UTF-8"))?;
                let (user, pass) =
                    raw.split_once(':').ok_or(format!("auths.{key}.auth is not user:password"))?;
                Credential::Basic { user: user.to_owned(), pass: pass.to_owned() }
            } else if let (Some(u), Some(p)) = (
                entry.get("username").and_then(|u| u.as_str()),
                entry.get("password").and_then(|p| p.as_str()),
            ) {
                Credential::Basic { user: u.to_owned(), pass: p.to_owned() }
            } else {
                continue;
            };
            by_host.insert(host_of_key(key), cred);
        }
        Ok(Self { by_host })
    }

    /// The credential for a registry (as written in the image reference).
    pub(crate) fn for_registry(&self, registry: &str) -> Option<&Credential> {
        let host = host_of_key(registry);
        self.by_host.get(&host)
    }

    pub fn is_empty(&self) -> bool {
        self.by_host.is_empty()
    }
}

/// `https://index.docker.io/v1/` and `registry-1.docker.io` are both Docker
/// Hub; other keys lose a scheme and path.
fn host_of_key(key: &str) -> String {
    let k = key.trim_start_matches("https://").trim_start_matches("http://");
    let host = k.split('/').next().unwrap_or(k);
    match host {
        "index.docker.io" | "registry-1.docker.io" | "docker.io" => "docker.io".to_owned(),
        h => h.to_owned(),
    }
}

fn decode_dockerconfigjson(value: &str) -> Result<serde_json::Value, String> {
    let value = value.trim();
    // `stringData` holds the JSON itself, `data` holds it base64-encoded.
    let json = if value.starts_with('{') {
        value.as_bytes().to_vec()
    } else {
        base64::engine::general_purpose::STANDARD
            .decode(value)
            .map_err(|e| format!(".dockerconfigjson is neither JSON nor base64: {e}"))?
    };
    serde_json::from_slice(&json).map_err(|e| format!(".dockerconfigjson is not JSON: {e}"))
}

fn docker_config_of_secret_json(v: &serde_json::Value) -> Result<serde_json::Value, String> {
    for section in ["data", "stringData"] {
        if let Some(s) = v.get(section).and_then(|d| d.get(".dockerconfigjson")).and_then(|s| s.as_str()) {
            return decode_dockerconfigjson(s);
        }
    }
    Err("JSON with neither \"auths\" nor a Secret's .dockerconfigjson".to_owned())
}

fn docker_config_of_secret_yaml(text: &str) -> Result<serde_json::Value, String> {
    for line in text.lines() {
        let Some(rest) = line.trim_start().strip_prefix(".dockerconfigjson:") else { continue };
        let v = rest.trim();
        let v = v
            .strip_prefix('"')
            .and_then(|v| v.strip_suffix('"'))
            .or_else(|| v.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')))
            .unwrap_or(v);
        if v.is_empty() || v.starts_with(['|', '>']) {
            return Err(
                "multi-line .dockerconfigjson in YAML is not read; save the Secret with -o json".to_owned()
            );
        }
        return decode_dockerconfigjson(v);
    }
    Err("neither JSON nor a YAML Secret with a .dockerconfigjson key".to_owned())
}

/// A parsed `WWW-Authenticate` challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Challenge {
    Basic,
    Bearer { realm: String, service: Option<String>, scope: Option<String> },
}

impl Challenge {
    /// Parses `Basic realm=".."` or `Bearer realm="..",service="..",scope=".."`
    /// (quoted values may hold commas: `scope="repository:a:pull,push"`).
    pub(crate) fn parse(header: &str) -> Option<Self> {
        let (scheme, params) = header.trim().split_once(' ').unwrap_or((header.trim(), ""));
        if scheme.eq_ignore_ascii_case("basic") {
            return Some(Self::Basic);
        }
        if !scheme.eq_ignore_ascii_case("bearer") {
            return None;
        }
        let mut map = HashMap::new();
        let mut rest = params.trim();
        while !rest.is_empty() {
            let (key, after) = rest.split_once('=')?;
            let after = after.trim_start();
            let (value, next) = if let Some(q) = after.strip_prefix('"') {
                let end = q.find('"')?;
                (&q[..end], q[end + 1..].trim_start())
            } else {
                after.split_once(',').map_or((after, ""), |(v, n)| (v, n))
            };
            map.insert(key.trim().to_ascii_lowercase(), value.to_owned());
            rest = next.trim_start_matches(',').trim_start();
        }
        Some(Self::Bearer {
            realm: map.remove("realm")?,
            service: map.remove("service"),
            scope: map.remove("scope"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(s: &str) -> String {
        base64::engine::general_purpose::STANDARD.encode(s)
    }

    #[test]
    fn docker_config_hub_and_identity_token() {
        let text = format!(
            r#"{{"auths":{{"https://index.docker.io/v1/":{{"auth":"{}"}},"ghcr.io":{{"identitytoken":"rt"}},"x.io":{{}}}}}}"#,
            b64("u:p:w")
        );
        let c = Credentials::parse(&text).expect("credentials parse");
        assert_eq!(
            c.for_registry("docker.io"),
            Some(&Credential::Basic { user: "u".into(), pass: "p:w".into() })
        );
        assert_eq!(c.for_registry("ghcr.io"), Some(&Credential::IdentityToken("rt".into())));
        assert_eq!(c.for_registry("x.io"), None);
        assert!(!format!("{:?}", c).contains("p:w"), "secrets must not be printed");
    }

    #[test]
    fn kubernetes_secret_json_and_yaml() {
        let cfg = format!(r#"{{"auths":{{"reg:5000":{{"auth":"{}"}}}}}}"#, b64("a:b"));
        let want = Some(Credential::Basic { user: "a".into(), pass: "b".into() });
        let json = format!(r#"{{"kind":"Secret","data":{{".dockerconfigjson":"{}"}}}}"#, b64(&cfg));
        assert_eq!(
            Credentials::parse(&json).expect("credentials parse").for_registry("reg:5000").cloned(),
            want
        );
        let yaml = format!(
            "apiVersion: v1\nkind: Secret\ntype: kubernetes.io/dockerconfigjson\ndata:\n  .dockerconfigjson: \"{}\"\n",
            b64(&cfg)
        );
        assert_eq!(
            Credentials::parse(&yaml).expect("credentials parse").for_registry("reg:5000").cloned(),
            want
        );
        let string_data = format!("stringData:\n  .dockerconfigjson: '{cfg}'\n");
        assert_eq!(
            Credentials::parse(&string_data).expect("credentials parse").for_registry("reg:5000").cloned(),
            want
        );
        assert!(
            Credentials::parse("data:\n  .dockerconfigjson: |\n    {}\n")
                .expect_err("multi-line refused")
                .contains("-o json")
        );
        assert!(Credentials::parse("kind: ConfigMap\n").is_err());
    }

    #[test]
    fn challenges() {
        assert_eq!(Challenge::parse("Basic realm=\"registry\""), Some(Challenge::Basic));
        assert_eq!(
            Challenge::parse(
                r#"Bearer realm="https://auth.example/token",service="reg",scope="repository:a/b:pull,push""#
            ),
            Some(Challenge::Bearer {
                realm: "https://auth.example/token".into(),
                service: Some("reg".into()),
                scope: Some("repository:a/b:pull,push".into())
            })
        );
        assert_eq!(
            Challenge::parse("Bearer realm=https://t/x, service=s"),
            Some(Challenge::Bearer { realm: "https://t/x".into(), service: Some("s".into()), scope: None })
        );
        assert_eq!(Challenge::parse("Bearer service=\"no realm\""), None);
        assert_eq!(Challenge::parse("Negotiate abc"), None);
    }
}
