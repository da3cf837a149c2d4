//! `cargo xtask bench-drift --sinks`: what the NATS JetStream alert sink
//! costs the node against the alert file, measured in the same session on
//! the same container, runs alternating (in turn first) so drift over the
//! session does not land on one sink.
//!
//! Two storms per run: the steady state (a listed binary, answered in the
//! kernel fast path: the sink only idles beside it) and first sight (every
//! exec a new unlisted binary, so every exec is an alert the sink carries).
//! The NATS server is Debian's `nats-server` on loopback with file storage,
//! started here. Nothing here asserts; it prints rates and the ratio.

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
        "{:>5} {:>6} {:>10} {:>10} {:>8} {:>8} {:>8}",
        "round", "sink", "steady/s", "first/s", "alerts", "sent", "lost"
    );
    let mut totals = [[0.0f64; 2]; 2];
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
            let first = storm_new(container, set, new)?;
            set += 1;
            // Let the alerts out before stopping (shutdown is not measured).
            std::thread::sleep(Duration::from_millis(500));
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
                "{:>5} {name:>6} {steady:>10.0} {first:>10.0} {emitted:>8} {sent:>8} {lost:>8}",
                round + 1
            );
            totals[i][0] += steady;
            totals[i][1] += first;
        }
    }
    let [file_t, nats_t] = totals;
    println!(
        "alert sinks: NATS against file: steady state {:+.2}% exec rate, first sight {:+.2}% exec rate",
        (nats_t[0] / file_t[0] - 1.0) * 100.0,
        (nats_t[1] / file_t[1] - 1.0) * 100.0
    );
    drop(server);
    Ok(())
}
