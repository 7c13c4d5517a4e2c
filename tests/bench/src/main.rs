//! `confab-bench`: confab side by side with a Node.js socket.io 4 server and
//! a raw tokio-tungstenite broadcast server, on this machine, over loopback.
//!
//! `confab-bench run` starts each server itself, drives it with the load
//! generator of this crate (Engine.IO 4 / Socket.IO 5 over WebSocket, the
//! `raven` contract; `v3` calls and `hvtsocial` notifications for the two
//! scenarios only confab can run), and writes `BENCHMARKS.md` with a table per scenario,
//! the ratios against Node and the raw limit, and SVG charts. `--smoke` runs
//! the seconds-long version the test command uses so the benchmark never
//! rots. The other subcommands are the benchmark's own helpers: `raw-server`
//! (the machine's limit) and `hold` (a process of idle clients).
//!
//! It must not know confab's internals: it speaks only the wire protocol and
//! the REST API a frontend uses, and (the publish scenario) the gRPC API an
//! internal service calls.

mod chart;
mod client;
mod clock;
mod hold;
mod http;
mod load;
mod machine;
mod raw;
mod report;
mod run;
mod scenario;
mod servers;
mod sio;
mod stats;
mod token;

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};

use crate::servers::{Kind, Launch};

#[derive(Parser)]
#[command(
    version,
    about = "confab's benchmark against Node socket.io and a raw WebSocket server"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Runs every scenario against every server and writes the report.
    Run(RunArgs),
    /// The raw tokio-tungstenite broadcast server (started by `run`).
    RawServer {
        #[arg(long)]
        listen: SocketAddr,
        #[arg(long, env = "CONFAB_BENCH_SECRET", hide_env_values = true)]
        secret: String,
    },
    /// A process holding idle clients (started by `run`'s idle scenario).
    Hold(hold::HoldArgs),
    /// The distributed confab with more and more edges under one load:
    /// CPU per message of the edges and services (deploy/SCALING.md).
    Scaling(ScalingArgs),
    /// Connections cut under a steady stream, socket.io-client reconnecting
    /// by itself: confab in every contract against Node socket.io with and
    /// without connection state recovery. Keeps its results in
    /// `tests/bench/drops.json` and writes the report again with them.
    Drops(DropsArgs),
    /// Writes the report again from a full run's `--json` results (e.g.
    /// after editing `tests/bench/NOTES.md`), without measuring anything.
    Report {
        /// The results a full `run --json` wrote.
        #[arg(long)]
        json: PathBuf,
        /// Where the report goes.
        #[arg(long, default_value_os_t = repo_root().join("BENCHMARKS.md"))]
        out: PathBuf,
    },
}

#[derive(clap::Args)]
struct DropsArgs {
    /// The `confab` binary (`cargo build --release --workspace --bins`).
    #[arg(long)]
    confab_bin: Option<PathBuf>,
    /// The servers: confab (each contract), node, node-recovery.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "confab,node,node-recovery"
    )]
    servers: Vec<String>,
    #[arg(long, default_value_t = 1000)]
    clients: usize,
    #[arg(long, default_value_t = 100)]
    room: usize,
    /// Messages per second in each conversation.
    #[arg(long, default_value_t = 5.0)]
    rate: f64,
    #[arg(long, default_value_t = 60)]
    seconds: u64,
    #[arg(long, default_value_t = 10.0)]
    cut_min_s: f64,
    #[arg(long, default_value_t = 15.0)]
    cut_max_s: f64,
}

async fn drops(args: DropsArgs) -> anyhow::Result<()> {
    let me = std::env::current_exe().context("locating confab-bench")?;
    let confab_bin = args
        .confab_bin
        .unwrap_or_else(|| me.with_file_name("confab"));
    let mut kinds = Vec::new();
    for name in &args.servers {
        kinds.push(kind(name)?);
    }
    let launch = Launch {
        confab_bin: confab_bin.clone(),
        node_script: servers::default_node_script(),
        bench_bin: me,
        pg_admin_url: None,
        redis_url: None,
        edges: 1,
        work_dir: run::scratch_dir(),
    };
    let params = scenario::drops::Params {
        clients: args.clients,
        room: args.room,
        rate: args.rate,
        seconds: args.seconds,
        cut_min_s: args.cut_min_s,
        cut_max_s: args.cut_max_s,
    };
    let rows = scenario::drops::run(&launch, &kinds, &params).await;
    let d = scenario::drops::Drops {
        started: machine::now_utc(),
        confab: machine::git_describe(&repo_root()),
        params,
        rows,
    };
    println!("{}", scenario::drops::section(&d));
    let path = scenario::drops::results_path();
    std::fs::write(&path, serde_json::to_string_pretty(&d)?)?;
    eprintln!("wrote {}", path.display());
    let full = repo_root().join("tests/bench/results.json");
    if full.exists() {
        rewrite(&full, &repo_root().join("BENCHMARKS.md"))?;
    }
    Ok(())
}

#[derive(clap::Args)]
struct ScalingArgs {
    /// The `confab` binary; `confab-edge` and the services are beside it
    /// (`cargo build --release --workspace --bins`).
    #[arg(long)]
    confab_bin: Option<PathBuf>,
    /// The edge counts to measure.
    #[arg(long, value_delimiter = ',', default_value = "2,4,8")]
    edges: Vec<usize>,
    /// Conversations, each with its members on one edge.
    #[arg(long, default_value_t = 16)]
    rooms: usize,
    #[arg(long, default_value_t = 10)]
    room_size: usize,
    /// Messages per second each room's sender sends.
    #[arg(long, default_value_t = 50.0)]
    rate: f64,
    /// Seconds measured per edge count.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pg_url: String,
    #[arg(long, env = "REDIS_URL", hide_env_values = true)]
    redis_url: String,
}

async fn scaling(args: ScalingArgs) -> anyhow::Result<()> {
    let me = std::env::current_exe().context("locating confab-bench")?;
    let confab_bin = args
        .confab_bin
        .unwrap_or_else(|| me.with_file_name("confab"));
    let launch = Launch {
        confab_bin,
        node_script: PathBuf::new(),
        bench_bin: me,
        pg_admin_url: Some(args.pg_url),
        redis_url: Some(args.redis_url),
        edges: 2,
        work_dir: run::scratch_dir(),
    };
    let mut points = Vec::new();
    for &edges in &args.edges {
        let p = scenario::scaling::run(
            &launch,
            edges.max(1),
            args.rooms,
            args.room_size,
            args.rate,
            args.seconds,
        )
        .await?;
        eprintln!("  {p:?}");
        points.push(p);
    }
    println!(
        "{}",
        scenario::scaling::table(&points, args.rooms, args.room_size, args.rate, args.seconds)
    );
    Ok(())
}

#[derive(clap::Args)]
struct RunArgs {
    /// The seconds-long version: tiny rooms, few connections, every server.
    #[arg(long)]
    smoke: bool,
    /// The `confab` binary to measure (default: next to this one, so
    /// `cargo build --release --workspace --bins` builds it, and the
    /// distributed configuration's binaries beside it).
    #[arg(long)]
    confab_bin: Option<PathBuf>,
    /// What to call that binary in the report (default: the git commit).
    #[arg(long)]
    label: Option<String>,
    /// Servers to run, in table order.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "confab,confab-pg,confab-dist,node,raw"
    )]
    servers: Vec<String>,
    /// A PostgreSQL server that may create databases, for `confab-pg`
    /// (without it that variant is left out, with a note).
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pg_url: Option<String>,
    /// Redis for `confab-dist` (the services' event logs).
    #[arg(long, env = "REDIS_URL", hide_env_values = true)]
    redis_url: Option<String>,
    /// How many edge processes `confab-dist` runs.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u16).range(1..=64))]
    edges: u16,
    /// Only these scenarios (default: all). A run of some is for trying a
    /// change: its report goes nowhere unless `--out` is given.
    #[arg(long, value_enum, value_delimiter = ',')]
    scenarios: Vec<run::Scenario>,
    /// Where the report goes (default: `BENCHMARKS.md` at the repository
    /// root; with `--smoke` or `--scenarios`, nowhere unless given).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Also write every figure as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
}

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn kind(name: &str) -> anyhow::Result<Kind> {
    Ok(match name {
        "confab" => Kind::Confab,
        "confab-pg" => Kind::ConfabPg,
        "confab-dist" => Kind::ConfabDist,
        "node" => Kind::Node,
        "node-recovery" => Kind::NodeRecovery,
        "raw" => Kind::Raw,
        other => bail!(
            "unknown server {other:?} (confab, confab-pg, confab-dist, node, node-recovery, raw)"
        ),
    })
}

async fn run(args: RunArgs) -> anyhow::Result<()> {
    let me = std::env::current_exe().context("locating confab-bench")?;
    let given_bin = args.confab_bin.is_some();
    let confab_bin = args
        .confab_bin
        .unwrap_or_else(|| me.with_file_name("confab"));
    let mut notes = Vec::new();
    let mut kinds = Vec::new();
    for name in &args.servers {
        kinds.push(kind(name)?);
    }
    if kinds
        .iter()
        .any(|k| matches!(k, Kind::Confab | Kind::ConfabPg | Kind::ConfabDist))
        && !confab_bin.exists()
    {
        bail!(
            "{} does not exist: build it first (`cargo build --release --workspace --bins`)",
            confab_bin.display()
        );
    }
    let node_script = servers::default_node_script();
    if kinds.contains(&Kind::Node)
        && !node_script
            .with_file_name("node_modules/socket.io")
            .exists()
    {
        bail!("socket.io is not installed for the Node server: run `npm ci --prefix tests/js`");
    }
    if kinds.contains(&Kind::ConfabPg) {
        let usable = args
            .pg_url
            .as_deref()
            .is_some_and(servers::postgres_available);
        if !usable {
            let why = "confab on PostgreSQL was not run: DATABASE_URL is unset or its server does not answer";
            if std::env::var("CI").is_ok_and(|v| v == "true") {
                bail!("{why} (CI=true requires it)");
            }
            eprintln!("SKIP {why}");
            notes.push(why.to_string());
            kinds.retain(|k| *k != Kind::ConfabPg);
        }
    }
    if kinds.contains(&Kind::ConfabDist) {
        let usable = args
            .pg_url
            .as_deref()
            .is_some_and(servers::postgres_available)
            && args.redis_url.is_some();
        if !usable {
            let why = "confab distributed was not run: it needs PostgreSQL (DATABASE_URL) and Redis (REDIS_URL)";
            if std::env::var("CI").is_ok_and(|v| v == "true") {
                bail!("{why} (CI=true requires it)");
            }
            eprintln!("SKIP {why}");
            notes.push(why.to_string());
            kinds.retain(|k| *k != Kind::ConfabDist);
        }
    }
    let label = args.label.unwrap_or_else(|| {
        if given_bin {
            confab_bin.display().to_string()
        } else {
            machine::git_describe(&repo_root())
        }
    });
    let launch = Launch {
        confab_bin,
        node_script,
        bench_bin: me,
        pg_admin_url: args.pg_url,
        redis_url: args.redis_url,
        edges: usize::from(args.edges),
        work_dir: run::scratch_dir(),
    };
    let mut plan = if args.smoke {
        run::Plan::smoke(launch, kinds, label)
    } else {
        run::Plan::full(launch, kinds, label)
    };
    let partial = !args.scenarios.is_empty();
    if partial {
        plan.scenarios = args.scenarios;
    }
    let mut results = run::run(&plan).await;
    results.notes.splice(0..0, notes);

    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_string_pretty(&results)?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    let out = match (args.out, args.smoke || partial) {
        (Some(p), _) => Some(p),
        (None, false) => Some(repo_root().join("BENCHMARKS.md")),
        (None, true) => None,
    };
    if let Some(out) = out {
        report::write(&results, &plan, &out)?;
        eprintln!("wrote {}", out.display());
    }
    eprintln!(
        "done in {:.0} s; {} deliveries lost; {} note(s)",
        results.seconds,
        results.lost(),
        results.notes.len()
    );
    for n in &results.notes {
        eprintln!("  note: {n}");
    }
    Ok(())
}

fn rewrite(json: &std::path::Path, out: &std::path::Path) -> anyhow::Result<()> {
    let text =
        std::fs::read_to_string(json).with_context(|| format!("reading {}", json.display()))?;
    let results: run::Results = serde_json::from_str(&text).context("reading the results")?;
    let launch = Launch {
        confab_bin: PathBuf::new(),
        node_script: PathBuf::new(),
        bench_bin: PathBuf::new(),
        pg_admin_url: None,
        redis_url: None,
        edges: 2,
        work_dir: PathBuf::new(),
    };
    let plan = run::Plan::full(launch, Vec::new(), results.confab.clone());
    report::write(&results, &plan, out)?;
    eprintln!("wrote {}", out.display());
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        match cli.command {
            Command::Run(args) => run(args).await,
            Command::RawServer { listen, secret } => raw::serve(listen, secret).await,
            Command::Hold(args) => hold::run(args).await,
            Command::Scaling(args) => scaling(args).await,
            Command::Drops(args) => drops(args).await,
            Command::Report { json, out } => rewrite(&json, &out),
        }
    })
}
