//! The agent's stdout, without back-pressure on the event loop.
//!
//! A log reader that stalls (a full pipe, a frozen log shipper) must not
//! stall the agent: while the event loop waits on a write it drains no ring
//! buffer, answers no `/healthz` and ignores SIGTERM. So the loop never
//! writes stdout itself. [`Stdout`] collects whole lines; on `flush` they go
//! to a queue bounded in bytes, which a writer thread copies to the real
//! stdout at whatever pace the reader allows. Past the bound, lines are
//! dropped and counted (`user.stdout_lost`): loss is named, never silent.
//!
//! A broken pipe is said once on stderr; the agent keeps running (the
//! alert sinks and `/metrics` still work), counts every later line as lost
//! and says it in its exit code. At shutdown the queue gets a few seconds
//! to drain; whatever is still queued then is counted lost, and the caller
//! writes the final stats to stderr instead.

use std::{
    collections::VecDeque,
    io::{self, Write},
    sync::{Arc, Condvar, Mutex, MutexGuard},
    thread,
    time::{Duration, Instant},
};

/// Bytes queued for the writer thread before lines are dropped: several
/// seconds of a busy node's records, a bounded amount of memory.
pub(crate) const DEFAULT_BOUND: usize = 8 * 1024 * 1024;

/// Lines gathered in the event loop before a flush hands them over.
const GATHER: usize = 64 * 1024;

#[derive(Default)]
struct Queue {
    chunks: VecDeque<Vec<u8>>,
    bytes: usize,
    /// The writer is in a `write` call (the chunk it holds is not queued).
    writing: bool,
    /// No more chunks will come.
    closed: bool,
    /// The reader closed its end: every later line is lost.
    broken: bool,
    /// Lines dropped: queue full, broken pipe, or not drained at the end.
    lost: u64,
}

struct Shared {
    queue: Mutex<Queue>,
    /// Signalled on a new chunk, on close, and when the writer goes idle.
    changed: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// How stdout ended, for the final stats and the exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Ended {
    /// Lines that never reached the reader.
    pub lost: u64,
    /// The reader had closed its end (broken pipe).
    pub broken: bool,
    /// Everything handed over was written.
    pub drained: bool,
}

/// The line on stderr, before the final stats record, when stdout did not
/// take it: how many lines stdout lost, and which alert sinks got the
/// record too (`took`: sink names), so an operator reading only the log
/// knows where to look.
pub(crate) fn lost_summary(lost: u64, took: &[&str]) -> String {
    let also = match took {
        [] => String::new(),
        names => format!(" and to the alert {}", names.join(" and the alert ")),
    };
    format!("verifier: stdout did not take the final stats ({lost} lines lost on stdout); written here{also}")
}

/// A `Write` for the event loop that never blocks on the reader.
pub(crate) struct Stdout {
    pending: Vec<u8>,
    bound: usize,
    shared: Arc<Shared>,
}

impl Stdout {
    /// Starts the writer thread over `sink` (the process's stdout in the
    /// agent), with at most `bound` bytes queued.
    pub(crate) fn spawn(sink: impl Write + Send + 'static, bound: usize) -> io::Result<Self> {
        let shared = Arc::new(Shared { queue: Mutex::new(Queue::default()), changed: Condvar::new() });
        let theirs = Arc::clone(&shared);
        thread::Builder::new().name("stdout".into()).spawn(move || write_out(sink, &theirs))?;
        Ok(Self { pending: Vec::with_capacity(GATHER), bound, shared })
    }

    /// Over the agent's own stdout (a duplicate of fd 1, so the standard
    /// library's stdout lock is never held by a thread stuck in `write`).
    pub(crate) fn process(bound: usize) -> io::Result<Self> {
        use std::os::fd::AsFd as _;
        let fd = io::stdout().as_fd().try_clone_to_owned()?;
        Self::spawn(std::fs::File::from(fd), bound)
    }

    /// Lines lost so far.
    pub(crate) fn lost(&self) -> u64 {
        self.shared.lock().lost
    }

    /// Hands over what is pending, then waits up to `wait` for the writer
    /// to write everything; what is left then is counted lost.
    pub(crate) fn close(mut self, wait: Duration) -> Ended {
        self.hand_over();
        let deadline = Instant::now() + wait;
        let mut q = self.shared.lock();
        q.closed = true;
        self.shared.changed.notify_all();
        while (q.writing || !q.chunks.is_empty()) && !q.broken {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            q = self.shared.changed.wait_timeout(q, left).unwrap_or_else(|e| e.into_inner()).0;
        }
        let drained = !q.writing && q.chunks.is_empty() && !q.broken;
        let stranded: u64 = q.chunks.drain(..).map(|c| lines(&c)).sum();
        q.lost += stranded;
        q.bytes = 0;
        Ended { lost: q.lost, broken: q.broken, drained }
    }

    /// Moves the complete lines of `pending` to the queue, or counts them
    /// lost when the queue is full or the reader is gone.
    fn hand_over(&mut self) {
        let Some(end) = self.pending.iter().rposition(|&b| b == b'\n') else { return };
        let rest = self.pending.split_off(end + 1);
        let chunk = std::mem::replace(&mut self.pending, rest);
        let mut q = self.shared.lock();
        if q.broken || q.bytes + chunk.len() > self.bound {
            q.lost += lines(&chunk);
            return;
        }
        q.bytes += chunk.len();
        q.chunks.push_back(chunk);
        self.shared.changed.notify_all();
    }
}

impl Write for Stdout {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.pending.extend_from_slice(buf);
        if self.pending.len() >= GATHER {
            self.hand_over();
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.hand_over();
        Ok(())
    }
}

fn lines(chunk: &[u8]) -> u64 {
    chunk.iter().filter(|&&b| b == b'\n').count() as u64
}

/// The writer thread: one chunk at a time, at the reader's pace.
fn write_out(mut sink: impl Write, shared: &Shared) {
    loop {
        let chunk = {
            let mut q = shared.lock();
            loop {
                if let Some(c) = q.chunks.pop_front() {
                    q.bytes -= c.len();
                    q.writing = true;
                    break c;
                }
                if q.closed {
                    return;
                }
                q = shared.changed.wait(q).unwrap_or_else(|e| e.into_inner());
            }
        };
        let result = sink.write_all(&chunk).and_then(|()| sink.flush());
        let mut q = shared.lock();
        q.writing = false;
        if let Err(e) = result {
            q.lost += lines(&chunk);
            if !q.broken {
                q.broken = true;
                let stranded: u64 = q.chunks.drain(..).map(|c| lines(&c)).sum();
                q.lost += stranded;
                q.bytes = 0;
                eprintln!(
                    "verifier: stdout is closed ({e}): records from now on are counted as user.stdout_lost, not written"
                );
            }
        }
        shared.changed.notify_all();
        if q.broken {
            return;
        }
    }
}

#[cfg(test)]
#[path = "stdout_tests.rs"]
mod tests;
