//! The `hvtsocial` contract end to end: the whole system booted in-process and
//! driven by the official JavaScript `socket.io-client` (tests/js/hvtsocial.test.mjs),
//! over SQLite and, when `DATABASE_URL` is set, over PostgreSQL. The default
//! namespace `/` speaks `hvtsocial` here, as the seed's frontend connects
//! without a path.

use confab_tests::app::{Db, run_suite};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hvtsocial_contract_over_sqlite() {
    run_suite(Db::Sqlite, "hvtsocial", "hvtsocial.test.mjs").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hvtsocial_contract_over_postgres() {
    run_suite(Db::Postgres, "hvtsocial", "hvtsocial.test.mjs").await;
}
