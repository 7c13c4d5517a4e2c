//! Application heartbeats for contracts whose seed has them (the
//! [`Heartbeat`] capability, e.g. `v3`'s `ping` and `heartbeat`): the server
//! emits the contract's beat every `CONFAB_HEARTBEAT_MS`; any of the
//! contract's answer events answers it.
//!
//! Not to be confused with [`crate::session::liveness`], this edge's own
//! liveness in presence-service.
//!
//! Engine.IO's own ping/pong keeps the transport alive, but socket.io-client
//! answers it by itself; these events prove the application on the other
//! side still listens. A socket that leaves [`MISSED_LIMIT`] heartbeats in a
//! row unanswered is disconnected, which ends its presence session like any
//! disconnect, so a half-open connection never keeps its user online.
//!
//! One task per edge ([`spawn`]) does the work for every socket: each tick
//! it walks the heartbeat namespaces' sockets once (an atomic increment per
//! socket, no allocation), then emits `ping` and `heartbeat` once per
//! namespace — socketioxide serialises a broadcast once for all its sockets.
//! A socket costs an [`Arc<Beats>`] in its extensions and two handlers.
//!
//! The round trip (from the beat to the first answer to it) is observed in
//! the `confab_heartbeat_rtt_seconds` histogram; a socket answering both
//! `pong` and `heartbeat_response` counts once per beat.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU32, Ordering};
use std::time::Duration;

use socketioxide::SocketIo;
use socketioxide::extract::SocketRef;
use tokio::task::JoinHandle;

use crate::contract::{Heartbeat, Mount};

/// Heartbeats left unanswered in a row before the socket is disconnected.
pub const MISSED_LIMIT: u32 = 3;

/// The round-trip histogram's name.
pub const RTT_METRIC: &str = "confab_heartbeat_rtt_seconds";

/// Buckets of [`RTT_METRIC`], in seconds (the seed's budget is 30 ms).
pub const RTT_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.02, 0.03, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// One socket's heartbeat state, in its extensions.
#[derive(Default)]
pub struct Beats {
    /// Beats sent since the last answer.
    unanswered: AtomicU32,
    /// When the latest beat was sent (ms since epoch).
    sent_ms: AtomicI64,
}

impl Beats {
    /// A beat goes out now; returns how many were unanswered before it.
    fn sent(&self, now_ms: i64) -> u32 {
        self.sent_ms.store(now_ms, Ordering::Relaxed);
        self.unanswered.fetch_add(1, Ordering::AcqRel)
    }

    /// An answer came: the round trip of the beat it answers, if it is the
    /// first answer since that beat.
    fn answered(&self, now_ms: i64) -> Option<Duration> {
        if self.unanswered.swap(0, Ordering::AcqRel) == 0 {
            return None;
        }
        let sent = self.sent_ms.load(Ordering::Relaxed);
        Some(Duration::from_millis(
            u64::try_from(now_ms - sent).unwrap_or(0),
        ))
    }
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// Gives a socket its heartbeat state and the handlers of the answers. Runs
/// in the connect middleware (before the client is connected).
pub fn attach(s: &SocketRef, heartbeat: &Heartbeat) {
    s.extensions.insert(Arc::new(Beats::default()));
    for answer in heartbeat.answers {
        s.on(*answer, |s: SocketRef| async move {
            if let Some(beats) = s.extensions.get::<Arc<Beats>>()
                && let Some(rtt) = beats.answered(now_ms())
            {
                metrics::histogram!(RTT_METRIC).record(rtt.as_secs_f64());
            }
        });
    }
}

/// The first beat, right after the client is told it is connected (the
/// seed's app counts a connection dead after 40 s without one).
pub fn first_beat(s: &SocketRef, heartbeat: &Heartbeat) {
    let now = now_ms();
    if let Some(beats) = s.extensions.get::<Arc<Beats>>() {
        beats.sent(now);
    }
    for (event, payload) in (heartbeat.beat)(now) {
        let _ = s.emit(event, &payload);
    }
}

/// Beats every `every` on the mounts whose contract has heartbeats, until
/// aborted.
pub fn spawn(io: SocketIo, mounts: Arc<Vec<Mount>>, every: Duration) -> JoinHandle<()> {
    let beating: Vec<(&'static str, &'static Heartbeat)> = mounts
        .iter()
        .filter_map(|m| m.contract.heartbeat.as_ref().map(|h| (m.path, h)))
        .collect();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // The first tick is immediate; sockets get their first beat on connect.
        tick.tick().await;
        loop {
            tick.tick().await;
            for (path, heartbeat) in &beating {
                beat(&io, path, heartbeat).await;
            }
        }
    })
}

/// One tick in one namespace: drops the sockets that missed too many, then
/// beats the rest.
async fn beat(io: &SocketIo, path: &str, heartbeat: &Heartbeat) {
    let Some(ns) = io.of(path) else {
        return;
    };
    let now = now_ms();
    let mut dropped = 0u64;
    for s in ns.clone().sockets() {
        let Some(beats) = s.extensions.get::<Arc<Beats>>() else {
            continue; // still in its handshake
        };
        if beats.sent(now) >= MISSED_LIMIT {
            dropped += 1;
            tracing::debug!(sid = %s.id, path, "heartbeats unanswered; disconnecting");
            let _ = s.disconnect();
        }
    }
    if dropped > 0 {
        metrics::counter!("confab_heartbeat_disconnects_total").increment(dropped);
    }
    for (event, payload) in (heartbeat.beat)(now) {
        if let Err(e) = ns.clone().emit(event, &payload).await {
            tracing::debug!(path, event, error = %e, "beat not sent to every socket");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_answer_counts_once_per_beat() {
        let b = Beats::default();
        assert_eq!(b.sent(1000), 0);
        assert_eq!(b.answered(1012), Some(Duration::from_millis(12)));
        assert_eq!(b.answered(1013), None, "the second answer to one beat");
        assert_eq!(b.sent(2000), 0);
        assert_eq!(b.sent(3000), 1);
        assert_eq!(b.sent(4000), 2);
        assert_eq!(b.sent(5000), MISSED_LIMIT, "three missed in a row");
    }
}
