//! `raven` — seed 002 (erion-raven's WebSocket events, Socket.IO 4).
//!
//! | seed event | direction | confab |
//! |---|---|---|
//! | `join_conversation {conversation_id}` | c→s | `CheckMembership`; members join the conversation room, others get `error` `JOIN_FAILED` |
//! | `leave_conversation {conversation_id}` | c→s | leaves the room; a missing id gets `error` `LEAVE_FAILED` |
//! | `send_message {conversation_id, text?, url?, fileName?}` | c→s | `SendMessage`; failures get `error` `SEND_MESSAGE_FAILED`; over chat-service's message rate limit (10 a second per user over all sockets, contracts and edges) `details` starts `LIMIT_EXCEEDED:` and the error carries `retryAfter` (seconds, rounded up, as v3's `rate_limited`); nothing is stored or sent |
//! | `new_message {id, conversationId, senderId, senderName, text?, url?, fileName?, createdAt}` | s→c | every socket in the conversation room, the sender's included |
//! | `error {code, message, details?, retryAfter?}` | s→c | every refused request; `retryAfter` (a confab addition) only over a rate limit |
//! | `connect_error` | s→c | `AUTHENTICATION_REQUIRED`, `INVALID_TOKEN`, `TOKEN_EXPIRED`; `TOO_MANY_CONNECTIONS` for a user's socket over presence-service's per-user limit (the 11th) |
//! | `connect` / `disconnect` | — | the seed's "register user online" / "unregistered from online users": the socket's presence session starts and ends |
//! | `refresh_token {token}` or the token (confab's) | c→s | once the socket's token expired every request gets `error {code: 'TOKEN_EXPIRED', …}`; a fresh token for the same user makes them work again on the same socket (ack `{success: true, data: {expiresAt}}`); another user's is `USER_MISMATCH` and the socket is disconnected |
//!
//! Beyond the seed: what erion-raven's published client sends and listens
//! for (its real frontend, `apps/web/src/store/useSocketStore.ts` and
//! `apps/web/src/hooks/useConversationNavigation.tsx`, with the payload types
//! of `packages/types/src/socket.ts`; its own server sends these from
//! `apps/api/src/services/websocket.service.ts` and `presence.service.ts`).
//! A team swapping its server for confab keeps that frontend working:
//!
//! | event | direction | confab |
//! |---|---|---|
//! | `joined_conversation {conversation_id, user_id, username}` | s→c | to the joining socket once its join succeeded |
//! | `user_joined {conversation_id, user_id, username}` | s→c | `PresenceEvent.room_presence_changed` (joined): to the conversation room on every edge when a user's first socket (on any edge) joins it (never to the user's own sockets) |
//! | `left_conversation {conversation_id, user_id, username}` | s→c | to the leaving socket after every readable `leave_conversation` (also when it was not in the room, as the app's server does): the app waits for it before joining the next conversation |
//! | `user_left {conversation_id, user_id, username}` | s→c | `room_presence_changed` (left, not `disconnected`): the same sockets, when a user's last socket (on any edge) leaves it with `leave_conversation` |
//! | `friend_status_changed {user_id, status: 'online' \| 'offline', timestamp}` | s→c | `PresenceEvent.status_changed`: to every socket of the users who share a conversation with the user (the app's server tells friends and conversation partners); `timestamp` in ms as the app's type says |
//! | `heartbeat {timestamp}` | c→s | accepted and ignored (presence is kept by the socket itself); never an error, never a disconnect |
//!
//! `conversation_id` echoes the id the client sent (as a string), so the
//! app's `detail.conversationId !== prevId` check matches; `username` is
//! the token's `username` claim, else its name, else the id. The app also
//! sends `send_message` with `text`, `url` and `fileName` set to `null`
//! when absent; `null` reads as absent.
//!
//! Choices where the seed is vague:
//! - `details` carries confab's stable code first, then the reason, e.g.
//!   `NOT_A_MEMBER: you are not a member of conversation 7`, so a frontend
//!   can branch on it while `code` stays the seed's.
//! - Every send failure is `SEND_MESSAGE_FAILED` (as the seed's server
//!   response says), a non-member's included; `details` says why.
//! - Sending does not require having joined the room (the seed's server
//!   checks membership, not room presence); receiving `new_message` does.
//! - A file message stores `url`/`fileName` as one attachment and renders it
//!   back the same way.
//! - Ids are strings on the wire; numbers are accepted too.
//! - The seed's events have no acks; when a client passes one anyway it gets
//!   `{success: true, data}` or `{success: false, error}` (a confab addition,
//!   invisible to the seed's frontends, handy to know a join has happened).
//! - **Presence.** The seed's server registers the user online on connect
//!   and unregisters them on disconnect; its document names no presence
//!   event, but its real frontend listens for `friend_status_changed`
//!   (above), so raven renders `PresenceEvent.status_changed` as that and
//!   nothing else (no typing: the seed has none). Each raven socket is a
//!   presence session from handshake to disconnect, so a raven user's first
//!   socket makes them online and their last one's end makes them offline
//!   for their peers on every contract (e.g. mern's `user_online` /
//!   `user_offline`, raven's `friend_status_changed`), sent to the users who
//!   share a conversation with them; a second tab or closing one of two says
//!   nothing, and a user never hears about themselves.
//! - `user_joined`/`user_left` are room presence, presence-service's
//!   (`SetRoomPresence`), like v3's `user_joined_chat`/`user_left`: it
//!   decides whether a socket is the user's first in the conversation or
//!   their last one out, over every edge and contract, so a user with
//!   sockets on two edges is announced once. A socket that disconnects
//!   leaves its rooms without `user_left`, as the app's server does: its
//!   room presences end with its session (`disconnected`), which raven does
//!   not render — but the user's next join is announced again. Room ids are
//!   the conversation's as chat-service writes them (`007` is room `7`);
//!   the payloads of the joining or leaving socket echo the id it sent.
//!   When presence-service is unreachable the join works, unannounced.
//! - The per-user socket limit is reported like the seed's other handshake
//!   refusals: `connect_error` with the stable code `TOO_MANY_CONNECTIONS`
//!   as its message (the seed's list has `CONNECTION_FAILED` for "connection
//!   setup failed"; the specific code tells a frontend that retrying will
//!   not help until another tab closes).

use confab_proto::ServiceError;
use confab_proto::v1::{
    Attachment, ChatEvent, ChatMessage, PresenceEvent, RoomPresenceChange, SendMessageRequest,
    chat_event::Kind, presence_event,
};
use serde::Deserialize;
use serde_json::{Value, json};
use socketioxide::extract::{SocketRef, State};

use crate::auth::{AuthError, Identity};
use crate::contract::answer::{Answer, Answers, Args, Asked};
use crate::contract::me::Me;
use crate::contract::payload::Payload;
use crate::contract::reply::Reply;
use crate::contract::{CatchUp, Contract, Emit, TokenRefresh, any_handshake, plain_refusal};
use crate::rooms::{conversation_room, user_room};
use crate::session::rooms;
use crate::state::EdgeState;
use crate::wire::{WireId, first_non_empty, iso};

pub const CONTRACT: Contract = Contract {
    name: "raven",
    handshake: any_handshake,
    auth_error: None,
    refusal: plain_refusal,
    token: TokenRefresh {
        event: "refresh_token",
        refuse: token_refused,
        refreshed: crate::contract::refreshed_with_data,
    },
    answers: Answers {
        ok: |_, data| json!({ "success": true, "data": data }),
        refused,
    },
    on_connect,
    greet: None,
    chat_event,
    presence_event,
    calls: None,
    notifications: None,
    heartbeat: None,
    offline: None,
    catch_up: CatchUp::OnJoin,
};

/// The seed's `error` with its JWT codes (`TOKEN_EXPIRED`, `INVALID_TOKEN`,
/// `AUTHENTICATION_REQUIRED`; `USER_MISMATCH` for another user's token).
fn token_refused(_: &Asked<'_>, e: AuthError) -> Answer {
    let message = match e {
        AuthError::Expired => "Token has expired",
        AuthError::Required => "No token provided",
        AuthError::OtherUser => "Token is for another user",
        _ => "Token is invalid",
    };
    let details = format!("{e}: {}; send refresh_token {{token}}", e.describe());
    let error = error_payload(&e.to_string(), message, details);
    Answer {
        ack: Some(json!({ "success": false, "error": error.clone() })),
        emit: vec![("error", Args::One(error))],
    }
}

/// A refusal: the seed's `error` event with the request's code and fixed
/// message, confab's stable code and reason in `details` (and `retryAfter`
/// over a rate limit); a passed ack gets `{success: false, error}` too.
fn refused(asked: &Asked<'_>, e: &ServiceError) -> Answer {
    let (code, message) = match asked.event {
        "join_conversation" => ("JOIN_FAILED", "Failed to join conversation"),
        "leave_conversation" => ("LEAVE_FAILED", "Failed to leave conversation"),
        _ => ("SEND_MESSAGE_FAILED", "Failed to send message"),
    };
    let mut error = error_payload(code, message, format!("{}: {}", e.code, e.message));
    if let Some(secs) = crate::contract::retry_after_secs(e) {
        error["retryAfter"] = json!(secs);
    }
    Answer {
        emit: vec![("error", Args::One(error.clone()))],
        ack: Some(json!({ "success": false, "error": error })),
    }
}

fn on_connect(s: &SocketRef) {
    s.on("join_conversation", join_conversation);
    s.on("leave_conversation", leave_conversation);
    s.on("send_message", send_message);
    // The app's presence ping: the socket itself keeps the session alive.
    s.on("heartbeat", || async {});
}

#[derive(Deserialize)]
struct ConversationRef {
    conversation_id: WireId,
}

#[derive(Deserialize)]
struct SendMessage {
    conversation_id: WireId,
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    url: Option<String>,
    #[serde(default, rename = "fileName")]
    file_name: Option<String>,
}

/// The seed's error payload: its `code`, a fixed message, and the reason.
fn error_payload(code: &str, message: &str, details: String) -> Value {
    json!({ "code": code, "message": message, "details": details })
}

async fn join_conversation(
    s: SocketRef,
    State(edge): State<EdgeState>,
    Me(me): Me,
    Payload(p): Payload<ConversationRef>,
    reply: Reply,
) {
    let WireId(id) = p.conversation_id;
    match rooms::join(&edge, &s, &me, &id).await {
        Ok(_) => {
            let _ = s.emit("joined_conversation", &room_change(&id, &me));
            reply.ok(json!({ "conversationId": id }));
        }
        Err(e) => reply.fail(e),
    }
}

async fn leave_conversation(
    s: SocketRef,
    State(edge): State<EdgeState>,
    Me(me): Me,
    Payload(p): Payload<ConversationRef>,
    reply: Reply,
) {
    let WireId(id) = p.conversation_id;
    rooms::leave(&edge, &s, &me, &id).await;
    let _ = s.emit("left_conversation", &room_change(&id, &me));
    reply.ok(json!({ "conversationId": id }));
}

async fn send_message(
    State(edge): State<EdgeState>,
    Me(me): Me,
    Payload(p): Payload<SendMessage>,
    reply: Reply,
) {
    let has_file = p.url.as_deref().is_some_and(|u| !u.trim().is_empty())
        || p.file_name.as_deref().is_some_and(|f| !f.trim().is_empty());
    let req = SendMessageRequest {
        actor: Some(me.actor()),
        conversation_id: p.conversation_id.0,
        text: p.text.unwrap_or_default(),
        attachments: if has_file {
            vec![Attachment {
                url: p.url.unwrap_or_default(),
                file_name: p.file_name.unwrap_or_default(),
                ..Default::default()
            }]
        } else {
            vec![]
        },
        kind: if has_file {
            "file".into()
        } else {
            String::new()
        },
        ..Default::default()
    };
    // Success is seen as `new_message`, which chat-service's event brings to
    // the room, the sender included.
    match edge.chat.clone().send_message(req).await {
        Ok(r) => {
            let m = r.into_inner().message;
            reply.ok(m.as_ref().map(new_message).unwrap_or_default());
        }
        Err(status) => reply.fail(ServiceError::from_status(&status)),
    }
}

/// The app's `joined_conversation` / `left_conversation` / `user_joined` /
/// `user_left` payload.
fn room_change(conversation_id: &str, me: &Identity) -> Value {
    json!({
        "conversation_id": conversation_id,
        "user_id": me.user_id,
        "username": me.login_name(),
    })
}

/// The seed's `new_message` payload.
pub fn new_message(m: &ChatMessage) -> Value {
    let mut v = json!({
        "id": m.id,
        "conversationId": m.conversation_id,
        "senderId": m.sender_id,
        "senderName": m.sender_name,
        "createdAt": iso(m.created_at_ms),
    });
    if !m.text.is_empty() {
        v["text"] = json!(m.text);
    }
    if let Some(a) = m.attachments.first() {
        if !a.url.is_empty() {
            v["url"] = json!(a.url);
        }
        if !a.file_name.is_empty() {
            v["fileName"] = json!(a.file_name);
        }
    }
    v
}

fn chat_event(ev: &ChatEvent) -> Vec<Emit> {
    match &ev.kind {
        Some(Kind::MessageCreated(m)) => vec![Emit::to(
            vec![conversation_room(&m.conversation_id)],
            "new_message",
            new_message(m),
        )],
        // The seed has no events for edits, deletions, reactions or receipts.
        _ => Vec::new(),
    }
}

/// `friend_status_changed`, to every socket of the users who share a
/// conversation with the one who changed (never to that user); room
/// presence as `user_joined` / `user_left`.
fn presence_event(ev: &PresenceEvent) -> Vec<Emit> {
    let c = match &ev.kind {
        Some(presence_event::Kind::StatusChanged(c)) => c,
        Some(presence_event::Kind::RoomPresenceChanged(c)) => return room_presence_changed(c),
        _ => return Vec::new(),
    };
    let rooms: Vec<String> = ev
        .audience
        .iter()
        .flat_map(|a| &a.user_ids)
        .filter(|u| **u != c.user_id)
        .map(|u| user_room(u))
        .collect();
    if rooms.is_empty() {
        return Vec::new();
    }
    // Online: when it happened. Offline: when the last socket closed.
    let at = match (c.online, c.last_seen_ms, c.at_ms) {
        (true, _, at) if at > 0 => at,
        (_, seen, _) if seen > 0 => seen,
        (_, _, at) => at,
    };
    vec![Emit {
        rooms,
        except: vec![user_room(&c.user_id)],
        event: "friend_status_changed",
        data: json!({
            "user_id": c.user_id,
            "status": if c.online { "online" } else { "offline" },
            "timestamp": at,
        }),
    }]
}

/// `user_joined` (the user's first socket joined the conversation) or
/// `user_left` (their last one left it), to the conversation room except
/// the user's own sockets. A last socket that disconnected is not told:
/// the app's server says nothing when a socket closes.
fn room_presence_changed(c: &RoomPresenceChange) -> Vec<Emit> {
    if !c.joined && c.disconnected {
        return Vec::new();
    }
    vec![Emit {
        rooms: vec![conversation_room(&c.conversation_id)],
        except: vec![user_room(&c.user_id)],
        event: if c.joined { "user_joined" } else { "user_left" },
        data: json!({
            "conversation_id": c.conversation_id,
            "user_id": c.user_id,
            "username": first_non_empty(&[&c.login_name, &c.user_name, &c.user_id]),
        }),
    }]
}

#[cfg(test)]
mod tests {
    use super::*;
    use confab_proto::v1::{Audience, StatusChange};

    #[test]
    fn room_presence_is_user_joined_and_user_left_but_not_a_disconnect() {
        let ev = |joined: bool, disconnected: bool| PresenceEvent {
            seq: 0,
            audience: Some(Audience {
                conversation_id: "7".into(),
                user_ids: vec!["u1".into(), "w1".into()],
                ..Default::default()
            }),
            kind: Some(presence_event::Kind::RoomPresenceChanged(
                RoomPresenceChange {
                    user_id: "u1".into(),
                    user_name: "Ada".into(),
                    login_name: String::new(),
                    conversation_id: "7".into(),
                    joined,
                    disconnected,
                    ..Default::default()
                },
            )),
        };
        let joined = presence_event(&ev(true, false));
        assert_eq!(joined.len(), 1);
        assert_eq!(joined[0].event, "user_joined");
        assert_eq!(joined[0].rooms, vec![conversation_room("7")]);
        assert_eq!(joined[0].except, vec![user_room("u1")]);
        // No login name: the display name, as `me.login_name()` would.
        assert_eq!(
            joined[0].data,
            json!({"conversation_id": "7", "user_id": "u1", "username": "Ada"})
        );
        let left = presence_event(&ev(false, false));
        assert_eq!(left[0].event, "user_left");
        assert_eq!(left[0].data, joined[0].data);
        assert!(presence_event(&ev(false, true)).is_empty());
    }

    #[test]
    fn status_changes_are_friend_status_changed_for_the_peers() {
        let ev = |online: bool, users: &[&str]| PresenceEvent {
            seq: 0,
            audience: Some(Audience {
                user_ids: users.iter().map(|u| u.to_string()).collect(),
                ..Default::default()
            }),
            kind: Some(presence_event::Kind::StatusChanged(StatusChange {
                user_id: "u1".into(),
                online,
                last_seen_ms: if online { 0 } else { 1_700_000_000_000 },
                at_ms: 1_700_000_000_123,
                ..Default::default()
            })),
        };
        let on = presence_event(&ev(true, &["u1", "w1"]));
        assert_eq!(on.len(), 1);
        assert_eq!(on[0].event, "friend_status_changed");
        assert_eq!(on[0].rooms, vec![user_room("w1")]);
        assert_eq!(on[0].except, vec![user_room("u1")]);
        assert_eq!(
            on[0].data,
            json!({"user_id": "u1", "status": "online", "timestamp": 1_700_000_000_123i64})
        );
        let off = presence_event(&ev(false, &["w1"]));
        assert_eq!(off[0].data["status"], "offline");
        assert_eq!(off[0].data["timestamp"], 1_700_000_000_000i64);
        assert!(presence_event(&ev(true, &["u1"])).is_empty());
    }
}
