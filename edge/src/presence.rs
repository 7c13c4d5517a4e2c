//! The edge's side of presence: registering each authenticated socket with
//! presence-service (and refusing the one over the per-user limit),
//! unregistering it on disconnect, heartbeating this edge's sessions,
//! room presence (a socket entering or leaving a conversation's room,
//! [`enter_room`] / [`leave_room`]), and typing — checked for membership
//! and throttled per user before it reaches presence-service.
//!
//! Who hears a user's online/offline: the users who share a conversation
//! with them (chat-service's `ListPeers`), never the whole server. Who
//! hears a user enter or leave a conversation: its members, on every edge;
//! presence-service decides whether it is the user's first or last socket
//! there (a socket's room presences end with its session, so the edge says
//! nothing per room at disconnect). When presence-service is unreachable,
//! sockets still connect and join rooms (presence is degraded, messaging is
//! not).

use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use confab_proto::v1::{
    CheckMembershipRequest, HeartbeatRequest, ListPeersRequest, RegisterSessionRequest,
    SetRoomPresenceRequest, SetRoomPresenceResponse, SetTypingRequest, UnregisterSessionRequest,
};
use confab_proto::{ErrorCode, ServiceError};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use socketioxide::extract::SocketRef;
use tokio::task::JoinHandle;

use crate::auth::{AuthError, Identity};
use crate::contract::conversation_room;
use crate::services::{PresenceClient, Services};

/// Typing starts a user may send per minute (seed 004's suggestion); more
/// are dropped silently. Stops always pass, so an indicator never sticks.
pub const TYPING_STARTS_PER_MINUTE: u32 = 30;

/// Per-user typing throttle, shared by every socket on this edge.
#[derive(Clone)]
pub struct TypingThrottle(Arc<DefaultKeyedRateLimiter<String>>);

impl Default for TypingThrottle {
    fn default() -> Self {
        let per_minute = NonZeroU32::new(TYPING_STARTS_PER_MINUTE).unwrap_or(NonZeroU32::MIN);
        Self(Arc::new(RateLimiter::keyed(Quota::per_minute(per_minute))))
    }
}

/// Kept in a socket's extensions while its session is registered: what
/// ends it, built once at registration.
#[derive(Debug, Clone)]
pub struct Session(Arc<SessionGuard>);

/// Ends a registered session when its socket is dropped without having been
/// unregistered: a socket whose connection closed during the handshake,
/// after the connect middleware registered it, is dropped by socketioxide
/// without its disconnect handler ever running — without this, its user
/// would stay online for as long as the edge lives.
struct SessionGuard {
    presence: PresenceClient,
    request: UnregisterSessionRequest,
    done: AtomicBool,
}

impl std::fmt::Debug for SessionGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionGuard")
            .field("socket_id", &self.request.socket_id)
            .field("done", &self.done)
            .finish()
    }
}

impl Drop for SessionGuard {
    fn drop(&mut self) {
        if self.done.load(Ordering::Acquire) {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let mut presence = self.presence.clone();
        let req = self.request.clone();
        tracing::debug!(socket = %req.socket_id, "socket dropped before it connected: ending its session");
        runtime.spawn(async move {
            if let Err(status) = presence.unregister_session(req).await {
                tracing::warn!(error = %status, "unregister of a dropped socket failed; it expires with the edge's heartbeat");
            }
        });
    }
}

/// Registers a socket that just authenticated. `Err` only when the user is
/// over the per-user socket limit.
pub async fn register(
    svc: &Services,
    s: &SocketRef,
    me: &Identity,
    contract: &str,
) -> Result<(), AuthError> {
    let watchers = match svc
        .chat
        .clone()
        .list_peers(ListPeersRequest {
            user_id: me.user_id.clone(),
        })
        .await
    {
        Ok(r) => r.into_inner().user_ids,
        Err(status) => {
            tracing::warn!(error = %status, "peers unavailable; presence reaches nobody");
            Vec::new()
        }
    };
    let req = RegisterSessionRequest {
        actor: Some(me.actor()),
        edge_id: svc.edge_id.clone(),
        socket_id: s.id.to_string(),
        contract: contract.to_string(),
        watcher_ids: watchers.clone(),
    };
    match svc.presence.clone().register_session(req).await {
        Ok(_) => {
            s.extensions.insert(Session(Arc::new(SessionGuard {
                presence: svc.presence.clone(),
                request: UnregisterSessionRequest {
                    user_id: me.user_id.clone(),
                    edge_id: svc.edge_id.clone(),
                    socket_id: s.id.to_string(),
                    watcher_ids: watchers,
                },
                done: AtomicBool::new(false),
            })));
            Ok(())
        }
        Err(status) => match ServiceError::from_status(&status) {
            e if e.code == ErrorCode::LimitExceeded => Err(AuthError::TooManyConnections),
            e => {
                tracing::warn!(error = %e, "presence unavailable; socket connects without a session");
                Ok(())
            }
        },
    }
}

/// Unregisters a socket that disconnected (if it had a session): its
/// room presences end with it. A socket without a session that entered a
/// room (presence-service was unreachable when it connected) is
/// unregistered all the same, for its room presences.
pub async fn unregister(svc: &Services, s: &SocketRef) {
    let req = match s.extensions.get::<Session>() {
        Some(Session(guard)) => {
            guard.done.store(true, Ordering::Release);
            guard.request.clone()
        }
        None => match (
            s.extensions.get::<InRooms>(),
            s.extensions.get::<Identity>(),
        ) {
            (Some(InRooms), Some(me)) => UnregisterSessionRequest {
                user_id: me.user_id,
                edge_id: svc.edge_id.clone(),
                socket_id: s.id.to_string(),
                watcher_ids: Vec::new(),
            },
            _ => return,
        },
    };
    if let Err(status) = svc.presence.clone().unregister_session(req).await {
        tracing::warn!(error = %status, "unregister session failed; it expires with the edge's heartbeat");
    }
}

/// In a socket's extensions once it asked presence-service to put it in a
/// room: its disconnect then unregisters it even without a session.
#[derive(Debug, Clone, Copy)]
struct InRooms;

/// Serialises one socket's room changes — its rooms on this edge and its
/// room presence in presence-service — so that two requests of one socket
/// (a join and a leave sent back to back) reach presence-service in the
/// order the socket's rooms changed. Only that socket ever waits on it.
#[derive(Debug, Clone, Default)]
pub struct RoomLock(Arc<tokio::sync::Mutex<()>>);

/// Gives a socket its [`RoomLock`]; contracts with room presence call it in
/// their `on_connect` (before any event of the socket can run).
pub fn attach_room_lock(s: &SocketRef) {
    s.extensions.insert(RoomLock::default());
}

/// Holds the socket's [`RoomLock`] while the caller changes its rooms and
/// tells presence-service.
pub async fn lock_rooms(s: &SocketRef) -> tokio::sync::OwnedMutexGuard<()> {
    let lock = s.extensions.get::<RoomLock>().unwrap_or_else(|| {
        let lock = RoomLock::default();
        s.extensions.insert(lock.clone());
        lock
    });
    lock.0.lock_owned().await
}

/// Puts a socket in a conversation's room on this edge and tells
/// presence-service ([`enter_room`]), under the socket's [`RoomLock`].
pub async fn join_conversation(
    svc: &Services,
    s: &SocketRef,
    me: &Identity,
    conversation_id: &str,
    member_ids: Vec<String>,
    role: &str,
) -> Option<SetRoomPresenceResponse> {
    let _rooms = lock_rooms(s).await;
    s.join(conversation_room(conversation_id));
    enter_room(svc, s, me, conversation_id, member_ids, role).await
}

/// Takes a socket out of a conversation's room on this edge and, if it was
/// in it, tells presence-service ([`leave_room`]), under the socket's
/// [`RoomLock`]. Returns whether it was in the room.
pub async fn leave_conversation(
    svc: &Services,
    s: &SocketRef,
    me: &Identity,
    conversation_id: &str,
) -> bool {
    let _rooms = lock_rooms(s).await;
    let room = conversation_room(conversation_id);
    let was_in = s.rooms().iter().any(|r| *r == room);
    if was_in {
        s.leave(room);
        leave_room(svc, s, me, conversation_id).await;
    }
    was_in
}

/// Tells presence-service that a socket entered a conversation's room (the
/// caller already joined it on this edge): the conversation's members hear
/// it when it is the user's first socket there. `None` when
/// presence-service could not be reached — logged, and the join stands,
/// unannounced.
pub async fn enter_room(
    svc: &Services,
    s: &SocketRef,
    me: &Identity,
    conversation_id: &str,
    member_ids: Vec<String>,
    role: &str,
) -> Option<SetRoomPresenceResponse> {
    s.extensions.insert(InRooms);
    let answer = set_room_presence(svc, s, me, conversation_id, true, member_ids, role).await;
    // A socket that disconnected meanwhile may have been unregistered
    // before this join reached presence-service: take it out again.
    if answer.is_some() && !s.connected() {
        leave_room(svc, s, me, conversation_id).await;
    }
    answer
}

/// Tells presence-service that a socket left a conversation's room: its
/// members hear it when it was the user's last socket there.
pub async fn leave_room(svc: &Services, s: &SocketRef, me: &Identity, conversation_id: &str) {
    set_room_presence(svc, s, me, conversation_id, false, Vec::new(), "").await;
}

async fn set_room_presence(
    svc: &Services,
    s: &SocketRef,
    me: &Identity,
    conversation_id: &str,
    joined: bool,
    member_ids: Vec<String>,
    role: &str,
) -> Option<SetRoomPresenceResponse> {
    let req = SetRoomPresenceRequest {
        actor: Some(me.actor()),
        conversation_id: conversation_id.to_string(),
        joined,
        member_ids,
        socket_id: s.id.to_string(),
        edge_id: svc.edge_id.clone(),
        role: role.to_string(),
    };
    match svc.presence.clone().set_room_presence(req).await {
        Ok(r) => Some(r.into_inner()),
        Err(status) => {
            tracing::warn!(error = %status, conversation_id, joined, "room presence unavailable; not announced");
            None
        }
    }
}

/// Heartbeats this edge's sessions every `every` until aborted.
pub fn spawn_heartbeat(svc: Services, every: Duration) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        loop {
            tick.tick().await;
            let req = HeartbeatRequest {
                edge_id: svc.edge_id.clone(),
            };
            if let Err(status) = svc.presence.clone().heartbeat(req).await {
                tracing::debug!(error = %status, "heartbeat failed");
            }
        }
    })
}

/// What became of a typing request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Typing {
    /// presence-service has it and tells the other members.
    Relayed,
    /// Over the per-user rate: dropped without an error.
    Throttled,
}

/// Starts or stops `me` typing in a conversation: only members may, and
/// starts are throttled per user.
pub async fn set_typing(
    svc: &Services,
    me: &Identity,
    conversation_id: &str,
    typing: bool,
) -> Result<Typing, ServiceError> {
    if typing && svc.typing.0.check_key(&me.user_id).is_err() {
        return Ok(Typing::Throttled);
    }
    let membership = svc
        .chat
        .clone()
        .check_membership(CheckMembershipRequest {
            conversation_id: conversation_id.to_string(),
            user_id: me.user_id.clone(),
        })
        .await
        .map_err(|s| ServiceError::from_status(&s))?
        .into_inner();
    if !membership.is_member {
        return Err(ServiceError::new(
            ErrorCode::NotAMember,
            format!("you are not a member of conversation {conversation_id}"),
        ));
    }
    let member_ids = membership
        .conversation
        .map(|c| c.members.into_iter().map(|m| m.user_id).collect())
        .unwrap_or_default();
    let req = SetTypingRequest {
        actor: Some(me.actor()),
        conversation_id: conversation_id.to_string(),
        typing,
        member_ids,
    };
    svc.presence
        .clone()
        .set_typing(req)
        .await
        .map_err(|s| ServiceError::from_status(&s))?;
    Ok(Typing::Relayed)
}
