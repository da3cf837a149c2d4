use std::{sync::mpsc, time::Duration};

use super::*;

/// `load_path` on `path` in a thread: its result, or `None` if it did not
/// return within 2 s (a blocked open or read).
fn load_within(path: &Path) -> Option<Result<Manifest, SbomError>> {
    let (tx, rx) = mpsc::channel();
    let path = path.to_owned();
    std::thread::spawn(move || {
        let _ = tx.send(load_path(&path, &LoadOptions::default()));
    });
    rx.recv_timeout(Duration::from_secs(2)).ok()
}

#[test]
fn a_fifo_is_refused_at_once_naming_the_file_and_its_type() {
    let dir = tempfile::tempdir().expect("tempdir");
    let fifo = dir.path().join("sbom.json");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::S_IRUSR | nix::sys::stat::Mode::S_IWUSR)
        .expect("mkfifo");
    let err = load_within(&fifo).expect("returns at once, no writer needed").expect_err("an error");
    let text = err.to_string();
    assert!(matches!(err, SbomError::NotAFile { .. }), "{err:?}");
    assert!(text.contains(&fifo.display().to_string()) && text.contains("FIFO"), "{text}");
}

#[test]
fn a_device_is_refused_and_a_regular_file_still_reads() {
    let err = load_within(Path::new("/dev/null")).expect("returns").expect_err("an error");
    assert!(err.to_string().contains("character device"), "{err}");
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("sbom.spdx.json");
    std::fs::write(&file, br#"{"spdxVersion":"SPDX-2.3","SPDXID":"SPDXRef-DOCUMENT","name":"x","files":[]}"#)
        .expect("write");
    let m = load_within(&file).expect("returns");
    assert!(m.is_ok(), "{:?}", m.err());
}
