//! The edge's size limits (tests/js/limits.test.mjs): packets and REST
//! bodies over `CONFAB_MAX_PACKET_BYTES` are refused before any service is
//! called, and no client-facing error names a transport or gRPC internal.

use confab_tests::app::{Db, run_suite};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_packets_are_refused_at_the_edge() {
    run_suite(Db::Sqlite, "raven", "limits.test.mjs").await;
}
