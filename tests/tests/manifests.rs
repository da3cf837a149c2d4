//! The Kubernetes manifests: valid for every supported Kubernetes version
//! (`kubernetes-validate --strict`, which also rejects unknown fields), and
//! the DaemonSet keeps the properties docs/deploy.md promises.

use std::path::PathBuf;

use verifier_tests::{deb::repo_root, pod};

/// Kubernetes versions the manifests are checked against.
const VERSIONS: &[&str] = &["1.30.0", "1.31.0", "1.32.0", "1.33.0", "1.34.0"];

fn manifests() -> Vec<PathBuf> {
    let dir = repo_root().join("deploy/kubernetes");
    ["namespace.yaml", "configmap.yaml", "daemonset.yaml", "service.yaml"]
        .iter()
        .map(|f| dir.join(f))
        .collect()
}

#[test]
fn manifests_validate_against_every_supported_kubernetes_version() {
    for v in VERSIONS {
        pod::kubernetes_validate(v, &manifests()).unwrap_or_else(|e| panic!("{e}"));
    }
    // The validator does reject a field Kubernetes does not know.
    let dir = tempfile::tempdir().expect("tempdir");
    let bad = dir.path().join("daemonset.yaml");
    let text = std::fs::read_to_string(&manifests()[2]).expect("daemonset");
    std::fs::write(&bad, text.replace("readOnlyRootFilesystem", "readOnlyRootFilesystm")).expect("write");
    assert!(pod::kubernetes_validate("1.34.0", &[bad]).is_err(), "a misspelt field passed");
}

#[test]
fn kustomization_lists_existing_files() {
    let k =
        pod::yaml_to_json(&repo_root().join("deploy/kubernetes/kustomization.yaml")).expect("kustomization");
    let resources: Vec<&str> =
        k["resources"].as_array().expect("resources").iter().filter_map(|r| r.as_str()).collect();
    assert!(resources.contains(&"daemonset.yaml"), "{resources:?}");
    for r in resources {
        assert!(repo_root().join("deploy/kubernetes").join(r).exists(), "{r} listed but missing");
    }
}

#[test]
fn the_daemonset_runs_with_least_privilege_and_probes() {
    let ds = pod::daemonset().expect("daemonset");
    let spec = pod::PodSpec::from_daemonset(&ds).expect("pod spec");
    assert!(!spec.privileged && spec.drops_all && spec.read_only_root && spec.host_pid, "{spec:?}");
    let mut caps = spec.capabilities.clone();
    caps.sort();
    assert_eq!(
        caps,
        ["BPF", "DAC_READ_SEARCH", "PERFMON", "SYS_PTRACE"],
        "update docs/deploy.md with the set"
    );
    let pod_spec = &ds["spec"]["template"]["spec"];
    assert_eq!(pod_spec["automountServiceAccountToken"], false);
    let agent = &pod_spec["containers"][0];
    assert_eq!(agent["livenessProbe"]["httpGet"]["path"], "/healthz");
    assert_eq!(agent["readinessProbe"]["httpGet"]["path"], "/readyz");
    assert_eq!(agent["ports"][0]["name"], "metrics");
    assert!(
        spec.args.iter().any(|a| a.starts_with("--sbom-rules=") || a.starts_with("--sbom-store=")),
        "verifies"
    );
    assert!(spec.args.iter().any(|a| a.starts_with("--alert-file=")), "alerts to a file");
    assert!(
        spec.args.iter().any(|a| a == "--metrics-addr=0.0.0.0:9477"),
        "probes reachable from the kubelet"
    );
    // Every writable mount is the alert directory: the rest is read-only.
    let writable: Vec<&String> = spec.mounts.iter().filter(|(_, m)| !m.read_only).map(|(p, _)| p).collect();
    assert_eq!(writable, ["/var/log/verifier"]);
}
