//! The agent refuses bad start-up conditions with an error that says what
//! is wrong and what to do, and exit code 2, before touching the kernel.

use std::process::Command;

use verifier_tests::{agent::verifier_bin, require_root};

fn agent_error(args: &[&str]) -> String {
    let out = Command::new(verifier_bin()).arg("agent").args(args).output().expect("runs");
    assert_eq!(out.status.code(), Some(2), "exit code 2 for a start-up error");
    assert!(out.stdout.is_empty(), "no records on stdout");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn missing_btf_names_the_file_and_the_kernel_option() {
    require_root!();
    let err = agent_error(&["--btf", "/nonexistent/vmlinux"]);
    assert!(err.contains("/nonexistent/vmlinux") && err.contains("CONFIG_DEBUG_INFO_BTF"), "{err}");
}

#[test]
fn garbage_btf_is_refused() {
    require_root!();
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("garbage");
    std::fs::write(&path, b"this is not BTF at all").expect("write");
    let err = agent_error(&["--btf", path.to_str().expect("utf-8")]);
    assert!(err.contains("not BTF data"), "{err}");
}

#[test]
fn btf_without_the_needed_structs_names_the_missing_one() {
    require_root!();
    // A well-formed BTF blob with no types: header, empty type section, one
    // empty string.
    let mut blob = Vec::new();
    blob.extend_from_slice(&0xeb9fu16.to_le_bytes());
    blob.extend_from_slice(&[1, 0]);
    for word in [24u32, 0, 0, 0, 1] {
        blob.extend_from_slice(&word.to_le_bytes());
    }
    blob.push(0);
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("empty.btf");
    std::fs::write(&path, blob).expect("write");
    let err = agent_error(&["--btf", path.to_str().expect("utf-8")]);
    assert!(err.contains("no struct `task_struct`"), "{err}");
}

#[test]
fn bad_ring_size_says_what_is_allowed() {
    let err = agent_error(&["--ring-bytes", "1000"]);
    assert!(err.contains("power of two"), "{err}");
}

/// Logs on a stderr that is not a terminal (a file, `kubectl logs`) carry
/// no colour escapes.
#[test]
fn logs_to_a_pipe_have_no_colour_escapes() {
    require_root!();
    let _lock = verifier_tests::exclusive();
    let out = Command::new(verifier_bin())
        .args(["agent", "--duration", "0.5", "--log", "info", "--metrics-addr", "127.0.0.1:0"])
        .output()
        .expect("runs");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("INFO"), "the agent logged something at info: {err}");
    assert!(!err.contains('\u{1b}'), "no ANSI escape in piped logs: {err:?}");
}
