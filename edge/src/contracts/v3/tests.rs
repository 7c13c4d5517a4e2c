//! Unit tests of the contract's renderers and payload checks.

use super::*;
use confab_proto::v1::{Audience, Reaction, ReadMessage};

fn me() -> Identity {
    Identity {
        user_id: "u1".into(),
        name: "Ada".into(),
        username: String::new(),
        avatar: String::new(),
        expires_at_ms: None,
    }
}

#[test]
fn profileid_must_be_the_subject() {
    let me = me();
    assert!(handshake(None, &me).is_ok());
    assert!(handshake(Some(&json!({"timestamp": 1})), &me).is_ok());
    assert!(handshake(Some(&json!({"profileid": "u1"})), &me).is_ok());
    assert_eq!(
        handshake(Some(&json!({"profileid": "u2"})), &me),
        Err("PROFILE_MISMATCH".into())
    );
    assert!(handshake(Some(&json!({"profileid": {}})), &me).is_err());
    let numeric = Identity {
        user_id: "42".into(),
        ..me
    };
    assert!(handshake(Some(&json!({"profileid": 42})), &numeric).is_ok());
}

#[test]
fn chat_refs_are_objects_or_bare_ids() {
    assert_eq!(chat_ref(&json!({"chatid": "7"})), Some("7".into()));
    assert_eq!(chat_ref(&json!("7")), Some("7".into()));
    assert_eq!(chat_ref(&json!(7)), Some("7".into()));
    assert!(chat_ref(&json!({})).is_none());
    assert!(chat_ref(&json!({"chatid": ""})).is_none());
    assert!(chat_ref(&Value::Null).is_none());
}

#[test]
fn new_message_has_the_seed_shape() {
    let reply = ChatMessage {
        id: "1".into(),
        conversation_id: "9".into(),
        sender_id: "u2".into(),
        text: "first".into(),
        kind: "text".into(),
        ..Default::default()
    };
    let m = ChatMessage {
        id: "2".into(),
        conversation_id: "9".into(),
        sender_id: "u1".into(),
        sender_name: "Ada".into(),
        text: "hi".into(),
        kind: "image".into(),
        client_message_id: "c1".into(),
        mentions: vec!["u2".into()],
        attachments: vec![Attachment {
            url: "https://x/y.png".into(),
            file_name: "y.png".into(),
            mime_type: "image/png".into(),
            size_bytes: 3,
        }],
        reactions: vec![Reaction {
            emoji: "👍".into(),
            user_ids: vec!["u2".into()],
            reacted_at_ms: vec![0],
        }],
        reply_to: Some(Box::new(reply)),
        created_at_ms: 1_700_000_000_123,
        ..Default::default()
    };
    let conv = ConversationInfo {
        id: "9".into(),
        kind: ConversationKind::Group as i32,
        name: "team".into(),
    };
    let v = new_message(&m, Some(&conv));
    assert_eq!(v["message"]["clientMessageId"], "c1");
    // The published frontend's createdAt: the same instant as timestamp.
    assert_eq!(v["message"]["timestamp"], "2023-11-14T22:13:20.123Z");
    assert_eq!(v["message"]["createdAt"], v["message"]["timestamp"]);
    assert_eq!(v["message"]["attachments"][0]["type"], "image");
    assert_eq!(v["message"]["replyTo"]["content"], "first");
    assert_eq!(v["message"]["reactions"][0]["profileid"], "u2");
    assert_eq!(v["chat"]["chatType"], "group");
    assert_eq!(v["sender"]["username"], "Ada");
    assert_eq!(v["sender"]["displayname"], "Ada");
}

#[test]
fn reactions_in_the_seed_name_and_the_app_names() {
    let change = |removed: bool| ChatEvent {
        seq: 0,
        audience: Some(Audience::default()),
        conversation: None,
        origin: String::new(),
        kind: Some(Kind::ReactionChanged(ReactionChange {
            message: Some(ChatMessage {
                id: "2".into(),
                conversation_id: "9".into(),
                ..Default::default()
            }),
            user_id: "u2".into(),
            emoji: "👍".into(),
            removed,
            user_name: "Bob".into(),
            at_ms: 1_700_000_000_123,
        })),
    };
    let added = chat_event(&change(false));
    let names: Vec<&str> = added.iter().map(|e| e.event).collect();
    assert_eq!(names, ["message_reaction_added", "reaction_added"]);
    assert_eq!(added[0].data, added[1].data);
    assert_eq!(added[1].rooms, vec![conversation_room("9")]);
    assert_eq!(added[1].data["reaction"]["username"], "Bob");
    let removed = chat_event(&change(true));
    assert_eq!(removed.len(), 1);
    assert_eq!(removed[0].event, "reaction_removed");
    assert_eq!(removed[0].data["messageid"], "2");
}

#[test]
fn read_receipts_go_to_each_sender() {
    let ev = ChatEvent {
        seq: 0,
        audience: Some(Audience::default()),
        conversation: None,
        origin: String::new(),
        kind: Some(Kind::MessagesRead(ReadReceipt {
            reader_id: "r".into(),
            read_at_ms: 1,
            messages: vec![
                ReadMessage {
                    message_id: "1".into(),
                    sender_id: "a".into(),
                    client_message_id: "c".into(),
                },
                ReadMessage {
                    message_id: "2".into(),
                    sender_id: "b".into(),
                    client_message_id: String::new(),
                },
            ],
            ..Default::default()
        })),
    };
    let emits = chat_event(&ev);
    assert_eq!(emits.len(), 2);
    assert_eq!(emits[0].rooms, vec![user_room("a")]);
    assert_eq!(emits[0].data["clientMessageId"], "c");
    assert_eq!(emits[1].data.get("clientMessageId"), None);
}

#[test]
fn status_changes_reach_the_watchers_in_both_shapes() {
    let ev = |online: bool| PresenceEvent {
        seq: 0,
        audience: Some(Audience {
            user_ids: vec!["w1".into(), "w2".into()],
            ..Default::default()
        }),
        kind: Some(presence_event::Kind::StatusChanged(StatusChange {
            user_id: "u1".into(),
            user_name: "Ada".into(),
            login_name: String::new(),
            online,
            last_seen_ms: if online { 0 } else { 1_700_000_000_000 },
            socket_id: "s".into(),
            at_ms: 1_700_000_000_123,
        })),
    };
    let on = presence_event(&ev(true));
    assert_eq!(on.len(), 2);
    assert_eq!(on[0].event, "user_status_changed");
    assert_eq!(on[0].rooms, vec![user_room("w1"), user_room("w2")]);
    assert_eq!(on[0].except, vec![user_room("u1")]);
    assert_eq!(
        on[0].data,
        json!({"profileid": "u1", "isOnline": true, "lastSeen": "2023-11-14T22:13:20.123Z"})
    );
    assert_eq!(on[1].event, "user_online");
    assert_eq!(on[1].data, json!({"profileid": "u1"}));
    let off = presence_event(&ev(false));
    assert_eq!(off[0].data["isOnline"], false);
    assert_eq!(off[0].data["lastSeen"], "2023-11-14T22:13:20.000Z");
    assert_eq!(off[1].event, "user_offline");
    // Nobody shares a chat: nothing to say.
    let mut lonely = ev(true);
    lonely.audience = None;
    assert!(presence_event(&lonely).is_empty());
}

#[test]
fn room_presence_is_user_joined_chat_and_user_left_for_the_others_in_the_chat() {
    let ev = |joined: bool, disconnected: bool| PresenceEvent {
        seq: 0,
        audience: Some(Audience {
            conversation_id: "9".into(),
            user_ids: vec!["u1".into(), "u2".into()],
            ..Default::default()
        }),
        kind: Some(presence_event::Kind::RoomPresenceChanged(
            RoomPresenceChange {
                user_id: "u1".into(),
                user_name: "Ada Lovelace".into(),
                login_name: "ada".into(),
                conversation_id: "9".into(),
                joined,
                at_ms: 1_700_000_000_123,
                socket_id: "s".into(),
                role: if joined {
                    "owner".into()
                } else {
                    String::new()
                },
                disconnected,
            },
        )),
    };
    let joined = presence_event(&ev(true, false));
    assert_eq!(joined.len(), 1);
    assert_eq!(joined[0].event, "user_joined_chat");
    assert_eq!(joined[0].rooms, vec![conversation_room("9")]);
    assert_eq!(joined[0].except, vec![user_room("u1")]);
    assert_eq!(
        joined[0].data,
        json!({"profileid": "u1", "username": "ada", "role": "owner", "isOnline": true, "joinedAt": "2023-11-14T22:13:20.123Z"})
    );
    // A leave, or the last socket closing: both are user_left.
    for disconnected in [false, true] {
        let left = presence_event(&ev(false, disconnected));
        assert_eq!(left[0].event, "user_left");
        assert_eq!(left[0].data, json!({"profileid": "u1", "username": "ada"}));
        assert_eq!(left[0].except, vec![user_room("u1")]);
    }
}

#[test]
fn typing_goes_to_the_chat_room_but_never_the_typist() {
    let ev = |typing: bool, expired: bool| PresenceEvent {
        seq: 0,
        audience: Some(Audience {
            conversation_id: "9".into(),
            user_ids: vec!["u1".into(), "u2".into()],
            except_user_ids: vec!["u1".into()],
            ..Default::default()
        }),
        kind: Some(presence_event::Kind::TypingChanged(TypingChange {
            user_id: "u1".into(),
            user_name: "Ada".into(),
            login_name: String::new(),
            conversation_id: "9".into(),
            typing,
            started_at_ms: 1_700_000_000_123,
            expired,
        })),
    };
    let start = presence_event(&ev(true, false));
    assert_eq!(start.len(), 1);
    assert_eq!(start[0].event, "user_typing");
    assert_eq!(start[0].rooms, vec![conversation_room("9")]);
    assert_eq!(start[0].except, vec![user_room("u1")]);
    assert_eq!(
        start[0].data,
        json!({"chatid": "9", "profileid": "u1", "username": "Ada",
               "startedAt": "2023-11-14T22:13:20.123Z", "isTyping": true})
    );
    for (typing, expired) in [(false, false), (false, true)] {
        let stop = presence_event(&ev(typing, expired));
        assert_eq!(stop[0].event, "user_stopped_typing");
        assert_eq!(
            stop[0].data,
            json!({"chatid": "9", "profileid": "u1", "username": "Ada", "isTyping": false})
        );
        assert_eq!(stop[0].except, vec![user_room("u1")]);
    }
}
