//! Issue 27, the request head: README promises a head (request line and headers) of at
//! most 64 KiB, 431 beyond it. A head just under the limit is served; one just over it is
//! refused, however it arrives (in one write or byte by byte in pieces).

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::helpers::*;

const KIB: usize = 1024;

/// A `GET /healthz` head of exactly `size` bytes (request line, headers, blank line).
fn head_of(size: usize) -> Vec<u8> {
    let start = b"GET /healthz HTTP/1.1\r\nHost: hookd\r\nConnection: close\r\n".to_vec();
    let mut head = start;
    let mut n = 0;
    // Headers of about 1 KiB each, the last one padded to make the size exact.
    while size - head.len() > 2 * KIB + 4 {
        head.extend_from_slice(format!("X-Filler-{n}: {}\r\n", "y".repeat(KIB)).as_bytes());
        n += 1;
    }
    let name = format!("X-Filler-{n}: ");
    let pad = size - head.len() - name.len() - 4;
    head.extend_from_slice(name.as_bytes());
    head.extend_from_slice("z".repeat(pad).as_bytes());
    head.extend_from_slice(b"\r\n\r\n");
    assert_eq!(head.len(), size);
    head
}

/// Sends `head` in pieces of `piece` bytes and reads the answer's status line (empty when
/// the server closed without one).
async fn status_for(app: &TestApp, head: &[u8], piece: usize) -> String {
    let mut stream = TcpStream::connect(app.addr).await.unwrap();
    for chunk in head.chunks(piece) {
        // The server may answer and close before all of it is sent.
        if stream.write_all(chunk).await.is_err() {
            break;
        }
        let _ = stream.flush().await;
    }
    let mut got = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut got)).await;
    let text = String::from_utf8_lossy(&got);
    text.lines().next().unwrap_or_default().to_string()
}

#[tokio::test]
async fn a_request_head_of_60_kib_is_served_and_one_of_65_kib_gets_431() {
    let app = TestApp::spawn().await;
    for piece in [usize::MAX, 4 * KIB] {
        let ok = status_for(&app, &head_of(60 * KIB), piece).await;
        assert!(ok.starts_with("HTTP/1.1 200"), "60 KiB in pieces of {piece}: {ok:?}");
        for size in [65 * KIB, 100 * KIB, 190 * KIB] {
            let refused = status_for(&app, &head_of(size), piece).await;
            assert!(
                refused.starts_with("HTTP/1.1 431"),
                "{size} bytes in pieces of {piece}: {refused:?}"
            );
        }
    }
}
