//! Renders chat-service's and presence-service's events as `dreamstudio`'s.

use super::*;

/// The seed's `message:new` payload.
pub fn new_message(m: &ChatMessage) -> Value {
    let kind = if m.kind.is_empty() { "text" } else { &m.kind };
    let file_url = m
        .attachments
        .first()
        .map(|a| a.url.as_str())
        .filter(|u| !u.is_empty());
    json!({
        "id": numeric_id(&m.id),
        "roomId": numeric_id(&m.conversation_id),
        "senderId": numeric_id(&m.sender_id),
        "content": m.text,
        "type": kind.to_uppercase(),
        "fileUrl": file_url,
        "createdAt": iso(m.created_at_ms),
        "sender": {
            "id": numeric_id(&m.sender_id),
            "name": m.sender_name,
        },
    })
}

/// The seed's `message:edited` payload (plus `roomId`).
pub(super) fn message_edited(m: &ChatMessage) -> Value {
    let at = if m.edited_at_ms > 0 {
        m.edited_at_ms
    } else {
        m.created_at_ms
    };
    json!({
        "messageId": numeric_id(&m.id),
        "roomId": numeric_id(&m.conversation_id),
        "content": m.text,
        "updatedAt": iso(at),
    })
}

/// The seed's `message:deleted` payload.
pub(super) fn message_deleted(m: &ChatMessage) -> Value {
    json!({
        "messageId": numeric_id(&m.id),
        "roomId": numeric_id(&m.conversation_id),
    })
}

pub(super) fn chat_event(ev: &ChatEvent) -> Vec<Emit> {
    let (event, m, data) = match &ev.kind {
        Some(Kind::MessageCreated(m)) => ("message:new", m, new_message(m)),
        Some(Kind::MessageEdited(m)) => ("message:edited", m, message_edited(m)),
        Some(Kind::MessageDeleted(m) | Kind::MessageRecalled(m)) => {
            ("message:deleted", m, message_deleted(m))
        }
        // The seed has no events for reactions, receipts or membership changes.
        _ => return Vec::new(),
    };
    vec![Emit::to(
        vec![conversation_room(&m.conversation_id)],
        event,
        data,
    )]
}

/// Renders presence: `user:online`/`user:offline` to the users who share a
/// room with the user, `user:typing`/`user:stop_typing` to the room except
/// the typist.
pub(super) fn presence_event(ev: &PresenceEvent) -> Vec<Emit> {
    let Some(audience) = ev.audience.as_ref() else {
        return Vec::new();
    };
    match &ev.kind {
        Some(PresenceKind::StatusChanged(c)) => {
            let watchers: Vec<String> = audience
                .user_ids
                .iter()
                .filter(|u| **u != c.user_id)
                .map(|u| user_room(u))
                .collect();
            if watchers.is_empty() {
                return Vec::new();
            }
            let (event, data) = if c.online {
                let at = if c.at_ms > 0 { c.at_ms } else { c.last_seen_ms };
                let data = json!({
                    "userId": numeric_id(&c.user_id),
                    "socketId": c.socket_id,
                    "timestamp": iso(at),
                });
                ("user:online", data)
            } else {
                let at = if c.last_seen_ms > 0 {
                    c.last_seen_ms
                } else {
                    c.at_ms
                };
                let data = json!({
                    "userId": numeric_id(&c.user_id),
                    "timestamp": iso(at),
                });
                ("user:offline", data)
            };
            vec![Emit::to(watchers, event, data)]
        }
        Some(PresenceKind::TypingChanged(t)) => {
            let room = if t.conversation_id.is_empty() {
                &audience.conversation_id
            } else {
                &t.conversation_id
            };
            if room.is_empty() {
                return Vec::new();
            }
            let (event, data) = if t.typing {
                let at = if t.started_at_ms > 0 {
                    t.started_at_ms
                } else {
                    chrono::Utc::now().timestamp_millis()
                };
                let data = json!({
                    "userId": numeric_id(&t.user_id),
                    "roomId": numeric_id(room),
                    "timestamp": iso(at),
                });
                ("user:typing", data)
            } else {
                let data = json!({
                    "userId": numeric_id(&t.user_id),
                    "roomId": numeric_id(room),
                });
                ("user:stop_typing", data)
            };
            let mut except = vec![user_room(&t.user_id)];
            except.extend(
                audience
                    .except_user_ids
                    .iter()
                    .filter(|u| **u != t.user_id)
                    .map(|u| user_room(u)),
            );
            vec![Emit {
                rooms: vec![conversation_room(room)],
                except,
                event,
                data,
            }]
        }
        Some(PresenceKind::RoomPresenceChanged(c)) => room_presence_changed(c),
        None => Vec::new(),
    }
}

/// `member:joined` (the user's first socket joined the room) or
/// `member:left` (their last one left it), to the room except the user's
/// own sockets. A last socket that disconnected is not told: the seed's
/// server says nothing to the room when a socket closes.
pub(super) fn room_presence_changed(c: &RoomPresenceChange) -> Vec<Emit> {
    if !c.joined && c.disconnected {
        return Vec::new();
    }
    vec![Emit {
        rooms: vec![conversation_room(&c.conversation_id)],
        except: vec![user_room(&c.user_id)],
        event: if c.joined {
            "member:joined"
        } else {
            "member:left"
        },
        data: member_payload(&c.user_id, &c.conversation_id, c.at_ms),
    }]
}
