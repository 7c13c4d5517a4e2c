//! `raven` — seed 002 (erion-raven's WebSocket events, Socket.IO 4).
//!
//! | seed event | direction | confab |
//! |---|---|---|
//! | `join_conversation {conversation_id}` | c→s | `CheckMembership`; members join the conversation room, others get `error` `JOIN_FAILED` |
//! | `leave_conversation {conversation_id}` | c→s | leaves the room; a missing id gets `error` `LEAVE_FAILED` |
//! | `send_message {conversation_id, text?, url?, fileName?}` | c→s | `SendMessage`; failures get `error` `SEND_MESSAGE_FAILED` |
//! | `new_message {id, conversationId, senderId, senderName, text?, url?, fileName?, createdAt}` | s→c | every socket in the conversation room, the sender's included |
//! | `error {code, message, details?}` | s→c | every refused request |
//! | `connect_error` | s→c | `AUTHENTICATION_REQUIRED`, `INVALID_TOKEN`, `TOKEN_EXPIRED`; `TOO_MANY_CONNECTIONS` for a user's socket over presence-service's per-user limit (the 11th) |
//! | `connect` / `disconnect` | — | the seed's "register user online" / "unregistered from online users": the socket's presence session starts and ends |
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
//! - **Presence without events.** The seed's server registers the user
//!   online on connect and unregisters them on disconnect, but sends its
//!   clients no presence or typing events, so raven renders none
//!   ([`no_presence`]) and has no typing handler. The registration itself is
//!   the contract layer's, as for every contract: each raven socket is a
//!   presence session from handshake to disconnect, so a raven user's first
//!   socket makes them online and their last one's end makes them offline
//!   for their peers on the other contracts (e.g. mern's `user_online` /
//!   `user_offline`, sent to the users who share a conversation with them).
//! - The per-user socket limit is reported like the seed's other handshake
//!   refusals: `connect_error` with the stable code `TOO_MANY_CONNECTIONS`
//!   as its message (the seed's list has `CONNECTION_FAILED` for "connection
//!   setup failed"; the specific code tells a frontend that retrying will
//!   not help until another tab closes).

use confab_proto::ServiceError;
use confab_proto::v1::{
    Attachment, ChatEvent, ChatMessage, CheckMembershipRequest, SendMessageRequest,
    chat_event::Kind,
};
use serde::Deserialize;
use serde_json::{Value, json};
use socketioxide::extract::{AckSender, Extension, SocketRef, State, TryData};

use super::{Contract, Emit, any_handshake, conversation_room, no_presence};
use crate::auth::Identity;
use crate::services::Services;
use crate::wire::{WireId, iso};

pub const CONTRACT: Contract = Contract {
    name: "raven",
    handshake: any_handshake,
    auth_error: None,
    on_connect,
    greet: None,
    on_disconnect: None,
    chat_event,
    presence_event: no_presence,
};

fn on_connect(s: &SocketRef, _: &Identity) {
    s.on("join_conversation", join_conversation);
    s.on("leave_conversation", leave_conversation);
    s.on("send_message", send_message);
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

fn bad_payload(e: impl std::fmt::Display) -> String {
    format!("INVALID_ARGUMENT: {e}")
}

fn service_failure(status: &tonic::Status) -> String {
    let e = ServiceError::from_status(status);
    format!("{}: {}", e.code, e.message)
}

/// Answers a request. A failure is emitted as the seed's `error` event; when
/// the client passed an ack (a confab addition the seed's frontends can
/// ignore) it also gets `{success: true, data}` or `{success: false, error}`.
fn answer(s: &SocketRef, ack: AckSender, result: Result<Value, Value>) {
    let reply = match result {
        Ok(data) => json!({ "success": true, "data": data }),
        Err(error) => {
            let _ = s.emit("error", &error);
            json!({ "success": false, "error": error })
        }
    };
    let _ = ack.send(&reply);
}

async fn join_conversation(
    s: SocketRef,
    TryData(p): TryData<ConversationRef>,
    State(svc): State<Services>,
    Extension(me): Extension<Identity>,
    ack: AckSender,
) {
    let fail = |details| {
        Err(error_payload(
            "JOIN_FAILED",
            "Failed to join conversation",
            details,
        ))
    };
    let result = match p {
        Err(e) => fail(bad_payload(e)),
        Ok(ConversationRef {
            conversation_id: WireId(id),
        }) => {
            let req = CheckMembershipRequest {
                conversation_id: id.clone(),
                user_id: me.user_id.clone(),
            };
            match svc.chat.clone().check_membership(req).await {
                Ok(r) if r.get_ref().is_member => {
                    s.join(conversation_room(&id));
                    Ok(json!({ "conversationId": id }))
                }
                Ok(_) => fail(format!(
                    "NOT_A_MEMBER: you are not a participant of conversation {id}"
                )),
                Err(status) => fail(service_failure(&status)),
            }
        }
    };
    answer(&s, ack, result);
}

async fn leave_conversation(s: SocketRef, TryData(p): TryData<ConversationRef>, ack: AckSender) {
    let result = match p {
        Ok(ConversationRef {
            conversation_id: WireId(id),
        }) => {
            s.leave(conversation_room(&id));
            Ok(json!({ "conversationId": id }))
        }
        Err(e) => Err(error_payload(
            "LEAVE_FAILED",
            "Failed to leave conversation",
            bad_payload(e),
        )),
    };
    answer(&s, ack, result);
}

async fn send_message(
    s: SocketRef,
    TryData(p): TryData<SendMessage>,
    State(svc): State<Services>,
    Extension(me): Extension<Identity>,
    ack: AckSender,
) {
    let fail = |details| {
        Err(error_payload(
            "SEND_MESSAGE_FAILED",
            "Failed to send message",
            details,
        ))
    };
    let p = match p {
        Ok(p) => p,
        Err(e) => return answer(&s, ack, fail(bad_payload(e))),
    };
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
    let result = match svc.chat.clone().send_message(req).await {
        Ok(r) => Ok(r
            .into_inner()
            .message
            .as_ref()
            .map(new_message)
            .unwrap_or_default()),
        Err(status) => fail(service_failure(&status)),
    };
    answer(&s, ack, result);
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
