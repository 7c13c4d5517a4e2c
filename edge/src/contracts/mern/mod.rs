//! `mern` — seed 001 (a MERN chat app's WebSocket events, Socket.IO 4).
//!
//! | seed event | direction | confab |
//! |---|---|---|
//! | `auth: {token}` | handshake | the JWT; a failure is the `error` event below, then a disconnect |
//! | `join_conversations ["id", ...]` | c→s | `CheckMembership` per id; the socket joins the rooms of those the user is a member of; each other id gets `error` |
//! | `send_message {conversationId, content, type?, fileUrl?, fileName?}` + ack | c→s | `SendMessage`; ack `{success: true, message}` or `{success: false, error, code}`; over chat-service's message rate limit (10 a second per user over all sockets, contracts and edges) `code` is `LIMIT_EXCEEDED` with `retryAfter` (seconds, rounded up, as v3's `rate_limited`) and nothing is stored or sent |
//! | `receive_message {message, conversationId}` | s→c | the conversation room, except the socket that sent it |
//! | `mark_read {conversationId, messageIds}` | c→s | `MarkRead` up to the highest of `messageIds` |
//! | `messages_read {conversationId, messageIds, readBy}` | s→c | the conversation room, the reader's sockets included |
//! | `edit_message {messageId, newContent}` + ack | c→s | `EditMessage`; ack `{success: true}` or `{success: false, message, code}` |
//! | `message_edited {messageId, newContent, editedAt, conversationId}` | s→c | the conversation room |
//! | `delete_message {messageId}` + ack | c→s | `DeleteMessage` (soft delete); ack as for `edit_message` |
//! | `message_deleted {messageId, conversationId}` | s→c | the conversation room |
//! | `typing {conversationId, isTyping}` (+ ack) | c→s | `SetTyping` after a membership check; starts throttled per user |
//! | `typing_status {userId, username, conversationId, isTyping}` | s→c | the conversation room, except every socket of the typist; an expired typing state is `isTyping: false` |
//! | `user_online {userId, username}` | s→c | the user rooms of those who share a conversation with the user, when their first socket connects |
//! | `user_offline {userId, username, lastSeen}` | s→c | the same users, when the user's last socket disconnects |
//! | `error {message, code, event?, retryAfter?}` | s→c | authentication failures (and the 11th socket of a user), and refused requests sent without an ack; `retryAfter` (seconds) only over a rate limit |
//! | `refresh_token {token}` or the token (confab's) | c→s | once the socket's token expired every request gets `{success: false, error, code: 'TOKEN_EXPIRED'}` in its ack, else `error {message: 'Authentication error: …', code}`; a fresh token for the same user makes them work again on the same socket (ack `{success: true, expiresAt}`); another user's is `USER_MISMATCH` and the socket is disconnected |
//!
//! A message renders as the seed's document: `{_id, conversationId, sender:
//! {_id, username, avatar}, content, type, status, fileUrl?, fileName?,
//! edited, editedAt?, deleted, createdAt, updatedAt}`. Every id is a string.
//!
//! Choices where the seed is vague or contradicts itself:
//! - **Authentication failures are the `error` event.** The seed's frontend
//!   logs out when `error` arrives with a `message` containing
//!   "Authentication"; its `connect_error` handler only shows "Failed to
//!   connect". So a socket with a missing, invalid or expired token connects,
//!   gets `error {message: "Authentication error: ...", code}` (`code` is
//!   `AUTHENTICATION_REQUIRED`, `INVALID_TOKEN` or `TOKEN_EXPIRED`) and is
//!   disconnected; `connect_error` is left to transport failures.
//! - **`receive_message` goes to the joined conversation rooms**, not to every
//!   member's user room: the frontend joins the rooms of its whole
//!   conversation list (and again when the list changes) and uses
//!   `receive_message` of any of them to update that list, as the seed's
//!   server does with `io.to('conversation:<id>')`.
//! - **The sending socket does not get its own `receive_message`.** The
//!   frontend appends the message from the `send_message` ack and appends
//!   every `receive_message` of the open conversation without looking at
//!   `_id`, so an echo would show the message twice ("When: another user
//!   sends a message"). The sender's other sockets (tabs, devices) do get it.
//!   A send names the socket as the request's `origin`; chat-service echoes
//!   it on the event, and rendering leaves that socket's room out. Messages
//!   from other contracts or REST reach the whole room.
//! - **`messages_read` reaches the reader's sockets too** (the seed's server
//!   emits to the room): the frontend marks messages read only when this
//!   event names them, so without it the reader's client would send the same
//!   `mark_read` again at every new message.
//! - `mark_read` marks the conversation read up to the highest id in
//!   `messageIds` (a read marker, not a set); `messages_read.messageIds`
//!   names the messages newly read by it, others' messages only, oldest
//!   first. Nothing newly read → no event.
//! - Request failures carry confab's stable code in `code` beside the seed's
//!   text field. `edit_message`/`delete_message` failures use the seed's
//!   `{success: false, message}`; `send_message` puts the reason in `error`
//!   because `message` is its success field. `join_conversations` and
//!   `mark_read` have no ack in the seed; a client may pass one anyway (a
//!   confab addition): `{success, joined, failed: [{conversationId, code,
//!   error}]}` and `{success, messageIds}`. A request sent without an ack
//!   reports a refusal as `error {message, code, event}` (plus
//!   `conversationId` for a refused join), which the frontend's `error`
//!   handler ignores unless the text says "Authentication" (it never does).
//! - `type` is stored as the message kind ("text" by default, "file" when
//!   only `fileUrl`/`fileName` are given); `fileUrl`/`fileName` are one
//!   attachment. Other contracts' kinds render as they are.
//! - `status` is always `"sent"`: per-viewer status comes from `messages_read`.
//! - A deleted message — and one another contract recalled, which mern
//!   shows as `message_deleted` — renders `content` as "This message was
//!   deleted", as the seed's soft delete stores it.
//! - `sender.username` is the token's `username`, else its display name;
//!   `avatar` is `""` when the token has none.
//! - A socket stays in a conversation's room after its user is removed from
//!   it, until it reconnects (the room is per connection; the frontend sends
//!   `join_conversations` again when its list changes).
//!
//! Presence and typing:
//! - **`user_online {userId, username}` / `user_offline {userId, username,
//!   lastSeen}` go to the users who share a conversation with the one who
//!   came online or went offline** (every socket of theirs, joined rooms or
//!   not), not to the whole server as the seed's `Broadcast online status`
//!   may suggest: the frontend keeps a set of online user ids to decorate
//!   its conversation list, so only its peers matter, and strangers learn
//!   nothing. A user is online from their first socket (on any contract) to
//!   the end of their last one; a second tab coming or going says nothing.
//!   `lastSeen` is when the last socket ended (ISO 8601).
//! - **`typing_status` goes to the conversation room except every socket of
//!   the typist** (the seed's `socket.to(room)` skips the sending socket
//!   only; the typist's other tabs need no indicator of their own typing).
//!   `typing` is checked for membership: a non-member's typing is not
//!   relayed and is answered like other refusals (`error {message, code:
//!   NOT_A_MEMBER, event: "typing"}`, or `{success: false, error, code}` to
//!   an ack). Starts are throttled per user (30 a minute); the extra ones
//!   are dropped without an error (an ack says `{success: true, throttled:
//!   true}`). A typing state that gets no stop ends by itself after
//!   presence-service's typing TTL and is rendered `isTyping: false`, so an
//!   indicator never sticks when a tab closes mid-word.
//! - `username` in presence and typing events is the login name (the
//!   token's `username` claim, else its display name `name`, else the user
//!   id), the same name as `sender.username` of messages: the canonical
//!   presence events carry both names (`login_name`, `user_name`).
//! - **An 11th socket of one user** (presence-service's per-user limit) is
//!   refused like an authentication failure, on `error` then a disconnect,
//!   with `code: TOO_MANY_CONNECTIONS` — but its `message` says "Connection
//!   refused", not "Authentication", so the seed's frontend does not log the
//!   user out of the tabs that are working.

mod render;

use render::*;

use std::collections::HashSet;

use confab_proto::v1::{
    Attachment, ChatEvent, ChatMessage, DeleteMessageRequest, EditMessageRequest, MarkReadRequest,
    PresenceEvent, SendMessageRequest, chat_event::Kind, presence_event,
};
use confab_proto::{ServiceError, ids};
use futures::future::join_all;
use serde::Deserialize;
use serde_json::{Value, json};
use socketioxide::extract::{SocketRef, State};

use crate::auth::{AuthError, Identity};
use crate::contract::answer::{Answer, Answers, Args, Asked};
use crate::contract::me::Me;
use crate::contract::payload::Payload;
use crate::contract::reply::Reply;
use crate::contract::{
    CatchUp, Contract, Emit, TokenRefresh, any_handshake, plain_refusal, retry_after_secs,
};
use crate::rooms::{conversation_room, socket_room, user_room};
use crate::session::rooms;
use crate::session::typing::{self, Typing};
use crate::state::EdgeState;
use crate::wire::{WireId, first_non_empty, iso};

pub const CONTRACT: Contract = Contract {
    name: "mern",
    handshake: any_handshake,
    auth_error: Some(auth_error),
    refusal: plain_refusal,
    token: TokenRefresh {
        event: "refresh_token",
        refuse: token_refused,
        refreshed: token_refreshed,
    },
    answers: Answers {
        ok: |_, data| data,
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

/// `{success: false, error, code}` in the ack, else `error {message, code}`
/// whose message says "Authentication" (the seed's frontend then logs in
/// again).
fn token_refused(asked: &Asked<'_>, e: AuthError) -> Answer {
    let message = format!("Authentication error: {}", e.describe());
    if asked.wants_ack {
        Answer {
            emit: Vec::new(),
            ack: Some(json!({ "success": false, "error": message, "code": e.to_string() })),
        }
    } else {
        let error = json!({ "message": message, "code": e.to_string() });
        Answer {
            emit: vec![("error", Args::One(error))],
            ack: None,
        }
    }
}

/// A refresh that worked is acked `{success: true, expiresAt}`.
fn token_refreshed(me: &Identity) -> Answer {
    Answer {
        emit: Vec::new(),
        ack: Some(json!({ "success": true, "expiresAt": me.expires_at_ms.map(crate::wire::iso) })),
    }
}

/// What a deleted message's `content` reads, as the seed's soft delete.
const DELETED_TEXT: &str = "This message was deleted";

/// At most this many ids in one `join_conversations`.
const MAX_JOIN: usize = 1000;

/// The seed's frontend logs out on `error` whose message says "Authentication";
/// a user over the socket limit is not logged out (see the module doc).
fn auth_error(e: AuthError) -> (&'static str, Value) {
    let message = match e {
        AuthError::TooManyConnections => format!("Connection refused: {}", e.describe()),
        _ => format!("Authentication error: {}", e.describe()),
    };
    (
        "error",
        json!({ "message": message, "code": e.to_string() }),
    )
}

fn on_connect(s: &SocketRef) {
    s.on("join_conversations", join_conversations);
    s.on("send_message", send_message);
    s.on("mark_read", mark_read);
    s.on("edit_message", edit_message);
    s.on("delete_message", delete_message);
    s.on("typing", typing);
}

// ---- payloads ------------------------------------------------------------

#[derive(Deserialize)]
struct SendMessage {
    #[serde(rename = "conversationId")]
    conversation_id: WireId,
    content: Option<String>,
    #[serde(rename = "type")]
    kind: Option<String>,
    #[serde(rename = "fileUrl")]
    file_url: Option<String>,
    #[serde(rename = "fileName")]
    file_name: Option<String>,
}

#[derive(Deserialize)]
struct MarkRead {
    #[serde(rename = "conversationId")]
    conversation_id: WireId,
    #[serde(rename = "messageIds")]
    message_ids: Vec<WireId>,
}

#[derive(Deserialize)]
struct EditMessage {
    #[serde(rename = "messageId")]
    message_id: WireId,
    #[serde(rename = "newContent")]
    new_content: String,
}

#[derive(Deserialize)]
struct TypingPayload {
    #[serde(rename = "conversationId")]
    conversation_id: WireId,
    #[serde(rename = "isTyping")]
    is_typing: bool,
}

#[derive(Deserialize)]
struct MessageRef {
    #[serde(rename = "messageId")]
    message_id: WireId,
}

// ---- answering -----------------------------------------------------------

/// The seed's ack, `{success: false, <error | message>: reason, code}`
/// (`message` for edits and deletes, as the seed's frontend reads them),
/// when the client passed one; else `error {message, code, event}`. Either
/// carries `retryAfter` (seconds) over a rate limit.
fn refused(asked: &Asked<'_>, e: &ServiceError) -> Answer {
    let unreadable;
    let e = if asked.unreadable {
        unreadable = ServiceError::invalid(format!("invalid payload: {}", e.message));
        &unreadable
    } else {
        e
    };
    if asked.wants_ack {
        let field = match asked.event {
            "edit_message" | "delete_message" => "message",
            _ => "error",
        };
        let mut ack = json!({ "success": false, "code": e.code.as_str() });
        ack[field] = json!(e.message);
        if let Some(secs) = retry_after_secs(e) {
            ack["retryAfter"] = json!(secs);
        }
        Answer {
            emit: Vec::new(),
            ack: Some(ack),
        }
    } else {
        let mut error =
            json!({ "message": e.message, "code": e.code.as_str(), "event": asked.event });
        if let Some(secs) = retry_after_secs(e) {
            error["retryAfter"] = json!(secs);
        }
        Answer {
            emit: vec![("error", Args::One(error))],
            ack: None,
        }
    }
}

/// One id of a list that cannot be read.
fn unreadable_id(e: impl std::fmt::Display) -> ServiceError {
    ServiceError::invalid(format!("invalid payload: {e}"))
}

// ---- handlers ------------------------------------------------------------

/// One id of a `join_conversations` list: a member's, or refused and why.
type Checked = Result<(Value, rooms::Member), (Value, ServiceError)>;

async fn check_one(edge: &EdgeState, me: &Identity, raw: Value) -> Checked {
    let WireId(id) = WireId::deserialize(&raw).map_err(|e| (raw.clone(), unreadable_id(e)))?;
    match rooms::check(edge, me, &id).await {
        Ok(member) => Ok((json!(id), member)),
        Err(e) => Err((json!(id), e)),
    }
}

async fn join_conversations(
    State(edge): State<EdgeState>,
    Me(me): Me,
    Payload(p): Payload<Vec<Value>>,
    reply: Reply,
) {
    if p.len() > MAX_JOIN {
        let e = ServiceError::invalid(format!("at most {MAX_JOIN} conversation ids at once"));
        return reply.fail(e);
    }
    let mut ids = p;
    let mut seen = HashSet::new();
    ids.retain(|raw| seen.insert(raw.to_string()));
    let checked = join_all(ids.into_iter().map(|raw| check_one(&edge, &me, raw))).await;
    let (mut joined, mut members, mut failed) = (Vec::new(), Vec::new(), Vec::new());
    for c in checked {
        match c {
            Ok((id, member)) => {
                joined.push(id);
                members.push(member);
            }
            Err(refused) => failed.push(refused),
        }
    }
    // Joins happen before any answer, so an answer means the rooms are joined.
    rooms::join_all_checked(&edge, reply.socket(), &me, members).await;
    if reply.wants_ack() {
        let failed: Vec<Value> = failed
            .iter()
            .map(|(id, e)| json!({ "conversationId": id, "code": e.code.as_str(), "error": e.message }))
            .collect();
        reply.ok(json!({ "success": failed.is_empty(), "joined": joined, "failed": failed }));
    } else {
        for (id, e) in failed {
            let mut refused = reply.refusal(&e);
            for (_, args) in &mut refused.emit {
                if let Args::One(payload) = args {
                    payload["conversationId"] = id.clone();
                }
            }
            reply.refuse_again(refused);
        }
    }
}

async fn send_message(
    State(edge): State<EdgeState>,
    Me(me): Me,
    Payload(p): Payload<SendMessage>,
    reply: Reply,
) {
    let non_empty = |s: Option<String>| s.filter(|s| !s.trim().is_empty());
    let (file_url, file_name) = (non_empty(p.file_url), non_empty(p.file_name));
    let has_file = file_url.is_some() || file_name.is_some();
    let kind = non_empty(p.kind).unwrap_or_else(|| if has_file { "file" } else { "" }.into());
    let req = SendMessageRequest {
        actor: Some(me.actor()),
        conversation_id: p.conversation_id.0,
        text: p.content.unwrap_or_default(),
        attachments: if has_file {
            vec![Attachment {
                url: file_url.unwrap_or_default(),
                file_name: file_name.unwrap_or_default(),
                ..Default::default()
            }]
        } else {
            Vec::new()
        },
        kind,
        origin: reply.socket().id.to_string(),
        ..Default::default()
    };
    match edge.chat.clone().send_message(req).await {
        Ok(r) => {
            let m = r.into_inner().message.unwrap_or_default();
            reply.ok(json!({ "success": true, "message": message(&m) }));
        }
        Err(status) => reply.fail(ServiceError::from_status(&status)),
    }
}

async fn mark_read(
    State(edge): State<EdgeState>,
    Me(me): Me,
    Payload(p): Payload<MarkRead>,
    reply: Reply,
) {
    let parsed: Option<Vec<i64>> = p
        .message_ids
        .iter()
        .map(|WireId(id)| ids::parse(id))
        .collect();
    let Some(up_to) = parsed.and_then(|ids| ids.into_iter().max()) else {
        let e = ServiceError::invalid("messageIds must be a non-empty list of message ids");
        return reply.fail(e);
    };
    let req = MarkReadRequest {
        actor: Some(me.actor()),
        conversation_id: p.conversation_id.0,
        up_to_message_id: up_to.to_string(),
    };
    match edge.chat.clone().mark_read(req).await {
        Ok(r) => reply.ok(json!({ "success": true, "messageIds": r.into_inner().message_ids })),
        Err(status) => reply.fail(ServiceError::from_status(&status)),
    }
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
        text: p.new_content,
    };
    match edge.chat.clone().edit_message(req).await {
        Ok(_) => reply.ok(json!({ "success": true })),
        Err(status) => reply.fail(ServiceError::from_status(&status)),
    }
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
    match edge.chat.clone().delete_message(req).await {
        Ok(_) => reply.ok(json!({ "success": true })),
        Err(status) => reply.fail(ServiceError::from_status(&status)),
    }
}

async fn typing(
    State(edge): State<EdgeState>,
    Me(me): Me,
    Payload(p): Payload<TypingPayload>,
    reply: Reply,
) {
    // Seen by the others as `typing_status`, from presence-service's event.
    match typing::set_typing(&edge, &me, &p.conversation_id.0, p.is_typing).await {
        Ok(Typing::Relayed) => reply.ok(json!({ "success": true })),
        Ok(Typing::Throttled) => reply.ok(json!({ "success": true, "throttled": true })),
        Err(e) => reply.fail(e),
    }
}

#[cfg(test)]
mod tests;
