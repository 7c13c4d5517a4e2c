//! The orchestration: every scenario against every server, one fresh server
//! process per scenario (and per room size), results gathered into
//! [`Results`] for the report. A server that fails is written down as a note
//! and the run goes on, so one broken variant never hides the others.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use clap::ValueEnum as _;

use crate::machine::{self, Machine};
use crate::scenario::{budget, fanout, idle, publish, signaling, storm};
use crate::servers::{Kind, Launch, Server};

/// The scenarios, in the order a run takes them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Scenario {
    Storm,
    Idle,
    Fanout,
    Budget,
    Signaling,
    Publish,
}

impl Scenario {
    /// Whether `kind` can run it: idle memory is read from one process
    /// (confab on PostgreSQL holds the same sockets as on SQLite), and only
    /// confab places calls and publishes notifications.
    fn runs_on(self, kind: Kind) -> bool {
        match self {
            Scenario::Storm | Scenario::Fanout | Scenario::Budget => true,
            Scenario::Idle => !matches!(kind, Kind::ConfabPg | Kind::ConfabDist),
            Scenario::Signaling | Scenario::Publish => {
                matches!(kind, Kind::Confab | Kind::ConfabPg | Kind::ConfabDist)
            }
        }
    }
}

/// What to run.
#[derive(Debug, Clone)]
pub struct Plan {
    pub launch: Launch,
    /// The servers, in table order.
    pub kinds: Vec<Kind>,
    /// The scenarios to run (all of them for a report).
    pub scenarios: Vec<Scenario>,
    /// What the confab under test is (commit, or the binary given).
    pub confab_label: String,
    pub storm_connections: usize,
    pub storm_concurrency: usize,
    pub idle_stages: Vec<usize>,
    pub idle_per_worker: usize,
    pub fanout_sizes: Vec<usize>,
    pub quick: bool,
    pub step_time: Duration,
    pub grace: Duration,
    pub budget_rooms: usize,
    pub budget_members: usize,
    pub budget_rate: f64,
    pub budget_time: Duration,
    /// Call signaling: pairs in calls, candidates per second in all.
    pub signaling_pairs: usize,
    pub signaling_rate: f64,
    pub signaling_time: Duration,
    /// The audience of one publish.
    pub publish_recipients: usize,
}

impl Plan {
    /// The full benchmark of issue 12.
    pub fn full(launch: Launch, kinds: Vec<Kind>, confab_label: String) -> Plan {
        Plan {
            launch,
            kinds,
            scenarios: Scenario::value_variants().to_vec(),
            confab_label,
            storm_connections: 2_000,
            storm_concurrency: 100,
            idle_stages: vec![1_000, 5_000, 18_000],
            idle_per_worker: 5_000,
            fanout_sizes: vec![10, 100, 1_000],
            quick: false,
            step_time: Duration::from_secs(2),
            grace: Duration::from_secs(5),
            budget_rooms: 10,
            budget_members: 10,
            budget_rate: 1_000.0,
            budget_time: Duration::from_secs(3),
            signaling_pairs: 50,
            signaling_rate: 1_000.0,
            signaling_time: Duration::from_secs(3),
            publish_recipients: 10_000,
        }
    }

    /// The seconds-long version the test command runs: 20 handshakes, no
    /// idle crowd, one room of 20 and 20 messages, a budget step of 2 × 5.
    pub fn smoke(launch: Launch, kinds: Vec<Kind>, confab_label: String) -> Plan {
        Plan {
            storm_connections: 20,
            storm_concurrency: 10,
            idle_stages: vec![20],
            idle_per_worker: 20,
            fanout_sizes: vec![20],
            quick: true,
            step_time: Duration::from_secs(1),
            grace: Duration::from_secs(10),
            budget_rooms: 2,
            budget_members: 5,
            budget_rate: 20.0,
            budget_time: Duration::from_secs(1),
            signaling_pairs: 2,
            signaling_rate: 20.0,
            signaling_time: Duration::from_secs(1),
            publish_recipients: 20,
            ..Plan::full(launch, kinds, confab_label)
        }
    }

    /// The servers that run `scenario`, none when it was not asked for.
    fn kinds_for(&self, scenario: Scenario) -> Vec<Kind> {
        if !self.scenarios.contains(&scenario) {
            return Vec::new();
        }
        self.kinds
            .iter()
            .copied()
            .filter(|&k| scenario.runs_on(k))
            .collect()
    }

    fn fanout_rates(&self, size: usize) -> Vec<f64> {
        if self.fanout_sizes == [20] && self.quick {
            return vec![20.0];
        }
        fanout::rates(size, self.quick)
    }
}

/// Everything a run measured.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Results {
    pub machine: Machine,
    pub confab: String,
    pub started: String,
    pub seconds: f64,
    pub storm: Vec<storm::StormResult>,
    pub idle: Vec<idle::IdleResult>,
    pub fanout: Vec<fanout::FanoutResult>,
    pub budget: Vec<budget::BudgetResult>,
    #[serde(default)]
    pub signaling: Vec<signaling::SignalingResult>,
    #[serde(default)]
    pub publish: Vec<publish::PublishResult>,
    /// Failures of whole scenarios, per server.
    pub notes: Vec<String>,
}

impl Results {
    /// Whether every fan-out and budget step of every server delivered everything.
    pub fn lost(&self) -> u64 {
        let fan: u64 = self
            .fanout
            .iter()
            .flat_map(|f| &f.steps)
            .map(|s| s.lost)
            .sum();
        let budget: u64 = self.budget.iter().map(|b| b.step.lost).sum();
        let signaling: u64 = self.signaling.iter().map(|s| s.step.lost).sum();
        let publish: u64 = self.publish.iter().map(|p| p.lost()).sum();
        fan + budget + signaling + publish
    }
}

async fn start(kind: Kind, plan: &Plan, notes: &mut Vec<String>, what: &str) -> Option<Server> {
    match Server::start(kind, &plan.launch).await {
        Ok(s) => Some(s),
        Err(e) => {
            eprintln!("{what}: {} did not start: {e:#}", kind.label());
            notes.push(format!("{what}: {} did not start: {e:#}", kind.label()));
            None
        }
    }
}

/// Runs every scenario of `plan`.
pub async fn run(plan: &Plan) -> Results {
    let begun = Instant::now();
    let mut r = Results {
        machine: machine::detect(),
        confab: plan.confab_label.clone(),
        started: machine::now_utc(),
        seconds: 0.0,
        storm: Vec::new(),
        idle: Vec::new(),
        fanout: Vec::new(),
        budget: Vec::new(),
        signaling: Vec::new(),
        publish: Vec::new(),
        notes: Vec::new(),
    };
    std::fs::create_dir_all(&plan.launch.work_dir).ok();

    eprintln!("== connection storm");
    for kind in plan.kinds_for(Scenario::Storm) {
        let Some(server) = start(kind, plan, &mut r.notes, "storm").await else {
            continue;
        };
        let s = storm::run(&server, plan.storm_connections, plan.storm_concurrency).await;
        eprintln!(
            "  storm {:<22} {:>6.0} handshakes/s, p99 {:.1} ms, {} failed",
            kind.label(),
            s.per_second,
            s.handshake.p99,
            s.failures
        );
        r.storm.push(s);
        server.stop().await;
    }

    eprintln!("== idle connections");
    for kind in plan.kinds_for(Scenario::Idle) {
        let Some(server) = start(kind, plan, &mut r.notes, "idle").await else {
            continue;
        };
        match idle::run(
            &server,
            &plan.launch.bench_bin,
            &plan.idle_stages,
            plan.idle_per_worker,
        )
        .await
        {
            Ok(i) => r.idle.push(i),
            Err(e) => r.notes.push(format!("idle: {}: {e:#}", kind.label())),
        }
        server.stop().await;
    }

    eprintln!("== fan-out");
    for &size in &plan.fanout_sizes {
        for kind in plan.kinds_for(Scenario::Fanout) {
            let Some(server) = start(kind, plan, &mut r.notes, "fan-out").await else {
                continue;
            };
            let rates = plan.fanout_rates(size);
            let f = fanout::run(&server, size, &rates, plan.step_time, plan.grace).await;
            if let Some(e) = &f.error {
                eprintln!("  fan-out {size} {}: {e}", kind.label());
            }
            r.fanout.push(f);
            server.stop().await;
        }
    }

    eprintln!("== latency budgets");
    for kind in plan.kinds_for(Scenario::Budget) {
        let Some(server) = start(kind, plan, &mut r.notes, "budget").await else {
            continue;
        };
        match budget::run(
            &server,
            plan.budget_rooms,
            plan.budget_members,
            plan.budget_rate,
            plan.budget_time,
        )
        .await
        {
            Ok(b) => {
                eprintln!(
                    "  budget {:<22} send p95 {:.1} ms, broadcast p95 {:.1} ms p99 {:.1} ms, lost {}",
                    kind.label(),
                    b.step.ack.map_or(0.0, |a| a.p95),
                    b.step.latency.p95,
                    b.step.latency.p99,
                    b.step.lost
                );
                r.budget.push(b);
            }
            Err(e) => r.notes.push(format!("budget: {}: {e:#}", kind.label())),
        }
        server.stop().await;
    }

    eprintln!("== call signaling (confab only)");
    for kind in plan.kinds_for(Scenario::Signaling) {
        let Some(server) = start(kind, plan, &mut r.notes, "signaling").await else {
            continue;
        };
        match signaling::run(
            &server,
            plan.signaling_pairs,
            plan.signaling_rate,
            plan.signaling_time,
        )
        .await
        {
            Ok(s) => {
                eprintln!(
                    "  signaling {:<22} p95 {:.1} ms, p99 {:.1} ms, lost {}",
                    kind.label(),
                    s.step.latency.p95,
                    s.step.latency.p99,
                    s.step.lost
                );
                r.signaling.push(s);
            }
            Err(e) => r.notes.push(format!("signaling: {}: {e:#}", kind.label())),
        }
        server.stop().await;
    }

    eprintln!("== publish to a large audience (confab only)");
    for kind in plan.kinds_for(Scenario::Publish) {
        let Some(server) = start(kind, plan, &mut r.notes, "publish").await else {
            continue;
        };
        match publish::run(&server, plan.publish_recipients, Duration::from_secs(30)).await {
            Ok(p) => r.publish.push(p),
            Err(e) => r.notes.push(format!("publish: {}: {e:#}", kind.label())),
        }
        server.stop().await;
    }

    let _ = std::fs::remove_dir_all(&plan.launch.work_dir);
    r.seconds = begun.elapsed().as_secs_f64();
    r
}

/// A per-run scratch directory under the system's temporary directory.
pub fn scratch_dir() -> PathBuf {
    std::env::temp_dir().join(format!("confab-bench-{}", std::process::id()))
}
