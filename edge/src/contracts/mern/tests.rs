//! Unit tests of the contract's renderers and payload checks.

use super::*;

fn msg() -> ChatMessage {
    ChatMessage {
        id: "7".into(),
        conversation_id: "3".into(),
        sender_id: "u1".into(),
        sender_name: "Alice".into(),
        text: "hi".into(),
        kind: "text".into(),
        created_at_ms: 1_700_000_000_123,
        ..Default::default()
    }
}

#[test]
fn new_messages_skip_the_sending_socket_only() {
    let ev = ChatEvent {
        kind: Some(Kind::MessageCreated(msg())),
        origin: "abc".into(),
        ..Default::default()
    };
    let emits = chat_event(&ev);
    assert_eq!(emits.len(), 1);
    assert_eq!(emits[0].rooms, vec!["conv:3".to_string()]);
    assert_eq!(emits[0].except, vec!["socket:abc".to_string()]);
    let m = &emits[0].data["message"];
    assert_eq!(m["_id"], "7");
    assert_eq!(m["sender"]["username"], "Alice");
    assert_eq!(m["createdAt"], "2023-11-14T22:13:20.123Z");
}

#[test]
fn deleted_messages_read_as_deleted() {
    let mut m = msg();
    m.recalled = true;
    m.text.clear();
    let v = message(&m);
    assert_eq!(v["content"], DELETED_TEXT);
    assert_eq!(v["deleted"], true);
}

#[test]
fn presence_reaches_peers_and_typing_skips_the_typist() {
    use confab_proto::v1::{Audience, StatusChange, TypingChange};
    let status = |online| PresenceEvent {
        seq: 0,
        audience: Some(Audience {
            user_ids: vec!["u2".into(), "u3".into()],
            ..Default::default()
        }),
        kind: Some(presence_event::Kind::StatusChanged(StatusChange {
            user_id: "u1".into(),
            user_name: "Alice".into(),
            online,
            last_seen_ms: 1_700_000_000_123,
            ..Default::default()
        })),
    };
    let on = presence_event(&status(true));
    assert_eq!(
        on[0].rooms,
        vec!["user:u2".to_string(), "user:u3".to_string()]
    );
    assert_eq!(on[0].event, "user_online");
    assert_eq!(on[0].data, json!({ "userId": "u1", "username": "Alice" }));
    let off = presence_event(&status(false));
    assert_eq!(off[0].event, "user_offline");
    assert_eq!(off[0].data["lastSeen"], "2023-11-14T22:13:20.123Z");
    // The login name, when the token has one, is the seed's `username`.
    let mut login = status(true);
    if let Some(presence_event::Kind::StatusChanged(c)) = &mut login.kind {
        c.login_name = "alice".into();
    }
    assert_eq!(presence_event(&login)[0].data["username"], "alice");

    let typing = |typing, expired| PresenceEvent {
        seq: 0,
        audience: Some(Audience {
            conversation_id: "3".into(),
            user_ids: vec!["u1".into(), "u2".into()],
            except_user_ids: vec!["u1".into()],
            ..Default::default()
        }),
        kind: Some(presence_event::Kind::TypingChanged(TypingChange {
            user_id: "u1".into(),
            conversation_id: "3".into(),
            typing,
            expired,
            ..Default::default()
        })),
    };
    let start = presence_event(&typing(true, false));
    assert_eq!(start[0].rooms, vec!["conv:3".to_string()]);
    assert_eq!(start[0].except, vec!["user:u1".to_string()]);
    assert_eq!(
        start[0].data,
        json!({ "userId": "u1", "username": "u1", "conversationId": "3", "isTyping": true })
    );
    assert_eq!(
        presence_event(&typing(false, true))[0].data["isTyping"],
        false
    );
}
