//! The three servers under test, each a child process of the benchmark so
//! its resident memory can be read from `/proc/<pid>/status`:
//!
//! - **confab**: the embedded `confab` binary (edge + all four services), the
//!   `raven` contract, SQLite in a fresh temporary data directory or a fresh
//!   PostgreSQL database created for the run and dropped after it;
//! - **node**: `tests/js/bench-server.mjs`, socket.io 4 doing the same flow in
//!   memory — what a seed's user runs today;
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
    /// Node.js socket.io 4.
    Node,
    /// The raw tokio-tungstenite broadcast server.
    Raw,
}

impl Kind {
    /// The name used in tables and charts.
    pub fn label(self) -> &'static str {
        match self {
            Kind::Confab => "confab (SQLite)",
            Kind::ConfabPg => "confab (PostgreSQL)",
            Kind::Node => "Node socket.io",
            Kind::Raw => "raw tokio-tungstenite",
        }
    }

    /// The colour of its line in charts.
    pub fn colour(self) -> &'static str {
        match self {
            Kind::Confab => "#d62728",
            Kind::ConfabPg => "#9467bd",
            Kind::Node => "#2ca02c",
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
    /// [`Kind::ConfabPg`].
    pub pg_admin_url: Option<String>,
    /// Where servers' logs and data directories go.
    pub work_dir: PathBuf,
}

/// A running server.
pub struct Server {
    pub kind: Kind,
    pub addr: SocketAddr,
    /// confab's gRPC address for internal services (`CONFAB_GRPC_LISTEN`).
    pub grpc_addr: Option<SocketAddr>,
    pub secret: String,
    child: Child,
    dir: PathBuf,
    pg: Option<(String, String)>,
    next_room: AtomicU64,
}

static STARTED: AtomicU64 = AtomicU64::new(0);

fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
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
                    let admin = launch
                        .pg_admin_url
                        .as_deref()
                        .context("the PostgreSQL variant needs --pg-url")?;
                    let db = format!("confab_bench_{}_{n}", std::process::id());
                    psql(admin, &format!("CREATE DATABASE {db}"))?;
                    c.env("DATABASE_URL", with_database(admin, &db));
                    pg = Some((admin.to_string(), db));
                }
                c
            }
            Kind::Node => {
                let mut c = Command::new("node");
                c.arg(&launch.node_script)
                    .env("PORT", port.to_string())
                    .env("HOST", "127.0.0.1")
                    .env("JWT_SECRET", &secret);
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
            grpc_addr,
            secret,
            child,
            dir,
            pg,
            next_room: AtomicU64::new(1),
        };
        server.wait_ready().await?;
        Ok(server)
    }

    async fn wait_ready(&mut self) -> anyhow::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(60);
        let probe = match self.kind {
            Kind::Confab | Kind::ConfabPg => Some("/readyz"),
            Kind::Node => Some("/healthz"),
            Kind::Raw => None,
        };
        loop {
            if let Some(status) = self.child.try_wait()? {
                bail!(
                    "{} exited with {status} before it was ready; log: {}",
                    self.kind.label(),
                    self.log_tail()
                );
            }
            let ready = match probe {
                Some(path) => http::request(self.addr, "GET", path, None, None)
                    .await
                    .is_ok_and(|r| r.status == 200),
                None => tokio::net::TcpStream::connect(self.addr).await.is_ok(),
            };
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

    /// The server process's resident memory in bytes.
    pub fn rss_bytes(&self) -> anyhow::Result<u64> {
        let pid = self.child.id().context("server has exited")?;
        rss_of(pid)
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

    /// Kills the server and removes its data (and its PostgreSQL database).
    pub async fn stop(mut self) {
        let _ = self.child.kill().await;
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
