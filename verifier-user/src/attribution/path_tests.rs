//! Path shapes from real hosts, one test per runtime and hierarchy.

use super::{
    Runtime,
    path::{container_from_cgroup_path, container_from_proc_cgroup},
};

const ID: &str = "3f9c1e3f0b8a4d1f9e2c7b6a5d4c3b2a1f0e9d8c7b6a5f4e3d2c1b0a9f8e7d6c";
const UID: &str = "1c2d3e4f-5a6b-7c8d-9e0f-a1b2c3d4e5f6";

fn parse(path: &str) -> Option<(String, Runtime, Option<String>)> {
    container_from_cgroup_path(path, |_| None).map(|c| (c.id, c.runtime, c.pod_uid))
}

#[test]
fn docker_cgroupfs_v1_and_systemd_v2() {
    assert_eq!(parse(&format!("/docker/{ID}")), Some((ID.into(), Runtime::Docker, None)));
    assert_eq!(parse(&format!("/system.slice/docker-{ID}.scope")), Some((ID.into(), Runtime::Docker, None)));
}

#[test]
fn containerd_kubernetes_systemd_driver() {
    let uid = UID.replace('-', "_");
    let path = format!(
        "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{uid}.slice/cri-containerd-{ID}.scope"
    );
    assert_eq!(parse(&path), Some((ID.into(), Runtime::Containerd, Some(UID.into()))));
}

#[test]
fn kubernetes_cgroupfs_driver_runtime_unknown_unless_state_says() {
    let path = format!("/kubepods/besteffort/pod{UID}/{ID}");
    assert_eq!(parse(&path), Some((ID.into(), Runtime::Cri, Some(UID.into()))));
    let known = container_from_cgroup_path(&path, |_| Some(Runtime::Containerd)).expect("found");
    assert_eq!(known.runtime, Runtime::Containerd);
}

#[test]
fn crio_scope_and_cgroupfs_but_not_conmon() {
    assert_eq!(
        parse(&format!("/kubepods.slice/kubepods-pod{}.slice/crio-{ID}.scope", UID.replace('-', "_"))),
        Some((ID.into(), Runtime::CriO, Some(UID.into())))
    );
    assert_eq!(parse(&format!("/kubepods/pod{UID}/crio-{ID}")).map(|c| c.1), Some(Runtime::CriO));
    assert_eq!(parse(&format!("/kubepods.slice/crio-conmon-{ID}.scope")), None);
}

#[test]
fn podman_rootful_rootless_and_v1_but_not_conmon() {
    assert_eq!(parse(&format!("/machine.slice/libpod-{ID}.scope")).map(|c| c.1), Some(Runtime::Podman));
    assert_eq!(
        parse(&format!(
            "/user.slice/user-1000.slice/user@1000.service/user.slice/libpod-{ID}.scope/container"
        ))
        .map(|c| c.0),
        Some(ID.into()),
        "a nested cgroup inside the container still belongs to it"
    );
    assert_eq!(parse(&format!("/libpod_parent/libpod-{ID}")).map(|c| c.1), Some(Runtime::Podman));
    assert_eq!(parse(&format!("/machine.slice/libpod-conmon-{ID}.scope")), None);
}

#[test]
fn plain_runc_and_containerd_names_need_the_state_directory() {
    assert_eq!(parse("/ctest1"), None, "an arbitrary name is not a container by itself");
    let runc = container_from_cgroup_path("/ctest1", |leaf| (leaf == "ctest1").then_some(Runtime::Runc));
    assert_eq!(runc.map(|c| (c.id, c.runtime)), Some(("ctest1".into(), Runtime::Runc)));
    let ctr =
        container_from_cgroup_path("/default/web-1", |leaf| (leaf == "web-1").then_some(Runtime::Containerd));
    assert_eq!(ctr.map(|c| c.id), Some("web-1".into()));
}

#[test]
fn host_paths_are_not_containers() {
    for path in [
        "/",
        "/init.scope",
        "/system.slice/sshd.service",
        "/user.slice/user-0.slice/session-1.scope",
        "/system.slice/docker.service",
        "/kubepods.slice/kubepods-burstable.slice",
        "/process_api/d9fbfea1467b1a008dfa2f6456effaed",
        &format!("/docker/{}", &ID[..63]),
        &format!("/docker/{}", ID.to_uppercase()),
    ] {
        assert_eq!(parse(path), None, "{path}");
    }
}

#[test]
fn proc_cgroup_v2_only() {
    let content = format!("0::/system.slice/docker-{ID}.scope\n");
    assert_eq!(container_from_proc_cgroup(&content, |_| None).map(|c| c.runtime), Some(Runtime::Docker));
    assert_eq!(container_from_proc_cgroup("0::/user.slice/session-3.scope\n", |_| None), None);
}

#[test]
fn proc_cgroup_v1_only() {
    let content = format!("12:pids:/docker/{ID}\n11:memory:/docker/{ID}\n1:name=systemd:/docker/{ID}\n");
    assert_eq!(container_from_proc_cgroup(&content, |_| None).map(|c| c.id), Some(ID.into()));
}

#[test]
fn proc_cgroup_hybrid_with_root_unified_line() {
    // Hybrid: the unified line can be "/" while v1 lines carry the container.
    let content = format!("1:name=systemd:/kubepods/burstable/pod{UID}/{ID}\n0::/\n");
    let c = container_from_proc_cgroup(&content, |_| None).expect("from the v1 line");
    assert_eq!((c.id.as_str(), c.pod_uid.as_deref()), (ID, Some(UID)));
}

#[test]
fn proc_cgroup_hybrid_as_on_this_machine() {
    // The shape runc produces on this VM: v1 controllers, a sandbox prefix on
    // the memory controller, and the unified line.
    let content =
        "9:name=systemd:/ctest1\n4:memory:/process_api/d9fbfea1467b1a008dfa2f6456effaed/ctest1\n0::/ctest1\n";
    let c = container_from_proc_cgroup(content, |leaf| (leaf == "ctest1").then_some(Runtime::Runc))
        .expect("runc container");
    assert_eq!((c.id.as_str(), c.cgroup.as_str()), ("ctest1", "/ctest1"));
    let host = "9:name=systemd:/\n4:memory:/process_api/d9fbfea1467b1a008dfa2f6456effaed\n0::/\n";
    assert_eq!(container_from_proc_cgroup(host, |_| None), None);
}

#[test]
fn malformed_lines_are_ignored() {
    assert_eq!(container_from_proc_cgroup("garbage\n::\n\n0:\n", |_| None), None);
}
