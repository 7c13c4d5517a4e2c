//! The chat domain: every rule about conversations, members and messages.
//!
//! [`Chat`] takes canonical requests, checks them (validation, membership,
//! authorship), stores the result and publishes one [`ChatEvent`] per change
//! on the bus. The gRPC layer in `grpc.rs` only forwards to it.
//!
//! This module holds [`Chat`] itself, its limits and the checks every
//! request shares; each capability is a file of its own: `conversations`
//! (and members), `messages` (send, edit, delete, recall, react),
//! `receipts` (read and delivered), `history` (history and catch-up),
//! `offline` (the offline queue); `lookup` holds the reads they share and
//! `render` turns rows into canonical messages and events.

mod conversations;
mod history;
mod lookup;
mod messages;
mod offline;
mod receipts;
mod render;

use std::sync::Arc;

use confab_proto::bus::EventBus;
use confab_proto::v1::{self, ChatEvent, chat_event::Kind};
use confab_proto::{ServiceError, ids};
use sea_orm::DatabaseConnection;

use crate::entity::conversation;
use crate::members::{MemberCache, MemberReader};
use crate::rate::RateLimit;
use crate::writer::MessageWriter;
use render::event;

pub use confab_proto::limits::{MAX_TEXT_BYTES, check_text};
/// The most attachments one message may carry.
pub const MAX_ATTACHMENTS: usize = 20;
/// The most members a conversation may be created with.
pub const MAX_MEMBERS: usize = 1000;
/// The most messages one `RecordDeliveries` call may carry.
pub const MAX_DELIVERY_BATCH: usize = 1000;

type Result<T> = std::result::Result<T, ServiceError>;

/// The chat domain over one database and one event bus.
#[derive(Clone)]
pub struct Chat {
    db: DatabaseConnection,
    bus: Arc<dyn EventBus<ChatEvent>>,
    /// Member lists in memory, on SQLite only (see [`crate::members`]).
    members: Option<Arc<MemberCache>>,
    /// Member lists read together, on PostgreSQL ([`crate::members`]).
    reader: Option<MemberReader>,
    /// Messages per user and second ([`crate::rate`]).
    rate: Arc<RateLimit>,
    /// New messages' inserts, written together and announced in id order
    /// ([`crate::writer`]): one batch at a time on SQLite, several at once
    /// on PostgreSQL.
    writer: MessageWriter,
}

fn parse_id(s: &str, what: &str) -> Result<i64> {
    ids::parse(s).ok_or_else(|| {
        ServiceError::invalid(format!("{what} must be a positive integer id, got {s:?}"))
    })
}

fn actor(a: &Option<v1::Actor>) -> Result<&v1::Actor> {
    match a {
        Some(a) if !a.id.trim().is_empty() => Ok(a),
        _ => Err(ServiceError::invalid("actor.id is required")),
    }
}

fn check_user_id(u: &str) -> Result<()> {
    if u.trim().is_empty() || u.len() > 128 {
        return Err(ServiceError::invalid("user ids must be 1..=128 characters"));
    }
    Ok(())
}

impl Chat {
    pub fn new(db: DatabaseConnection, bus: Arc<dyn EventBus<ChatEvent>>) -> Self {
        let sqlite = db.get_database_backend() == sea_orm::DbBackend::Sqlite;
        let members = sqlite.then(|| Arc::new(MemberCache::default()));
        Self {
            writer: MessageWriter::new(db.clone(), bus.clone()),
            reader: (!sqlite).then(|| MemberReader::new(db.clone())),
            db,
            bus,
            members,
            rate: Arc::new(RateLimit::local(crate::rate::DEFAULT_LIMIT)),
        }
    }

    /// The same, with another message rate limit (its number, or its windows
    /// in Redis).
    pub fn with_rate_limit(mut self, rate: RateLimit) -> Self {
        self.rate = Arc::new(rate);
        self
    }

    pub fn db(&self) -> &DatabaseConnection {
        &self.db
    }

    /// The bus `Subscribe` is served from.
    pub fn bus(&self) -> &dyn EventBus<ChatEvent> {
        self.bus.as_ref()
    }

    async fn publish(&self, conv: &conversation::Model, members: Vec<String>, kind: Kind) {
        self.publish_from(conv, members, String::new(), kind).await;
    }

    /// Publishes an event caused by a request that named its `origin`.
    async fn publish_from(
        &self,
        conv: &conversation::Model,
        members: Vec<String>,
        origin: String,
        kind: Kind,
    ) {
        self.bus.publish(event(conv, members, origin, kind)).await;
    }
}
