//! The DaemonSet's pod, as close as this machine gets: the agent image run
//! by containerd (`ctr run`) with the capabilities, host mounts, host pid
//! namespace, read-only root, seccomp profile, arguments and environment
//! that `deploy/kubernetes/daemonset.yaml` declares. The manifest is the
//! one source of truth: it is read here (YAML to JSON by python3's
//! PyYAML, installed with the validators), not copied.
//!
//! Two things differ from a kubelet, on purpose: the pod network is the
//! host's (`--net-host`, so the test reaches the probes on 127.0.0.1; the
//! manifest's port is replaced by a free one), and the ConfigMap, the SBOM
//! store and the alert directory are the test's temporary directories
//! mounted where the manifest mounts its volumes.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    process::{Command, Stdio},
};

use anyhow::{Context as _, bail};
use serde_json::Value;

use crate::deb::repo_root;

/// containerd's (and Docker's, CRI's) default capability set for a
/// container, which `drop: [ALL]` removes.
pub const RUNTIME_DEFAULT_CAPS: &[&str] = &[
    "CHOWN",
    "DAC_OVERRIDE",
    "FSETID",
    "FOWNER",
    "MKNOD",
    "NET_RAW",
    "SETGID",
    "SETUID",
    "SETFCAP",
    "SETPCAP",
    "NET_BIND_SERVICE",
    "SYS_CHROOT",
    "KILL",
    "AUDIT_WRITE",
];

/// Capability numbers (linux/capability.h) of the names the manifest uses.
pub fn cap_number(name: &str) -> Option<u32> {
    Some(match name {
        "DAC_READ_SEARCH" => 2,
        "SYS_PTRACE" => 19,
        "SYS_ADMIN" => 21,
        "SYS_RESOURCE" => 24,
        "PERFMON" => 38,
        "BPF" => 39,
        _ => return None,
    })
}

/// The effective capability mask of process `pid`.
pub fn effective_caps(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let hex = status.lines().find_map(|l| l.strip_prefix("CapEff:")).context("no CapEff line")?;
    Ok(u64::from_str_radix(hex.trim(), 16)?)
}

/// What the pod spec asks of the runtime.
#[derive(Debug, Clone)]
pub struct PodSpec {
    /// Added capabilities, as Kubernetes spells them (`BPF`, `PERFMON`).
    pub capabilities: Vec<String>,
    /// `drop: [ALL]` is declared.
    pub drops_all: bool,
    pub host_pid: bool,
    pub read_only_root: bool,
    pub privileged: bool,
    /// The container's arguments (after the image's entrypoint).
    pub args: Vec<String>,
    /// Mounts: container path -> (volume, read-only, host path or None for
    /// a ConfigMap, host-to-container propagation).
    pub mounts: BTreeMap<String, Mount>,
}

#[derive(Debug, Clone)]
pub struct Mount {
    pub volume: String,
    pub read_only: bool,
    pub host_path: Option<String>,
    pub propagation: bool,
}

/// The DaemonSet as JSON.
pub fn daemonset() -> anyhow::Result<Value> {
    yaml_to_json(&repo_root().join("deploy/kubernetes/daemonset.yaml"))
}

/// One YAML document as JSON (python3 with PyYAML).
pub fn yaml_to_json(path: &Path) -> anyhow::Result<Value> {
    let out = Command::new("python3")
        .args(["-c", "import json,sys,yaml; print(json.dumps(yaml.safe_load(open(sys.argv[1]))))"])
        .arg(path)
        .output()
        .context("running python3 (PyYAML comes with kubernetes-validate: run `cargo xtask setup`)")?;
    if !out.status.success() {
        bail!("reading {}: {}", path.display(), String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(serde_json::from_slice(&out.stdout)?)
}

impl PodSpec {
    /// The agent container of the DaemonSet.
    pub fn from_daemonset(ds: &Value) -> anyhow::Result<Self> {
        let pod = &ds["spec"]["template"]["spec"];
        let agent = pod["containers"]
            .as_array()
            .and_then(|c| c.iter().find(|c| c["name"] == "agent"))
            .context("no container named agent in the DaemonSet")?;
        let sc = &agent["securityContext"];
        let strings = |v: &Value| -> Vec<String> {
            v.as_array().into_iter().flatten().filter_map(|s| s.as_str().map(str::to_owned)).collect()
        };
        let volumes: BTreeMap<String, Option<String>> = pod["volumes"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|v| {
                Some((v["name"].as_str()?.to_owned(), v["hostPath"]["path"].as_str().map(str::to_owned)))
            })
            .collect();
        let mut mounts = BTreeMap::new();
        for m in agent["volumeMounts"].as_array().into_iter().flatten() {
            let volume = m["name"].as_str().context("volumeMount without name")?.to_owned();
            let host_path =
                volumes.get(&volume).with_context(|| format!("volume {volume} not declared"))?.clone();
            mounts.insert(
                m["mountPath"].as_str().context("volumeMount without mountPath")?.to_owned(),
                Mount {
                    volume,
                    read_only: m["readOnly"] == true,
                    host_path,
                    propagation: m["mountPropagation"] == "HostToContainer",
                },
            );
        }
        Ok(Self {
            capabilities: strings(&sc["capabilities"]["add"]),
            drops_all: strings(&sc["capabilities"]["drop"]).iter().any(|c| c == "ALL"),
            host_pid: pod["hostPID"] == true,
            read_only_root: sc["readOnlyRootFilesystem"] == true,
            privileged: sc["privileged"] == true,
            args: strings(&agent["args"]),
            mounts,
        })
    }

    /// `ctr run` options for this spec; `local` gives the host directory to
    /// mount instead of a volume (ConfigMap, SBOM store, alerts).
    pub fn ctr_options(&self, local: &BTreeMap<&str, PathBuf>) -> anyhow::Result<Vec<String>> {
        let mut opts = vec!["--seccomp".to_owned(), "--net-host".to_owned()];
        if self.privileged {
            opts.push("--privileged".into());
        }
        if self.read_only_root {
            opts.push("--read-only".into());
        }
        if self.host_pid {
            opts.push(format!("--with-ns=pid:/proc/{}/ns/pid", std::process::id()));
        }
        if self.drops_all {
            // ctr has no `ALL`: drop each of the runtime's defaults.
            opts.extend(RUNTIME_DEFAULT_CAPS.iter().map(|c| format!("--cap-drop=CAP_{c}")));
        }
        for cap in &self.capabilities {
            opts.push(format!("--cap-add=CAP_{cap}"));
        }
        for (dst, m) in &self.mounts {
            let src = match local.get(m.volume.as_str()) {
                Some(p) => p.to_string_lossy().into_owned(),
                None => m
                    .host_path
                    .clone()
                    .with_context(|| format!("volume {} needs a local directory", m.volume))?,
            };
            let mut o = vec!["rbind"];
            o.push(if m.read_only { "ro" } else { "rw" });
            if m.propagation {
                o.push("rslave");
            }
            opts.push(format!("--mount=type=bind,src={src},dst={dst},options={}", o.join(":")));
        }
        Ok(opts)
    }
}

/// A free TCP port on 127.0.0.1 (bound, then released).
pub fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// `GET path` on 127.0.0.1:port: (status, body), or None when nothing answers.
pub fn get(port: u16, path: &str) -> Option<(u16, String)> {
    use std::io::{Read as _, Write as _};
    let mut conn = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    conn.set_read_timeout(Some(std::time::Duration::from_secs(5))).ok()?;
    conn.write_all(format!("GET {path} HTTP/1.1\r\nHost: pod\r\n\r\n").as_bytes()).ok()?;
    let mut text = String::new();
    conn.read_to_string(&mut text).ok()?;
    let code = text.split_whitespace().nth(1)?.parse().ok()?;
    Some((code, text.split_once("\r\n\r\n").map_or(String::new(), |(_, b)| b.to_owned())))
}

/// Validates manifests with `kubernetes-validate --strict` against one
/// Kubernetes version; Err carries its output.
pub fn kubernetes_validate(version: &str, files: &[PathBuf]) -> anyhow::Result<()> {
    let out = Command::new("kubernetes-validate")
        .args(["--strict", "--no-warn", "-k", version])
        .args(files)
        .stdin(Stdio::null())
        .output()
        .context("running kubernetes-validate (PyPI; run `cargo xtask setup`)")?;
    if !out.status.success() {
        bail!(
            "kubernetes-validate -k {version}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}
