//! A read-only OCI distribution client: manifests, blobs and the referrers
//! API, with Basic and Bearer authentication.
//!
//! HTTP is `reqwest` on rustls (with ring, so no C toolchain is needed)
//! and the system's roots through rustls-native-certs, plus an extra CA
//! file for a private registry. The workspace's hyper-util/tower stack is
//! there for tonic's gRPC over a Unix socket; doing TLS, redirects to blob
//! storage, and timeouts on top of it would rewrite what reqwest already
//! is. Plain HTTP is used only for hosts named as insecure.
//!
//! Every response is bounded (`max_bytes`) and every request has a
//! timeout; content fetched by digest is checked against that digest
//! before anything else sees it.

use std::{collections::HashMap, path::PathBuf, sync::Mutex, time::Duration};

use base64::Engine as _;
use reqwest::{StatusCode, header};

use crate::{
    auth::{Challenge, Credential, Credentials},
    manifest::{ACCEPT, Manifest, OCI_INDEX},
    reference::{Digest, ImageRef},
};

/// Errors from talking to a registry.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("registry CA file {path}: {why} (give a PEM file of one or more certificates)")]
    Ca { path: String, why: String },
    #[error("building the HTTP client: {0}")]
    Client(#[source] reqwest::Error),
    #[error(
        "GET {url}: {source} (is the registry up and reachable? plain HTTP needs --insecure-registry HOST)"
    )]
    Http { url: String, source: reqwest::Error },
    #[error("GET {url}: HTTP {status}: {body}")]
    Status { url: String, status: u16, body: String },
    #[error(
        "GET {url}: unauthorized ({why}); give credentials with --auth FILE (Docker config.json or a pull secret)"
    )]
    Unauthorized { url: String, why: String },
    #[error("GET {url}: response larger than {limit} bytes, not read")]
    TooLarge { url: String, limit: u64 },
    #[error("GET {url}: content digest is {got}, expected {expected}: refusing it")]
    DigestMismatch { url: String, expected: String, got: String },
    #[error("GET {url}: not a manifest: {why}")]
    BadManifest { url: String, why: String },
    #[error("bearer token from {realm}: {why}")]
    Token { realm: String, why: String },
}

/// How to reach registries.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    pub credentials: Credentials,
    /// Extra CA certificates (PEM), trusted besides the system roots.
    pub extra_ca: Option<PathBuf>,
    /// Registries (`host[:port]`) spoken to over plain HTTP.
    pub insecure: Vec<String>,
    /// Timeout of one HTTP request, connection included.
    pub request_timeout: Duration,
    /// Largest manifest or blob read.
    pub max_bytes: u64,
}

impl Default for ClientOptions {
    fn default() -> Self {
        Self {
            credentials: Credentials::default(),
            extra_ca: None,
            insecure: Vec::new(),
            request_timeout: Duration::from_secs(10),
            max_bytes: 64 << 20,
        }
    }
}

pub(crate) struct Client {
    http: reqwest::Client,
    opts: ClientOptions,
    /// `Authorization` values by (registry, repository), learned from challenges.
    auth: Mutex<HashMap<(String, String), String>>,
}

impl Client {
    pub(crate) fn new(opts: ClientOptions) -> Result<Self, RegistryError> {
        let mut b = reqwest::Client::builder()
            .use_rustls_tls()
            .tls_built_in_native_certs(true)
            .timeout(opts.request_timeout)
            .connect_timeout(opts.request_timeout.min(Duration::from_secs(5)))
            .user_agent(concat!("verifier-registry/", env!("CARGO_PKG_VERSION")));
        if let Some(path) = &opts.extra_ca {
            let ca = |why: String| RegistryError::Ca { path: path.display().to_string(), why };
            let pem = std::fs::read(path).map_err(|e| ca(e.to_string()))?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| ca(e.to_string()))?;
            if certs.is_empty() {
                return Err(ca("no certificate in it".to_owned()));
            }
            for c in certs {
                b = b.add_root_certificate(c);
            }
        }
        Ok(Self { http: b.build().map_err(RegistryError::Client)?, opts, auth: Mutex::new(HashMap::new()) })
    }

    fn url(&self, r: &ImageRef, path: &str) -> String {
        let scheme = if self.opts.insecure.iter().any(|h| h == &r.registry || h == r.api_host()) {
            "http"
        } else {
            "https"
        };
        format!("{scheme}://{}/v2/{}/{path}", r.api_host(), r.repository)
    }

    /// GET with the learned authorization; on a 401 answers the challenge
    /// once and retries. `Ok(None)` for 404.
    async fn get(
        &self,
        r: &ImageRef,
        path: &str,
        accept: &[&str],
    ) -> Result<Option<(Vec<u8>, Option<String>)>, RegistryError> {
        let url = self.url(r, path);
        let key = (r.registry.clone(), r.repository.clone());
        for attempt in 0..2 {
            let mut req = self.http.get(&url);
            if !accept.is_empty() {
                req = req.header(header::ACCEPT, accept.join(", "));
            }
            let known = self.auth.lock().ok().and_then(|m| m.get(&key).cloned());
            if let Some(a) = known {
                req = req.header(header::AUTHORIZATION, a);
            }
            let resp = req.send().await.map_err(|source| RegistryError::Http { url: url.clone(), source })?;
            match resp.status() {
                StatusCode::NOT_FOUND => return Ok(None),
                StatusCode::UNAUTHORIZED if attempt == 0 => {
                    let challenge = resp
                        .headers()
                        .get(header::WWW_AUTHENTICATE)
                        .and_then(|v| v.to_str().ok())
                        .and_then(Challenge::parse)
                        .ok_or_else(|| RegistryError::Unauthorized {
                            url: url.clone(),
                            why: "no usable WWW-Authenticate challenge".into(),
                        })?;
                    let value = self.answer(r, &url, &challenge).await?;
                    if let Ok(mut m) = self.auth.lock() {
                        m.insert(key.clone(), value);
                    }
                }
                StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
                    return Err(RegistryError::Unauthorized { url, why: "credentials refused".into() });
                }
                s if s.is_success() => {
                    let ctype = resp
                        .headers()
                        .get(header::CONTENT_TYPE)
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_owned);
                    return Ok(Some((self.read(&url, resp).await?, ctype)));
                }
                s => {
                    let body = self.read(&url, resp).await.unwrap_or_default();
                    let body = String::from_utf8_lossy(&body[..body.len().min(300)]).into_owned();
                    return Err(RegistryError::Status { url, status: s.as_u16(), body });
                }
            }
        }
        Err(RegistryError::Unauthorized {
            url,
            why: "still unauthorized after answering the challenge".into(),
        })
    }

    async fn read(&self, url: &str, mut resp: reqwest::Response) -> Result<Vec<u8>, RegistryError> {
        let limit = self.opts.max_bytes;
        let too_large = || RegistryError::TooLarge { url: url.to_owned(), limit };
        if resp.content_length().is_some_and(|n| n > limit) {
            return Err(too_large());
        }
        let mut out = Vec::new();
        while let Some(chunk) =
            resp.chunk().await.map_err(|source| RegistryError::Http { url: url.to_owned(), source })?
        {
            if (out.len() + chunk.len()) as u64 > limit {
                return Err(too_large());
            }
            out.extend_from_slice(&chunk);
        }
        Ok(out)
    }

    /// The `Authorization` value that answers `challenge`.
    async fn answer(&self, r: &ImageRef, url: &str, challenge: &Challenge) -> Result<String, RegistryError> {
        let cred = self.opts.credentials.for_registry(&r.registry);
        match (challenge, cred) {
            (Challenge::Basic, Some(Credential::Basic { user, pass })) => Ok(basic(user, pass)),
            (Challenge::Basic, _) => Err(RegistryError::Unauthorized {
                url: url.to_owned(),
                why: format!("Basic auth asked and no user:password for {}", r.registry),
            }),
            (Challenge::Bearer { realm, service, scope }, cred) => {
                let scope = scope.clone().unwrap_or_else(|| format!("repository:{}:pull", r.repository));
                self.token(realm, service.as_deref(), &scope, cred).await.map(|t| format!("Bearer {t}"))
            }
        }
    }

    /// The Docker token flow: GET realm (Basic credentials if any), or an
    /// OAuth2 refresh-token POST for an identity token.
    async fn token(
        &self,
        realm: &str,
        service: Option<&str>,
        scope: &str,
        cred: Option<&Credential>,
    ) -> Result<String, RegistryError> {
        let err = |why: String| RegistryError::Token { realm: realm.to_owned(), why };
        let mut params = vec![("scope", scope)];
        if let Some(s) = service {
            params.push(("service", s));
        }
        let req = match cred {
            Some(Credential::IdentityToken(t)) => {
                params.extend([
                    ("grant_type", "refresh_token"),
                    ("refresh_token", t.as_str()),
                    ("client_id", "verifier"),
                ]);
                self.http.post(realm).form(&params)
            }
            Some(Credential::Basic { user, pass }) => {
                self.http.get(realm).query(&params).header(header::AUTHORIZATION, basic(user, pass))
            }
            None => self.http.get(realm).query(&params),
        };
        let resp = req.send().await.map_err(|e| err(e.to_string()))?;
        if !resp.status().is_success() {
            return Err(err(format!("HTTP {} (check the credentials for this registry)", resp.status())));
        }
        let body = self.read(realm, resp).await?;
        let v: serde_json::Value =
            serde_json::from_slice(&body).map_err(|e| err(format!("not JSON: {e}")))?;
        v.get("token")
            .or_else(|| v.get("access_token"))
            .and_then(|t| t.as_str())
            .map(str::to_owned)
            .ok_or_else(|| err("no token in the answer".to_owned()))
    }

    /// A manifest or index by tag or digest: parsed, raw, and its digest
    /// (checked when asked for by digest). `Ok(None)` when absent.
    pub(crate) async fn manifest(
        &self,
        r: &ImageRef,
        reference: &str,
    ) -> Result<Option<(Manifest, Vec<u8>, Digest)>, RegistryError> {
        let path = format!("manifests/{reference}");
        let Some((bytes, ctype)) = self.get(r, &path, ACCEPT).await? else { return Ok(None) };
        let url = self.url(r, &path);
        let digest = Digest::of(&bytes);
        if reference.starts_with("sha256:") && digest.as_str() != reference {
            return Err(RegistryError::DigestMismatch {
                url,
                expected: reference.to_owned(),
                got: digest.to_string(),
            });
        }
        let mut m: Manifest = serde_json::from_slice(&bytes)
            .map_err(|e| RegistryError::BadManifest { url, why: e.to_string() })?;
        if m.media_type.is_none() {
            m.media_type = ctype.map(|c| c.split(';').next().unwrap_or_default().trim().to_owned());
        }
        Ok(Some((m, bytes, digest)))
    }

    /// The OCI 1.1 referrers of `digest`, or `Ok(None)` when the registry
    /// has no referrers API (404: use the tag schema instead).
    pub(crate) async fn referrers(
        &self,
        r: &ImageRef,
        digest: &Digest,
    ) -> Result<Option<Manifest>, RegistryError> {
        let path = format!("referrers/{digest}");
        let Some((bytes, _)) = self.get(r, &path, &[OCI_INDEX]).await? else { return Ok(None) };
        let m = serde_json::from_slice(&bytes)
            .map_err(|e| RegistryError::BadManifest { url: self.url(r, &path), why: e.to_string() })?;
        Ok(Some(m))
    }

    /// A blob, checked against its digest.
    pub(crate) async fn blob(&self, r: &ImageRef, digest: &Digest) -> Result<Vec<u8>, RegistryError> {
        let path = format!("blobs/{digest}");
        let url = self.url(r, &path);
        let bytes = self
            .get(r, &path, &[])
            .await?
            .ok_or_else(|| RegistryError::Status {
                url: url.clone(),
                status: 404,
                body: "blob unknown".into(),
            })?
            .0;
        let got = Digest::of(&bytes);
        if &got != digest {
            return Err(RegistryError::DigestMismatch {
                url,
                expected: digest.to_string(),
                got: got.to_string(),
            });
        }
        Ok(bytes)
    }
}

fn basic(user: &str, pass: &str) -> String {
    format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}")))
}

#[cfg(test)]
#[path = "client_tests.rs"]
mod tests;
