//! The scaled-out shape in one test process: two chat-service replicas on
//! one PostgreSQL database, each behind its own edge, sharing the message
//! rate limit through Redis.
//!
//! ```text
//!  client ──▶ edge A ──▶ chat-service A ─┐
//!                                        ├── one PostgreSQL database
//!  client ──▶ edge B ──▶ chat-service B ─┘   one Redis (rate windows)
//!            (both edges share one presence-, call- and notify-service)
//! ```
//!
//! What each replica stores is everyone's (one database), and the message
//! rate limit counts a user's sends on both (one Redis). Each replica
//! publishes the events of the requests it served to the edges that follow
//! it — there is no event bus between chat-service replicas — so a client
//! hears a message only through the edge in front of the replica that
//! stored it; suites listen on both edges to see everything.
//!
//! [`spawn_replicas`] boots it; [`Replicas::run_js`] runs a JavaScript
//! suite against it. The suite's `CONFAB_URL` is edge A; it learns every
//! edge's URL from the control server (`GET {CONFAB_CONTROL_URL}/edges`,
//! a JSON array, edge A first).

use axum::Router;
use axum::routing::get;
use confab_edge::EdgeHandle;
use confab_edge::config::{EdgeConfig, ServiceUrls};
use confab_proto::server::ServiceHandle;
use tokio::net::TcpListener;

use crate::app::{CALL_TIMERS, TYPING_TTL_MS, wait_ready};

/// Where the chat-service replicas count each user's messages.
pub enum RateWindows<'a> {
    /// In Redis at this URL, shared by the replicas (the deployed shape).
    Redis(&'a str),
    /// In each replica's own process: the limit per replica, which lets a
    /// user send up to twice the limit through two edges. Only to see a
    /// cross-edge test fail.
    PerReplica,
}

/// Two edges, each in front of its own chat-service replica.
pub struct Replicas {
    /// Edge A, then edge B.
    pub edges: Vec<EdgeHandle>,
    pub jwt_secret: String,
    chats: Vec<ServiceHandle>,
    others: Vec<ServiceHandle>,
    control_url: String,
    db_url: String,
    _dir: tempfile::TempDir,
}

/// Boots two chat-service replicas on the PostgreSQL database `db_url`
/// (migrated by the first), counting messages in `rate`; one
/// presence-service, call-service and notify-service (their own SQLite
/// files); and one edge in front of each replica.
pub async fn spawn_replicas(db_url: String, rate: RateWindows<'_>) -> Replicas {
    let dir = tempfile::tempdir().expect("temp dir");
    let loopback = || async { TcpListener::bind("127.0.0.1:0").await.expect("bind") };
    let mut chats = Vec::new();
    // The replicas' Redis keys (rate windows, event log), apart from any
    // other test's.
    let redis_prefix = crate::redis_prefix();
    for _ in 0..2 {
        let redis_url = match rate {
            RateWindows::Redis(url) => Some(url.to_string()),
            RateWindows::PerReplica => None,
        };
        let chat = confab_chat::build(confab_chat::Config {
            database_url: db_url.clone(),
            redis_url,
            redis_prefix: redis_prefix.clone(),
            ..Default::default()
        })
        .await
        .unwrap_or_else(|e| panic!("cannot connect to or migrate {db_url}, or its Redis: {e:#}"));
        chats.push(
            chat.serve(loopback().await)
                .await
                .expect("chat-service replica"),
        );
    }
    let sqlite = |name: &str| format!("sqlite://{}?mode=rwc", dir.path().join(name).display());
    let presence = confab_presence::serve(
        loopback().await,
        confab_presence::Config {
            database_url: sqlite("presence.db"),
            typing_ttl_ms: TYPING_TTL_MS,
            ..Default::default()
        },
    )
    .await
    .expect("presence-service");
    // call-service asks a chat-service whether two users share a
    // conversation; either replica answers from the one database.
    let call = confab_call::serve(
        loopback().await,
        confab_call::Config {
            database_url: sqlite("call.db"),
            timers: CALL_TIMERS,
            ..Default::default()
        },
        confab_call::chat_at(&chats[0].url()).expect("chat client"),
    )
    .await
    .expect("call-service");
    // Message notifications follow one chat-service's events, which here
    // would be half of them: off (no chat URL), as nothing here needs them.
    let notify = confab_notify::serve(
        loopback().await,
        confab_notify::Config {
            database_url: sqlite("notify.db"),
            chat_url: None,
            presence_url: None,
            ..Default::default()
        },
    )
    .await
    .expect("notify-service");

    let jwt_secret = format!("test-secret-{}", rand::random::<u64>());
    let mut edges = Vec::new();
    for chat in &chats {
        let args = crate::app::edge_args("raven", &jwt_secret);
        let urls = ServiceUrls {
            chat_url: chat.url(),
            presence_url: presence.url(),
            call_url: call.url(),
            notify_url: notify.url(),
        };
        let cfg = EdgeConfig::from_args(&args, urls, None).expect("edge config");
        edges.push(
            confab_edge::start(cfg, loopback().await)
                .await
                .expect("edge"),
        );
    }
    let urls: Vec<String> = edges.iter().map(EdgeHandle::url).collect();
    let control_url = crate::app::serve_control(
        Router::new().route("/edges", get(move || async move { axum::Json(urls) })),
    )
    .await;
    let replicas = Replicas {
        edges,
        jwt_secret,
        chats,
        others: vec![presence, call, notify],
        control_url,
        db_url,
        _dir: dir,
    };
    for edge in &replicas.edges {
        wait_ready(&edge.url()).await;
    }
    replicas
}

impl Replicas {
    /// Runs `tests/js/<suite>` against edge A (and, through the control
    /// server, edge B); see [`crate::js::run_suite`].
    pub async fn run_js(&self, suite: &str) {
        let url = self.edges[0].url();
        let target = crate::js::Target {
            url: &url,
            env: &[],
            jwt_secret: &self.jwt_secret,
            control_url: Some(&self.control_url),
            typing_ttl_ms: TYPING_TTL_MS,
        };
        crate::js::run_suite(suite, target, None).await;
    }

    /// Stops everything and drops the test database.
    pub async fn shutdown(self) {
        for edge in self.edges {
            edge.shutdown().await;
        }
        for h in self.chats.into_iter().chain(self.others) {
            h.shutdown().await;
        }
        crate::db::drop_postgres(&self.db_url).await;
    }
}
