//! Idle connections: the server's resident memory with 1,000, 5,000 and
//! 18,000 connected, idle, authenticated sockets (each its own user), the
//! memory per connection from the least-squares slope, and the projection
//! to 100,000 and 1,000,000 connections on one edge. Clients live in
//! `confab-bench hold` worker processes, at most `per_worker` each.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, bail};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdout, Command};

use crate::servers::{Kind, Server};
use crate::stats::linear_fit;

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct IdleResult {
    pub kind: Kind,
    /// (connections, RSS bytes), the first one before any connection.
    pub points: Vec<(usize, u64)>,
    /// Least-squares bytes per connection.
    pub bytes_per_connection: f64,
    pub intercept_bytes: f64,
    pub failures: usize,
    /// Connections that had closed by the end.
    pub dropped: usize,
    pub first_error: Option<String>,
}

impl IdleResult {
    /// RSS projected for `n` connections from the slope.
    pub fn projected(&self, n: f64) -> f64 {
        self.intercept_bytes + self.bytes_per_connection * n
    }
}

struct Worker {
    child: Child,
    lines: Lines<BufReader<ChildStdout>>,
    connected: usize,
}

async fn spawn_worker(
    bench_bin: &Path,
    server: &Server,
    from: usize,
    count: usize,
) -> anyhow::Result<Worker> {
    let mut child = Command::new(bench_bin)
        .args([
            "hold",
            "--addr",
            &server.addr.to_string(),
            "--prefix",
            "idle",
            "--from",
            &from.to_string(),
            "--count",
            &count.to_string(),
        ])
        .env("CONFAB_BENCH_SECRET", &server.secret)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .context("starting a hold worker")?;
    let stdout = child.stdout.take().context("worker stdout")?;
    Ok(Worker {
        child,
        lines: BufReader::new(stdout).lines(),
        connected: 0,
    })
}

/// Median of three RSS readings half a second apart (after a settling pause).
async fn settled_rss(server: &Server) -> anyhow::Result<u64> {
    tokio::time::sleep(Duration::from_secs(1)).await;
    let mut v = Vec::new();
    for _ in 0..3 {
        v.push(server.rss_bytes()?);
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    v.sort_unstable();
    Ok(v[1])
}

pub async fn run(
    server: &Server,
    bench_bin: &Path,
    stages: &[usize],
    per_worker: usize,
) -> anyhow::Result<IdleResult> {
    let mut result = IdleResult {
        kind: server.kind,
        points: vec![(0, settled_rss(server).await?)],
        bytes_per_connection: 0.0,
        intercept_bytes: 0.0,
        failures: 0,
        dropped: 0,
        first_error: None,
    };
    let mut workers: Vec<Worker> = Vec::new();
    let mut held = 0;
    for &target in stages {
        let mut fresh = Vec::new();
        while held < target {
            let count = (target - held).min(per_worker.max(1));
            fresh.push(spawn_worker(bench_bin, server, held, count).await?);
            held += count;
        }
        for mut w in fresh {
            let line = tokio::time::timeout(Duration::from_secs(120), w.lines.next_line())
                .await
                .context("a hold worker took over 120 s")??
                .context("a hold worker exited early")?;
            let mut parts = line.splitn(4, ' ');
            if parts.next() != Some("ready") {
                bail!("unexpected worker output: {line}");
            }
            w.connected = parts.next().and_then(|s| s.parse().ok()).unwrap_or(0);
            let failed: usize = parts.next().and_then(|s| s.parse().ok()).unwrap_or(0);
            result.failures += failed;
            if failed > 0 && result.first_error.is_none() {
                result.first_error = parts.next().map(str::to_string);
            }
            workers.push(w);
        }
        let connected: usize = workers.iter().map(|w| w.connected).sum();
        let rss = settled_rss(server).await?;
        eprintln!(
            "  idle {:<22} {connected:>6} connections: RSS {:.1} MB",
            server.kind.label(),
            rss as f64 / 1e6
        );
        result.points.push((connected, rss));
    }
    for w in &mut workers {
        let stdin = w.child.stdin.as_mut().context("worker stdin")?;
        let _ = stdin.write_all(b"stop\n").await;
    }
    for mut w in workers {
        if let Ok(Ok(Some(line))) =
            tokio::time::timeout(Duration::from_secs(10), w.lines.next_line()).await
        {
            let alive: usize = line
                .strip_prefix("alive ")
                .and_then(|s| s.parse().ok())
                .unwrap_or(0);
            result.dropped += w.connected.saturating_sub(alive);
        }
        let _ = w.child.wait().await;
    }
    let pts: Vec<(f64, f64)> = result
        .points
        .iter()
        .map(|&(n, b)| (n as f64, b as f64))
        .collect();
    (result.bytes_per_connection, result.intercept_bytes) = linear_fit(&pts);
    Ok(result)
}
