//! The `v3` contract end to end: the whole system booted in-process and
//! driven by the official JavaScript `socket.io-client` (tests/js/v3.test.mjs),
//! over SQLite and, when `DATABASE_URL` is set, over PostgreSQL.

use confab_tests::app::{Db, spawn_app_with};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v3_contract_over_sqlite() {
    let app = spawn_app_with(Db::Sqlite, "v3").await;
    app.run_js("v3.test.mjs").await;
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v3_contract_over_postgres() {
    if confab_tests::db::postgres_url_configured() {
        let app = spawn_app_with(Db::Postgres, "v3").await;
        app.run_js("v3.test.mjs").await;
        app.shutdown().await;
    } else {
        eprintln!("DATABASE_URL is unset: skipping the PostgreSQL run");
    }
}
