//! `drops`: connections cut under a steady stream, with the official
//! socket.io-client reconnecting by itself as a browser app has it.
//!
//! The clients are `tests/js/bench-drops.mjs` (Node.js, socket.io-client
//! 4.8): one run per server and contract, each against a freshly started
//! server — confab in each of its five contracts (recipients on the
//! contract's namespace, each conversation's sender on `raven`), Node
//! socket.io 4 as is, and Node socket.io 4 with connection state recovery.
//! Every client's TCP connection is destroyed without a close every 10–15 s;
//! a client whose session was not recovered joins its conversation again,
//! as a frontend does on connect. The script reports messages delivered
//! (of those whose send was acknowledged, times the conversation's
//! members), clients that got every one, duplicates, reconnects and how
//! many were recovered, and the replay latency from a reconnect's open
//! transport to the last message sent before it that arrived after it.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};
use tokio::process::Command;

use crate::servers::{Kind, Launch, Server};

/// The scenario's size.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Params {
    pub clients: usize,
    pub room: usize,
    /// Messages per second in each conversation.
    pub rate: f64,
    pub seconds: u64,
    /// Each client's connection is cut every `cut_min_s`–`cut_max_s` seconds.
    pub cut_min_s: f64,
    pub cut_max_s: f64,
}

/// What the script measured in one run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Measured {
    pub sent: u64,
    pub acked: u64,
    pub expected: u64,
    pub delivered: u64,
    pub complete: u64,
    pub duplicates: u64,
    pub reconnects: u64,
    pub recovered: u64,
    pub replay_p50_ms: Option<f64>,
    pub replay_p99_ms: Option<f64>,
}

/// One server and contract's run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Row {
    pub server: String,
    pub contract: String,
    pub measured: Option<Measured>,
    /// Why there is no measurement.
    pub error: Option<String>,
}

/// A whole `drops` run, as `tests/bench/drops.json` keeps it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Drops {
    pub started: String,
    pub confab: String,
    pub params: Params,
    pub rows: Vec<Row>,
}

/// Where a `drops` run's results are kept for the report.
pub fn results_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("drops.json")
}

/// The contracts confab is measured in.
pub const CONTRACTS: [&str; 5] = ["raven", "mern", "v3", "hvtsocial", "dreamstudio"];

/// Runs the script against every server kind (`Kind::Confab` once per
/// contract), each freshly started.
pub async fn run(launch: &Launch, kinds: &[Kind], params: &Params) -> Vec<Row> {
    let mut rows = Vec::new();
    for &kind in kinds {
        let contracts: Vec<&str> = if matches!(kind, Kind::Node | Kind::NodeRecovery) {
            vec!["raven"]
        } else {
            CONTRACTS.to_vec()
        };
        for contract in contracts {
            eprintln!("drops: {} / {contract}", kind.label());
            let outcome = once(launch, kind, contract, params).await;
            if let Err(e) = &outcome {
                eprintln!("  failed: {e:#}");
            }
            rows.push(Row {
                server: kind.label().to_string(),
                contract: contract.to_string(),
                error: outcome.as_ref().err().map(|e| format!("{e:#}")),
                measured: outcome.ok(),
            });
        }
    }
    rows
}

async fn once(launch: &Launch, kind: Kind, contract: &str, p: &Params) -> anyhow::Result<Measured> {
    let server = Server::start(kind, launch).await?;
    let script = launch.node_script.with_file_name("bench-drops.mjs");
    let out = Command::new("node")
        .arg(&script)
        .env("DROPS_URL", format!("http://{}", server.addr))
        .env("DROPS_SECRET", &server.secret)
        .env("DROPS_NS", format!("/{contract}"))
        .env("DROPS_CONTRACT", contract)
        .env("DROPS_SENDER_NS", "/raven")
        .env("DROPS_CLIENTS", p.clients.to_string())
        .env("DROPS_ROOM", p.room.to_string())
        .env("DROPS_RATE", p.rate.to_string())
        .env("DROPS_SECONDS", p.seconds.to_string())
        .env("DROPS_CUT_MIN_S", p.cut_min_s.to_string())
        .env("DROPS_CUT_MAX_S", p.cut_max_s.to_string())
        .output()
        .await
        .with_context(|| format!("running {}", script.display()))?;
    server.stop().await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let Some(last) = stdout.lines().rev().find(|l| l.starts_with('{')) else {
        bail!(
            "the script printed no result ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
                .lines()
                .last()
                .unwrap_or("")
        );
    };
    serde_json::from_str(last).context("reading the script's result")
}

fn pct(part: u64, whole: u64) -> String {
    if whole == 0 {
        "–".into()
    } else {
        format!("{:.2} %", 100.0 * part as f64 / whole as f64)
    }
}

fn ms(v: Option<f64>) -> String {
    v.map_or("–".into(), |v| format!("{v:.0} ms"))
}

/// The report's section.
pub fn section(d: &Drops) -> String {
    let p = &d.params;
    let mut s = String::new();
    s.push_str("## Dropped connections (`drops`)\n\n");
    s.push_str(&format!(
        "Written by `confab-bench drops` on {} (confab {}). {} clients in conversations \
         of {}, each conversation's sender (never cut) sending numbered messages at {} a \
         second for {} s; every client's TCP connection destroyed without a close every \
         {}–{} s while the official socket.io-client 4.8 reconnects by itself \
         (`tests/js/bench-drops.mjs`); a client whose session was not recovered joins its \
         conversation again, as a frontend does on connect. *Delivered* counts the messages \
         whose send was acknowledged, once per member; *replay* is from a reconnect's open \
         transport to the last message sent before it that arrived after it. Targets \
         (issue 21): 100.00 % delivered and 0 duplicates in every contract, replay p99 \
         under 500 ms.\n\n",
        d.started, d.confab, p.clients, p.room, p.rate, p.seconds, p.cut_min_s, p.cut_max_s
    ));
    s.push_str(
        "| server | contract | delivered | clients with every message | duplicates | \
         recovered reconnects | replay p50 | replay p99 | target |\n\
         |---|---|---|---|---|---|---|---|---|\n",
    );
    for r in &d.rows {
        match &r.measured {
            Some(m) => {
                let confab = r.server.starts_with("confab");
                let met = m.delivered == m.expected
                    && m.duplicates == 0
                    && m.replay_p99_ms.is_none_or(|v| v < 500.0);
                s.push_str(&format!(
                    "| {} | `{}` | {} ({} of {}) | {} | {} | {} of {} | {} | {} | {} |\n",
                    r.server,
                    r.contract,
                    pct(m.delivered, m.expected),
                    m.delivered,
                    m.expected,
                    pct(m.complete, p.clients as u64),
                    m.duplicates,
                    m.recovered,
                    m.reconnects,
                    ms(m.replay_p50_ms),
                    ms(m.replay_p99_ms),
                    if !confab {
                        "–"
                    } else if met {
                        "met"
                    } else {
                        "**missed**"
                    }
                ));
            }
            None => s.push_str(&format!(
                "| {} | `{}` | failed: {} | | | | | | |\n",
                r.server,
                r.contract,
                r.error.as_deref().unwrap_or("?")
            )),
        }
    }
    s.push('\n');
    s
}
