//! Fan-out: one conversation of `size` members, one sender at rising rates.
//! Each step reports deliveries per second and the latency at the receivers;
//! the ramp stops after the first step whose p99 passes the budget (50 ms)
//! or that lost a delivery (one that never arrived within the grace period).

use std::sync::Arc;
use std::time::Duration;

use crate::load::{Recorder, Room, StepResult, run_step};
use crate::servers::{Kind, Server};

/// The p99 a step must stay under to count.
pub const P99_BUDGET_MS: f64 = 50.0;

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct FanoutResult {
    pub kind: Kind,
    pub size: usize,
    pub steps: Vec<StepResult>,
    /// Set when the room could not be set up or a step failed outright.
    pub error: Option<String>,
}

impl FanoutResult {
    /// The best delivered rate of a step with p99 under budget and no loss.
    pub fn best_within_budget(&self) -> Option<&StepResult> {
        self.steps
            .iter()
            .filter(|s| s.lost == 0 && s.latency.p99 < P99_BUDGET_MS)
            .max_by(|a, b| a.delivered_per_s.total_cmp(&b.delivered_per_s))
    }
}

/// The sender's rates (messages per second) for a room of `size`: offered
/// deliveries of 1k, 2k, 5k, 10k, 20k, 40k, 80k and 160k per second (the
/// last so that 3× a server at 40k, or ½ of one at 80k, can be shown).
pub fn rates(size: usize, quick: bool) -> Vec<f64> {
    let deliveries: &[f64] = if quick {
        &[2_000.0, 10_000.0, 40_000.0]
    } else {
        &[
            1_000.0, 2_000.0, 5_000.0, 10_000.0, 20_000.0, 40_000.0, 80_000.0, 160_000.0,
        ]
    };
    deliveries.iter().map(|d| d / size as f64).collect()
}

pub async fn run(
    server: &Server,
    size: usize,
    rates: &[f64],
    step_time: Duration,
    grace: Duration,
) -> FanoutResult {
    let mut result = FanoutResult {
        kind: server.kind,
        size,
        steps: Vec::new(),
        error: None,
    };
    let recorder = Arc::new(Recorder::default());
    let room = match Room::open(server, &format!("fan{size}"), size, 0, &recorder).await {
        Ok(room) => room,
        Err(e) => {
            result.error = Some(format!("{e:#}"));
            return result;
        }
    };
    let rooms = [room];
    for (i, &rate) in rates.iter().enumerate() {
        let step = run_step(
            &rooms,
            rate,
            step_time,
            grace,
            i as u32 + 1,
            &recorder,
            false,
        )
        .await;
        let over = step.lost > 0 || step.latency.p99 >= P99_BUDGET_MS;
        eprintln!(
            "  fan-out {size:>4} {:<22} {:>7.1} msg/s: {:>8.0} deliveries/s, p50 {:.1} ms, p99 {:.1} ms, lost {}",
            server.kind.label(),
            rate,
            step.delivered_per_s,
            step.latency.p50,
            step.latency.p99,
            step.lost
        );
        result.steps.push(step);
        if over {
            break;
        }
    }
    if let Some(e) = recorder.first_error.lock().expect("recorder lock").clone() {
        result.error.get_or_insert(format!("server errors: {e}"));
    }
    result
}
