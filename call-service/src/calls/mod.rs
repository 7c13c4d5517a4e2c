//! The call domain: every rule about calls, one capability per module.
//!
//! [`Calls`] takes canonical requests, checks them against the call's state
//! and the actor's place in it, stores the change and publishes one
//! [`CallEvent`] per transition on the bus. The gRPC layer in `grpc.rs`
//! only forwards to it; the timers live in `sweeper.rs`.
//!
//! - `state`: a call as stored ([`Loaded`]), finding the call a request
//!   names, whether a user is busy, and the conditional transitions (`…
//!   WHERE state = 'ringing'`), so an answer racing the ring timeout (or a
//!   second device) has exactly one winner, also between replicas.
//! - `initiate`: starting a call (who is rung, busy, the start rate).
//! - `actions`: answering, and every way out of a call — end, cancel,
//!   reject and `Hangup`, which picks one of them by the call's state in
//!   one transaction.
//! - `signal`: what passes within a live call: signaling and controls.
//! - `sessions`: sockets opening and closing (the disconnect grace).
//! - `records`: reading a call and the call records.
//!
//! States ([`Status`]): `ringing` → `ongoing` → `ended`, or `ringing` →
//! `rejected` / `cancelled` / `missed`. The last four are final.

mod actions;
mod initiate;
mod records;
mod sessions;
mod signal;
mod state;

use std::sync::Arc;

use confab_proto::bus::EventBus;
use confab_proto::v1::{self, Audience, CallEvent, call_event};
use confab_proto::{ErrorCode, ServiceError};
use sea_orm::DatabaseConnection;
use tokio::sync::Notify;

use crate::config::CallTimers;
use crate::conversations::Conversations;
pub use crate::entity::call::{Media, Status};
pub use crate::entity::participant::Role;
pub use state::Loaded;

type Result<T> = std::result::Result<T, ServiceError>;

/// Who ends a call when a timer does.
pub const SYSTEM: &str = "system";
/// Call starts one user may make per [`RATE_WINDOW_MS`] (the seed's 5/min).
pub const MAX_STARTS: u64 = 5;
pub const RATE_WINDOW_MS: i64 = 60_000;
/// The most users a room call rings.
pub const MAX_CALLEES: usize = 100;
/// The largest SDP or ICE payload relayed.
pub const MAX_SIGNAL_BYTES: usize = 64 * 1024;
/// The most call records one `ListCallRecords` returns.
pub const MAX_RECORDS: u64 = 200;

/// Why a call ended or a participant is out, when confab decides it (a
/// client may name its own end reason).
pub mod reason {
    /// Hung up by a participant (the default end reason).
    pub const USER_ENDED: &str = "user_ended";
    pub const REJECTED: &str = "rejected";
    pub const CANCELLED: &str = "cancelled";
    /// The ring timeout.
    pub const MISSED: &str = "missed";
    /// The maximum duration.
    pub const TIMEOUT: &str = "timeout";
    /// A participant's socket stayed away past the disconnect grace.
    pub const DISCONNECTED: &str = "participant_disconnected";
    /// One participant out of a room call that goes on: left it.
    pub const LEFT: &str = "left";
    /// One participant out of a room call that goes on: declined it.
    pub const DECLINED: &str = "declined";
}

/// The call domain over one database, one event bus and chat-service.
#[derive(Clone)]
pub struct Calls {
    db: DatabaseConnection,
    bus: Arc<dyn EventBus<CallEvent>>,
    chat: Arc<dyn Conversations>,
    timers: CallTimers,
    /// Wakes the sweeper when a new deadline is set.
    wake: Arc<Notify>,
}

impl Calls {
    pub fn new(
        db: DatabaseConnection,
        bus: Arc<dyn EventBus<CallEvent>>,
        chat: Arc<dyn Conversations>,
        timers: CallTimers,
    ) -> Self {
        Self {
            db,
            bus,
            chat,
            timers,
            wake: Arc::new(Notify::new()),
        }
    }

    /// The bus `Subscribe` is served from.
    pub fn bus(&self) -> &dyn EventBus<CallEvent> {
        self.bus.as_ref()
    }

    pub(crate) fn db(&self) -> &DatabaseConnection {
        &self.db
    }

    pub(crate) fn wake(&self) -> Arc<Notify> {
        self.wake.clone()
    }

    /// Publishes one event about `loaded` to every participant.
    async fn publish(&self, loaded: &Loaded, actor: &str, kind: call_event::Kind) {
        self.bus
            .publish(CallEvent {
                audience: Some(audience(loaded)),
                actor_id: actor.to_string(),
                kind: Some(kind),
                ..Default::default()
            })
            .await;
    }

    /// Tells a room call's participants that `user` is out of a call that
    /// goes on without them.
    pub(crate) async fn publish_left(&self, after: &Loaded, user: &str, by: &str, reason: &str) {
        self.publish(
            after,
            by,
            call_event::Kind::ParticipantLeft(v1::ParticipantLeft {
                call: Some(after.to_proto()),
                user_id: user.to_string(),
                reason: reason.to_string(),
            }),
        )
        .await;
    }
}

fn actor(a: &Option<v1::Actor>) -> Result<&v1::Actor> {
    match a {
        Some(a) if !a.id.trim().is_empty() && a.id.len() <= 128 => Ok(a),
        _ => Err(ServiceError::invalid(
            "actor.id is required (1..=128 bytes)",
        )),
    }
}

fn short(s: &str, what: &str) -> Result<()> {
    if s.len() > 128 {
        return Err(ServiceError::invalid(format!(
            "{what} is at most 128 bytes"
        )));
    }
    Ok(())
}

/// A refusal about the actor's own place in the call (already answered,
/// not in it), not about the call's state.
fn conflict(m: impl Into<String>) -> ServiceError {
    ServiceError::new(ErrorCode::Conflict, m)
}

/// A refusal because the call is in `state`: the state travels as data.
fn wrong_state(state: Status, m: impl Into<String>) -> ServiceError {
    ServiceError::conflict_in(state.name(), m)
}

/// The call is in `state`, which does not allow the request.
fn the_call_is(state: Status) -> ServiceError {
    wrong_state(state, format!("the call is {state}"))
}

fn busy(m: impl Into<String>) -> ServiceError {
    ServiceError::new(ErrorCode::UserBusy, m)
}

fn denied(m: impl Into<String>) -> ServiceError {
    ServiceError::new(ErrorCode::PermissionDenied, m)
}

fn not_found() -> ServiceError {
    ServiceError::new(ErrorCode::NotFound, "no such call")
}

/// Every participant's sockets, the call, and for a room call its
/// conversation.
fn audience(l: &Loaded) -> Audience {
    Audience {
        user_ids: l.user_ids(),
        call_id: l.call.id.to_string(),
        conversation_id: if l.call.group_call {
            l.call.conversation_id.to_string()
        } else {
            String::new()
        },
        ..Default::default()
    }
}
