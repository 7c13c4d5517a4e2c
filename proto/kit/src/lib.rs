//! confab-kit: what every service does the same way, said once.
//!
//! * [`db`]: the database connection — SQLite with one writer in WAL mode,
//!   or a PostgreSQL pool — its directory created, a service's migrations
//!   run; and the mapping of a storage failure to the stable `INTERNAL`
//!   error ([`db_err`]).
//! * [`page`]: keyset paging — a request's page size and the cursor of the
//!   next page.
//! * [`now_ms`]: the clock services stamp rows and events with.
//! * [`bus`]: a service's event log shared by its replicas, on Redis
//!   Streams ([`RedisBus`]).
//!
//! It knows sea-orm, Redis and confab's error and event types, and nothing of any service's
//! tables or rules. Only the service crates use it: the edge and its
//! contracts must not depend on it (they store nothing), nor may
//! `confab-proto`, which it builds on.

pub mod bus;
pub mod db;
pub mod page;

pub use bus::RedisBus;
pub use db::{connect, db_err};

/// Milliseconds since the Unix epoch, the unit of every confab timestamp.
pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}
