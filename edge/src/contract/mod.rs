//! The contract toolkit: what every contract is made of, and the pieces
//! they share.
//!
//! A [`Contract`] is a table: its name (also its namespace, `/<name>`), its
//! handshake rules, the handlers it attaches to a new socket, the renderers
//! that turn canonical service events into its server→client events
//! ([`Emit`]s), how it answers requests ([`reply::Answers`]), and the
//! capabilities it declares — [`Calls`], [`Notifications`], [`Heartbeat`],
//! [`Offline`] — each a unit the socket lifecycle ([`crate::socket`])
//! attaches whole, so none can be half wired. A contract keeps only its
//! event table, payload types and renderers; joining rooms is
//! [`crate::session::rooms`], answering is [`reply::Reply`], the socket's
//! user is [`me::Me`]. Adding a contract is one folder in
//! [`crate::contracts`] and a line in its list.

use confab_proto::ServiceError;
use confab_proto::v1::{CallEvent, ChatEvent, NotifyEvent, PresenceEvent};
use serde_json::Value;
use socketioxide::extract::SocketRef;

use crate::auth::{AuthError, Identity};
use crate::state::EdgeState;
use answer::{Answer, Answers, Asked};

pub mod answer;
pub mod me;
pub mod payload;
pub mod reply;

/// How a contract reports a failed authentication: the event and its payload.
pub type AuthReport = fn(AuthError) -> (&'static str, Value);

/// One frontend contract.
pub struct Contract {
    pub name: &'static str,
    /// Checks the contract's own handshake fields against the verified
    /// identity (e.g. `auth.userId` must be the token's subject). An error
    /// becomes the `connect_error` message.
    pub handshake: fn(auth: Option<&Value>, me: &Identity) -> Result<(), String>,
    /// When set, a failed authentication is reported with the event and
    /// payload this returns, and the socket is then disconnected — for seeds
    /// whose frontends listen for an event rather than `connect_error`.
    pub auth_error: Option<AuthReport>,
    /// The `connect_error` message of a refused handshake (by default the
    /// stable code alone, [`plain_refusal`]); a contract whose frontend needs
    /// to be told more (e.g. how to send its token) says it here, after the
    /// code.
    pub refusal: fn(AuthError) -> String,
    /// How the contract refuses requests once the socket's token expired,
    /// and how a client presents a fresh one on the same socket.
    pub token: TokenRefresh,
    /// How the contract answers a request: its ack and refusal shapes.
    pub answers: Answers,
    /// Attaches the contract's messaging handlers (rooms, messages, typing)
    /// to a socket that passed the handshake. It runs before the client sees
    /// `connect` (so nothing the client sends first is missed) and must not
    /// emit.
    pub on_connect: fn(&SocketRef),
    /// Emits what the contract says first once the client is connected
    /// (e.g. `authenticated`).
    pub greet: Option<fn(&SocketRef, &Identity)>,
    /// Renders a canonical chat event as this contract's events.
    pub chat_event: fn(&ChatEvent) -> Vec<Emit>,
    /// Renders a canonical presence event (online/offline, typing, room
    /// presence).
    pub presence_event: fn(&PresenceEvent) -> Vec<Emit>,
    /// Calls, when the seed has them.
    pub calls: Option<Calls>,
    /// Notifications and domain events, when the seed has them.
    pub notifications: Option<Notifications>,
    /// Application heartbeats, when the seed has them.
    pub heartbeat: Option<Heartbeat>,
    /// Delivery on connect of what reached none of the user's sockets.
    pub offline: Option<Offline>,
    /// When a socket that did not resume a session catches up on the
    /// messages its user missed.
    pub catch_up: CatchUp,
}

/// When a socket that did not resume a session ([`crate::recovery`])
/// catches up on the messages its user missed — the messages since the
/// last one delivered to them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CatchUp {
    /// As it joins a conversation, that conversation's: the contract's
    /// messages go to conversation rooms, which its frontends join.
    OnJoin,
    /// As it connects, every conversation's: the contract's messages reach
    /// every socket of a member without a join.
    OnConnect,
}

/// The calls capability. A socket of a calling contract gets these
/// handlers, and its opening and closing is reported to call-service
/// (`ReportSession`, for the disconnect grace of a participant).
pub struct Calls {
    /// Attaches the call handlers (before the client sees `connect`).
    pub on_connect: fn(&SocketRef),
    /// Renders a canonical call event (ringing, answered, ended, signals,
    /// controls).
    pub event: fn(&CallEvent) -> Vec<Emit>,
}

/// The notifications capability: notify-service's events for the user.
pub struct Notifications {
    /// Attaches the handlers (mark read, reports).
    pub on_connect: fn(&SocketRef),
    /// What the socket is told once connected (e.g. its unread count).
    pub greet: fn(&SocketRef, &Identity, &EdgeState),
    /// Renders a notify-service event (notifications, unread counts,
    /// domain events).
    pub event: fn(&NotifyEvent) -> Vec<Emit>,
}

/// The heartbeat capability ([`crate::heartbeat`]): the edge beats the
/// contract's sockets and drops those that stop answering.
pub struct Heartbeat {
    /// The events of one beat at `now_ms` (ms since epoch).
    pub beat: fn(now_ms: i64) -> Vec<(&'static str, Value)>,
    /// The client events that answer a beat.
    pub answers: &'static [&'static str],
}

/// The offline capability: what reached none of the user's sockets while
/// they were away, delivered to a socket once it is connected.
pub struct Offline {
    /// Takes the user's queue and sends it (spawns; must not block).
    pub deliver: fn(&SocketRef, &Identity, &EdgeState),
}

/// Token expiry during a connection. A socket whose token expired stays
/// connected, but every request is refused ([`me::Me`], which every
/// handler extracts, answers with [`TokenRefresh::refuse`] and never runs
/// the handler) until the client sends [`TokenRefresh::event`] with a fresh
/// token for the same user; one for another user is refused and the socket
/// disconnected.
pub struct TokenRefresh {
    /// The client event carrying a fresh token: `{token}` or the token alone.
    pub event: &'static str,
    /// A request refused for its token, in the contract's shape:
    /// [`AuthError::Expired`] for a request on an expired socket; a bad
    /// refresh token's own error; [`AuthError::OtherUser`].
    pub refuse: fn(&Asked<'_>, AuthError) -> Answer,
    /// A refresh that worked (the socket's identity is the new one).
    pub refreshed: fn(&Identity) -> Answer,
}

/// For [`TokenRefresh::refreshed`]: the ack `{success: true, data:
/// {expiresAt}}`, the shape of the contracts whose acks carry `data`.
pub fn refreshed_with_data(me: &Identity) -> Answer {
    let expires_at = me.expires_at_ms.map(crate::wire::iso);
    Answer {
        emit: Vec::new(),
        ack: Some(serde_json::json!({ "success": true, "data": { "expiresAt": expires_at } })),
    }
}

/// Which contract a socket speaks (in its extensions, from its handshake).
#[derive(Clone, Copy)]
pub struct Spoken(pub &'static Contract);

/// `retryAfter` of a refusal over a rate limit (`LIMIT_EXCEEDED` with a
/// time to wait): the seconds until the user may try again, rounded up (as
/// v3's seed has it); `None` for any other refusal.
pub fn retry_after_secs(e: &ServiceError) -> Option<i64> {
    (e.code == confab_proto::ErrorCode::LimitExceeded && e.retry_after_ms > 0)
        .then(|| retry_secs(e))
}

/// A refusal's wait in whole seconds, rounded up (the seeds' `retryAfter`).
pub fn retry_secs(e: &ServiceError) -> i64 {
    (e.retry_after_ms + 999) / 1000
}

/// For [`Contract::refusal`]: the stable code alone.
pub fn plain_refusal(e: AuthError) -> String {
    e.to_string()
}

/// For [`Contract::handshake`]: nothing beyond the token to check.
pub fn any_handshake(_: Option<&Value>, _: &Identity) -> Result<(), String> {
    Ok(())
}

/// One server→client event for the sockets in some rooms.
#[derive(Debug, Clone, PartialEq)]
pub struct Emit {
    pub rooms: Vec<String>,
    pub except: Vec<String>,
    pub event: &'static str,
    pub data: Value,
}

impl Emit {
    pub fn to(rooms: Vec<String>, event: &'static str, data: Value) -> Self {
        Self {
            rooms,
            except: Vec::new(),
            event,
            data,
        }
    }
}

/// A namespace and the contract it speaks.
#[derive(Clone, Copy)]
pub struct Mount {
    pub path: &'static str,
    pub contract: &'static Contract,
}
