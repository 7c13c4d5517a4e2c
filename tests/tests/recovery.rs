//! Connection state recovery with the official socket.io-client
//! (tests/js/recovery.test.mjs): in every contract a dropped connection
//! resumes (`recovered`, its rooms, what it missed once and in order), a
//! session that cannot be resumed starts afresh, another user's session id
//! gives nothing, and — with Redis (`REDIS_URL`) keeping the sessions — a
//! session begun on one edge resumes on another. Over SQLite and, when
//! `DATABASE_URL` is set, over PostgreSQL.

use confab_tests::app::{Db, run_suite_on_two_edges, shared_sessions, spawn_app_with};
use confab_tests::skip::required_env;

async fn recovery(db: Db) {
    if matches!(db, Db::Postgres) && !confab_tests::db::postgres_url_configured() {
        return;
    }
    if shared_sessions().is_some() {
        return run_suite_on_two_edges(db, "raven", "recovery.test.mjs").await;
    }
    // Without Redis each edge keeps its own sessions: everything but the
    // resume on another edge, which is reported as skipped.
    let _ = required_env("REDIS_URL", "resuming a session on another edge");
    let app = spawn_app_with(db, "raven").await;
    confab_tests::js::run_suite(
        "recovery.test.mjs",
        app.js_target(),
        Some("resumes: recovered|starts afresh|gives nothing|a new socket"),
    )
    .await;
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_connections_recover_over_sqlite() {
    recovery(Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_connections_recover_over_postgres() {
    recovery(Db::Postgres).await;
}
