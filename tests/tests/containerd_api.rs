//! Root tier: the containerd API client against a real daemon. An image
//! built here is imported, a container runs from it, and the client reads
//! back the container's image reference and the image's digest.

use verifier::attribution::containerd::{Containerd, DEFAULT_SOCKET, namespace_of};
use verifier_tests::{
    bundle::Bundle,
    containerd::{self, CtrContainer, NAMESPACE, OciImage},
    exclusive, require_root,
};

#[test]
fn reads_a_containers_image_and_digest_through_the_api() {
    require_root!();
    let _lock = exclusive();
    let dir = tempfile::tempdir().expect("tempdir");
    containerd::ensure_daemon(&dir.path().join("containerd.log")).expect("containerd runs");
    let bundle = Bundle::busybox(&dir.path().join("src"), &["sleep", "60"]).expect("rootfs");
    let image =
        OciImage::from_rootfs(&bundle.rootfs(), &dir.path().join("oci"), "api", &["/bin/sleep", "60"])
            .expect("OCI image");
    let digest = image.manifest_digest().expect("digest");
    let reference = image.import("localhost/verifier-test/api").expect("import");
    let id = format!("vt-api-{}", std::process::id());
    let container = CtrContainer::run(&reference, &id, &[]).expect("ctr run");

    assert_eq!(namespace_of(std::path::Path::new("/run/containerd"), &id).as_deref(), Some(NAMESPACE));
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let client = Containerd::new(DEFAULT_SOCKET.into(), rt.handle().clone());
    // The facade blocks: call it from a blocking thread while the runtime runs.
    let (record, missing) = rt.block_on(async move {
        tokio::task::spawn_blocking(move || {
            (client.container(NAMESPACE, &id), client.container(NAMESPACE, "no-such"))
        })
        .await
        .expect("join")
    });
    let record = record.expect("container found");
    assert_eq!(record.image, reference);
    assert_eq!(record.image_digest.as_deref(), Some(digest.as_str()), "the manifest digest umoci wrote");
    assert_eq!(record.snapshotter, "overlayfs");
    let err = missing.expect_err("unknown container").to_string();
    assert!(err.contains("no-such") && err.contains(NAMESPACE), "{err}");
    drop(container);
}

#[test]
fn a_missing_socket_is_a_clear_error() {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let client = Containerd::new("/nonexistent/containerd.sock".into(), rt.handle().clone());
    let err = rt
        .block_on(async move { tokio::task::spawn_blocking(move || client.container("default", "x")).await })
        .expect("join")
        .expect_err("no daemon there");
    assert!(err.to_string().contains("cannot reach containerd at /nonexistent/containerd.sock"), "{err}");
}
