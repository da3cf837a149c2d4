//! URL parsing, the retry table, the batch deadline on a fake clock, and
//! delivery to a real local receiver that answers as scripted.

use std::{
    io::{Read as _, Write as _},
    net::TcpListener,
    sync::mpsc as std_mpsc,
};

use super::*;

#[test]
fn urls_parse_or_say_what_is_supported() {
    let c = WebhookConfig::new("http://collector.local:8080/alerts?x=1").expect("url");
    assert_eq!((c.host.as_str(), c.port, c.path.as_str()), ("collector.local", 8080, "/alerts?x=1"));
    let c = WebhookConfig::new("http://10.0.0.1").expect("url");
    assert_eq!((c.port, c.path.as_str()), (80, "/"));
    for bad in ["https://x/", "ftp://x", "http://:80/", "http://x:notaport/"] {
        assert!(WebhookConfig::new(bad).expect_err(bad).to_string().contains("relay"), "{bad}");
    }
}

#[test]
fn only_timeouts_throttling_and_server_errors_are_retried() {
    assert_eq!(classify(200), Outcome::Delivered);
    assert_eq!(classify(204), Outcome::Delivered);
    for s in [408, 429, 500, 502, 503] {
        assert_eq!(classify(s), Outcome::Retry, "{s}");
    }
    for s in [400, 401, 403, 404, 413, 301] {
        assert_eq!(classify(s), Outcome::Refused(s), "{s}");
    }
}

#[test]
fn a_batch_leaves_at_most_one_interval_after_its_first_record() {
    let t0 = Instant::now();
    let ms = Duration::from_millis;
    let mut p = Pending::default();
    assert!(!p.ready(t0 + ms(5000), 100), "nothing to send");
    // One record every 500 ms: the deadline stays where the first set it.
    for i in 0..4 {
        p.push(vec![b'x'], t0 + ms(500 * i), ms(1000));
    }
    assert_eq!(p.due, Some(t0 + ms(1000)));
    assert!(!p.ready(t0 + ms(999), 100));
    assert!(p.ready(t0 + ms(1000), 100));
    assert_eq!(p.take().len(), 4);
    assert_eq!(p.due, None);
    p.push(vec![b'y'], t0 + ms(1700), ms(1000));
    assert_eq!(p.due, Some(t0 + ms(2700)), "the next batch has its own deadline");
    p.push(vec![b'z'], t0 + ms(1701), ms(1000));
    assert!(p.ready(t0 + ms(1701), 2), "a full batch does not wait");
}

#[test]
fn single_bodies_are_one_object_and_arrays_are_arrays() {
    let lines = vec![br#"{"a":1}"#.to_vec(), br#"{"b":2}"#.to_vec()];
    assert_eq!(body(Body::Single, &lines[..1]), br#"{"a":1}"#.to_vec());
    assert_eq!(body(Body::Array, &lines), br#"[{"a":1},{"b":2}]"#.to_vec());
    let mut c = WebhookConfig::new("http://x/").expect("url");
    c.batch_max = 50;
    assert_eq!(c.per_request(), 50);
    c.body = Body::Single;
    assert_eq!(c.per_request(), 1, "one event per request whatever the batch size");
}

/// A receiver answering `statuses` in turn (then 200): sends each request
/// body, with the time it arrived, on the channel.
fn receiver(statuses: Vec<u16>) -> (u16, std_mpsc::Receiver<(std::time::Instant, Vec<u8>)>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let (tx, rx) = std_mpsc::channel();
    std::thread::spawn(move || {
        let mut answers = statuses.into_iter();
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            let mut buf = Vec::new();
            let mut chunk = [0u8; 4096];
            let body = loop {
                let n = conn.read(&mut chunk).unwrap_or(0);
                if n == 0 {
                    break None;
                }
                buf.extend_from_slice(&chunk[..n]);
                let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else { continue };
                let head = String::from_utf8_lossy(&buf[..end]).to_lowercase();
                let len: usize = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .and_then(|v| v.trim().parse().ok())
                    .unwrap_or(0);
                if buf.len() >= end + 4 + len {
                    break Some(buf[end + 4..end + 4 + len].to_vec());
                }
            };
            let Some(body) = body else { continue };
            // Recorded before the answer, so the client cannot finish first.
            let _ = tx.send((std::time::Instant::now(), body));
            let status = answers.next().unwrap_or(200);
            let _ = conn.write_all(format!("HTTP/1.1 {status} X\r\nContent-Length: 0\r\n\r\n").as_bytes());
        }
    });
    (port, rx)
}

fn config(port: u16) -> WebhookConfig {
    let mut c = WebhookConfig::new(&format!("http://127.0.0.1:{port}/")).expect("url");
    c.backoff_initial = Duration::from_millis(10);
    c
}

fn run<F: Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime").block_on(f)
}

#[test]
fn a_refusal_is_not_retried_and_is_counted_with_its_status() {
    let (port, got) = receiver(vec![400, 408, 503]);
    let mut c = config(port);
    c.body = Body::Single;
    let stats = run(async {
        let mut w = Webhook::start(c);
        w.send(br#"{"n":1}"#.to_vec());
        w.send(br#"{"n":2}"#.to_vec());
        w.shutdown(Duration::from_secs(5)).await;
        w.stats
    });
    let bodies: Vec<Vec<u8>> = got.try_iter().map(|(_, b)| b).collect();
    // 1: 400, lost; 2: 408, 503, then 200.
    assert_eq!(bodies, [&br#"{"n":1}"#[..], br#"{"n":2}"#, br#"{"n":2}"#, br#"{"n":2}"#]);
    assert_eq!(stats.sent.load(Ordering::Relaxed), 1);
    assert_eq!(stats.lost.load(Ordering::Relaxed), 1);
    assert_eq!(stats.retries.load(Ordering::Relaxed), 2);
    assert_eq!(*stats.refused.lock().expect("lock"), BTreeMap::from([(400, 1)]));
}

#[test]
fn a_steady_trickle_does_not_hold_a_batch_back() {
    let (port, got) = receiver(Vec::new());
    let mut c = config(port);
    c.batch_interval = Duration::from_millis(300);
    let started = std::time::Instant::now();
    let sent = run(async {
        let mut w = Webhook::start(c);
        // One record every 100 ms for 1.2 s: with a timer that restarts at
        // every record, nothing would leave before the shutdown.
        for i in 0..12 {
            w.send(format!("{{\"n\":{i}}}").into_bytes());
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        w.shutdown(Duration::from_secs(5)).await;
        w.stats.sent.load(Ordering::Relaxed)
    });
    assert_eq!(sent, 12);
    let requests: Vec<(std::time::Instant, Vec<u8>)> = got.try_iter().collect();
    assert!(requests.len() >= 3, "several batches, not one at the end: {}", requests.len());
    let first = requests[0].0 - started;
    assert!(first < Duration::from_millis(700), "first batch after {first:?}");
    let values: Vec<serde_json::Value> =
        requests.iter().map(|(_, b)| serde_json::from_slice(b).expect("json array")).collect();
    let n: usize = values.iter().map(|v| v.as_array().expect("array").len()).sum();
    assert_eq!(n, 12);
}
