//! The tables chat-service owns. Times are milliseconds since the Unix epoch;
//! list-valued columns hold JSON text so SQLite and PostgreSQL share one
//! schema.

pub mod conversation;
pub mod delivery;
pub mod member;
pub mod message;
pub mod reaction;
