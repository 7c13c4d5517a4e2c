//! The `mern` contract end to end: the whole system booted in-process and
//! driven by the official JavaScript `socket.io-client` (tests/js/mern.test.mjs),
//! over SQLite and, when `DATABASE_URL` is set, over PostgreSQL.

use confab_tests::app::{Db, spawn_app_with};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mern_contract_over_sqlite() {
    let app = spawn_app_with(Db::Sqlite, "mern").await;
    app.run_js("mern.test.mjs").await;
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mern_contract_over_postgres() {
    if confab_tests::db::postgres_url_configured() {
        let app = spawn_app_with(Db::Postgres, "mern").await;
        app.run_js("mern.test.mjs").await;
        app.shutdown().await;
    } else {
        eprintln!("DATABASE_URL is unset: skipping the PostgreSQL run");
    }
}
