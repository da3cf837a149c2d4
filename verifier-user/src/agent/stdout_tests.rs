use std::{
    io::{self, Write as _},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use super::Stdout;

/// A sink that keeps what it is given.
#[derive(Clone, Default)]
struct Kept(Arc<Mutex<Vec<u8>>>);

impl io::Write for Kept {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.lock().expect("lock").extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// A reader that closed its end.
struct Closed;

impl io::Write for Closed {
    fn write(&mut self, _: &[u8]) -> io::Result<usize> {
        Err(io::Error::from(io::ErrorKind::BrokenPipe))
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[test]
fn whole_lines_reach_the_reader_in_order() {
    let kept = Kept::default();
    let mut out = Stdout::spawn(kept.clone(), 1 << 20).expect("spawn");
    for i in 0..100 {
        writeln!(out, "record {i}").expect("write");
        out.flush().expect("flush");
    }
    write!(out, "half a line").expect("write");
    let ended = out.close(Duration::from_secs(5));
    assert_eq!((ended.lost, ended.broken, ended.drained), (0, false, true));
    let text = String::from_utf8(kept.0.lock().expect("lock").clone()).expect("utf-8");
    let want: String = (0..100).map(|i| format!("record {i}\n")).collect();
    assert_eq!(text, want, "an unterminated line is never written");
}

#[test]
fn a_stalled_reader_never_blocks_the_writer_and_loss_is_counted() {
    let (_read, write) = nix::unistd::pipe().expect("pipe");
    let mut out = Stdout::spawn(std::fs::File::from(write), 64 * 1024).expect("spawn");
    let line = format!("{}\n", "x".repeat(99));
    let started = Instant::now();
    let total = 10_000u64;
    for _ in 0..total {
        out.write_all(line.as_bytes()).expect("write");
        out.flush().expect("flush");
    }
    assert!(started.elapsed() < Duration::from_secs(2), "writes blocked: {:?}", started.elapsed());
    // A pipe holds 64 KiB and the queue 64 KiB: about 1,300 lines of 100 bytes.
    let lost_before_close = out.lost();
    assert!(lost_before_close > total / 2, "lost {lost_before_close} of {total}");
    let closing = Instant::now();
    let ended = out.close(Duration::from_millis(300));
    assert!(closing.elapsed() < Duration::from_secs(2), "close waited {:?}", closing.elapsed());
    assert!(!ended.drained && !ended.broken);
    assert!(ended.lost > lost_before_close && ended.lost < total, "{ended:?}");
}

#[test]
fn a_broken_pipe_is_reported_and_every_line_counted_lost() {
    let mut out = Stdout::spawn(Closed, 1 << 20).expect("spawn");
    for i in 0..50 {
        writeln!(out, "record {i}").expect("write");
        out.flush().expect("flush");
        std::thread::sleep(Duration::from_millis(1));
    }
    let ended = out.close(Duration::from_secs(5));
    assert!(ended.broken && !ended.drained, "{ended:?}");
    assert_eq!(ended.lost, 50);
}

#[test]
fn the_stderr_summary_says_what_was_lost_and_where_the_stats_went() {
    let alone = super::lost_summary(7, &[]);
    assert!(alone.contains("7 lines lost") && alone.ends_with("written here"), "{alone}");
    let both = super::lost_summary(0, &["file", "webhook"]);
    assert!(both.ends_with("written here and to the alert file and the alert webhook"), "{both}");
    assert!(!both.contains('\n'), "one line: {both}");
}
