//! One boot of one kernel: the QEMU command line, the serial console read
//! line by line (kept in a log file), a deadline, and the `CHECK` lines
//! the guest's `/checks.sh` prints, parsed.
//!
//! QEMU runs under TCG with one vCPU (KVM is not available on these
//! machines): 1 GiB, no disks, no network devices, only the serial
//! console. The guest powers off when its checks are done; the deadline
//! catches a hung guest.

use std::{
    io::{BufRead as _, Write as _},
    path::Path,
    process::Stdio,
    sync::mpsc,
    time::{Duration, Instant},
};

use anyhow::Context as _;

use super::fetch::{Fetched, Qemu};

/// The kernel command line: serial console, no reboot on panic, no timer
/// check (under TCG on a busy host the IO-APIC timer check can fail and
/// panic the boot), and BPF LSM enabled (5.10 leaves it out of its
/// default `lsm=` list).
pub(crate) const CMDLINE: &str =
    "console=ttyS0 panic=-1 quiet no_timer_check lsm=lockdown,yama,integrity,bpf";

/// One check's outcome, as the guest printed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Check {
    pub name: String,
    /// `pass`, `fail` or `skip`.
    pub result: String,
    pub detail: String,
}

/// What one boot showed.
#[derive(Debug)]
pub(crate) struct Boot {
    /// `uname -r` in the guest.
    pub release: Option<String>,
    /// From starting QEMU to the guest's `/init` running.
    pub boot_seconds: Option<f64>,
    /// From starting QEMU to its exit (or the deadline).
    pub total_seconds: f64,
    pub checks: Vec<Check>,
    /// Whether the guest finished (printed `MATRIX done`) in time.
    pub finished: bool,
}

/// Boots `kernel` with `initramfs`, writes the console to `log`.
pub(crate) fn boot(
    qemu: &Qemu,
    kernel: &Fetched,
    initramfs: &Path,
    log: &Path,
    deadline: Duration,
) -> anyhow::Result<Boot> {
    let mut cmd = qemu.command();
    cmd.args(["-accel", "tcg", "-cpu", "max", "-smp", "1", "-m", "1024"])
        .args(["-nodefaults", "-no-reboot", "-display", "none", "-serial", "stdio"])
        .arg("-kernel")
        .arg(&kernel.vmlinuz)
        .arg("-initrd")
        .arg(initramfs)
        .args(["-append", CMDLINE])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    let started = Instant::now();
    let mut child = cmd.spawn().with_context(|| format!("starting {cmd:?}"))?;
    let stdout = child.stdout.take().context("QEMU's stdout")?;
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout).split(b'\n').map_while(Result::ok) {
            let line = String::from_utf8_lossy(&line).trim_end_matches('\r').to_string();
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut log_file = std::fs::File::create(log).with_context(|| format!("creating {}", log.display()))?;
    let mut boot =
        Boot { release: None, boot_seconds: None, total_seconds: 0.0, checks: Vec::new(), finished: false };
    loop {
        let left = deadline.saturating_sub(started.elapsed());
        match rx.recv_timeout(left) {
            Ok(line) => {
                writeln!(log_file, "{line}")?;
                if let Some(rest) = line.strip_prefix("INIT ") {
                    boot.boot_seconds = Some(started.elapsed().as_secs_f64());
                    boot.release = field(rest, "release");
                } else if let Some(check) = parse_check(&line) {
                    eprintln!("  {} {}: {}", check.name, check.result, check.detail);
                    boot.checks.push(check);
                } else if line == "MATRIX done" {
                    boot.finished = true;
                }
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                writeln!(log_file, "xtask: deadline of {} s passed; QEMU killed", deadline.as_secs())?;
                let _ = child.kill();
                break;
            }
        }
    }
    let _ = child.wait();
    boot.total_seconds = started.elapsed().as_secs_f64();
    Ok(boot)
}

/// `key=value` (value up to the next space) in a line.
fn field(line: &str, key: &str) -> Option<String> {
    line.split_whitespace().find_map(|w| w.strip_prefix(key)?.strip_prefix('=')).map(str::to_string)
}

/// `CHECK name=N result=R detail=free text` (the console may prefix it
/// with kernel output, so it is found anywhere in the line).
pub(crate) fn parse_check(line: &str) -> Option<Check> {
    let rest = &line[line.find("CHECK name=")? + "CHECK ".len()..];
    let (head, detail) = rest.split_once(" detail=").unwrap_or((rest, ""));
    Some(Check {
        name: field(head, "name")?,
        result: field(head, "result")?,
        detail: detail.trim().to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_check_line_is_parsed_with_its_free_text_detail() {
        let c = parse_check("CHECK name=exec-records result=pass detail=\"filename\":\"/bin/sleep\" in x")
            .expect("parsed");
        assert_eq!(c.name, "exec-records");
        assert_eq!(c.result, "pass");
        assert_eq!(c.detail, "\"filename\":\"/bin/sleep\" in x");
    }

    #[test]
    fn kernel_noise_before_a_check_is_ignored_and_other_lines_are_not_checks() {
        let c = parse_check("[   12.3] audit: x CHECK name=fast-path result=fail detail=").expect("parsed");
        assert_eq!((c.name.as_str(), c.result.as_str(), c.detail.as_str()), ("fast-path", "fail", ""));
        assert_eq!(parse_check("AGENT ready after 3 s"), None);
        assert_eq!(parse_check("CHECK name=x"), None, "no result");
    }
}
