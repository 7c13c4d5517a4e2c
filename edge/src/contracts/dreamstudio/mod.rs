//! `dreamstudio` — seed 004 (a studio app's chat rooms: colon-named events,
//! numeric ids, `auth: {token, userId}`).
//!
//! | seed event | direction | confab |
//! |---|---|---|
//! | handshake `auth: {token, userId}` | c→s | the token is verified as everywhere; `userId`, when sent, must be the token's subject, else `connect_error` `Authentication error: userId does not match the token` |
//! | `join_room {roomId}` | c→s | `CheckMembership`; a member's socket leaves its other conversation rooms (`SetRoomPresence` left for each), joins the room (`SetRoomPresence` joined) and gets `member:joined` itself |
//! | `leave_room {roomId}` | c→s | leaves the room (`SetRoomPresence` left) |
//! | `member:joined {userId, roomId, timestamp}` | s→c | `PresenceEvent.room_presence_changed` (joined): the room on every edge except the user's sockets, when the user's first socket (on any edge) joins; and the joining socket itself on every join |
//! | `member:left {userId, roomId, timestamp}` | s→c | `room_presence_changed` (left, not `disconnected`): the room on every edge except the user's sockets, when the user's last socket leaves it (`leave_room`, or `join_room` of another room) |
//! | `message:send {roomId, content, type = "TEXT", fileUrl?}` | c→s | `SendMessage` (`content`→`text`, `type`→`kind`, `fileUrl`→one attachment) |
//! | `message:new {id, roomId, senderId, content, type, fileUrl, createdAt, sender: {id, name}}` | s→c | `ChatEvent.message_created`, to the room, the sender included (also for messages posted over REST or from another contract) |
//! | `message:edit {messageId, content, roomId?}` | c→s | `EditMessage` (`message:edited` is accepted as an alias, as the seed's heading has the client emit it) |
//! | `message:edited {messageId, roomId, content, updatedAt}` | s→c | `ChatEvent.message_edited`, to the room |
//! | `message:delete {messageId, roomId?}` | c→s | `DeleteMessage` |
//! | `message:deleted {messageId, roomId}` | s→c | `ChatEvent.message_deleted` (and `message_recalled`), to the room |
//! | `user:typing {roomId, userId?}` | c→s | `session::typing::set_typing(roomId, true)` (members only, throttled per user) |
//! | `user:stop_typing {roomId, userId?}` | c→s | `session::typing::set_typing(roomId, false)` |
//! | `user:typing {userId, roomId, timestamp}` | s→c | `PresenceEvent.typing_changed` (start), to the room except every socket of the typist |
//! | `user:stop_typing {userId, roomId}` | s→c | `typing_changed` (stop, or the start expired), to the room except the typist |
//! | `user:online {userId, socketId, timestamp}` | s→c | `PresenceEvent.status_changed` (a user's first socket): every socket of the users who share a room with them |
//! | `user:offline {userId, timestamp}` | s→c | `status_changed` (the user's last socket closed; `timestamp` is their last seen): the same users |
//! | `connect_error` `TOO_MANY_CONNECTIONS` | s→c | a user's socket over presence-service's per-user limit |
//! | `error` (a string) | s→c | every refused request; see below |
//! | `refresh_token {token}` or the token (confab's) | c→s | once the socket's token expired every request gets `error` (`Authentication error`, `{code: 'TOKEN_EXPIRED', message}`); a fresh token for the same user makes them work again on the same socket (ack `{success: true, data: {expiresAt}}`); another user's is `USER_MISMATCH` and the socket is disconnected |
//!
//! Errors are the seed's strings, sent as the first argument of `error`, so
//! `socket.on("error", (msg) => …)` gets exactly them. A second argument,
//! `{code, message}`, carries confab's stable code and the reason (a
//! frontend written against the seed never looks at it):
//!
//! | stable code | `error` string |
//! |---|---|
//! | `NOT_A_MEMBER` | `Not a member of this room` |
//! | `MESSAGE_NOT_FOUND`, `MESSAGE_GONE` | `Message not found` |
//! | `NOT_AUTHOR` | `Not authorized to edit this message` / `Not authorized to delete this message` |
//! | `CONVERSATION_NOT_FOUND` | `Room not found` |
//! | `EMPTY_MESSAGE` | `Message content is required` |
//! | `MESSAGE_TOO_LONG` | `Message is too long` |
//! | `INVALID_ARGUMENT` (a malformed payload or id) | `Invalid request: <reason>` |
//! | `PERMISSION_DENIED` (typing as someone else) | `Not authorized` |
//! | `LIMIT_EXCEEDED` (over chat-service's message rate limit: 10 a second per user over all sockets, contracts and edges; nothing is stored or sent) | `Too many messages, try again later`, with `retryAfter` (seconds, rounded up, as v3's `rate_limited`) in the second argument and in a passed ack |
//! | `UNAVAILABLE` | `Service unavailable` |
//! | anything else | the service's message |
//!
//! Choices where the seed is vague:
//! - Ids on the wire are JSON numbers (`wire::numeric_id`: confab's ids, and
//!   user ids when the token's subject is numeric); numbers and strings are
//!   both accepted from clients.
//! - `auth.userId` is not trusted, only compared: a mismatch is refused. When
//!   it is absent the token alone decides (the seed's own server refuses
//!   that; being lenient lets a token from a header or cookie work). Token
//!   failures are `connect_error` `AUTHENTICATION_REQUIRED`, `INVALID_TOKEN`
//!   or `TOKEN_EXPIRED` as in every contract.
//! - `join_room` checks membership first (the seed's server does not); a
//!   refused join changes nothing, so the socket stays in its current room.
//!   Switching rooms leaves only the socket's *conversation* rooms (never its
//!   user room), and tells each old room `member:left` (when it was the
//!   user's last socket there) so member lists there stay right.
//! - Room presence is presence-service's (`SetRoomPresence`), over every
//!   edge and contract: the room hears `member:joined` when the user's
//!   first socket joins and `member:left` when their last one leaves, so a
//!   user with sockets on two edges (or two tabs) is announced once, and
//!   the user's own sockets hear neither. The seed's server emits
//!   `member:joined` to the room, the joiner included: the joining socket
//!   gets its own `member:joined` on every join (rejoining included; same
//!   timestamp as the room's), so a frontend that waits for it still does.
//! - `leave_room` announces `member:left` only when the socket was in that
//!   room, so nobody can announce leaving a room they never joined.
//! - A socket that disconnects leaves its rooms without `member:left`, as
//!   the seed's server does (its `disconnect` only broadcasts
//!   `user:offline`): its room presences end with its session
//!   (`disconnected`), which dreamstudio does not render — but the user's
//!   next join is announced again. When presence-service is unreachable,
//!   joining works and is announced to the joiner only.
//! - Sending, editing and deleting need membership (chat-service checks it),
//!   not having joined the room; receiving the room's events needs the join.
//!   The `roomId` of `message:edit`/`message:delete` is optional and not
//!   trusted: the message's own conversation is the room.
//! - `type` is stored lower-case (`TEXT` → `text`, confab's kind) and
//!   rendered upper-case, so messages from other contracts read `TEXT`,
//!   `FILE`, …; `fileUrl` is the first attachment's URL or `null`.
//! - Deletion is confab's soft delete (the seed destroys the row); a deleted
//!   message is "not found" for later edits and deletes. A message recalled
//!   from another contract is rendered as `message:deleted`.
//! - The seed's events have no acks; a client that passes one anyway gets
//!   `{success: true, data}` or `{success: false, error, code}` (a confab
//!   addition, handy to know a join has happened).
//! - Presence: the seed broadcasts `user:online`/`user:offline` to the whole
//!   server on every connect and disconnect; confab tells only the users who
//!   share a conversation with the user (presence-service's audience), on
//!   every contract, and only on transitions: online from the user's first
//!   socket (on any contract), offline when the last one closes — a second
//!   tab, or closing one of two, changes nothing. `socketId` is the socket
//!   that brought the user online (possibly on another contract);
//!   `timestamp` is when (ISO 8601), and for `user:offline` the user's last
//!   seen.
//! - Typing: the seed relays without any check; confab needs membership
//!   (`Not a member of this room` / `NOT_A_MEMBER`, nothing relayed), so the
//!   typist need not have joined the room but the readers must have (as for
//!   messages). `userId` in the payload is optional and must be the token's
//!   subject when sent. Over 30 starts a minute per user are dropped
//!   silently (the seed's own suggestion); stops always pass. A start that no
//!   stop follows ends by itself after presence-service's typing timeout,
//!   seen as `user:stop_typing`. The typist's own sockets never get either
//!   event, whatever room they are in.
//!
//! The room calls (`call:initiated`, `call:answered`, `call:ended`, and
//! signaling events beyond the seed) are in [`calls`].

mod calls;
mod render;

use render::*;

use confab_proto::v1::presence_event::Kind as PresenceKind;
use confab_proto::v1::{
    Attachment, ChatEvent, ChatMessage, DeleteMessageRequest, EditMessageRequest, PresenceEvent,
    RoomPresenceChange, SendMessageRequest, chat_event::Kind,
};
use confab_proto::{ErrorCode, ServiceError};
use serde::Deserialize;
use serde_json::{Value, json};
use socketioxide::extract::{SocketRef, State};

use crate::auth::{AuthError, Identity};
use crate::contract::answer::{Answer, Answers, Args, Asked};
use crate::contract::me::Me;
use crate::contract::payload::Payload;
use crate::contract::reply::Reply;
use crate::contract::{
    Calls, CatchUp, Contract, Emit, TokenRefresh, plain_refusal, refreshed_with_data,
};
use crate::rooms::{conversation_room, user_room};
use crate::session::rooms;
use crate::session::typing::{self, Typing};
use crate::state::EdgeState;
use crate::wire::{WireId, iso, numeric_id};

pub const CONTRACT: Contract = Contract {
    name: "dreamstudio",
    handshake,
    auth_error: None,
    refusal: plain_refusal,
    token: TokenRefresh {
        event: "refresh_token",
        refuse: token_refused,
        refreshed: refreshed_with_data,
    },
    answers: Answers {
        ok: |_, data| json!({ "success": true, "data": data }),
        refused,
    },
    on_connect,
    greet: None,
    chat_event,
    presence_event,
    calls: Some(Calls {
        on_connect: calls::on_connect,
        event: calls::call_event,
    }),
    notifications: None,
    heartbeat: None,
    offline: None,
    catch_up: CatchUp::OnJoin,
};

/// `error` with the seed's `Authentication error` and `{code, message}`;
/// a passed ack gets `{success: false, error, code}`.
fn token_refused(_: &Asked<'_>, e: AuthError) -> Answer {
    let detail = json!({ "code": e.to_string(), "message": e.describe() });
    Answer {
        emit: vec![("error", Args::Two(json!("Authentication error"), detail))],
        ack: Some(
            json!({ "success": false, "error": "Authentication error", "code": e.to_string() }),
        ),
    }
}

/// `auth.userId`, when present, must name the token's subject.
fn handshake(auth: Option<&Value>, me: &Identity) -> Result<(), String> {
    let claimed = match auth.and_then(|a| a.get("userId")) {
        None | Some(Value::Null) => return Ok(()),
        Some(Value::String(s)) if s.trim().is_empty() => return Ok(()),
        Some(Value::String(s)) => s.trim().to_string(),
        Some(Value::Number(n)) => n.to_string(),
        Some(_) => return Err("Authentication error: userId must be a number or a string".into()),
    };
    if claimed == me.user_id {
        Ok(())
    } else {
        Err("Authentication error: userId does not match the token".into())
    }
}

fn on_connect(s: &SocketRef) {
    s.on("join_room", join_room);
    s.on("leave_room", leave_room);
    s.on("message:send", send_message);
    s.on("message:edit", edit_message);
    s.on("message:edited", edit_message);
    s.on("message:delete", delete_message);
    s.on("user:typing", start_typing);
    s.on("user:stop_typing", stop_typing);
}

#[derive(Deserialize)]
struct RoomRef {
    #[serde(rename = "roomId")]
    room_id: WireId,
}

#[derive(Deserialize)]
struct TypingPayload {
    #[serde(rename = "roomId")]
    room_id: WireId,
    #[serde(default, rename = "userId")]
    user_id: Option<WireId>,
}

#[derive(Deserialize)]
struct SendMessage {
    #[serde(rename = "roomId")]
    room_id: WireId,
    #[serde(default)]
    content: Option<String>,
    #[serde(default, rename = "type")]
    kind: Option<String>,
    #[serde(default, rename = "fileUrl")]
    file_url: Option<String>,
}

#[derive(Deserialize)]
struct EditMessage {
    #[serde(rename = "messageId")]
    message_id: WireId,
    content: String,
}

#[derive(Deserialize)]
struct MessageRef {
    #[serde(rename = "messageId")]
    message_id: WireId,
}

/// A refused request: the seed's `error` string and confab's stable code
/// (and, over a rate limit, the seconds until the user may try again).
struct Refusal {
    text: String,
    code: String,
    message: String,
    retry_after: Option<i64>,
}

/// [`refused`] for an error already read from its status.
fn refused_with(e: ServiceError, not_author: &str) -> Refusal {
    let text = match e.code {
        ErrorCode::NotAMember => "Not a member of this room".to_string(),
        ErrorCode::MessageNotFound | ErrorCode::MessageGone => "Message not found".to_string(),
        ErrorCode::NotAuthor => not_author.to_string(),
        ErrorCode::ConversationNotFound => "Room not found".to_string(),
        ErrorCode::EmptyMessage => "Message content is required".to_string(),
        ErrorCode::MessageTooLong => "Message is too long".to_string(),
        ErrorCode::InvalidArgument => format!("Invalid request: {}", e.message),
        ErrorCode::Unavailable => "Service unavailable".to_string(),
        ErrorCode::PermissionDenied => "Not authorized".to_string(),
        ErrorCode::LimitExceeded => "Too many messages, try again later".to_string(),
        _ => e.message.clone(),
    };
    Refusal {
        text,
        code: e.code.as_str().to_string(),
        retry_after: crate::contract::retry_after_secs(&e),
        message: e.message,
    }
}

/// A refusal: the `error` event (the seed's string, then `{code,
/// message}`); a passed ack gets `{success: false, error, code}`. Over a
/// rate limit both carry `retryAfter` (seconds).
fn refused(asked: &Asked<'_>, e: &ServiceError) -> Answer {
    let not_author = match asked.event {
        "message:edit" | "message:edited" => "Not authorized to edit this message",
        "message:delete" => "Not authorized to delete this message",
        _ => "Not authorized",
    };
    let mut r = refused_with(e.clone(), not_author);
    if asked.event.starts_with("call:") {
        let (text, code) = calls::refusal_text(e);
        r.text = text;
        r.code = code.to_string();
        if e.code == ErrorCode::LimitExceeded {
            r.retry_after = Some(crate::contract::retry_secs(e));
        }
    }
    let mut detail = json!({ "code": r.code, "message": r.message });
    let mut ack = json!({ "success": false, "error": r.text, "code": r.code });
    if let Some(secs) = r.retry_after {
        detail["retryAfter"] = json!(secs);
        ack["retryAfter"] = json!(secs);
    }
    Answer {
        emit: vec![("error", Args::Two(json!(r.text), detail))],
        ack: Some(ack),
    }
}

/// The payload of `member:joined` and `member:left`.
fn member_payload(user_id: &str, room_id: &str, at_ms: i64) -> Value {
    json!({
        "userId": numeric_id(user_id),
        "roomId": numeric_id(room_id),
        "timestamp": iso(at_ms),
    })
}

async fn join_room(
    s: SocketRef,
    State(edge): State<EdgeState>,
    Me(me): Me,
    Payload(p): Payload<RoomRef>,
    reply: Reply,
) {
    let room_id = p.room_id.0;
    // One room at a time: joining leaves the others.
    let joined = match rooms::switch(&edge, &s, &me, &room_id).await {
        Ok((joined, _left)) => joined,
        Err(e) => return reply.fail(e),
    };
    let id = joined.member.id();
    // The room hears presence-service's event (a first join); the joining
    // socket hears its own join every time, stamped alike.
    let at = joined
        .presence
        .as_ref()
        .map_or_else(|| chrono::Utc::now().timestamp_millis(), |e| e.at_ms);
    let _ = s.emit("member:joined", &member_payload(&me.user_id, id, at));
    reply.ok(json!({ "roomId": numeric_id(id) }));
}

async fn leave_room(
    s: SocketRef,
    State(edge): State<EdgeState>,
    Me(me): Me,
    Payload(p): Payload<RoomRef>,
    reply: Reply,
) {
    let room_id = p.room_id.0;
    rooms::leave(&edge, &s, &me, &room_id).await;
    let id = confab_proto::ids::canonical(&room_id);
    reply.ok(json!({ "roomId": numeric_id(&id) }));
}

async fn send_message(
    State(edge): State<EdgeState>,
    Me(me): Me,
    Payload(p): Payload<SendMessage>,
    reply: Reply,
) {
    let file_url = p.file_url.filter(|u| !u.trim().is_empty());
    let req = SendMessageRequest {
        actor: Some(me.actor()),
        conversation_id: p.room_id.0,
        text: p.content.unwrap_or_default(),
        attachments: file_url
            .into_iter()
            .map(|url| Attachment {
                url,
                ..Default::default()
            })
            .collect(),
        kind: p.kind.unwrap_or_default().trim().to_lowercase(),
        ..Default::default()
    };
    // Success is seen as `message:new`, which chat-service's event brings to
    // the room, the sender included.
    let result = match edge.chat.clone().send_message(req).await {
        Ok(r) => Ok(r
            .into_inner()
            .message
            .as_ref()
            .map(new_message)
            .unwrap_or_default()),
        Err(status) => Err(ServiceError::from_status(&status)),
    };
    reply.send(result);
}

async fn edit_message(
    State(edge): State<EdgeState>,
    Me(me): Me,
    Payload(p): Payload<EditMessage>,
    reply: Reply,
) {
    let req = EditMessageRequest {
        actor: Some(me.actor()),
        message_id: p.message_id.0,
        text: p.content,
    };
    let result = match edge.chat.clone().edit_message(req).await {
        Ok(r) => Ok(message_edited(r.get_ref())),
        Err(status) => Err(ServiceError::from_status(&status)),
    };
    reply.send(result);
}

async fn delete_message(
    State(edge): State<EdgeState>,
    Me(me): Me,
    Payload(p): Payload<MessageRef>,
    reply: Reply,
) {
    let req = DeleteMessageRequest {
        actor: Some(me.actor()),
        message_id: p.message_id.0,
    };
    let result = match edge.chat.clone().delete_message(req).await {
        Ok(r) => Ok(message_deleted(r.get_ref())),
        Err(status) => Err(ServiceError::from_status(&status)),
    };
    reply.send(result);
}

async fn start_typing(edge: State<EdgeState>, me: Me, p: Payload<TypingPayload>, reply: Reply) {
    typing(edge, me, p, reply, true).await;
}

async fn stop_typing(edge: State<EdgeState>, me: Me, p: Payload<TypingPayload>, reply: Reply) {
    typing(edge, me, p, reply, false).await;
}

/// `user:typing` / `user:stop_typing`: the room's other members see it as
/// the same event (rendered from presence-service's `typing_changed`); a
/// throttled start is dropped without an error.
async fn typing(
    State(edge): State<EdgeState>,
    Me(me): Me,
    Payload(p): Payload<TypingPayload>,
    reply: Reply,
    typing: bool,
) {
    if let Some(claimed) = p.user_id.filter(|c| c.0 != me.user_id) {
        let e = ServiceError::new(
            ErrorCode::PermissionDenied,
            format!("userId {} is not the authenticated user", claimed.0),
        );
        return reply.fail(e);
    }
    let room = confab_proto::ids::canonical(&p.room_id.0);
    let result = typing::set_typing(&edge, &me, &room, typing)
        .await
        .map(|outcome| {
            json!({
                "roomId": numeric_id(&room),
                "typing": typing,
                "relayed": outcome == Typing::Relayed,
            })
        });
    reply.send(result);
}

#[cfg(test)]
mod tests;
