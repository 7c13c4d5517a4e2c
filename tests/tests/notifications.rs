//! notify-service through the `hvtsocial` contract
//! (tests/js/notifications.test.mjs), the harness publishing over gRPC as
//! an internal service, over SQLite and, when `DATABASE_URL` is set,
//! PostgreSQL.

use confab_tests::app::{Db, run_suite};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hvtsocial_notifications_over_sqlite() {
    run_suite(Db::Sqlite, "raven", "notifications.test.mjs").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hvtsocial_notifications_over_postgres() {
    run_suite(Db::Postgres, "raven", "notifications.test.mjs").await;
}
