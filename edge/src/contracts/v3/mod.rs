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
//! the seed names as its frontend) and the chat interface beside it
//! (`Website/Frontend/Components/Chat/ComprehensiveChatInterface.js`), send
//! and listen for, each checked against what confab emits. Where the app
//! departs from the seed, the seed's fields stay and the app's are served
//! beside them. It connects with `withCredentials: true`, the
//! `accessToken` cookie (`__Host-accessToken` over HTTPS), `auth: {profileid, timestamp}`,
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
//! | handshake `__Host-accessToken` cookie | c→s | the app's backend names its cookie so over HTTPS (`accessToken` in development): the edge reads `__Host-accessToken` first, then `accessToken` |
//! | `new_message` | s→c | read as `data.message?.chatid` and `data.sender?.profileid \|\| data.senderid`: both are there already. The chat view shows `new Date(data.message.createdAt)`: the message carries `createdAt`, the same instant as the seed's `timestamp` (also in offline delivery and in `replyTo`) |
//! | `user_typing {…, isTyping: true}` / `user_stopped_typing {…, isTyping: false}` | s→c | the chat view sets its indicator from `data.isTyping` on `user_typing` (it never listens for `user_stopped_typing`): both carry `isTyping` beside the seed's fields |
//! | `initiate_call {callId, chatid, callType, receiverId, caller}` | c→s | `receiverId` is the seed's `targetId` (which wins when both are sent); `caller` is ignored (the token says who calls) |
//! | `answer_call {callId, chatid, accepted: false}` | c→s | the Decline button: declines exactly as `call_rejected` (`RejectCall`): the caller and the callee's other tabs get `call_rejected`, a passed ack `{success: true, callId}`; `accepted: true` (or none) answers |
//! | `authenticated`, `message_delivered`, `message_read`, `user_status_changed`, `user_joined_chat`, `user_left`, `typing_start`/`typing_stop` | both | as in the seed table |
//!
//! Listeners of that file confab does not serve: `message_ack` (keyed by an
//! id the app never sends; the seed's ack and `message_sent` confirm a
//! send), `online_users_list` (the `get_online_users` ack answers the same
//! question) and `reactions_sync`; of the chat interface: `message_reaction`
//! (the seed's `message_reaction_added` and the app's `reaction_added` carry
//! it), `call_response` (the seed's `call_answered` / `call_rejected` say the
//! same) and `incoming_call.caller` (the seed's `callerId`, `callerName`,
//! `callerAvatar` are there). Its call events `call_offer` / `call_answer` /
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
use confab_proto::{ErrorCode, ServiceError, ids};
use serde::{Deserialize, Deserializer};
use serde_json::{Value, json};
use socketioxide::extract::{SocketRef, State, TryData};

use crate::auth::{AuthError, Identity};
use crate::contract::answer::{Answer, Answers, Args, Asked};
use crate::contract::me::Me;
use crate::contract::reply::Reply;
use crate::contract::{
    Calls, CatchUp, Contract, Emit, Heartbeat, Offline, TokenRefresh, plain_refusal, retry_secs,
};
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
    catch_up: CatchUp::OnJoin,
};

/// A refusal in the seed's terms (the module doc has the table):
/// - over a rate limit, `rate_limited {error, message, retryAfter}` and the
///   ack `{success: false, error, code: 'RATE_LIMITED', retryAfter}`;
/// - a request about a chat (`join_chat`, `leave_chat`, typing) gets
///   `chat_error`, with the `chatid` it named;
/// - a message request (`send_message`, `mark_message_read`,
///   `react_to_message`) gets `error` for a payload that cannot be read and
///   `chat_error` for chat-service's refusal — except `send_message` with
///   an ack, which is answered in the ack alone;
/// - a call request gets `error` without an ack, the ack alone with one;
/// - `get_online_users` is answered in its ack alone.
///
/// A passed ack gets `{success: false, error, code}` (with the
/// `clientMessageId` of a send).
fn refused(asked: &Asked<'_>, e: &ServiceError) -> Answer {
    let echo_client_id = |ack: &mut Value| {
        if let Some(id) = asked.echoed("clientMessageId") {
            ack["clientMessageId"] = id.clone();
        }
    };
    if e.code == ErrorCode::LimitExceeded {
        let retry_after = retry_secs(e);
        let mut ack = json!({
            "success": false,
            "error": e.message,
            "code": "RATE_LIMITED",
            "retryAfter": retry_after,
        });
        echo_client_id(&mut ack);
        let event =
            json!({ "error": "rate_limited", "message": e.message, "retryAfter": retry_after });
        return Answer {
            emit: vec![("rate_limited", Args::One(event))],
            ack: Some(ack),
        };
    }
    let mut ack = json!({ "success": false, "error": e.message, "code": e.code.as_str() });
    echo_client_id(&mut ack);
    let chat_error = || {
        let mut payload = json!({
            "error": e.code.as_str(),
            "data": { "event": asked.event, "message": e.message },
        });
        if let Some(id) = asked.echoed("chatid") {
            payload["chatid"] = id.clone();
        }
        ("chat_error", Args::One(payload))
    };
    let error = || {
        let payload = json!({
            "error": e.code.as_str(),
            "code": e.code.as_str(),
            "message": e.message,
            "details": { "event": asked.event },
        });
        ("error", Args::One(payload))
    };
    let emit = match asked.event {
        "join_chat" | "leave_chat" | "typing_start" | "typing_stop" => vec![chat_error()],
        "send_message" if asked.wants_ack => Vec::new(),
        "send_message" | "mark_message_read" | "react_to_message" if asked.unreadable => {
            vec![error()]
        }
        "send_message" | "mark_message_read" | "react_to_message" => vec![chat_error()],
        "get_online_users" => Vec::new(),
        _ if asked.wants_ack => Vec::new(),
        _ => vec![error()],
    };
    Answer {
        emit,
        ack: Some(ack),
    }
}

/// A request on a socket whose token expired: `auth_required` (the seed's,
/// no payload); a refresh with a bad token or another user's: `auth_error`
/// as at the handshake. A passed ack gets `{success: false, error, code}`.
fn token_refused(_: &Asked<'_>, e: AuthError) -> Answer {
    let event = if e == AuthError::Expired {
        ("auth_required", Args::None)
    } else {
        let (event, payload) = auth_error(e);
        (event, Args::One(payload))
    };
    Answer {
        emit: vec![event],
        ack: Some(json!({ "success": false, "error": e.describe(), "code": e.to_string() })),
    }
}

/// The seed's `tokens_refreshed {expiresAt, refreshed}` (and the ack, if any).
fn tokens_refreshed(me: &Identity) -> Answer {
    let payload = json!({ "expiresAt": me.expires_at_ms.map(iso), "refreshed": true });
    let mut ack = payload.clone();
    ack["success"] = json!(true);
    Answer {
        emit: vec![("tokens_refreshed", Args::One(payload))],
        ack: Some(ack),
    }
}

mod calls;
mod messaging;
mod offline;
mod render;

use messaging::*;
use render::*;

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
async fn get_online_users(State(edge): State<EdgeState>, Me(me): Me, reply: Reply) {
    let result = async {
        let peers = edge
            .chat
            .clone()
            .list_peers(ListPeersRequest {
                user_id: me.user_id.clone(),
            })
            .await
            .map_err(ServiceError::from)?
            .into_inner()
            .user_ids;
        if peers.is_empty() {
            return Ok(Vec::new());
        }
        let presence = edge
            .presence
            .clone()
            .get_presence(GetPresenceRequest { user_ids: peers })
            .await
            .map_err(ServiceError::from)?
            .into_inner();
        Ok(presence
            .users
            .iter()
            .filter(|u| u.online && u.user_id != me.user_id)
            .map(|u| json!({ "profileid": u.user_id, "isOnline": true, "lastSeen": iso(u.last_seen_ms) }))
            .collect::<Vec<_>>())
    }
    .await;
    reply.send(result.map(|users| json!({ "users": users })));
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

/// A payload as `T`, or why it cannot be read.
fn read<T: serde::de::DeserializeOwned>(payload: Value) -> Result<T, String> {
    serde_json::from_value(payload).map_err(|e| e.to_string())
}

// ---- rooms ------------------------------------------------------------------

/// `{chatid}` or the chat id alone (a string or a number).
fn chat_ref(payload: &Value) -> Option<String> {
    let id = match payload {
        Value::Object(o) => o.get("chatid").cloned().unwrap_or_default(),
        other => other.clone(),
    };
    serde_json::from_value::<WireId>(id).ok().map(|w| w.0)
}

/// Why a chat reference cannot be read.
const CHAT_REF: &str = "chatid is required: a chat id, or {chatid}";

/// Checks membership, joins the room, tells presence-service (which tells
/// the others on a first join); answers `chat_joined`.
async fn join_chat(
    s: SocketRef,
    TryData(p): TryData<Value>,
    State(edge): State<EdgeState>,
    Me(me): Me,
    reply: Reply,
) {
    let Some(id) = chat_ref(&p.unwrap_or_default()) else {
        return reply.unreadable(CHAT_REF);
    };
    let reply = reply.echo("chatid", id.clone());
    match rooms::join(&edge, &s, &me, &id).await {
        Ok(joined) => {
            let joined = chat_joined(&joined.member.conversation, &joined.member.role);
            let _ = s.emit("chat_joined", &joined);
            reply.ok(joined);
        }
        Err(e) => reply.fail(e),
    }
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
    State(edge): State<EdgeState>,
    Me(me): Me,
    reply: Reply,
) {
    let Some(id) = chat_ref(&p.unwrap_or_default()) else {
        return reply.unreadable(CHAT_REF);
    };
    rooms::leave(&edge, &s, &me, &id).await;
    reply.ok(json!({ "chatid": id }));
}

#[cfg(test)]
mod tests;
