//! Issue 9, connections: slow clients are cut off by the header and body read timeouts, a
//! body over the limit is refused as soon as that is known, open connections are capped,
//! a stop finishes within its grace whatever clients hold, and ids are echoed exactly.

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::helpers::*;

/// A connection that sent `bytes` and then nothing more.
async fn partial(app: &TestApp, bytes: &[u8]) -> TcpStream {
    let mut stream = TcpStream::connect(app.addr).await.unwrap();
    stream.write_all(bytes).await.unwrap();
    stream
}

/// Reads until the server closes the connection (or `patience` runs out): what it sent,
/// and how long that took; None when it was still open.
async fn until_closed(stream: &mut TcpStream, patience: Duration) -> Option<(String, Duration)> {
    let started = Instant::now();
    let mut got = Vec::new();
    let read = tokio::time::timeout(patience, async {
        let mut buf = [0u8; 4096];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    read.ok()
        .map(|()| (String::from_utf8_lossy(&got).into_owned(), started.elapsed()))
}

const HEAD_START: &[u8] = b"POST /api/jsonrpc HTTP/1.1\r\nHost: hookd\r\nContent-Type: application/json\r\n";

fn head_with_length(length: usize) -> Vec<u8> {
    let mut head = HEAD_START.to_vec();
    head.extend_from_slice(format!("Content-Length: {length}\r\n\r\n").as_bytes());
    head
}

fn short_timeouts(c: &mut hookd::config::Config) {
    c.http.header_read_timeout = Duration::from_secs(1);
    c.http.body_read_timeout = Duration::from_secs(1);
}

#[tokio::test]
async fn a_request_head_that_never_ends_is_closed_after_the_header_timeout() {
    let app = TestApp::spawn_with(short_timeouts).await;
    let mut stream = partial(&app, HEAD_START).await;
    let (_, took) = until_closed(&mut stream, Duration::from_secs(5))
        .await
        .expect("closed within 5 s");
    assert!(took >= Duration::from_millis(800), "closed too soon: {took:?}");
    // An idle keep-alive connection goes the same way; a fresh one still works.
    let mut idle = TcpStream::connect(app.addr).await.unwrap();
    assert!(until_closed(&mut idle, Duration::from_secs(5)).await.is_some());
    let session = app.admin_session().await;
    app.assert_still_serving(&session).await;
}

#[tokio::test]
async fn a_request_head_over_64_kib_is_refused_at_once() {
    let app = TestApp::spawn().await;
    let mut head = HEAD_START.to_vec();
    for i in 0..1000 {
        head.extend_from_slice(format!("X-Filler-{i}: {}\r\n", "y".repeat(60)).as_bytes());
    }
    let mut stream = TcpStream::connect(app.addr).await.unwrap();
    let _ = stream.write_all(&head).await; // the server may close before all of it is sent
    let (answer, took) = until_closed(&mut stream, Duration::from_secs(5))
        .await
        .expect("closed within 5 s");
    assert!(took < Duration::from_secs(1), "{took:?}");
    assert!(answer.is_empty() || answer.starts_with("HTTP/1.1 431"), "{answer}");
}

#[tokio::test]
async fn a_body_that_never_ends_is_answered_and_closed_after_the_body_timeout() {
    let app = TestApp::spawn_with(short_timeouts).await;
    let mut request = head_with_length(100);
    request.extend_from_slice(br#"{"jsonrpc": "2.0","#);
    let mut stream = partial(&app, &request).await;
    let (answer, took) = until_closed(&mut stream, Duration::from_secs(5))
        .await
        .expect("closed within 5 s");
    assert!(took >= Duration::from_millis(800), "closed too soon: {took:?}");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let body: Value = serde_json::from_str(answer.split("\r\n\r\n").nth(1).unwrap()).unwrap();
    assert_eq!(body["jsonrpc"], "2.0");
    assert_eq!(body["error"]["code"], -32600, "{body}");
    assert!(
        body["error"]["data"].as_str().unwrap().contains("did not arrive"),
        "{body}"
    );
}

#[tokio::test]
async fn a_content_length_over_the_limit_is_answered_413_before_the_body_is_sent() {
    let app = TestApp::spawn_with(|c| c.max_body_bytes = 4096).await;
    let mut stream = partial(&app, &head_with_length(1_000_000)).await;
    let (answer, took) = until_closed(&mut stream, Duration::from_secs(5))
        .await
        .expect("closed within 5 s");
    assert!(took < Duration::from_secs(1), "{took:?}");
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    let body: Value = serde_json::from_str(answer.split("\r\n\r\n").nth(1).unwrap()).unwrap();
    assert!(body["id"].is_null() && body["error"]["code"] == -32600, "{body}");
    assert!(body["error"]["data"].as_str().unwrap().contains("4096"), "{body}");
}

#[tokio::test]
async fn a_chunked_body_is_refused_as_soon_as_it_passes_the_limit() {
    let app = TestApp::spawn_with(|c| {
        c.max_body_bytes = 4096;
        short_timeouts(c);
    })
    .await;
    let mut request = HEAD_START.to_vec();
    request.extend_from_slice(b"Transfer-Encoding: chunked\r\n\r\n");
    request.extend_from_slice(format!("{:x}\r\n{}\r\n", 5000, "x".repeat(5000)).as_bytes());
    // The body never ends, but the answer does not wait for it.
    let mut stream = partial(&app, &request).await;
    let (answer, took) = until_closed(&mut stream, Duration::from_secs(5))
        .await
        .expect("closed within 5 s");
    assert!(took < Duration::from_millis(800), "{took:?}");
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
}

#[tokio::test]
async fn many_slow_clients_are_all_closed_and_the_api_answers_meanwhile() {
    let app = TestApp::spawn_with(|c| {
        c.http.header_read_timeout = Duration::from_secs(1);
        c.http.body_read_timeout = Duration::from_secs(2);
    })
    .await;
    let session = app.admin_session().await;
    let mut body_start = head_with_length(1_000_000);
    body_start.extend_from_slice(&vec![b' '; 64 * 1024]);
    let started = Instant::now();
    let mut slow = Vec::new();
    for i in 0..300 {
        let bytes = if i % 2 == 0 {
            HEAD_START.to_vec()
        } else {
            body_start.clone()
        };
        slow.push(partial(&app, &bytes).await);
    }
    let waits: Vec<_> = slow
        .into_iter()
        .map(|mut s| tokio::spawn(async move { until_closed(&mut s, Duration::from_secs(10)).await }))
        .collect();
    let mut worst = Duration::ZERO;
    while started.elapsed() < Duration::from_secs(2) {
        let asked = Instant::now();
        app.assert_still_serving(&session).await;
        worst = worst.max(asked.elapsed());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for wait in waits {
        wait.await.unwrap().expect("every slow connection is closed");
    }
    let all_closed = started.elapsed();
    eprintln!("300 slow connections all closed after {all_closed:?}; API worst answer {worst:?}");
    assert!(all_closed < Duration::from_secs(5), "{all_closed:?}");
    assert!(worst < Duration::from_secs(1), "{worst:?}");
}

#[tokio::test]
async fn open_connections_are_capped_and_a_waiting_client_gets_in_when_one_closes() {
    let app = TestApp::spawn_with(|c| c.http.max_connections = 4).await;
    let session = app.admin_session().await;
    let mut hogs = Vec::new();
    for _ in 0..4 {
        hogs.push(partial(&app, HEAD_START).await);
    }
    // The harness client keeps its connection open too: with it, three hogs are served and
    // the fourth waits like the request below.
    let fresh = reqwest::Client::new();
    let endpoint = app.endpoint.clone();
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": "call", "params": [session, "topic.list", []]});
    let waiting = tokio::spawn(async move {
        let response = fresh
            .post(&endpoint)
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .await
            .unwrap();
        let answer: Value = serde_json::from_slice(&response.bytes().await.unwrap()).unwrap();
        (Instant::now(), answer)
    });
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert!(
        !waiting.is_finished(),
        "a fifth connection was served beside four open ones"
    );
    let released = Instant::now();
    drop(hogs);
    let (answered, resp) = tokio::time::timeout(Duration::from_secs(5), waiting)
        .await
        .expect("served once the others closed")
        .unwrap();
    assert_ok(&resp);
    assert!(answered - released < Duration::from_secs(2));
}

#[tokio::test]
async fn a_stop_finishes_within_the_grace_while_clients_hold_partial_requests() {
    let mut app = TestApp::spawn_with(|c| c.http.shutdown_grace = Duration::from_secs(1)).await;
    let _head = partial(&app, HEAD_START).await;
    let mut body = head_with_length(1000);
    body.extend_from_slice(b"{");
    let _body = partial(&app, &body).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let started = Instant::now();
    tokio::time::timeout(Duration::from_secs(5), app.stop())
        .await
        .expect("the server stopped within 5 s");
    let took = started.elapsed();
    eprintln!("stopped in {took:?} with two partial requests open");
    assert!(took < Duration::from_secs(3), "{took:?}");
    // The SQLite serve lock is free again: a server starts on the same database.
    app.restart().await;
    let session = app.admin_session().await;
    app.assert_still_serving(&session).await;
}

#[tokio::test]
async fn ids_come_back_exactly_as_written() {
    let app = TestApp::spawn().await;
    let ids = [
        "123456789012345678901234567890",
        "-0",
        "1.50",
        "1E3",
        "0.1000000000000000000000000001",
        r#""caf\u00e9 \"x\"""#,
        r#""""#,
        "null",
    ];
    for id in ids {
        let body = format!(r#"{{"jsonrpc": "2.0", "id": {id}, "method": "nosuch"}}"#);
        let response = app.client.post(&app.endpoint).body(body).send().await.unwrap();
        let text = response.text().await.unwrap();
        assert!(text.contains(&format!(r#""id":{id},"#)), "{id} came back in {text}");
    }
    let batch = format!(
        r#"[{{"jsonrpc": "2.0", "id": {}, "method": "login", "params": ["a", "b"]}}, {{"jsonrpc": "2.0", "id": {}, "method": "nosuch"}}]"#,
        ids[0], ids[5]
    );
    let text = app
        .client
        .post(&app.endpoint)
        .body(batch)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(text.contains(&format!(r#""id":{},"#, ids[0])), "{text}");
    assert!(text.contains(&format!(r#""id":{},"#, ids[5])), "{text}");
    // Objects and arrays are still not ids.
    for id in ["[1]", r#"{"n": 1}"#] {
        let body = format!(r#"{{"jsonrpc": "2.0", "id": {id}, "method": "nosuch"}}"#);
        let (status, resp) = app.rpc_raw(body).await;
        assert_eq!(status, reqwest::StatusCode::OK);
        assert_error(&resp, -32600);
        assert!(resp["id"].is_null(), "{resp}");
    }
}

#[tokio::test]
async fn a_client_that_stops_reading_its_answer_is_cut_off_after_the_write_timeout() {
    let app = TestApp::spawn_with(|c| {
        c.http.max_connections = 1;
        c.http.header_read_timeout = Duration::from_secs(1);
        c.http.write_timeout = Duration::from_secs(1);
    })
    .await;
    let session = app.admin_session().await;
    // Ten pipelined batches whose answers (about 13 MB) are never read, on a connection
    // with a tiny receive window: far more than the socket buffers hold.
    let batch: Vec<Value> = (0..1000)
        .map(|i| json!({"jsonrpc": "2.0", "id": i, "method": "call", "params": [session, "topic.list", []]}))
        .collect();
    let body = serde_json::to_vec(&batch).unwrap();
    let mut requests = Vec::new();
    for _ in 0..10 {
        requests.extend_from_slice(&head_with_length(body.len()));
        requests.extend_from_slice(&body);
    }
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let reader = socket.connect(app.addr).await.unwrap();
    let (mut read_half, mut write_half) = reader.into_split();
    tokio::spawn(async move {
        let _ = write_half.write_all(&requests).await;
        tokio::time::sleep(Duration::from_secs(30)).await;
    });

    // The only connection slot is the non-reader's until the server gives up writing.
    let started = Instant::now();
    let fresh = reqwest::Client::new();
    let request = json!({"jsonrpc": "2.0", "id": 1, "method": "call", "params": [session, "topic.list", []]});
    let response = tokio::time::timeout(
        Duration::from_secs(10),
        fresh
            .post(&app.endpoint)
            .header("content-type", "application/json")
            .body(request.to_string())
            .send(),
    )
    .await
    .expect("served once the stalled connection was cut off")
    .unwrap();
    let answer: Value = serde_json::from_slice(&response.bytes().await.unwrap()).unwrap();
    assert_ok(&answer);
    let waited = started.elapsed();
    eprintln!("a client that does not read was cut off; the next one was served after {waited:?}");
    assert!(waited >= Duration::from_millis(900), "{waited:?}");

    // What the non-reader gets now is a part of its answers, then the end of the connection.
    let mut got = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), read_half.read_to_end(&mut got))
        .await
        .expect("the connection was closed")
        .ok();
    let full = serde_json::to_vec(&answer).unwrap().len() * 1000 * 10;
    assert!(got.len() < full / 2, "{} of about {full} bytes", got.len());
}
