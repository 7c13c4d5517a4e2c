//! The REST API (bearer JWT, JSON, ids as strings) for what a frontend or a
//! backend does outside a socket: create and list conversations, read
//! history, post a message; list the caller's notifications, their unread
//! count, and mark them read. A message posted here reaches sockets exactly
//! like one sent over Socket.IO, because both go through chat-service; a
//! notification marked read here updates the user's sockets the same way,
//! through notify-service's events.
//!
//! | route | what |
//! |---|---|
//! | `GET /api/notifications?before=&limit=&unreadOnly=` | `{notifications, nextBefore, unread}`, newest first |
//! | `POST /api/notifications/read` | body `{ids: [...]}` or `{all: true}` → `{unread, ids}` (ids newly marked; other users' ids are ignored) |
//! | `GET /api/notifications/unread-count` | `{count}` |
//!
//! Errors are `{"error": {"code", "message"}}` with the code from the
//! service (or `AUTHENTICATION_REQUIRED` / `INVALID_TOKEN` /
//! `TOKEN_EXPIRED` / `INVALID_ARGUMENT` from here).

use axum::extract::{FromRequestParts, Path, Query, State};
use axum::http::{StatusCode, request::Parts};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use confab_proto::v1::{self, ConversationKind};
use confab_proto::{ErrorCode, ServiceError};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::auth::{AuthError, Identity, find_token};
use crate::state::EdgeState;
use crate::wire::{WireId, iso};

pub fn router() -> Router<EdgeState> {
    Router::new()
        .route(
            "/api/conversations",
            get(list_conversations).post(create_conversation),
        )
        .route(
            "/api/conversations/{id}/messages",
            get(history).post(post_message),
        )
        .route("/api/notifications", get(list_notifications))
        .route("/api/notifications/read", post(mark_notifications_read))
        .route("/api/notifications/unread-count", get(unread_count))
        .merge(calls::router())
}

/// A REST failure.
pub enum ApiError {
    Auth(AuthError),
    Service(ServiceError),
    /// The body is over the edge's packet limit (413, `MESSAGE_TOO_LONG`).
    TooLarge,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code, message) = match self {
            ApiError::Auth(e) => (
                StatusCode::UNAUTHORIZED,
                e.to_string(),
                e.describe().to_string(),
            ),
            ApiError::TooLarge => (
                StatusCode::PAYLOAD_TOO_LARGE,
                ErrorCode::MessageTooLong.to_string(),
                "the request body is larger than this server accepts (CONFAB_MAX_PACKET_BYTES)"
                    .to_string(),
            ),
            ApiError::Service(e) => {
                let status = match e.code {
                    ErrorCode::InvalidArgument
                    | ErrorCode::MessageTooLong
                    | ErrorCode::EmptyMessage => StatusCode::BAD_REQUEST,
                    ErrorCode::ConversationNotFound
                    | ErrorCode::MessageNotFound
                    | ErrorCode::NotFound => StatusCode::NOT_FOUND,
                    ErrorCode::NotAMember | ErrorCode::NotAuthor | ErrorCode::PermissionDenied => {
                        StatusCode::FORBIDDEN
                    }
                    ErrorCode::MessageGone | ErrorCode::Conflict | ErrorCode::UserBusy => {
                        StatusCode::CONFLICT
                    }
                    ErrorCode::LimitExceeded => StatusCode::TOO_MANY_REQUESTS,
                    ErrorCode::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
                    ErrorCode::Internal => StatusCode::INTERNAL_SERVER_ERROR,
                };
                (status, e.code.to_string(), e.message)
            }
        };
        (
            status,
            Json(json!({ "error": { "code": code, "message": message } })),
        )
            .into_response()
    }
}

impl From<tonic::Status> for ApiError {
    fn from(s: tonic::Status) -> Self {
        ApiError::Service(ServiceError::from_status(&s))
    }
}

fn invalid(msg: impl Into<String>) -> ApiError {
    ApiError::Service(ServiceError::invalid(msg))
}

/// The caller, from a bearer token (or the `accessToken` cookie).
pub struct Caller(pub Identity);

impl FromRequestParts<EdgeState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        edge: &EdgeState,
    ) -> Result<Self, Self::Rejection> {
        let token = find_token(None, parts).ok_or(ApiError::Auth(AuthError::Required))?;
        edge.verifier
            .verify(&token)
            .map(Caller)
            .map_err(ApiError::Auth)
    }
}

/// A JSON body whose rejection is our error shape, not axum's plain text.
pub struct Body<T>(pub T);

impl<T: serde::de::DeserializeOwned> axum::extract::FromRequest<EdgeState> for Body<T> {
    type Rejection = ApiError;

    async fn from_request(
        req: axum::extract::Request,
        edge: &EdgeState,
    ) -> Result<Self, Self::Rejection> {
        match Json::<T>::from_request(req, edge).await {
            Ok(Json(v)) => Ok(Body(v)),
            Err(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => Err(ApiError::TooLarge),
            Err(e) => Err(invalid(e.body_text())),
        }
    }
}

pub fn conversation_json(c: &v1::Conversation) -> Value {
    json!({
        "id": c.id,
        "kind": if c.kind == ConversationKind::Direct as i32 { "direct" } else { "group" },
        "name": c.name,
        "members": c.members.iter().map(|m| json!({"userId": m.user_id, "role": m.role})).collect::<Vec<_>>(),
        "createdBy": c.created_by,
        "createdAt": iso(c.created_at_ms),
        "lastMessage": c.last_message.as_ref().map(message_json),
    })
}

pub fn message_json(m: &v1::ChatMessage) -> Value {
    json!({
        "id": m.id,
        "conversationId": m.conversation_id,
        "senderId": m.sender_id,
        "senderName": m.sender_name,
        "text": m.text,
        "kind": m.kind,
        "attachments": m.attachments.iter().map(|a| json!({"url": a.url, "fileName": a.file_name, "mimeType": a.mime_type, "size": a.size_bytes})).collect::<Vec<_>>(),
        "replyToId": Some(&m.reply_to_id).filter(|s| !s.is_empty()),
        "mentions": m.mentions,
        "reactions": m.reactions.iter().map(|r| json!({"emoji": r.emoji, "userIds": r.user_ids})).collect::<Vec<_>>(),
        "createdAt": iso(m.created_at_ms),
        "editedAt": (m.edited_at_ms > 0).then(|| iso(m.edited_at_ms)),
        "deleted": m.deleted,
        "recalled": m.recalled,
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateConversation {
    members: Vec<WireId>,
    #[serde(default)]
    name: Option<String>,
    /// "direct" or "group"; inferred when absent.
    #[serde(default)]
    kind: Option<String>,
}

async fn create_conversation(
    State(edge): State<EdgeState>,
    Caller(me): Caller,
    Body(body): Body<CreateConversation>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let kind = match body.kind.as_deref() {
        None => ConversationKind::Unspecified,
        Some("direct") => ConversationKind::Direct,
        Some("group") => ConversationKind::Group,
        Some(other) => {
            return Err(invalid(format!(
                "kind must be \"direct\" or \"group\", not {other:?}"
            )));
        }
    };
    let req = v1::CreateConversationRequest {
        actor: Some(me.actor()),
        kind: kind as i32,
        name: body.name.unwrap_or_default(),
        member_ids: body.members.into_iter().map(|m| m.0).collect(),
    };
    let conv = edge
        .chat
        .clone()
        .create_conversation(req)
        .await?
        .into_inner();
    Ok((StatusCode::CREATED, Json(conversation_json(&conv))))
}

async fn list_conversations(
    State(edge): State<EdgeState>,
    Caller(me): Caller,
) -> Result<Json<Value>, ApiError> {
    let list = edge
        .chat
        .clone()
        .list_conversations(v1::ListConversationsRequest {
            actor: Some(me.actor()),
        })
        .await?
        .into_inner();
    Ok(Json(Value::Array(
        list.conversations.iter().map(conversation_json).collect(),
    )))
}

#[derive(Deserialize)]
struct HistoryQuery {
    #[serde(default)]
    before: Option<String>,
    #[serde(default)]
    limit: Option<String>,
}

async fn history(
    State(edge): State<EdgeState>,
    Caller(me): Caller,
    Path(id): Path<String>,
    Query(q): Query<HistoryQuery>,
) -> Result<Json<Value>, ApiError> {
    let limit = match q.limit.as_deref().filter(|s| !s.is_empty()) {
        None => 0,
        Some(s) => s
            .parse::<u32>()
            .map_err(|_| invalid("limit must be a number from 1 to 100"))?,
    };
    let req = v1::GetHistoryRequest {
        actor: Some(me.actor()),
        conversation_id: id,
        before: q.before.unwrap_or_default(),
        limit,
    };
    let page = edge.chat.clone().get_history(req).await?.into_inner();
    Ok(Json(json!({
        "messages": page.messages.iter().map(message_json).collect::<Vec<_>>(),
        "nextBefore": Some(page.next_before).filter(|s| !s.is_empty()),
    })))
}

#[derive(Deserialize)]
struct PostMessage {
    text: String,
    #[serde(default, rename = "clientMessageId")]
    client_message_id: Option<String>,
    #[serde(default, rename = "replyToId")]
    reply_to_id: Option<WireId>,
}

async fn post_message(
    State(edge): State<EdgeState>,
    Caller(me): Caller,
    Path(id): Path<String>,
    Body(body): Body<PostMessage>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let req = v1::SendMessageRequest {
        actor: Some(me.actor()),
        conversation_id: id,
        text: body.text,
        client_message_id: body.client_message_id.unwrap_or_default(),
        reply_to_id: body.reply_to_id.map(|r| r.0).unwrap_or_default(),
        ..Default::default()
    };
    let sent = edge.chat.clone().send_message(req).await?.into_inner();
    let status = if sent.duplicate {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    Ok((
        status,
        Json(
            sent.message
                .as_ref()
                .map(message_json)
                .unwrap_or(Value::Null),
        ),
    ))
}

/// A notification as REST renders it (ids as strings, times as ISO 8601,
/// the domain payload as JSON).
pub fn notification_json(n: &v1::Notification) -> Value {
    json!({
        "id": n.id,
        "type": n.r#type,
        "eventType": n.event_type,
        "title": Some(&n.title).filter(|s| !s.is_empty()),
        "content": n.body,
        "actor": n.actor.as_ref().map(|a| json!({"id": a.id, "name": a.name, "avatar": a.avatar})),
        "link": Some(&n.link).filter(|s| !s.is_empty()),
        "payload": serde_json::from_str::<Value>(&n.payload_json).unwrap_or(Value::Null),
        "read": n.read,
        "createdAt": iso(n.created_at_ms),
        "readAt": (n.read_at_ms > 0).then(|| iso(n.read_at_ms)),
    })
}

#[derive(Deserialize)]
struct NotificationsQuery {
    #[serde(default)]
    before: Option<String>,
    #[serde(default)]
    limit: Option<String>,
    #[serde(default, rename = "unreadOnly")]
    unread_only: Option<String>,
}

async fn list_notifications(
    State(edge): State<EdgeState>,
    Caller(me): Caller,
    Query(q): Query<NotificationsQuery>,
) -> Result<Json<Value>, ApiError> {
    let limit = match q.limit.as_deref().filter(|s| !s.is_empty()) {
        None => 0,
        Some(s) => s
            .parse::<u32>()
            .map_err(|_| invalid("limit must be a number from 1 to 100"))?,
    };
    let unread_only = match q.unread_only.as_deref() {
        None | Some("") | Some("false") => false,
        Some("true") => true,
        Some(_) => return Err(invalid("unreadOnly must be true or false")),
    };
    let page = edge
        .notify
        .clone()
        .list_notifications(v1::ListNotificationsRequest {
            user_id: me.user_id,
            unread_only,
            limit,
            before: q.before.unwrap_or_default(),
        })
        .await?
        .into_inner();
    Ok(Json(json!({
        "notifications": page.notifications.iter().map(notification_json).collect::<Vec<_>>(),
        "nextBefore": Some(page.next_before).filter(|s| !s.is_empty()),
        "unread": page.unread,
    })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MarkRead {
    #[serde(default)]
    ids: Option<Vec<WireId>>,
    #[serde(default)]
    all: bool,
}

async fn mark_notifications_read(
    State(edge): State<EdgeState>,
    Caller(me): Caller,
    Body(body): Body<MarkRead>,
) -> Result<Json<Value>, ApiError> {
    let done = edge
        .notify
        .clone()
        .mark_notifications_read(v1::MarkNotificationsReadRequest {
            user_id: me.user_id,
            notification_ids: body
                .ids
                .unwrap_or_default()
                .into_iter()
                .map(|i| i.0)
                .collect(),
            all: body.all,
        })
        .await?
        .into_inner();
    Ok(Json(json!({
        "unread": done.unread,
        "ids": done.notification_ids,
    })))
}

async fn unread_count(
    State(edge): State<EdgeState>,
    Caller(me): Caller,
) -> Result<Json<Value>, ApiError> {
    let count = edge
        .notify
        .clone()
        .unread_count(v1::UnreadCountRequest {
            user_id: me.user_id,
        })
        .await?
        .into_inner();
    Ok(Json(json!({ "count": count.unread })))
}

// ---- calls ------------------------------------------------------------------

/// `GET /api/calls?conversation=<id>&limit=`: the caller's own call records
/// (as caller or callee), newest first, from call-service's
/// `ListCallRecords` (`limit` 1..=200, default 50).
mod calls {
    use super::*;

    pub fn router() -> Router<EdgeState> {
        Router::new().route("/api/calls", get(list_calls))
    }

    #[derive(Deserialize)]
    struct CallsQuery {
        conversation: Option<String>,
        limit: Option<String>,
    }

    async fn list_calls(
        State(edge): State<EdgeState>,
        Caller(me): Caller,
        Query(q): Query<CallsQuery>,
    ) -> Result<Json<Value>, ApiError> {
        let limit = match q.limit.as_deref().filter(|s| !s.is_empty()) {
            None => 0,
            Some(s) => s
                .parse::<u32>()
                .ok()
                .filter(|n| (1..=200).contains(n))
                .ok_or_else(|| invalid("limit must be a number from 1 to 200"))?,
        };
        let req = v1::ListCallRecordsRequest {
            actor: Some(me.actor()),
            conversation_id: q.conversation.unwrap_or_default(),
            limit,
        };
        let calls = edge
            .call
            .clone()
            .list_call_records(req)
            .await?
            .into_inner()
            .calls;
        Ok(Json(
            json!({ "calls": calls.iter().map(call_json).collect::<Vec<_>>() }),
        ))
    }

    /// One call record: times as ISO 8601 (`null` when unset).
    pub fn call_json(c: &v1::Call) -> Value {
        let at = |ms: i64| (ms > 0).then(|| iso(ms));
        let state = match v1::CallState::try_from(c.state).unwrap_or_default() {
            v1::CallState::Ringing => "ringing",
            v1::CallState::Ongoing => "ongoing",
            v1::CallState::Ended => "ended",
            v1::CallState::Rejected => "rejected",
            v1::CallState::Cancelled => "cancelled",
            v1::CallState::Missed => "missed",
            v1::CallState::Unspecified => "unknown",
        };
        json!({
            "id": c.id,
            "callerId": c.caller_id,
            "conversationId": Some(&c.conversation_id).filter(|s| !s.is_empty()),
            "groupCall": c.group_call,
            "media": if c.media == v1::CallMedia::Video as i32 { "video" } else { "audio" },
            "state": state,
            "endReason": Some(&c.end_reason).filter(|s| !s.is_empty()),
            "createdAt": at(c.created_at_ms),
            "answeredAt": at(c.answered_at_ms),
            "endedAt": at(c.ended_at_ms),
            "durationMs": c.duration_ms,
            "participants": c.participants.iter().map(|p| json!({
                "userId": p.user_id,
                "role": p.role,
                "joinedAt": at(p.joined_at_ms),
                "leftAt": at(p.left_at_ms),
            })).collect::<Vec<_>>(),
        })
    }
}
