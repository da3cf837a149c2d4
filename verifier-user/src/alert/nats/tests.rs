//! Names, subjects and message ids; then delivery to a real `nats-server`
//! with JetStream, started here on a free port: acknowledged publishing,
//! a server that comes up late, a restart with the same storage (nothing
//! lost, nothing stored twice), the byte bound, and a missing stream with
//! `--alert-nats-no-create`.

use std::{
    net::TcpListener,
    process::{Child, Command, Stdio},
};

use async_nats::jetstream::{self, stream};

use super::*;

#[test]
fn names_and_subjects_are_checked() {
    assert_eq!(default_subject("node-1"), "verifier.alerts.node-1");
    assert_eq!(default_subject("n1.example.com"), "verifier.alerts.n1_example_com");
    assert_eq!(default_subject(""), "verifier.alerts._");
    for ok in ["verifier.alerts.a", "x"] {
        check_subject(ok).expect(ok);
    }
    for bad in ["", "a..b", "a.*", "a.>", "a b", ".a"] {
        assert!(check_subject(bad).expect_err(bad).to_string().contains("verifier.alerts.node1"), "{bad}");
    }
    check_stream("VERIFIER_ALERTS").expect("name");
    for bad in ["", "A.B", "A B", "A/B", "*"] {
        check_stream(bad).expect_err(bad);
    }
    assert!(servers("nats://127.0.0.1:4222, tls://n2:4222").expect("urls").len() == 2);
    assert!(servers("http://x:1").is_err(), "not a NATS scheme");
}

#[test]
fn subject_filters_match_as_the_server_does() {
    assert!(subject_matches("verifier.alerts.>", "verifier.alerts.n1"));
    assert!(subject_matches("verifier.alerts.>", "verifier.alerts.a.b"));
    assert!(!subject_matches("verifier.alerts.>", "verifier.alerts"));
    assert!(subject_matches("verifier.*.n1", "verifier.alerts.n1"));
    assert!(!subject_matches("verifier.*", "verifier.alerts.n1"));
    assert!(!subject_matches("a.b", "a.b.c"));
    assert_eq!(stream_subjects("verifier.alerts.n1"), ["verifier.alerts.>"]);
    assert_eq!(stream_subjects("team.drift"), ["team.drift"]);
}

#[test]
fn message_ids_follow_the_bytes_and_alert_ids_are_found_in_every_format() {
    let a = Record::new(br#"{"type":"alert","alert_id":"abc","node":"n1"}"#);
    let again = Record::new(br#"{"type":"alert","alert_id":"abc","node":"n1"}"#);
    let other_node = Record::new(br#"{"type":"alert","alert_id":"abc","node":"n2"}"#);
    assert_eq!(a.id, again.id, "a retry carries the same id");
    assert_ne!(a.id, other_node.id, "the same alert on another node is another message");
    assert_eq!(a.id.len(), 32);
    assert_eq!(a.alert_id.as_deref(), Some("abc"));
    let falco = Record::new(br#"{"output_fields":{"verifier.alert_id":"f1"}}"#);
    assert_eq!(falco.alert_id.as_deref(), Some("f1"));
    let ocsf = Record::new(br#"{"finding_info":{"uid":"o1"}}"#);
    assert_eq!(ocsf.alert_id.as_deref(), Some("o1"));
    assert_eq!(Record::new(b"{}").alert_id, None);
}

/// A `nats-server` with JetStream on a free port, storing in `dir`;
/// killed when dropped.
struct Server {
    child: Child,
}

impl Server {
    /// `None` (with the reason printed) when the binary is missing.
    fn start(port: u16, dir: &Path) -> Option<Self> {
        let Ok(bin) = which_nats_server() else {
            eprintln!("skipped: nats-server is not installed (cargo xtask setup installs it)");
            return None;
        };
        let child = Command::new(bin)
            .args(["-js", "-a", "127.0.0.1", "-p", &port.to_string(), "-sd"])
            .arg(dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("nats-server starts");
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(std::time::Instant::now() < deadline, "nats-server did not listen on {port}");
            std::thread::sleep(Duration::from_millis(20));
        }
        Some(Self { child })
    }

    fn stop(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn which_nats_server() -> Result<PathBuf, ()> {
    ["/usr/sbin/nats-server", "/usr/bin/nats-server", "/usr/local/bin/nats-server"]
        .into_iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .ok_or(())
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port()
}

fn config(port: u16) -> NatsConfig {
    let mut c = NatsConfig::new(&format!("nats://127.0.0.1:{port}"), "unit-node").expect("url");
    c.backoff_initial = Duration::from_millis(20);
    c.backoff_max = Duration::from_millis(300);
    c.ack_timeout = Duration::from_millis(800);
    c
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime")
}

fn line(i: usize) -> Vec<u8> {
    format!(r#"{{"type":"alert","alert_id":"id{i}","node":"unit-node","n":{i}}}"#).into_bytes()
}

/// Every message in `stream`: (Nats-Msg-Id, Verifier-Alert-Id, payload).
async fn stored(port: u16, stream: &str) -> Vec<(String, String, Vec<u8>)> {
    let client = async_nats::connect(format!("127.0.0.1:{port}")).await.expect("connect");
    let js = jetstream::new(client);
    let mut s = js.get_stream(stream).await.expect("stream exists");
    let last = s.info().await.expect("info").state.last_sequence;
    let mut out = Vec::new();
    for seq in 1..=last {
        let Ok(m) = s.get_raw_message(seq).await else { continue };
        let h = |k: &str| m.headers.get(k).map(|v| v.as_str().to_owned()).unwrap_or_default();
        out.push((h("Nats-Msg-Id"), h("Verifier-Alert-Id"), m.payload.to_vec()));
    }
    out
}

#[test]
fn records_are_published_with_ids_and_acknowledged() {
    let dir = tempfile::tempdir().expect("tmp");
    let port = free_port();
    let Some(server) = Server::start(port, dir.path()) else { return };
    let rt = runtime();
    let (stats, got) = rt.block_on(async {
        let mut sink = Nats::start(config(port)).expect("start");
        for i in 0..200 {
            sink.send(&line(i));
        }
        sink.shutdown(Duration::from_secs(10)).await;
        let s = sink.stats();
        let stats = [&s.sent, &s.duplicates, &s.retries, &s.lost].map(|c| c.load(Ordering::Relaxed));
        (stats, stored(port, DEFAULT_STREAM).await)
    });
    server.stop();
    assert_eq!(stats, [200, 0, 0, 0], "sent, duplicates, retries, lost");
    assert_eq!(got.len(), 200);
    for (i, (msg_id, alert_id, payload)) in got.iter().enumerate() {
        assert_eq!(payload, &line(i), "stored in order");
        assert_eq!(msg_id, &Record::new(&line(i)).id);
        assert_eq!(alert_id, &format!("id{i}"));
    }
}

#[test]
fn nothing_is_lost_or_stored_twice_across_a_late_start_and_a_restart() {
    let dir = tempfile::tempdir().expect("tmp");
    let port = free_port();
    if which_nats_server().is_err() {
        eprintln!("skipped: nats-server is not installed (cargo xtask setup installs it)");
        return;
    }
    let rt = runtime();
    let (stats, got) = rt.block_on(async {
        let mut sink = Nats::start(config(port)).expect("start");
        // The server is not up yet: the first records wait in the queue.
        for i in 0..10 {
            sink.send(&line(i));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        let server = Server::start(port, dir.path()).expect("server");
        for i in 10..20 {
            sink.send(&line(i));
        }
        wait_sent(&sink, 20).await;
        // Down mid-stream, records keep coming, then up on the same storage.
        server.stop();
        for i in 20..40 {
            sink.send(&line(i));
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let server = Server::start(port, dir.path()).expect("server again");
        sink.shutdown(Duration::from_secs(30)).await;
        let s = sink.stats();
        let stats = [&s.sent, &s.retries, &s.lost].map(|c| c.load(Ordering::Relaxed));
        let got = stored(port, DEFAULT_STREAM).await;
        drop(server);
        (stats, got)
    });
    assert_eq!(stats[2], 0, "lost: {stats:?}");
    assert_eq!(stats[0], 40, "sent: {stats:?}");
    assert!(stats[1] > 0, "the records sent while the server was down were retried: {stats:?}");
    let mut payloads: Vec<Vec<u8>> = got.into_iter().map(|(_, _, p)| p).collect();
    payloads.sort();
    let mut want: Vec<Vec<u8>> = (0..40).map(line).collect();
    want.sort();
    assert_eq!(payloads, want, "every record stored exactly once");
}

async fn wait_sent(sink: &Nats, n: u64) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while sink.stats().sent.load(Ordering::Relaxed) < n {
        assert!(tokio::time::Instant::now() < deadline, "only {:?} sent", sink.stats().sent);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[test]
fn the_queue_is_bounded_in_bytes_and_the_shutdown_deadline_counts_the_rest() {
    // No server at all: nothing can be delivered.
    let port = free_port();
    let rt = runtime();
    let stats = rt.block_on(async {
        let mut c = config(port);
        c.queue_bytes = 10 * line(0).len() + 5;
        let mut sink = Nats::start(c).expect("start");
        for i in 0..25 {
            sink.send(&line(i));
        }
        let lost_at_once = sink.stats().lost.load(Ordering::Relaxed);
        sink.shutdown(Duration::from_millis(300)).await;
        sink.send(&line(99));
        let s = sink.stats();
        (lost_at_once, s.sent.load(Ordering::Relaxed), s.lost.load(Ordering::Relaxed))
    });
    assert_eq!(stats, (15, 0, 26), "15 over the bound, then 10 at the deadline and 1 after shutdown");
}

#[test]
fn a_missing_stream_is_waited_for_when_the_agent_may_not_create_it() {
    let dir = tempfile::tempdir().expect("tmp");
    let port = free_port();
    let Some(server) = Server::start(port, dir.path()) else { return };
    let rt = runtime();
    let (sent, lost, got) = rt.block_on(async {
        let mut c = config(port);
        c.create = false;
        c.stream = "OPS_DRIFT".into();
        c.subject = "ops.drift.n1".into();
        let mut sink = Nats::start(c).expect("start");
        sink.send(&line(1));
        tokio::time::sleep(Duration::from_millis(700)).await;
        assert_eq!(sink.stats().sent.load(Ordering::Relaxed), 0, "no stream, nothing acknowledged");
        let client = async_nats::connect(format!("127.0.0.1:{port}")).await.expect("connect");
        jetstream::new(client)
            .create_stream(stream::Config {
                name: "OPS_DRIFT".into(),
                subjects: vec!["ops.drift.*".into()],
                ..Default::default()
            })
            .await
            .expect("operator creates the stream");
        sink.send(&line(2));
        sink.shutdown(Duration::from_secs(10)).await;
        let s = sink.stats();
        (s.sent.load(Ordering::Relaxed), s.lost.load(Ordering::Relaxed), stored(port, "OPS_DRIFT").await)
    });
    server.stop();
    assert_eq!((sent, lost), (2, 0));
    assert_eq!(got.iter().map(|(_, _, p)| p.clone()).collect::<Vec<_>>(), [line(1), line(2)]);
}
