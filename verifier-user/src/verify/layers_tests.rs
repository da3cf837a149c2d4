//! Overlay layers: mountinfo parsing (escapes included), and a real
//! overlay mount's lower and upper layers.

use std::fs;

use sha2::Digest as _;

use super::*;

const CONTAINERD_ROOT: &str = "71 47 0:39 / / rw,relatime - overlay overlay rw,lowerdir=/var/lib/containerd/io.containerd.snapshotter.v1.overlayfs/snapshots/1/fs,upperdir=/var/lib/containerd/io.containerd.snapshotter.v1.overlayfs/snapshots/2/fs,workdir=/var/lib/containerd/io.containerd.snapshotter.v1.overlayfs/snapshots/2/work
72 71 0:42 / /proc rw,nosuid,nodev,noexec,relatime - proc proc rw";

#[test]
fn parses_a_containerd_root_mount() {
    let (lowers, upper) = overlay_of(CONTAINERD_ROOT).expect("overlay root");
    assert_eq!(
        lowers,
        vec![PathBuf::from("/var/lib/containerd/io.containerd.snapshotter.v1.overlayfs/snapshots/1/fs")]
    );
    assert_eq!(
        upper,
        Some(PathBuf::from("/var/lib/containerd/io.containerd.snapshotter.v1.overlayfs/snapshots/2/fs"))
    );
}

#[test]
fn parses_several_lowers_and_escapes() {
    let info =
        "1 0 0:1 / / rw - overlay overlay rw,lowerdir=/l/a\\040b:/l/c\\:d:/l/e,upperdir=/u\\,x,workdir=/w";
    let (lowers, upper) = overlay_of(info).expect("overlay");
    assert_eq!(lowers, ["/l/a b", "/l/c:d", "/l/e"].map(PathBuf::from).to_vec());
    assert_eq!(upper, Some(PathBuf::from("/u,x")));
}

#[test]
fn a_plain_root_has_no_layers() {
    assert!(overlay_of("22 1 254:0 / / rw,relatime - ext4 /dev/vda rw").is_none());
    assert!(overlay_of("garbage").is_none());
    assert_eq!(
        unescape("\\777\\12\\"),
        "77712\\",
        "no byte over 255; other escapes keep the escaped character"
    );
}

#[test]
fn lower_layers_say_what_the_image_shipped_and_upper_what_was_written() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    for sub in ["l1/bin", "l2/bin", "l2/usr", "up/bin", "work", "merged"] {
        fs::create_dir_all(d.join(sub)).expect("mkdir");
    }
    fs::write(d.join("l2/bin/tool"), b"base tool").expect("write");
    fs::write(d.join("l2/usr/gone"), b"deleted by the top layer").expect("write");
    fs::write(d.join("l1/bin/tool"), b"patched tool").expect("write");
    // A whiteout in the top layer hides /usr/gone.
    fs::create_dir_all(d.join("l1/usr")).expect("mkdir");
    nix::sys::stat::mknod(
        &d.join("l1/usr/gone"),
        nix::sys::stat::SFlag::S_IFCHR,
        nix::sys::stat::Mode::empty(),
        0,
    )
    .expect("whiteout");
    fs::write(d.join("up/bin/dropped"), b"written by the container").expect("write");
    let layers = Layers::new(&[d.join("l1"), d.join("l2")], Some(d.join("up"))).expect("layers");
    let sha = |b: &[u8]| -> [u8; 32] { sha2::Sha256::digest(b).into() };
    assert_eq!(layers.sha256_of("/bin/tool"), Some(sha(b"patched tool")), "the topmost layer wins");
    assert_eq!(layers.sha256_of("/usr/gone"), None, "whited out");
    assert_eq!(layers.sha256_of("/bin/dropped"), None, "not in any image layer");
    assert_eq!(layers.in_writable_layer("/bin/dropped"), Some(true));
    assert_eq!(layers.in_writable_layer("/bin/tool"), Some(false));
}
