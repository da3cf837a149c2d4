//! Options and dispatch for `verifier sbom ...` and `verifier check`.
//!
//! Exit codes: `sbom generate` exits 0 on success, 2 on error; `check`
//! exits 0 when the rootfs matches its SBOMs, 1 on drift, 2 on error (so
//! CI can tell "found something" from "could not look"); `sbom inspect`
//! exits 0 when every file gives per-file strong digests, 1 when any is
//! weak or package-only, 2 when any could not be read.

use std::{
    fs,
    io::{self, Write as _},
    path::PathBuf,
    process::ExitCode,
};

use anyhow::Context as _;
use clap::{Args, Subcommand, ValueEnum};

use verifier_sbom::{
    LoadOptions,
    check::{self, CheckOptions},
    generate::{self, Format},
    inspect::{self, Inspection},
};

#[derive(Debug, Subcommand)]
pub enum SbomCommand {
    /// Generate a per-file SBOM (SHA-256 for every regular file, packages
    /// from the apk/dpkg databases) of a rootfs directory, an OCI image
    /// layout, or an image tar (OCI archive or `docker save`).
    ///
    /// Image layers are streamed and applied with their whiteouts in
    /// memory, never extracted. Symlinks to files are listed with their
    /// target's digests and marked as links; names that are not UTF-8 are
    /// skipped with a warning (SBOM JSON cannot carry them).
    Generate(GenerateArgs),
    /// Inspect what SBOM files hold: format, packages, files, digests by
    /// algorithm, what the reader could not use, and whether the file can
    /// serve runtime verification (`per-file`, `weak`, `package-only`).
    ///
    /// Reads every format the agent reads (SPDX 2 JSON / tag-value, SPDX 3,
    /// CycloneDX, Syft JSON, in-toto/DSSE, apk `installed`, dpkg
    /// `*.md5sums` or a dpkg database directory). Exit codes: 0 every file
    /// is per-file, 1 any is weak or package-only, 2 any could not be read.
    Inspect(InspectArgs),
    /// Verify a signed SBOM attestation (DSSE envelope or Sigstore bundle)
    /// offline: signature (key or keyless), transparency log, image digest,
    /// predicate type. Exit codes: 0 verified, 1 rejected, 2 input error.
    Verify(super::attest::VerifyArgs),
    /// Fetch an image's SBOM attestations from its registry (OCI referrers,
    /// cosign tags, BuildKit), through the agent's disk cache.
    ///
    /// Exit codes: 0 some found, 1 none, 2 error.
    Fetch(super::fetch::FetchArgs),
}

#[derive(Debug, Args)]
pub struct InspectArgs {
    /// SBOM files (or dpkg database directories) to inspect.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// Report format.
    #[arg(long, value_enum, default_value = "table")]
    pub format: CheckFormat,
    /// Directory prefix the SBOM paths were generated under (stripped).
    #[arg(long)]
    pub root_prefix: Option<String>,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum GenerateFormat {
    /// SPDX 2.3 JSON (SHA-1 and SHA-256 per file).
    SpdxJson,
    /// CycloneDX 1.6 JSON (SHA-256 per file).
    CyclonedxJson,
}

#[derive(Debug, Args)]
pub struct GenerateArgs {
    /// Rootfs directory, OCI image layout directory, or image tar.
    pub input: PathBuf,
    /// Output format.
    #[arg(long, value_enum, default_value = "spdx-json")]
    pub format: GenerateFormat,
    /// Write the SBOM here instead of stdout.
    #[arg(short, long)]
    pub output: Option<PathBuf>,
    /// Platform to pick from a multi-platform image (`linux/arm64`).
    /// Default: the only one, else this machine's.
    #[arg(long)]
    pub platform: Option<String>,
    /// Image name to record (default: what the image says, or the
    /// directory name for a rootfs).
    #[arg(long)]
    pub name: Option<String>,
    /// Who supplies the image, as `Name <email>` or a name: recorded as
    /// the image's supplier, which NTIA's minimum elements require
    /// (default: the distribution's `NAME` from /etc/os-release). Packages
    /// get their own supplier from their database's maintainer field.
    #[arg(long)]
    pub supplier: Option<String>,
    /// Hashing threads (default: one per core).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Never draw the progress bar (it is only drawn on a terminal anyway).
    #[arg(long)]
    pub no_progress: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CheckFormat {
    /// Human-readable table.
    Table,
    /// JSON report (schema `verifier.check/v1` or `verifier.inspect/v1`,
    /// see docs/schema.md).
    Json,
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Root filesystem directory to check.
    pub rootfs: PathBuf,
    /// SBOM to check against (repeat for several; they are merged).
    #[arg(long = "sbom", required = true, num_args = 1)]
    pub sboms: Vec<PathBuf>,
    /// Report format.
    #[arg(long, value_enum, default_value = "table")]
    pub format: CheckFormat,
    /// Directory prefix the SBOM paths were generated under (stripped).
    #[arg(long)]
    pub root_prefix: Option<String>,
    /// Hashing threads (default: one per core).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Write the report here instead of stdout.
    #[arg(short, long)]
    pub output: Option<PathBuf>,
}

pub fn run(cmd: SbomCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        SbomCommand::Generate(args) => run_generate(args),
        SbomCommand::Inspect(args) => run_inspect(&args),
        SbomCommand::Verify(args) => super::attest::run(&args),
        SbomCommand::Fetch(args) => super::fetch::run(args),
    }
}

fn run_generate(args: GenerateArgs) -> anyhow::Result<ExitCode> {
    let format = match args.format {
        GenerateFormat::SpdxJson => Format::SpdxJson,
        GenerateFormat::CyclonedxJson => Format::CycloneDxJson,
    };
    let opts = generate::Options {
        algs: format.algs(),
        platform: args.platform,
        name: args.name,
        supplier: args.supplier,
        threads: args.threads,
        progress: !args.no_progress,
    };
    let inv = generate::scan(&args.input, &opts)?;
    print_warnings(&inv.warnings);
    let created = generate::created_timestamp();
    match &args.output {
        Some(path) if fs::metadata(path).is_ok_and(|m| !m.is_file()) => {
            // A FIFO or device (`-o /dev/stdout`): write straight to it.
            let file = fs::OpenOptions::new()
                .write(true)
                .open(path)
                .with_context(|| format!("cannot open {}", path.display()))?;
            generate::write(&inv, format, &created, file)
                .with_context(|| format!("writing {}", path.display()))?;
        }
        Some(path) => {
            // Write next to the target and rename, so a failed run never
            // leaves a truncated SBOM behind.
            let tmp = path.with_extension("partial");
            let file = fs::File::create(&tmp).with_context(|| format!("cannot create {}", tmp.display()))?;
            generate::write(&inv, format, &created, file)
                .with_context(|| format!("writing {}", tmp.display()))?;
            fs::rename(&tmp, path)
                .with_context(|| format!("cannot move {} to {}", tmp.display(), path.display()))?;
        }
        None => generate::write(&inv, format, &created, io::stdout().lock())?,
    }
    let s = &inv.stats;
    eprintln!(
        "verifier: {} files, {} packages; left out: {} non-UTF-8 names, {} dangling symlinks, {} unreadable files",
        inv.files.len(),
        inv.packages.len(),
        s.non_utf8_names,
        s.dangling_symlinks,
        s.hash_errors
    );
    Ok(ExitCode::SUCCESS)
}

/// Prints warnings on stderr, at most 20, then a count.
pub(crate) fn print_warnings(warnings: &[String]) {
    let mut err = io::stderr().lock();
    for w in warnings.iter().take(20) {
        let _ = writeln!(err, "verifier: warning: {w}");
    }
    if warnings.len() > 20 {
        let _ = writeln!(err, "verifier: warning: ... and {} more", warnings.len() - 20);
    }
}

/// `verifier check`: runs the check, prints the report, picks the exit code.
pub fn run_check(args: CheckArgs) -> anyhow::Result<ExitCode> {
    let opts = CheckOptions {
        rootfs: args.rootfs,
        sboms: args.sboms,
        root_prefix: args.root_prefix,
        threads: args.threads,
    };
    let report = check::run(&opts)?;
    let mut out: Box<dyn io::Write> = match &args.output {
        Some(p) => Box::new(io::BufWriter::new(
            fs::File::create(p).with_context(|| format!("cannot create {}", p.display()))?,
        )),
        None => Box::new(io::BufWriter::new(io::stdout().lock())),
    };
    match args.format {
        CheckFormat::Table => check::write_table(&report, &mut out),
        CheckFormat::Json => serde_json::to_writer_pretty(&mut out, &report)
            .map_err(io::Error::from)
            .and_then(|()| writeln!(out)),
    }
    .and_then(|()| out.flush())
    .map_err(check::CheckError::Write)?;
    if args.format == CheckFormat::Json {
        print_warnings(&report.warnings);
    }
    Ok(check::exit_code(&report.summary))
}

/// `verifier sbom inspect`: reads each file, reports, picks the exit code.
/// A file that cannot be read is reported (and named on stderr) and the
/// others are still inspected.
fn run_inspect(args: &InspectArgs) -> anyhow::Result<ExitCode> {
    let opts = LoadOptions { root_prefix: args.root_prefix.clone(), ..LoadOptions::default() };
    let mut inputs = Vec::new();
    for path in &args.files {
        let name = path.display().to_string();
        inputs.push(match verifier_sbom::load_path(path, &opts) {
            Ok(m) => inspect::inspect(&name, &m),
            Err(err) => {
                eprintln!("verifier: error: {err}");
                inspect::failed(&name, &err)
            }
        });
    }
    let report = inspect::Report { schema: inspect::SCHEMA, inputs };
    let mut out = io::BufWriter::new(io::stdout().lock());
    match args.format {
        CheckFormat::Table => write_inspection_table(&report.inputs, &mut out),
        CheckFormat::Json => serde_json::to_writer_pretty(&mut out, &report)
            .map_err(io::Error::from)
            .and_then(|()| writeln!(out)),
    }
    .and_then(|()| out.flush())
    .context("writing the report")?;
    Ok(inspect::exit_code(&report))
}

/// One row per file, then what the reader said and what to do.
fn write_inspection_table(inputs: &[Inspection], out: &mut dyn io::Write) -> io::Result<()> {
    let width = inputs.iter().map(|i| i.file.chars().count()).max().unwrap_or(4).clamp(4, 50);
    writeln!(
        out,
        "{:<width$}  {:<24}  {:>8}  {:>7}  {:>7}  {:>7}  {:>7}  {:>7}  {:>7}  {:>5}  VERDICT",
        "FILE", "FORMAT", "PACKAGES", "FILES", "SHA256", "SHA512", "SHA1", "MD5", "NONE", "ZERO"
    )?;
    for i in inputs {
        let d = &i.digests;
        let Some(verdict) = i.usefulness.map(|u| u.name()) else {
            let dash = "-";
            writeln!(
                out,
                "{:<width$}  {dash:<24}  {dash:>8}  {dash:>7}  {dash:>7}  {dash:>7}  {dash:>7}  {dash:>7}  {dash:>7}  \
                 {dash:>5}  unreadable",
                i.file
            )?;
            continue;
        };
        writeln!(
            out,
            "{:<width$}  {:<24}  {:>8}  {:>7}  {:>7}  {:>7}  {:>7}  {:>7}  {:>7}  {:>5}  {verdict}",
            i.file,
            i.format.as_deref().unwrap_or("-"),
            i.packages,
            i.files,
            d.sha256,
            d.sha512,
            d.sha1,
            d.md5,
            d.none,
            d.placeholders,
        )?;
    }
    for i in inputs {
        let notes = i.error.iter().map(|e| ("error", e)).chain(i.warnings.iter().map(|w| ("warning", w)));
        let notes: Vec<_> = notes.chain(i.advice.iter().map(|a| ("advice", a))).collect();
        if notes.is_empty() {
            continue;
        }
        writeln!(out, "\n{}:", i.file)?;
        for (what, text) in notes {
            writeln!(out, "  {what}: {text}")?;
        }
    }
    Ok(())
}
