//! The `v3` contract end to end: the whole system booted in-process and
//! driven by the official JavaScript `socket.io-client` (tests/js/v3.test.mjs),
//! over SQLite and, when `DATABASE_URL` is set, over PostgreSQL.

use confab_tests::app::{Db, run_suite};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v3_contract_over_sqlite() {
    run_suite(Db::Sqlite, "v3", "v3.test.mjs").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v3_contract_over_postgres() {
    run_suite(Db::Postgres, "v3", "v3.test.mjs").await;
}
