//! The contract layer: how each frontend contract (seed) maps onto the
//! canonical API.
//!
//! A [`Contract`] is a table: its name (also its namespace, `/<name>`), a
//! function that attaches its client→server event handlers to a new socket,
//! and a function that renders a canonical service event as that contract's
//! server→client events ([`Emit`]s). Handlers translate payloads into gRPC
//! calls and answer errors in the contract's own shape; nothing here stores
//! business data. Adding a contract means adding a module and a line to
//! [`ALL`].
//!
//! Rooms are how events find sockets: every socket joins [`user_room`] of
//! its user and its own [`socket_room`] on connect, and
//! [`conversation_room`]s as its contract says.

use confab_proto::v1::{
    Audience, CallEvent, ChatEvent, NotifyEvent, PresenceEvent, ReportSessionRequest,
};
use confab_proto::{ErrorCode, ServiceError};
use futures::future::BoxFuture;
use serde_json::Value;
use socketioxide::SocketIo;
use socketioxide::extract::{AckSender, SocketRef, State, TryData};
use socketioxide::handler::{ConnectHandler, FromMessageParts};

use crate::auth::{AuthError, Identity};
use crate::services::Services;
use crate::socket_auth::AuthFailed;

pub mod dreamstudio;
pub mod hvtsocial;
pub mod mern;
pub mod raven;
pub mod v3;

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
    /// Attaches the contract's event handlers to a socket that passed the
    /// handshake. It runs before the client sees `connect` (so nothing the
    /// client sends first is missed) and must not emit.
    pub on_connect: fn(&SocketRef, &Identity),
    /// Emits what the contract says first once the client is connected
    /// (e.g. `authenticated`).
    pub greet: Option<fn(&SocketRef, &Identity, &Services)>,
    /// Runs when a socket of this contract disconnects (before its presence
    /// session ends). Not for room departures: a socket's room presences end
    /// with its session in presence-service, which announces them.
    pub on_disconnect: Option<DisconnectHook>,
    /// Renders a canonical chat event as this contract's events.
    pub chat_event: fn(&ChatEvent) -> Vec<Emit>,
    /// Renders a canonical presence event (online/offline, typing).
    pub presence_event: fn(&PresenceEvent) -> Vec<Emit>,
    /// Renders a canonical call event (ringing, answered, ended, signals,
    /// controls); [`no_call_events`] for contracts without calls.
    pub call_event: fn(&CallEvent) -> Vec<Emit>,
    /// Whether the contract makes calls: its sockets' opening and closing
    /// is reported to call-service (`ReportSession`), for the disconnect
    /// grace of a participant.
    pub calls: bool,
    /// Whether the server heartbeats its sockets and drops those that stop
    /// answering ([`crate::heartbeat`]; the seed's `ping` / `heartbeat`).
    pub heartbeat: bool,
    /// Renders a notify-service event (notifications, unread counts, domain
    /// events); [`no_notifications`] for contracts whose seed has none.
    pub notify_event: fn(&NotifyEvent) -> Vec<Emit>,
    /// How the contract refuses requests once the socket's token expired,
    /// and how a client presents a fresh one on the same socket.
    pub token: TokenRefresh,
}

/// Token expiry during a connection. A socket whose token expired stays
/// connected, but every request is refused ([`Me`], which every handler
/// extracts, answers with [`TokenRefresh::refuse`] and never runs the
/// handler) until the client sends [`TokenRefresh::event`] with a fresh
/// token for the same user; one for another user is refused and the socket
/// disconnected.
pub struct TokenRefresh {
    /// The client event carrying a fresh token: `{token}` or the token alone.
    pub event: &'static str,
    /// Answers a request refused for its token in the contract's shape:
    /// [`AuthError::Expired`] for a request on an expired socket; a bad
    /// refresh token's own error; [`AuthError::OtherUser`]. `wants_ack`:
    /// the client passed an ack, which `ack` answers.
    pub refuse: fn(&SocketRef, AckSender, bool, AuthError),
    /// Answers a refresh that worked (the socket's identity is the new one).
    pub refreshed: fn(&SocketRef, AckSender, &Identity),
}

/// For [`TokenRefresh::refreshed`]: the ack `{success: true, data:
/// {expiresAt}}`, the shape of the contracts whose acks carry `data`.
pub fn refreshed_with_data(_: &SocketRef, ack: AckSender, me: &Identity) {
    let expires_at = me.expires_at_ms.map(crate::wire::iso);
    let _ = ack.send(&serde_json::json!({ "success": true, "data": { "expiresAt": expires_at } }));
}

/// `retryAfter` of a refusal over a rate limit (`LIMIT_EXCEEDED` with a
/// time to wait): the seconds until the user may try again, rounded up (as
/// v3's seed has it); `None` for any other refusal.
pub fn retry_after_secs(e: &ServiceError) -> Option<i64> {
    (e.code == ErrorCode::LimitExceeded && e.retry_after_ms > 0).then(|| retry_secs(e))
}

/// A refusal's wait in whole seconds, rounded up (the seeds' `retryAfter`).
pub fn retry_secs(e: &ServiceError) -> i64 {
    (e.retry_after_ms + 999) / 1000
}

/// Which contract a socket speaks (in its extensions), for [`Me`].
#[derive(Clone, Copy)]
struct Spoken(&'static Contract);

/// The socket's user, for a handler: the [`Identity`] in its extensions,
/// while its token has not expired. On an expired socket the extraction
/// fails after answering in the contract's shape, so the handler never
/// runs and nothing is stored or sent: the one place no handler can skip.
pub struct Me(pub Identity);

/// Why [`Me`] refused to extract (logged by socketioxide).
#[derive(Debug, thiserror::Error)]
pub enum NotMe {
    #[error("the socket has no identity")]
    NoIdentity,
    #[error("the socket's token has expired: request refused")]
    Expired,
}

impl FromMessageParts<socketioxide::adapter::LocalAdapter> for Me {
    type Error = NotMe;
    fn from_message_parts(
        s: &std::sync::Arc<socketioxide::socket::Socket<socketioxide::adapter::LocalAdapter>>,
        v: &mut socketioxide::handler::Value,
        ack_id: &Option<i64>,
    ) -> Result<Self, NotMe> {
        let id = s.extensions.get::<Identity>().ok_or(NotMe::NoIdentity)?;
        if !id.expired(chrono::Utc::now().timestamp_millis()) {
            return Ok(Me(id));
        }
        metrics::counter!("confab_expired_token_refusals_total").increment(1);
        if let Some(Spoken(contract)) = s.extensions.get::<Spoken>() {
            let socket = match SocketRef::from_message_parts(s, v, ack_id) {
                Ok(socket) => socket,
                Err(e) => match e {},
            };
            let ack = match AckSender::from_message_parts(s, v, ack_id) {
                Ok(ack) => ack,
                Err(e) => match e {},
            };
            (contract.token.refuse)(&socket, ack, ack_id.is_some(), AuthError::Expired);
        }
        Err(NotMe::Expired)
    }
}

/// The refresh event ([`TokenRefresh::event`]): a fresh token for the same
/// user replaces the socket's identity; another user's is refused and the
/// socket disconnected; a bad one is refused (the socket stays as it was).
async fn refresh_token(
    s: SocketRef,
    TryData(p): TryData<Value>,
    State(svc): State<Services>,
    ack: AckSender,
    AckRequested(wants_ack): AckRequested,
) {
    let (Some(Spoken(contract)), Some(current)) =
        (s.extensions.get::<Spoken>(), s.extensions.get::<Identity>())
    else {
        return;
    };
    let token = match p {
        Ok(Value::String(t)) => Some(t),
        Ok(Value::Object(o)) => o.get("token").and_then(Value::as_str).map(str::to_string),
        _ => None,
    }
    .map(|t| t.trim().trim_start_matches("Bearer ").to_string())
    .filter(|t| !t.is_empty());
    let verified = token
        .ok_or(AuthError::Required)
        .and_then(|t| svc.verifier.verify(&t));
    match verified {
        Err(e) => (contract.token.refuse)(&s, ack, wants_ack, e),
        Ok(fresh) if fresh.user_id != current.user_id => {
            tracing::info!(user = %current.user_id, sid = %s.id, "a token for another user was presented: disconnecting");
            (contract.token.refuse)(&s, ack, wants_ack, AuthError::OtherUser);
            let _ = s.disconnect();
        }
        Ok(fresh) => {
            s.extensions.insert(fresh.clone());
            (contract.token.refreshed)(&s, ack, &fresh);
        }
    }
}

/// For [`Contract::notify_event`]: the seed has no notification events.
pub fn no_notifications(_: &NotifyEvent) -> Vec<Emit> {
    Vec::new()
}

/// For [`Contract::call_event`]: a contract whose seed has no calls.
pub fn no_call_events(_: &CallEvent) -> Vec<Emit> {
    Vec::new()
}

/// Where a call event goes: the sessions (sockets) it names, else every
/// socket of its users — the sessions one answered a call on hear its
/// signaling alone.
pub fn call_rooms(audience: Option<&Audience>) -> Vec<String> {
    let Some(a) = audience else {
        return Vec::new();
    };
    if a.session_ids.is_empty() {
        a.user_ids.iter().map(|u| user_room(u)).collect()
    } else {
        a.session_ids.iter().map(|s| socket_room(s)).collect()
    }
}

/// Tells call-service that a socket of a calling contract opened or closed,
/// without holding the socket up (a failure is logged: the worst outcome is
/// a call ended by its disconnect grace).
fn report_session(svc: &Services, me: &Identity, session_id: String, open: bool) {
    let mut call = svc.call.clone();
    let req = ReportSessionRequest {
        actor: Some(me.actor()),
        session_id,
        open,
    };
    tokio::spawn(async move {
        if let Err(e) = call.report_session(req).await {
            tracing::debug!(error = %e, open, "could not report a session to call-service");
        }
    });
}

/// See [`Contract::on_disconnect`].
pub type DisconnectHook = fn(SocketRef) -> BoxFuture<'static, ()>;

/// For [`Contract::refusal`]: the stable code alone.
pub fn plain_refusal(e: AuthError) -> String {
    e.to_string()
}

/// For [`Contract::handshake`]: nothing beyond the token to check.
pub fn any_handshake(_: Option<&Value>, _: &Identity) -> Result<(), String> {
    Ok(())
}

/// Every contract confab speaks.
pub const ALL: &[Contract] = &[
    raven::CONTRACT,
    mern::CONTRACT,
    v3::CONTRACT,
    hvtsocial::CONTRACT,
    dreamstudio::CONTRACT,
];

pub fn by_name(name: &str) -> Option<&'static Contract> {
    ALL.iter().find(|c| c.name == name)
}

/// Whether the client passed an ack callback with the event (socketioxide's
/// [`AckSender`](socketioxide::extract::AckSender) alone cannot tell), for
/// contracts that answer a refusal in the ack when there is one and as an
/// event otherwise.
pub struct AckRequested(pub bool);

impl<A: socketioxide::adapter::Adapter> socketioxide::handler::FromMessageParts<A>
    for AckRequested
{
    type Error = std::convert::Infallible;
    fn from_message_parts(
        _: &std::sync::Arc<socketioxide::socket::Socket<A>>,
        _: &mut socketioxide::handler::Value,
        ack_id: &Option<i64>,
    ) -> Result<Self, Self::Error> {
        Ok(Self(ack_id.is_some()))
    }
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

/// The room every socket of a user is in.
pub fn user_room(user_id: &str) -> String {
    format!("user:{user_id}")
}

/// The room every socket is in: an event for everyone connected (a
/// notify-service publish to `everyone`).
pub const EVERYONE_ROOM: &str = "everyone";

/// The room of one socket alone: a request's `origin` names it, so a
/// contract can leave the requesting socket out of the event's echo.
pub fn socket_room(socket_id: &str) -> String {
    format!("socket:{socket_id}")
}

/// The room of the sockets that joined a conversation.
pub fn conversation_room(conversation_id: &str) -> String {
    format!("conv:{conversation_id}")
}

/// A namespace and the contract it speaks.
#[derive(Clone, Copy)]
pub struct Mount {
    pub path: &'static str,
    pub contract: &'static Contract,
}

/// Mounts every contract on `/<name>` and the default one on `/` too; returns
/// the mounts so events can be fanned out to each.
pub fn mount_all(io: &SocketIo, default_contract: &'static Contract) -> Vec<Mount> {
    let mut mounts: Vec<Mount> = ALL
        .iter()
        .map(|c| Mount {
            path: Box::leak(format!("/{}", c.name).into_boxed_str()),
            contract: c,
        })
        .collect();
    mounts.push(Mount {
        path: "/",
        contract: default_contract,
    });
    for m in &mounts {
        let contract = m.contract;
        // Everything a socket needs to receive events is set up here, in the
        // connect middleware, which runs before the client is told it is
        // connected: an event the client emits right after `connect` always
        // finds its handler.
        let middleware = move |s: SocketRef,
                               TryData(auth): TryData<Value>,
                               State(svc): State<Services>| async move {
            crate::socket_auth::authenticate(contract, &s, auth.ok(), &svc).await?;
            if let Some(id) = s.extensions.get::<Identity>() {
                s.extensions.insert(Spoken(contract));
                s.on(contract.token.event, refresh_token);
                s.join([
                    user_room(&id.user_id),
                    socket_room(&s.id.to_string()),
                    EVERYONE_ROOM.to_string(),
                ]);
                if contract.calls {
                    report_session(&svc, &id, s.id.to_string(), true);
                }
                s.on_disconnect(move |s: SocketRef| async move {
                    if let Some(hook) = contract.on_disconnect {
                        hook(s.clone()).await;
                    }
                    if let Some(id) = s.extensions.get::<Identity>() {
                        if contract.calls {
                            report_session(&svc, &id, s.id.to_string(), false);
                        }
                        crate::presence::unregister(&svc, &s).await;
                    }
                });
                (contract.on_connect)(&s, &id);
            }
            Ok::<(), String>(())
        };
        // Runs once the client is connected: what the contract says first.
        let on_connect = move |s: SocketRef, State(svc): State<Services>| async move {
            if let (Some(AuthFailed(e)), Some(report)) =
                (s.extensions.get::<AuthFailed>(), contract.auth_error)
            {
                let (event, payload) = report(e);
                let _ = s.emit(event, &payload);
                let _ = s.disconnect();
                return;
            }
            let Some(id) = s.extensions.get::<Identity>() else {
                let _ = s.disconnect();
                return;
            };
            metrics::counter!("confab_socket_connections_total", "contract" => contract.name)
                .increment(1);
            tracing::debug!(contract = contract.name, user = %id.user_id, sid = %s.id, "socket connected");
            if let Some(greet) = contract.greet {
                greet(&s, &id, &svc);
            }
        };
        io.ns(m.path, on_connect.with(middleware));
    }
    mounts
}
