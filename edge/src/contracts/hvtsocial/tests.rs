//! Unit tests of the contract's renderers and payload checks.

use super::*;
use confab_proto::v1::{Audience, ReadReceipt, StatusChange, TypingChange};

fn event(kind: Kind) -> ChatEvent {
    ChatEvent {
        seq: 0,
        audience: Some(Audience {
            user_ids: vec!["100001".into(), "u2".into()],
            conversation_id: "7".into(),
            ..Default::default()
        }),
        conversation: None,
        origin: String::new(),
        kind: Some(kind),
    }
}

fn message() -> ChatMessage {
    ChatMessage {
        id: "42".into(),
        conversation_id: "7".into(),
        sender_id: "100001".into(),
        sender_name: "Ada".into(),
        text: "hi".into(),
        kind: "image".into(),
        attachments: vec![Attachment {
            url: "https://cdn/x.png".into(),
            ..Default::default()
        }],
        created_at_ms: 1_700_000_000_123,
        ..Default::default()
    }
}

#[test]
fn new_messages_go_to_every_member_with_numeric_ids() {
    let out = chat_event(&event(Kind::MessageCreated(message())));
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].event, "receive_message");
    assert_eq!(out[0].rooms, vec!["user:100001", "user:u2"]);
    let d = &out[0].data;
    assert_eq!(d["id"], json!(42));
    assert_eq!(d["chat_id"], json!(7));
    assert_eq!(
        d["sender"],
        json!({"id": 100001, "full_name": "Ada", "avatar": ""})
    );
    assert_eq!(d["media_url"], json!("https://cdn/x.png"));
    assert_eq!(d["created_at"], json!("2023-11-14T22:13:20.123Z"));
}

#[test]
fn deletions_render_as_recalls_and_reads_go_to_the_senders() {
    let out = chat_event(&event(Kind::MessageDeleted(message())));
    assert_eq!(out[0].event, "message_recalled");
    assert_eq!(out[0].data, json!({"messageId": 42, "chatId": 7}));
    let read = ReadReceipt {
        conversation_id: "7".into(),
        reader_id: "u2".into(),
        sender_ids: vec!["100001".into()],
        ..Default::default()
    };
    let out = chat_event(&event(Kind::MessagesRead(read)));
    assert_eq!(out[0].rooms, vec!["user:100001"]);
    assert_eq!(out[0].data, json!({"chatId": 7, "userId": "u2"}));
    // The app's receipt goes to the other members.
    assert_eq!(out[1].event, "messages_read");
    assert_eq!(out[1].rooms, vec!["user:100001"]);
    assert_eq!(out[1].data, json!({"chatId": 7, "readBy": "u2"}));
    assert!(chat_event(&event(Kind::MessageEdited(message()))).is_empty());
}

fn presence(user_ids: &[&str], except: &[&str], kind: PresenceKind) -> PresenceEvent {
    PresenceEvent {
        seq: 0,
        audience: Some(Audience {
            user_ids: user_ids.iter().map(|u| u.to_string()).collect(),
            except_user_ids: except.iter().map(|u| u.to_string()).collect(),
            ..Default::default()
        }),
        kind: Some(kind),
    }
}

#[test]
fn status_goes_to_the_watchers_with_last_seen() {
    let online = StatusChange {
        user_id: "100001".into(),
        online: true,
        at_ms: 1_700_000_000_123,
        ..Default::default()
    };
    let out = presence_event(&presence(
        &["u2", "100003"],
        &[],
        PresenceKind::StatusChanged(online.clone()),
    ));
    assert_eq!(out.len(), 2);
    assert_eq!(out[0].event, "user_online");
    assert_eq!(out[0].rooms, vec!["user:u2", "user:100003"]);
    assert_eq!(
        out[0].data,
        json!({"userId": 100001, "lastSeen": "2023-11-14T22:13:20.123Z"})
    );
    assert_eq!(out[1].event, "user_status_changed");
    assert_eq!(out[1].rooms, out[0].rooms);
    assert_eq!(out[1].data, json!({"userId": 100001, "status": "online"}));
    let offline = StatusChange {
        online: false,
        last_seen_ms: 1_700_000_000_000,
        at_ms: 1_700_000_000_500,
        ..online
    };
    let out = presence_event(&presence(
        &["u2"],
        &[],
        PresenceKind::StatusChanged(offline.clone()),
    ));
    assert_eq!(out[0].event, "user_offline");
    assert_eq!(out[1].data, json!({"userId": 100001, "status": "offline"}));
    assert_eq!(
        out[0].data,
        json!({"userId": 100001, "lastSeen": "2023-11-14T22:13:20.000Z"})
    );
    assert!(presence_event(&presence(&[], &[], PresenceKind::StatusChanged(offline))).is_empty());
}

#[test]
fn typing_goes_to_the_other_members_never_the_typist() {
    let t = TypingChange {
        user_id: "100001".into(),
        user_name: "Ada".into(),
        conversation_id: "7".into(),
        typing: true,
        ..Default::default()
    };
    let out = presence_event(&presence(
        &["100001", "u2"],
        &["100001"],
        PresenceKind::TypingChanged(t.clone()),
    ));
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].event, "user_typing");
    assert_eq!(out[0].rooms, vec!["user:u2"]);
    assert_eq!(out[0].except, vec!["user:100001"]);
    assert_eq!(
        out[0].data,
        json!({"chatId": 7, "userId": 100001, "isTyping": true, "userName": "Ada"})
    );
    let stop = TypingChange {
        typing: false,
        expired: true,
        ..t
    };
    let out = presence_event(&presence(
        &["100001", "u2"],
        &["100001"],
        PresenceKind::TypingChanged(stop),
    ));
    assert_eq!(out[0].data["isTyping"], json!(false));
}
