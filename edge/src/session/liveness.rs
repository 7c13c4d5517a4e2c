//! This edge's liveness in presence-service: one task tells presence-service
//! every `CONFAB_PRESENCE_HEARTBEAT_MS` that the edge is alive, so its
//! sessions stay; an edge that stops (crashed, cut off) has its sessions
//! and room presences expired by presence-service after the session TTL.
//!
//! Not to be confused with [`crate::heartbeat`], which beats *clients* of
//! contracts whose seed has application heartbeats.

use std::time::Duration;

use confab_proto::v1::HeartbeatRequest;
use tokio::task::JoinHandle;

use crate::state::EdgeState;

/// Tells presence-service every `every` that this edge is alive, until
/// aborted.
pub fn spawn(edge: EdgeState, every: Duration) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        loop {
            tick.tick().await;
            let req = HeartbeatRequest {
                edge_id: edge.edge_id.clone(),
            };
            if let Err(status) = edge.presence.clone().heartbeat(req).await {
                tracing::debug!(error = %status, "edge liveness report failed");
            }
        }
    })
}
