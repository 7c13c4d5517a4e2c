//! Users on different contracts in one conversation
//! (tests/js/cross.test.mjs), over SQLite and, when `DATABASE_URL` is set,
//! PostgreSQL.

use confab_tests::app::{Db, run_suite};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_contracts_in_one_conversation_over_sqlite() {
    run_suite(Db::Sqlite, "raven", "cross.test.mjs").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_contracts_in_one_conversation_over_postgres() {
    run_suite(Db::Postgres, "raven", "cross.test.mjs").await;
}
