//! The agent's verification options (`--sbom`, `--sbom-rules`,
//! `--sbom-store`, attestations, registry, `--host-baseline`, ...) and the
//! container source they build: which baselines are asked, in which
//! order, and how the registry is reached.

use std::{path::PathBuf, sync::Arc};

use crate::{
    attribution::{containerd::Containerd, resolver::StateRoot, runtime::Runtimes},
    baseline::{
        BaselineSource, Baselines,
        rules::{Rules, SbomRule},
        rules_file::RulesFile,
        store::Store,
    },
    verify::source::{Source, SourceConfig},
};

/// Options of `verifier agent` for drift verification. Verification is on
/// when `--images` or `--sbom-store` is given.
#[derive(Debug, Clone, clap::Args)]
pub struct VerificationArgs {
    /// Verify containers whose image name, image digest, container id or
    /// name matches PATTERN (`*` wildcards) against the SBOM FILE (any
    /// format `verifier sbom` reads). Repeatable; first match wins.
    #[arg(long = "sbom", value_name = "PATTERN=FILE")]
    pub sboms: Vec<SbomRule>,

    /// The same rules from a file, one `PATTERN=FILE` per line (`#`
    /// comments; relative FILEs are relative to the rules file), after
    /// any `--sbom`. Re-read when it changes: mount it from a ConfigMap.
    #[arg(long, value_name = "FILE")]
    pub sbom_rules: Option<PathBuf>,

    /// Directory of SBOMs keyed by image digest: `DIR/sha256-<hex>/` (every
    /// file in it, merged) or `DIR/sha256-<hex>.<ext>`. Re-read when a
    /// file changes.
    #[arg(long, value_name = "DIR")]
    pub sbom_store: Option<PathBuf>,

    /// Use the SBOM inside a signed attestation FILE (DSSE envelope or
    /// Sigstore bundle) for images matching PATTERN, only once it verifies
    /// under `--trust` for the image digest the runtime reports; a rejected
    /// one is logged with the failed check and never read. Before `--sbom`.
    #[arg(long = "attestation", value_name = "PATTERN=FILE", requires = "trust")]
    pub attestations: Vec<crate::baseline::attested::AttestationRule>,

    /// The trust policy for `--attestation` (TOML; see docs/trust.md).
    #[arg(long, value_name = "FILE")]
    pub trust: Option<PathBuf>,

    /// Fetch signed SBOM attestations from each image's registry (OCI
    /// referrers, cosign `.att`, BuildKit) when its container appears, and
    /// use one once it verifies under `--trust`; cached on disk by digest,
    /// so each image is fetched once (docs/registry.md). After
    /// `--attestation`, before `--sbom`.
    #[arg(long, requires = "trust")]
    pub registry_attestations: bool,

    /// Registry credentials for `--registry-attestations`: Docker
    /// config.json or a kubernetes.io/dockerconfigjson Secret file.
    #[arg(long, value_name = "FILE")]
    pub registry_auth: Option<PathBuf>,

    /// Extra CA certificates (PEM) for registries, besides the system roots.
    #[arg(long, value_name = "FILE")]
    pub registry_ca: Option<PathBuf>,

    /// Speak plain HTTP to this registry (HOST[:PORT]); repeatable.
    #[arg(long, value_name = "HOST")]
    pub insecure_registry: Vec<String>,

    /// Attestation cache directory for `--registry-attestations`.
    #[arg(long, value_name = "DIR", default_value = verifier_registry::DEFAULT_CACHE_DIR)]
    pub registry_cache: PathBuf,

    /// Never contact a registry: use the attestation cache only.
    #[arg(long)]
    pub registry_offline: bool,

    /// containerd's API socket, for the image of containerd containers.
    #[arg(long, default_value = crate::attribution::containerd::DEFAULT_SOCKET, value_name = "PATH")]
    pub containerd_socket: PathBuf,

    /// Threads hashing executed files.
    #[arg(long, default_value_t = 2, value_name = "N")]
    pub hash_workers: usize,

    /// Execs waiting to be hashed; past this they are reported
    /// `unverifiable` (never passed).
    #[arg(long, default_value_t = 1024, value_name = "N")]
    pub hash_queue: usize,

    /// Files larger than this are not hashed (reported `unverifiable`).
    #[arg(long, default_value_t = 256 << 20, value_name = "BYTES")]
    pub max_hash_bytes: u64,

    /// How long a new container's execs wait for its image to be
    /// resolved before they are reported `unverifiable`.
    #[arg(long, default_value_t = 2000, value_name = "MS")]
    pub resolve_wait_ms: u64,

    /// Do not let the kernel answer execs of files already verified (every
    /// exec then goes through userspace; for measuring).
    #[arg(long)]
    pub no_fast_path: bool,

    /// Also judge the host's own processes (execs and executable mappings
    /// outside containers) against the host baseline: `dpkg` (the
    /// package database, MD5 per file: weak, and said so), `sbom:FILE`
    /// (an SBOM of the host), or `off`. Repeatable; sources are merged.
    /// The database is read again after each package transaction.
    #[arg(long = "host-baseline", value_name = "dpkg|sbom:FILE|off", default_value = "off")]
    pub host_baseline: Vec<crate::baseline::host::HostSpec>,
}

impl VerificationArgs {
    pub fn enabled(&self) -> bool {
        !self.sboms.is_empty()
            || self.sbom_store.is_some()
            || self.sbom_rules.is_some()
            || !self.attestations.is_empty()
            || self.registry_attestations
            || self.judges_host()
    }

    /// Whether `--host-baseline` names a source.
    pub fn judges_host(&self) -> bool {
        !crate::baseline::host::sources_of(&self.host_baseline).is_empty()
    }
}

/// Builds the container source from the agent's options: the SBOM
/// sources in order of precedence (`--sbom`, `--sbom-rules`,
/// `--sbom-store`) and the runtimes' state.
pub(crate) fn source(args: &VerificationArgs, state_roots: Vec<StateRoot>) -> Result<Arc<Source>, String> {
    let containerd = Containerd::new(args.containerd_socket.clone(), tokio::runtime::Handle::current());
    let mut sources: Vec<Box<dyn BaselineSource>> = Vec::new();
    let mut trust = None;
    if let Some(p) = &args.trust {
        let policy = verifier_attest::TrustPolicy::load(p).map_err(|e| e.to_string())?;
        let cache: PathBuf = crate::baseline::attested::CACHE_DIR.into();
        sources.push(Box::new(crate::baseline::attested::Attested::new(
            args.attestations.clone(),
            policy.clone(),
            cache.clone(),
        )));
        if args.registry_attestations {
            let fetcher = registry_fetcher(args).map_err(|e| e.to_string())?;
            let handle = tokio::runtime::Handle::current();
            sources.push(Box::new(crate::baseline::registry::RegistryAttestations::new(
                fetcher,
                handle,
                policy.clone(),
                cache,
            )));
        }
        trust = Some(policy);
    }
    sources.push(Box::new(Rules::checked(args.sboms.clone())?));
    if let Some(p) = &args.sbom_rules {
        sources.push(Box::new(RulesFile::open(p)?));
    }
    if let Some(store) = &args.sbom_store {
        sources.push(Box::new(Store(store.clone())));
    }
    Ok(Arc::new(Source::new(SourceConfig {
        runtimes: Runtimes {
            state_roots,
            containerd: Some(Arc::new(containerd)),
            containerd_state: "/run/containerd".into(),
        },
        baselines: match trust {
            Some(policy) => Baselines::new(sources).with_policy(policy),
            None => Baselines::new(sources),
        },
        proc_root: "/proc".into(),
    })))
}

/// The registry attestation fetcher from the agent's options.
fn registry_fetcher(args: &VerificationArgs) -> anyhow::Result<verifier_registry::Fetcher> {
    let credentials = match &args.registry_auth {
        Some(p) => verifier_registry::Credentials::load(p)?,
        None => verifier_registry::Credentials::default(),
    };
    Ok(verifier_registry::Fetcher::new(verifier_registry::FetcherConfig {
        client: verifier_registry::ClientOptions {
            credentials,
            extra_ca: args.registry_ca.clone(),
            insecure: args.insecure_registry.clone(),
            ..Default::default()
        },
        cache_dir: Some(args.registry_cache.clone()),
        offline: args.registry_offline,
        ..Default::default()
    })?)
}
