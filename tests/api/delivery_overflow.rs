//! Payloads the hand-off had no room for: they wait in the queue for a claim, and newer
//! payloads handed over meanwhile must not keep them waiting until publishing stops.

use std::time::Duration;

use serde_json::json;

use crate::delivery_support::*;
use crate::receiver::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn payloads_the_hand_off_had_no_room_for_are_not_starved_by_newer_ones() {
    // Two slots, so a hand-off room of 8, and a receiver that answers after 300 ms: about
    // 6.7 deliveries a second.
    let w = World::start_with(|c| c.app.delivery.per_webhook = 2).await;
    w.receiver.set("/slow/", Behaviour::Stall(Duration::from_millis(300)));
    w.hook_at("order:created", "/slow/").await;
    // A burst, well within the first answer: the first payloads take the slots, 8 wait in
    // the hand-off, and the rest (from about increment 11) go to the queue for a claim.
    for n in 0..40 {
        w.publish_ok("order:created", json!({"n": n})).await;
    }
    // Then a stream a little faster than the receiver (the load's shape, not a wait). The
    // hand-off used to take each of these as soon as it had room again, and the lane took
    // them before the burst's queued payloads; now the webhook's publishes lease nothing
    // until a claim has caught up (`Handoff::hold`).
    for n in 40..60 {
        w.publish_ok("order:created", json!({"n": n})).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let got = w.receiver.wait_for("/slow/", 60, Duration::from_secs(30)).await;
    let order: Vec<i64> = got.iter().map(|r| r.increment_id()).collect();
    let at = |inc: i64| order.iter().position(|&i| i == inc).expect("every payload arrives");
    // Oldest first, give or take what one claim or one slot reorders: the whole burst (some
    // of it queued for a claim) before the last of the stream (handed over much later).
    let burst_done = (1..=40).map(at).max().unwrap();
    let late_begins = (51..=60).map(at).min().unwrap();
    assert!(
        burst_done < late_begins,
        "payloads queued for a claim waited behind newer ones handed over: {order:?}"
    );
}
