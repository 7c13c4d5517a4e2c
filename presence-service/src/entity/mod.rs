//! The one table presence-service owns: when each user was last seen.
//! Sessions and typing are ephemeral and live in the [`Store`](crate::store::Store).

pub mod last_seen;
