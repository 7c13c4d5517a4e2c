//! What one more edge costs (`confab-bench scaling`): the distributed
//! confab ([`Kind::ConfabDist`]) with 2, 4, 8… edge processes under the
//! same load — `rooms` conversations of `room_size` members, each room's
//! members all on one edge (room `k` on edge `k mod N`), each room's
//! sender at `rate` messages a second — and the CPU time every edge and
//! every service process used per message, read from `/proc/<pid>/stat`.
//!
//! Every edge follows every service's whole event stream, so an edge pays
//! for every message, also those of rooms it holds no socket of. If that
//! were free, the edges' CPU per message would not depend on how many
//! edges there are (each delivery is made once, on one edge); the growth
//! with N is the price of an edge reading events it does not deliver —
//! the slope `deploy/SCALING.md` projects.

use std::sync::Arc;
use std::time::Duration;

use crate::load::{Recorder, Room, run_step};
use crate::servers::{Kind, Launch, Server};

/// What one configuration measured.
#[derive(Debug)]
pub struct Point {
    pub edges: usize,
    pub messages: u64,
    pub delivered: u64,
    pub lost: u64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    /// CPU ms of all edges together per 1,000 messages.
    pub edges_cpu_per_1k: f64,
    /// CPU ms of the service processes together per 1,000 messages.
    pub services_cpu_per_1k: f64,
    /// The busiest and the idlest edge, CPU ms per 1,000 messages.
    pub edge_max_per_1k: f64,
    pub edge_min_per_1k: f64,
}

/// Clock ticks per second (`getconf CLK_TCK`; 100 on Linux).
const TICKS_PER_S: f64 = 100.0;

pub async fn run(
    launch: &Launch,
    edges: usize,
    rooms: usize,
    room_size: usize,
    rate: f64,
    seconds: u64,
) -> anyhow::Result<Point> {
    let mut launch = launch.clone();
    launch.edges = edges;
    let server = Server::start(Kind::ConfabDist, &launch).await?;
    let result = measure(&server, rooms, room_size, rate, seconds).await;
    server.stop().await;
    result
}

async fn measure(
    server: &Server,
    rooms: usize,
    room_size: usize,
    rate: f64,
    seconds: u64,
) -> anyhow::Result<Point> {
    let edges = server.edges.len();
    let recorder = Arc::new(Recorder::default());
    let mut open = Vec::with_capacity(rooms);
    for k in 0..rooms {
        let prefix = format!("scale{k}");
        open.push(
            Room::open_on(
                server,
                Some(k % edges),
                &prefix,
                room_size,
                k * room_size,
                &recorder,
            )
            .await?,
        );
    }
    // A short step first, so connections and caches are warm.
    run_step(
        &open,
        rate,
        Duration::from_secs(2),
        Duration::from_secs(5),
        1,
        &recorder,
        false,
    )
    .await;
    let edge_before = server.edge_cpu_ticks()?;
    let all_before = server.cpu_ticks()?;
    let step = run_step(
        &open,
        rate,
        Duration::from_secs(seconds),
        Duration::from_secs(10),
        2,
        &recorder,
        false,
    )
    .await;
    let edge_after = server.edge_cpu_ticks()?;
    let all_after = server.cpu_ticks()?;
    let per_edge: Vec<f64> = edge_after
        .iter()
        .zip(&edge_before)
        .map(|(a, b)| (a - b) as f64 / TICKS_PER_S * 1000.0)
        .collect();
    let edges_ms: f64 = per_edge.iter().sum();
    let all_ms = (all_after - all_before) as f64 / TICKS_PER_S * 1000.0;
    let per_1k = |ms: f64| ms / step.messages as f64 * 1000.0;
    Ok(Point {
        edges,
        messages: step.messages,
        delivered: step.delivered,
        lost: step.lost,
        p50_ms: step.latency.p50,
        p99_ms: step.latency.p99,
        edges_cpu_per_1k: per_1k(edges_ms),
        services_cpu_per_1k: per_1k(all_ms - edges_ms),
        edge_max_per_1k: per_1k(per_edge.iter().copied().fold(0.0, f64::max)),
        edge_min_per_1k: per_1k(per_edge.iter().copied().fold(f64::MAX, f64::min)),
    })
}

/// The points as a Markdown table, with the slope of the edges' CPU per
/// message over the number of edges (least squares).
pub fn table(points: &[Point], rooms: usize, room_size: usize, rate: f64, seconds: u64) -> String {
    let mut md = format!(
        "{rooms} rooms of {room_size}, each room's members on one edge (room k on edge k mod N), \
         each sender at {rate} msg/s ({} msg/s in all), {seconds} s measured after a 2 s warm-up; \
         CPU time from /proc/<pid>/stat.\n\n\
         | edges | messages | deliveries (lost) | p50 / p99 | all edges, CPU ms per 1,000 msgs | busiest / idlest edge | services, CPU ms per 1,000 msgs |\n\
         |---|---|---|---|---|---|---|\n",
        rate * rooms as f64
    );
    for p in points {
        md.push_str(&format!(
            "| {} | {} | {} ({}) | {:.1} / {:.1} ms | {:.0} | {:.0} / {:.0} | {:.0} |\n",
            p.edges,
            p.messages,
            p.delivered,
            p.lost,
            p.p50_ms,
            p.p99_ms,
            p.edges_cpu_per_1k,
            p.edge_max_per_1k,
            p.edge_min_per_1k,
            p.services_cpu_per_1k,
        ));
    }
    if points.len() >= 2 {
        let n = points.len() as f64;
        let xs: Vec<f64> = points.iter().map(|p| p.edges as f64).collect();
        let ys: Vec<f64> = points.iter().map(|p| p.edges_cpu_per_1k).collect();
        let (mx, my) = (xs.iter().sum::<f64>() / n, ys.iter().sum::<f64>() / n);
        let num: f64 = xs.iter().zip(&ys).map(|(x, y)| (x - mx) * (y - my)).sum();
        let den: f64 = xs.iter().map(|x| (x - mx).powi(2)).sum();
        let slope = if den > 0.0 { num / den } else { 0.0 };
        md.push_str(&format!(
            "\nSlope: each edge more costs {slope:.0} CPU ms per 1,000 messages ({:.0} µs per message per edge); \
             at N = 0 the line is at {:.0} ms.\n",
            slope,
            my - slope * mx
        ));
    }
    md
}
