use super::*;

#[test]
fn rotation_keeps_every_line_whole_and_in_order() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("alerts.jsonl");
    let mut sink = FileSink::open(&path, 500, 3).expect("open");
    let lines: Vec<Vec<u8>> =
        (0..60).map(|i| format!("{{\"n\":{i},\"pad\":\"{}\"}}", "x".repeat(i % 40)).into_bytes()).collect();
    for chunk in lines.chunks(7) {
        sink.write_lines(chunk).expect("write");
    }
    assert!(sink.rotations >= 3, "{} rotations", sink.rotations);
    assert!(!numbered(&path, 4).exists(), "keep 3");
    let mut read = Vec::new();
    for p in [numbered(&path, 3), numbered(&path, 2), numbered(&path, 1), path.clone()] {
        let text = std::fs::read_to_string(&p).expect("read");
        assert!(text.len() <= 500, "{} is {} bytes", p.display(), text.len());
        assert!(text.ends_with('\n'));
        for l in text.lines() {
            let v: serde_json::Value = serde_json::from_str(l).expect("a whole JSON line");
            read.push(v["n"].as_u64().expect("n"));
        }
    }
    // The oldest files were dropped; what is kept is the newest, in order.
    let last = *read.last().expect("lines");
    assert_eq!(last, 59);
    let first = read[0];
    assert_eq!(read, (first..=59).collect::<Vec<_>>());
}

#[test]
fn an_unwritable_directory_says_what_to_check() {
    let e = FileSink::open(Path::new("/nonexistent-dir/alerts.jsonl"), 0, 1).err().expect("fails");
    assert!(e.to_string().contains("/nonexistent-dir/alerts.jsonl") && e.to_string().contains("writable"));
}

#[test]
fn alert_files_are_created_for_their_owner_only() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("alerts.jsonl");
    let mut sink = FileSink::open(&path, 100, 2).expect("open");
    let mode = |p: &Path| std::fs::metadata(p).expect("stat").permissions().mode() & 0o777;
    assert_eq!(mode(&path), 0o600, "argv in alerts may hold secrets");
    let lines: Vec<Vec<u8>> = (0..20).map(|i| format!("{{\"n\":{i}}}").into_bytes()).collect();
    sink.write_lines(&lines).expect("write");
    assert!(sink.rotations > 0);
    assert_eq!(mode(&path), 0o600, "a rotated-in file too");
}

#[test]
fn a_deleted_file_is_opened_anew_and_rotation_goes_on() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("alerts.jsonl");
    let mut sink = FileSink::open(&path, 300, 2).expect("open");
    sink.write_lines(&[b"{\"n\":0}".to_vec()]).expect("first");
    std::fs::remove_file(&path).expect("delete under the sink");
    sink.write_lines(&[b"{\"n\":1}".to_vec()]).expect("after deletion");
    assert_eq!(std::fs::read_to_string(&path).expect("the path again"), "{\"n\":1}\n");
    assert_eq!(sink.reopens, 1);
    // Replaced by another file: the new one is followed as well.
    std::fs::remove_file(&path).expect("delete");
    std::fs::write(&path, b"{\"other\":true}\n").expect("replace");
    let lines: Vec<Vec<u8>> =
        (2..40).map(|i| format!("{{\"n\":{i},\"pad\":\"{}\"}}", "x".repeat(20)).into_bytes()).collect();
    sink.write_lines(&lines).expect("rotations after a deletion");
    assert_eq!(sink.reopens, 2);
    assert!(sink.rotations > 0);
    let mut stats = AlertStats::default();
    sink.add_stats(&mut stats);
    assert_eq!((stats.file_errors, stats.file_reopens), (0, 2));
}

/// A 8 KiB tmpfs mounted on a temporary directory, unmounted on drop.
struct Tiny(tempfile::TempDir);

impl Tiny {
    fn mount() -> Option<Self> {
        use nix::mount::{MsFlags, mount};
        let dir = tempfile::tempdir().expect("tempdir");
        mount(Some("tmpfs"), dir.path(), Some("tmpfs"), MsFlags::empty(), Some("size=8k,mode=0700"))
            .map_err(|e| eprintln!("skipped: cannot mount a tmpfs ({e}): needs root"))
            .ok()?;
        Some(Self(dir))
    }
}

impl Drop for Tiny {
    fn drop(&mut self) {
        let _ = nix::mount::umount(self.0.path());
    }
}

#[test]
fn a_full_disk_never_leaves_a_torn_line() {
    let Some(tiny) = Tiny::mount() else { return };
    let path = tiny.0.path().join("alerts.jsonl");
    let mut sink = FileSink::open(&path, 0, 1).expect("open");
    // Lines of 1,000 bytes: the eighth or ninth does not fit whole.
    let big = |i: usize| format!("{{\"n\":{i},\"pad\":\"{}\"}}", "x".repeat(980)).into_bytes();
    let mut failed = 0;
    for i in 0..12 {
        if sink.write_lines(&[big(i)]).is_err() {
            failed += 1;
        }
    }
    assert!(failed > 0, "the tmpfs filled up");
    // A short alert after the failures starts on a line of its own.
    sink.write_lines(&[b"{\"n\":\"short\"}".to_vec()]).expect("a short line still fits");
    let text = std::fs::read_to_string(&path).expect("read");
    assert!(text.ends_with('\n'), "ends with a whole line");
    for l in text.lines() {
        serde_json::from_str::<serde_json::Value>(l).unwrap_or_else(|e| panic!("torn line ({e}): {l:.60}"));
    }
    let mut stats = AlertStats::default();
    sink.add_stats(&mut stats);
    assert_eq!(stats.file_errors, failed, "each lost line counted");
}
