//! Room presence across two edges on the same services
//! (tests/js/edges.test.mjs): v3, dreamstudio and raven members on one edge
//! hear users on the other join and leave, a user with sockets on both is
//! announced once, and a disconnect ends the user's room presence on both.
//! Over SQLite and, when `DATABASE_URL` is set, over PostgreSQL.

use confab_tests::app::{Db, run_suite_on_two_edges};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn room_presence_across_two_edges_over_sqlite() {
    run_suite_on_two_edges(Db::Sqlite, "v3", "edges.test.mjs").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn room_presence_across_two_edges_over_postgres() {
    run_suite_on_two_edges(Db::Postgres, "v3", "edges.test.mjs").await;
}
