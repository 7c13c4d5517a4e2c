//! Renders chat-service's and presence-service's events as `v3`'s.

use super::*;

// ---- rendering chat-service's events ------------------------------------------------

pub(super) fn chat_event(ev: &ChatEvent) -> Vec<Emit> {
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

/// The seed's message object (also used for `replyTo`), with the
/// published frontend's `createdAt` beside the seed's `timestamp`.
pub(super) fn message(m: &ChatMessage) -> Value {
    let sent_at = iso(m.created_at_ms);
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
        "timestamp": sent_at,
        // The published frontend reads the time here (module doc).
        "createdAt": sent_at,
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

pub(super) fn attachment_type(mime: &str) -> &'static str {
    match mime.split('/').next().unwrap_or_default() {
        "image" => "image",
        "video" => "video",
        "audio" => "audio",
        _ => "file",
    }
}

/// One `message_delivered` per recipient (the seed's `deliveredTo` is one
/// id), to every socket of the sender.
pub(super) fn message_delivered(d: &DeliveryReceipt) -> Vec<Emit> {
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
pub(super) fn messages_read(r: &ReadReceipt) -> Vec<Emit> {
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
pub(super) fn reaction_changed(c: &ReactionChange) -> Vec<Emit> {
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
pub(super) fn reaction_payload(c: &ReactionChange, m: &ChatMessage) -> Value {
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

pub(super) fn presence_event(ev: &PresenceEvent) -> Vec<Emit> {
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
pub(super) fn room_presence_changed(c: &RoomPresenceChange) -> Emit {
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
pub(super) fn status_changed(c: &StatusChange, watchers: &[String]) -> Vec<Emit> {
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
/// each with the published frontend's `isTyping`, to the chat room, never
/// to the typist's own sockets.
pub(super) fn typing_changed(t: &TypingChange) -> Emit {
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
    // The published frontend sets its indicator from `isTyping` (module doc).
    data["isTyping"] = json!(t.typing);
    Emit {
        rooms: vec![conversation_room(&t.conversation_id)],
        except: vec![user_room(&t.user_id)],
        event,
        data,
    }
}
