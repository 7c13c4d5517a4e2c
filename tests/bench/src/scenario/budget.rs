//! The seed's latency budgets (seed 003, p95) at 1,000 messages a second:
//! 10 conversations of 10 members, each sender at 100 messages a second for
//! a few seconds, sends with an ack. Measured: authentication (handshake),
//! chat join (`join_conversation` → ack), message send (`send_message` →
//! ack) and message broadcast (send → `new_message` at the members). Call
//! signaling has its own scenario. On confab, [`HEARTBEAT_SOCKETS`] `v3`
//! sockets beat meanwhile (the server runs with `CONFAB_HEARTBEAT_MS` =
//! [`HEARTBEAT_MS`]): each `ping` is timed from its timestamp to its
//! arrival and answered with `pong`, and the server's round-trip histogram
//! (`confab_heartbeat_rtt_seconds`) says how many round trips of the step
//! took at most 30 ms, the seed's budget.

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::load::{Recorder, Room, StepResult, connect_many, run_step};
use crate::servers::{Kind, Server};
use crate::stats::{Percentiles, percentiles};

/// `v3` sockets answering heartbeats during the step (confab only).
pub const HEARTBEAT_SOCKETS: usize = 100;

/// confab's heartbeat interval in the benchmark (`CONFAB_HEARTBEAT_MS`).
pub const HEARTBEAT_MS: u64 = 1000;

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct BudgetResult {
    pub kind: Kind,
    pub auth: Percentiles,
    pub join: Percentiles,
    pub step: StepResult,
    /// confab's `v3` heartbeats during the step.
    #[serde(default)]
    pub heartbeat: Option<HeartbeatResult>,
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct HeartbeatResult {
    pub sockets: usize,
    /// `ping`s received during the step.
    pub beats: usize,
    /// The `ping`'s timestamp → its arrival (ms resolution: the server
    /// writes milliseconds).
    pub one_way: Percentiles,
    /// Round trips the server observed during the step, and how many of
    /// them took at most 30 ms.
    pub round_trips: u64,
    pub round_trips_within_30ms: u64,
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// The `ping` timestamp in an event payload such as `["ping",1733…]`.
fn ping_ms(data: &str) -> Option<i64> {
    let rest = data.strip_prefix("[\"ping\",")?;
    rest.strip_suffix(']')?.trim().parse().ok()
}

/// The round-trip histogram's total count and its `le="0.03"` bucket,
/// summed over every edge.
async fn round_trips(server: &Server) -> (u64, u64) {
    let (mut count, mut within) = (0, 0);
    for &edge in &server.edges {
        let Ok(r) = crate::http::request(edge, "GET", "/metrics", None, None).await else {
            continue;
        };
        let value = |prefix: &str| {
            r.body
                .lines()
                .find(|l| l.starts_with(prefix))
                .and_then(|l| l.rsplit(' ').next())
                .and_then(|v| v.parse::<f64>().ok())
                .map_or(0, |v| v as u64)
        };
        count += value("confab_heartbeat_rtt_seconds_count");
        within += value("confab_heartbeat_rtt_seconds_bucket{le=\"0.03\"}");
    }
    (count, within)
}

/// The heartbeat sockets: connected (the client answers every `ping` with
/// `pong`), recording each ping's one-way time while `recording` is set.
struct Beating {
    _handles: Vec<Arc<crate::client::Handle>>,
    samples: Arc<Mutex<Vec<u64>>>,
    recording: Arc<std::sync::atomic::AtomicBool>,
}

async fn start_beating(server: &Server) -> anyhow::Result<Beating> {
    let users: Vec<String> = (0..HEARTBEAT_SOCKETS).map(|i| format!("hb-{i}")).collect();
    let samples = Arc::new(Mutex::new(Vec::new()));
    let recording = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let crowd = connect_many(server, "/v3", &users, 100, 5_000, |_| {
        let (samples, recording) = (samples.clone(), recording.clone());
        Box::new(move |data: &str| {
            if let Some(sent) = ping_ms(data)
                && recording.load(std::sync::atomic::Ordering::Relaxed)
            {
                let ms = (now_ms() - sent).max(0) as u64;
                samples.lock().expect("samples").push(ms * 1000);
            }
        })
    })
    .await;
    anyhow::ensure!(
        crowd.failures == 0,
        "{} heartbeat sockets could not connect: {}",
        crowd.failures,
        crowd.first_error.unwrap_or_default()
    );
    let handles = crowd.handles;
    Ok(Beating {
        _handles: handles,
        samples,
        recording,
    })
}

pub async fn run(
    server: &Server,
    rooms: usize,
    members: usize,
    total_rate: f64,
    duration: Duration,
) -> anyhow::Result<BudgetResult> {
    let recorder = Arc::new(Recorder::default());
    let mut open = Vec::new();
    for r in 0..rooms {
        let room = Room::open(
            server,
            &format!("budget{r}"),
            members,
            r * members,
            &recorder,
        )
        .await?;
        open.push(room);
    }
    let mut auth: Vec<u64> = open.iter().flat_map(|r| r.connect_us.clone()).collect();
    let mut join: Vec<u64> = open.iter().flat_map(|r| r.join_us.clone()).collect();
    let rate = total_rate / rooms as f64;
    let beating = match server.kind {
        Kind::Confab | Kind::ConfabPg | Kind::ConfabDist => Some(start_beating(server).await?),
        Kind::Node | Kind::NodeRecovery | Kind::Raw => None,
    };
    let before = match &beating {
        Some(b) => {
            b.recording
                .store(true, std::sync::atomic::Ordering::Relaxed);
            round_trips(server).await
        }
        None => (0, 0),
    };
    let step = run_step(
        &open,
        rate,
        duration,
        Duration::from_secs(5),
        1,
        &recorder,
        true,
    )
    .await;
    let heartbeat = match beating {
        Some(b) => {
            b.recording
                .store(false, std::sync::atomic::Ordering::Relaxed);
            let after = round_trips(server).await;
            let mut samples = std::mem::take(&mut *b.samples.lock().expect("samples"));
            Some(HeartbeatResult {
                sockets: HEARTBEAT_SOCKETS,
                beats: samples.len(),
                one_way: percentiles(&mut samples),
                round_trips: after.0.saturating_sub(before.0),
                round_trips_within_30ms: after.1.saturating_sub(before.1),
            })
        }
        None => None,
    };
    Ok(BudgetResult {
        kind: server.kind,
        auth: percentiles(&mut auth),
        join: percentiles(&mut join),
        step,
        heartbeat,
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn reads_a_pings_timestamp() {
        assert_eq!(
            super::ping_ms("[\"ping\",1733000000123]"),
            Some(1733000000123)
        );
        assert_eq!(super::ping_ms("[\"heartbeat\",{}]"), None);
    }
}
