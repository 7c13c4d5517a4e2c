//! Users on different contracts in one conversation
//! (tests/js/cross.test.mjs), over SQLite and, when `DATABASE_URL` is set,
//! PostgreSQL.

use confab_tests::app::{Db, spawn_app_with};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_contracts_in_one_conversation_over_sqlite() {
    let app = spawn_app_with(Db::Sqlite, "raven").await;
    app.run_js("cross.test.mjs").await;
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_contracts_in_one_conversation_over_postgres() {
    if confab_tests::db::postgres_url_configured() {
        let app = spawn_app_with(Db::Postgres, "raven").await;
        app.run_js("cross.test.mjs").await;
        app.shutdown().await;
    } else {
        eprintln!("DATABASE_URL is unset: skipping the PostgreSQL run");
    }
}
