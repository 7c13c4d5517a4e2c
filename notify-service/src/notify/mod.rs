//! The notify domain: every rule about publishes, notifications, unread
//! counts and reports.
//!
//! [`Notify`] takes canonical requests, checks them, stores the result and
//! publishes [`NotifyEvent`]s on the bus, each with its audience: the domain
//! event to its audience, then one `notification_created` and one
//! `unread_count` per recipient. The gRPC layer in `grpc.rs` only forwards
//! to it; the message follower (`messages.rs`) calls [`Notify::notify_message`].
//!
//! This module holds [`Notify`], its limits and the checks its requests
//! share; each capability is a file: `publish` (publishes and missed chat
//! messages), `notifications` (list, unread counts, mark read), `reports`
//! (story views) and `position` (the message follower's saved place).
//!
//! Rules:
//!
//! * **Event types.** A publish names one of the seed's domain events
//!   ([`SEED_EVENTS`]) or an application event `app.<name>` (`<name>`: 1–60
//!   of `a-z 0-9 _ .`, starting with a letter). Anything else is
//!   `INVALID_ARGUMENT`: a publisher cannot make a frontend hear a name the
//!   contracts use for something else (`receive_message`, `connect`, ...).
//! * **Payloads** are JSON objects of at most [`MAX_PAYLOAD_BYTES`], passed on
//!   untouched.
//! * **Audience**: `user_ids` (1..=[`MAX_AUDIENCE`], duplicates folded) or
//!   `everyone`, never both, never neither. `everyone` is one event for
//!   every edge, which emits it once per namespace to all its sockets: cheap
//!   here, but every connected client receives and parses it, so a publisher
//!   should keep it for what everyone needs (a new story on a small
//!   network) and address users otherwise. It cannot keep notifications:
//!   notify-service does not know who "everyone" is.
//! * **Notifications** for `user_ids` are written in batches
//!   ([`INSERT_BATCH`] rows a statement) in one transaction with the event,
//!   and unread counts are read back with one grouped query per batch:
//!   a 10,000-recipient publish is a few dozen statements, not 10,000.
//! * **Idempotency**: a publish with a key seen before returns the first
//!   result (`duplicate`) and publishes nothing; the same key with a
//!   different request is `CONFLICT`.
//! * **Mark read** only touches the caller's own notifications: ids of other
//!   users' notifications, unknown ids and already read ones are ignored (not
//!   refused, so a client cannot probe which ids exist); the response lists
//!   what was marked.
//! * **Reports** (`story_viewed`): the viewer is the request's actor, never
//!   an id from the payload; a story's first view by a user is recorded and
//!   published (audience empty, for internal services), a repeat is a
//!   `duplicate` no-op.

mod notifications;
mod position;
mod publish;
mod reports;

use std::sync::Arc;

use confab_proto::ServiceError;
use confab_proto::bus::EventBus;
use confab_proto::v1::{Audience, NotifyEvent, notify_event::Kind};
use sea_orm::DatabaseConnection;

pub use publish::is_publishable_type;

/// The seed's server→client domain events a publish may name.
pub const SEED_EVENTS: [&str; 6] = [
    "story_created",
    "friend_request_sent",
    "friend_request_accepted",
    "friend_request_updated",
    "post_liked",
    "post_commented",
];
/// The prefix of application-defined event types (`app.post_shared`).
pub const APP_EVENT_PREFIX: &str = "app.";
/// What clients may report.
pub const REPORT_TYPES: [&str; 1] = ["story_viewed"];
/// The most users one publish may address.
pub const MAX_AUDIENCE: usize = 10_000;
/// The largest payload accepted, in bytes.
pub const MAX_PAYLOAD_BYTES: usize = 64 * 1024;
/// The longest notification text, in bytes.
pub const MAX_CONTENT_BYTES: usize = 2_000;
/// The most notification ids one mark-read call may name.
pub const MAX_MARK_IDS: usize = 1_000;
/// Rows per insert statement (and ids per `IN (...)` list).
pub const INSERT_BATCH: usize = 1_000;
/// The type of the notification a missed chat message becomes.
pub const MESSAGE_TYPE: &str = "message";

type Result<T> = std::result::Result<T, ServiceError>;

/// The notify domain over one database and one event bus.
#[derive(Clone)]
pub struct Notify {
    db: DatabaseConnection,
    bus: Arc<dyn EventBus<NotifyEvent>>,
}

fn check_user_id(u: &str, what: &str) -> Result<()> {
    if u.trim().is_empty() || u.len() > 128 {
        return Err(ServiceError::invalid(format!(
            "{what} must be 1..=128 characters"
        )));
    }
    Ok(())
}

fn check_len(s: &str, max: usize, what: &str) -> Result<()> {
    if s.len() > max {
        return Err(ServiceError::invalid(format!(
            "{what} is at most {max} bytes"
        )));
    }
    Ok(())
}

/// `items` in chunks of at most `n` (a statement's bound parameters are limited).
fn chunks<T: Clone>(items: &[T], n: usize) -> impl Iterator<Item = Vec<T>> + '_ {
    items.chunks(n).map(|c| c.to_vec())
}

impl Notify {
    pub fn new(db: DatabaseConnection, bus: Arc<dyn EventBus<NotifyEvent>>) -> Self {
        Self { db, bus }
    }

    pub fn db(&self) -> &DatabaseConnection {
        &self.db
    }

    /// The bus `Subscribe` is served from.
    pub fn bus(&self) -> &dyn EventBus<NotifyEvent> {
        self.bus.as_ref()
    }

    async fn emit(&self, audience: Audience, kind: Kind) {
        self.bus
            .publish(NotifyEvent {
                audience: Some(audience),
                kind: Some(kind),
                ..Default::default()
            })
            .await;
    }

    fn to(user: &str) -> Audience {
        Audience {
            user_ids: vec![user.to_string()],
            ..Default::default()
        }
    }
}
