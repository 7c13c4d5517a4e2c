//! The seed's latency budgets (seed 003, p95) at 1,000 messages a second:
//! 10 conversations of 10 members, each sender at 100 messages a second for
//! a few seconds, sends with an ack. Measured: authentication (handshake),
//! chat join (`join_conversation` → ack), message send (`send_message` →
//! ack) and message broadcast (send → `new_message` at the members). Call
//! signaling and heartbeat are not built in confab yet, so they are reported
//! as such, not measured.

use std::sync::Arc;
use std::time::Duration;

use crate::load::{Recorder, Room, StepResult, run_step};
use crate::servers::{Kind, Server};
use crate::stats::{Percentiles, percentiles};

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct BudgetResult {
    pub kind: Kind,
    pub auth: Percentiles,
    pub join: Percentiles,
    pub step: StepResult,
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
    Ok(BudgetResult {
        kind: server.kind,
        auth: percentiles(&mut auth),
        join: percentiles(&mut join),
        step,
    })
}
