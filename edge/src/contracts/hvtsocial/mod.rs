//! `hvtsocial` — seed 000 (HVTSocial's Socket.IO events), numeric ids.
//!
//! | seed event | direction | confab |
//! |---|---|---|
//! | `register_user {userId}` | c→s | checked against the token's subject; a match is silent (the socket is already in its user room), a mismatch gets `error` `PERMISSION_DENIED` and changes nothing |
//! | `send_message {chatId, text, receiverId, type, mediaUrl?}` | c→s | `SendMessage` to `chatId`; with no `chatId`, or one that does not exist, `CreateConversation` (DIRECT, find-or-create) with `receiverId` first |
//! | `receive_message {id, chat_id, sender_id, text, type, media_url?, created_at, sender {id, full_name, avatar}}` | s→c | every socket of every member, the sender's included |
//! | `messages_read {chatId, userId}` | c→s | `MarkRead` up to the newest message |
//! | `recent_chat_read {chatId}` | s→c | the senders of the messages just read (the other side), on every socket |
//! | `recall_message {messageId, chatId}` | c→s | `RecallMessage` (only the author, once) |
//! | `message_recalled {messageId, chatId}` | s→c | every socket of every member |
//! | `typing {chatId, userId, isTyping}` | c→s | `session::typing::set_typing` (members only, starts throttled per user) |
//! | `user_typing {chatId, userId, isTyping, userName}` | s→c | `PresenceEvent.typing_changed`: every socket of the chat's other members, never the typist's (any tab) |
//! | `user_online {userId, lastSeen}` | s→c | `PresenceEvent.status_changed` (first socket of a user): every socket of the users who share a chat with them |
//! | `user_offline {userId, lastSeen}` | s→c | `PresenceEvent.status_changed` (last socket closed): the same users |
//! | `error {code, message, event, retryAfter?}` | s→c | every refused request (the seed has no error event; this is confab's); a `send_message` over chat-service's message rate limit (10 a second per user over all sockets, contracts and edges) is `LIMIT_EXCEEDED` with `retryAfter` (seconds, rounded up, as v3's `rate_limited`), and nothing is stored or sent |
//! | `connect_error` | s→c | `AUTHENTICATION_REQUIRED`, `INVALID_TOKEN`, `TOKEN_EXPIRED` (token in `auth.token`); `TOO_MANY_CONNECTIONS` for a user's socket over presence-service's per-user limit |
//! | `refresh_token {token}` or the token (confab's) | c→s | once the socket's token expired every request gets `error {code: 'TOKEN_EXPIRED', message}`; a fresh token for the same user makes them work again on the same socket (ack `{success: true, data: {expiresAt}}`); another user's is `USER_MISMATCH` and the socket is disconnected |
//!
//! Beyond the seed: what HVTSocial's published client sends and listens for
//! (`Frontend/src/socket.js`, `Frontend/src/page/Chatbox.jsx`; its server,
//! `Backend/sockets/chatSocket.js`, answers them). A team swapping its
//! server for confab keeps that frontend working:
//!
//! | event | direction | confab |
//! |---|---|---|
//! | `register_user` with a bare id (`Number(userId)`) | c→s | the same as `{userId}`: checked against the token's subject |
//! | `send_message {chatId, senderId, content, message_type, media_url?, reply_to_id?}` + ack | c→s | `content`/`message_type`/`media_url` read as `text`/`type`/`mediaUrl` (either spelling); `senderId`, when sent, must be the token's user (`PERMISSION_DENIED`); `reply_to_id` is the message replied to (same chat); `duration`, `created_at` and the `reply_*` copies are ignored (the server's own data wins) |
//! | send ack `{ok, success, message, data}` | s→c | `ok` and `success` both say whether it worked (the app reads `response.ok`, as its server answers `{ok: true, message}`); `message` and `data` are the sent `receive_message` payload; a failure is `{ok: false, success: false, error: {code, message}}` |
//! | `receive_message` with `content`, `message_type` (and `reply_to_id`, `reply_content`, `reply_type`, `reply_sender` for a reply) | s→c | beside the seed's `text`/`type`: the app renders `msg.content` and `msg.message_type` |
//! | `mark_messages_read {chatId, userId}` | c→s | the same as the seed's `messages_read`: `MarkRead`, `userId` must be the token's user |
//! | `messages_read {chatId, readBy}` | s→c | `ChatEvent.messages_read` (something new was read): to every socket of the chat's other members, beside the seed's `recent_chat_read` to the senders |
//! | `user_status_changed {userId, status: 'online' \| 'offline'}` | s→c | beside every `user_online` / `user_offline`, to the same users |
//! | `join_chat` / `leave_chat` with a bare chat id (or `{chatId}`) | c→s | `join_chat`: `CheckMembership`, a member's socket joins the chat's room, anyone else gets `error` (`NOT_A_MEMBER`, `CONVERSATION_NOT_FOUND`, `INVALID_ARGUMENT`); `leave_chat` leaves it. Delivery does not depend on it: every chat event already reaches every socket of every member (the seed's addressing), so leaving a chat's room never hides its messages |
//!
//! **Authentication.** The seed authenticates with `auth: {token}`, but the
//! app's sockets send no credential at all (`socket.js`:
//! `io(WS_URL, {withCredentials: true, transports: ["polling", "websocket"]})`;
//! `Chatbox.jsx`: `io(SERVER_ORIGIN, {transports: ["websocket"], ...})`);
//! its server trusted whatever id `register_user` named. confab never does:
//! a socket without a token is refused, and its `connect_error` message
//! says the one line the app must add to both `io()` calls:
//! `AUTHENTICATION_REQUIRED: add auth: { token: localStorage.getItem("token") } to the io() options`
//! (the app keeps its JWT under `localStorage` `token` for REST already).
//! `Chatbox.jsx` also connects to the server's origin, i.e. the default
//! namespace: point it at `/hvtsocial`, or start confab with
//! `CONFAB_DEFAULT_CONTRACT=hvtsocial`.
//!
//! Ids (messages, chats, users) are JSON numbers on the wire when they are
//! numeric (every id confab generates is; user ids are the token's subject,
//! so numeric subjects render as numbers too); numbers and strings are both
//! accepted from clients.
//!
//! Choices where the seed is vague:
//! - The seed joins no chat rooms: everything is addressed to the users'
//!   rooms (`user:<id>`), which every socket is in from the handshake on. So
//!   `register_user` only checks that the frontend means the token's user.
//! - `send_message`: `chatId` may be absent or `null` for a first message;
//!   an id that does not exist (or cannot, e.g. `0`) counts as absent. Then
//!   `receiverId` is required and the message goes to the direct chat of the
//!   two users, found or created. With an existing `chatId` the chat decides
//!   and `receiverId` is ignored (a non-member is refused, never re-routed).
//! - `type` is `text` (the default), `image` or `voice`; the last two need
//!   `mediaUrl`, stored as the message's one attachment. Messages from other
//!   contracts render their own kind (e.g. `file`) with `media_url` set.
//! - Empty and oversized (10 KB) texts are refused before a chat is created,
//!   so a refused first message creates nothing; chat-service still enforces
//!   both rules.
//! - `receive_message` is snake_case as the seed documents it, and also
//!   carries `chatId`, `senderId`, `mediaUrl`, `createdAt` as the seed's own
//!   client payloads spell them, so a frontend reading either finds them.
//!   `media_url`/`mediaUrl` are left out when there is no media.
//! - `messages_read` marks the whole chat read. `userId` is optional and must
//!   be the token's user. `recent_chat_read` goes to the users whose messages
//!   were newly read (nothing new read → no event) and also names the reader
//!   as `userId` (a confab addition, useful in group chats).
//! - `recall_message`: `chatId` is optional; when given it must be the
//!   message's chat (else `MESSAGE_NOT_FOUND`). A message deleted through
//!   another contract is shown here as `message_recalled` too (the seed's
//!   recall is its "delete for everyone"); edits, reactions and delivery
//!   receipts have no event in the seed and are not rendered.
//! - Errors: the `error` event carries confab's stable code (`INVALID_ARGUMENT`,
//!   `EMPTY_MESSAGE`, `MESSAGE_TOO_LONG`, `CONVERSATION_NOT_FOUND`,
//!   `MESSAGE_NOT_FOUND`, `NOT_A_MEMBER`, `NOT_AUTHOR`, `MESSAGE_GONE`,
//!   `PERMISSION_DENIED`, `UNAVAILABLE`, ...), a message for humans, and the
//!   client event that failed. The connection stays up.
//! - The seed's events have no acks; a client that passes one anyway gets
//!   `{success: true, data}` or `{success: false, error: {code, message}}`
//!   (`error` with `retryAfter` over a rate limit, as the event).
//! - Presence: the seed broadcasts `user_online`/`user_offline` to the whole
//!   server; confab tells only the users who share a chat with the user
//!   (presence-service's audience), on every contract. A user is online from
//!   their first socket (on any contract) to their last: a second tab
//!   changes nothing, closing one of two changes nothing. The session is
//!   registered at the handshake, so `register_user` is not needed for it.
//!   Both events carry `lastSeen` (ISO 8601): when the user came online, or
//!   when their last socket closed; the seed documents it on `user_offline`
//!   only.
//! - `typing`: `chatId` is required; `userId` is optional and, when sent,
//!   must be the token's user (`PERMISSION_DENIED`); `isTyping` defaults to
//!   `true`. A non-member is refused (`NOT_A_MEMBER`) and nothing is
//!   relayed. Over 30 starts a minute per user are dropped silently (stops
//!   always pass). A start nobody stops ends by itself after presence-service's
//!   typing timeout, seen as `user_typing` with `isTyping: false`.
//!   `user_typing` is addressed to the members' user rooms (the seed joins no
//!   chat rooms) and never reaches any socket of the typist.
//!
//! Notifications, unread counts, stories, friend requests and post
//! interactions are in [`notifications`]; the Video Call Events
//! (`call_user`, `incoming_call`, `answer_call`, `call_answered`,
//! `ice_candidate`, `end_call`, `call_ended`) in [`calls`].

mod calls;
mod messaging;
mod notifications;
mod render;

use messaging::*;
use render::*;

use confab_proto::limits::check_text;
use confab_proto::v1::presence_event::Kind as PresenceKind;
use confab_proto::v1::{
    Attachment, ChatEvent, ChatMessage, ConversationKind, CreateConversationRequest,
    GetMessageRequest, MarkReadRequest, PresenceEvent, RecallMessageRequest, SendMessageRequest,
    chat_event::Kind,
};
use confab_proto::{ErrorCode, ServiceError, ids};
use serde::Deserialize;
use serde_json::{Value, json};
use socketioxide::extract::{SocketRef, State, TryData};

use crate::auth::{AuthError, Identity};
use crate::contract::answer::{Answer, Answers, Args, Asked};
use crate::contract::me::Me;
use crate::contract::payload::Payload;
use crate::contract::reply::Reply;
use crate::contract::{
    Calls, CatchUp, Contract, Emit, Notifications, TokenRefresh, any_handshake,
    refreshed_with_data, retry_after_secs, retry_secs,
};
use crate::rooms::user_room;
use crate::session::rooms;
use crate::session::typing::{self, Typing};
use crate::state::EdgeState;
use crate::wire::{WireId, iso, numeric_id};

pub const CONTRACT: Contract = Contract {
    name: "hvtsocial",
    handshake: any_handshake,
    auth_error: None,
    refusal,
    token: TokenRefresh {
        event: "refresh_token",
        refuse: token_refused,
        refreshed: refreshed_with_data,
    },
    answers: Answers { ok, refused },
    on_connect,
    greet: None,
    chat_event,
    presence_event,
    calls: Some(Calls {
        on_connect: calls::on_connect,
        event: calls::call_event,
    }),
    notifications: Some(Notifications {
        on_connect: notifications::on_connect,
        greet: notifications::greet,
        event: notifications::notify_event,
    }),
    heartbeat: None,
    offline: None,
    catch_up: CatchUp::OnConnect,
};

/// `error {code, message}`, and `{success: false, error}` in a passed ack.
fn token_refused(_: &Asked<'_>, e: AuthError) -> Answer {
    let error = json!({ "code": e.to_string(), "message": e.describe() });
    Answer {
        ack: Some(json!({ "success": false, "error": error.clone() })),
        emit: vec![("error", Args::One(error))],
    }
}

/// What the `connect_error` of a socket without a token says: the stable
/// code, then the one line HVTSocial's frontend must add (module doc).
pub const TOKEN_REQUIRED: &str = r#"AUTHENTICATION_REQUIRED: add auth: { token: localStorage.getItem("token") } to the io() options"#;

fn refusal(e: AuthError) -> String {
    match e {
        AuthError::Required => TOKEN_REQUIRED.to_string(),
        other => other.to_string(),
    }
}

/// The message types the seed names.
const TYPES: [&str; 3] = ["text", "image", "voice"];

fn on_connect(s: &SocketRef) {
    s.on("register_user", register_user);
    s.on("send_message", send_message);
    s.on("messages_read", messages_read);
    s.on("mark_messages_read", messages_read);
    s.on("recall_message", recall_message);
    s.on("typing", typing);
    s.on("join_chat", join_chat);
    s.on("leave_chat", leave_chat);
}

/// `{userId}` (the seed) or the id alone (the app: `Number(userId)`).
#[derive(Deserialize)]
#[serde(untagged)]
enum RegisterUser {
    Object {
        #[serde(rename = "userId")]
        user_id: WireId,
    },
    Bare(WireId),
}

impl RegisterUser {
    fn user_id(self) -> WireId {
        match self {
            Self::Object { user_id } | Self::Bare(user_id) => user_id,
        }
    }
}

/// `{chatId}` or the chat id alone (the app: `Number(chatId)`).
#[derive(Deserialize)]
#[serde(untagged)]
enum ChatRef {
    Object {
        #[serde(rename = "chatId")]
        chat_id: WireId,
    },
    Bare(WireId),
}

impl ChatRef {
    fn chat_id(self) -> String {
        match self {
            Self::Object { chat_id } | Self::Bare(chat_id) => chat_id.0,
        }
    }
}

/// The seed's spelling (`text`, `type`, `mediaUrl`) or the app's
/// (`content`, `message_type`, `media_url`, with `senderId`).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SendMessage {
    #[serde(default)]
    chat_id: Option<WireId>,
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    content: Option<String>,
    #[serde(default)]
    receiver_id: Option<WireId>,
    #[serde(default)]
    sender_id: Option<WireId>,
    #[serde(default, rename = "type")]
    kind: Option<String>,
    #[serde(default, rename = "message_type")]
    message_type: Option<String>,
    #[serde(default)]
    media_url: Option<String>,
    #[serde(default, rename = "media_url")]
    media_url_snake: Option<String>,
    #[serde(default, rename = "reply_to_id")]
    reply_to_id: Option<WireId>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct MessagesRead {
    chat_id: WireId,
    #[serde(default)]
    user_id: Option<WireId>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RecallMessage {
    message_id: WireId,
    #[serde(default)]
    chat_id: Option<WireId>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct TypingPayload {
    chat_id: WireId,
    #[serde(default)]
    user_id: Option<WireId>,
    #[serde(default = "yes")]
    is_typing: bool,
}

fn yes() -> bool {
    true
}

type Outcome = Result<Value, ServiceError>;

/// A request that worked: `{success: true, data}`; `send_message` adds
/// the app's `{ok, message}` to the seed's shape in the same ack.
fn ok(asked: &Asked<'_>, data: Value) -> Value {
    if asked.event == "send_message" {
        return json!({ "ok": true, "success": true, "message": data, "data": data });
    }
    json!({ "success": true, "data": data })
}

/// A refusal: `error {code, message, event}` (with `retryAfter`, in
/// seconds, over a rate limit: `RATE_LIMITED` for a call event,
/// `LIMIT_EXCEEDED` for a message); a passed ack gets `{success: false,
/// error}` (and `ok: false` for `send_message`).
fn refused(asked: &Asked<'_>, e: &ServiceError) -> Answer {
    let message = if asked.unreadable {
        format!("invalid payload: {}", e.message)
    } else {
        e.message.clone()
    };
    let call = calls::EVENTS.contains(&asked.event);
    let code = match e.code {
        ErrorCode::LimitExceeded if call => "RATE_LIMITED",
        c => c.as_str(),
    };
    let mut error = json!({ "code": code, "message": message });
    let retry_after = match e.code {
        ErrorCode::LimitExceeded if call => Some(retry_secs(e)),
        _ => retry_after_secs(e),
    };
    if let Some(secs) = retry_after {
        error["retryAfter"] = json!(secs);
    }
    let mut ack = json!({ "success": false, "error": error.clone() });
    if asked.event == "send_message" {
        ack["ok"] = json!(false);
    }
    error["event"] = json!(asked.event);
    Answer {
        emit: vec![("error", Args::One(error))],
        ack: Some(ack),
    }
}

/// A user id sent in a payload must be the token's subject.
fn check_self(claimed: &WireId, me: &Identity) -> Result<(), ServiceError> {
    if claimed.0 == me.user_id {
        Ok(())
    } else {
        Err(ServiceError::new(
            ErrorCode::PermissionDenied,
            format!("userId {} is not the authenticated user", claimed.0),
        ))
    }
}

#[cfg(test)]
mod tests;
