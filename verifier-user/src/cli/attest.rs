//! `verifier sbom verify`: checks one signed SBOM attestation offline and
//! says what was verified or why it was refused.
//!
//! Exit codes: 0 verified (the SBOM is written to `--out` if given), 1
//! rejected (the failed check is printed: `signature`, `identity`,
//! `subject-digest`, `predicate-type`, `tlog`, `expired`, `unsigned`,
//! `malformed`), 2 the verifier's own inputs (key, policy, trusted root,
//! attestation file) could not be read.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use clap::Args;

use verifier_attest::policy::{Identity, SubjectMatch, TrustedKey};
use verifier_attest::{PublicKey, SignedBy, Trust, TrustPolicy, TrustedRoot};

#[derive(Debug, Args)]
#[command(after_help = "Examples:
  verifier sbom verify app.att.json --image-digest sha256:ab12... --key cosign.pub --out app.spdx.json
  verifier sbom verify app.sigstore.json --image-digest sha256:ab12... \\
      --trusted-root trusted_root.json \\
      --certificate-oidc-issuer https://token.actions.githubusercontent.com \\
      --certificate-identity-regexp '^https://github.com/example/app/'
  verifier sbom verify app.sigstore.json --image-digest sha256:ab12... --trust /etc/verifier/trust.toml \\
      --image registry.example/app:1.2

Exit codes: 0 verified, 1 rejected (the failed check is named), 2 an input could not be read.")]
pub struct VerifyArgs {
    /// The attestation: a DSSE envelope (cosign `.att` content, in-toto
    /// `.intoto.jsonl`) or a Sigstore bundle v0.1-v0.3.
    pub attestation: PathBuf,
    /// The image's digest, `sha256:<hex>`: its manifest digest, its index
    /// digest, or both (repeat the flag); a statement subject must match one.
    #[arg(long = "image-digest", required = true)]
    pub image_digests: Vec<String>,
    /// A trusted PEM public key (cosign.pub); repeat for several.
    #[arg(long = "key", conflicts_with = "trust")]
    pub keys: Vec<PathBuf>,
    /// A trust policy (TOML, see docs/trust.md); the rule is chosen by
    /// `--image` or else by the digest.
    #[arg(long)]
    pub trust: Option<PathBuf>,
    /// The image name to choose the policy rule by.
    #[arg(long, requires = "trust")]
    pub image: Option<String>,
    /// Keyless: the Sigstore trusted_root.json to verify the certificate
    /// chain and the log evidence against.
    #[arg(long, conflicts_with = "trust")]
    pub trusted_root: Option<PathBuf>,
    /// Keyless: the certificate subject (email or URI) that must have signed.
    #[arg(long, requires = "trusted_root", requires = "certificate_oidc_issuer")]
    pub certificate_identity: Option<String>,
    /// Keyless: a regular expression the certificate subject must match.
    #[arg(
        long,
        requires = "trusted_root",
        requires = "certificate_oidc_issuer",
        conflicts_with = "certificate_identity"
    )]
    pub certificate_identity_regexp: Option<String>,
    /// Keyless: the OIDC issuer that must have vouched for the subject.
    #[arg(long, requires = "trusted_root")]
    pub certificate_oidc_issuer: Option<String>,
    /// Accept these predicate types too (exact URI, or `spdx`, `cyclonedx`,
    /// `cosign-custom`); SPDX and CycloneDX are always accepted.
    #[arg(long = "predicate-type")]
    pub predicate_types: Vec<String>,
    /// Write the verified SBOM document here.
    #[arg(long, short)]
    pub out: Option<PathBuf>,
}

/// Runs `verifier sbom verify`.
pub(crate) fn run(args: &VerifyArgs) -> anyhow::Result<ExitCode> {
    let mut trust = trust_of(args)?;
    trust.predicate_types.extend(args.predicate_types.iter().cloned());
    let bytes = std::fs::read(&args.attestation)
        .with_context(|| format!("cannot read {}", args.attestation.display()))?;
    let digests: Vec<&str> = args.image_digests.iter().map(String::as_str).collect();
    let started = std::time::Instant::now();
    let result = verifier_attest::verify(&bytes, &digests, &trust);
    let took = started.elapsed();
    match result {
        Ok(v) => {
            println!("verified: {}", args.attestation.display());
            match &v.signed_by {
                SignedBy::Key { name, keyid } => println!("  signer:         key {name} (keyid {keyid})"),
                SignedBy::Identity { subject, issuer } => {
                    println!("  signer:         {subject} (issuer {issuer})")
                }
            }
            println!("  subject:        {}", v.subject);
            println!("  predicate type: {}", v.predicate_type);
            if let Some(i) = v.tlog_index {
                println!("  tlog index:     {i}");
            }
            if let Some(t) = v.signed_time {
                println!("  signed at:      {}", verifier_sbom::time::rfc3339(t));
            }
            println!("  checked in:     {:.2} ms", took.as_secs_f64() * 1e3);
            if let Some(out) = &args.out {
                std::fs::write(out, &v.document)
                    .with_context(|| format!("cannot write {}", out.display()))?;
                println!("  SBOM written:   {}", out.display());
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(r) => {
            println!("rejected: {}", args.attestation.display());
            println!("  check:  {}", r.check);
            println!("  detail: {}", r.detail);
            println!("  the SBOM it carries must not be used for image {}", digests.join(" / "));
            Ok(ExitCode::from(1))
        }
    }
}

fn trust_of(args: &VerifyArgs) -> anyhow::Result<Trust> {
    if let Some(path) = &args.trust {
        let policy = TrustPolicy::load(path)?;
        let keys: Vec<&str> = args
            .image
            .iter()
            .map(String::as_str)
            .chain(args.image_digests.iter().map(String::as_str))
            .collect();
        let rule = policy
            .rule_for(|p| keys.iter().any(|k| crate::baseline::rules::glob_match(p, k)))
            .with_context(|| {
                format!(
                    "no [[image]] of {} matches {}: add one, or give --image",
                    path.display(),
                    keys.join(", ")
                )
            })?;
        return Ok(rule.trust.clone());
    }
    let mut keys = Vec::new();
    for path in &args.keys {
        let pem = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
        let key = PublicKey::from_pem(&pem)
            .map_err(|message| verifier_attest::AttestError::Key { path: path.clone(), message })?;
        keys.push(TrustedKey { name: path.display().to_string(), key });
    }
    let mut identities = Vec::new();
    if let Some(root_path) = &args.trusted_root {
        let root = Arc::new(TrustedRoot::load(root_path)?);
        let subject = match (&args.certificate_identity, &args.certificate_identity_regexp) {
            (Some(s), _) => Some(SubjectMatch::Exact(s.clone())),
            (None, Some(re)) => Some(SubjectMatch::Regex(regex_of(re)?)),
            (None, None) => None,
        };
        match (subject, &args.certificate_oidc_issuer) {
            (Some(subject), Some(issuer)) => {
                identities.push(Identity { issuer: issuer.clone(), subject, root })
            }
            _ if keys.is_empty() => anyhow::bail!(
                "--trusted-root needs --certificate-oidc-issuer and --certificate-identity (or -regexp)"
            ),
            // Keyed bundles: the root is used for their log evidence.
            _ => identities.push(Identity {
                issuer: String::new(),
                subject: SubjectMatch::Exact(String::new()),
                root,
            }),
        }
    }
    if keys.is_empty() && identities.is_empty() {
        anyhow::bail!(
            "say what to trust: --key PEM, --trust FILE, or --trusted-root with a certificate identity"
        );
    }
    let mut t = Trust::with_keys(keys);
    t.identities = identities;
    Ok(t)
}

fn regex_of(re: &str) -> anyhow::Result<verifier_attest::policy::Regex> {
    verifier_attest::policy::Regex::new(re)
        .with_context(|| format!("--certificate-identity-regexp {re:?} is not a regular expression"))
}
