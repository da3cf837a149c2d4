//! `verifier sbom fetch`: the agent's attestation fetcher from the command
//! line, to see what an image publishes, prime or inspect a node's cache,
//! or debug registry access.
//!
//! Exit codes: 0 when at least one attestation was found, 1 when none was,
//! 2 on error. `--json` prints one `verifier.sbom-fetch/v1` object
//! (docs/registry.md) instead of the table.

use std::{path::PathBuf, process::ExitCode, time::Instant};

use anyhow::Context as _;
use clap::Args;

use verifier_registry::{ClientOptions, Credentials, Fetcher, FetcherConfig};

#[derive(Debug, Args)]
#[command(after_help = "\
Examples:
  verifier sbom fetch ghcr.io/org/app:1.2@sha256:<hex> --out ./att
  verifier sbom fetch 127.0.0.1:5000/app@sha256:<hex> --insecure-registry 127.0.0.1:5000
  verifier sbom fetch REF@DIGEST --auth ~/.docker/config.json --registry-ca /etc/ssl/private-ca.pem
  verifier sbom fetch REF@DIGEST --offline     what this node's cache holds, no network

Looks, in order, at the OCI referrers API (or its sha256-<hex> tag
fallback), cosign's sha256-<hex>.att and .sbom tags, and BuildKit
attestation manifests in the image index; for an index also at its linux
platform manifest. Nothing is verified here beyond content digests.")]
pub struct FetchArgs {
    /// Image as REGISTRY/REPO[:TAG]@sha256:<hex>; the tag helps find the
    /// index of a platform-manifest digest.
    pub image: String,
    /// Write every attestation blob into this directory as sha256-<hex>.json.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Registry credentials: Docker config.json or a Kubernetes
    /// kubernetes.io/dockerconfigjson Secret (JSON or YAML).
    #[arg(long)]
    pub auth: Option<PathBuf>,
    /// Extra CA certificates (PEM) trusted besides the system roots.
    #[arg(long)]
    pub registry_ca: Option<PathBuf>,
    /// Speak plain HTTP to this registry (HOST[:PORT]); repeatable.
    #[arg(long)]
    pub insecure_registry: Vec<String>,
    /// Attestation cache directory.
    #[arg(long, default_value = verifier_registry::DEFAULT_CACHE_DIR)]
    pub cache: PathBuf,
    /// Do not use or fill the disk cache.
    #[arg(long, conflicts_with = "offline")]
    pub no_cache: bool,
    /// Never contact the registry: answer from the cache only.
    #[arg(long)]
    pub offline: bool,
    /// Print one JSON object instead of the table.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: FetchArgs) -> anyhow::Result<ExitCode> {
    let (name, digest) = args
        .image
        .rsplit_once('@')
        .context("the image needs a digest: REGISTRY/REPO[:TAG]@sha256:<hex> (see `crictl inspecti` or `ctr images ls`)")?;
    let credentials = match &args.auth {
        Some(p) => Credentials::load(p)?,
        None => Credentials::default(),
    };
    let cfg = FetcherConfig {
        client: ClientOptions {
            credentials,
            extra_ca: args.registry_ca.clone(),
            insecure: args.insecure_registry.clone(),
            ..ClientOptions::default()
        },
        cache_dir: (!args.no_cache).then(|| args.cache.clone()),
        offline: args.offline,
        ..FetcherConfig::default()
    };
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().context("starting tokio")?;
    let fetcher = Fetcher::new(cfg)?;
    let started = Instant::now();
    let fetched = rt.block_on(fetcher.lookup(name, digest))?;
    let elapsed_ms = started.elapsed().as_secs_f64() * 1e3;

    let mut written = Vec::new();
    if let Some(dir) = &args.out {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        for a in &fetched.attestations {
            let path = dir.join(format!("{}.json", a.digest.tag()));
            std::fs::write(&path, &a.bytes).with_context(|| format!("writing {}", path.display()))?;
            written.push(path);
        }
    }
    if args.json {
        let report = serde_json::json!({
            "schema": "verifier.sbom-fetch/v1",
            "image": args.image,
            "from_cache": fetched.from_cache,
            "elapsed_ms": elapsed_ms,
            "subjects": fetched.subjects,
            "attestations": fetched.attestations.iter().enumerate().map(|(i, a)| serde_json::json!({
                "source": a.source.as_str(),
                "media_type": a.media_type,
                "artifact_type": a.artifact_type,
                "predicate_type": a.predicate_type,
                "digest": a.digest,
                "size": a.bytes.len(),
                "subject_digest": a.subject_digest,
                "path": written.get(i),
            })).collect::<Vec<_>>(),
        });
        println!("{report}");
    } else {
        for s in &fetched.subjects {
            println!("subject  {} ({})", s.digest, s.kind);
        }
        for (i, a) in fetched.attestations.iter().enumerate() {
            println!(
                "{:<12} {:<40} {} {:>8} B  about {}{}{}",
                a.source.as_str(),
                a.media_type,
                a.digest,
                a.bytes.len(),
                a.subject_digest,
                a.predicate_type.as_deref().map(|p| format!("  predicate {p}")).unwrap_or_default(),
                written.get(i).map(|p| format!("  -> {}", p.display())).unwrap_or_default(),
            );
        }
        println!(
            "{} attestation(s), {} in {elapsed_ms:.1} ms",
            fetched.attestations.len(),
            if fetched.from_cache { "from the cache" } else { "from the registry" }
        );
    }
    Ok(if fetched.attestations.is_empty() { ExitCode::from(1) } else { ExitCode::SUCCESS })
}
