//! [`spawn_app`] boots the whole system on random loopback ports and returns
//! a [`TestApp`]: the edge's URL, the JWT secret, and control over
//! chat-service (stop it, start it again on the same port) for tests of what
//! clients see when a service goes away and comes back.
//!
//! [`TestApp::run_js`] runs one of the `tests/js/*.test.mjs` suites with the
//! official `socket.io-client` against the running system. The suite reaches
//! chat-service's controls through a small HTTP server
//! (`POST {CONFAB_CONTROL_URL}/chat/stop` and `/chat/start`).
//!
//! [`TestApp::second_edge`] starts another edge on the same services (as a
//! load balancer would spread clients over two), [`TestApp::edge_without_presence`]
//! one whose presence-service cannot be reached, [`TestApp::edge_with`] one
//! with other settings; [`run_suite_on_two_edges`]
//! runs a suite with their URLs as `CONFAB_URL2` and
//! `CONFAB_URL_NO_PRESENCE`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::routing::post;
use confab_edge::EdgeHandle;
use confab_edge::config::{EdgeArgs, EdgeConfig, ServiceUrls};
use confab_edge::fanout::StreamStatus;
use confab_proto::server::ServiceHandle;
use tokio::net::TcpListener;
use tokio::sync::Mutex;

/// How long a typing indicator lives in test apps (suites read it as
/// `CONFAB_TYPING_TTL_MS`).
pub const TYPING_TTL_MS: u64 = 1000;

/// How often v3 sockets get `ping` / `heartbeat` in test apps (suites read
/// it as `CONFAB_HEARTBEAT_MS`): a socket that stops answering is dropped
/// after three, about a second.
pub const HEARTBEAT_MS: u64 = 300;

/// call-service's timers in test apps, short enough that suites see a
/// call missed, cut at its maximum duration and ended after a disconnect
/// (suites read them as `CONFAB_CALL_RING_TIMEOUT_MS`,
/// `CONFAB_CALL_MAX_DURATION_MS`, `CONFAB_CALL_DISCONNECT_GRACE_MS`).
pub const CALL_TIMERS: confab_call::CallTimers = confab_call::CallTimers {
    ring_timeout_ms: 2500,
    max_duration_ms: 6000,
    disconnect_grace_ms: 1500,
};

/// The running system.
pub struct TestApp {
    /// The edge, e.g. `http://127.0.0.1:41234`.
    pub url: String,
    pub jwt_secret: String,
    pub edge: EdgeHandle,
    /// Edges started later on the same services ([`TestApp::second_edge`]),
    /// shut down with the app.
    more_edges: Mutex<Vec<EdgeHandle>>,
    /// What the first edge was started with, for more edges.
    edge_args: EdgeArgs,
    service_urls: ServiceUrls,
    chat: Arc<ChatSlot>,
    others: Vec<ServiceHandle>,
    control_url: String,
    _dir: tempfile::TempDir,
}

/// chat-service, which tests may stop and start again on the same address.
struct ChatSlot {
    addr: SocketAddr,
    db_url: String,
    running: Mutex<Option<ServiceHandle>>,
}

impl ChatSlot {
    async fn stop(&self) {
        if let Some(h) = self.running.lock().await.take() {
            h.shutdown().await;
        }
    }

    async fn start(&self) {
        let mut running = self.running.lock().await;
        if running.is_some() {
            return;
        }
        let chat = confab_chat::build(confab_chat::Config {
            database_url: self.db_url.clone(),
            ..Default::default()
        })
        .await
        .expect("reconnect chat database");
        // The old listener is closed; the port may take a moment to be free.
        let mut tries = 0;
        let listener = loop {
            match TcpListener::bind(self.addr).await {
                Ok(l) => break l,
                Err(e) if tries < 50 => {
                    tries += 1;
                    let _ = e;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => panic!("rebinding chat-service on {}: {e}", self.addr),
            }
        };
        *running = Some(chat.serve(listener).await.expect("restart chat-service"));
    }
}

/// Which database chat-service uses in a test.
pub enum Db {
    Sqlite,
    /// A fresh database on the `DATABASE_URL` server.
    Postgres,
}

/// Boots the system with `default_contract` on `db`, runs the JavaScript
/// `suite` against it and shuts it down. The PostgreSQL run is reported as
/// skipped ([`crate::skip`]) when `DATABASE_URL` is unset, and fails
/// instead under `CI=true`.
pub async fn run_suite(db: Db, default_contract: &str, suite: &str) {
    if matches!(db, Db::Postgres) && !crate::db::postgres_url_configured() {
        return;
    }
    let app = spawn_app_with(db, default_contract).await;
    app.run_js(suite).await;
    app.shutdown().await;
}

/// As [`run_suite`], with a second edge on the same services: the suite
/// reads the first edge's URL as `CONFAB_URL`, the second's as
/// `CONFAB_URL2`, and a third edge's, which cannot reach presence-service,
/// as `CONFAB_URL_NO_PRESENCE`.
pub async fn run_suite_on_two_edges(db: Db, default_contract: &str, suite: &str) {
    if matches!(db, Db::Postgres) && !crate::db::postgres_url_configured() {
        return;
    }
    let app = spawn_app_with(db, default_contract).await;
    wait_for_presence(&app.edge.streams).await;
    let env = [
        ("CONFAB_URL2", app.second_edge().await),
        ("CONFAB_URL_NO_PRESENCE", app.edge_without_presence().await),
    ];
    let target = crate::js::Target {
        env: &env,
        ..app.js_target()
    };
    crate::js::run_suite(suite, target, None).await;
    app.shutdown().await;
}

/// Boots the system over SQLite.
pub async fn spawn_app() -> TestApp {
    spawn_app_with(Db::Sqlite, "raven").await
}

/// Boots the system with the given database and default contract.
pub async fn spawn_app_with(db: Db, default_contract: &str) -> TestApp {
    let dir = tempfile::tempdir().expect("temp dir");
    let postgres = matches!(db, Db::Postgres);
    let db_url = match db {
        Db::Sqlite => format!("sqlite://{}?mode=rwc", dir.path().join("chat.db").display()),
        Db::Postgres => crate::db::postgres_url()
            .await
            .expect("DATABASE_URL is required for a PostgreSQL app"),
    };
    let chat_listener = TcpListener::bind("127.0.0.1:0").await.expect("bind chat");
    let chat = Arc::new(ChatSlot {
        addr: chat_listener.local_addr().unwrap(),
        db_url: db_url.clone(),
        running: Mutex::new(None),
    });
    {
        let config = confab_chat::Config {
            database_url: db_url.clone(),
            ..Default::default()
        };
        *chat.running.lock().await = Some(
            confab_chat::serve(chat_listener, config)
                .await
                .expect("chat-service"),
        );
    }
    let loopback = || async { TcpListener::bind("127.0.0.1:0").await.expect("bind") };
    let presence_config = confab_presence::Config {
        database_url: format!(
            "sqlite://{}?mode=rwc",
            dir.path().join("presence.db").display()
        ),
        // Short enough that tests see a typing indicator expire by itself.
        typing_ttl_ms: TYPING_TTL_MS,
        ..Default::default()
    };
    let presence = confab_presence::serve(loopback().await, presence_config)
        .await
        .expect("presence-service");
    let call_db_url = match db {
        Db::Sqlite => format!("sqlite://{}?mode=rwc", dir.path().join("call.db").display()),
        // call-service keeps its own tables (and migration history) in the
        // test's PostgreSQL database.
        Db::Postgres => db_url.clone(),
    };
    let call = confab_call::serve(
        loopback().await,
        confab_call::Config {
            database_url: call_db_url,
            timers: CALL_TIMERS,
            ..Default::default()
        },
        confab_call::chat_at(&format!("http://{}", chat.addr)).expect("chat client"),
    )
    .await
    .expect("call-service");
    // notify-service shares chat's PostgreSQL database (its own tables and
    // migration history) or has its own SQLite file, and follows chat and
    // presence for message notifications.
    let notify_config = confab_notify::Config {
        database_url: if postgres {
            db_url.clone()
        } else {
            format!(
                "sqlite://{}?mode=rwc",
                dir.path().join("notify.db").display()
            )
        },
        chat_url: Some(format!("http://{}", chat.addr)),
        presence_url: Some(presence.url()),
        ..Default::default()
    };
    let notify = confab_notify::serve(loopback().await, notify_config)
        .await
        .expect("notify-service");

    let jwt_secret = format!("test-secret-{}", rand::random::<u64>());
    let args = edge_args(default_contract, &jwt_secret);
    let urls = ServiceUrls {
        chat_url: format!("http://{}", chat.addr),
        presence_url: presence.url(),
        call_url: call.url(),
        notify_url: notify.url(),
    };
    let mut cfg = EdgeConfig::from_args(&args, urls.clone(), None).expect("edge config");
    cfg.recovery.redis_url = shared_sessions();
    let edge = confab_edge::start(cfg, loopback().await)
        .await
        .expect("edge");
    let control_url = spawn_control(chat.clone(), edge.streams.clone(), &notify.url()).await;
    let app = TestApp {
        url: edge.url(),
        jwt_secret,
        edge,
        more_edges: Mutex::new(Vec::new()),
        edge_args: args,
        service_urls: urls,
        chat,
        others: vec![presence, call, notify],
        control_url,
        _dir: dir,
    };
    app.wait_ready().await;
    app
}

/// A test edge's settings: `default_contract` on `/`, tokens signed with
/// `jwt_secret`, the test timers.
pub(crate) fn edge_args(default_contract: &str, jwt_secret: &str) -> EdgeArgs {
    EdgeArgs {
        listen: "127.0.0.1:0".into(),
        default_contract: default_contract.into(),
        jwt_secret: Some(jwt_secret.to_string()),
        jwt_public_key_file: None,
        jwt_algorithm: "RS256".into(),
        jwt_audience: Vec::new(),
        jwt_issuer: Vec::new(),
        request_timeout_ms: 3000,
        presence_heartbeat_ms: 200,
        heartbeat_ms: HEARTBEAT_MS,
        max_packet_bytes: confab_edge::config::DEFAULT_MAX_PACKET_BYTES,
        offline_queue: confab_edge::config::DEFAULT_OFFLINE_QUEUE,
        presence_grace_ms: confab_edge::config::DEFAULT_PRESENCE_GRACE_MS,
        recovery_window_ms: confab_edge::config::DEFAULT_RECOVERY_WINDOW_MS,
        recovery_max_events: confab_edge::config::DEFAULT_RECOVERY_MAX_EVENTS,
        recovery_redis_prefix: "confab:recovery".into(),
    }
}

/// Where test edges keep recoverable sessions: Redis when `REDIS_URL` is
/// set (so that a session resumes on any edge of the app), else each edge
/// in its memory.
pub fn shared_sessions() -> Option<String> {
    std::env::var("REDIS_URL")
        .ok()
        .filter(|url| !url.trim().is_empty())
}

/// Waits (up to 10 s) until the edge at `url` says, on `/readyz`, that its
/// service streams are open.
pub(crate) async fn wait_ready(url: &str) {
    let client = reqwest::Client::new();
    for _ in 0..200 {
        if let Ok(r) = client.get(format!("{url}/readyz")).send().await
            && r.status().is_success()
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the edge at {url} did not become ready within 10 s");
}

/// Waits (up to 10 s) until an edge follows presence-service's events.
async fn wait_for_presence(streams: &StreamStatus) {
    for _ in 0..200 {
        if streams.is_up("presence") {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the edge did not follow presence-service within 10 s");
}

async fn spawn_control(chat: Arc<ChatSlot>, streams: StreamStatus, notify_url: &str) -> String {
    type Ctl = (Arc<ChatSlot>, StreamStatus);
    async fn stop(State((chat, _)): State<Ctl>) -> &'static str {
        chat.stop().await;
        "stopped"
    }
    /// Starts chat-service and returns once the edge follows it again.
    async fn start(State((chat, streams)): State<Ctl>) -> &'static str {
        let before = streams.opened("chat");
        chat.start().await;
        for _ in 0..200 {
            if streams.opened("chat") > before && streams.is_up("chat") {
                return "started";
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        "started, but the edge has not reconnected within 10 s"
    }
    let app = Router::new()
        .route("/chat/stop", post(stop))
        .route("/chat/start", post(start))
        .with_state((chat, streams))
        .merge(crate::internal::routes(notify_url));
    serve_control(app).await
}

/// Serves a control server's routes (`POST /chat/stop`, `/chat/start`) on
/// a free loopback port, for the rest of the test; returns its URL, which
/// suites read as `CONFAB_CONTROL_URL`.
pub async fn serve_control(routes: Router) -> String {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind control");
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let _ = axum::serve(listener, routes).await;
    });
    url
}

impl TestApp {
    /// A token for `sub` signed with this app's secret.
    pub fn token(&self, sub: &str, name: &str) -> String {
        confab_edge::auth::mint_hs256(self.jwt_secret.as_bytes(), sub, Some(name), 3600)
    }

    /// Waits (up to 10 s) until `/readyz` says the chat stream is open.
    pub async fn wait_ready(&self) {
        wait_ready(&self.url).await;
    }

    /// Starts another edge (its own edge id, port and service streams) on
    /// the same services, with the same settings and JWT secret; returns its
    /// URL once it is ready. It is shut down with the app.
    pub async fn second_edge(&self) -> String {
        let (url, streams) = self.another_edge(self.service_urls.clone()).await;
        wait_for_presence(&streams).await;
        url
    }

    /// Starts another edge on the same services except presence-service,
    /// which it cannot reach (a closed port): its sockets connect and join
    /// rooms without presence. Returns its URL once it follows chat-service.
    pub async fn edge_without_presence(&self) -> String {
        let closed = {
            let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
            l.local_addr().unwrap()
        };
        let urls = ServiceUrls {
            presence_url: format!("http://{closed}"),
            ..self.service_urls.clone()
        };
        self.another_edge(urls).await.0
    }

    /// Starts another edge on the same services with the first edge's
    /// settings as `change` leaves them (e.g. an expected token audience);
    /// returns its URL once it is ready. It is shut down with the app.
    pub async fn edge_with(&self, change: impl FnOnce(&mut EdgeArgs)) -> String {
        let mut args = self.edge_args.clone();
        change(&mut args);
        let (url, streams) = self.edge_from(&args, self.service_urls.clone()).await;
        wait_for_presence(&streams).await;
        url
    }

    async fn another_edge(&self, urls: ServiceUrls) -> (String, StreamStatus) {
        self.edge_from(&self.edge_args, urls).await
    }

    async fn edge_from(&self, args: &EdgeArgs, urls: ServiceUrls) -> (String, StreamStatus) {
        let mut cfg = EdgeConfig::from_args(args, urls, None).expect("edge config");
        cfg.recovery.redis_url = shared_sessions();
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let edge = confab_edge::start(cfg, listener)
            .await
            .expect("another edge");
        let url = edge.url();
        let streams = edge.streams.clone();
        self.more_edges.lock().await.push(edge);
        wait_ready(&url).await;
        (url, streams)
    }

    /// Every service's gRPC URL with its health-check name.
    pub fn service_urls(&self) -> Vec<(String, &'static str)> {
        let names = [
            confab_presence::SERVICE_NAME,
            confab_call::SERVICE_NAME,
            confab_notify::SERVICE_NAME,
        ];
        let mut out = vec![(
            format!("http://{}", self.chat.addr),
            confab_chat::SERVICE_NAME,
        )];
        out.extend(self.others.iter().map(|h| h.url()).zip(names));
        out
    }

    pub async fn stop_chat(&self) {
        self.chat.stop().await;
    }

    pub async fn start_chat(&self) {
        self.chat.start().await;
    }

    /// Runs `tests/js/<suite>` with node's test runner, one result line per
    /// test ([`crate::js`]), and fails the calling test if any of its tests
    /// fail twice or the run is incomplete. The suite reads `CONFAB_URL`,
    /// `CONFAB_JWT_SECRET` and `CONFAB_CONTROL_URL`.
    pub async fn run_js(&self, suite: &str) {
        crate::js::run_suite(suite, self.js_target(), None).await;
    }

    /// This app as the target of a JavaScript suite.
    pub fn js_target(&self) -> crate::js::Target<'_> {
        crate::js::Target {
            url: &self.url,
            env: &[],
            jwt_secret: &self.jwt_secret,
            control_url: Some(&self.control_url),
            typing_ttl_ms: TYPING_TTL_MS,
        }
    }

    pub async fn shutdown(self) {
        for edge in self.more_edges.into_inner() {
            edge.shutdown().await;
        }
        self.edge.shutdown().await;
        self.chat.stop().await;
        for h in self.others {
            h.shutdown().await;
        }
    }
}
