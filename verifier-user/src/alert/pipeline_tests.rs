//! The pipeline end to end in memory: dedup, rate limit and their records.

use clap::Parser as _;
use serde_json::Value;

use super::*;
use crate::alert::finding::{FileFacts, Process, Subject, Workload};
use crate::verify::verdict::Verdict;

#[derive(clap::Parser)]
struct Cli {
    #[command(flatten)]
    alerts: AlertArgs,
}

fn alerts(args: &[&str]) -> Alerts {
    let cli = Cli::parse_from(std::iter::once("t").chain(args.iter().copied()));
    Alerts::new(&cli.alerts, "n").expect("alerts")
}

const S: i128 = 1_000_000_000;

fn finding(path: &str, t: i128) -> Finding {
    Finding {
        unix_ns: t,
        node: "n".into(),
        subject: Subject::Exec,
        verdict: Verdict::UnknownBinary,
        severity: Verdict::UnknownBinary.severity(),
        reason: "r".into(),
        workload: Workload { image_digest: Some("sha256:aa".into()), ..Workload::default() },
        process: Process::default(),
        file: FileFacts { path: path.into(), sha256: Some("ab".repeat(32)), ..FileFacts::default() },
        script: None,
        sbom_sources: Vec::new(),
        sbom_format: None,
        unjudged_new: None,
        policy: None,
        response: None,
    }
}

fn lines(out: &[u8]) -> Vec<Value> {
    out.split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| serde_json::from_slice(l).expect("json"))
        .collect()
}

#[test]
fn repeats_fold_into_one_update_per_interval() {
    let mut a = alerts(&["--alert-update-interval", "10"]);
    let mut out = Vec::new();
    let t0 = 1000 * S;
    for i in 0..1000 {
        a.submit(&finding("/x", t0 + i), &mut out).expect("submit");
    }
    a.tick(t0 + S, &mut out).expect("tick");
    assert_eq!(lines(&out).len(), 1, "one alert, no update before the interval");
    a.tick(t0 + 11 * S, &mut out).expect("tick");
    let recs = lines(&out);
    assert_eq!((recs[1]["type"].as_str(), recs[1]["count"].as_u64()), (Some("alert-update"), Some(1000)));
    assert_eq!(recs[1]["alert_id"], recs[0]["alert_id"]);
}

#[test]
fn held_back_alerts_are_summarized_and_never_updated() {
    let mut a = alerts(&["--alert-rate", "1", "--alert-burst", "1", "--alert-update-interval", "1"]);
    let mut out = Vec::new();
    let t0 = 1000 * S;
    a.submit(&finding("/a", t0), &mut out).expect("a");
    for i in 0..5 {
        a.submit(&finding("/b", t0 + i), &mut out).expect("b held back");
    }
    a.tick(t0 + 2 * S, &mut out).expect("tick");
    let recs = lines(&out);
    let kinds: Vec<&str> = recs.iter().filter_map(|r| r["type"].as_str()).collect();
    assert_eq!(kinds, ["alert", "alert-suppressed"], "{recs:?}");
    assert_eq!(recs[1]["suppressed"]["unknown-binary"], 5, "each occurrence counted");
    // Once tokens are back, /b is a new alert, not an update of one never sent.
    a.submit(&finding("/b", t0 + 3 * S), &mut out).expect("b");
    let recs = lines(&out);
    assert_eq!((recs[2]["type"].as_str(), recs[2]["file"]["path"].as_str()), (Some("alert"), Some("/b")));
    let s = a.stats();
    assert_eq!((s.suppressed, s.emitted["unknown-binary"], s.updates), (5, 2, 0));
}

/// Keeps what it is given, for comparison with stdout.
struct Memory(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl Sink for Memory {
    fn name(&self) -> &'static str {
        "memory"
    }

    fn write(&mut self, lines: &[Vec<u8>], _stdout: &mut dyn std::io::Write) -> std::io::Result<()> {
        let mut kept = self.0.lock().expect("memory sink");
        for l in lines {
            kept.extend_from_slice(l);
            kept.push(b'\n');
        }
        Ok(())
    }
}

/// Alerts, updates and summaries from a run of `a`, as (stdout, memory).
fn run_with_memory(mut a: Alerts) -> (Vec<Value>, Vec<Value>) {
    let kept = std::sync::Arc::default();
    a.add_sink(Box::new(Memory(std::sync::Arc::clone(&kept))));
    let mut out = Vec::new();
    let t0 = 1000 * S;
    a.submit(&finding("/a", t0), &mut out).expect("a");
    a.tick(t0 + 1, &mut out).expect("first tick");
    for i in 0..5 {
        a.submit(&finding("/a", t0 + i), &mut out).expect("repeat");
        a.submit(&finding(&format!("/b{i}"), t0 + i), &mut out).expect("b");
    }
    a.tick(t0 + 3 * S, &mut out).expect("tick");
    a.submit(&finding("/c", t0 + 4 * S), &mut out).expect("c");
    let memory = lines(&kept.lock().expect("memory sink"));
    (lines(&out), memory)
}

#[test]
fn every_sink_gets_what_stdout_gets() {
    let args = ["--alert-rate", "1", "--alert-burst", "3", "--alert-update-interval", "1"];
    let (stdout, memory) = run_with_memory(alerts(&args));
    let kinds: Vec<&str> = stdout.iter().filter_map(|r| r["type"].as_str()).collect();
    for kind in ["alert", "alert-update", "alert-suppressed"] {
        assert!(kinds.contains(&kind), "a run with every record type: {kinds:?}");
    }
    assert_eq!(memory, stdout);

    // Without stdout nothing is printed, and the other sink still gets
    // everything: the trait is the only way out of the pipeline.
    let quiet: Vec<&str> = args.iter().copied().chain(["--no-alert-stdout"]).collect();
    let (none, all) = run_with_memory(alerts(&quiet));
    assert!(none.is_empty(), "{none:?}");
    assert_eq!(all, memory);
}

#[test]
fn sink_counters_reach_the_stats() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("alerts.jsonl");
    let path_arg = path.to_str().expect("utf-8 path");
    let mut a = alerts(&["--alert-file", path_arg, "--alert-file-max-bytes", "1", "--no-alert-stdout"]);
    let mut out = Vec::new();
    for (i, p) in ["/a", "/b", "/c"].into_iter().enumerate() {
        a.submit(&finding(p, 1000 * S + i as i128), &mut out).expect("submit");
    }
    let written = std::fs::read_to_string(&path).expect("alert file");
    assert_eq!(lines(written.as_bytes()).len(), 1, "one line per file past the size");
    let s = a.stats();
    assert_eq!((s.file_rotations, s.file_errors, s.emitted["unknown-binary"]), (2, 0, 3));
}

#[test]
fn the_last_record_goes_to_the_alert_file_in_native_format_only() {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let dir = tempfile::tempdir().expect("tempdir");
    for (format, wanted) in [("native", true), ("falco", false), ("ocsf", false)] {
        let file = dir.path().join(format!("{format}.jsonl"));
        let path = file.to_str().expect("utf-8");
        let mut a = rt.block_on(async { alerts(&["--alert-format", format, "--alert-file", path]) });
        let mut out = Vec::new();
        a.submit(&finding("/x", 1000 * S), &mut out).expect("submit");
        let line = br#"{"schema":"verifier.stats.v1","type":"stats","final":true}"#;
        let took = rt.block_on(async {
            a.finish(1001 * S, &mut out, Duration::from_millis(10)).await.expect("finish");
            a.last_record(line, Duration::from_millis(10)).await
        });
        let text = std::fs::read_to_string(&file).expect("alert file");
        let last = text.lines().last().unwrap_or_default();
        assert_eq!(took == ["file"], wanted, "{format}: {took:?}");
        assert_eq!(last.as_bytes() == line, wanted, "{format}: {text}");
        assert_eq!(text.lines().count(), 1 + usize::from(wanted), "{format}: {text}");
    }
}
