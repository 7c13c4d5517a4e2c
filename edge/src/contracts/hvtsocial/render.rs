//! Renders chat-service's and presence-service's events as `hvtsocial`'s.

use super::*;

/// The seed's `receive_message` payload.
pub fn receive_message(m: &ChatMessage) -> Value {
    let chat_id = numeric_id(&m.conversation_id);
    let sender_id = numeric_id(&m.sender_id);
    let created_at = iso(m.created_at_ms);
    let mut v = json!({
        "id": numeric_id(&m.id),
        "chat_id": chat_id,
        "sender_id": sender_id,
        "text": m.text,
        "type": m.kind,
        "created_at": created_at,
        "sender": {
            "id": sender_id,
            "full_name": m.sender_name,
            "avatar": m.sender_avatar,
        },
        "chatId": chat_id,
        "senderId": sender_id,
        "createdAt": created_at,
        "content": m.text,
        "message_type": m.kind,
    });
    if let Some(url) = m.attachments.iter().map(|a| &a.url).find(|u| !u.is_empty()) {
        v["media_url"] = json!(url);
        v["mediaUrl"] = json!(url);
    }
    if let Some(reply) = &m.reply_to {
        v["reply_to_id"] = numeric_id(&reply.id);
        v["reply_content"] = json!(reply.text);
        v["reply_type"] = json!(reply.kind);
        v["reply_sender"] = json!(reply.sender_name);
    }
    v
}

/// The seed's `message_recalled` payload.
pub(super) fn recalled(m: &ChatMessage) -> Value {
    json!({
        "messageId": numeric_id(&m.id),
        "chatId": numeric_id(&m.conversation_id),
    })
}

pub(super) fn user_rooms<'a>(users: impl IntoIterator<Item = &'a String>) -> Vec<String> {
    users.into_iter().map(|u| user_room(u)).collect()
}

pub(super) fn chat_event(ev: &ChatEvent) -> Vec<Emit> {
    let members = ev
        .audience
        .as_ref()
        .map(|a| a.user_ids.as_slice())
        .unwrap_or_default();
    let emit = |users: Vec<String>, event, data| {
        if users.is_empty() {
            Vec::new()
        } else {
            vec![Emit::to(users, event, data)]
        }
    };
    match &ev.kind {
        Some(Kind::MessageCreated(m)) => {
            emit(user_rooms(members), "receive_message", receive_message(m))
        }
        Some(Kind::MessageRecalled(m) | Kind::MessageDeleted(m)) => {
            emit(user_rooms(members), "message_recalled", recalled(m))
        }
        Some(Kind::MessagesRead(r)) => {
            let chat_id = numeric_id(&r.conversation_id);
            let reader = numeric_id(&r.reader_id);
            let mut out = emit(
                user_rooms(r.sender_ids.iter().filter(|u| **u != r.reader_id)),
                "recent_chat_read",
                json!({ "chatId": chat_id, "userId": reader }),
            );
            // The app's receipt: the other members mark their messages read.
            out.extend(emit(
                user_rooms(members.iter().filter(|u| **u != r.reader_id)),
                "messages_read",
                json!({ "chatId": chat_id, "readBy": reader }),
            ));
            out
        }
        // The seed has no events for edits, reactions, delivery receipts or
        // membership changes.
        _ => Vec::new(),
    }
}

/// Renders presence: `user_online`/`user_offline` to the users who share a
/// chat with the user, `user_typing` to the chat's other members.
pub(super) fn presence_event(ev: &PresenceEvent) -> Vec<Emit> {
    let Some(audience) = ev.audience.as_ref() else {
        return Vec::new();
    };
    match &ev.kind {
        Some(PresenceKind::StatusChanged(c)) => {
            let watchers: Vec<&String> = audience
                .user_ids
                .iter()
                .filter(|u| **u != c.user_id)
                .collect();
            if watchers.is_empty() {
                return Vec::new();
            }
            let (event, last_seen) = if c.online {
                (
                    "user_online",
                    if c.at_ms > 0 { c.at_ms } else { c.last_seen_ms },
                )
            } else {
                (
                    "user_offline",
                    if c.last_seen_ms > 0 {
                        c.last_seen_ms
                    } else {
                        c.at_ms
                    },
                )
            };
            let user_id = numeric_id(&c.user_id);
            vec![
                Emit::to(
                    user_rooms(watchers.iter().copied()),
                    event,
                    json!({ "userId": user_id, "lastSeen": iso(last_seen) }),
                ),
                // What the app listens for (its server's event).
                Emit::to(
                    user_rooms(watchers),
                    "user_status_changed",
                    json!({
                        "userId": user_id,
                        "status": if c.online { "online" } else { "offline" },
                    }),
                ),
            ]
        }
        Some(PresenceKind::TypingChanged(t)) => {
            let others: Vec<&String> = audience
                .user_ids
                .iter()
                .filter(|u| **u != t.user_id && !audience.except_user_ids.contains(u))
                .collect();
            if others.is_empty() {
                return Vec::new();
            }
            vec![Emit {
                rooms: user_rooms(others),
                except: vec![user_room(&t.user_id)],
                event: "user_typing",
                data: json!({
                    "chatId": numeric_id(&t.conversation_id),
                    "userId": numeric_id(&t.user_id),
                    "isTyping": t.typing,
                    "userName": t.user_name,
                }),
            }]
        }
        // The seed has no room presence.
        _ => Vec::new(),
    }
}
