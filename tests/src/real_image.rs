//! A real distribution image for measuring false alarms: a Debian bookworm
//! `minbase` rootfs with everyday tools, and SBOMs of it from the
//! generators users have (ours, the image's own dpkg database, syft SPDX
//! and CycloneDX, sbom4files, trivy CycloneDX and SPDX, cdxgen, debsbom
//! CycloneDX and SPDX).
//!
//! The image is hundreds of MB, so it is never in git: `cargo xtask setup`
//! builds it once per machine into [`cache_root`], keyed by [`VERSION`] and
//! the package list ([`spec`]). This module is the one place that says
//! where it lives and what it holds, for xtask (which builds it) and the
//! root test (which runs it read-only under runc and counts what the agent
//! reports). The container never writes to the cache: its root is mounted
//! read-only, with a tmpfs on `/tmp`.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
};

use anyhow::{Context as _, bail};
use serde_json::Value;

use crate::bundle::Bundle;

/// Bump to rebuild every machine's cached image.
pub const VERSION: &str = "bookworm-minbase-1";
pub const SUITE: &str = "bookworm";
pub const VARIANT: &str = "minbase";
pub const PACKAGES: &[&str] =
    &["python3", "perl", "openssl", "curl", "gawk", "jq", "sqlite3", "iproute2", "procps", "file"];

/// Overrides [`DEFAULT_CACHE`].
pub const CACHE_ENV: &str = "VERIFIER_REAL_IMAGE_CACHE";
pub const DEFAULT_CACHE: &str = "/var/cache/verifier/real-image";
/// Written last by xtask: what was built, how long it took, what it holds.
pub const MANIFEST: &str = "image.json";

/// The SBOM sources of the image: (name, file under the image directory).
/// sbom4files is optional (it may not install); the rest are required.
/// trivy, cdxgen and debsbom are added to an image built without them by
/// `cargo xtask setup`.
pub const SOURCES: &[(&str, &str)] = &[
    ("verifier-spdx", "sbom/verifier.spdx.json"),
    ("dpkg-md5sums", "sbom/dpkg.md5sums"),
    ("syft-spdx", "sbom/syft.spdx.json"),
    ("syft-cyclonedx", "sbom/syft.cdx.json"),
    ("sbom4files-spdx", "sbom/sbom4files.spdx.json"),
    ("trivy-cyclonedx", "sbom/trivy.cdx.json"),
    ("trivy-spdx", "sbom/trivy.spdx.json"),
    ("cdxgen-cyclonedx", "sbom/cdxgen.cdx.json"),
    ("debsbom-cyclonedx", "sbom/debsbom.cdx.json"),
    ("debsbom-spdx", "sbom/debsbom.spdx.json"),
];

/// Everything that decides the image's content, as one string: a change
/// in any of it rebuilds the cache.
pub fn spec() -> String {
    format!("{VERSION} suite={SUITE} variant={VARIANT} include={}", PACKAGES.join(","))
}

/// The cache directory (outside the repository).
pub fn cache_root() -> PathBuf {
    std::env::var_os(CACHE_ENV).map_or_else(|| PathBuf::from(DEFAULT_CACHE), PathBuf::from)
}

/// The directory of the current version's image.
pub fn image_dir() -> PathBuf {
    cache_root().join(VERSION)
}

/// The cached image, as built by `cargo xtask setup`.
#[derive(Debug)]
pub struct RealImage {
    pub dir: PathBuf,
    pub manifest: Value,
}

impl RealImage {
    /// The cached image, or an error saying how to build it.
    pub fn find() -> anyhow::Result<Self> {
        let dir = image_dir();
        let path = dir.join(MANIFEST);
        let text = std::fs::read_to_string(&path).with_context(|| {
            format!("no real image at {} (run `cargo xtask setup` to build it)", dir.display())
        })?;
        let manifest: Value =
            serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
        if manifest["spec"] != spec() {
            bail!(
                "the real image at {} was built for `{}`, not `{}`: run `cargo xtask setup` to rebuild it",
                dir.display(),
                manifest["spec"],
                spec()
            );
        }
        Ok(Self { dir, manifest })
    }

    pub fn rootfs(&self) -> PathBuf {
        self.dir.join("rootfs")
    }

    /// The SBOM sources present (sbom4files may be absent).
    pub fn sources(&self) -> Vec<(&'static str, PathBuf)> {
        SOURCES.iter().map(|(n, f)| (*n, self.dir.join(f))).filter(|(_, p)| p.is_file()).collect()
    }

    /// An OCI bundle in `dir` whose root is this image, read-only, with a
    /// tmpfs on `/tmp`; the container runs `args`.
    pub fn bundle(&self, dir: &Path, args: &[&str]) -> anyhow::Result<Bundle> {
        let bundle = Bundle { dir: dir.to_path_buf() };
        bundle.write_config(args)?;
        let config = dir.join("config.json");
        let mut spec: Value = serde_json::from_slice(&std::fs::read(&config)?)?;
        spec["root"] = serde_json::json!({"path": self.rootfs(), "readonly": true});
        if let Some(mounts) = spec["mounts"].as_array_mut() {
            mounts.push(serde_json::json!({
                "destination": "/tmp", "type": "tmpfs", "source": "tmpfs",
                "options": ["nosuid", "nodev", "mode=1777", "size=64m"]
            }));
        }
        std::fs::write(&config, serde_json::to_vec_pretty(&spec)?)?;
        Ok(bundle)
    }

    /// Whether the file at `path` (canonical, inside the image) is a
    /// regular ELF file, read from the cached rootfs.
    pub fn is_elf(&self, path: &str) -> bool {
        let file = self.rootfs().join(path.trim_start_matches('/'));
        if !file.symlink_metadata().is_ok_and(|m| m.file_type().is_file()) {
            return false;
        }
        let mut magic = [0u8; 4];
        std::fs::File::open(&file).and_then(|mut f| std::io::Read::read_exact(&mut f, &mut magic)).is_ok()
            && magic == *b"\x7fELF"
    }
}

/// Ordinary tools a workload in a Debian container runs, one command line
/// each (shell builtins aside; some are scripts: gunzip, zcat, egrep,
/// fgrep, which, ldd).
pub const WORKLOAD: &[&str] = &[
    "ls /",
    "cat /etc/os-release",
    "head -n1 /etc/passwd",
    "tail -n1 /etc/passwd",
    "tar --version",
    "gzip -c /etc/passwd > /tmp/p.gz",
    "gunzip -c /tmp/p.gz",
    "zcat /tmp/p.gz",
    "egrep 'root|daemon' /etc/passwd",
    "fgrep root /etc/passwd",
    "grep -c x /etc/passwd",
    "which sh",
    "ldd /bin/ls",
    "python3 -c 'print(1)'",
    "python3 -c 'import subprocess; subprocess.run([\"/usr/bin/true\"])'",
    "perl -e 'print 1'",
    "openssl version",
    "openssl dgst -sha256 /etc/passwd",
    "curl --version",
    "jq -n '1+1'",
    "sqlite3 -version",
    "sqlite3 /tmp/t.db 'create table t(a); insert into t values(1); select * from t;'",
    "awk 'BEGIN{print 1}'",
    "gawk 'BEGIN{print 2}'",
    "sed -n 1p /etc/passwd",
    "sort /etc/passwd",
    "uniq /etc/passwd",
    "wc -l /etc/passwd",
    "cut -d: -f1 /etc/passwd",
    "tr a-z A-Z < /etc/hostname",
    "find /etc -maxdepth 1 -name '*.conf'",
    "ip addr",
    "ps aux",
    "free",
    "uptime",
    "file /bin/ls",
    "env true",
    "sh -c true",
    "bash -c true",
    "echo a b | xargs echo",
    "/usr/bin/true",
    "/usr/bin/false",
    "/usr/bin/printf '%s' x",
    "/usr/bin/test -d /",
    "date",
    "id",
    "uname -a",
    "hostname",
    "stat /",
    "du -s /etc",
    "df /",
    "mkdir -p /tmp/d",
    "touch /tmp/d/f",
    "cp /etc/passwd /tmp/d/",
    "mv /tmp/d/passwd /tmp/d/p",
    "ln -sf /tmp/d/p /tmp/d/l",
    "chmod 600 /tmp/d/p",
    "readlink -f /bin/sh",
    "basename /a/b",
    "dirname /a/b",
    "seq 3",
    "expr 1 + 1",
    "md5sum /etc/passwd",
    "sha256sum /etc/passwd",
    "base64 /etc/hostname",
    "od -c /etc/hostname",
    "mktemp",
    "sleep 0",
    "nproc",
    "whoami",
    "getent passwd root",
    "rm -rf /tmp/d",
];

/// The workload as one `sh -c` script: every command runs, its output and
/// failures discarded (a tool failing is not what is measured).
pub fn workload_script() -> String {
    WORKLOAD.iter().map(|c| format!("{{ {c}; }} >/dev/null 2>&1")).collect::<Vec<_>>().join("\n")
}

/// What the agent reported about one container.
#[derive(Debug, Default)]
pub struct Tally {
    /// Exec records with a verdict.
    pub execs: usize,
    /// Exec records without one (not verified), with the reason.
    pub unjudged: Vec<String>,
    /// Non-ok exec verdicts: verdict -> count.
    pub non_ok: BTreeMap<String, usize>,
    /// Library (mapped as code) records, and the non-ok ones by the
    /// file's own verdict.
    pub libraries: usize,
    pub library_non_ok: BTreeMap<String, usize>,
    /// New alerts (`type: alert`) by verdict; updates of alerts already
    /// raised (`type: alert-update`) are counted apart.
    pub alerts_by: BTreeMap<String, usize>,
    pub alert_updates: usize,
    /// Up to three (path, reason) examples of new alerts per verdict, of
    /// different paths.
    pub alert_examples: BTreeMap<String, Vec<(String, String)>>,
    /// New alerts of high or critical severity, as `verdict/file_verdict
    /// path`.
    pub severe: Vec<String>,
}

fn bump(map: &mut BTreeMap<String, usize>, key: &str) {
    *map.entry(key.to_owned()).or_default() += 1;
}

impl Tally {
    /// Counts the records of container `id`.
    pub fn of(records: &[Value], id: &str) -> Self {
        let mut t = Self::default();
        for r in records.iter().filter(|r| r["container"]["id"] == id) {
            let v = &r["verification"];
            match r["type"].as_str() {
                Some("exec") => match v["verdict"].as_str() {
                    Some(verdict) => {
                        t.execs += 1;
                        if verdict != "ok" {
                            bump(&mut t.non_ok, verdict);
                        }
                        // A `#!` script is judged apart from its interpreter.
                        if let Some(sv) = v["script"]["verdict"].as_str().filter(|sv| *sv != "ok") {
                            bump(&mut t.non_ok, &format!("script-{sv}"));
                        }
                    }
                    None => t.unjudged.push(v["reason"].to_string()),
                },
                Some("library") => {
                    t.libraries += 1;
                    if v["verdict"].as_str().is_some_and(|x| x != "ok") {
                        bump(&mut t.library_non_ok, v["file_verdict"].as_str().unwrap_or("?"));
                    }
                }
                Some("alert-update") => t.alert_updates += 1,
                Some("alert") if r["schema"] == "verifier.alert.v1" => {
                    let verdict = r["verdict"].as_str().unwrap_or("?");
                    bump(&mut t.alerts_by, verdict);
                    if matches!(r["severity"].as_str(), Some("high" | "critical")) {
                        t.severe.push(format!(
                            "{verdict}/{} {} ({})",
                            r["file"]["file_verdict"].as_str().unwrap_or("-"),
                            r["file"]["path"].as_str().unwrap_or("(no path)"),
                            r["severity"].as_str().unwrap_or("?"),
                        ));
                    }
                    let path = match r["file"]["path"].as_str() {
                        Some(p) if !p.is_empty() => p.to_owned(),
                        _ => "(no path)".to_owned(),
                    };
                    let examples = t.alert_examples.entry(verdict.to_owned()).or_default();
                    if examples.len() < 3 && examples.iter().all(|(p, _)| *p != path) {
                        examples.push((path, r["reason"].as_str().unwrap_or("?").to_owned()));
                    }
                }
                _ => {}
            }
        }
        t
    }

    pub fn non_ok_total(&self) -> usize {
        self.non_ok.values().sum()
    }

    pub fn alerts(&self) -> usize {
        self.alerts_by.values().sum()
    }

    /// Everything short of "every exec, script and library `ok`, no
    /// alert": one line each, with examples (empty when clean).
    pub fn false_alarms(&self) -> Vec<String> {
        let mut out = Vec::new();
        if !self.non_ok.is_empty() {
            out.push(format!("exec verdicts not ok: {}", joined(&self.non_ok)));
        }
        if !self.library_non_ok.is_empty() {
            out.push(format!("library verdicts not ok: {}", joined(&self.library_non_ok)));
        }
        if !self.unjudged.is_empty() {
            out.push(format!("{} execs not judged, e.g. {}", self.unjudged.len(), self.unjudged[0]));
        }
        if self.alerts() + self.alert_updates > 0 {
            out.push(format!("alerts: {} (+{} updates)", joined(&self.alerts_by), self.alert_updates));
        }
        for (verdict, examples) in &self.alert_examples {
            out.extend(examples.iter().map(|(path, reason)| format!("  {verdict} {path}: {reason}")));
        }
        out
    }
}

fn joined(m: &BTreeMap<String, usize>) -> String {
    m.iter().map(|(v, n)| format!("{v}={n}")).collect::<Vec<_>>().join(" ")
}

/// The false-alarm table: one row per SBOM source, then examples.
pub fn table(rows: &[(&str, Tally)]) -> String {
    let mut out = format!(
        "{:<16} {:>5} {:>6} {:>5} {:>6} {:>6} {:>7}  non-ok exec verdicts | non-ok libraries | alerts\n",
        "source", "execs", "non-ok", "libs", "lib-nk", "alerts", "updates"
    );
    for (name, t) in rows {
        out += &format!(
            "{name:<16} {:>5} {:>6} {:>5} {:>6} {:>6} {:>7}  {} | {} | {}\n",
            t.execs,
            t.non_ok_total(),
            t.libraries,
            t.library_non_ok.values().sum::<usize>(),
            t.alerts(),
            t.alert_updates,
            joined(&t.non_ok),
            joined(&t.library_non_ok),
            joined(&t.alerts_by)
        );
        if !t.unjudged.is_empty() {
            out += &format!("  {name}: {} execs not judged, e.g. {}\n", t.unjudged.len(), t.unjudged[0]);
        }
    }
    for (name, t) in rows {
        for (verdict, examples) in &t.alert_examples {
            for (path, reason) in examples {
                out += &format!("  {name}: {verdict} {path}: {reason}\n");
            }
        }
    }
    out
}
