//! Where formatted alerts go. The pipeline ([`super::Alerts`]) decides
//! what is written (dedup, rate limit, format); a [`Sink`] decides only
//! where, and keeps count of what it could not deliver. A new destination
//! (a message stream, a syslog socket) is one more implementation, built
//! from its options in `Alerts::new`; nothing else changes.
//!
//! The agent's stdout is lent to every call instead of owned by the stdout
//! sink: the event loop writes exec records to the same buffered writer,
//! and one writer keeps alert lines whole and in order among them. Sinks
//! that do not print ignore it.

use std::{future::Future, io::Write, pin::Pin, time::Duration};

use super::AlertStats;

/// What [`Sink::finish`] returns: the delivery still to do, awaited once.
pub(crate) type Finishing<'a> = Pin<Box<dyn Future<Output = ()> + Send + 'a>>;

/// What [`Sink::last_record`] returns: whether the record was delivered.
pub(crate) type LastRecord<'a> = Pin<Box<dyn Future<Output = bool> + Send + 'a>>;

/// One destination of the alert stream.
pub(crate) trait Sink: Send {
    /// Short name for logs: `stdout`, `file`, `webhook`.
    fn name(&self) -> &'static str;

    /// Writes a batch of records, each one JSON object without its newline.
    /// An error ends the agent (only its own stdout does that); a sink that
    /// cannot deliver counts the loss in its stats and returns `Ok`.
    fn write(&mut self, lines: &[Vec<u8>], stdout: &mut dyn Write) -> std::io::Result<()>;

    /// Periodic (every second) and before shutdown: push out what is
    /// buffered.
    fn flush(&mut self, stdout: &mut dyn Write) -> std::io::Result<()> {
        let _ = stdout;
        Ok(())
    }

    /// Shutdown: deliver what is queued within `deadline`; the rest is lost
    /// (counted). Nothing is written afterwards.
    fn finish(&mut self, deadline: Duration) -> Finishing<'_> {
        let _ = deadline;
        Box::pin(async {})
    }

    /// After [`Sink::finish`], when stdout did not take the agent's final
    /// stats record: deliver that one record (one JSON object without its
    /// newline) within `deadline`, if this sink still can. Not counted as
    /// an alert. The default (stdout itself) cannot.
    fn last_record(&mut self, line: &[u8], deadline: Duration) -> LastRecord<'_> {
        let _ = (line, deadline);
        Box::pin(async { false })
    }

    /// Adds this sink's counters (sent, retried, lost, errors) to `stats`.
    fn add_stats(&self, stats: &mut AlertStats) {
        let _ = stats;
    }
}

/// Alerts as `type: "alert"` lines among the agent's other records.
pub(crate) struct Stdout;

impl Sink for Stdout {
    fn name(&self) -> &'static str {
        "stdout"
    }

    fn write(&mut self, lines: &[Vec<u8>], stdout: &mut dyn Write) -> std::io::Result<()> {
        for l in lines {
            stdout.write_all(l)?;
            stdout.write_all(b"\n")?;
        }
        Ok(())
    }

    fn flush(&mut self, stdout: &mut dyn Write) -> std::io::Result<()> {
        stdout.flush()
    }
}
