use std::collections::HashMap;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::wire::{self, Answer, Job, Request, WireError};
use super::*;
use crate::domain::filter::Verdicts;
use crate::domain::records::SchemaChecked;
use crate::domain::{BodyTemplate, KeyCheck, UserId};

#[test]
fn every_node_picks_the_same_owner_and_merchants_spread_over_nodes() {
    let nodes = ["node-a-1-00ff", "node-b-7-1234", "node-c-9-beef"];
    fn owner<'a>(m: i64, among: &[&'a str]) -> &'a str {
        among.iter().max_by_key(|n| score(n, MerchantId(m))).unwrap()
    }
    let mut owned: HashMap<&str, usize> = HashMap::new();
    for m in 1..=300 {
        let first = owner(m, &nodes);
        // Whatever order a node lists the others in.
        assert_eq!(owner(m, &[nodes[2], nodes[0], nodes[1]]), first);
        *owned.entry(first).or_default() += 1;
        // A node leaving moves only its own merchants.
        let without_c = owner(m, &nodes[..2]);
        if first != nodes[2] {
            assert_eq!(without_c, first, "merchant {m} moved though its owner stayed");
        }
    }
    for node in nodes {
        assert!(
            owned[node] > 60,
            "{node} owns {} of 300 merchants: {owned:?}",
            owned[node]
        );
    }
}

fn job() -> Job {
    let topic = crate::domain::Topic::parse("order:created", &crate::domain::Catalog::default_catalog()).unwrap();
    let fields = serde_json::json!({"id": 7, "note": "caf\u{e9} \"q\""});
    let body = BodyTemplate::new("order:created", "shop1", fields.as_object().unwrap(), 1_700_000_000_000);
    let verdicts = Verdicts::from_pairs([(std::sync::Arc::from("message.id > 3"), true)]);
    let key_check = KeyCheck {
        user: UserId(4),
        key_hash: "$argon2id$x".into(),
    };
    let req = PublishRequest {
        merchant: MerchantId(3),
        topic: &topic,
        body: &body,
        idempotency_key: Some("k-1"),
        now: 1_700_000_000_123,
        verdicts: &verdicts,
        trace: crate::domain::TraceParent::parse("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"),
        schema: SchemaChecked::Version(Some(2)),
        key_check: Some(&key_check),
    };
    Job::of(&req)
}

#[test]
fn a_forwarded_publish_arrives_whole() {
    let sent = job();
    let frame = wire::frame(&Request { id: 9, job: sent });
    let len = u32::from_be_bytes(frame[..4].try_into().unwrap()) as usize;
    assert_eq!(len, frame.len() - 4);
    let got: Request = serde_json::from_slice(&frame[4..]).unwrap();
    let want = job();
    assert_eq!(got.id, 9);
    assert_eq!(got.job.body.render(5), want.body.render(5));
    assert_eq!(got.job.verdicts().get("message.id > 3"), Some(true));
    assert_eq!(
        got.job.trace().map(|t| t.to_string()),
        want.trace().map(|t| t.to_string())
    );
    assert_eq!(got.job.schema(), SchemaChecked::Version(Some(2)));
    assert_eq!(got.job.key_check, want.key_check);
    assert_eq!(
        (got.job.key, got.job.now, got.job.merchant),
        (want.key, want.now, want.merchant)
    );
}

#[test]
fn answers_keep_what_the_caller_is_told() {
    for answer in [
        Answer::Overloaded,
        Answer::CatalogMoved,
        Answer::KeyRevoked,
        Answer::FiltersUnjudged(vec!["a == 1".into()]),
    ] {
        let back = Answer::of(answer.into_result());
        assert!(matches!(
            back,
            Answer::Overloaded | Answer::CatalogMoved | Answer::KeyRevoked | Answer::FiltersUnjudged(_)
        ));
    }
    assert!(matches!(
        Answer::OutcomeUnknown("x".into()).into_result(),
        Err(StoreError::OutcomeUnknown(_))
    ));
    assert!(matches!(
        Answer::Unavailable("x".into()).into_result(),
        Err(StoreError::Unavailable(_))
    ));
    let published = Answer::Published {
        event_id: 5,
        payloads: 2,
        replayed: false,
    }
    .into_result()
    .unwrap();
    // The owner's dispatcher sends them: the forwarder wakes nothing.
    assert!(published.webhooks.is_empty() && published.handed.is_empty());
    assert_eq!((published.event_id.0, published.payloads), (5, 2));
}

#[tokio::test]
async fn both_sides_of_a_link_must_hold_the_secret() {
    let (mut a, mut b) = tokio::io::duplex(1024);
    let (dial, accept) = tokio::join!(
        wire::dial_handshake(&mut a, b"s3cret"),
        wire::accept_handshake(&mut b, b"s3cret")
    );
    dial.unwrap();
    accept.unwrap();

    let (mut a, mut b) = tokio::io::duplex(1024);
    // The listener hangs up on a wrong proof (the stream dropped).
    let listener = async move { wire::accept_handshake(&mut b, b"s3cret").await };
    let (dial, accept) = tokio::join!(wire::dial_handshake(&mut a, b"guess"), listener);
    assert!(matches!(accept, Err(WireError::Refused)), "{accept:?}");
    assert!(dial.is_err());

    // A listener that does not hold the secret is not believed either.
    let (mut a, mut b) = tokio::io::duplex(1024);
    let fake = async {
        b.write_all(&[7u8; 32]).await.unwrap();
        let mut proof = [0u8; 64];
        b.read_exact(&mut proof).await.unwrap();
        b.write_all(&[0u8; 32]).await.unwrap();
    };
    let (dial, ()) = tokio::join!(wire::dial_handshake(&mut a, b"s3cret"), fake);
    assert!(matches!(dial, Err(WireError::Refused)), "{dial:?}");
}

#[tokio::test]
async fn frames_too_large_or_malformed_are_refused() {
    let (mut a, mut b) = tokio::io::duplex(64);
    a.write_all(&((wire::MAX_FRAME + 1) as u32).to_be_bytes())
        .await
        .unwrap();
    let got = wire::FrameReader::new(&mut b).next::<Request>().await;
    assert!(matches!(got, Err(WireError::TooLarge(_))), "{got:?}");

    let (mut a, mut b) = tokio::io::duplex(64);
    a.write_all(&5u32.to_be_bytes()).await.unwrap();
    a.write_all(b"{nope").await.unwrap();
    let got = wire::FrameReader::new(&mut b).next::<Request>().await;
    assert!(matches!(got, Err(WireError::Malformed(_))), "{got:?}");

    // A clean end between frames is an end, not an error.
    let (a, mut b) = tokio::io::duplex(64);
    drop(a);
    assert!(wire::FrameReader::new(&mut b)
        .next::<Request>()
        .await
        .unwrap()
        .is_none());
}

#[tokio::test]
async fn frames_arriving_in_pieces_are_read_whole_in_order_even_when_a_read_is_abandoned() {
    let (mut a, b) = tokio::io::duplex(64);
    let mut bytes = Vec::new();
    for id in 1..=3 {
        wire::push_frame(&mut bytes, &Request { id, job: job() });
    }
    let cut = bytes.len() - 3;
    tokio::spawn(async move {
        for piece in bytes[..cut].chunks(50) {
            a.write_all(piece).await.unwrap();
            tokio::time::sleep(std::time::Duration::from_millis(2)).await;
        }
        // The last frame never ends.
        a.write_all(&bytes[cut..cut + 1]).await.unwrap();
    });
    let mut frames = wire::FrameReader::new(b);
    let mut got = Vec::new();
    let ended = loop {
        // A `select!` that often gives up on the read (as a link's task does when an answer
        // is ready first) must not lose the bytes it had read.
        tokio::select! {
            next = frames.next::<Request>() => match next {
                Ok(Some(request)) => got.push(request.id),
                other => break other.map(|r| r.map(|r| r.id)),
            },
            _ = tokio::time::sleep(std::time::Duration::from_millis(1)) => {}
        }
    };
    assert_eq!(got, [1, 2]);
    assert!(
        matches!(&ended, Err(WireError::Io(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof),
        "{ended:?}"
    );
}
