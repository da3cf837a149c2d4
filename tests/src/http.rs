//! A minimal HTTP/1.1 request reader for the tests' webhook receivers
//! (falcosidekick-like and plain): one request per connection, the body
//! by its `Content-Length`. Enough to see exactly what the agent sends.

use std::io::Read;

/// Reads one request from `conn` and returns its body, or `None` when the
/// peer closed before a whole request arrived.
pub fn read_body(conn: &mut impl Read) -> Option<Vec<u8>> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 65536];
    loop {
        let n = conn.read(&mut chunk).unwrap_or(0);
        if n == 0 {
            return None;
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
            return Some(buf[end + 4..end + 4 + len].to_vec());
        }
    }
}
