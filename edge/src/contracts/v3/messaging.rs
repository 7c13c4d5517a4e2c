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
    fn into_request(self, me: &Identity) -> Result<SendMessageRequest, String> {
        let kind = self.message_type.unwrap_or_else(|| "text".into());
        if !MESSAGE_TYPES.contains(&kind.as_str()) {
            return Err(format!(
                "messageType must be one of {}",
                MESSAGE_TYPES.join(", ")
            ));
        }
        let mut attachments = Vec::new();
        for a in self.attachments.unwrap_or_default() {
            let size = a.size.unwrap_or(0);
            if size > MAX_ATTACHMENT_BYTES {
                return Err("an attachment is larger than 50 MB".into());
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
    State(edge): State<EdgeState>,
    Me(me): Me,
    mut reply: Reply,
) {
    let payload = p.unwrap_or_default();
    let echo_id = raw_field(&payload, "clientMessageId");
    if let Some(id) = &echo_id {
        reply = reply.echo("clientMessageId", id.clone());
    }
    if let Some(id) = raw_field(&payload, "chatid") {
        reply = reply.echo("chatid", id);
    }
    let req = match read::<SendMessage>(payload).and_then(|m| m.into_request(&me)) {
        Ok(req) => req,
        Err(why) => return reply.unreadable(why),
    };
    // A first send is broadcast by chat-service's event as `new_message`; a
    // duplicate is not, and only this socket hears of it again.
    let m = match edge.chat.clone().send_message(req).await {
        Ok(r) => r.into_inner().message.unwrap_or_default(),
        Err(st) => return reply.fail(ServiceError::from_status(&st)),
    };
    let client_id = echo_id.unwrap_or_default();
    let timestamp = iso(m.created_at_ms);
    reply.ok(json!({
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
    TryData(p): TryData<Value>,
    State(edge): State<EdgeState>,
    Me(me): Me,
    reply: Reply,
) {
    let p: MessageRef = match read(p.unwrap_or_default()) {
        Ok(p) => p,
        Err(why) => return reply.unreadable(why),
    };
    let reply = reply.echo("chatid", p.chatid.0.clone());
    // Each newly read message's sender hears `message_read` from the event.
    let req = MarkReadRequest {
        actor: Some(me.actor()),
        conversation_id: p.chatid.0.clone(),
        up_to_message_id: p.messageid.0.clone(),
    };
    match edge.chat.clone().mark_read(req).await {
        Ok(r) => {
            let r = r.into_inner();
            reply.ok(json!({
                "chatid": r.conversation_id,
                "messageid": p.messageid.0,
                "readAt": iso(r.read_at_ms),
                "read": r.message_ids,
            }));
        }
        Err(status) => reply.fail(ServiceError::from_status(&status)),
    }
}

pub(super) async fn react_to_message(
    TryData(p): TryData<Value>,
    State(edge): State<EdgeState>,
    Me(me): Me,
    reply: Reply,
) {
    let p: React = match read(p.unwrap_or_default()) {
        Ok(p) => p,
        Err(why) => return reply.unreadable(why),
    };
    let reply = reply.echo("chatid", p.chatid.0.clone());
    match react(&edge, &me, &p).await {
        // Everyone in the chat, the reactor included, hears
        // `message_reaction_added` from the event.
        Ok(m) => reply.ok(json!({ "messageid": m.id, "chatid": m.conversation_id })),
        Err(e) => reply.fail(e),
    }
}

pub(super) async fn react(
    edge: &EdgeState,
    me: &Identity,
    p: &React,
) -> Result<ChatMessage, ServiceError> {
    let mut chat = edge.chat.clone();
    let found = chat
        .get_message(GetMessageRequest {
            actor: Some(me.actor()),
            message_id: p.messageid.0.clone(),
        })
        .await
        .map_err(ServiceError::from)?
        .into_inner();
    if found.conversation_id != ids::canonical(&p.chatid.0) {
        return Err(ServiceError::new(
            ErrorCode::MessageNotFound,
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
    .map_err(ServiceError::from)
}

// ---- typing -------------------------------------------------------------------

pub(super) async fn typing_start(
    TryData(p): TryData<Value>,
    State(edge): State<EdgeState>,
    Me(me): Me,
    reply: Reply,
) {
    set_typing(&edge, &me, p.unwrap_or_default(), true, reply).await;
}

pub(super) async fn typing_stop(
    TryData(p): TryData<Value>,
    State(edge): State<EdgeState>,
    Me(me): Me,
    reply: Reply,
) {
    set_typing(&edge, &me, p.unwrap_or_default(), false, reply).await;
}

/// Typing in a chat: members only, starts throttled per user; seen by the
/// chat's other members as `user_typing` / `user_stopped_typing`.
pub(super) async fn set_typing(
    edge: &EdgeState,
    me: &Identity,
    payload: Value,
    on: bool,
    reply: Reply,
) {
    let Some(id) = chat_ref(&payload) else {
        return reply.unreadable(CHAT_REF);
    };
    let reply = reply.echo("chatid", id.clone());
    match typing::set_typing(edge, me, &ids::canonical(&id), on).await {
        Ok(_) => reply.ok(json!({ "chatid": id })),
        Err(e) => reply.fail(e),
    }
}
