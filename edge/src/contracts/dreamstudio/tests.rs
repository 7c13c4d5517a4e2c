//! Unit tests of the contract's renderers and payload checks.

use super::*;
use confab_proto::v1::{Audience, StatusChange, TypingChange};

#[test]
fn room_presence_is_member_joined_and_member_left_but_not_a_disconnect() {
    let ev = |joined: bool, disconnected: bool| PresenceEvent {
        seq: 0,
        audience: Some(Audience {
            conversation_id: "7".into(),
            user_ids: vec!["5".into(), "6".into()],
            ..Default::default()
        }),
        kind: Some(PresenceKind::RoomPresenceChanged(RoomPresenceChange {
            user_id: "5".into(),
            conversation_id: "7".into(),
            joined,
            at_ms: 1_700_000_000_123,
            disconnected,
            ..Default::default()
        })),
    };
    let joined = presence_event(&ev(true, false));
    assert_eq!(joined.len(), 1);
    assert_eq!(joined[0].event, "member:joined");
    assert_eq!(joined[0].rooms, vec![conversation_room("7")]);
    assert_eq!(joined[0].except, vec![user_room("5")]);
    assert_eq!(
        joined[0].data,
        json!({"userId": 5, "roomId": 7, "timestamp": "2023-11-14T22:13:20.123Z"})
    );
    let left = presence_event(&ev(false, false));
    assert_eq!(left[0].event, "member:left");
    assert_eq!(left[0].data, joined[0].data);
    assert!(presence_event(&ev(false, true)).is_empty());
}

fn me(id: &str) -> Identity {
    Identity {
        user_id: id.into(),
        name: String::new(),
        username: String::new(),
        avatar: String::new(),
        expires_at_ms: None,
    }
}

#[test]
fn handshake_user_id_must_be_the_subject() {
    let me = me("100042");
    assert!(handshake(None, &me).is_ok());
    assert!(handshake(Some(&json!({"token": "t"})), &me).is_ok());
    assert!(handshake(Some(&json!({"userId": 100042})), &me).is_ok());
    assert!(handshake(Some(&json!({"userId": "100042"})), &me).is_ok());
    assert!(handshake(Some(&json!({"userId": 7})), &me).is_err());
    assert!(handshake(Some(&json!({"userId": {"id": 1}})), &me).is_err());
}

#[test]
fn renders_ids_as_numbers_and_type_upper_case() {
    let m = ChatMessage {
        id: "12".into(),
        conversation_id: "3".into(),
        sender_id: "100042".into(),
        sender_name: "Ada".into(),
        text: "hi".into(),
        kind: "text".into(),
        created_at_ms: 1_700_000_000_000,
        ..Default::default()
    };
    let v = new_message(&m);
    assert_eq!(v["id"], json!(12));
    assert_eq!(v["roomId"], json!(3));
    assert_eq!(v["sender"], json!({"id": 100042, "name": "Ada"}));
    assert_eq!(v["type"], json!("TEXT"));
    assert_eq!(v["fileUrl"], Value::Null);
    let ev = ChatEvent {
        kind: Some(Kind::MessageRecalled(m)),
        ..Default::default()
    };
    let out = chat_event(&ev);
    assert_eq!(out[0].event, "message:deleted");
    assert_eq!(out[0].rooms, vec![conversation_room("3")]);
    assert_eq!(out[0].data, json!({"messageId": 12, "roomId": 3}));
}

fn presence(audience: Audience, kind: PresenceKind) -> PresenceEvent {
    PresenceEvent {
        seq: 0,
        audience: Some(audience),
        kind: Some(kind),
    }
}

#[test]
fn status_goes_to_the_watchers_in_the_seed_shape() {
    let watchers = Audience {
        user_ids: vec!["100002".into(), "u3".into()],
        ..Default::default()
    };
    let online = StatusChange {
        user_id: "100001".into(),
        online: true,
        socket_id: "abc".into(),
        at_ms: 1_700_000_000_123,
        ..Default::default()
    };
    let out = presence_event(&presence(
        watchers.clone(),
        PresenceKind::StatusChanged(online.clone()),
    ));
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].event, "user:online");
    assert_eq!(out[0].rooms, vec!["user:100002", "user:u3"]);
    assert_eq!(
        out[0].data,
        json!({"userId": 100001, "socketId": "abc", "timestamp": "2023-11-14T22:13:20.123Z"})
    );
    let offline = StatusChange {
        online: false,
        last_seen_ms: 1_700_000_000_000,
        ..online
    };
    let out = presence_event(&presence(watchers, PresenceKind::StatusChanged(offline)));
    assert_eq!(out[0].event, "user:offline");
    assert_eq!(
        out[0].data,
        json!({"userId": 100001, "timestamp": "2023-11-14T22:13:20.000Z"})
    );
}

#[test]
fn typing_goes_to_the_room_except_the_typist() {
    let members = Audience {
        conversation_id: "7".into(),
        user_ids: vec!["100001".into(), "100002".into()],
        except_user_ids: vec!["100001".into()],
        ..Default::default()
    };
    let start = TypingChange {
        user_id: "100001".into(),
        conversation_id: "7".into(),
        typing: true,
        started_at_ms: 1_700_000_000_000,
        ..Default::default()
    };
    let out = presence_event(&presence(
        members.clone(),
        PresenceKind::TypingChanged(start.clone()),
    ));
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].event, "user:typing");
    assert_eq!(out[0].rooms, vec![conversation_room("7")]);
    assert_eq!(out[0].except, vec!["user:100001"]);
    assert_eq!(
        out[0].data,
        json!({"userId": 100001, "roomId": 7, "timestamp": "2023-11-14T22:13:20.000Z"})
    );
    let stop = TypingChange {
        typing: false,
        expired: true,
        ..start
    };
    let out = presence_event(&presence(members, PresenceKind::TypingChanged(stop)));
    assert_eq!(out[0].event, "user:stop_typing");
    assert_eq!(out[0].data, json!({"userId": 100001, "roomId": 7}));
}
