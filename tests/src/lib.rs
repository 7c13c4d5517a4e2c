//! Test support: boot the real system on random ports and drive it.
//!
//! * [`db`]: a fresh database per test (SQLite, or PostgreSQL when
//!   `DATABASE_URL` is set) and a chat-service on it.
//! * [`app`]: the whole system — four gRPC services and an edge — started
//!   in-process, zero2prod style, with handles to restart chat-service and to
//!   run the JavaScript `socket.io-client` suites against it.
//! * [`hold`]: one socket held open by `socket.io-client`, line by line.
//! * [`internal`]: the harness as an internal service calling notify-service
//!   over gRPC, for JavaScript suites (through the control server).
//! * [`js`]: runs one JavaScript suite with node's test runner and reports
//!   each of its tests as its own result (complete, re-run once by name).
//! * [`skip`]: a test that cannot run for a missing service says so — on
//!   stderr and in the run's report — and fails under `CI=true`.
//! * [`redis_prefix`]: Redis keys of a test's own, apart from any other
//!   test's on the same Redis.

pub mod app;
pub mod db;
pub mod hold;
pub mod internal;
pub mod js;
pub mod replicas;
pub mod skip;

/// A Redis key prefix no other test uses: the services a test starts on a
/// shared Redis keep their keys (rate windows, event logs, sessions) under
/// it, so tests running side by side never see each other's.
pub fn redis_prefix() -> String {
    format!("confab-test-{:016x}", rand::random::<u64>())
}
