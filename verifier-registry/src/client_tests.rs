//! The Bearer token flow against a small in-process registry stand-in
//! (the real registry in the root tests speaks Basic only): a 401 with a
//! challenge, the token fetched from the realm with Basic credentials,
//! the retry with the token, and the token reused for the next request.

use std::sync::{Arc, Mutex};

use tokio::{
    io::{AsyncReadExt as _, AsyncWriteExt as _},
    net::TcpListener,
};

use super::*;

const MANIFEST: &str =
    r#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","layers":[]}"#;

/// Serves until dropped; records every request line with its Authorization.
async fn serve(log: Arc<Mutex<Vec<String>>>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr").to_string();
    let realm = format!("http://{addr}/token");
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            let mut buf = vec![0u8; 8192];
            let n = conn.read(&mut buf).await.unwrap_or(0);
            let head = String::from_utf8_lossy(&buf[..n]).into_owned();
            let line = head.lines().next().unwrap_or_default().to_owned();
            let auth = head
                .lines()
                .find_map(|l| l.strip_prefix("authorization: ").or_else(|| l.strip_prefix("Authorization: ")))
                .unwrap_or("-")
                .to_owned();
            log.lock().expect("log").push(format!("{line} | {auth}"));
            let (status, extra, body) = if line.contains("/token?") {
                if auth == basic("alice", "pw") {
                    ("200 OK", String::new(), r#"{"token":"tok-1"}"#.to_owned())
                } else {
                    ("401 Unauthorized", String::new(), "{}".to_owned())
                }
            } else if auth == "Bearer tok-1" {
                (
                    "200 OK",
                    format!("Content-Type: {}\r\n", crate::manifest::OCI_MANIFEST),
                    MANIFEST.to_owned(),
                )
            } else {
                let challenge = format!(
                    "WWW-Authenticate: Bearer realm=\"{realm}\",service=\"stand-in\",scope=\"repository:team/app:pull\"\r\n"
                );
                ("401 Unauthorized", challenge, "{}".to_owned())
            };
            let resp = format!(
                "HTTP/1.1 {status}\r\n{extra}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = conn.write_all(resp.as_bytes()).await;
        }
    });
    addr
}

fn client(addr: &str, creds: &str) -> Client {
    let credentials = Credentials::parse(&format!(
        r#"{{"auths":{{"{addr}":{{"auth":"{}"}}}}}}"#,
        base64::engine::general_purpose::STANDARD.encode(creds)
    ))
    .expect("credentials");
    Client::new(ClientOptions { credentials, insecure: vec![addr.to_owned()], ..Default::default() })
        .expect("client")
}

#[tokio::test]
async fn bearer_token_flow_with_basic_credentials() {
    let log = Arc::new(Mutex::new(Vec::new()));
    let addr = serve(log.clone()).await;
    let image = ImageRef::parse(&format!("{addr}/team/app")).expect("ref");
    let digest = Digest::of(MANIFEST.as_bytes());
    let c = client(&addr, "alice:pw");
    for _ in 0..2 {
        let (m, _, d) = c.manifest(&image, digest.as_str()).await.expect("manifest").expect("present");
        assert_eq!(d, digest);
        assert!(!m.is_index());
    }
    let log = log.lock().expect("log").clone();
    assert_eq!(log.len(), 4, "challenge, token, retry, then the token reused: {log:#?}");
    assert!(log[0].ends_with("| -"));
    assert!(
        log[1].contains("/token?")
            && log[1].contains("service=stand-in")
            && log[1].contains("scope=repository%3Ateam%2Fapp%3Apull"),
        "{}",
        log[1]
    );
    assert!(log[2].ends_with("| Bearer tok-1") && log[3].ends_with("| Bearer tok-1"));
}

#[tokio::test]
async fn wrong_password_is_a_token_error_that_says_so() {
    let addr = serve(Arc::new(Mutex::new(Vec::new()))).await;
    let image = ImageRef::parse(&format!("{addr}/team/app")).expect("ref");
    let err = client(&addr, "alice:wrong")
        .manifest(&image, Digest::of(MANIFEST.as_bytes()).as_str())
        .await
        .expect_err("refused");
    assert!(matches!(err, RegistryError::Token { .. }), "{err}");
    assert!(err.to_string().contains("credentials"), "{err}");
}
