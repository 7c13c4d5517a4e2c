//! The three servers under test, each a child process of the benchmark so
//! its resident memory can be read from `/proc/<pid>/status`:
//!
//! - **confab**: the embedded `confab` binary (edge + all four services), the
//!   `raven` contract, SQLite in a fresh temporary data directory or a fresh
//!   PostgreSQL database created for the run and dropped after it;
//! - **confab, distributed**: the binaries beside `confab` as a platform
//!   team deploys them — two chat-service replicas, presence-, call- and
//!   notify-service, each its own process, on a fresh PostgreSQL database
//!   and Redis (the services' event logs under a prefix of the run's own),
//!   and [`Launch::edges`] `confab-edge` processes (two by default), each
//!   knowing both chat replicas; clients are spread over the edges;
//! - **node**: `tests/js/bench-server.mjs`, socket.io 4 doing the same flow in
//!   memory — what a seed's user runs today (with connection state recovery
//!   for the `drops` scenario's comparison);
//! - **raw**: `confab-bench raw-server`, tokio-tungstenite broadcasting the
//!   same frame bytes to every room member — the machine's limit.
//!
//! Every server listens on a free 127.0.0.1 port, gets a fresh random JWT
//! secret, and is killed when its [`Server`] is stopped or dropped.

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::json;
use tokio::process::{Child, Command};

use crate::{http, token};

/// Which server a [`Server`] runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum Kind {
    /// confab, chat-service on SQLite.
    Confab,
    /// confab, chat-service on PostgreSQL.
    ConfabPg,
    /// confab as separate processes: edges, two chat-service replicas and
    /// the other services, on PostgreSQL and Redis.
    ConfabDist,
    /// Node.js socket.io 4.
    Node,
    /// Node.js socket.io 4 with connection state recovery (`drops`).
    NodeRecovery,
    /// The raw tokio-tungstenite broadcast server.
    Raw,
}

impl Kind {
    /// The name used in tables and charts.
    pub fn label(self) -> &'static str {
        match self {
            Kind::Confab => "confab (SQLite)",
            Kind::ConfabPg => "confab (PostgreSQL)",
            Kind::ConfabDist => "confab (distributed)",
            Kind::Node => "Node socket.io",
            Kind::NodeRecovery => "Node socket.io + recovery",
            Kind::Raw => "raw tokio-tungstenite",
        }
    }

    /// The colour of its line in charts.
    pub fn colour(self) -> &'static str {
        match self {
            Kind::Confab => "#d62728",
            Kind::ConfabPg => "#9467bd",
            Kind::ConfabDist => "#ff7f0e",
            Kind::Node => "#2ca02c",
            Kind::NodeRecovery => "#8c564b",
            Kind::Raw => "#1f77b4",
        }
    }
}

/// Where the servers' programs are.
#[derive(Debug, Clone)]
pub struct Launch {
    /// The `confab` binary.
    pub confab_bin: PathBuf,
    /// `tests/js/bench-server.mjs` (its `node_modules` next to it).
    pub node_script: PathBuf,
    /// The `confab-bench` binary (for `raw-server`).
    pub bench_bin: PathBuf,
    /// A PostgreSQL URL whose server may create and drop databases, for
    /// [`Kind::ConfabPg`] and [`Kind::ConfabDist`].
    pub pg_admin_url: Option<String>,
    /// Redis for [`Kind::ConfabDist`].
    pub redis_url: Option<String>,
    /// How many edges [`Kind::ConfabDist`] runs (at least 1).
    pub edges: usize,
    /// Where servers' logs and data directories go.
    pub work_dir: PathBuf,
}

/// A process's environment.
type Env = Vec<(&'static str, String)>;

/// A running server.
pub struct Server {
    pub kind: Kind,
    /// Where clients connect (the first edge of a distributed confab).
    pub addr: SocketAddr,
    /// Every edge; client `i` connects to `edges[i % len]` ([`Server::edge_for`]).
    pub edges: Vec<SocketAddr>,
    /// confab's gRPC address for internal services (`CONFAB_GRPC_LISTEN`,
    /// or notify-service's in the distributed configuration).
    pub grpc_addr: Option<SocketAddr>,
    pub secret: String,
    /// The server's processes: one, or every process of a distributed
    /// confab (the edges last, in `edges` order).
    children: Vec<Child>,
    dir: PathBuf,
    pg: Option<(String, String)>,
    /// The Redis URL and key prefix a distributed confab used.
    redis: Option<(String, String)>,
    next_room: AtomicU64,
}

static STARTED: AtomicU64 = AtomicU64::new(0);

fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// `k` distinct free ports.
fn free_ports(k: usize) -> anyhow::Result<Vec<u16>> {
    let held = (0..k)
        .map(|_| TcpListener::bind("127.0.0.1:0"))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(held
        .iter()
        .map(|l| l.local_addr().map(|a| a.port()))
        .collect::<Result<_, _>>()?)
}

fn random_secret() -> String {
    use std::collections::hash_map::RandomState;
    use std::hash::{BuildHasher, Hasher};
    (0..4)
        .map(|_| format!("{:016x}", RandomState::new().build_hasher().finish()))
        .collect()
}

/// Runs `psql` against `url` with one statement.
fn psql(url: &str, sql: &str) -> anyhow::Result<()> {
    let out = std::process::Command::new("psql")
        .args([url, "-v", "ON_ERROR_STOP=1", "-q", "-c", sql])
        .output()
        .context("running psql (needed for the PostgreSQL variant)")?;
    if !out.status.success() {
        bail!("psql: {}", String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(())
}

/// `postgres://…/admin_db` with its database replaced by `db`.
fn with_database(url: &str, db: &str) -> String {
    let (base, query) = url.split_once('?').unwrap_or((url, ""));
    let base = match base.rfind('/') {
        Some(i) if i > "postgres://".len() => &base[..i],
        _ => base,
    };
    if query.is_empty() {
        format!("{base}/{db}")
    } else {
        format!("{base}/{db}?{query}")
    }
}

/// Whether PostgreSQL at `url` answers (so the variant can run).
pub fn postgres_available(url: &str) -> bool {
    psql(url, "SELECT 1").is_ok()
}

impl Server {
    /// Starts `kind` and waits until it accepts clients.
    pub async fn start(kind: Kind, launch: &Launch) -> anyhow::Result<Server> {
        let n = STARTED.fetch_add(1, Ordering::Relaxed);
        let dir = launch
            .work_dir
            .join(format!("{}-{n}", format!("{kind:?}").to_lowercase()));
        std::fs::create_dir_all(&dir)?;
        let port = free_port()?;
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        let secret = random_secret();
        if kind == Kind::ConfabDist {
            return Self::start_distributed(launch, dir, secret, n).await;
        }
        let mut pg = None;
        let mut grpc_addr = None;
        let mut cmd = match kind {
            Kind::Confab | Kind::ConfabPg => {
                // The services' gRPC address for internal callers (the
                // publish scenario is one): a free port, so a confab
                // already running here is no bother.
                let grpc: SocketAddr = ([127, 0, 0, 1], free_port()?).into();
                grpc_addr = Some(grpc);
                let mut c = Command::new(&launch.confab_bin);
                c.env("CONFAB_LISTEN", addr.to_string())
                    .env("CONFAB_DATA_DIR", dir.join("data"))
                    .env("CONFAB_JWT_SECRET", &secret)
                    .env("CONFAB_DEFAULT_CONTRACT", "raven")
                    .env("CONFAB_GRPC_LISTEN", grpc.to_string())
                    // One user sends a room's every message, thousands a
                    // second: the per-user message limit (10 a second) is
                    // raised, as Node's baseline has none (the report says so).
                    .env("CONFAB_MESSAGE_RATE_LIMIT", "1000000")
                    // Beats often enough that the budget step sees several.
                    .env(
                        "CONFAB_HEARTBEAT_MS",
                        crate::scenario::budget::HEARTBEAT_MS.to_string(),
                    )
                    .env("RUST_LOG", "warn")
                    .env_remove("DATABASE_URL")
                    .env_remove("REDIS_URL");
                if kind == Kind::ConfabPg {
                    let (admin, db, url) = fresh_database(launch, n)?;
                    c.env("DATABASE_URL", url);
                    pg = Some((admin, db));
                }
                c
            }
            Kind::ConfabDist => unreachable!("started above"),
            Kind::Node | Kind::NodeRecovery => {
                let mut c = Command::new("node");
                c.arg(&launch.node_script)
                    .env("PORT", port.to_string())
                    .env("HOST", "127.0.0.1")
                    .env("JWT_SECRET", &secret)
                    .env(
                        "RECOVERY",
                        if kind == Kind::NodeRecovery { "1" } else { "0" },
                    );
                c
            }
            Kind::Raw => {
                let mut c = Command::new(&launch.bench_bin);
                c.args([
                    "raw-server",
                    "--listen",
                    &addr.to_string(),
                    "--secret",
                    &secret,
                ]);
                c
            }
        };
        let log = std::fs::File::create(dir.join("server.log"))?;
        cmd.stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .kill_on_drop(true);
        let child = cmd
            .spawn()
            .with_context(|| format!("starting {}", kind.label()))?;
        let mut server = Server {
            kind,
            addr,
            edges: vec![addr],
            grpc_addr,
            secret,
            children: vec![child],
            dir,
            pg,
            redis: None,
            next_room: AtomicU64::new(1),
        };
        server.wait_ready().await?;
        Ok(server)
    }

    /// The distributed configuration (see the module doc): services first,
    /// each listening before the next starts (the first migrates the
    /// database), then the edges.
    async fn start_distributed(
        launch: &Launch,
        dir: PathBuf,
        secret: String,
        n: u64,
    ) -> anyhow::Result<Server> {
        let redis_url = launch
            .redis_url
            .clone()
            .context("the distributed variant needs --redis-url")?;
        let (admin, db, db_url) = fresh_database(launch, n)?;
        let prefix = format!("confab-bench:{}:{n}", std::process::id());
        let bin = |name: &str| launch.confab_bin.with_file_name(name);
        let log = std::fs::File::create(dir.join("server.log"))?;
        let mut server = Server {
            kind: Kind::ConfabDist,
            addr: ([127, 0, 0, 1], 0).into(),
            edges: Vec::new(),
            grpc_addr: None,
            secret: secret.clone(),
            children: Vec::new(),
            dir,
            pg: Some((admin, db)),
            redis: Some((redis_url.clone(), prefix.clone())),
            next_room: AtomicU64::new(1),
        };
        // Every port at once (held until all are picked), so no two
        // processes are given the same one.
        let ports = free_ports(5 + launch.edges.max(1))?;
        let addr = |i: usize| -> SocketAddr { ([127, 0, 0, 1], ports[i]).into() };
        let (chat_a, chat_b, presence, call, notify) =
            (addr(0), addr(1), addr(2), addr(3), addr(4));
        let url = |a: SocketAddr| format!("http://{a}");
        let chats = format!("{},{}", url(chat_a), url(chat_b));
        let redis = |var: &'static str, service: &str| {
            [
                ("REDIS_URL", redis_url.clone()),
                (var, format!("{prefix}:{service}")),
            ]
        };
        let mut services: Vec<(&str, SocketAddr, Env)> = Vec::new();
        for chat in [chat_a, chat_b] {
            let mut env = vec![
                ("CHAT_LISTEN", chat.to_string()),
                ("DATABASE_URL", db_url.clone()),
                // As the embedded variant: one user sends a room's every message.
                ("CONFAB_MESSAGE_RATE_LIMIT", "1000000".into()),
            ];
            env.extend(redis("CHAT_REDIS_PREFIX", "chat"));
            services.push(("chat-service", chat, env));
        }
        let mut env = vec![
            ("PRESENCE_LISTEN", presence.to_string()),
            ("PRESENCE_DATABASE_URL", db_url.clone()),
        ];
        env.extend(redis("PRESENCE_REDIS_PREFIX", "presence"));
        services.push(("presence-service", presence, env));
        let mut env = vec![
            ("CALL_LISTEN", call.to_string()),
            ("CALL_DATABASE_URL", db_url.clone()),
            ("CALL_CHAT_URL", chats.clone()),
        ];
        env.extend(redis("CALL_REDIS_PREFIX", "call"));
        services.push(("call-service", call, env));
        let mut env = vec![
            ("NOTIFY_LISTEN", notify.to_string()),
            ("NOTIFY_DATABASE_URL", db_url.clone()),
            ("NOTIFY_CHAT_URL", chats.clone()),
            ("NOTIFY_PRESENCE_URL", url(presence)),
        ];
        env.extend(redis("NOTIFY_REDIS_PREFIX", "notify"));
        services.push(("notify-service", notify, env));
        for (name, listen, env) in services {
            server.spawn_child(&bin(name), &env, &log)?;
            server.wait_listening(listen, name).await?;
        }
        for i in 0..launch.edges.max(1) {
            let edge = addr(5 + i);
            // Each edge lists the chat replicas from a different one.
            let chats = if i % 2 == 0 {
                chats.clone()
            } else {
                format!("{},{}", url(chat_b), url(chat_a))
            };
            let env = [
                ("CONFAB_LISTEN", edge.to_string()),
                ("CONFAB_JWT_SECRET", secret.clone()),
                ("CONFAB_DEFAULT_CONTRACT", "raven".into()),
                (
                    "CONFAB_HEARTBEAT_MS",
                    crate::scenario::budget::HEARTBEAT_MS.to_string(),
                ),
                ("CONFAB_CHAT_URL", chats),
                ("CONFAB_PRESENCE_URL", url(presence)),
                ("CONFAB_CALL_URL", url(call)),
                ("CONFAB_NOTIFY_URL", url(notify)),
            ];
            server.spawn_child(&bin("confab-edge"), &env, &log)?;
            server.edges.push(edge);
        }
        server.addr = server.edges[0];
        server.grpc_addr = Some(notify);
        server.wait_ready().await?;
        Ok(server)
    }

    fn spawn_child(
        &mut self,
        bin: &Path,
        env: &[(&'static str, String)],
        log: &std::fs::File,
    ) -> anyhow::Result<()> {
        anyhow::ensure!(
            bin.exists(),
            "{} does not exist: build the workspace's binaries (`cargo build --release --workspace --bins`)",
            bin.display()
        );
        let mut c = Command::new(bin);
        c.env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("RUST_LOG", "warn")
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log.try_clone()?)
            .kill_on_drop(true);
        self.children.push(
            c.spawn()
                .with_context(|| format!("starting {}", bin.display()))?,
        );
        Ok(())
    }

    async fn wait_listening(&mut self, addr: SocketAddr, name: &str) -> anyhow::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(60);
        while tokio::net::TcpStream::connect(addr).await.is_err() {
            for c in &mut self.children {
                if let Some(status) = c.try_wait()? {
                    bail!(
                        "a process exited with {status} while starting {name}; log: {}",
                        self.log_tail()
                    );
                }
            }
            if Instant::now() > deadline {
                bail!("{name} not listening within 60 s; log: {}", self.log_tail());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(())
    }

    /// The edge client `i` connects to: the edges take turns.
    pub fn edge_for(&self, i: usize) -> SocketAddr {
        self.edges[i % self.edges.len()]
    }

    async fn wait_ready(&mut self) -> anyhow::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(60);
        let probe = match self.kind {
            Kind::Confab | Kind::ConfabPg | Kind::ConfabDist => Some("/readyz"),
            Kind::Node | Kind::NodeRecovery => Some("/healthz"),
            Kind::Raw => None,
        };
        loop {
            for child in &mut self.children {
                if let Some(status) = child.try_wait()? {
                    bail!(
                        "{} exited with {status} before it was ready; log: {}",
                        self.kind.label(),
                        self.log_tail()
                    );
                }
            }
            let mut ready = true;
            for &addr in &self.edges {
                ready &= match probe {
                    Some(path) => http::request(addr, "GET", path, None, None)
                        .await
                        .is_ok_and(|r| r.status == 200),
                    None => tokio::net::TcpStream::connect(addr).await.is_ok(),
                };
            }
            if ready {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("{} not ready within 60 s", self.kind.label());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The end of the server's log, for error messages.
    pub fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default();
        let start = log.len().saturating_sub(2000);
        log[log.ceil_char_boundary(start)..].to_string()
    }

    /// The server's resident memory in bytes (every process of a
    /// distributed confab, summed).
    pub fn rss_bytes(&self) -> anyhow::Result<u64> {
        let mut total = 0;
        for child in &self.children {
            total += rss_of(child.id().context("server has exited")?)?;
        }
        Ok(total)
    }

    /// CPU time (user + system) each edge process has used so far, in
    /// clock ticks (`/proc/<pid>/stat`).
    pub fn edge_cpu_ticks(&self) -> anyhow::Result<Vec<u64>> {
        self.children[self.children.len() - self.edges.len()..]
            .iter()
            .map(|c| cpu_ticks_of(c.id().context("an edge has exited")?))
            .collect()
    }

    /// CPU time (user + system) of every process, in clock ticks.
    pub fn cpu_ticks(&self) -> anyhow::Result<u64> {
        let mut total = 0;
        for child in &self.children {
            total += cpu_ticks_of(child.id().context("a process has exited")?)?;
        }
        Ok(total)
    }

    /// A token for `user` that this server accepts.
    pub fn token(&self, user: &str) -> String {
        token::mint(&self.secret, user)
    }

    /// Creates a conversation owned by `members[0]` with all of `members`
    /// and returns its id. confab and Node get `POST /api/conversations`;
    /// the raw server has no membership, so any room name works there.
    pub async fn create_conversation(&self, members: &[String]) -> anyhow::Result<String> {
        if self.kind == Kind::Raw {
            return Ok(format!(
                "room{}",
                self.next_room.fetch_add(1, Ordering::Relaxed)
            ));
        }
        let (owner, others) = members.split_first().context("no members")?;
        let body = json!({ "members": others, "name": "bench" }).to_string();
        let token = self.token(owner);
        let r = http::request(
            self.addr,
            "POST",
            "/api/conversations",
            Some(&token),
            Some(&body),
        )
        .await?;
        if r.status != 201 && r.status != 200 {
            bail!("creating a conversation: HTTP {} {}", r.status, r.body);
        }
        let v = http::json_body(&r.body)?;
        match &v["id"] {
            serde_json::Value::String(s) => Ok(s.clone()),
            serde_json::Value::Number(n) => Ok(n.to_string()),
            _ => bail!("no id in {}", r.body),
        }
    }

    /// Kills the server and removes its data (its PostgreSQL database, its
    /// Redis keys).
    pub async fn stop(mut self) {
        for child in &mut self.children {
            let _ = child.kill().await;
        }
        if let Some((url, prefix)) = self.redis.take() {
            forget_redis_keys(&url, &prefix);
        }
        if let Some((admin, db)) = self.pg.take()
            && let Err(e) = psql(
                &admin,
                &format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"),
            )
        {
            eprintln!("dropping {db}: {e}");
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A fresh PostgreSQL database for run `n`: (admin URL, name, its URL).
fn fresh_database(launch: &Launch, n: u64) -> anyhow::Result<(String, String, String)> {
    let admin = launch
        .pg_admin_url
        .as_deref()
        .context("the PostgreSQL variants need --pg-url")?;
    let db = format!("confab_bench_{}_{n}", std::process::id());
    psql(admin, &format!("CREATE DATABASE {db}"))?;
    Ok((admin.to_string(), db.clone(), with_database(admin, &db)))
}

/// Deletes the keys under `prefix` (best effort, with `redis-cli`).
fn forget_redis_keys(url: &str, prefix: &str) {
    let keys = std::process::Command::new("redis-cli")
        .args(["-u", url, "--scan", "--pattern", &format!("{prefix}*")])
        .output();
    let Ok(keys) = keys else {
        eprintln!("redis-cli is not installed: the run's keys under {prefix} stay in Redis");
        return;
    };
    for key in String::from_utf8_lossy(&keys.stdout).lines() {
        let _ = std::process::Command::new("redis-cli")
            .args(["-u", url, "DEL", key])
            .output();
    }
}

/// CPU time (user + system) process `pid` used, in clock ticks.
pub fn cpu_ticks_of(pid: u32) -> anyhow::Result<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the command name (which may hold spaces) in parentheses.
    let after = &stat[stat.rfind(')').context("no command in stat")? + 2..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    let utime: u64 = fields.get(11).context("no utime")?.parse()?;
    let stime: u64 = fields.get(12).context("no stime")?.parse()?;
    Ok(utime + stime)
}

/// Resident memory of process `pid` in bytes (`VmRSS`).
pub fn rss_of(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .context("no VmRSS")?;
    Ok(kb * 1024)
}

/// `tests/js/bench-server.mjs` relative to this crate.
pub fn default_node_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../js/bench-server.mjs")
}
