//! Root tier, on a real distribution image: the cached Debian bookworm
//! `minbase` image (`cargo xtask setup` builds it) runs read-only under
//! runc, once per SBOM source, with the agent verifying every exec of a
//! workload of ordinary tools run twice. The false-alarm table (execs,
//! non-ok verdicts by verdict, alerts, examples) is printed on every run;
//! see it with `--nocapture`.
//!
//! Asserted: every source gets more than 50 execs judged, and under every
//! source that lists the image's files with digests ([`EXACT`]: our SBOM,
//! generated here by the binary under test, the image's own dpkg md5sums,
//! syft SPDX, sbom4files SPDX, cdxgen CycloneDX) and every package-only
//! source joined with dpkg ([`PACKAGE_ONLY`]) there is no false alarm at all: every exec,
//! every `#!` script and every library mapped as code is `ok`, and no
//! alert is raised. What that rests on: a script is judged by its own
//! digest and by its interpreter, found from its `#!` line and proven by
//! the kernel's identity once the script has exited (gunzip, zcat, egrep,
//! fgrep, which, ldd); a library or exec of a process already gone is
//! found by its identity among the listed files; dpkg's pre-merge names
//! (`bin/ls`) judge the merged-/usr paths (`/usr/bin/ls`); runc's own
//! re-exec in the container's cgroup, still in the host's mount
//! namespace, is the host's.
//!
//! One run on the build machine (release binary), 72 commands twice
//! (execs judged / non-ok / library records / non-ok / new alerts /
//! seconds for the source; library counts vary with how soon files enter
//! the kernel fast path); the whole test took 37 s:
//!
//! | source | execs | non-ok | libs | non-ok libs | alerts | s |
//! |---|---|---|---|---|---|---|
//! | verifier-spdx (ours) | 86 | 0 | 120 | 0 | 0 | 2.6 |
//! | dpkg-md5sums | 86 | 0 | 108 | 0 | 0 | 2.8 |
//! | syft-spdx | 86 | 0 | 90 | 0 | 0 | 2.8 |
//! | syft-cyclonedx | 86 | 0 | 99 | 0 | 0 | 3.3 |
//! | sbom4files-spdx | 86 | 0 | 113 | 0 | 0 | 3.7 |
//! | trivy-cyclonedx | 84 | 0 | 67 | 0 | 0 | 3.7 |
//! | trivy-spdx | 86 | 0 | 124 | 0 | 0 | 3.5 |
//! | cdxgen-cyclonedx | 86 | 0 | 84 | 0 | 0 | 3.7 |
//! | debsbom-cyclonedx | 86 | 0 | 98 | 0 | 0 | 3.3 |
//! | debsbom-spdx | 86 | 0 | 112 | 0 | 0 | 3.4 |
//!
//! cdxgen (`-t rootfs`) lists 8,171 package files with MD5 and SHA-1, each
//! named by its base name with the path in a `SrcFile` property, which the
//! reader takes as the path (read by name, `sbom inspect` found 4,600
//! paths such as `/adduser.mo`, none where the files are).
//!
//! syft's CycloneDX lists packages and no files ([`PACKAGE_ONLY`]; so do
//! trivy's CycloneDX and SPDX, with `distro=debian-12.N` purls, and
//! debsbom's, which also list source packages, `arch=source`). The
//! agent says so in one `sbom-package-only` warning and joins it with the
//! image's dpkg database: the bundle's root is mounted read-only by runc
//! (`root.readonly: true` in its `config.json`, which the agent checks), so
//! nothing in the container can have written the database there, and it
//! is read from the bundle's rootfs on the host, beneath it. syft lists all
//! 148 installed packages (plus the `debian` operating-system component,
//! which is no package: the warning names it as not installed), so every
//! file that ran belongs to a listed package and verifies against dpkg's
//! MD5 (weak): asserted as zero false alarms, like [`EXACT`]. Had syft left
//! a package out, its files would be `sbom-gap` (low): the assertion that
//! no alert is high or critical says what must hold then. Before the join
//! the same run gave 167 execs, 179 non-ok, 440 non-ok libraries and 258
//! alerts.

use std::time::Instant;

use verifier_tests::{
    agent::Agent,
    exclusive,
    real_image::{RealImage, Tally, WORKLOAD, table, workload_script},
    real_run::{our_sbom, package_only_findings, settle, unique},
    require_root,
    runc::Container,
};

/// The SBOM sources that list the image's files, with digests: under
/// them every verdict must be `ok` and no alert raised. cdxgen lists each
/// package's files with MD5 and SHA-1 (weak), its path in a `SrcFile`
/// property.
const EXACT: &[&str] = &["verifier-spdx", "dpkg-md5sums", "syft-spdx", "sbom4files-spdx", "cdxgen-cyclonedx"];

/// The SBOM sources that list packages and no files: joined with the
/// image's dpkg database (the bundle's root is read-only: `root.readonly`
/// in its `config.json`, so the database there is the image's). Their
/// purls differ (trivy adds `distro=debian-12.N`, debsbom lists source
/// packages as `arch=source` beside the binary ones); all must join.
const PACKAGE_ONLY: &[&str] =
    &["syft-cyclonedx", "trivy-cyclonedx", "trivy-spdx", "debsbom-cyclonedx", "debsbom-spdx"];

/// Sources that may be missing (the generator did not install).
const OPTIONAL: &[&str] = &["sbom4files-spdx"];

/// A directory to write each source's agent records to, as
/// `<source>.jsonl`, for looking into the false alarms.
const RECORDS_ENV: &str = "VERIFIER_REAL_IMAGE_RECORDS";

/// Runs the workload twice in a fresh container of the image under an
/// agent verifying it against `sbom`; returns every record.
fn run_with(image: &RealImage, sbom: &std::path::Path, id: &str) -> Vec<serde_json::Value> {
    let dir = tempfile::tempdir().expect("tempdir");
    let bundle = image.bundle(dir.path(), &["sleep", "300"]).expect("bundle");
    let rule = format!("{id}={}", sbom.display());
    let agent =
        Agent::start(&["--stats-interval", "0", "--containers-only", "--sbom", &rule]).expect("agent");
    let container = Container::run(&bundle.dir, id).expect("runc run");
    let script = workload_script();
    for _ in 0..2 {
        container.exec(&["sh", "-c", &script]).expect("workload");
    }
    settle(&agent);
    drop(container);
    agent.stop().expect("agent stops")
}

#[test]
fn a_debian_workload_under_each_sbom_source() {
    require_root!();
    let _lock = exclusive();
    let image = RealImage::find().expect("the real image (built by `cargo xtask setup`)");
    let scratch = tempfile::tempdir().expect("tempdir");
    let mut sources = image.sources();
    let ours = our_sbom(&image, &scratch.path().join("verifier.spdx.json")).expect("our SBOM");
    if let Some(s) = sources.iter_mut().find(|(n, _)| *n == "verifier-spdx") {
        s.1 = ours;
    }
    let missing: Vec<&str> = verifier_tests::real_image::SOURCES
        .iter()
        .map(|(n, _)| *n)
        .filter(|n| !OPTIONAL.contains(n) && !sources.iter().any(|(s, _)| s == n))
        .collect();
    assert!(
        missing.is_empty(),
        "SBOM sources missing: {missing:?}; run `cargo xtask setup` to generate them"
    );
    let mut rows = Vec::new();
    let mut seconds = Vec::new();
    let mut failures = Vec::new();
    for (name, sbom) in &sources {
        let id = unique(&format!("vt-real-{name}"));
        let started = Instant::now();
        let records = run_with(&image, sbom, &id);
        seconds.push(format!("{name} {:.1}", started.elapsed().as_secs_f64()));
        if let Some(dir) = std::env::var_os(RECORDS_ENV) {
            let lines: Vec<String> = records.iter().map(ToString::to_string).collect();
            let path = std::path::Path::new(&dir).join(format!("{name}.jsonl"));
            std::fs::write(&path, lines.join("\n")).expect("writing the records");
        }
        let tally = Tally::of(&records, &id);
        if tally.execs <= 50 {
            failures.push(format!(
                "{name}: only {} execs judged ({} unjudged: {:?})",
                tally.execs,
                tally.unjudged.len(),
                tally.unjudged.first()
            ));
        }
        if EXACT.contains(name) || PACKAGE_ONLY.contains(name) {
            let alarms = tally.false_alarms();
            if !alarms.is_empty() {
                failures.push(format!("{name}: false alarms:\n{}", alarms.join("\n")));
            }
        }
        if PACKAGE_ONLY.contains(name) {
            failures.extend(package_only_findings(name, &records, &tally));
        }
        rows.push((*name, tally));
    }
    println!(
        "real image {} ({} workload commands, run twice):\n{}seconds per source: {}",
        image.dir.display(),
        WORKLOAD.len(),
        table(&rows),
        seconds.join(", ")
    );
    assert!(
        rows.len() >= 4,
        "every required SBOM source ran: {:?}",
        rows.iter().map(|r| r.0).collect::<Vec<_>>()
    );
    assert!(failures.is_empty(), "{failures:#?}");
}
