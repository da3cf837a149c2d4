//! A real OCI registry for the tests (Debian's `docker-registry`, the
//! CNCF distribution registry) on 127.0.0.1, optionally behind htpasswd
//! Basic auth and TLS from a CA made here with `openssl`; a minimal
//! pusher for blobs and manifests (what cosign, oras and BuildKit do when
//! they attach attestations); and a DSSE signer that signs with a real
//! Ed25519 key through `openssl pkeyutl`.
//!
//! The registry's access log (stderr) is kept, so a test can count the
//! requests a client made.

use std::{
    fs,
    net::TcpListener,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};
use base64::Engine as _;
use sha2::Digest as _;

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const DSSE: &str = "application/vnd.dsse.envelope.v1+json";
pub const INTOTO: &str = "application/vnd.in-toto+json";
pub const SPDX: &str = "application/spdx+json";

/// How to start the registry.
#[derive(Debug, Default, Clone, Copy)]
pub struct Options {
    /// htpasswd Basic auth with [`USER`] / [`PASSWORD`].
    pub auth: bool,
    /// TLS with a server certificate from a fresh CA ([`Registry::ca`]).
    pub tls: bool,
}

pub const USER: &str = "tester";
pub const PASSWORD: &str = "s3cret-pass";

fn run(cmd: &mut Command, what: &str) -> anyhow::Result<Vec<u8>> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("running {what} (cargo xtask setup installs it)"))?;
    if !out.status.success() {
        bail!("{what} failed: {}", String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(out.stdout)
}

pub fn sha256(bytes: &[u8]) -> String {
    format!("sha256:{}", hex_of(&sha2::Sha256::digest(bytes)))
}

fn hex_of(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// A running registry; stopped when dropped.
pub struct Registry {
    child: Option<Child>,
    config: PathBuf,
    pub dir: tempfile::TempDir,
    /// `127.0.0.1:PORT`
    pub host: String,
    pub opts: Options,
    http: reqwest::blocking::Client,
}

impl Registry {
    pub fn start(opts: Options) -> anyhow::Result<Self> {
        let dir = tempfile::tempdir()?;
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let host = format!("127.0.0.1:{port}");
        let mut config = format!(
            "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: {host}\n  secret: test\n",
            dir.path().join("data").display()
        );
        if opts.tls {
            make_tls(dir.path())?;
            config += &format!(
                "  tls:\n    certificate: {}\n    key: {}\n",
                dir.path().join("server.crt").display(),
                dir.path().join("server.key").display()
            );
        }
        if opts.auth {
            let line = run(Command::new("htpasswd").args(["-Bbn", USER, PASSWORD]), "htpasswd")?;
            fs::write(dir.path().join("htpasswd"), line)?;
            config += &format!(
                "auth:\n  htpasswd:\n    realm: verifier-test\n    path: {}\n",
                dir.path().join("htpasswd").display()
            );
        }
        let config_path = dir.path().join("config.yml");
        fs::write(&config_path, config)?;
        let mut http = reqwest::blocking::Client::builder().timeout(Duration::from_secs(20));
        if opts.tls {
            http = http
                .add_root_certificate(reqwest::Certificate::from_pem(&fs::read(dir.path().join("ca.crt"))?)?);
        }
        let mut reg = Self { child: None, config: config_path, dir, host, opts, http: http.build()? };
        reg.resume()?;
        Ok(reg)
    }

    /// (Re)starts the registry process on the same port and storage.
    pub fn resume(&mut self) -> anyhow::Result<()> {
        let log =
            fs::OpenOptions::new().create(true).append(true).open(self.dir.path().join("registry.log"))?;
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(&self.config)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("starting docker-registry (cargo xtask setup installs it)")?;
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if let Ok(r) = self.http.get(self.url("/v2/")).send()
                && (r.status().is_success() || r.status().as_u16() == 401)
            {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        bail!("docker-registry did not answer on {} within 15 s: {}", self.host, self.log())
    }

    /// Stops the registry (the storage stays).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("registry.log")).unwrap_or_default()
    }

    /// Requests in the access log whose line contains `needle`.
    pub fn requests(&self, needle: &str) -> usize {
        self.log().lines().filter(|l| l.contains("HTTP/1.1\"") && l.contains(needle)).count()
    }

    pub fn ca(&self) -> PathBuf {
        self.dir.path().join("ca.crt")
    }

    fn url(&self, path: &str) -> String {
        let scheme = if self.opts.tls { "https" } else { "http" };
        format!("{scheme}://{}{path}", self.host)
    }

    fn req(&self, method: reqwest::Method, path: &str) -> reqwest::blocking::RequestBuilder {
        let r = self.http.request(method, self.url(path));
        if self.opts.auth { r.basic_auth(USER, Some(PASSWORD)) } else { r }
    }

    /// Copies an OCI layout's tag into `repo:tag` with skopeo; returns the
    /// pushed manifest's digest.
    pub fn push_layout(
        &self,
        layout: &Path,
        layout_tag: &str,
        repo: &str,
        tag: &str,
    ) -> anyhow::Result<String> {
        let digest_file = self.dir.path().join("pushed.digest");
        let mut cmd = Command::new("skopeo");
        cmd.args(["copy", "--quiet", "--dest-tls-verify=false", "--digestfile"]).arg(&digest_file);
        if self.opts.auth {
            cmd.args(["--dest-creds", &format!("{USER}:{PASSWORD}")]);
        }
        cmd.arg(format!("oci:{}:{layout_tag}", layout.display()))
            .arg(format!("docker://{}/{repo}:{tag}", self.host));
        run(&mut cmd, "skopeo copy")?;
        Ok(fs::read_to_string(digest_file)?.trim().to_owned())
    }

    /// Uploads a blob (monolithic POST + PUT); returns its descriptor.
    pub fn put_blob(&self, repo: &str, media_type: &str, bytes: &[u8]) -> anyhow::Result<serde_json::Value> {
        let digest = sha256(bytes);
        let r = self.req(reqwest::Method::POST, &format!("/v2/{repo}/blobs/uploads/")).send()?;
        if r.status().as_u16() != 202 {
            bail!("blob upload start: HTTP {}: {}", r.status(), r.text().unwrap_or_default());
        }
        let location = r
            .headers()
            .get("location")
            .and_then(|l| l.to_str().ok())
            .context("no upload Location")?
            .to_owned();
        let sep = if location.contains('?') { '&' } else { '?' };
        let url = if location.starts_with("http") { location.clone() } else { self.url(&location) };
        let mut put = self.http.put(format!("{url}{sep}digest={digest}")).body(bytes.to_vec());
        if self.opts.auth {
            put = put.basic_auth(USER, Some(PASSWORD));
        }
        let r = put.header("content-type", "application/octet-stream").send()?;
        if r.status().as_u16() != 201 {
            bail!("blob upload: HTTP {}: {}", r.status(), r.text().unwrap_or_default());
        }
        Ok(serde_json::json!({"mediaType": media_type, "digest": digest, "size": bytes.len()}))
    }

    /// Puts a manifest or index under `reference` (tag or digest); returns
    /// its descriptor.
    pub fn put_manifest(
        &self,
        repo: &str,
        reference: &str,
        manifest: &serde_json::Value,
    ) -> anyhow::Result<serde_json::Value> {
        let bytes = serde_json::to_vec(manifest)?;
        let media_type = manifest["mediaType"].as_str().unwrap_or(OCI_MANIFEST).to_owned();
        let r = self
            .req(reqwest::Method::PUT, &format!("/v2/{repo}/manifests/{reference}"))
            .header("content-type", &media_type)
            .body(bytes.clone())
            .send()?;
        if r.status().as_u16() != 201 {
            bail!("manifest put {reference}: HTTP {}: {}", r.status(), r.text().unwrap_or_default());
        }
        Ok(serde_json::json!({"mediaType": media_type, "digest": sha256(&bytes), "size": bytes.len()}))
    }

    /// A manifest as stored (raw bytes).
    pub fn get_manifest(&self, repo: &str, reference: &str) -> anyhow::Result<Vec<u8>> {
        let r = self
            .req(reqwest::Method::GET, &format!("/v2/{repo}/manifests/{reference}"))
            .header("accept", format!("{OCI_MANIFEST}, {OCI_INDEX}"))
            .send()?;
        if !r.status().is_success() {
            bail!("manifest get {reference}: HTTP {}", r.status());
        }
        Ok(r.bytes()?.to_vec())
    }

    /// An artifact manifest: the empty config, `layers`, and optionally a
    /// `subject` and `artifactType` (OCI 1.1).
    pub fn artifact(
        &self,
        repo: &str,
        artifact_type: Option<&str>,
        layers: &[serde_json::Value],
        subject: Option<&serde_json::Value>,
    ) -> anyhow::Result<serde_json::Value> {
        let config = self.put_blob(repo, "application/vnd.oci.empty.v1+json", b"{}")?;
        let mut m = serde_json::json!({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": config, "layers": layers});
        if let Some(t) = artifact_type {
            m["artifactType"] = t.into();
        }
        if let Some(s) = subject {
            m["subject"] = s.clone();
        }
        Ok(m)
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A CA and a server certificate for 127.0.0.1 signed by it.
fn make_tls(dir: &Path) -> anyhow::Result<()> {
    let o = |args: &[&str], what| run(Command::new("openssl").args(args).current_dir(dir), what);
    o(
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.crt",
            "-days",
            "2",
            "-subj",
            "/CN=verifier test CA",
        ],
        "openssl CA",
    )?;
    o(
        &[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=127.0.0.1",
        ],
        "openssl CSR",
    )?;
    fs::write(
        dir.join("server.ext"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )?;
    o(
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.crt",
            "-days",
            "2",
            "-extfile",
            "server.ext",
        ],
        "openssl sign",
    )?;
    Ok(())
}

/// An Ed25519 key made by openssl, signing DSSE envelopes.
pub struct Signer {
    pub key: PathBuf,
    pub public: PathBuf,
}

impl Signer {
    pub fn new(dir: &Path) -> anyhow::Result<Self> {
        let key = dir.join("signing.key");
        let public = dir.join("signing.pub");
        run(
            Command::new("openssl").args(["genpkey", "-algorithm", "ed25519", "-out"]).arg(&key),
            "openssl genpkey",
        )?;
        run(
            Command::new("openssl").args(["pkey", "-pubout", "-in"]).arg(&key).arg("-out").arg(&public),
            "openssl pkey",
        )?;
        Ok(Self { key, public })
    }

    /// DSSE pre-authentication encoding.
    pub fn pae(payload_type: &str, payload: &[u8]) -> Vec<u8> {
        let mut v = format!("DSSEv1 {} {payload_type} {} ", payload_type.len(), payload.len()).into_bytes();
        v.extend_from_slice(payload);
        v
    }

    /// A DSSE envelope (cosign's `.att` layer format) over `payload`.
    pub fn envelope(&self, payload_type: &str, payload: &[u8]) -> anyhow::Result<Vec<u8>> {
        let dir = self.key.parent().context("key dir")?;
        let pae = dir.join("pae.bin");
        fs::write(&pae, Self::pae(payload_type, payload))?;
        let sig = run(
            Command::new("openssl")
                .args(["pkeyutl", "-sign", "-rawin", "-inkey"])
                .arg(&self.key)
                .arg("-in")
                .arg(&pae),
            "openssl pkeyutl -sign",
        )?;
        let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
        Ok(serde_json::to_vec(&serde_json::json!({
            "payloadType": payload_type,
            "payload": b64(payload),
            "signatures": [{"keyid": "", "sig": b64(&sig)}],
        }))?)
    }

    /// Checks an envelope's first signature with openssl (a verifier that
    /// shares no code with the signer above).
    pub fn verify(&self, envelope: &[u8]) -> anyhow::Result<bool> {
        let e: serde_json::Value = serde_json::from_slice(envelope)?;
        let d = |k: &serde_json::Value| {
            base64::engine::general_purpose::STANDARD.decode(k.as_str().unwrap_or_default())
        };
        let payload = d(&e["payload"])?;
        let sig = d(&e["signatures"][0]["sig"])?;
        let dir = self.key.parent().context("key dir")?;
        fs::write(dir.join("vpae.bin"), Self::pae(e["payloadType"].as_str().unwrap_or_default(), &payload))?;
        fs::write(dir.join("vsig.bin"), sig)?;
        let status = Command::new("openssl")
            .args(["pkeyutl", "-verify", "-rawin", "-pubin", "-inkey"])
            .arg(&self.public)
            .arg("-in")
            .arg(dir.join("vpae.bin"))
            .arg("-sigfile")
            .arg(dir.join("vsig.bin"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()?;
        Ok(status.success())
    }
}

/// An in-toto v1 statement about `name@digest` carrying `predicate`.
pub fn statement(name: &str, digest: &str, predicate_type: &str, predicate: serde_json::Value) -> Vec<u8> {
    let hex = digest.trim_start_matches("sha256:");
    serde_json::to_vec(&serde_json::json!({
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [{"name": name, "digest": {"sha256": hex}}],
        "predicateType": predicate_type,
        "predicate": predicate,
    }))
    .unwrap_or_default()
}
