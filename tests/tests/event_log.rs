//! The shared event log (`confab_kit::RedisBus`) on a real Redis: two
//! replicas' buses on one log serve every event to every subscriber in one
//! order; a subscriber resumes after its last event on any replica; the
//! log says so when it cannot resume (another epoch, or events gone past
//! its retention), and ends a subscriber that fell behind it instead of
//! skipping what it missed.
//!
//! Needs Redis (`REDIS_URL`): without it the tests are reported as skipped,
//! and under `CI=true` they fail. Each test has a key prefix of its own.

use confab_kit::RedisBus;
use confab_proto::bus::{Ended, EventBus, Resume};
use confab_proto::v1::ChatEvent;
use futures::StreamExt;
use std::time::Duration;

fn redis(what: &str) -> Option<String> {
    confab_tests::skip::required_env("REDIS_URL", what)
}

fn ev(n: usize) -> ChatEvent {
    ChatEvent {
        origin: n.to_string(),
        ..Default::default()
    }
}

async fn open(url: &str, prefix: &str, retention: u64) -> RedisBus<ChatEvent> {
    RedisBus::open(url, prefix, retention)
        .await
        .expect("open the event log")
}

/// The next event within a delivery's time.
async fn next(
    events: &mut confab_proto::bus::SubscriptionStream<ChatEvent>,
) -> Result<ChatEvent, Ended> {
    tokio::time::timeout(Duration::from_secs(10), events.next())
        .await
        .expect("an event within 10 s")
        .expect("the stream goes on")
}

#[tokio::test]
async fn two_replicas_publish_into_one_order_every_subscriber_sees() {
    let Some(url) = redis("the shared event log") else {
        return;
    };
    let prefix = confab_tests::redis_prefix();
    let (a, b) = (
        open(&url, &prefix, 1000).await,
        open(&url, &prefix, 1000).await,
    );
    assert_eq!(a.epoch(), b.epoch(), "replicas share one epoch");
    let mut on_a = a.subscribe(None).await;
    let mut on_b = b.subscribe(None).await;
    assert!(on_a.resumed && on_b.resumed);
    for i in 0..20 {
        let bus = if i % 2 == 0 { &a } else { &b };
        bus.publish(ev(i)).await;
    }
    for sub in [&mut on_a, &mut on_b] {
        for i in 0..20 {
            let e = next(&mut sub.events).await.expect("an event");
            assert_eq!(e.origin, i.to_string(), "one order for every subscriber");
            assert_eq!(e.seq, i as u64 + 1, "positions follow each other");
        }
    }
}

#[tokio::test]
async fn a_subscriber_resumes_after_its_last_event_on_another_replica() {
    let Some(url) = redis("the shared event log") else {
        return;
    };
    let prefix = confab_tests::redis_prefix();
    let (a, b) = (
        open(&url, &prefix, 1000).await,
        open(&url, &prefix, 1000).await,
    );
    let mut first = a.subscribe(None).await;
    for i in 0..3 {
        a.publish(ev(i)).await;
    }
    let mut last = 0;
    for _ in 0..3 {
        last = next(&mut first.events).await.expect("an event").seq;
    }
    drop(first);
    // Published while no one listened, by both replicas.
    a.publish(ev(3)).await;
    b.publish(ev(4)).await;
    let mut again = b
        .subscribe(Some(Resume {
            epoch: a.epoch().to_string(),
            after_seq: last,
        }))
        .await;
    assert!(again.resumed, "the log still holds what followed");
    for want in ["3", "4"] {
        let e = next(&mut again.events).await.expect("an event");
        assert_eq!(e.origin, want, "nothing lost, nothing twice");
    }
    // A restarted replica keeps the log's epoch.
    let reopened = open(&url, &prefix, 1000).await;
    assert_eq!(reopened.epoch(), a.epoch());
}

#[tokio::test]
async fn the_log_says_when_it_cannot_resume() {
    let Some(url) = redis("the shared event log") else {
        return;
    };
    let prefix = confab_tests::redis_prefix();
    let bus = open(&url, &prefix, 10).await;
    let other = bus
        .subscribe(Some(Resume {
            epoch: "another log".into(),
            after_seq: 0,
        }))
        .await;
    assert!(!other.resumed, "another epoch starts live and says so");
    // Far more than the retention (trimming is approximate, by whole
    // blocks of about a hundred entries).
    for i in 0..1000 {
        bus.publish(ev(i)).await;
    }
    let gone = bus
        .subscribe(Some(Resume {
            epoch: bus.epoch().to_string(),
            after_seq: 1,
        }))
        .await;
    assert!(!gone.resumed, "the events after it left the log");
    let current = bus
        .subscribe(Some(Resume {
            epoch: bus.epoch().to_string(),
            after_seq: 1000,
        }))
        .await;
    assert!(current.resumed, "nothing happened since: resumed");
}

#[tokio::test]
async fn a_subscriber_the_log_moved_past_is_ended_not_skipped() {
    let Some(url) = redis("the shared event log") else {
        return;
    };
    let prefix = confab_tests::redis_prefix();
    let bus = open(&url, &prefix, 10).await;
    let mut slow = bus.subscribe(None).await;
    bus.publish(ev(0)).await;
    assert_eq!(next(&mut slow.events).await.expect("the first").origin, "0");
    // More than the replica's tail keeps for its subscriptions, and far
    // more than the log keeps.
    for i in 1..(confab_kit::bus::TAIL_BUFFER + 1000) {
        bus.publish(ev(i)).await;
    }
    assert_eq!(
        next(&mut slow.events)
            .await
            .expect_err("behind the retention"),
        Ended::Behind
    );
}

/// A subscription that falls further behind than its replica's tail keeps
/// for it, but not past the log's retention, reads the rest from Redis:
/// every event once, in order.
#[tokio::test]
async fn a_subscriber_behind_the_tail_reads_the_rest_from_the_log() {
    let Some(url) = redis("the shared event log") else {
        return;
    };
    let prefix = confab_tests::redis_prefix();
    let bus = open(&url, &prefix, 100_000).await;
    let mut slow = bus.subscribe(None).await;
    let mut fast = bus.subscribe(None).await;
    // Nothing in the log yet: the slow subscription finds it has caught up
    // and waits on its replica's tail from then on.
    assert!(
        tokio::time::timeout(Duration::from_millis(300), slow.events.next())
            .await
            .is_err()
    );
    let total = confab_kit::bus::TAIL_BUFFER * 2 + 500;
    let mut seen = Vec::with_capacity(total);
    for i in 0..total {
        bus.publish(ev(i)).await;
        // One subscription keeps up, so the tail keeps going.
        seen.push(next(&mut fast.events).await.expect("kept up").origin);
    }
    let expected: Vec<String> = (0..total).map(|i| i.to_string()).collect();
    assert_eq!(seen, expected);
    let mut late = Vec::with_capacity(total);
    for _ in 0..total {
        late.push(next(&mut slow.events).await.expect("from the log").origin);
    }
    assert_eq!(late, expected, "every event once, in order");
}
