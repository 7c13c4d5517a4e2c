//! Renders chat-service's and presence-service's events as `mern`'s.

use super::*;

// ---- rendering -----------------------------------------------------------

/// The seed's message document.
pub fn message(m: &ChatMessage) -> Value {
    let gone = m.deleted || m.recalled;
    let username = first_non_empty(&[&m.sender_username, &m.sender_name, &m.sender_id]);
    let mut v = json!({
        "_id": m.id,
        "conversationId": m.conversation_id,
        "sender": { "_id": m.sender_id, "username": username, "avatar": m.sender_avatar },
        "content": if gone { DELETED_TEXT } else { m.text.as_str() },
        "type": if m.kind.is_empty() { "text" } else { m.kind.as_str() },
        "status": "sent",
        "edited": m.edited_at_ms > 0,
        "deleted": gone,
        "createdAt": iso(m.created_at_ms),
        "updatedAt": iso(m.created_at_ms.max(m.edited_at_ms)),
    });
    if m.edited_at_ms > 0 {
        v["editedAt"] = json!(iso(m.edited_at_ms));
    }
    if let Some(a) = m.attachments.first() {
        if !a.url.is_empty() {
            v["fileUrl"] = json!(a.url);
        }
        if !a.file_name.is_empty() {
            v["fileName"] = json!(a.file_name);
        }
    }
    v
}

pub(super) fn chat_event(ev: &ChatEvent) -> Vec<Emit> {
    let room = |conversation_id: &str| vec![conversation_room(conversation_id)];
    match &ev.kind {
        Some(Kind::MessageCreated(m)) => {
            let payload = json!({ "message": message(m), "conversationId": m.conversation_id });
            let mut e = Emit::to(room(&m.conversation_id), "receive_message", payload);
            if !ev.origin.is_empty() {
                e.except.push(socket_room(&ev.origin));
            }
            vec![e]
        }
        Some(Kind::MessageEdited(m)) => vec![Emit::to(
            room(&m.conversation_id),
            "message_edited",
            json!({
                "messageId": m.id,
                "newContent": m.text,
                "editedAt": iso(m.edited_at_ms),
                "conversationId": m.conversation_id,
            }),
        )],
        // mern has no recall: a recalled message is gone like a deleted one.
        Some(Kind::MessageDeleted(m) | Kind::MessageRecalled(m)) => vec![Emit::to(
            room(&m.conversation_id),
            "message_deleted",
            json!({ "messageId": m.id, "conversationId": m.conversation_id }),
        )],
        Some(Kind::MessagesRead(r)) => vec![Emit::to(
            room(&r.conversation_id),
            "messages_read",
            json!({
                "conversationId": r.conversation_id,
                "messageIds": r.message_ids,
                "readBy": r.reader_id,
            }),
        )],
        // No seed events for reactions, deliveries or membership changes.
        _ => Vec::new(),
    }
}

pub(super) fn presence_event(ev: &PresenceEvent) -> Vec<Emit> {
    let audience = ev.audience.clone().unwrap_or_default();
    match &ev.kind {
        Some(presence_event::Kind::StatusChanged(c)) => {
            let rooms: Vec<String> = audience.user_ids.iter().map(|u| user_room(u)).collect();
            let username = first_non_empty(&[&c.login_name, &c.user_name, &c.user_id]);
            let e = if c.online {
                Emit::to(
                    rooms,
                    "user_online",
                    json!({ "userId": c.user_id, "username": username }),
                )
            } else {
                Emit::to(
                    rooms,
                    "user_offline",
                    json!({
                        "userId": c.user_id,
                        "username": username,
                        "lastSeen": iso(c.last_seen_ms),
                    }),
                )
            };
            vec![e]
        }
        Some(presence_event::Kind::TypingChanged(t)) => {
            let mut e = Emit::to(
                vec![conversation_room(&t.conversation_id)],
                "typing_status",
                json!({
                    "userId": t.user_id,
                    "username": first_non_empty(&[&t.login_name, &t.user_name, &t.user_id]),
                    "conversationId": t.conversation_id,
                    "isTyping": t.typing && !t.expired,
                }),
            );
            e.except.push(user_room(&t.user_id));
            vec![e]
        }
        // No seed event for entering or leaving a conversation's room.
        _ => Vec::new(),
    }
}
