//! Test support: boot the real system on random ports and drive it.
//!
//! * [`db`]: a fresh database per test (SQLite, or PostgreSQL when
//!   `DATABASE_URL` is set) and a chat-service on it.
//! * [`app`]: the whole system — four gRPC services and an edge — started
//!   in-process, zero2prod style, with handles to restart chat-service and to
//!   run the JavaScript `socket.io-client` suites against it.

pub mod app;
pub mod db;
