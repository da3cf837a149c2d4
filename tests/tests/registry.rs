//! SBOM attestations fetched from a real registry (Debian's
//! `docker-registry`, distribution 2.8) on 127.0.0.1: an image pushed with
//! skopeo, attestations attached the ways publishers attach them (an OCI
//! 1.1 artifact with a `subject`, listed under the referrers tag schema
//! because distribution 2.8 has no referrers API; cosign's `.att` tag with
//! an Ed25519-signed DSSE envelope; a BuildKit attestation manifest in the
//! image index), then found by `verifier-registry`, cached, and found
//! again with the registry stopped.

use std::{
    collections::BTreeSet,
    fs,
    path::Path,
    process::Command,
    time::{Duration, Instant},
};

use anyhow::Context as _;
use base64::Engine as _;
use serde_json::{Value, json};
use verifier_registry::{ClientOptions, Credentials, FetchError, Fetcher, FetcherConfig, Source};
use verifier_tests::{
    containerd::OciImage,
    registry::{self, DSSE, INTOTO, OCI_INDEX, Options, Registry, SPDX, Signer, sha256, statement},
};

const CYCLONEDX: &str = "application/vnd.cyclonedx+json";
const PREDICATE: &str = "https://spdx.dev/Document";

/// A one-file busybox image, pushed as `repo:v1`; returns its layout and
/// manifest descriptor.
fn push_busybox(reg: &Registry, work: &Path, repo: &str) -> anyhow::Result<Value> {
    let rootfs = work.join("rootfs");
    fs::create_dir_all(rootfs.join("bin"))?;
    fs::copy("/bin/busybox", rootfs.join("bin/busybox")).context("busybox-static (cargo xtask setup)")?;
    let image = OciImage::from_rootfs(&rootfs, &work.join("layout"), "v1", &["/bin/busybox", "sh"])?;
    let digest = reg.push_layout(&image.layout, "v1", repo, "v1")?;
    let bytes = reg.get_manifest(repo, &digest)?;
    assert_eq!(sha256(&bytes), digest, "skopeo's digest is the stored manifest's");
    let m: Value = serde_json::from_slice(&bytes)?;
    // umoci's manifests leave out the optional `mediaType`.
    let media_type = m["mediaType"].as_str().unwrap_or(registry::OCI_MANIFEST);
    Ok(json!({"mediaType": media_type, "digest": digest, "size": bytes.len()}))
}

fn spdx_doc() -> anyhow::Result<Value> {
    Ok(json!({
        "spdxVersion": "SPDX-2.3", "SPDXID": "SPDXRef-DOCUMENT", "name": "app",
        "files": [{"fileName": "./bin/busybox", "SPDXID": "SPDXRef-File-1",
                   "checksums": [{"algorithm": "SHA256", "checksumValue": sha256(&fs::read("/bin/busybox")?).trim_start_matches("sha256:")}]}]
    }))
}

fn with(mut d: Value, key: &str, v: Value) -> Value {
    d[key] = v;
    d
}

/// What the publisher attached, to compare with what is found.
struct Attached {
    spdx: Vec<u8>,
    cyclonedx: Vec<u8>,
    envelope: Vec<u8>,
    statement: Vec<u8>,
    index: String,
}

/// Attaches an SBOM three ways to `subject` in `repo`, and puts an index
/// (image + BuildKit attestation manifest) at `repo:multi`.
fn attach(reg: &Registry, signer: &Signer, repo: &str, subject: &Value) -> anyhow::Result<Attached> {
    let digest = subject["digest"].as_str().context("subject digest")?;
    let tag = format!("sha256-{}", digest.trim_start_matches("sha256:"));
    let name = format!("{}/{repo}", reg.host);
    let spdx = serde_json::to_vec(&spdx_doc()?)?;

    // OCI 1.1 artifact with a subject, listed under the tag schema.
    let layer = reg.put_blob(repo, SPDX, &spdx)?;
    let art = reg.artifact(repo, Some(SPDX), &[layer], Some(subject))?;
    let art_desc = reg.put_manifest(repo, &sha256(&serde_json::to_vec(&art)?), &art)?;
    let list = json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [with(art_desc, "artifactType", SPDX.into())]});
    reg.put_manifest(repo, &tag, &list)?;

    // cosign attest: a DSSE envelope over an in-toto statement, at .att.
    let statement = statement(&name, digest, PREDICATE, spdx_doc()?);
    let envelope = signer.envelope(INTOTO, &statement)?;
    let l = reg.put_blob(repo, DSSE, &envelope)?;
    let att =
        reg.artifact(repo, None, &[with(l, "annotations", json!({"predicateType": PREDICATE}))], None)?;
    reg.put_manifest(repo, &format!("{tag}.att"), &att)?;

    // cosign attach sbom: the SBOM itself as the layer, at .sbom.
    let cyclonedx = serde_json::to_vec(
        &json!({"bomFormat": "CycloneDX", "specVersion": "1.6", "version": 1, "components": []}),
    )?;
    let l = reg.put_blob(repo, CYCLONEDX, &cyclonedx)?;
    let sbom = reg.artifact(repo, None, &[l], None)?;
    reg.put_manifest(repo, &format!("{tag}.sbom"), &sbom)?;

    // BuildKit: an attestation manifest beside the image in its index.
    let l = reg.put_blob(repo, INTOTO, &statement)?;
    let bk = reg.artifact(
        repo,
        None,
        &[with(l, "annotations", json!({"in-toto.io/predicate-type": PREDICATE}))],
        None,
    )?;
    let bk_desc = reg.put_manifest(repo, &sha256(&serde_json::to_vec(&bk)?), &bk)?;
    let bk_desc = with(
        with(bk_desc, "platform", json!({"architecture": "unknown", "os": "unknown"})),
        "annotations",
        json!({"vnd.docker.reference.type": "attestation-manifest", "vnd.docker.reference.digest": digest}),
    );
    let image_desc = with(subject.clone(), "platform", json!({"architecture": "amd64", "os": "linux"}));
    let index = json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [image_desc, bk_desc]});
    let index =
        reg.put_manifest(repo, "multi", &index)?["digest"].as_str().context("index digest")?.to_owned();
    Ok(Attached { spdx, cyclonedx, envelope, statement, index })
}

fn config(reg: &Registry, cache: Option<&Path>, offline: bool) -> FetcherConfig {
    FetcherConfig {
        client: ClientOptions {
            insecure: vec![reg.host.clone()],
            request_timeout: Duration::from_secs(5),
            ..Default::default()
        },
        cache_dir: cache.map(Path::to_path_buf),
        offline,
        ..Default::default()
    }
}

fn rt() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?)
}

#[test]
fn attestations_found_three_ways_cached_and_offline() -> anyhow::Result<()> {
    let work = tempfile::tempdir()?;
    let mut reg = Registry::start(Options::default())?;
    let repo = "team/app";
    let subject = push_busybox(&reg, work.path(), repo)?;
    let manifest = subject["digest"].as_str().context("digest")?.to_owned();
    let signer = Signer::new(work.path())?;
    let att = attach(&reg, &signer, repo, &subject)?;
    let name = format!("{}/{repo}", reg.host);
    let rt = rt()?;

    // The referrers API is absent in distribution 2.8: the client must see
    // the 404 and use the tag schema.
    let cache = work.path().join("cache");
    let fetcher = Fetcher::new(config(&reg, Some(&cache), false))?;
    let requests_before = reg.requests("GET /v2/");
    let t = Instant::now();
    let cold = rt.block_on(fetcher.lookup(&name, &att.index))?;
    let cold_ms = t.elapsed().as_secs_f64() * 1e3;
    let cold_requests = reg.requests("GET /v2/") - requests_before;
    assert!(!cold.from_cache);
    assert!(reg.requests(&format!("/referrers/{manifest}")) >= 1, "the referrers API was asked first");
    let subjects: Vec<_> = cold.subjects.iter().map(|s| (s.digest.to_string(), s.kind.as_str())).collect();
    assert_eq!(subjects, [(att.index.clone(), "index"), (manifest.clone(), "manifest")]);
    let sources: BTreeSet<_> = cold.attestations.iter().map(|a| a.source.as_str()).collect();
    assert_eq!(
        sources,
        BTreeSet::from(["tag-fallback", "cosign-att", "cosign-sbom", "buildkit"]),
        "{:#?}",
        cold.attestations
    );
    for a in &cold.attestations {
        assert_eq!(a.subject_digest.as_str(), manifest, "{:?} is about the platform manifest", a.source);
        match a.source {
            Source::TagFallback => {
                assert_eq!((a.bytes.as_slice(), a.media_type.as_str()), (att.spdx.as_slice(), SPDX))
            }
            Source::CosignSbom => {
                assert_eq!((a.bytes.as_slice(), a.media_type.as_str()), (att.cyclonedx.as_slice(), CYCLONEDX))
            }
            Source::CosignAtt => {
                assert_eq!((a.bytes.as_slice(), a.media_type.as_str()), (att.envelope.as_slice(), DSSE));
                assert!(signer.verify(&a.bytes)?, "the fetched envelope's Ed25519 signature verifies");
                let mut tampered: Value = serde_json::from_slice(&a.bytes)?;
                tampered["payload"] = base64::engine::general_purpose::STANDARD.encode(b"{}").into();
                assert!(!signer.verify(&serde_json::to_vec(&tampered)?)?, "and a changed payload does not");
            }
            Source::Buildkit => {
                assert_eq!(a.bytes, att.statement);
                assert_eq!(a.predicate_type.as_deref(), Some(PREDICATE));
            }
            other => panic!("unexpected source {other:?}"),
        }
    }

    // By the platform manifest digest, the tag leads to the index.
    let by_manifest =
        rt.block_on(Fetcher::new(config(&reg, None, false))?.lookup(&format!("{name}:multi"), &manifest))?;
    assert_eq!(by_manifest.attestations.len(), 4, "{:#?}", by_manifest.attestations);

    // Same process, second call: the cache answers.
    let t = Instant::now();
    let warm = rt.block_on(fetcher.lookup(&name, &att.index))?;
    let warm_ms = t.elapsed().as_secs_f64() * 1e3;
    assert!(warm.from_cache);
    assert_eq!(warm.attestations, cold.attestations);

    // Nothing is attached to the referrers list itself: a cached negative.
    let list = sha256(&reg.get_manifest(repo, &format!("sha256-{}", &manifest[7..]))?);
    let none = rt.block_on(fetcher.lookup(&name, &list))?;
    assert!(none.attestations.is_empty() && !none.from_cache);
    let again = rt.block_on(fetcher.lookup(&name, &list))?;
    assert!(
        again.attestations.is_empty() && again.from_cache,
        "nothing found is cached for the negative TTL"
    );

    // Eight containers of a new image at once: one discovery.
    let fresh = Fetcher::new(config(&reg, Some(&work.path().join("cache2")), false))?;
    let att_tag = format!("/manifests/sha256-{}.att", &manifest[7..]);
    let before = reg.requests(&att_tag);
    let all = rt.block_on(async {
        let calls: Vec<_> = (0..8)
            .map(|_| {
                let f = fresh.clone();
                let (n, d) = (name.clone(), att.index.clone());
                tokio::spawn(async move { f.get(&n, &d).await })
            })
            .collect();
        let mut out = Vec::new();
        for c in calls {
            out.push(c.await);
        }
        out
    });
    for r in all {
        assert_eq!(r??.len(), 4);
    }
    assert_eq!(reg.requests(&att_tag) - before, 1, "concurrent calls for one image share one fetch");

    // The registry goes away: a restarted agent (new fetcher, same cache)
    // still has the attestations, online or offline, with no network.
    reg.stop();
    for offline in [false, true] {
        let restarted_fetcher = Fetcher::new(config(&reg, Some(&cache), offline))?;
        let t = Instant::now();
        let restarted = rt.block_on(restarted_fetcher.lookup(&name, &att.index))?;
        eprintln!(
            "after restart, registry down, offline={offline}: {:.2} ms",
            t.elapsed().as_secs_f64() * 1e3
        );
        assert!(restarted.from_cache);
        assert_eq!(restarted.attestations, cold.attestations);
    }
    let unknown = format!("sha256:{}", "ab".repeat(32));
    let offline = rt.block_on(Fetcher::new(config(&reg, Some(&cache), true))?.get(&name, &unknown));
    assert!(matches!(offline, Err(FetchError::Offline { .. })), "{offline:?}");
    let down = rt.block_on(Fetcher::new(config(&reg, Some(&cache), false))?.get(&name, &unknown));
    assert!(matches!(down, Err(FetchError::Registry { .. })), "{down:?}");
    eprintln!(
        "attestation fetch against the local registry: cold {cold_ms:.1} ms ({cold_requests} requests, 4 found, 2 subjects), cached {warm_ms:.2} ms"
    );
    Ok(())
}

#[test]
fn basic_auth_from_a_pull_secret_over_tls_with_an_extra_ca() -> anyhow::Result<()> {
    let work = tempfile::tempdir()?;
    let reg = Registry::start(Options { auth: true, tls: true })?;
    let repo = "private/app";
    let subject = push_busybox(&reg, work.path(), repo)?;
    let manifest = subject["digest"].as_str().context("digest")?.to_owned();
    let signer = Signer::new(work.path())?;
    let att = attach(&reg, &signer, repo, &subject)?;
    let name = format!("{}/{repo}", reg.host);

    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let docker_config = json!({"auths": {reg.host.clone(): {"auth": b64(&format!("{}:{}", registry::USER, registry::PASSWORD))}}});
    let secret = work.path().join("pull-secret.yaml");
    fs::write(
        &secret,
        format!(
            "apiVersion: v1\nkind: Secret\ntype: kubernetes.io/dockerconfigjson\nmetadata:\n  name: regcred\ndata:\n  .dockerconfigjson: {}\n",
            b64(&docker_config.to_string())
        ),
    )?;
    let cfg = |creds: bool, ca: bool| -> anyhow::Result<FetcherConfig> {
        Ok(FetcherConfig {
            client: ClientOptions {
                credentials: if creds { Credentials::load(&secret)? } else { Credentials::default() },
                extra_ca: ca.then(|| reg.ca()),
                ..Default::default()
            },
            cache_dir: None,
            ..Default::default()
        })
    };
    let rt = rt()?;
    let found = rt.block_on(Fetcher::new(cfg(true, true)?)?.get(&name, &manifest))?;
    let sources: BTreeSet<_> = found.iter().map(|a| a.source.as_str()).collect();
    assert!(sources.contains("cosign-att") && sources.contains("tag-fallback"), "{found:#?}");
    assert!(found.iter().any(|a| a.bytes == att.envelope));

    let no_creds = rt.block_on(Fetcher::new(cfg(false, true)?)?.get(&name, &manifest));
    let msg = format!("{}", no_creds.expect_err("no credentials must fail"));
    assert!(msg.contains("unauthorized") && msg.contains("--auth"), "{msg}");
    let no_ca = rt.block_on(Fetcher::new(cfg(true, false)?)?.get(&name, &manifest));
    assert!(no_ca.is_err(), "a certificate from an unknown CA must be refused");

    // The same from the command line, into a directory.
    let out = work.path().join("out");
    let cli = Command::new(verifier_tests::agent::verifier_bin())
        .args(["sbom", "fetch", &format!("{name}@{manifest}"), "--json", "--no-cache", "--auth"])
        .arg(&secret)
        .arg("--registry-ca")
        .arg(reg.ca())
        .arg("--out")
        .arg(&out)
        .output()?;
    assert!(cli.status.success(), "{}", String::from_utf8_lossy(&cli.stderr));
    let report: Value = serde_json::from_slice(&cli.stdout)?;
    assert_eq!(report["schema"], "verifier.sbom-fetch/v1");
    let listed = report["attestations"].as_array().context("attestations")?;
    assert_eq!(listed.len(), found.len());
    for a in listed {
        let path = a["path"].as_str().context("path")?;
        assert_eq!(sha256(&fs::read(path)?), a["digest"].as_str().context("digest")?);
    }

    // What was fetched verifies with the attestation verifier, bound to the
    // image digest; the unsigned SBOMs beside it do not.
    let verify = |source: &str, digest: &str| -> anyhow::Result<i32> {
        let a = listed.iter().find(|a| a["source"] == source).context("source listed")?;
        let out = Command::new(verifier_tests::agent::verifier_bin())
            .args(["sbom", "verify"])
            .arg(a["path"].as_str().context("path")?)
            .args(["--image-digest", digest, "--key"])
            .arg(&signer.public)
            .output()?;
        eprintln!("sbom verify {source}: {}", String::from_utf8_lossy(&out.stdout).trim());
        out.status.code().context("exit code")
    };
    assert_eq!(verify("cosign-att", &manifest)?, 0, "the signed envelope verifies for the image");
    let other = format!("sha256:{}", "cd".repeat(32));
    assert_ne!(verify("cosign-att", &other)?, 0, "and not for another digest");
    assert_ne!(verify("tag-fallback", &manifest)?, 0, "an unsigned SPDX is not an attestation");
    Ok(())
}
