//! Scaled out: two chat-service replicas on one PostgreSQL database, each
//! behind its own edge, with the message rate limit in Redis
//! (`confab_tests::replicas`), driven by the official socket.io-client
//! (tests/js/replicas.test.mjs): one user's tabs on both edges, in two
//! contracts, still get 10 messages a second in all; and, since both
//! replicas append to one event log in Redis, a listener on either edge
//! hears every message, whichever replica stored it, once.
//!
//! Replicas need PostgreSQL (`DATABASE_URL`) and the shared limit needs
//! Redis (`REDIS_URL`): without either the test is reported as skipped,
//! and under `CI=true` it fails.

use confab_tests::replicas::{RateWindows, spawn_replicas};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn message_rate_limit_across_two_edges_and_chat_replicas() {
    let Some(redis) = confab_tests::skip::required_env(
        "REDIS_URL",
        "the message rate limit across chat-service replicas",
    ) else {
        return;
    };
    let Some(db_url) = confab_tests::db::postgres_url().await else {
        return;
    };
    let replicas = spawn_replicas(db_url, RateWindows::Redis(&redis)).await;
    replicas.run_js("replicas.test.mjs").await;
    replicas.shutdown().await;
}
