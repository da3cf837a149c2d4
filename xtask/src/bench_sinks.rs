//! `cargo xtask bench-drift --sinks`: what the NATS JetStream alert sink
//! costs the node against the alert file, measured in the same session on
//! the same container, runs alternating (in turn first) so drift over the
//! session does not land on one sink.
//!
//! Two storms per run: the steady state (a listed binary, answered in the
//! kernel fast path: the sink only idles beside it) and first sight (every
//! exec a new unlisted binary, so every exec is an alert the sink carries).
//! The NATS server is Debian's `nats-server` on loopback with file storage,
//! started here, on the same two cores: in a fleet it runs elsewhere, so
//! besides exec rates the CPU time of the agent and of the server during
//! the first-sight storm is printed apart (from `/proc/<pid>/stat`): the
//! agent's own cost per alert is the sink's cost to a node. Nothing here
//! asserts; it prints rates, CPU times and the ratios.

use std::time::Duration;

use anyhow::Context as _;
use verifier_tests::{
    agent::{Agent, final_stats},
    nats::{NatsServer, free_port},
    runc::Container,
};

use crate::{
    storms::{storm, storm_new},
    util::verifier_bin,
};

/// Which sink a run uses.
#[derive(Clone, Copy)]
enum Sink {
    File,
    Nats,
}

/// `verify`: the verifying agent's arguments; each run takes a fresh set
/// of `new` unlisted binaries, `/opt/new<first_set>` onwards.
pub fn run(
    container: &Container,
    dir: &std::path::Path,
    verify: &[&str],
    rounds: u32,
    execs: u32,
    new: u32,
    first_set: u32,
) -> anyhow::Result<()> {
    let server = NatsServer::start(free_port()?, &dir.join("nats")).context("the benchmark's nats-server")?;
    let url = server.url();
    let file = dir.join("alerts.jsonl");
    let file_arg = file.to_str().context("utf-8 path")?.to_owned();
    println!(
        "alert sinks: file against NATS JetStream ({url}), {execs} steady execs, {new} new binaries per run"
    );
    println!(
        "{:>5} {:>6} {:>10} {:>10} {:>8} {:>8} {:>8} {:>9} {:>10}",
        "round", "sink", "steady/s", "first/s", "alerts", "sent", "lost", "agent ms", "server ms"
    );
    let mut totals = [[0.0f64; 2]; 2];
    // First-sight storm CPU, milliseconds: [sink][agent, server].
    let mut cpu = [[0.0f64; 2]; 2];
    let mut set = first_set;
    for round in 0..rounds {
        let order = if round % 2 == 0 { [Sink::File, Sink::Nats] } else { [Sink::Nats, Sink::File] };
        for sink in order {
            let _ = std::fs::remove_file(&file);
            let mut args: Vec<&str> = verify.to_vec();
            args.push("--no-alert-stdout");
            match sink {
                Sink::File => args.extend(["--alert-file", &file_arg]),
                Sink::Nats => args.extend(["--alert-nats", &url]),
            }
            let agent = Agent::start_bin(&verifier_bin(), &args)?;
            storm(container, "/opt/bin/tiny", 1)?; // verified once, then the fast path
            std::thread::sleep(Duration::from_millis(300));
            let steady = storm(container, "/opt/bin/tiny", execs)?;
            let before = (cpu_ms(agent.pid()), cpu_ms(server.pid()));
            let first = storm_new(container, set, new)?;
            set += 1;
            // Let the alerts out before stopping (shutdown is not measured).
            std::thread::sleep(Duration::from_millis(500));
            let used = (cpu_ms(agent.pid()) - before.0, cpu_ms(server.pid()) - before.1);
            let records = agent.stop()?;
            let s = &final_stats(&records)?["alerts"];
            let emitted: u64 =
                s["emitted"].as_object().map_or(0, |m| m.values().filter_map(|v| v.as_u64()).sum());
            let (name, sent, lost, i) = match sink {
                Sink::File => ("file", emitted, s["file_errors"].as_u64().unwrap_or(0), 0),
                Sink::Nats => {
                    ("nats", s["nats_sent"].as_u64().unwrap_or(0), s["nats_lost"].as_u64().unwrap_or(0), 1)
                }
            };
            println!(
                "{:>5} {name:>6} {steady:>10.0} {first:>10.0} {emitted:>8} {sent:>8} {lost:>8} {:>9.0} {:>10.0}",
                round + 1,
                used.0,
                used.1
            );
            totals[i][0] += steady;
            totals[i][1] += first;
            cpu[i][0] += used.0;
            cpu[i][1] += used.1;
        }
    }
    let [file_t, nats_t] = totals;
    println!(
        "alert sinks: NATS against file: steady state {:+.2}% exec rate, first sight {:+.2}% exec rate",
        (nats_t[0] / file_t[0] - 1.0) * 100.0,
        (nats_t[1] / file_t[1] - 1.0) * 100.0
    );
    let alerts = f64::from(new) * f64::from(rounds.max(1));
    println!(
        "alert sinks: first-sight CPU per alert: agent {:.3} ms with the file, {:.3} ms with NATS ({:+.2}%); \
         nats-server {:.3} ms (on this node only because the benchmark runs it here)",
        cpu[0][0] / alerts,
        cpu[1][0] / alerts,
        (cpu[1][0] / cpu[0][0].max(1.0) - 1.0) * 100.0,
        cpu[1][1] / alerts
    );
    drop(server);
    Ok(())
}

/// User plus system CPU time of a process so far, in milliseconds (0 when
/// it cannot be read).
fn cpu_ms(pid: u32) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { return 0.0 };
    // Fields after the command (which may hold spaces) end with `)`.
    let Some((_, rest)) = stat.rsplit_once(')') else { return 0.0 };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the line, 12 and 13 here.
    let ticks: f64 = fields.get(11..13).map_or(0.0, |f| f.iter().filter_map(|v| v.parse::<f64>().ok()).sum());
    // USER_HZ: 100 on every Linux architecture this runs on (x86-64).
    ticks * 10.0
}
