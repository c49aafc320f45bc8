//! What the client reads from a receiver that steers it: `Retry-After` on 429/503, 410 Gone.
//! Raw TCP servers, so the exact header bytes are under the test's control.

use std::time::Duration;

use tokio::io::AsyncWriteExt;

use super::tests::{attempt, client, error_of, raw_server, read_request};

/// A receiver answering every request with `status` and the extra `headers` lines.
async fn answering(status: &'static str, headers: &'static str) -> String {
    let addr = raw_server(move |mut stream| async move {
        read_request(&mut stream).await;
        let answer = format!("HTTP/1.1 {status}\r\n{headers}Content-Length: 4\r\nConnection: close\r\n\r\nbusy");
        let _ = stream.write_all(answer.as_bytes()).await;
    })
    .await;
    format!("http://{addr}/hook")
}

#[tokio::test]
async fn a_429_with_delta_seconds_carries_the_wait() {
    let url = answering("429 Too Many Requests", "Retry-After: 2\r\n").await;
    let outcome = attempt(&client(true), &url).await;
    assert_eq!(outcome.retry_after, Some(Duration::from_secs(2)));
    assert_eq!(error_of(&outcome), "HTTP 429 (Retry-After: 2s)");
    assert!(!outcome.gone());
}

#[tokio::test]
async fn a_503_with_an_http_date_carries_the_wait_until_then() {
    let at = httpdate::fmt_http_date(std::time::SystemTime::now() + Duration::from_secs(30));
    let headers: &'static str = Box::leak(format!("Retry-After: {at}\r\n").into_boxed_str());
    let url = answering("503 Service Unavailable", headers).await;
    let wait = attempt(&client(true), &url).await.retry_after.unwrap();
    // The date has whole seconds, so the wait is 29 … 30 s.
    assert!((28..=30).contains(&wait.as_secs()), "{wait:?}");
}

#[tokio::test]
async fn the_wait_is_clamped_to_one_second_and_one_day() {
    let url = answering("429 Too Many Requests", "Retry-After: 0\r\n").await;
    assert_eq!(
        attempt(&client(true), &url).await.retry_after,
        Some(Duration::from_secs(1))
    );
    let url = answering("503 Service Unavailable", "Retry-After: 9999999\r\n").await;
    assert_eq!(
        attempt(&client(true), &url).await.retry_after,
        Some(Duration::from_secs(86_400))
    );
}

#[tokio::test]
async fn an_unparseable_or_out_of_place_retry_after_is_ignored() {
    for (status, headers) in [
        ("429 Too Many Requests", "Retry-After: soon\r\n"),
        ("503 Service Unavailable", ""),
        // Only 429 and 503 are followed: a 500's Retry-After is not.
        ("500 Internal Server Error", "Retry-After: 5\r\n"),
    ] {
        let url = answering(status, headers).await;
        let outcome = attempt(&client(true), &url).await;
        assert_eq!(outcome.retry_after, None, "{status} {headers:?}");
        assert!(!error_of(&outcome).contains("Retry-After"), "{outcome:?}");
    }
}

#[tokio::test]
async fn a_410_is_gone() {
    let url = answering("410 Gone", "").await;
    let outcome = attempt(&client(true), &url).await;
    assert!(outcome.gone());
    assert_eq!(error_of(&outcome), "HTTP 410");
}
