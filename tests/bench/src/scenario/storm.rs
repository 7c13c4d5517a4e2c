//! Connection storm: how many WebSocket handshakes with a JWT (TCP, upgrade,
//! Engine.IO open, namespace connect with the token verified) a server
//! completes per second, `concurrency` at a time, one user per connection.

use std::time::Duration;

use crate::load::connect_many;
use crate::servers::{Kind, Server};
use crate::stats::{Percentiles, percentiles};

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct StormResult {
    pub kind: Kind,
    pub connections: usize,
    pub concurrency: usize,
    pub connected: usize,
    pub failures: usize,
    pub first_error: Option<String>,
    pub per_second: f64,
    /// Time of one handshake, connect to namespace ack.
    pub handshake: Percentiles,
}

pub async fn run(server: &Server, connections: usize, concurrency: usize) -> StormResult {
    let users: Vec<String> = (0..connections).map(|i| format!("storm-{i}")).collect();
    let mut crowd = connect_many(server, crate::load::NS, &users, concurrency, 0, |_| {
        Box::new(|_| {})
    })
    .await;
    let result = StormResult {
        kind: server.kind,
        connections,
        concurrency,
        connected: crowd.handles.len(),
        failures: crowd.failures,
        first_error: crowd.first_error.take(),
        per_second: crowd.handles.len() as f64 / crowd.wall.as_secs_f64().max(1e-6),
        handshake: percentiles(&mut crowd.connect_us),
    };
    drop(crowd);
    // Let the server see the disconnects before the next scenario.
    tokio::time::sleep(Duration::from_millis(500)).await;
    result
}
