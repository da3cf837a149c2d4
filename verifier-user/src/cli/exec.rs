//! `verifier exec`: the options of a watched build step.

use std::{ffi::OsString, path::PathBuf, process::ExitCode};

use crate::{
    baseline::host::{HostSpec, sources_of},
    buildrec::{self, ExecConfig},
};

/// Options of `verifier exec`.
#[derive(Debug, clap::Args)]
pub struct ExecArgs {
    /// The host baseline every exec and library of the step is judged
    /// against: `dpkg` (the host's package database, MD5 per file: weak,
    /// and said so in the record) or `sbom:FILE` (an SBOM of the host).
    /// Repeatable; the sources are merged.
    #[arg(long = "host-baseline", value_name = "dpkg|sbom:FILE", default_value = "dpkg")]
    pub host_baseline: Vec<HostSpec>,

    /// Write the build record (JSON, docs/schemas/build-record.schema.json) here.
    #[arg(long, value_name = "FILE")]
    pub record: Option<PathBuf>,

    /// Write the record as an in-toto Statement v1 (predicate type
    /// https://verifier.dev/build-record/v1) here.
    #[arg(long, value_name = "FILE")]
    pub statement: Option<PathBuf>,

    /// A file the build produced, named with its SHA-256 as a subject of
    /// the statement. Repeatable.
    #[arg(long = "subject", value_name = "FILE")]
    pub subjects: Vec<PathBuf>,

    /// Sign the statement with this PEM private key (unencrypted PKCS#8
    /// or SEC1; P-256 or Ed25519): the --statement file is then a DSSE
    /// envelope. Check it with `verifier sbom verify FILE --key PUB.pem
    /// --image-digest sha256:<a subject's digest> --predicate-type
    /// https://verifier.dev/build-record/v1`. Read before the build runs.
    #[arg(long, value_name = "PEM")]
    pub sign_key: Option<PathBuf>,

    /// Verdicts that fail the step (exit 3 when the command itself
    /// succeeded): any of unknown-binary, modified-binary, fileless,
    /// unverifiable, relocated-binary, sbom-gap, and build-output (an
    /// unknown binary the build made below --build-dir). Comma-separated;
    /// empty: never fail on verdicts.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "unknown-binary,modified-binary,fileless",
        value_name = "VERDICTS"
    )]
    pub fail_on: Vec<String>,

    /// Where the build writes its own outputs (default: the current
    /// directory): unknown binaries made there during the step are marked
    /// build outputs, not counted as drift.
    #[arg(long, value_name = "DIR")]
    pub build_dir: Option<PathBuf>,

    /// Threads hashing executed files.
    #[arg(long, default_value_t = 2, value_name = "N")]
    pub hash_workers: usize,

    /// Files larger than this are not hashed (judged by path alone).
    #[arg(long, default_value_t = 512 << 20, value_name = "BYTES")]
    pub max_hash_bytes: u64,

    /// Ring buffer size in bytes (power of two, multiple of 4096).
    #[arg(long, default_value_t = 8 << 20, value_name = "BYTES")]
    pub ring_bytes: u32,

    /// Kernel BTF to take struct offsets from.
    #[arg(long, default_value = verifier_sensor::btf::VMLINUX_BTF, value_name = "FILE")]
    pub btf: PathBuf,

    /// The build step and its arguments (after `--`).
    #[arg(required = true, trailing_var_arg = true, value_name = "COMMAND")]
    pub command: Vec<OsString>,
}

const VERDICTS: &[&str] = &[
    "unknown-binary",
    "modified-binary",
    "fileless",
    "unverifiable",
    "relocated-binary",
    "sbom-gap",
    "build-output",
];

/// Runs `verifier exec`.
pub(crate) fn run(args: ExecArgs) -> anyhow::Result<ExitCode> {
    let fail_on: Vec<String> = args.fail_on.into_iter().filter(|v| !v.is_empty()).collect();
    if let Some(v) = fail_on.iter().find(|v| !VERDICTS.contains(&v.as_str())) {
        anyhow::bail!("--fail-on {v}: not a verdict; use any of {}", VERDICTS.join(", "));
    }
    let host = sources_of(&args.host_baseline);
    if host.is_empty() {
        anyhow::bail!(
            "--host-baseline off: `verifier exec` judges against the host baseline; give dpkg or sbom:FILE"
        );
    }
    let cwd = std::env::current_dir()?;
    let build_dir = args.build_dir.map_or(cwd.clone(), |d| cwd.join(d));
    let cfg = ExecConfig {
        command: args.command,
        host,
        record: args.record,
        statement: args.statement,
        subjects: args.subjects,
        sign_key: args.sign_key,
        fail_on,
        build_dir: std::fs::canonicalize(&build_dir).unwrap_or(build_dir),
        btf: args.btf,
        ring_bytes: args.ring_bytes,
        hash_workers: args.hash_workers,
        max_hash_bytes: args.max_hash_bytes,
    };
    match buildrec::run(&cfg) {
        Ok(status) => Ok(ExitCode::from(status)),
        Err(e) => {
            eprintln!("verifier exec: {e:#}");
            Ok(ExitCode::from(buildrec::EXIT_SETUP))
        }
    }
}

pub(crate) const EXAMPLES: &str = "\
Examples:
  verifier exec -- make -j2
      the build, judged against the host's dpkg database; a summary on stderr
  verifier exec --record build.json --statement build.intoto.json --subject out/app -- make
      the record as JSON and as an in-toto statement over the output
  verifier exec --statement build.dsse.json --subject out/app --sign-key build.pem -- make
      the statement signed (DSSE), verifiable with the public key
  verifier exec --fail-on unknown-binary,modified-binary,build-output -- ./ci.sh
      also fail when the build runs a binary it made itself
  verifier exec --host-baseline sbom:/etc/host.spdx.json -- make
      a host SBOM instead of the package database

Record: docs/build-hosts.md, docs/schemas/build-record.schema.json.";
