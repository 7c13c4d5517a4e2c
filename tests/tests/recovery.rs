//! Connection state recovery with the official socket.io-client
//! (tests/js/recovery.test.mjs): in every contract a dropped connection
//! resumes (`recovered`, its rooms, what it missed once and in order), a
//! session that cannot be resumed starts afresh, another user's session id
//! gives nothing, and — with Redis (`REDIS_URL`) keeping the sessions — a
//! session begun on one edge resumes on another. Over SQLite and, when
//! `DATABASE_URL` is set, over PostgreSQL.

use confab_tests::app::{Db, shared_sessions, spawn_app_with};
use confab_tests::skip::required_env;

async fn recovery(db: Db) {
    if matches!(db, Db::Postgres) && !confab_tests::db::postgres_url_configured() {
        return;
    }
    let app = spawn_app_with(db, "raven").await;
    // An edge whose sessions last 300 ms (a client away longer starts
    // afresh) and whose dropped sockets stay present 500 ms.
    let short = app
        .edge_with(|a| {
            a.recovery_window_ms = SHORT_WINDOW_MS;
            a.presence_grace_ms = SHORT_GRACE_MS;
        })
        .await;
    let mut env = vec![("CONFAB_URL_SHORT_WINDOW", short)];
    let only = if shared_sessions().is_some() {
        env.push(("CONFAB_URL2", app.second_edge().await));
        None
    } else {
        // Without Redis each edge keeps its own sessions: everything but
        // the resume on another edge, which is reported as skipped.
        let _ = required_env("REDIS_URL", "resuming a session on another edge");
        Some("resumes: recovered|starts afresh|gives nothing|a new socket|past the window|presence")
    };
    let target = confab_tests::js::Target {
        env: &env,
        ..app.js_target()
    };
    confab_tests::js::run_suite("recovery.test.mjs", target, only).await;
    app.shutdown().await;
}

/// The recovery window of the suite's short-window edge.
const SHORT_WINDOW_MS: u64 = 300;
/// Its presence grace.
const SHORT_GRACE_MS: u64 = 500;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_connections_recover_over_sqlite() {
    recovery(Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_connections_recover_over_postgres() {
    recovery(Db::Postgres).await;
}
