//! An image build with buildah under `verifier exec`: `buildah from
//! scratch`, busybox copied in, `buildah run` of it. The execs inside the
//! buildah container (run by runc, in their own cgroup and mount
//! namespace) are found through the step's process tree and appear in the
//! record as `in_container: true`; they are not judged against the host
//! baseline (`unverifiable`, "not judged"), which is what the record says.

use std::{path::Path, process::Command};

use verifier_tests::{
    build::{exec, rows},
    exclusive, require_root,
};

/// Removes the working container when dropped.
struct Remove(String);

impl Drop for Remove {
    fn drop(&mut self) {
        let _ = Command::new("buildah").args(["rm", &self.0]).output();
    }
}

#[test]
fn execs_inside_a_buildah_container_appear_in_the_record() {
    require_root!();
    if !Path::new("/usr/bin/buildah").exists() || !Path::new("/bin/busybox").exists() {
        eprintln!("skipped: buildah or busybox-static is not installed (cargo xtask setup installs them)");
        return;
    }
    let _x = exclusive();
    let dir = tempfile::tempdir().expect("tempdir");
    let name = format!("vt-buildah-{}", std::process::id());
    let _rm = Remove(name.clone());
    let script = format!(
        "buildah from --name {name} scratch >/dev/null && buildah copy {name} /bin/busybox /bin/busybox >/dev/null \
         && buildah run {name} -- /bin/busybox true"
    );
    let run = exec(dir.path(), &["--fail-on", ""], &["sh", "-c", &script]).expect("exec");
    let r = &run.record;
    assert_eq!(run.status, 0, "{}\n{r}", run.stderr);
    assert!(rows(r, "/buildah").iter().any(|f| f["kind"] == "exec" && f["verdict"] == "ok"), "{r}");
    let inside = rows(r, "/bin/busybox");
    let row = inside
        .iter()
        .find(|f| f["in_container"] == true)
        .unwrap_or_else(|| panic!("busybox run inside the buildah container is in the record: {r}"));
    assert_eq!(row["verdict"], "unverifiable", "{row}");
    assert!(row["reason"].as_str().is_some_and(|s| s.contains("container")), "{row}");
}
