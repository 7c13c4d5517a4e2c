//! `hvtsocial`'s messaging handlers: register, send, read, recall, typing, join and leave.

use super::*;

pub(super) async fn register_user(TryData(p): TryData<RegisterUser>, Me(me): Me, reply: Reply) {
    // Nothing to do on success: the socket joined its user room on connect.
    let Ok(p) = p else {
        return reply.unreadable("a user id, or {userId}");
    };
    let result =
        check_self(&p.user_id(), &me).map(|()| json!({ "userId": numeric_id(&me.user_id) }));
    reply.send(result);
}

pub(super) async fn send_message(
    State(edge): State<EdgeState>,
    Me(me): Me,
    Payload(p): Payload<SendMessage>,
    reply: Reply,
) {
    reply.send(send(&edge, &me, p).await);
}

/// Validates, finds the chat (creating the direct one when needed) and sends.
/// Success is seen as `receive_message`, which chat-service's event brings
/// to every member, the sender included.
pub(super) async fn send(edge: &EdgeState, me: &Identity, p: SendMessage) -> Outcome {
    if let Some(claimed) = &p.sender_id {
        check_self(claimed, me)?;
    }
    let kind = p.kind.or(p.message_type).unwrap_or_else(|| "text".into());
    if !TYPES.contains(&kind.as_str()) {
        return Err(ServiceError::invalid(format!(
            "type must be one of text, image, voice; got {kind:?}"
        )));
    }
    let text = p.text.or(p.content).unwrap_or_default();
    let media_url = p
        .media_url
        .or(p.media_url_snake)
        .filter(|u| !u.trim().is_empty());
    if kind != "text" && media_url.is_none() {
        return Err(ServiceError::invalid(format!(
            "a {kind} message needs mediaUrl"
        )));
    }
    if text.trim().is_empty() && media_url.is_none() {
        return Err(ServiceError::new(
            ErrorCode::EmptyMessage,
            "a message needs text or mediaUrl",
        ));
    }
    check_text(&text)?;
    let req = SendMessageRequest {
        actor: Some(me.actor()),
        text,
        attachments: media_url
            .map(|url| Attachment {
                url,
                ..Default::default()
            })
            .into_iter()
            .collect(),
        kind,
        reply_to_id: p.reply_to_id.map(|r| r.0).unwrap_or_default(),
        ..Default::default()
    };
    let mut chat = edge.chat.clone();
    // An id confab cannot have generated names no chat: treat it as absent.
    let chat_id = p.chat_id.map(|c| c.0).filter(|c| ids::parse(c).is_some());
    if let Some(chat_id) = chat_id {
        let first = chat
            .send_message(SendMessageRequest {
                conversation_id: chat_id,
                ..req.clone()
            })
            .await
            .map_err(ServiceError::from);
        match first {
            Err(e) if e.code == ErrorCode::ConversationNotFound && p.receiver_id.is_some() => {}
            sent => return sent.map(|r| sent_message(r.into_inner().message)),
        }
    }
    let Some(WireId(receiver)) = p.receiver_id else {
        return Err(ServiceError::invalid(
            "receiverId is required without an existing chatId",
        ));
    };
    let direct = chat
        .create_conversation(CreateConversationRequest {
            actor: Some(me.actor()),
            kind: ConversationKind::Direct as i32,
            member_ids: vec![receiver],
            ..Default::default()
        })
        .await
        .map_err(ServiceError::from)?
        .into_inner();
    chat.send_message(SendMessageRequest {
        conversation_id: direct.id,
        ..req
    })
    .await
    .map_err(ServiceError::from)
    .map(|r| sent_message(r.into_inner().message))
}

pub(super) fn sent_message(m: Option<ChatMessage>) -> Value {
    m.as_ref().map(receive_message).unwrap_or_default()
}

/// `messages_read` (the seed) and `mark_messages_read` (the app).
pub(super) async fn messages_read(
    State(edge): State<EdgeState>,
    Me(me): Me,
    Payload(p): Payload<MessagesRead>,
    reply: Reply,
) {
    let result = async {
        if let Some(claimed) = &p.user_id {
            check_self(claimed, &me)?;
        }
        let read = edge
            .chat
            .clone()
            .mark_read(MarkReadRequest {
                actor: Some(me.actor()),
                conversation_id: p.chat_id.0,
                up_to_message_id: String::new(),
            })
            .await
            .map_err(ServiceError::from)?
            .into_inner();
        Ok(json!({ "chatId": numeric_id(&read.conversation_id) }))
    }
    .await;
    reply.send(result);
}

/// `join_chat`: a member's socket joins the chat's room.
pub(super) async fn join_chat(
    s: SocketRef,
    State(edge): State<EdgeState>,
    Me(me): Me,
    TryData(p): TryData<ChatRef>,
    reply: Reply,
) {
    let Ok(p) = p else {
        return reply.unreadable("a chat id, or {chatId}");
    };
    let result = rooms::join(&edge, &s, &me, &p.chat_id())
        .await
        .map(|joined| json!({ "chatId": numeric_id(joined.member.id()) }));
    reply.send(result);
}

/// `leave_chat`: the socket leaves the chat's room (silently).
pub(super) async fn leave_chat(
    s: SocketRef,
    State(edge): State<EdgeState>,
    Me(me): Me,
    TryData(p): TryData<ChatRef>,
    reply: Reply,
) {
    let id = match p {
        Ok(p) => p.chat_id(),
        Err(_) => return reply.unreadable("a chat id, or {chatId}"),
    };
    rooms::leave(&edge, &s, &me, &id).await;
    reply.ok(json!({ "chatId": numeric_id(&ids::canonical(&id)) }));
}

pub(super) async fn recall_message(
    State(edge): State<EdgeState>,
    Me(me): Me,
    Payload(p): Payload<RecallMessage>,
    reply: Reply,
) {
    let result = async {
        let mut chat = edge.chat.clone();
        if let Some(WireId(chat_id)) = &p.chat_id {
            let m = chat
                .get_message(GetMessageRequest {
                    actor: Some(me.actor()),
                    message_id: p.message_id.0.clone(),
                })
                .await
                .map_err(ServiceError::from)?
                .into_inner();
            if !same_id(&m.conversation_id, chat_id) {
                return Err(ServiceError::new(
                    ErrorCode::MessageNotFound,
                    format!("message {} is not in chat {chat_id}", p.message_id.0),
                ));
            }
        }
        let m = chat
            .recall_message(RecallMessageRequest {
                actor: Some(me.actor()),
                message_id: p.message_id.0,
            })
            .await
            .map_err(ServiceError::from)?
            .into_inner();
        Ok(recalled(&m))
    }
    .await;
    reply.send(result);
}

pub(super) async fn typing(
    State(edge): State<EdgeState>,
    Me(me): Me,
    Payload(p): Payload<TypingPayload>,
    reply: Reply,
) {
    let result = async {
        if let Some(claimed) = &p.user_id {
            check_self(claimed, &me)?;
        }
        // Seen by the others as `user_typing`; a throttled start is dropped
        // without an error.
        let outcome = typing::set_typing(&edge, &me, &p.chat_id.0, p.is_typing).await?;
        Ok(json!({
            "chatId": numeric_id(&p.chat_id.0),
            "isTyping": p.is_typing,
            "relayed": outcome == Typing::Relayed,
        }))
    }
    .await;
    reply.send(result);
}

/// Two ids name the same thing (`"7"` and `"07"` do).
pub(super) fn same_id(a: &str, b: &str) -> bool {
    a == b || ids::parse(a).is_some_and(|x| ids::parse(b) == Some(x))
}
