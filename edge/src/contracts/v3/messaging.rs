//! `v3`'s messaging handlers: send, read receipts, reactions, typing.

use super::*;

// ---- messages -----------------------------------------------------------------

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct SendMessage {
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
pub(super) struct AttachmentIn {
    url: String,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    size: Option<u64>,
    #[serde(default)]
    mimetype: Option<String>,
}

/// An optional id: absent, `null` or `""` is none.
pub(super) fn optional_id<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
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
pub(super) fn raw_field(payload: &Value, field: &str) -> Option<String> {
    match payload.get(field)? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

pub(super) async fn send_message(
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
pub(super) fn rate_limited(
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
pub(super) struct MessageRef {
    messageid: WireId,
    chatid: WireId,
}

#[derive(Deserialize)]
pub(super) struct React {
    messageid: WireId,
    chatid: WireId,
    emoji: String,
}

pub(super) async fn mark_message_read(
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

pub(super) async fn react_to_message(
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
pub(super) async fn react(
    svc: &EdgeState,
    me: &Identity,
    p: &React,
) -> Result<ChatMessage, Refusal> {
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

pub(super) async fn typing_start(
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

pub(super) async fn typing_stop(
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
pub(super) async fn set_typing(
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
