//! A publish to a large audience, in the `hvtsocial` contract — confab only,
//! as neither other server has notify-service. `recipients` users are
//! connected (one socket each); a test acting as an internal service calls
//! notify-service's `Publish` over gRPC, as the product's other services do:
//!
//! - steps 1–3: a `post_liked` domain event to all of them by user id, each
//!   also getting a `new_notification` kept unread (one row per recipient);
//! - step 4: the same event to `everyone` connected, nothing kept.
//!
//! Measured per step: the `Publish` call's latency, and publish → arrival of
//! the domain event (and of `new_notification`) at every recipient, with
//! anything that never arrived within the grace counted as lost.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use confab_proto::v1::notify_service_client::NotifyServiceClient;
use confab_proto::v1::{Actor, NotificationContent, PublishRequest};
use serde_json::json;

use crate::clock::now_us;
use crate::load::{Recorder, StepResult, Timing, connect_many, finish_step};
use crate::servers::{Kind, Server};

/// The namespace of the contract that renders notifications.
pub const NS: &str = "/hvtsocial";

/// The domain event published.
const EVENT: &str = "post_liked";

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct PublishStep {
    /// Kept a notification for each recipient (steps 1–3), or `everyone`.
    pub everyone: bool,
    /// `Publish` → its response, ms.
    pub publish_ms: f64,
    /// Publish → the domain event at every recipient.
    pub event: StepResult,
    /// Publish → `new_notification` at every recipient (kept notifications only).
    pub notification: Option<StepResult>,
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct PublishResult {
    pub kind: Kind,
    pub recipients: usize,
    /// How long connecting the audience took, s.
    pub connect_s: f64,
    pub steps: Vec<PublishStep>,
}

impl PublishResult {
    /// Every delivery of every step, lost or not.
    pub fn lost(&self) -> u64 {
        self.steps
            .iter()
            .map(|s| s.event.lost + s.notification.as_ref().map_or(0, |n| n.lost))
            .sum()
    }
}

pub async fn run(
    server: &Server,
    recipients: usize,
    grace: Duration,
) -> anyhow::Result<PublishResult> {
    let grpc: SocketAddr = server
        .grpc_addr
        .context("this server has no gRPC address for internal services")?;
    let mut notify = NotifyServiceClient::connect(format!("http://{grpc}"))
        .await
        .context("connecting to notify-service")?;
    let events = Arc::new(Recorder::new(EVENT));
    let notes = Arc::new(Recorder::new("new_notification"));
    // Numeric ids, as the contract's frontends use.
    let users: Vec<String> = (0..recipients).map(|i| (900_000 + i).to_string()).collect();
    let started = Instant::now();
    let crowd = connect_many(server, NS, &users, 100, 0, |_| {
        let (e, n) = (events.callback(), notes.callback());
        let mut both = [e, n];
        Box::new(move |data: &str| both.iter_mut().for_each(|f| f(data)))
    })
    .await;
    anyhow::ensure!(
        crowd.failures == 0,
        "{} of {recipients} sockets could not connect: {}",
        crowd.failures,
        crowd.first_error.unwrap_or_default()
    );
    let connect_s = started.elapsed().as_secs_f64();
    // Every socket is registered once its namespace connect is answered, so
    // the audience is complete now.

    let mut steps = Vec::new();
    for step in 1..=4u32 {
        let everyone = step == 4;
        let start = Instant::now();
        let start_us = now_us();
        let marker = format!("b|{step}|0|{start_us}");
        let request = PublishRequest {
            user_ids: if everyone { Vec::new() } else { users.clone() },
            everyone,
            r#type: EVENT.into(),
            payload_json: json!({ "postId": step, "userId": 1, "likedBy": 1, "marker": marker })
                .to_string(),
            notification: (!everyone).then(|| NotificationContent {
                r#type: "like".into(),
                content: format!("{marker} liked your post"),
                actor: Some(Actor {
                    id: "1".into(),
                    name: "Bench".into(),
                    ..Default::default()
                }),
                link: format!("/post/{step}"),
                ..Default::default()
            }),
            idempotency_key: format!("bench-{start_us}"),
        };
        let response = notify
            .publish(request)
            .await
            .map_err(|s| anyhow::anyhow!("Publish failed: {} {}", s.code(), s.message()))?
            .into_inner();
        let publish_ms = start.elapsed().as_secs_f64() * 1e3;
        anyhow::ensure!(
            everyone || response.recipient_count as usize == recipients,
            "Publish addressed {} of {recipients}",
            response.recipient_count
        );
        let timing = Timing::single(start, start_us);
        let expected = recipients as u64;
        let event = finish_step(&events, step, timing, expected, grace, None).await;
        let notification = if everyone {
            None
        } else {
            Some(finish_step(&notes, step, timing, expected, grace, None).await)
        };
        eprintln!(
            "  publish {:<22} to {recipients}{}: Publish {publish_ms:.0} ms, event p50 {:.0} ms p99 {:.0} ms, lost {}",
            server.kind.label(),
            if everyone { " (everyone)" } else { "" },
            event.latency.p50,
            event.latency.p99,
            event.lost + notification.as_ref().map_or(0, |n| n.lost)
        );
        steps.push(PublishStep {
            everyone,
            publish_ms,
            event,
            notification,
        });
    }
    drop(crowd.handles);
    Ok(PublishResult {
        kind: server.kind,
        recipients,
        connect_s,
        steps,
    })
}
