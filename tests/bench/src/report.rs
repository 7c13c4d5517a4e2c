//! `BENCHMARKS.md` from a run's [`Results`]: the machine, the targets with
//! what was measured against them, a table per scenario with the ratios
//! against Node and the raw limit, SVG charts, and — kept by hand in
//! `tests/bench/NOTES.md` and copied in — what each improvement changed and
//! what limits the targets still missed.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Context;

use crate::chart::{Chart, Scale, Series};
use crate::run::{Plan, Results};
use crate::scenario::fanout::{FanoutResult, P99_BUDGET_MS};
use crate::servers::Kind;

/// Where the charts of a report at `out` go, and how the report links them.
fn charts_dir(out: &Path) -> (PathBuf, String) {
    let dir = out.parent().unwrap_or(Path::new("."));
    if out.file_name().is_some_and(|n| n == "BENCHMARKS.md") && dir.join("tests/bench").is_dir() {
        (dir.join("tests/bench/charts"), "tests/bench/charts".into())
    } else {
        (dir.join("charts"), "charts".into())
    }
}

fn ratio(a: f64, b: f64) -> String {
    if a > 0.0 && b > 0.0 {
        format!("{:.2}×", a / b)
    } else {
        "—".into()
    }
}

fn ms(v: f64) -> String {
    if v >= 100.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    }
}

fn count(v: f64) -> String {
    let n = v.round() as u64;
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn met(ok: bool) -> &'static str {
    if ok { "met" } else { "**missed**" }
}

/// Writes the report to `out` and its charts beside it.
pub fn write(r: &Results, plan: &Plan, out: &Path) -> anyhow::Result<()> {
    let (dir, link) = charts_dir(out);
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut md = String::new();
    let w = &mut md;

    writeln!(w, "# confab benchmarks\n")?;
    writeln!(
        w,
        "Written by `confab-bench run` ({}) on {} in {:.0} s; confab {}. \
         Reproduce with the command in the README's *Benchmarks* section. \
         Every server is started by the benchmark on loopback, driven by the \
         same Rust load generator (Engine.IO 4 / Socket.IO 5 over WebSocket, \
         the `raven` contract, a JWT per connection).\n",
        if plan.quick { "smoke" } else { "full" },
        r.started,
        r.seconds,
        r.confab
    )?;
    let m = &r.machine;
    writeln!(w, "| machine | |\n|---|---|")?;
    writeln!(w, "| CPUs | {} × {} |", m.cpus, m.cpu_model)?;
    writeln!(w, "| memory | {:.1} GB |", m.memory_gb)?;
    writeln!(w, "| kernel | {} |", m.kernel)?;
    writeln!(w, "| open files per process | {} |", m.open_files)?;
    writeln!(w, "| Node.js | {} (socket.io 4.8.1) |\n", m.node)?;
    writeln!(
        w,
        "The servers: **confab** is the embedded `confab` binary (edge and all four \
         services in one process, chat-service on SQLite or PostgreSQL), run with \
         `CONFAB_MESSAGE_RATE_LIMIT=1000000` because one user sends every message \
         of a room and the Node baseline has no limit either (the default, 10 a \
         second per user, still costs its check per message); **confab \
         (distributed)** is the deployment `deploy/` describes, every part its own \
         process on this one machine: two `confab-edge`s (clients spread over \
         them), two chat-service replicas, presence-, call- and notify-service, \
         PostgreSQL and the services' event logs in Redis — three network hops \
         more per message than the embedded binary, on the same 2 cores \
         (`deploy/SCALING.md` has its costs per edge); **Node \
         socket.io** is `tests/js/bench-server.mjs`, the same `raven` flow in memory \
         (membership check on join and send, `new_message` to the room); **raw \
         tokio-tungstenite** is `confab-bench raw-server`, which only frames and \
         broadcasts — the machine's limit.\n"
    )?;

    targets(w, r, plan)?;
    storm(w, r)?;
    idle(w, r, &dir, &link)?;
    fanout(w, r, &dir, &link)?;
    budget(w, r)?;
    signaling(w, r)?;
    publish(w, r)?;
    // `confab-bench drops` keeps its own results beside the full run's.
    if let Ok(text) = std::fs::read_to_string(crate::scenario::drops::results_path())
        && let Ok(d) = serde_json::from_str::<crate::scenario::drops::Drops>(&text)
    {
        w.push_str(&crate::scenario::drops::section(&d));
    }

    if !r.notes.is_empty() {
        writeln!(w, "## Notes of this run\n")?;
        for n in &r.notes {
            writeln!(w, "- {n}")?;
        }
        writeln!(w)?;
    }
    let notes = Path::new(env!("CARGO_MANIFEST_DIR")).join("NOTES.md");
    if let Ok(text) = std::fs::read_to_string(&notes) {
        writeln!(w, "{}", text.trim_end())?;
    }
    std::fs::write(out, md).with_context(|| format!("writing {}", out.display()))?;
    Ok(())
}

fn confab_kinds(r: &Results) -> Vec<Kind> {
    let mut kinds: Vec<Kind> = r.storm.iter().map(|s| s.kind).collect();
    kinds.retain(|k| matches!(k, Kind::Confab | Kind::ConfabPg | Kind::ConfabDist));
    kinds
}

fn best(r: &Results, kind: Kind, size: usize) -> Option<f64> {
    r.fanout
        .iter()
        .find(|f| f.kind == kind && f.size == size)
        .and_then(FanoutResult::best_within_budget)
        .map(|s| s.delivered_per_s)
}

/// `count(v)`, marked `≥` when `kind` never left the budget: the ramp
/// ended before its limit was found.
fn best_text(r: &Results, kind: Kind, size: usize) -> String {
    let Some(v) = best(r, kind, size) else {
        return "none".into();
    };
    let capped = r
        .fanout
        .iter()
        .find(|f| f.kind == kind && f.size == size)
        .and_then(|f| f.steps.last())
        .is_some_and(|s| s.lost == 0 && s.latency.p99 < P99_BUDGET_MS);
    format!("{}{}", if capped { "≥ " } else { "" }, count(v))
}

fn targets(w: &mut String, r: &Results, plan: &Plan) -> anyhow::Result<()> {
    writeln!(w, "## Targets\n")?;
    writeln!(w, "| target | measured | |\n|---|---|---|")?;
    for kind in confab_kinds(r) {
        let lost: u64 = r
            .fanout
            .iter()
            .filter(|f| f.kind == kind)
            .flat_map(|f| &f.steps)
            .map(|s| s.lost)
            .sum::<u64>()
            + r.budget
                .iter()
                .filter(|b| b.kind == kind)
                .map(|b| b.step.lost)
                .sum::<u64>();
        let refused: u64 = r
            .fanout
            .iter()
            .filter(|f| f.kind == kind)
            .flat_map(|f| &f.steps)
            .map(|s| s.errors)
            .sum();
        writeln!(
            w,
            "| {}: no delivery lost, at any rate | {} lost{} | {} |",
            kind.label(),
            count(lost as f64),
            if refused > 0 {
                format!(
                    " ({} messages refused to their sender)",
                    count(refused as f64)
                )
            } else {
                String::new()
            },
            met(lost == 0)
        )?;
    }
    let sizes: Vec<usize> = {
        let mut s: Vec<usize> = r.fanout.iter().map(|f| f.size).collect();
        s.dedup();
        s
    };
    for &size in &sizes {
        let c = best(r, Kind::Confab, size).unwrap_or(0.0);
        let node = best(r, Kind::Node, size).unwrap_or(0.0);
        let raw = best(r, Kind::Raw, size).unwrap_or(0.0);
        writeln!(
            w,
            "| fan-out {size}: deliveries/s at p99 < 50 ms ≥ 3× Node | {} vs {} ({}) | {} |",
            best_text(r, Kind::Confab, size),
            best_text(r, Kind::Node, size),
            ratio(c, node),
            if node > 0.0 && c >= 3.0 * node {
                met(true)
            } else if best_text(r, Kind::Node, size).starts_with('≥') && c >= node {
                "not proven: Node's limit is above the ramp too"
            } else if best_text(r, Kind::Confab, size).starts_with('≥') {
                "not proven: confab's limit is above the ramp"
            } else {
                met(false)
            }
        )?;
        // Issue 20's targets for the production path: PostgreSQL at least
        // Node's rate in one process, and the distributed configuration at
        // least as fast as one process on PostgreSQL.
        let ran = |k: Kind| r.fanout.iter().any(|f| f.kind == k && f.size == size);
        let pg = ran(Kind::ConfabPg).then(|| best(r, Kind::ConfabPg, size).unwrap_or(0.0));
        if let Some(pg) = pg {
            writeln!(
                w,
                "| fan-out {size}: confab on PostgreSQL ≥ Node's deliveries/s at p99 < 50 ms | {} vs {} ({}) | {} |",
                best_text(r, Kind::ConfabPg, size),
                best_text(r, Kind::Node, size),
                ratio(pg, node),
                if node > 0.0 && pg >= node {
                    met(true)
                } else if best_text(r, Kind::ConfabPg, size).starts_with('≥') {
                    "not proven: its limit is above the ramp"
                } else {
                    met(false)
                }
            )?;
        }
        let dist = ran(Kind::ConfabDist).then(|| best(r, Kind::ConfabDist, size).unwrap_or(0.0));
        if let (Some(dist), Some(pg)) = (dist, pg) {
            writeln!(
                w,
                "| fan-out {size}: confab distributed ≥ one process on PostgreSQL | {} vs {} ({}) | {} |",
                best_text(r, Kind::ConfabDist, size),
                best_text(r, Kind::ConfabPg, size),
                ratio(dist, pg),
                met(pg > 0.0 && dist >= pg)
            )?;
        }
        writeln!(
            w,
            "| fan-out {size}: ≥ ½ of the raw limit | {} vs {} ({}) | {} |",
            best_text(r, Kind::Confab, size),
            best_text(r, Kind::Raw, size),
            ratio(c, raw),
            if best_text(r, Kind::Raw, size).starts_with('≥') && c >= 0.5 * raw {
                "not proven: the raw limit is above the ramp"
            } else {
                met(raw > 0.0 && c >= 0.5 * raw)
            }
        )?;
    }
    if let Some(b) = r.budget.iter().find(|b| b.kind == Kind::Confab) {
        writeln!(
            w,
            "| p99 send → delivery < 5 ms at {} msg/s | {} ms | {} |",
            count(plan.budget_rate),
            ms(b.step.latency.p99),
            met(b.step.latency.p99 < 5.0 && b.step.lost == 0)
        )?;
    }
    for b in &r.budget {
        if let Some(h) = &b.heartbeat {
            writeln!(
                w,
                "| {}: heartbeat round trip p95 < 30 ms (seed 003) at {} msg/s | {} of round trips within 30 ms (one way p95 {} ms) | {} |",
                b.kind.label(),
                count(plan.budget_rate),
                within(h),
                ms(h.one_way.p95),
                met(h.round_trips > 0
                    && h.round_trips_within_30ms as f64 >= 0.95 * h.round_trips as f64)
            )?;
        }
    }
    let idle = |k: Kind| r.idle.iter().find(|i| i.kind == k);
    if let (Some(c), Some(n)) = (idle(Kind::Confab), idle(Kind::Node)) {
        writeln!(
            w,
            "| memory per idle connection ≤ ¼ of Node's | {:.1} KB vs {:.1} KB ({}) | {} |",
            c.bytes_per_connection / 1024.0,
            n.bytes_per_connection / 1024.0,
            ratio(c.bytes_per_connection, n.bytes_per_connection),
            met(c.bytes_per_connection * 4.0 <= n.bytes_per_connection)
        )?;
    }
    if let Some(s) = r.storm.iter().find(|s| s.kind == Kind::Confab) {
        writeln!(
            w,
            "| ≥ 5,000 handshakes/s | {} /s | {} |",
            count(s.per_second),
            met(s.per_second >= 5000.0 && s.failures == 0)
        )?;
    }
    for sig in &r.signaling {
        writeln!(
            w,
            "| {}: call signaling p95 < 50 ms (seed 003) at {} signals/s | {} ms, {} lost | {} |",
            sig.kind.label(),
            count(sig.step.offered_per_s),
            ms(sig.step.latency.p95),
            count(sig.step.lost as f64),
            met(sig.step.latency.p95 < 50.0 && sig.step.lost == 0)
        )?;
    }
    for p in &r.publish {
        writeln!(
            w,
            "| {}: a publish to {} recipients accepted and delivered | {} lost | {} |",
            p.kind.label(),
            count(p.recipients as f64),
            count(p.lost() as f64),
            met(p.lost() == 0 && !p.steps.is_empty())
        )?;
    }
    if let Some(c) = idle(Kind::Confab) {
        let top = c.points.last().map_or(0, |p| p.0);
        writeln!(
            w,
            "| {} concurrent connections on one edge, no errors | {} connected, {} failed, {} dropped | {} |",
            count(top as f64),
            count(top as f64),
            c.failures,
            c.dropped,
            met(c.failures == 0 && c.dropped == 0)
        )?;
    }
    writeln!(w)?;
    Ok(())
}

fn storm(w: &mut String, r: &Results) -> anyhow::Result<()> {
    writeln!(w, "## Connection storm\n")?;
    let Some(first) = r.storm.first() else {
        writeln!(w, "Not run.\n")?;
        return Ok(());
    };
    writeln!(
        w,
        "{} WebSocket handshakes, {} at a time, each a new user with a JWT \
         (TCP, upgrade, Engine.IO open, namespace connect with the token verified).\n",
        count(first.connections as f64),
        first.concurrency
    )?;
    let of = |k: Kind| {
        r.storm
            .iter()
            .find(|s| s.kind == k)
            .map_or(0.0, |s| s.per_second)
    };
    writeln!(
        w,
        "| server | handshakes/s | handshake p50 | p99 | failed | vs Node | vs raw |\n|---|---|---|---|---|---|---|"
    )?;
    for s in &r.storm {
        writeln!(
            w,
            "| {} | {} | {} ms | {} ms | {} | {} | {} |",
            s.kind.label(),
            count(s.per_second),
            ms(s.handshake.p50),
            ms(s.handshake.p99),
            s.failures,
            ratio(s.per_second, of(Kind::Node)),
            ratio(s.per_second, of(Kind::Raw))
        )?;
    }
    for s in r.storm.iter().filter(|s| s.first_error.is_some()) {
        writeln!(
            w,
            "\n{}: first error: `{}`",
            s.kind.label(),
            s.first_error.as_deref().unwrap_or("")
        )?;
    }
    writeln!(w)?;
    Ok(())
}

fn idle(w: &mut String, r: &Results, dir: &Path, link: &str) -> anyhow::Result<()> {
    writeln!(w, "## Idle connections\n")?;
    if r.idle.is_empty() {
        writeln!(w, "Not run.\n")?;
        return Ok(());
    }
    writeln!(
        w,
        "Connected, authenticated, idle sockets (one user each, pings answered), held by \
         `confab-bench hold` worker processes; the server's resident memory (VmRSS) after \
         each stage settles. Memory per connection is the least-squares slope; the \
         projections extend it.\n"
    )?;
    let stages: Vec<usize> = r.idle[0].points.iter().map(|p| p.0).collect();
    let mut head = String::from("| server |");
    let mut rule = String::from("|---|");
    for s in &stages {
        write!(head, " RSS at {} |", count(*s as f64))?;
        rule.push_str("---|");
    }
    head.push_str(" per connection | 100,000 | 1,000,000 | failed | vs Node |");
    rule.push_str("---|---|---|---|---|");
    writeln!(w, "{head}\n{rule}")?;
    let node = r
        .idle
        .iter()
        .find(|i| i.kind == Kind::Node)
        .map_or(0.0, |i| i.bytes_per_connection);
    for i in &r.idle {
        let mut row = format!("| {} |", i.kind.label());
        for p in &i.points {
            write!(row, " {:.1} MB |", p.1 as f64 / 1e6)?;
        }
        write!(
            row,
            " {:.1} KB | {:.2} GB | {:.1} GB | {} | {} |",
            i.bytes_per_connection / 1024.0,
            i.projected(1e5) / 1e9,
            i.projected(1e6) / 1e9,
            i.failures + i.dropped,
            ratio(i.bytes_per_connection, node)
        )?;
        writeln!(w, "{row}")?;
    }
    let chart = Chart {
        title: "Server memory against idle connections",
        x_label: "connections",
        y_label: "RSS (MB)",
        x_scale: Scale::Linear,
        y_scale: Scale::Linear,
        budget: None,
        series: r
            .idle
            .iter()
            .map(|i| Series {
                name: i.kind.label().into(),
                colour: i.kind.colour().into(),
                points: i
                    .points
                    .iter()
                    .map(|&(n, b)| (n as f64, b as f64 / 1e6))
                    .collect(),
            })
            .collect(),
    };
    std::fs::write(dir.join("idle-memory.svg"), chart.svg())?;
    writeln!(
        w,
        "\n![memory against connections]({link}/idle-memory.svg)\n"
    )?;
    Ok(())
}

fn fanout(w: &mut String, r: &Results, dir: &Path, link: &str) -> anyhow::Result<()> {
    writeln!(w, "## Fan-out\n")?;
    if r.fanout.is_empty() {
        writeln!(w, "Not run.\n")?;
        return Ok(());
    }
    writeln!(
        w,
        "One conversation, every member connected and joined, one member sending at \
         rising rates (each step 1k, 2k, 5k … 160k deliveries a second offered); latency \
         is send → `new_message` at every member, the sender included, on the \
         generator's clock. A step that passes p99 {P99_BUDGET_MS} ms or loses a \
         delivery (not arrived within the grace period) ends the ramp. *Best* is the \
         most deliveries a second a server achieved with p99 under {P99_BUDGET_MS} ms \
         and nothing lost; `≥` marks a server still within budget at the top of the \
         ramp, whose limit this machine did not reach (and a ratio against it is an \
         upper bound). *Refused* counts messages the sender was told failed (an \
         `error` event instead of the message); their deliveries count as lost.\n"
    )?;
    let mut sizes: Vec<usize> = r.fanout.iter().map(|f| f.size).collect();
    sizes.dedup();
    for size in sizes {
        writeln!(w, "### Rooms of {size}\n")?;
        writeln!(
            w,
            "| server | best deliveries/s within budget | vs Node | vs raw |\n|---|---|---|---|"
        )?;
        let node = best(r, Kind::Node, size).unwrap_or(0.0);
        let raw = best(r, Kind::Raw, size).unwrap_or(0.0);
        for f in r.fanout.iter().filter(|f| f.size == size) {
            let b = best(r, f.kind, size).unwrap_or(0.0);
            writeln!(
                w,
                "| {} | {} | {} | {} |",
                f.kind.label(),
                best_text(r, f.kind, size),
                ratio(b, node),
                ratio(b, raw)
            )?;
        }
        writeln!(
            w,
            "\n| server | msg/s | offered deliveries/s | delivered/s | p50 | p99 | p99.9 | max | lost | refused |\n|---|---|---|---|---|---|---|---|---|---|"
        )?;
        for f in r.fanout.iter().filter(|f| f.size == size) {
            for s in &f.steps {
                writeln!(
                    w,
                    "| {} | {:.1} | {} | {} | {} ms | {} ms | {} ms | {} ms | {} | {} |",
                    f.kind.label(),
                    s.rate_per_room,
                    count(s.offered_per_s),
                    count(s.delivered_per_s),
                    ms(s.latency.p50),
                    ms(s.latency.p99),
                    ms(s.latency.p999),
                    ms(s.latency.max),
                    count(s.lost as f64),
                    count(s.errors as f64)
                )?;
            }
            if let Some(e) = &f.error {
                writeln!(
                    w,
                    "| {} | error: {} | | | | | | | | |",
                    f.kind.label(),
                    e.replace('|', "/")
                )?;
            }
        }
        let chart = Chart {
            title: &format!("Fan-out to rooms of {size}: p99 latency against load"),
            x_label: "deliveries per second offered",
            y_label: "p99 send → delivery (ms)",
            x_scale: Scale::Log,
            y_scale: Scale::Log,
            budget: Some((P99_BUDGET_MS, "50 ms budget")),
            series: r
                .fanout
                .iter()
                .filter(|f| f.size == size)
                .map(|f| Series {
                    name: f.kind.label().into(),
                    colour: f.kind.colour().into(),
                    points: f
                        .steps
                        .iter()
                        .map(|s| (s.offered_per_s, s.latency.p99.max(0.01)))
                        .collect(),
                })
                .collect(),
        };
        let file = format!("fanout-{size}.svg");
        std::fs::write(dir.join(&file), chart.svg())?;
        writeln!(w, "\n![fan-out to rooms of {size}]({link}/{file})\n")?;
    }
    Ok(())
}

fn budget(w: &mut String, r: &Results) -> anyhow::Result<()> {
    writeln!(
        w,
        "## The seed's latency budgets at 1,000 messages a second\n"
    )?;
    let Some(first) = r.budget.first() else {
        writeln!(w, "Not run.\n")?;
        return Ok(());
    };
    writeln!(
        w,
        "Seed 003's budgets (95th percentile). {} messages in all, spread over rooms of \
         members each sending with an ack; p99 and p99.9 shown too.\n",
        count(first.step.messages as f64)
    )?;
    writeln!(
        w,
        "| server | authentication p95 (< 500 ms) | chat join p95 (< 200 ms) | message send p95 (< 100 ms) | broadcast p95 (< 50 ms) | broadcast p99 | p99.9 | lost |\n|---|---|---|---|---|---|---|---|"
    )?;
    for b in &r.budget {
        writeln!(
            w,
            "| {} | {} ms | {} ms | {} ms | {} ms | {} ms | {} ms | {} |",
            b.kind.label(),
            ms(b.auth.p95),
            ms(b.join.p95),
            b.step.ack.map_or("—".into(), |a| ms(a.p95)),
            ms(b.step.latency.p95),
            ms(b.step.latency.p99),
            ms(b.step.latency.p999),
            count(b.step.lost as f64)
        )?;
    }
    writeln!(
        w,
        "\nCall signaling (< 50 ms) has its own section below (confab only: calls are \
         not part of the flow every server here shares).\n"
    )?;
    let beats: Vec<_> = r
        .budget
        .iter()
        .filter_map(|b| b.heartbeat.as_ref().map(|h| (b.kind, h)))
        .collect();
    if !beats.is_empty() {
        writeln!(
            w,
            "Heartbeat (< 30 ms; confab only: the `v3` contract's server-driven \
             `ping` / `heartbeat`, which the others do not have): during the step, \
             {} `v3` sockets beat every {} ms (`CONFAB_HEARTBEAT_MS`, 25 s by default) \
             and answer each `ping` with `pong`. *One way* is the `ping`'s timestamp \
             to its arrival (millisecond resolution); *round trips* are the server's \
             own (`confab_heartbeat_rtt_seconds`), beat to answer.\n",
            beats[0].1.sockets,
            crate::scenario::budget::HEARTBEAT_MS
        )?;
        writeln!(
            w,
            "| server | pings | one way p50 | p95 | p99 | max | round trips | within 30 ms |\n|---|---|---|---|---|---|---|---|"
        )?;
        for (kind, h) in beats {
            writeln!(
                w,
                "| {} | {} | {} ms | {} ms | {} ms | {} ms | {} | {} |",
                kind.label(),
                count(h.beats as f64),
                ms(h.one_way.p50),
                ms(h.one_way.p95),
                ms(h.one_way.p99),
                ms(h.one_way.max),
                count(h.round_trips as f64),
                within(h)
            )?;
        }
        writeln!(w)?;
    }
    Ok(())
}

/// The share of heartbeat round trips within 30 ms, as a percentage.
fn within(h: &crate::scenario::budget::HeartbeatResult) -> String {
    if h.round_trips == 0 {
        return "—".into();
    }
    format!(
        "{:.1} %",
        100.0 * h.round_trips_within_30ms as f64 / h.round_trips as f64
    )
}

fn signaling(w: &mut String, r: &Results) -> anyhow::Result<()> {
    writeln!(
        w,
        "## Call signaling (`v3`)
"
    )?;
    let Some(first) = r.signaling.first() else {
        writeln!(w, "Not run.\n")?;
        return Ok(());
    };
    writeln!(
        w,
        "confab only: the other servers place no calls. {} pairs of users who share a \
         conversation each set up a call over the wire (`initiate_call` with an ack, \
         `answer_call` from the callee), then send {} `webrtc_ice_candidate`s in all, \
         both ways, at {} a second in all; latency is send → \
         `webrtc_ice_candidate_received` at the peer's answering socket (through \
         call-service, which checks that both are in the call). The seed's budget is \
         p95 < 50 ms.\n",
        first.pairs,
        count(first.step.messages as f64),
        count(first.step.offered_per_s)
    )?;
    writeln!(
        w,
        "| server | initiate → ack p95 | answer → ack p95 | signals/s delivered | p50 | p95 | p99 | p99.9 | max | lost |\n|---|---|---|---|---|---|---|---|---|---|"
    )?;
    for s in &r.signaling {
        writeln!(
            w,
            "| {} | {} ms | {} ms | {} | {} ms | {} ms | {} ms | {} ms | {} ms | {} |",
            s.kind.label(),
            ms(s.initiate.p95),
            ms(s.answer.p95),
            count(s.step.delivered_per_s),
            ms(s.step.latency.p50),
            ms(s.step.latency.p95),
            ms(s.step.latency.p99),
            ms(s.step.latency.p999),
            ms(s.step.latency.max),
            count(s.step.lost as f64)
        )?;
    }
    writeln!(w)?;
    Ok(())
}

fn publish(w: &mut String, r: &Results) -> anyhow::Result<()> {
    writeln!(w, "## A publish to a large audience (`hvtsocial`)\n")?;
    let Some(first) = r.publish.first() else {
        writeln!(w, "Not run.\n")?;
        return Ok(());
    };
    writeln!(
        w,
        "confab only: the other servers have no notify-service. {} users connected on \
         `hvtsocial`, one socket each; the benchmark, acting as an internal service, \
         calls notify-service's `Publish` over gRPC: three times a `post_liked` to all \
         of them by user id with a notification kept for each (a row per recipient, \
         then `new_notification` and `unread_count` on their sockets), then once to \
         `everyone` connected with nothing kept. Latency is the publish's start → \
         arrival at each recipient; *delivered/s* is arrivals over the time to the \
         last one.\n",
        count(first.recipients as f64)
    )?;
    writeln!(
        w,
        "| server | publish | audience | `Publish` call | event p50 | p99 | last | delivered/s | notification p50 | p99 | last | lost |\n|---|---|---|---|---|---|---|---|---|---|---|---|"
    )?;
    for p in &r.publish {
        for (i, s) in p.steps.iter().enumerate() {
            let (np50, np99, nmax) = s.notification.as_ref().map_or(
                ("—".to_string(), "—".to_string(), "—".to_string()),
                |n| {
                    (
                        format!("{} ms", ms(n.latency.p50)),
                        format!("{} ms", ms(n.latency.p99)),
                        format!("{} ms", ms(n.latency.max)),
                    )
                },
            );
            writeln!(
                w,
                "| {} | {} | {} | {} ms | {} ms | {} ms | {} ms | {} | {np50} | {np99} | {nmax} | {} |",
                p.kind.label(),
                i + 1,
                if s.everyone {
                    "everyone, nothing kept".to_string()
                } else {
                    format!("{} user ids, notification kept", count(p.recipients as f64))
                },
                ms(s.publish_ms),
                ms(s.event.latency.p50),
                ms(s.event.latency.p99),
                ms(s.event.latency.max),
                count(s.event.delivered_per_s),
                count((s.event.lost + s.notification.as_ref().map_or(0, |n| n.lost)) as f64)
            )?;
        }
    }
    writeln!(w)?;
    Ok(())
}
