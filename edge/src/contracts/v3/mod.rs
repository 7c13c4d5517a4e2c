//! `v3` — seed 003 (the "Socket.IO event contract v3.0"): authentication,
//! chat rooms, messaging, presence and typing.
//!
//! | seed event | direction | confab |
//! |---|---|---|
//! | handshake `auth: {profileid, timestamp}` + `accessToken` cookie | c→s | the token (cookie, `auth.token`, `Authorization`, query) is the identity; a `profileid` other than its subject is refused with `connect_error` `PROFILE_MISMATCH` |
//! | `authenticated {user, profile, security, session}` | s→c | on connect, from the verified token |
//! | `auth_error {error, message}` | s→c | no, bad or expired token (`AUTHENTICATION_REQUIRED`, `INVALID_TOKEN`, `TOKEN_EXPIRED`), or the user's 11th socket (`TOO_MANY_CONNECTIONS`: presence-service refused `RegisterSession`, the seed's 10 sockets per user); the socket is then disconnected |
//! | `join_chat {chatid}` or `chatid` | c→s | `CheckMembership`; a member's socket joins the chat room |
//! | `chat_joined {chatid, role, permissions, chatInfo}` | s→c | the `Membership` answer |
//! | `leave_chat {chatid}` or `chatid` | c→s | leaves the room, silently |
//! | `user_joined_chat {profileid, username, role, isOnline, joinedAt}` | s→c | `PresenceEvent.room_presence_changed` (joined): to the chat room on every edge, except the user's own sockets, when the user's first socket (on any edge) joins |
//! | `user_left {profileid, username}` | s→c | `room_presence_changed` (left): the same sockets, when the user's last socket leaves the chat, disconnects or its edge stops heartbeating |
//! | `send_message {chatid, clientMessageId, messageType, content, attachments?, replyTo?, mentions?}` + ack | c→s | `SendMessage`; ack `{success, clientMessageId, serverMessageId, timestamp}` or `{success: false, clientMessageId, error, code}` |
//! | `new_message {message, chat, sender}` | s→c | `ChatEvent.message_created`, to the chat room, the sender's sockets included |
//! | `message_sent {clientMessageId, serverMessageId, chatid, timestamp, status, deliveredTo}` | s→c | to the sending socket after the ack |
//! | `message_delivered {messageid, clientMessageId?, deliveredTo, deliveredAt, isOfflineDelivery}` | s→c | `ChatEvent.message_delivered`, to every socket of the sender |
//! | `mark_message_read {messageid, chatid}` | c→s | `MarkRead` up to that message |
//! | `message_read {messageid, clientMessageId?, readBy, readAt}` | s→c | `ChatEvent.messages_read`, one per newly read message, to its sender |
//! | `react_to_message {messageid, chatid, emoji}` | c→s | `GetMessage` (it must be in that chat), then `ReactToMessage` |
//! | `message_reaction_added {messageid, chatid, reaction}` | s→c | `ChatEvent.reaction_changed` (added), to the chat room |
//! | `typing_start {chatid}` or `chatid` | c→s | membership checked, starts throttled per user, then `SetTyping` (typing) |
//! | `typing_stop {chatid}` or `chatid` | c→s | membership checked, then `SetTyping` (not typing) |
//! | `user_typing {chatid, profileid, username, startedAt}` | s→c | `PresenceEvent.typing_changed` (typing), to the chat room except the typist's sockets |
//! | `user_stopped_typing {chatid, profileid, username}` | s→c | `PresenceEvent.typing_changed` (stopped, or expired), to the chat room except the typist's sockets |
//! | `user_status_changed {profileid, isOnline, lastSeen}` | s→c | `PresenceEvent.status_changed`, to every socket of the users who share a chat with that user |
//! | `user_online {profileid}` / `user_offline {profileid}` (deprecated) | s→c | the same change in the seed's legacy shape, right after `user_status_changed` |
//! | `chat_error {error, chatid?, data: {event, message}}` | s→c | every failure of `join_chat`/`leave_chat`/`typing_start`/`typing_stop`; every refusal by chat-service |
//! | `error {error, message, details: {event}}` | s→c | a payload that cannot be read (without an ack for `send_message`) |
//! | `auth_required` (no payload) | s→c | every request once the socket's token expired (`exp` + 5 s, as at the handshake); a passed ack gets `{success: false, error, code: 'TOKEN_EXPIRED'}`; nothing is stored or sent |
//! | `refresh_tokens {token}` or the token (confab's: the seed names no client event) | c→s | a fresh token for the same user replaces the socket's identity; a bad one is `auth_error` (the socket stays refused); another user's is `auth_error` `USER_MISMATCH`, then disconnected |
//! | `tokens_refreshed {expiresAt, refreshed: true}` | s→c | the answer to `refresh_tokens` (also in its ack) |
//! | `new_message` (offline) / `offline_messages_delivered` / `offline_delivery_error` | s→c | on connect, what reached none of the user's sockets (`offline.rs`) |
//! | `ping` (ms since epoch) / `heartbeat {timestamp}` | s→c | right after `authenticated`, then every `CONFAB_HEARTBEAT_MS` (25 s) from the edge's heartbeat task ([`crate::heartbeat`]) |
//! | `pong` (the ping's number) / `heartbeat_response {timestamp, clientTime}` | c→s | either answers the latest beat; its round trip goes into `confab_heartbeat_rtt_seconds`; a socket that leaves three beats in a row unanswered is disconnected (its user goes offline if it was the last socket) |
//! | `rate_limited {error: 'rate_limited', message, retryAfter}` | s→c | a `send_message` over chat-service's message rate limit (`LIMIT_EXCEEDED`, 10 a second per user over all sockets and contracts; `retryAfter` in seconds, rounded up); the ack, when passed, is `{success: false, clientMessageId, error, code: 'RATE_LIMITED', retryAfter}`; nothing is stored or sent |
//!
//! Beyond the seed: what Swaggo's published client,
//! `Website/Frontend/Components/Helper/PerfectSocketProvider.jsx` (the file
//! the seed names as its frontend), sends and listens for, each checked
//! against what confab emits. It connects with `withCredentials: true`, the
//! `accessToken` cookie, `auth: {profileid, timestamp}`,
//! `query: {userId, timestamp}`, `extraHeaders: {'X-Requested-With':
//! 'XMLHttpRequest'}` and transports websocket then polling: the token is
//! the identity, `profileid` is checked as above, `query.userId` and the
//! header are ignored (never trusted over the token). Its URL is the
//! server's origin (`NEXT_PUBLIC_SOCKET_URL`), i.e. the default namespace:
//! start confab with `CONFAB_DEFAULT_CONTRACT=v3`, or end that URL in `/v3`.
//!
//! | event | direction | confab |
//! |---|---|---|
//! | `get_online_users {}` + ack | c→s | on connect, the app asks who is online: `GetPresence` of the users who share a chat with it (`ListPeers`), acked `{success: true, users: [{profileid, isOnline, lastSeen}]}` (online ones only); `{success: false, error, code}` when a service is down |
//! | `heartbeat_response {timestamp, clientTime, roundTripTime}` | c→s | the app's answer to `heartbeat` (above): keeps the socket |
//! | `reaction_added` / `reaction_removed` | s→c | the app's names for a reaction change: `reaction_added` beside the seed's `message_reaction_added` (same payload), `reaction_removed` (same shape) when one is taken back |
//! | `user_online` / `user_offline {profileid}` | s→c | as the seed has them (the app also logs a `username` it does not need) |
//! | `error {error, code, message, details}` | s→c | the app reads `error.code`: it carries the stable code as `error` does |
//! | `new_message` | s→c | read as `data.message?.chatid` and `data.sender?.profileid \|\| data.senderid`: both are there already |
//! | `authenticated`, `message_delivered`, `message_read`, `user_status_changed`, `user_joined_chat`, `user_left`, `typing_start`/`typing_stop` | both | as in the seed table |
//!
//! Listeners of that file confab does not serve: `message_ack` (keyed by an
//! id the app never sends; the seed's ack and `message_sent` confirm a
//! send), `online_users_list` (the `get_online_users` ack answers the same
//! question) and `reactions_sync`. Its call events `call_offer` / `call_answer` /
//! `call_end` are served as the seed's legacy aliases (`calls.rs`). A
//! `connect_error` `PROFILE_MISMATCH` is classified by the app as a network
//! error and retried up to its limit; a bad or missing token is `auth_error`
//! followed by a server disconnect, which the app does not retry.
//!
//! Choices where the seed is vague:
//! - `error` fields (`chat_error.error`, `error.error`, the ack's `code`) are
//!   confab's stable codes (`NOT_A_MEMBER`, `CONVERSATION_NOT_FOUND`,
//!   `MESSAGE_TOO_LONG`, `EMPTY_MESSAGE`, `MESSAGE_NOT_FOUND`,
//!   `INVALID_ARGUMENT`, `UNAVAILABLE`, ...); the human message is in
//!   `chat_error.data.message`, `error.message` and the ack's `error`.
//! - A failed `send_message` answers only in its ack when the client passed
//!   one (the seed's message flow always does), so a frontend does not see
//!   the failure twice; without an ack it gets `error` (unreadable payload)
//!   or `chat_error` (refused by chat-service) like the other events.
//! - `join_chat` and `leave_chat` report every failure as `chat_error`, as the
//!   seed says for joins. The other events have no ack in the seed; when a
//!   client passes one anyway it gets `{success: true, ...}` or
//!   `{success: false, error, code}` besides the event (a confab addition).
//! - `profileid` is optional: the token alone says who connects; when
//!   present (a string, or a number for numeric subjects) it must equal the
//!   token's subject. `timestamp` is ignored. A mismatch is a
//!   `connect_error` (the contract layer reports only token failures as
//!   `auth_error`).
//! - `authenticated` renders what confab knows: `user.id` = `profileid` =
//!   the subject; `username` = the `username` claim, else the name, else the
//!   id; `displayname` = the name claim, else the username, else the id;
//!   `avatar` = the `avatar` claim or `""`. confab keeps no e-mail,
//!   permissions, risk scoring or device list: `email: ""`,
//!   `permissions: {}`, `riskScore: 0`, `deviceTrusted: false` (confab never
//!   vouches for a device), `deviceFingerprint: ""`. `session.expiresAt` is
//!   the token's `exp` (`null` when the token has none).
//! - `chat_joined`: `role` is the member's role (`owner` for the creator,
//!   `member` otherwise); `permissions` say what chat-service allows:
//!   every member sends, any member of a group adds members, only the owner
//!   (or an admin) removes members and edits settings. `chatType` is
//!   `direct` or `group` (confab has no channels); `chatName` is the
//!   conversation's name (`""` for an unnamed direct chat); `settings: {}`.
//! - `new_message` goes to every socket that joined the chat, the sender's
//!   included: it carries `clientMessageId`, so the sender matches it with
//!   its optimistic copy, and the sender's other tabs see the message too.
//!   `messageStatus` is `sent`; attachments render `type` from the MIME type
//!   (`image`, `video`, `audio`, else `file`); `replyTo` is the full message
//!   replied to (without its own `replyTo`); `reactions` has one entry per
//!   user and emoji.
//! - A retry with the same `clientMessageId` stores nothing and broadcasts
//!   nothing (chat-service answers `duplicate`); the retrying socket gets the
//!   same ack and `message_sent` again with the first `serverMessageId`.
//! - `message_sent.deliveredTo` is `[]`: each recipient reached is reported
//!   by its own `message_delivered` as soon as its socket got the message.
//! - `messageType` must be one of the seed's six (`text` when absent);
//!   `content` is the text (10 KB at most, chat-service's limit answers
//!   `MESSAGE_TOO_LONG`); an attachment needs a `url` and may be 50 MB at
//!   most (`INVALID_ARGUMENT`); `timestamp` is ignored (the server's time
//!   wins).
//! - Removing a reaction has no event in the seed; it renders only the
//!   app's `reaction_removed` (above).
//! - Ids are strings on the wire; numbers are accepted too.
//! - Presence goes to the users who share a chat with the one who changed
//!   (the watchers chat-service's `ListPeers` named when the socket
//!   connected), never to the whole server; the user's own sockets do not
//!   hear about themselves. A user is online from their first socket to
//!   their last (a second tab, or closing one of two, says nothing).
//!   `lastSeen` is the change's time when coming online and the time the
//!   last socket closed when going offline. Every change is sent as
//!   `user_status_changed` and also as the deprecated `user_online` /
//!   `user_offline` `{profileid}` (the seed still lists them as supported).
//! - Typing goes where messages go: the chat room (sockets that joined the
//!   chat), except every socket of the typist, so neither the typing tab nor
//!   the typist's other tabs see it. Only members may type (the socket need
//!   not have joined the room); anyone else gets `chat_error`
//!   `NOT_A_MEMBER` and nothing is relayed. An unreadable payload is
//!   `chat_error` `INVALID_ARGUMENT` (as for `join_chat`).
//! - Typing starts are throttled per user (30 a minute, seed 004's
//!   suggestion; the seed asks for rate limiting without a number): an
//!   extra start is dropped silently, without `rate_limited`, because an
//!   indicator is not worth an error in the frontend. Stops always pass.
//! - A start with no stop ends by itself after presence-service's typing
//!   TTL: the others get `user_stopped_typing` as for a stop.
//!   Sending a message does not stop typing (the seed does not say it does).
//! - `user_typing.username` is the name presence-service carries for the
//!   typist (the token's name, else its `username`, else the id), which may
//!   differ from the login name `user_joined_chat` shows.
//! - `startedAt` is when the typing began (a start while already typing
//!   keeps it).
//! - When a client passes an ack with a typing event it gets
//!   `{success: true, chatid}` (also when the start was throttled) or
//!   `{success: false, error, code}`.
//! - When presence-service is unreachable, sockets still connect (no
//!   presence) and typing answers `chat_error` `UNAVAILABLE`.
//!
//! - Room presence is presence-service's (`SetRoomPresence`): `join_chat`
//!   and `leave_chat` tell it, and it decides whether the socket is the
//!   user's first in the chat / their last one out, over every edge and
//!   contract; a closing socket's rooms end with its session. So a user
//!   with tabs on two edges is announced once, and leaves when the last
//!   tab does. `user_joined_chat.role` is the joiner's role from
//!   `CheckMembership`; `username` is the login name, as in
//!   `authenticated`; `joinedAt` is when presence-service took the join.
//!   Members who joined the chat from another contract (raven, dreamstudio)
//!   are announced here too, and v3 users there. When presence-service is
//!   unreachable the join still works, unannounced.
//!
//! Where the rest of the seed slots in (other issues):
//! - `message_sent.deliveredTo` could name the online recipients with
//!   `GetPresence`.
//! - Calls, WebRTC signaling, call controls and the legacy call aliases
//!   are in `calls.rs` (its module doc has their table and choices).

use confab_proto::v1::{
    Attachment, ChatEvent, ChatMessage, Conversation, ConversationInfo, ConversationKind,
    DeliveryReceipt, GetMessageRequest, GetPresenceRequest, ListPeersRequest, MarkReadRequest,
    PresenceEvent, ReactToMessageRequest, ReactionChange, ReadReceipt, RoomPresenceChange,
    SendMessageRequest, StatusChange, TypingChange, chat_event::Kind, presence_event,
};
use confab_proto::{ServiceError, ids};
use serde::{Deserialize, Deserializer};
use serde_json::{Value, json};
use socketioxide::extract::{AckSender, SocketRef, State, TryData};

use crate::auth::{AuthError, Identity};
use crate::contract::me::{AckRequested, Me};
use crate::contract::reply::{Answers, Args, Asked, Refused};
use crate::contract::{Calls, Contract, Emit, Heartbeat, Offline, TokenRefresh, plain_refusal};
use crate::rooms::{conversation_room, user_room};
use crate::session::{rooms, typing};
use crate::state::EdgeState;
use crate::wire::{WireId, first_non_empty, iso};

pub const CONTRACT: Contract = Contract {
    name: "v3",
    handshake,
    auth_error: Some(auth_error),
    refusal: plain_refusal,
    token: TokenRefresh {
        event: "refresh_tokens",
        refuse: token_refused,
        refreshed: tokens_refreshed,
    },
    answers: Answers {
        ok: |_, mut fields| {
            fields["success"] = json!(true);
            fields
        },
        refused,
    },
    on_connect,
    greet: Some(greet),
    chat_event,
    presence_event,
    calls: Some(Calls {
        on_connect: calls::on_connect,
        event: calls::call_event,
    }),
    notifications: None,
    heartbeat: Some(Heartbeat {
        beat: |now| {
            vec![
                ("ping", json!(now)),
                ("heartbeat", json!({ "timestamp": iso(now) })),
            ]
        },
        answers: &["pong", "heartbeat_response"],
    }),
    offline: Some(Offline {
        deliver: offline::deliver,
    }),
};

/// A refusal in the seed's terms: `chat_error` for a request about a chat
/// (with its `chatid` when the request named one), and `{success: false,
/// error, code}` in a passed ack.
fn refused(asked: &Asked<'_>, e: &ServiceError) -> Refused {
    let r = Refusal::new(e.code.as_str(), e.message.clone());
    let mut payload = json!({
        "error": r.code,
        "data": { "event": asked.event, "message": r.message },
    });
    if let Some(id) = asked.echoed("chatid") {
        payload["chatid"] = id.clone();
    }
    Refused {
        emit: vec![("chat_error", Args::One(payload))],
        ack: Some(json!({ "success": false, "error": r.message, "code": r.code })),
    }
}

/// A request on a socket whose token expired: `auth_required` (the seed's,
/// no payload); a refresh with a bad token or another user's: `auth_error`
/// as at the handshake. A passed ack gets `{success: false, error, code}`.
fn token_refused(s: &SocketRef, ack: AckSender, _: bool, e: AuthError) {
    if e == AuthError::Expired {
        let _ = s.emit("auth_required", &());
    } else {
        let (event, payload) = auth_error(e);
        let _ = s.emit(event, &payload);
    }
    ack_with(ack, Err(&Refusal::new(&e.to_string(), e.describe())));
}

/// The seed's `tokens_refreshed {expiresAt, refreshed}` (and the ack, if any).
fn tokens_refreshed(s: &SocketRef, ack: AckSender, me: &Identity) {
    let payload = json!({ "expiresAt": me.expires_at_ms.map(iso), "refreshed": true });
    let _ = s.emit("tokens_refreshed", &payload);
    ack_with(ack, Ok(payload));
}

mod calls;
mod offline;

/// The most an attachment may weigh (the seed's resource limits).
const MAX_ATTACHMENT_BYTES: u64 = 50 * 1024 * 1024;
/// The seed's message types.
const MESSAGE_TYPES: [&str; 6] = ["text", "image", "video", "audio", "file", "location"];

// ---- connection ---------------------------------------------------------

/// `auth.profileid`, when given, must be the token's subject.
fn handshake(auth: Option<&Value>, me: &Identity) -> Result<(), String> {
    match auth.and_then(|a| a.get("profileid")) {
        None | Some(Value::Null) => Ok(()),
        Some(Value::String(p)) if p.trim() == me.user_id => Ok(()),
        Some(Value::Number(n)) if n.to_string() == me.user_id => Ok(()),
        Some(_) => Err("PROFILE_MISMATCH".into()),
    }
}

fn auth_error(e: AuthError) -> (&'static str, Value) {
    (
        "auth_error",
        json!({ "error": e.to_string(), "message": e.describe() }),
    )
}

fn on_connect(s: &SocketRef) {
    s.on("join_chat", join_chat);
    s.on("leave_chat", leave_chat);
    s.on("send_message", send_message);
    s.on("mark_message_read", mark_message_read);
    s.on("react_to_message", react_to_message);
    s.on("typing_start", typing_start);
    s.on("typing_stop", typing_stop);
    s.on("get_online_users", get_online_users);
}

/// `authenticated`, once the client is connected (then the socket
/// lifecycle delivers the offline queue and the first beat).
fn greet(s: &SocketRef, me: &Identity) {
    let _ = s.emit("authenticated", &authenticated(me));
}

/// `get_online_users`: who of the users sharing a chat is online.
async fn get_online_users(State(svc): State<EdgeState>, Me(me): Me, ack: AckSender) {
    let result = async {
        let peers = svc
            .chat
            .clone()
            .list_peers(ListPeersRequest {
                user_id: me.user_id.clone(),
            })
            .await
            .map_err(|st| Refusal::from_status(&st))?
            .into_inner()
            .user_ids;
        if peers.is_empty() {
            return Ok(Vec::new());
        }
        let presence = svc
            .presence
            .clone()
            .get_presence(GetPresenceRequest { user_ids: peers })
            .await
            .map_err(|st| Refusal::from_status(&st))?
            .into_inner();
        Ok(presence
            .users
            .iter()
            .filter(|u| u.online && u.user_id != me.user_id)
            .map(|u| json!({ "profileid": u.user_id, "isOnline": true, "lastSeen": iso(u.last_seen_ms) }))
            .collect::<Vec<_>>())
    }
    .await;
    match result {
        Ok(users) => ack_with(ack, Ok(json!({ "users": users }))),
        Err(r) => ack_with(ack, Err(&r)),
    }
}

/// The seed's `authenticated` payload (see the module doc for each field).
fn authenticated(me: &Identity) -> Value {
    let username = me.login_name();
    json!({
        "user": {
            "id": me.user_id,
            "username": username,
            "email": "",
            "permissions": {},
        },
        "profile": {
            "profileid": me.user_id,
            "username": username,
            "displayname": me.display_name(),
            "avatar": me.avatar,
        },
        "security": { "riskScore": 0, "deviceTrusted": false, "deviceFingerprint": "" },
        "session": {
            "connectedAt": iso(chrono::Utc::now().timestamp_millis()),
            "expiresAt": me.expires_at_ms.map(iso),
        },
    })
}

// ---- answers --------------------------------------------------------------

/// Why a request failed: a stable code and a message for people.
struct Refusal {
    code: String,
    message: String,
}

impl Refusal {
    fn invalid(message: impl std::fmt::Display) -> Self {
        Self {
            code: "INVALID_ARGUMENT".into(),
            message: message.to_string(),
        }
    }

    fn new(code: &str, message: impl Into<String>) -> Self {
        Self {
            code: code.into(),
            message: message.into(),
        }
    }

    fn from_status(status: &tonic::Status) -> Self {
        let e = ServiceError::from_status(status);
        Self::new(e.code.as_str(), e.message)
    }
}

/// The seed's `chat_error`.
fn chat_error(s: &SocketRef, event: &str, chatid: Option<&str>, r: &Refusal) {
    let mut payload = json!({
        "error": r.code,
        "data": { "event": event, "message": r.message },
    });
    if let Some(id) = chatid {
        payload["chatid"] = json!(id);
    }
    let _ = s.emit("chat_error", &payload);
}

/// The seed's generic `error`.
fn error_event(s: &SocketRef, event: &str, r: &Refusal) {
    let _ = s.emit(
        "error",
        &json!({
            "error": r.code,
            "code": r.code,
            "message": r.message,
            "details": { "event": event },
        }),
    );
}

/// `{success: true, ...fields}` or `{success: false, error, code}` for a
/// client that passed an ack (a no-op otherwise).
fn ack_with(ack: AckSender, result: Result<Value, &Refusal>) {
    let reply = match result {
        Ok(mut fields) => {
            fields["success"] = json!(true);
            fields
        }
        Err(r) => json!({ "success": false, "error": r.message, "code": r.code }),
    };
    let _ = ack.send(&reply);
}

fn read<T: serde::de::DeserializeOwned>(payload: Value) -> Result<T, Refusal> {
    serde_json::from_value(payload).map_err(Refusal::invalid)
}

// ---- rooms ------------------------------------------------------------------

/// `{chatid}` or the chat id alone (a string or a number).
fn chat_ref(payload: &Value) -> Result<String, Refusal> {
    let id = match payload {
        Value::Object(o) => o.get("chatid").cloned().unwrap_or_default(),
        other => other.clone(),
    };
    serde_json::from_value::<WireId>(id)
        .map(|w| w.0)
        .map_err(|_| Refusal::invalid("chatid is required: a chat id, or {chatid}"))
}

async fn join_chat(
    s: SocketRef,
    TryData(p): TryData<Value>,
    State(svc): State<EdgeState>,
    Me(me): Me,
    ack: AckSender,
) {
    let (chatid, result) = match chat_ref(&p.unwrap_or_default()) {
        Err(r) => (None, Err(r)),
        Ok(id) => {
            let result = join(&s, &svc, &me, &id).await;
            (Some(id), result)
        }
    };
    match result {
        Ok(joined) => {
            let _ = s.emit("chat_joined", &joined);
            ack_with(ack, Ok(joined));
        }
        Err(r) => {
            chat_error(&s, "join_chat", chatid.as_deref(), &r);
            ack_with(ack, Err(&r));
        }
    }
}

/// Checks membership, joins the room, tells presence-service (which tells
/// the others on a first join); returns `chat_joined`.
async fn join(s: &SocketRef, edge: &EdgeState, me: &Identity, id: &str) -> Result<Value, Refusal> {
    let joined = rooms::join(edge, s, me, id)
        .await
        .map_err(|e| Refusal::new(e.code.as_str(), e.message))?;
    Ok(chat_joined(
        &joined.member.conversation,
        &joined.member.role,
    ))
}

/// The seed's `chat_joined` payload.
fn chat_joined(conv: &Conversation, role: &str) -> Value {
    let manager = matches!(role, "owner" | "admin");
    let group = conv.kind != ConversationKind::Direct as i32;
    json!({
        "chatid": conv.id,
        "role": role,
        "permissions": {
            "canSendMessages": true,
            "canAddMembers": group,
            "canRemoveMembers": manager && group,
            "canEditSettings": manager,
        },
        "chatInfo": {
            "chatName": conv.name,
            "chatType": chat_type(conv.kind),
            "participantCount": conv.members.len(),
            "settings": {},
        },
    })
}

fn chat_type(kind: i32) -> &'static str {
    if kind == ConversationKind::Direct as i32 {
        "direct"
    } else {
        "group"
    }
}

/// Leaves the room and tells presence-service (which tells the others when
/// it was the user's last socket there). A closing socket needs nothing of
/// this: its room presences end with its presence session.
async fn leave_chat(
    s: SocketRef,
    TryData(p): TryData<Value>,
    State(svc): State<EdgeState>,
    Me(me): Me,
    ack: AckSender,
) {
    match chat_ref(&p.unwrap_or_default()) {
        Err(r) => {
            chat_error(&s, "leave_chat", None, &r);
            ack_with(ack, Err(&r));
        }
        Ok(id) => {
            rooms::leave(&svc, &s, &me, &id).await;
            ack_with(ack, Ok(json!({ "chatid": id })));
        }
    }
}

// ---- messages -----------------------------------------------------------------

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SendMessage {
    chatid: WireId,
    client_message_id: WireId,
    #[serde(default)]
    message_type: Option<String>,
    #[serde(default)]
    content: Option<String>,
    #[serde(default)]
    attachments: Option<Vec<AttachmentIn>>,
    #[serde(default, deserialize_with = "optional_id")]
    reply_to: Option<String>,
    #[serde(default)]
    mentions: Option<Vec<WireId>>,
}

#[derive(Deserialize)]
struct AttachmentIn {
    url: String,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    size: Option<u64>,
    #[serde(default)]
    mimetype: Option<String>,
}

/// An optional id: absent, `null` or `""` is none.
fn optional_id<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    match Option::<Value>::deserialize(d)? {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
        Some(v) => WireId::deserialize(v)
            .map(|w| Some(w.0))
            .map_err(serde::de::Error::custom),
    }
}

impl SendMessage {
    /// The canonical request, after the checks the payload alone allows.
    fn into_request(self, me: &Identity) -> Result<SendMessageRequest, Refusal> {
        let kind = self.message_type.unwrap_or_else(|| "text".into());
        if !MESSAGE_TYPES.contains(&kind.as_str()) {
            return Err(Refusal::invalid(format!(
                "messageType must be one of {}",
                MESSAGE_TYPES.join(", ")
            )));
        }
        let mut attachments = Vec::new();
        for a in self.attachments.unwrap_or_default() {
            let size = a.size.unwrap_or(0);
            if size > MAX_ATTACHMENT_BYTES {
                return Err(Refusal::invalid("an attachment is larger than 50 MB"));
            }
            attachments.push(Attachment {
                url: a.url,
                file_name: a.name.unwrap_or_default(),
                mime_type: a.mimetype.unwrap_or_default(),
                size_bytes: i64::try_from(size).unwrap_or(i64::MAX),
            });
        }
        Ok(SendMessageRequest {
            actor: Some(me.actor()),
            conversation_id: self.chatid.0,
            text: self.content.unwrap_or_default(),
            attachments,
            kind,
            reply_to_id: self.reply_to.unwrap_or_default(),
            mentions: self
                .mentions
                .unwrap_or_default()
                .into_iter()
                .map(|m| m.0)
                .collect(),
            client_message_id: self.client_message_id.0,
            origin: String::new(),
        })
    }
}

/// A string field of a raw payload, to echo back when the payload is bad.
fn raw_field(payload: &Value, field: &str) -> Option<String> {
    match payload.get(field)? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

async fn send_message(
    s: SocketRef,
    TryData(p): TryData<Value>,
    State(svc): State<EdgeState>,
    Me(me): Me,
    ack: AckSender,
    AckRequested(wants_ack): AckRequested,
) {
    let payload = p.unwrap_or_default();
    let echo_id = raw_field(&payload, "clientMessageId");
    let chatid = raw_field(&payload, "chatid");
    // A first send is broadcast by chat-service's event as `new_message`; a
    // duplicate is not, and only this socket hears of it again.
    let sent = match read::<SendMessage>(payload).and_then(|m| m.into_request(&me)) {
        Err(r) => Err((r, false)),
        Ok(req) => match svc.chat.clone().send_message(req).await {
            Ok(r) => Ok(r.into_inner().message.unwrap_or_default()),
            Err(st) => {
                let e = ServiceError::from_status(&st);
                if e.code == confab_proto::ErrorCode::LimitExceeded {
                    return rate_limited(&s, ack, wants_ack, echo_id, e);
                }
                Err((Refusal::new(e.code.as_str(), e.message), true))
            }
        },
    };
    let m = match sent {
        Ok(m) => m,
        Err((r, _)) if wants_ack => {
            let mut reply = json!({ "success": false, "error": r.message, "code": r.code });
            if let Some(id) = echo_id {
                reply["clientMessageId"] = json!(id);
            }
            let _ = ack.send(&reply);
            return;
        }
        Err((r, true)) => return chat_error(&s, "send_message", chatid.as_deref(), &r),
        Err((r, false)) => return error_event(&s, "send_message", &r),
    };
    let client_id = echo_id.unwrap_or_default();
    let timestamp = iso(m.created_at_ms);
    let _ = ack.send(&json!({
        "success": true,
        "clientMessageId": client_id,
        "serverMessageId": m.id,
        "timestamp": timestamp,
    }));
    let _ = s.emit(
        "message_sent",
        &json!({
            "clientMessageId": client_id,
            "serverMessageId": m.id,
            "chatid": m.conversation_id,
            "timestamp": timestamp,
            "status": "sent",
            "deliveredTo": [],
        }),
    );
}

/// Over the message rate limit: the seed's `rate_limited {error, message,
/// retryAfter}` (seconds) and, with an ack, `{success: false,
/// clientMessageId, error, code: 'RATE_LIMITED', retryAfter}`.
fn rate_limited(
    s: &SocketRef,
    ack: AckSender,
    wants_ack: bool,
    client_message_id: Option<String>,
    e: ServiceError,
) {
    let retry_after = crate::contract::retry_secs(&e);
    let _ = s.emit(
        "rate_limited",
        &json!({ "error": "rate_limited", "message": e.message, "retryAfter": retry_after }),
    );
    if wants_ack {
        let mut reply = json!({
            "success": false,
            "error": e.message,
            "code": "RATE_LIMITED",
            "retryAfter": retry_after,
        });
        if let Some(id) = client_message_id {
            reply["clientMessageId"] = json!(id);
        }
        let _ = ack.send(&reply);
    }
}

#[derive(Deserialize)]
struct MessageRef {
    messageid: WireId,
    chatid: WireId,
}

#[derive(Deserialize)]
struct React {
    messageid: WireId,
    chatid: WireId,
    emoji: String,
}

async fn mark_message_read(
    s: SocketRef,
    TryData(p): TryData<Value>,
    State(svc): State<EdgeState>,
    Me(me): Me,
    ack: AckSender,
) {
    let p: MessageRef = match read(p.unwrap_or_default()) {
        Ok(p) => p,
        Err(r) => {
            error_event(&s, "mark_message_read", &r);
            return ack_with(ack, Err(&r));
        }
    };
    // Each newly read message's sender hears `message_read` from the event.
    let req = MarkReadRequest {
        actor: Some(me.actor()),
        conversation_id: p.chatid.0.clone(),
        up_to_message_id: p.messageid.0.clone(),
    };
    match svc.chat.clone().mark_read(req).await {
        Ok(r) => {
            let r = r.into_inner();
            ack_with(
                ack,
                Ok(json!({
                    "chatid": r.conversation_id,
                    "messageid": p.messageid.0,
                    "readAt": iso(r.read_at_ms),
                    "read": r.message_ids,
                })),
            );
        }
        Err(status) => {
            let r = Refusal::from_status(&status);
            chat_error(&s, "mark_message_read", Some(&p.chatid.0), &r);
            ack_with(ack, Err(&r));
        }
    }
}

async fn react_to_message(
    s: SocketRef,
    TryData(p): TryData<Value>,
    State(svc): State<EdgeState>,
    Me(me): Me,
    ack: AckSender,
) {
    let p: React = match read(p.unwrap_or_default()) {
        Ok(p) => p,
        Err(r) => {
            error_event(&s, "react_to_message", &r);
            return ack_with(ack, Err(&r));
        }
    };
    match react(&svc, &me, &p).await {
        // Everyone in the chat, the reactor included, hears
        // `message_reaction_added` from the event.
        Ok(m) => ack_with(
            ack,
            Ok(json!({ "messageid": m.id, "chatid": m.conversation_id })),
        ),
        Err(r) => {
            chat_error(&s, "react_to_message", Some(&p.chatid.0), &r);
            ack_with(ack, Err(&r));
        }
    }
}

/// Reacts to a message of the named chat (a message of another chat is
/// "not found", so `chatid` is never silently ignored).
async fn react(svc: &EdgeState, me: &Identity, p: &React) -> Result<ChatMessage, Refusal> {
    let mut chat = svc.chat.clone();
    let found = chat
        .get_message(GetMessageRequest {
            actor: Some(me.actor()),
            message_id: p.messageid.0.clone(),
        })
        .await
        .map_err(|st| Refusal::from_status(&st))?
        .into_inner();
    if found.conversation_id != ids::canonical(&p.chatid.0) {
        return Err(Refusal::new(
            "MESSAGE_NOT_FOUND",
            format!("message {} is not in chat {}", p.messageid.0, p.chatid.0),
        ));
    }
    chat.react_to_message(ReactToMessageRequest {
        actor: Some(me.actor()),
        message_id: p.messageid.0.clone(),
        emoji: p.emoji.clone(),
        remove: false,
    })
    .await
    .map(|r| r.into_inner())
    .map_err(|st| Refusal::from_status(&st))
}

// ---- typing -------------------------------------------------------------------

async fn typing_start(
    s: SocketRef,
    TryData(p): TryData<Value>,
    State(svc): State<EdgeState>,
    Me(me): Me,
    ack: AckSender,
) {
    set_typing(
        &s,
        &svc,
        &me,
        "typing_start",
        p.unwrap_or_default(),
        true,
        ack,
    )
    .await;
}

async fn typing_stop(
    s: SocketRef,
    TryData(p): TryData<Value>,
    State(svc): State<EdgeState>,
    Me(me): Me,
    ack: AckSender,
) {
    set_typing(
        &s,
        &svc,
        &me,
        "typing_stop",
        p.unwrap_or_default(),
        false,
        ack,
    )
    .await;
}

/// `typing_start`/`typing_stop` with `{chatid}` or the chat id alone: a
/// member's state goes to presence-service, which tells the chat's other
/// members; any failure is `chat_error`. A throttled start is dropped
/// silently (it still acks `success: true`).
async fn set_typing(
    s: &SocketRef,
    svc: &EdgeState,
    me: &Identity,
    event: &str,
    payload: Value,
    on: bool,
    ack: AckSender,
) {
    let id = match chat_ref(&payload) {
        Ok(id) => id,
        Err(r) => {
            chat_error(s, event, None, &r);
            return ack_with(ack, Err(&r));
        }
    };
    match typing::set_typing(svc, me, &ids::canonical(&id), on).await {
        Ok(_) => ack_with(ack, Ok(json!({ "chatid": id }))),
        Err(e) => {
            let r = Refusal::new(e.code.as_str(), e.message);
            chat_error(s, event, Some(&id), &r);
            ack_with(ack, Err(&r));
        }
    }
}

// ---- rendering chat-service's events ------------------------------------------------

fn chat_event(ev: &ChatEvent) -> Vec<Emit> {
    match &ev.kind {
        Some(Kind::MessageCreated(m)) => vec![Emit::to(
            vec![conversation_room(&m.conversation_id)],
            "new_message",
            new_message(m, ev.conversation.as_ref()),
        )],
        Some(Kind::MessageDelivered(d)) => message_delivered(d),
        Some(Kind::MessagesRead(r)) => messages_read(r),
        Some(Kind::ReactionChanged(c)) => reaction_changed(c),
        // The seed has no events for edits, deletions, recalls, removed
        // reactions or membership changes.
        _ => Vec::new(),
    }
}

/// The seed's `new_message`.
pub fn new_message(m: &ChatMessage, conv: Option<&ConversationInfo>) -> Value {
    let chat = match conv {
        Some(c) => json!({ "chatid": c.id, "chatName": c.name, "chatType": chat_type(c.kind) }),
        None => json!({ "chatid": m.conversation_id, "chatName": "", "chatType": "group" }),
    };
    json!({
        "message": message(m),
        "chat": chat,
        "sender": {
            "profileid": m.sender_id,
            "username": first_non_empty(&[&m.sender_username, &m.sender_name, &m.sender_id]),
            "displayname": first_non_empty(&[&m.sender_name, &m.sender_username, &m.sender_id]),
            "avatar": m.sender_avatar,
        },
    })
}

/// The seed's message object (also used for `replyTo`).
fn message(m: &ChatMessage) -> Value {
    let attachments: Vec<Value> = m
        .attachments
        .iter()
        .map(|a| {
            json!({
                "type": attachment_type(&a.mime_type),
                "url": a.url,
                "name": a.file_name,
                "size": a.size_bytes,
                "mimetype": a.mime_type,
            })
        })
        .collect();
    let reactions: Vec<Value> = m
        .reactions
        .iter()
        .flat_map(|r| {
            r.user_ids.iter().enumerate().map(|(i, user)| {
                json!({
                    "emoji": r.emoji,
                    "profileid": user,
                    "timestamp": iso(r.reacted_at_ms.get(i).copied().unwrap_or(0)),
                })
            })
        })
        .collect();
    let mut v = json!({
        "messageid": m.id,
        "chatid": m.conversation_id,
        "senderid": m.sender_id,
        "messageType": m.kind,
        "content": m.text,
        "attachments": attachments,
        "mentions": m.mentions,
        "timestamp": iso(m.created_at_ms),
        "messageStatus": "sent",
        "reactions": reactions,
    });
    if !m.client_message_id.is_empty() {
        v["clientMessageId"] = json!(m.client_message_id);
    }
    if let Some(reply) = &m.reply_to {
        v["replyTo"] = message(reply);
    }
    v
}

fn attachment_type(mime: &str) -> &'static str {
    match mime.split('/').next().unwrap_or_default() {
        "image" => "image",
        "video" => "video",
        "audio" => "audio",
        _ => "file",
    }
}

/// One `message_delivered` per recipient (the seed's `deliveredTo` is one
/// id), to every socket of the sender.
fn message_delivered(d: &DeliveryReceipt) -> Vec<Emit> {
    d.recipient_ids
        .iter()
        .map(|recipient| {
            let mut v = json!({
                "messageid": d.message_id,
                "deliveredTo": recipient,
                "deliveredAt": iso(d.delivered_at_ms),
                "isOfflineDelivery": d.offline,
            });
            if !d.client_message_id.is_empty() {
                v["clientMessageId"] = json!(d.client_message_id);
            }
            Emit::to(vec![user_room(&d.sender_id)], "message_delivered", v)
        })
        .collect()
}

/// One `message_read` per newly read message, to its sender.
fn messages_read(r: &ReadReceipt) -> Vec<Emit> {
    r.messages
        .iter()
        .filter(|m| m.sender_id != r.reader_id)
        .map(|m| {
            let mut v = json!({
                "messageid": m.message_id,
                "readBy": r.reader_id,
                "readAt": iso(r.read_at_ms),
            });
            if !m.client_message_id.is_empty() {
                v["clientMessageId"] = json!(m.client_message_id);
            }
            Emit::to(vec![user_room(&m.sender_id)], "message_read", v)
        })
        .collect()
}

/// A reaction added: the seed's `message_reaction_added` and the app's
/// `reaction_added`; taken back: the app's `reaction_removed` (the seed has
/// no event for it). To the chat room.
fn reaction_changed(c: &ReactionChange) -> Vec<Emit> {
    let Some(m) = c.message.as_ref() else {
        return Vec::new();
    };
    let room = vec![conversation_room(&m.conversation_id)];
    let payload = reaction_payload(c, m);
    if c.removed {
        return vec![Emit::to(room, "reaction_removed", payload)];
    }
    vec![
        Emit::to(room.clone(), "message_reaction_added", payload.clone()),
        Emit::to(room, "reaction_added", payload),
    ]
}

/// `{messageid, chatid, reaction: {emoji, profileid, username, timestamp}}`.
fn reaction_payload(c: &ReactionChange, m: &ChatMessage) -> Value {
    json!({
            "messageid": m.id,
            "chatid": m.conversation_id,
            "reaction": {
                "emoji": c.emoji,
                "profileid": c.user_id,
                "username": first_non_empty(&[&c.user_name, &c.user_id]),
                "timestamp": iso(c.at_ms),
            },
    })
}

// ---- rendering presence-service's events ----------------------------------------

fn presence_event(ev: &PresenceEvent) -> Vec<Emit> {
    match &ev.kind {
        Some(presence_event::Kind::StatusChanged(c)) => {
            let watchers = ev
                .audience
                .as_ref()
                .map(|a| a.user_ids.as_slice())
                .unwrap_or_default();
            status_changed(c, watchers)
        }
        Some(presence_event::Kind::TypingChanged(t)) => vec![typing_changed(t)],
        Some(presence_event::Kind::RoomPresenceChanged(c)) => vec![room_presence_changed(c)],
        None => Vec::new(),
    }
}

/// `user_joined_chat` (the user's first socket joined the chat) or
/// `user_left` (their last one left or closed), to the chat room except
/// the user's own sockets.
fn room_presence_changed(c: &RoomPresenceChange) -> Emit {
    let username = first_non_empty(&[&c.login_name, &c.user_name, &c.user_id]);
    let (event, data) = if c.joined {
        let role = if c.role.is_empty() { "member" } else { &c.role };
        let data = json!({
            "profileid": c.user_id,
            "username": username,
            "role": role,
            "isOnline": true,
            "joinedAt": iso(c.at_ms),
        });
        ("user_joined_chat", data)
    } else {
        (
            "user_left",
            json!({ "profileid": c.user_id, "username": username }),
        )
    };
    Emit {
        rooms: vec![conversation_room(&c.conversation_id)],
        except: vec![user_room(&c.user_id)],
        event,
        data,
    }
}

/// `user_status_changed` and the deprecated `user_online`/`user_offline`,
/// to every socket of the users who share a chat with the one who changed.
fn status_changed(c: &StatusChange, watchers: &[String]) -> Vec<Emit> {
    let rooms: Vec<String> = watchers
        .iter()
        .filter(|w| **w != c.user_id)
        .map(|w| user_room(w))
        .collect();
    if rooms.is_empty() {
        return Vec::new();
    }
    // Online: seen now. Offline: when the last socket closed.
    let last_seen = match (c.online, c.last_seen_ms, c.at_ms) {
        (true, _, at) if at > 0 => at,
        (_, seen, _) if seen > 0 => seen,
        (_, _, at) => at,
    };
    let except = vec![user_room(&c.user_id)];
    let status = Emit {
        rooms: rooms.clone(),
        except: except.clone(),
        event: "user_status_changed",
        data: json!({ "profileid": c.user_id, "isOnline": c.online, "lastSeen": iso(last_seen) }),
    };
    let legacy = Emit {
        rooms,
        except,
        event: if c.online {
            "user_online"
        } else {
            "user_offline"
        },
        data: json!({ "profileid": c.user_id }),
    };
    vec![status, legacy]
}

/// `user_typing` or `user_stopped_typing` (a stop, or a start that expired),
/// to the chat room, never to the typist's own sockets.
fn typing_changed(t: &TypingChange) -> Emit {
    let mut data = json!({
        "chatid": t.conversation_id,
        "profileid": t.user_id,
        "username": first_non_empty(&[&t.user_name, &t.user_id]),
    });
    let event = if t.typing {
        data["startedAt"] = json!(iso(t.started_at_ms));
        "user_typing"
    } else {
        "user_stopped_typing"
    };
    Emit {
        rooms: vec![conversation_room(&t.conversation_id)],
        except: vec![user_room(&t.user_id)],
        event,
        data,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use confab_proto::v1::{Audience, Reaction, ReadMessage};

    fn me() -> Identity {
        Identity {
            user_id: "u1".into(),
            name: "Ada".into(),
            username: String::new(),
            avatar: String::new(),
            expires_at_ms: None,
        }
    }

    #[test]
    fn profileid_must_be_the_subject() {
        let me = me();
        assert!(handshake(None, &me).is_ok());
        assert!(handshake(Some(&json!({"timestamp": 1})), &me).is_ok());
        assert!(handshake(Some(&json!({"profileid": "u1"})), &me).is_ok());
        assert_eq!(
            handshake(Some(&json!({"profileid": "u2"})), &me),
            Err("PROFILE_MISMATCH".into())
        );
        assert!(handshake(Some(&json!({"profileid": {}})), &me).is_err());
        let numeric = Identity {
            user_id: "42".into(),
            ..me
        };
        assert!(handshake(Some(&json!({"profileid": 42})), &numeric).is_ok());
    }

    #[test]
    fn chat_refs_are_objects_or_bare_ids() {
        assert_eq!(chat_ref(&json!({"chatid": "7"})).ok(), Some("7".into()));
        assert_eq!(chat_ref(&json!("7")).ok(), Some("7".into()));
        assert_eq!(chat_ref(&json!(7)).ok(), Some("7".into()));
        assert!(chat_ref(&json!({})).is_err());
        assert!(chat_ref(&json!({"chatid": ""})).is_err());
        assert!(chat_ref(&Value::Null).is_err());
    }

    #[test]
    fn new_message_has_the_seed_shape() {
        let reply = ChatMessage {
            id: "1".into(),
            conversation_id: "9".into(),
            sender_id: "u2".into(),
            text: "first".into(),
            kind: "text".into(),
            ..Default::default()
        };
        let m = ChatMessage {
            id: "2".into(),
            conversation_id: "9".into(),
            sender_id: "u1".into(),
            sender_name: "Ada".into(),
            text: "hi".into(),
            kind: "image".into(),
            client_message_id: "c1".into(),
            mentions: vec!["u2".into()],
            attachments: vec![Attachment {
                url: "https://x/y.png".into(),
                file_name: "y.png".into(),
                mime_type: "image/png".into(),
                size_bytes: 3,
            }],
            reactions: vec![Reaction {
                emoji: "👍".into(),
                user_ids: vec!["u2".into()],
                reacted_at_ms: vec![0],
            }],
            reply_to: Some(Box::new(reply)),
            ..Default::default()
        };
        let conv = ConversationInfo {
            id: "9".into(),
            kind: ConversationKind::Group as i32,
            name: "team".into(),
        };
        let v = new_message(&m, Some(&conv));
        assert_eq!(v["message"]["clientMessageId"], "c1");
        assert_eq!(v["message"]["attachments"][0]["type"], "image");
        assert_eq!(v["message"]["replyTo"]["content"], "first");
        assert_eq!(v["message"]["reactions"][0]["profileid"], "u2");
        assert_eq!(v["chat"]["chatType"], "group");
        assert_eq!(v["sender"]["username"], "Ada");
        assert_eq!(v["sender"]["displayname"], "Ada");
    }

    #[test]
    fn reactions_in_the_seed_name_and_the_app_names() {
        let change = |removed: bool| ChatEvent {
            seq: 0,
            audience: Some(Audience::default()),
            conversation: None,
            origin: String::new(),
            kind: Some(Kind::ReactionChanged(ReactionChange {
                message: Some(ChatMessage {
                    id: "2".into(),
                    conversation_id: "9".into(),
                    ..Default::default()
                }),
                user_id: "u2".into(),
                emoji: "👍".into(),
                removed,
                user_name: "Bob".into(),
                at_ms: 1_700_000_000_123,
            })),
        };
        let added = chat_event(&change(false));
        let names: Vec<&str> = added.iter().map(|e| e.event).collect();
        assert_eq!(names, ["message_reaction_added", "reaction_added"]);
        assert_eq!(added[0].data, added[1].data);
        assert_eq!(added[1].rooms, vec![conversation_room("9")]);
        assert_eq!(added[1].data["reaction"]["username"], "Bob");
        let removed = chat_event(&change(true));
        assert_eq!(removed.len(), 1);
        assert_eq!(removed[0].event, "reaction_removed");
        assert_eq!(removed[0].data["messageid"], "2");
    }

    #[test]
    fn read_receipts_go_to_each_sender() {
        let ev = ChatEvent {
            seq: 0,
            audience: Some(Audience::default()),
            conversation: None,
            origin: String::new(),
            kind: Some(Kind::MessagesRead(ReadReceipt {
                reader_id: "r".into(),
                read_at_ms: 1,
                messages: vec![
                    ReadMessage {
                        message_id: "1".into(),
                        sender_id: "a".into(),
                        client_message_id: "c".into(),
                    },
                    ReadMessage {
                        message_id: "2".into(),
                        sender_id: "b".into(),
                        client_message_id: String::new(),
                    },
                ],
                ..Default::default()
            })),
        };
        let emits = chat_event(&ev);
        assert_eq!(emits.len(), 2);
        assert_eq!(emits[0].rooms, vec![user_room("a")]);
        assert_eq!(emits[0].data["clientMessageId"], "c");
        assert_eq!(emits[1].data.get("clientMessageId"), None);
    }

    #[test]
    fn status_changes_reach_the_watchers_in_both_shapes() {
        let ev = |online: bool| PresenceEvent {
            seq: 0,
            audience: Some(Audience {
                user_ids: vec!["w1".into(), "w2".into()],
                ..Default::default()
            }),
            kind: Some(presence_event::Kind::StatusChanged(StatusChange {
                user_id: "u1".into(),
                user_name: "Ada".into(),
                login_name: String::new(),
                online,
                last_seen_ms: if online { 0 } else { 1_700_000_000_000 },
                socket_id: "s".into(),
                at_ms: 1_700_000_000_123,
            })),
        };
        let on = presence_event(&ev(true));
        assert_eq!(on.len(), 2);
        assert_eq!(on[0].event, "user_status_changed");
        assert_eq!(on[0].rooms, vec![user_room("w1"), user_room("w2")]);
        assert_eq!(on[0].except, vec![user_room("u1")]);
        assert_eq!(
            on[0].data,
            json!({"profileid": "u1", "isOnline": true, "lastSeen": "2023-11-14T22:13:20.123Z"})
        );
        assert_eq!(on[1].event, "user_online");
        assert_eq!(on[1].data, json!({"profileid": "u1"}));
        let off = presence_event(&ev(false));
        assert_eq!(off[0].data["isOnline"], false);
        assert_eq!(off[0].data["lastSeen"], "2023-11-14T22:13:20.000Z");
        assert_eq!(off[1].event, "user_offline");
        // Nobody shares a chat: nothing to say.
        let mut lonely = ev(true);
        lonely.audience = None;
        assert!(presence_event(&lonely).is_empty());
    }

    #[test]
    fn room_presence_is_user_joined_chat_and_user_left_for_the_others_in_the_chat() {
        let ev = |joined: bool, disconnected: bool| PresenceEvent {
            seq: 0,
            audience: Some(Audience {
                conversation_id: "9".into(),
                user_ids: vec!["u1".into(), "u2".into()],
                ..Default::default()
            }),
            kind: Some(presence_event::Kind::RoomPresenceChanged(
                RoomPresenceChange {
                    user_id: "u1".into(),
                    user_name: "Ada Lovelace".into(),
                    login_name: "ada".into(),
                    conversation_id: "9".into(),
                    joined,
                    at_ms: 1_700_000_000_123,
                    socket_id: "s".into(),
                    role: if joined {
                        "owner".into()
                    } else {
                        String::new()
                    },
                    disconnected,
                },
            )),
        };
        let joined = presence_event(&ev(true, false));
        assert_eq!(joined.len(), 1);
        assert_eq!(joined[0].event, "user_joined_chat");
        assert_eq!(joined[0].rooms, vec![conversation_room("9")]);
        assert_eq!(joined[0].except, vec![user_room("u1")]);
        assert_eq!(
            joined[0].data,
            json!({"profileid": "u1", "username": "ada", "role": "owner", "isOnline": true, "joinedAt": "2023-11-14T22:13:20.123Z"})
        );
        // A leave, or the last socket closing: both are user_left.
        for disconnected in [false, true] {
            let left = presence_event(&ev(false, disconnected));
            assert_eq!(left[0].event, "user_left");
            assert_eq!(left[0].data, json!({"profileid": "u1", "username": "ada"}));
            assert_eq!(left[0].except, vec![user_room("u1")]);
        }
    }

    #[test]
    fn typing_goes_to_the_chat_room_but_never_the_typist() {
        let ev = |typing: bool, expired: bool| PresenceEvent {
            seq: 0,
            audience: Some(Audience {
                conversation_id: "9".into(),
                user_ids: vec!["u1".into(), "u2".into()],
                except_user_ids: vec!["u1".into()],
                ..Default::default()
            }),
            kind: Some(presence_event::Kind::TypingChanged(TypingChange {
                user_id: "u1".into(),
                user_name: "Ada".into(),
                login_name: String::new(),
                conversation_id: "9".into(),
                typing,
                started_at_ms: 1_700_000_000_123,
                expired,
            })),
        };
        let start = presence_event(&ev(true, false));
        assert_eq!(start.len(), 1);
        assert_eq!(start[0].event, "user_typing");
        assert_eq!(start[0].rooms, vec![conversation_room("9")]);
        assert_eq!(start[0].except, vec![user_room("u1")]);
        assert_eq!(
            start[0].data,
            json!({"chatid": "9", "profileid": "u1", "username": "Ada", "startedAt": "2023-11-14T22:13:20.123Z"})
        );
        for (typing, expired) in [(false, false), (false, true)] {
            let stop = presence_event(&ev(typing, expired));
            assert_eq!(stop[0].event, "user_stopped_typing");
            assert_eq!(
                stop[0].data,
                json!({"chatid": "9", "profileid": "u1", "username": "Ada"})
            );
            assert_eq!(stop[0].except, vec![user_room("u1")]);
        }
    }
}
