//! Call signaling (seed 003's budget: p95 < 50 ms), in the `v3` contract —
//! confab only, as neither other server places calls. Pairs of users who
//! share a conversation each set up a call over the wire as a frontend does
//! (`initiate_call` with an ack, `answer_call` from the callee's socket),
//! then relay `webrtc_ice_candidate`s both ways at the budget's rate in all;
//! latency is send → `webrtc_ice_candidate_received` at the peer, on the
//! generator's clock. A candidate is relayed by call-service to the one
//! answering socket, so each signal is one delivery.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use serde_json::{Value, json};

use crate::load::{Recorder, StepResult, connect_many, finish_step, paced};
use crate::servers::{Kind, Server};
use crate::stats::{Percentiles, percentiles};

/// The namespace of the contract whose calls are measured.
pub const NS: &str = "/v3";

/// What a peer receives for each candidate.
const RECEIVED: &str = "webrtc_ice_candidate_received";

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct SignalingResult {
    pub kind: Kind,
    pub pairs: usize,
    /// `initiate_call` → its ack (the call rings).
    pub initiate: Percentiles,
    /// `answer_call` → its ack.
    pub answer: Percentiles,
    /// The candidates: send → `webrtc_ice_candidate_received`.
    pub step: StepResult,
}

/// The first element of an ack's `[…]` payload, as JSON.
fn ack_body(ack: &str) -> anyhow::Result<Value> {
    let v: Value = serde_json::from_str(ack).context("ack is not JSON")?;
    Ok(v.get(0).cloned().unwrap_or(Value::Null))
}

pub async fn run(
    server: &Server,
    pairs: usize,
    total_rate: f64,
    duration: Duration,
) -> anyhow::Result<SignalingResult> {
    let recorder = Arc::new(Recorder::new(RECEIVED));
    // Users 2i (caller) and 2i+1 (callee), one conversation per pair.
    let users: Vec<String> = (0..pairs * 2).map(|i| format!("call-{i}")).collect();
    let mut conversations = Vec::with_capacity(pairs);
    for pair in users.chunks(2) {
        conversations.push(server.create_conversation(pair).await?);
    }
    let crowd = connect_many(server, NS, &users, 100, 0, |_| recorder.callback()).await;
    anyhow::ensure!(
        crowd.failures == 0,
        "{} of {} sockets could not connect: {}",
        crowd.failures,
        users.len(),
        crowd.first_error.unwrap_or_default()
    );
    let socks = crowd.handles;

    let mut initiate_us = Vec::with_capacity(pairs);
    let mut answer_us = Vec::with_capacity(pairs);
    let mut calls = Vec::with_capacity(pairs);
    for (i, conversation) in conversations.iter().enumerate() {
        let (caller, callee) = (&socks[2 * i], &socks[2 * i + 1]);
        let t0 = std::time::Instant::now();
        let ack = ack_body(
            &caller
                .request(
                    "initiate_call",
                    &json!({ "targetId": users[2 * i + 1], "callType": "voice", "chatid": conversation }),
                )
                .await?,
        )?;
        initiate_us.push(t0.elapsed().as_micros() as u64);
        let call_id = ack["callId"]
            .as_str()
            .with_context(|| format!("initiate_call refused: {ack}"))?
            .to_string();
        let t0 = std::time::Instant::now();
        let ack = ack_body(
            &callee
                .request("answer_call", &json!({ "callId": call_id }))
                .await?,
        )?;
        answer_us.push(t0.elapsed().as_micros() as u64);
        anyhow::ensure!(ack["success"] == true, "answer_call refused: {ack}");
        calls.push(call_id);
    }

    // Each pair sends its share of the rate, caller and callee in turn.
    let step = 1;
    let timing = paced(pairs, total_rate / pairs as f64, duration, |pair, seq| {
        let (from, to) = if seq % 2 == 0 {
            (2 * pair, 2 * pair + 1)
        } else {
            (2 * pair + 1, 2 * pair)
        };
        let candidate = format!("b|{step}|{seq}|{}", crate::clock::now_us());
        socks[from].emit(
            "webrtc_ice_candidate",
            &json!({
                "callId": calls[pair],
                "targetId": users[to],
                "candidate": { "candidate": candidate, "sdpMid": "0", "sdpMLineIndex": 0 },
            }),
        );
    })
    .await;
    let expected = timing.messages();
    let result = finish_step(
        &recorder,
        step,
        timing,
        expected,
        Duration::from_secs(5),
        None,
    )
    .await;

    for (i, call_id) in calls.iter().enumerate() {
        socks[2 * i].emit("end_call", &json!({ "callId": call_id }));
    }
    Ok(SignalingResult {
        kind: server.kind,
        pairs,
        initiate: percentiles(&mut initiate_us),
        answer: percentiles(&mut answer_us),
        step: result,
    })
}
