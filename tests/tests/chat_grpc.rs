//! chat-service over real gRPC: conversations, sending (validation and
//! idempotency), edit / delete / recall, reactions and replies, read and
//! delivered receipts, history pagination, catch-up, the `Subscribe`
//! event stream, and membership changes taking effect from the next message.
//!
//! Each scenario is an `async fn(client)` run against a fresh chat-service
//! twice: once over SQLite (always) and once over PostgreSQL (when
//! `DATABASE_URL` is set; skipped with a note otherwise, a failure when
//! `CI=true`). Every run gets its own database, and user ids carry a random
//! suffix. Errors are checked by their stable code, read back from the status
//! details with `ServiceError::from_status`.

use std::future::Future;
use std::time::Duration;

use confab_proto::v1::chat_service_client::ChatServiceClient;
use confab_proto::v1::{
    Actor, AddMembersRequest, Attachment, CatchUpRequest, ChatEvent, ChatMessage,
    CheckMembershipRequest, Conversation, ConversationKind, CreateConversationRequest,
    DeleteMessageRequest, Delivery, EditMessageRequest, GetConversationRequest, GetHistoryRequest,
    GetHistoryResponse, GetMessageRequest, ListConversationsRequest, ListPeersRequest,
    MarkDeliveredRequest, MarkReadRequest, MarkReadResponse, Membership, ReactToMessageRequest,
    RecallMessageRequest, RecordDeliveriesRequest, RemoveMemberRequest, SendMessageRequest,
    SendMessageResponse, SubscribeRequest, TakeOfflineMessagesRequest, TakeOfflineMessagesResponse,
    chat_event::Kind,
};
use confab_proto::{ErrorCode, ServiceError};
use confab_tests::db;
use tonic::transport::Channel;
use tonic::{Response, Status, Streaming};

type Client = ChatServiceClient<Channel>;

/// Generates, for every scenario, `sqlite::<name>` and `postgres::<name>`.
macro_rules! scenarios {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test]
                async fn $name() {
                    super::on_sqlite(super::$name).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test]
                async fn $name() {
                    super::on_postgres(super::$name).await;
                }
            )*
        }
    };
}

scenarios!(
    conversations,
    send_message_rules,
    idempotent_send,
    edit_delete_recall,
    reactions_and_replies,
    read_and_delivered,
    batched_deliveries,
    history_pagination,
    catch_up,
    subscribe_streams_events,
    membership_changes_take_effect_at_once,
    offline_queue,
    offline_queue_of_one_conversation,
    sends_at_the_same_moment,
    sends_from_many_tasks_in_order_per_conversation,
);

async fn on_sqlite<F, Fut>(scenario: F)
where
    F: FnOnce(Client) -> Fut,
    Fut: Future<Output = ()>,
{
    let (url, _dir) = db::sqlite_url().await;
    let (handle, client) = db::spawn_chat(&url).await;
    scenario(client).await;
    handle.shutdown().await;
}

async fn on_postgres<F, Fut>(scenario: F)
where
    F: FnOnce(Client) -> Fut,
    Fut: Future<Output = ()>,
{
    let Some(url) = db::postgres_url().await else {
        eprintln!("DATABASE_URL is not set: skipping the PostgreSQL run");
        return;
    };
    let (handle, client) = db::spawn_chat(&url).await;
    scenario(client).await;
    handle.shutdown().await;
    // Only a passing run cleans up: a failing one leaves its data to look at.
    db::drop_postgres(&url).await;
}

// ---- scenarios -----------------------------------------------------------

/// Group creation, find-or-create of direct conversations, listing.
async fn conversations(mut client: Client) {
    let (alice, bob, carol, dave) = (user("alice"), user("bob"), user("carol"), user("dave"));

    let group = client
        .create_conversation(CreateConversationRequest {
            actor: actor(&alice),
            kind: ConversationKind::Group as i32,
            name: "team".into(),
            // The actor and a repeated id are folded away.
            member_ids: vec![bob.clone(), alice.clone(), carol.clone(), bob.clone()],
        })
        .await
        .expect("create group")
        .into_inner();
    assert!(!group.id.is_empty());
    assert_eq!(group.kind, ConversationKind::Group as i32);
    assert_eq!(group.name, "team");
    assert_eq!(group.created_by, alice);
    assert!(group.created_at_ms > 0);
    assert_eq!(
        members(&group),
        vec![
            (alice.clone(), "owner".to_string()),
            (bob.clone(), "member".to_string()),
            (carol.clone(), "member".to_string()),
        ]
    );

    // Direct conversations are found, not created twice, whoever asks.
    let direct = create_direct(&mut client, &alice, &bob).await;
    assert_eq!(direct.kind, ConversationKind::Direct as i32);
    assert_ne!(direct.id, group.id);
    assert_eq!(create_direct(&mut client, &alice, &bob).await.id, direct.id);
    assert_eq!(create_direct(&mut client, &bob, &alice).await.id, direct.id);
    let mut direct_members: Vec<String> = members(&direct).into_iter().map(|m| m.0).collect();
    direct_members.sort();
    let mut pair = vec![alice.clone(), bob.clone()];
    pair.sort();
    assert_eq!(direct_members, pair);

    // Racing find-or-creates of one pair still make one conversation.
    let (erin, frank) = (user("erin"), user("frank"));
    let mut racers = tokio::task::JoinSet::new();
    for i in 0..4 {
        let mut client = client.clone();
        let (from, to) = if i % 2 == 0 {
            (erin.clone(), frank.clone())
        } else {
            (frank.clone(), erin.clone())
        };
        racers.spawn(async move { create_direct(&mut client, &from, &to).await.id });
    }
    let raced = racers.join_all().await;
    assert!(raced.iter().all(|id| *id == raced[0]), "{raced:?}");
    assert_eq!(list_ids(&mut client, &erin).await, vec![raced[0].clone()]);

    // A direct conversation has exactly one other member.
    let err = client
        .create_conversation(CreateConversationRequest {
            actor: actor(&alice),
            kind: ConversationKind::Direct as i32,
            name: String::new(),
            member_ids: vec![bob.clone(), carol.clone()],
        })
        .await;
    assert_eq!(code(err), ErrorCode::InvalidArgument);

    // Each user lists exactly the conversations they are in.
    assert_eq!(
        sorted(list_ids(&mut client, &alice).await),
        sorted(vec![group.id.clone(), direct.id.clone()])
    );
    assert_eq!(
        sorted(list_ids(&mut client, &bob).await),
        sorted(vec![group.id.clone(), direct.id.clone()])
    );
    assert_eq!(list_ids(&mut client, &carol).await, vec![group.id.clone()]);
    assert!(list_ids(&mut client, &dave).await.is_empty());

    // Peers: everyone sharing a conversation, once, never the user.
    let peers = |user: &str| {
        let mut client = client.clone();
        let user_id = user.to_string();
        async move {
            client
                .list_peers(ListPeersRequest { user_id })
                .await
                .expect("list peers")
                .into_inner()
                .user_ids
        }
    };
    assert_eq!(
        peers(&alice).await,
        sorted(vec![bob.clone(), carol.clone()])
    );
    assert_eq!(
        peers(&carol).await,
        sorted(vec![alice.clone(), bob.clone()])
    );
    assert!(peers(&dave).await.is_empty());

    // Only members may look at a conversation.
    let got = client
        .get_conversation(GetConversationRequest {
            actor: actor(&carol),
            conversation_id: group.id.clone(),
        })
        .await
        .expect("member gets the conversation")
        .into_inner();
    assert_eq!(got.id, group.id);
    let err = client
        .get_conversation(GetConversationRequest {
            actor: actor(&dave),
            conversation_id: group.id.clone(),
        })
        .await;
    assert_eq!(code(err), ErrorCode::NotAMember);
}

/// Sending: what is stored, who may send, and what is refused.
async fn send_message_rules(mut client: Client) {
    let (alice, bob, mallory) = (user("alice"), user("bob"), user("mallory"));
    let conv = create_group(&mut client, &alice, &[&bob]).await;

    let sent = send(&mut client, &alice, &conv.id, "hello").await;
    assert!(!sent.duplicate);
    let msg = sent.message.expect("message");
    assert!(!msg.id.is_empty());
    assert_eq!(msg.conversation_id, conv.id);
    assert_eq!(msg.sender_id, alice);
    assert_eq!(msg.sender_name, format!("{alice} name"));
    assert_eq!(msg.text, "hello");
    assert_eq!(msg.kind, "text");
    assert!(msg.created_at_ms > 0);
    assert_eq!(msg.edited_at_ms, 0);
    assert!(!msg.deleted && !msg.recalled);

    // The conversation now shows it as its last message.
    let listed = client
        .list_conversations(ListConversationsRequest { actor: actor(&bob) })
        .await
        .expect("list")
        .into_inner();
    assert_eq!(listed.conversations.len(), 1);
    assert_eq!(
        listed.conversations[0].last_message.as_ref().map(|m| &m.id),
        Some(&msg.id)
    );

    // With several conversations, each lists its own newest message and the
    // most recently active comes first; one without messages has none.
    let quiet = create_group(&mut client, &bob, &[&alice]).await;
    let other = create_group(&mut client, &bob, &[&alice]).await;
    let newer = send(&mut client, &alice, &other.id, "newer")
        .await
        .message
        .expect("message");
    let listed = client
        .list_conversations(ListConversationsRequest { actor: actor(&bob) })
        .await
        .expect("list")
        .into_inner();
    let summary: Vec<(String, Option<String>)> = listed
        .conversations
        .iter()
        .map(|c| {
            (
                c.id.clone(),
                c.last_message.as_ref().map(|m| m.text.clone()),
            )
        })
        .collect();
    assert_eq!(summary[0], (other.id.clone(), Some("newer".to_string())));
    assert!(summary.contains(&(conv.id.clone(), Some("hello".to_string()))));
    assert!(summary.contains(&(quiet.id.clone(), None)));
    assert_eq!(listed.conversations[0].members.len(), 2);
    assert_eq!(newer.conversation_id, other.id);

    let err = try_send(&mut client, &mallory, &conv.id, "let me in").await;
    assert_eq!(code(err), ErrorCode::NotAMember);
    let err = try_send(&mut client, &alice, "999999", "anyone?").await;
    assert_eq!(code(err), ErrorCode::ConversationNotFound);
    let err = try_send(&mut client, &alice, "abc", "hello").await;
    assert_eq!(code(err), ErrorCode::InvalidArgument);

    // The text limit is 10 KB, inclusive.
    let err = try_send(&mut client, &alice, &conv.id, &"x".repeat(10 * 1024 + 1)).await;
    assert_eq!(code(err), ErrorCode::MessageTooLong);
    let longest = send(&mut client, &alice, &conv.id, &"x".repeat(10 * 1024)).await;
    assert_eq!(longest.message.expect("message").text.len(), 10 * 1024);

    let err = try_send(&mut client, &alice, &conv.id, "").await;
    assert_eq!(code(err), ErrorCode::EmptyMessage);
    let err = try_send(&mut client, &alice, &conv.id, "   ").await;
    assert_eq!(code(err), ErrorCode::EmptyMessage);

    // An attachment alone is a message.
    let photo = Attachment {
        url: "https://files.example/cat.png".into(),
        file_name: "cat.png".into(),
        mime_type: "image/png".into(),
        size_bytes: 2048,
    };
    let msg = client
        .send_message(SendMessageRequest {
            actor: actor(&bob),
            conversation_id: conv.id.clone(),
            attachments: vec![photo.clone()],
            kind: "image".into(),
            ..Default::default()
        })
        .await
        .expect("attachment-only message")
        .into_inner()
        .message
        .expect("message");
    assert_eq!(msg.text, "");
    assert_eq!(msg.kind, "image");
    assert_eq!(msg.attachments, vec![photo]);
}

/// A retried send with the same client message id stores nothing new.
async fn idempotent_send(mut client: Client) {
    let (alice, bob) = (user("alice"), user("bob"));
    let conv = create_group(&mut client, &alice, &[&bob]).await;

    let request = SendMessageRequest {
        actor: actor(&alice),
        conversation_id: conv.id.clone(),
        text: "only once".into(),
        client_message_id: "client-1".into(),
        ..Default::default()
    };
    let first = client
        .send_message(request.clone())
        .await
        .expect("first send")
        .into_inner();
    let again = client
        .send_message(request)
        .await
        .expect("retried send")
        .into_inner();
    assert!(!first.duplicate);
    assert!(again.duplicate);
    let first = first.message.expect("message");
    let again = again.message.expect("message");
    assert_eq!(again.id, first.id);
    assert_eq!(again.client_message_id, "client-1");

    let stored = history(&mut client, &alice, &conv.id, "", 0).await;
    assert_eq!(ids(&stored.messages), vec![first.id.clone()]);

    // Concurrent retries race to insert; exactly one of them stores it.
    let mut retries = tokio::task::JoinSet::new();
    for _ in 0..4 {
        let mut client = client.clone();
        let request = SendMessageRequest {
            actor: actor(&alice),
            conversation_id: conv.id.clone(),
            text: "raced".into(),
            client_message_id: "client-2".into(),
            ..Default::default()
        };
        retries.spawn(async move { client.send_message(request).await });
    }
    let results: Vec<SendMessageResponse> = retries
        .join_all()
        .await
        .into_iter()
        .map(|r| r.expect("concurrent retry").into_inner())
        .collect();
    assert_eq!(results.iter().filter(|r| !r.duplicate).count(), 1);
    let raced: Vec<String> = results
        .into_iter()
        .map(|r| r.message.expect("message").id)
        .collect();
    assert!(raced.iter().all(|id| *id == raced[0]), "{raced:?}");
    let stored = history(&mut client, &alice, &conv.id, "", 0).await;
    assert_eq!(
        ids(&stored.messages),
        vec![first.id.clone(), raced[0].clone()]
    );

    // The key belongs to its sender: another sender may use the same one.
    let bobs = client
        .send_message(SendMessageRequest {
            actor: actor(&bob),
            conversation_id: conv.id.clone(),
            text: "mine".into(),
            client_message_id: "client-1".into(),
            ..Default::default()
        })
        .await
        .expect("bob's send")
        .into_inner();
    assert!(!bobs.duplicate);
    assert_ne!(bobs.message.expect("message").id, first.id);
}

/// Only the author edits, deletes or recalls, and only a live message.
async fn edit_delete_recall(mut client: Client) {
    let (alice, bob) = (user("alice"), user("bob"));
    let conv = create_group(&mut client, &alice, &[&bob]).await;
    let mut events = subscribe(&mut client).await;
    let msg = send_text(&mut client, &alice, &conv.id, "helo").await;

    let edited = client
        .edit_message(EditMessageRequest {
            actor: actor(&alice),
            message_id: msg.id.clone(),
            text: "hello".into(),
        })
        .await
        .expect("author edits")
        .into_inner();
    assert_eq!(edited.id, msg.id);
    assert_eq!(edited.text, "hello");
    assert!(edited.edited_at_ms > 0);

    // The edit is published to the members.
    let event = next_event_where(&mut events, |k| matches!(k, Kind::MessageEdited(_))).await;
    let Some(Kind::MessageEdited(published)) = &event.kind else {
        unreachable!()
    };
    assert_eq!(published.id, msg.id);
    assert_eq!(published.text, "hello");
    assert_eq!(
        sorted(audience(&event)),
        sorted(vec![alice.clone(), bob.clone()])
    );

    let err = client
        .edit_message(EditMessageRequest {
            actor: actor(&bob),
            message_id: msg.id.clone(),
            text: "hijacked".into(),
        })
        .await;
    assert_eq!(code(err), ErrorCode::NotAuthor);
    let err = client
        .delete_message(DeleteMessageRequest {
            actor: actor(&bob),
            message_id: msg.id.clone(),
        })
        .await;
    assert_eq!(code(err), ErrorCode::NotAuthor);
    let err = client
        .edit_message(EditMessageRequest {
            actor: actor(&alice),
            message_id: "999999".into(),
            text: "nothing here".into(),
        })
        .await;
    assert_eq!(code(err), ErrorCode::MessageNotFound);

    // Delete is soft: the message stays in history, emptied.
    let deleted = client
        .delete_message(DeleteMessageRequest {
            actor: actor(&alice),
            message_id: msg.id.clone(),
        })
        .await
        .expect("author deletes")
        .into_inner();
    assert!(deleted.deleted);
    assert_eq!(deleted.text, "");
    assert!(deleted.attachments.is_empty());
    let history = history(&mut client, &bob, &conv.id, "", 0).await;
    assert_eq!(ids(&history.messages), vec![msg.id.clone()]);
    assert!(history.messages[0].deleted);
    assert_eq!(history.messages[0].text, "");

    let err = client
        .edit_message(EditMessageRequest {
            actor: actor(&alice),
            message_id: msg.id.clone(),
            text: "back again".into(),
        })
        .await;
    assert_eq!(code(err), ErrorCode::MessageGone);
    let err = client
        .delete_message(DeleteMessageRequest {
            actor: actor(&alice),
            message_id: msg.id.clone(),
        })
        .await;
    assert_eq!(code(err), ErrorCode::MessageGone);

    // Recall empties a message the same way and marks it recalled.
    let other = send_text(&mut client, &alice, &conv.id, "oops").await;
    let recalled = client
        .recall_message(RecallMessageRequest {
            actor: actor(&alice),
            message_id: other.id.clone(),
        })
        .await
        .expect("author recalls")
        .into_inner();
    assert!(recalled.recalled);
    assert!(!recalled.deleted);
    assert_eq!(recalled.text, "");
    let err = client
        .edit_message(EditMessageRequest {
            actor: actor(&alice),
            message_id: other.id.clone(),
            text: "un-oops".into(),
        })
        .await;
    assert_eq!(code(err), ErrorCode::MessageGone);
}

/// Reactions are listed on the message; a reply carries what it replies to.
async fn reactions_and_replies(mut client: Client) {
    let (alice, bob) = (user("alice"), user("bob"));
    let conv = create_group(&mut client, &alice, &[&bob]).await;
    let msg = send_text(&mut client, &alice, &conv.id, "original").await;

    let reacted = react(&mut client, &bob, &msg.id, "👍", false).await;
    assert_eq!(reactors(&reacted, "👍"), vec![bob.clone()]);
    // Reacting twice with the same emoji changes nothing.
    let reacted = react(&mut client, &bob, &msg.id, "👍", false).await;
    assert_eq!(reactors(&reacted, "👍"), vec![bob.clone()]);
    let reacted = react(&mut client, &alice, &msg.id, "👍", false).await;
    assert_eq!(reactors(&reacted, "👍"), vec![bob.clone(), alice.clone()]);
    let reacted = react(&mut client, &bob, &msg.id, "🎉", false).await;
    assert_eq!(reactors(&reacted, "🎉"), vec![bob.clone()]);
    assert_eq!(reacted.reactions.len(), 2);

    let reacted = react(&mut client, &bob, &msg.id, "👍", true).await;
    assert_eq!(reactors(&reacted, "👍"), vec![alice.clone()]);
    let reacted = react(&mut client, &bob, &msg.id, "🎉", true).await;
    assert!(reactors(&reacted, "🎉").is_empty());
    assert_eq!(reacted.reactions.len(), 1);

    // Reading the message back shows the same reactions.
    let got = client
        .get_message(GetMessageRequest {
            actor: actor(&bob),
            message_id: msg.id.clone(),
        })
        .await
        .expect("get message")
        .into_inner();
    assert_eq!(got.reactions, reacted.reactions);

    let reply = client
        .send_message(SendMessageRequest {
            actor: actor(&bob),
            conversation_id: conv.id.clone(),
            text: "a reply".into(),
            reply_to_id: msg.id.clone(),
            ..Default::default()
        })
        .await
        .expect("reply")
        .into_inner()
        .message
        .expect("message");
    assert_eq!(reply.reply_to_id, msg.id);
    let replied = reply.reply_to.as_deref().expect("reply_to is filled in");
    assert_eq!(replied.id, msg.id);
    assert_eq!(replied.text, "original");
    assert_eq!(replied.sender_id, alice);

    let history = history(&mut client, &alice, &conv.id, "", 0).await;
    let last = history.messages.last().expect("the reply");
    assert_eq!(last.id, reply.id);
    assert_eq!(last.reply_to.as_ref().map(|m| &m.id), Some(&msg.id));

    // A reply must point at a message of the same conversation.
    let elsewhere = create_group(&mut client, &alice, &[&bob]).await;
    let err = client
        .send_message(SendMessageRequest {
            actor: actor(&bob),
            conversation_id: elsewhere.id.clone(),
            text: "cross-post".into(),
            reply_to_id: msg.id.clone(),
            ..Default::default()
        })
        .await;
    assert_eq!(code(err), ErrorCode::InvalidArgument);
}

/// Read receipts name only newly read messages of others; delivery is acked.
async fn read_and_delivered(mut client: Client) {
    let (alice, bob, mallory) = (user("alice"), user("bob"), user("mallory"));
    let conv = create_group(&mut client, &alice, &[&bob]).await;
    let a1 = send_text(&mut client, &alice, &conv.id, "a1").await;
    let a2 = send_text(&mut client, &alice, &conv.id, "a2").await;
    let b1 = send_text(&mut client, &bob, &conv.id, "b1").await;

    // Alice reads everything: only bob's message is news to her.
    let read = mark_read(&mut client, &alice, &conv.id, "").await;
    assert_eq!(read.conversation_id, conv.id);
    assert_eq!(read.message_ids, vec![b1.id.clone()]);
    assert_eq!(read.up_to_message_id, b1.id);
    assert!(read.read_at_ms > 0);
    let again = mark_read(&mut client, &alice, &conv.id, "").await;
    assert!(again.message_ids.is_empty());

    // Bob reads up to a1, then the rest; the receipt event names each
    // message with its sender, for the sender's read receipts.
    let mut events = subscribe(&mut client).await;
    let read = mark_read(&mut client, &bob, &conv.id, &a1.id).await;
    assert_eq!(read.message_ids, vec![a1.id.clone()]);
    let event = next_event_where(&mut events, |k| matches!(k, Kind::MessagesRead(_))).await;
    let Some(Kind::MessagesRead(receipt)) = &event.kind else {
        unreachable!()
    };
    assert_eq!(receipt.reader_id, bob);
    assert_eq!(receipt.sender_ids, vec![alice.clone()]);
    let per_message: Vec<(&str, &str)> = receipt
        .messages
        .iter()
        .map(|m| (m.message_id.as_str(), m.sender_id.as_str()))
        .collect();
    assert_eq!(per_message, vec![(a1.id.as_str(), alice.as_str())]);
    let read = mark_read(&mut client, &bob, &conv.id, "").await;
    assert_eq!(read.message_ids, vec![a2.id.clone()]);
    let again = mark_read(&mut client, &bob, &conv.id, "").await;
    assert!(again.message_ids.is_empty());

    let conv_now = client
        .get_conversation(GetConversationRequest {
            actor: actor(&bob),
            conversation_id: conv.id.clone(),
        })
        .await
        .expect("get conversation")
        .into_inner();
    let bob_member = conv_now
        .members
        .iter()
        .find(|m| m.user_id == bob)
        .expect("bob is a member");
    assert_eq!(bob_member.last_read_message_id, b1.id);

    let err = client
        .mark_read(MarkReadRequest {
            actor: actor(&mallory),
            conversation_id: conv.id.clone(),
            up_to_message_id: String::new(),
        })
        .await;
    assert_eq!(code(err), ErrorCode::NotAMember);

    // Delivery: acknowledged (also when repeated), announced to the sender.
    let mut events = subscribe(&mut client).await;
    let delivered = client
        .mark_delivered(MarkDeliveredRequest {
            actor: actor(&bob),
            message_id: a1.id.clone(),
            offline: true,
        })
        .await
        .expect("mark delivered")
        .into_inner();
    assert_eq!(delivered.message_id, a1.id);
    assert!(delivered.delivered_at_ms > 0);
    let event = next_event_where(&mut events, |k| matches!(k, Kind::MessageDelivered(_))).await;
    let Some(Kind::MessageDelivered(receipt)) = &event.kind else {
        unreachable!()
    };
    assert_eq!(receipt.message_id, a1.id);
    assert_eq!(receipt.recipient_ids, vec![bob.clone()]);
    assert_eq!(receipt.sender_id, alice);
    assert!(receipt.offline, "the offline flag travels with the receipt");
    assert_eq!(audience(&event), vec![alice.clone()]);

    client
        .mark_delivered(MarkDeliveredRequest {
            actor: actor(&bob),
            message_id: a1.id.clone(),
            offline: false,
        })
        .await
        .expect("mark delivered twice");
    let err = client
        .mark_delivered(MarkDeliveredRequest {
            actor: actor(&mallory),
            message_id: a1.id.clone(),
            offline: false,
        })
        .await;
    assert_eq!(code(err), ErrorCode::NotAMember);
}

/// An edge's batched receipts: one call for several messages, one event per
/// message naming every new recipient; the sender, non-members, unknown
/// messages and deliveries already recorded are left out.
async fn batched_deliveries(mut client: Client) {
    let (alice, bob, carol, mallory) = (user("alice"), user("bob"), user("carol"), user("mallory"));
    let conv = create_group(&mut client, &alice, &[&bob, &carol]).await;
    let m1 = send_text(&mut client, &alice, &conv.id, "one").await;
    let m2 = send_text(&mut client, &bob, &conv.id, "two").await;
    let mut events = subscribe(&mut client).await;
    let delivery = |id: &str, to: &[&str]| Delivery {
        message_id: id.to_string(),
        recipient_ids: to.iter().map(|u| u.to_string()).collect(),
        offline: false,
    };
    let recorded = client
        .record_deliveries(RecordDeliveriesRequest {
            deliveries: vec![
                delivery(&m1.id, &[&bob, &carol, &alice, &mallory]),
                delivery(&m2.id, &[&alice, &carol]),
                delivery("999999999", &[&bob]),
            ],
        })
        .await
        .expect("record deliveries")
        .into_inner();
    assert_eq!(recorded.recorded, 4, "bob+carol for m1, alice+carol for m2");
    let first = next_event(&mut events).await;
    let Some(Kind::MessageDelivered(r1)) = &first.kind else {
        panic!("expected a delivery receipt, got {first:?}")
    };
    assert_eq!(r1.message_id, m1.id);
    assert_eq!(
        sorted(r1.recipient_ids.clone()),
        sorted(vec![bob.clone(), carol.clone()])
    );
    assert_eq!(audience(&first), vec![alice.clone()]);
    let second = next_event(&mut events).await;
    let Some(Kind::MessageDelivered(r2)) = &second.kind else {
        panic!("expected a delivery receipt, got {second:?}")
    };
    assert_eq!(r2.message_id, m2.id);
    assert_eq!(
        sorted(r2.recipient_ids.clone()),
        sorted(vec![alice.clone(), carol.clone()])
    );
    assert_eq!(audience(&second), vec![bob.clone()]);

    // Recording the same again adds nothing and announces nothing: the
    // stream's next event is the message sent after it (events are ordered).
    let again = client
        .record_deliveries(RecordDeliveriesRequest {
            deliveries: vec![delivery(&m1.id, &[&bob, &carol])],
        })
        .await
        .expect("record again")
        .into_inner();
    assert_eq!(again.recorded, 0);
    let marker = send_text(&mut client, &alice, &conv.id, "after").await;
    let next = next_event(&mut events).await;
    let Some(Kind::MessageCreated(m)) = &next.kind else {
        panic!("a repeated delivery was announced again: {next:?}")
    };
    assert_eq!(m.id, marker.id);

    let too_many = client
        .record_deliveries(RecordDeliveriesRequest {
            deliveries: (0..1001).map(|_| delivery(&m1.id, &[&bob])).collect(),
        })
        .await;
    assert_eq!(code(too_many), ErrorCode::InvalidArgument);
}

/// History pages backwards from the newest with a `before` cursor.
async fn history_pagination(mut client: Client) {
    let (alice, bob, mallory) = (user("alice"), user("bob"), user("mallory"));
    // Six senders take turns, so none of them goes over the message rate
    // limit (10 a second) while 55 messages go in as fast as they can.
    let senders: Vec<String> = std::iter::once(alice.clone())
        .chain(["carol", "dave", "erin", "frank", "grace"].map(user))
        .collect();
    let others: Vec<&str> = std::iter::once(bob.as_str())
        .chain(senders[1..].iter().map(String::as_str))
        .collect();
    let conv = create_group(&mut client, &alice, &others).await;
    let mut sent = Vec::new();
    for i in 0..55 {
        let from = &senders[i % senders.len()];
        sent.push(
            send_text(&mut client, from, &conv.id, &format!("m{i}"))
                .await
                .id,
        );
    }

    // Pages of 20, oldest first within a page, newest page first.
    let page = history(&mut client, &bob, &conv.id, "", 20).await;
    assert_eq!(ids(&page.messages), sent[35..]);
    assert_eq!(page.next_before, sent[35]);
    let page = history(&mut client, &bob, &conv.id, &page.next_before, 20).await;
    assert_eq!(ids(&page.messages), sent[15..35]);
    assert_eq!(page.next_before, sent[15]);
    let page = history(&mut client, &bob, &conv.id, &page.next_before, 20).await;
    assert_eq!(ids(&page.messages), sent[..15]);
    assert_eq!(page.next_before, "");

    // Limit 0 means the default of 50.
    let page = history(&mut client, &bob, &conv.id, "", 0).await;
    assert_eq!(ids(&page.messages), sent[5..]);
    assert_eq!(page.next_before, sent[5]);
    // 100 is the most one page holds.
    let page = history(&mut client, &bob, &conv.id, "", 100).await;
    assert_eq!(ids(&page.messages), sent);
    assert_eq!(page.next_before, "");

    let err = try_history(&mut client, &bob, &conv.id, "", 101).await;
    assert_eq!(code(err), ErrorCode::InvalidArgument);
    let err = try_history(&mut client, &bob, &conv.id, "abc", 10).await;
    assert_eq!(code(err), ErrorCode::InvalidArgument);
    let err = try_history(&mut client, &mallory, &conv.id, "", 10).await;
    assert_eq!(code(err), ErrorCode::NotAMember);
}

/// Catch-up: others' messages after an id, or unread ones, across conversations.
async fn catch_up(mut client: Client) {
    let (alice, bob, carol) = (user("alice"), user("bob"), user("carol"));
    let group = create_group(&mut client, &alice, &[&bob]).await;
    let direct = create_direct(&mut client, &alice, &bob).await;
    let a1 = send_text(&mut client, &alice, &group.id, "a1").await;
    let a2 = send_text(&mut client, &alice, &group.id, "a2").await;
    let b1 = send_text(&mut client, &bob, &group.id, "b1").await;
    let a3 = send_text(&mut client, &alice, &direct.id, "a3").await;

    // Everything unread, oldest first, never the reader's own messages.
    let unread = catch_up_for(&mut client, &bob, "", 0).await;
    assert_eq!(
        ids(&unread),
        vec![a1.id.clone(), a2.id.clone(), a3.id.clone()]
    );
    let unread = catch_up_for(&mut client, &alice, "", 0).await;
    assert_eq!(ids(&unread), vec![b1.id.clone()]);

    // Reading moves the starting point of "unread".
    mark_read(&mut client, &bob, &group.id, &a1.id).await;
    let unread = catch_up_for(&mut client, &bob, "", 0).await;
    assert_eq!(ids(&unread), vec![a2.id.clone(), a3.id.clone()]);

    // An explicit id wins over the read markers.
    let after = catch_up_for(&mut client, &bob, &a2.id, 0).await;
    assert_eq!(ids(&after), vec![a3.id.clone()]);
    let after = catch_up_for(&mut client, &bob, &a1.id, 0).await;
    assert_eq!(ids(&after), vec![a2.id.clone(), a3.id.clone()]);
    let limited = catch_up_for(&mut client, &bob, "", 1).await;
    assert_eq!(ids(&limited), vec![a2.id.clone()]);

    assert!(catch_up_for(&mut client, &carol, "", 0).await.is_empty());
    let err = client
        .catch_up(CatchUpRequest {
            actor: actor(&bob),
            after_message_id: "abc".into(),
            limit: 0,
        })
        .await;
    assert_eq!(code(err), ErrorCode::InvalidArgument);
}

/// `Subscribe` streams one event per change, addressed to the members.
async fn subscribe_streams_events(mut client: Client) {
    let (alice, bob, carol) = (user("alice"), user("bob"), user("carol"));
    let mut events = subscribe(&mut client).await;

    let conv = create_group(&mut client, &alice, &[&bob, &carol]).await;
    let everyone = sorted(vec![alice.clone(), bob.clone(), carol.clone()]);
    let event = next_event(&mut events).await;
    let Some(Kind::ConversationCreated(created)) = &event.kind else {
        panic!("expected ConversationCreated, got {:?}", event.kind);
    };
    assert_eq!(created.id, conv.id);
    assert_eq!(sorted(audience(&event)), everyone);

    let msg = send_text(&mut client, &bob, &conv.id, "hi all").await;
    let event = next_event(&mut events).await;
    let Some(Kind::MessageCreated(published)) = &event.kind else {
        panic!("expected MessageCreated, got {:?}", event.kind);
    };
    assert_eq!(published.id, msg.id);
    assert_eq!(published.text, "hi all");
    assert_eq!(published.sender_id, bob);
    assert_eq!(published.sender_username, format!("{bob}-login"));
    let info = event.conversation.as_ref().expect("conversation info");
    assert_eq!(
        (info.id.as_str(), info.kind),
        (conv.id.as_str(), ConversationKind::Group as i32)
    );
    let audience_of = event.audience.as_ref().expect("audience");
    assert_eq!(audience_of.conversation_id, conv.id);
    assert_eq!(sorted(audience_of.user_ids.clone()), everyone);

    assert!(event.origin.is_empty(), "no origin given, none echoed");

    // A request's origin is echoed on its event, so its sender can tell.
    client
        .send_message(SendMessageRequest {
            actor: actor(&carol),
            conversation_id: conv.id.clone(),
            text: "from tab 1".into(),
            origin: "tab-1".into(),
            ..Default::default()
        })
        .await
        .expect("send with origin");
    let event = next_event(&mut events).await;
    assert_eq!(event.origin, "tab-1");

    // A refused request publishes nothing; the next event is the next change.
    let _ = try_send(&mut client, &bob, &conv.id, "").await;
    react(&mut client, &carol, &msg.id, "👍", false).await;
    let event = next_event(&mut events).await;
    let Some(Kind::ReactionChanged(change)) = &event.kind else {
        panic!("expected ReactionChanged, got {:?}", event.kind);
    };
    assert_eq!(change.user_id, carol);
    assert_eq!(change.user_name, format!("{carol} name"));
    assert_eq!(change.emoji, "👍");
    assert!(!change.removed);
    let reaction = &change.message.as_ref().expect("message").reactions[0];
    assert_eq!(reaction.user_ids, vec![carol.clone()]);
    assert_eq!(reaction.reacted_at_ms.len(), 1);
    assert!(reaction.reacted_at_ms[0] > 0);
}

/// Members added or removed are heard (or not) and may send (or not) from
/// the very next message, even right after messages that were sent with the
/// old member list (which chat-service may keep in memory on SQLite).
async fn membership_changes_take_effect_at_once(mut client: Client) {
    let (alice, bob, carol, dave) = (user("alice"), user("bob"), user("carol"), user("dave"));
    let conv = create_group(&mut client, &alice, &[&bob, &carol]).await;
    let mut events = subscribe(&mut client).await;
    let is_message = |k: &Kind| matches!(k, Kind::MessageCreated(_));

    // Everyone speaks once, so the member list has been read.
    for who in [&alice, &bob, &carol] {
        send_text(&mut client, who, &conv.id, "hello").await;
        let event = next_event_where(&mut events, is_message).await;
        assert_eq!(
            sorted(audience(&event)),
            sorted(vec![alice.clone(), bob.clone(), carol.clone()])
        );
    }

    // CheckMembership (every room join) answers from the same list: the
    // role, the conversation with its members, and no for a stranger.
    let owner = membership(&mut client, &conv.id, &alice).await;
    assert!(owner.is_member);
    assert_eq!(owner.role, "owner");
    let listed = owner.conversation.expect("conversation");
    assert_eq!(listed.id, conv.id);
    assert_eq!(listed.members.len(), 3);
    assert_eq!(
        membership(&mut client, &conv.id, &carol).await.role,
        "member"
    );
    let stranger = membership(&mut client, &conv.id, &dave).await;
    assert!(!stranger.is_member && stranger.role.is_empty());
    assert_eq!(
        code(
            client
                .check_membership(CheckMembershipRequest {
                    conversation_id: "999999999".into(),
                    user_id: alice.clone(),
                })
                .await
        ),
        ErrorCode::ConversationNotFound
    );

    // Carol leaves: her next message is refused, and she is no longer told.
    client
        .remove_member(RemoveMemberRequest {
            actor: actor(&carol),
            conversation_id: conv.id.clone(),
            user_id: carol.clone(),
        })
        .await
        .expect("carol leaves");
    assert_eq!(
        code(try_send(&mut client, &carol, &conv.id, "still here?").await),
        ErrorCode::NotAMember
    );
    assert!(!membership(&mut client, &conv.id, &carol).await.is_member);
    send_text(&mut client, &bob, &conv.id, "she left").await;
    let event = next_event_where(&mut events, is_message).await;
    assert_eq!(
        sorted(audience(&event)),
        sorted(vec![alice.clone(), bob.clone()])
    );

    // The owner removes Bob, then adds Dave: Bob is refused, Dave may send
    // at once and is in the audience.
    client
        .remove_member(RemoveMemberRequest {
            actor: actor(&alice),
            conversation_id: conv.id.clone(),
            user_id: bob.clone(),
        })
        .await
        .expect("alice removes bob");
    assert_eq!(
        code(try_send(&mut client, &bob, &conv.id, "and me?").await),
        ErrorCode::NotAMember
    );
    client
        .add_members(AddMembersRequest {
            actor: actor(&alice),
            conversation_id: conv.id.clone(),
            user_ids: vec![dave.clone()],
        })
        .await
        .expect("alice adds dave");
    assert!(!membership(&mut client, &conv.id, &bob).await.is_member);
    assert!(membership(&mut client, &conv.id, &dave).await.is_member);
    send_text(&mut client, &dave, &conv.id, "hi, I am new").await;
    let event = next_event_where(&mut events, is_message).await;
    assert_eq!(
        sorted(audience(&event)),
        sorted(vec![alice.clone(), dave.clone()])
    );
}

/// Messages sent at the same moment (which chat-service writes together):
/// each sender gets its own message back, every one is stored once and
/// announced once. Two sends of one client message id at the same moment
/// store it once.
async fn sends_at_the_same_moment(client: Client) {
    sends_together(client, false).await;
}

/// On SQLite, chat-service's writer announces messages written together in
/// the order of their ids.
#[tokio::test]
async fn sqlite_announces_messages_sent_together_in_id_order() {
    on_sqlite(|client| sends_together(client, true)).await;
}

/// On PostgreSQL too, with several batches in flight: one conversation's
/// messages are announced in the order of their ids.
#[tokio::test]
async fn postgres_announces_messages_sent_together_in_id_order() {
    on_postgres(|client| sends_together(client, true)).await;
}

async fn sends_together(mut client: Client, in_id_order: bool) {
    // Eight senders, five messages each: under the per-user rate limit.
    let users: Vec<String> = (0..8).map(|i| user(&format!("u{i}"))).collect();
    let others: Vec<&str> = users[1..].iter().map(String::as_str).collect();
    let conv = create_group(&mut client, &users[0], &others).await;
    let mut events = subscribe(&mut client).await;
    let mut sends = tokio::task::JoinSet::new();
    for u in &users {
        for n in 0..5 {
            let (mut client, u, conv) = (client.clone(), u.clone(), conv.id.clone());
            sends.spawn(async move {
                let text = format!("{u} #{n}");
                let msg = send_text(&mut client, &u, &conv, &text).await;
                (text, msg)
            });
        }
    }
    let mut sent: Vec<(i64, String)> = Vec::new();
    while let Some(done) = sends.join_next().await {
        let (text, msg) = done.expect("send task");
        assert_eq!(msg.text, text, "a sender got another's message back");
        sent.push((msg.id.parse().expect("numeric id"), text));
    }
    sent.sort();
    sent.dedup_by_key(|(id, _)| *id);
    assert_eq!(sent.len(), 40, "every message has an id of its own");

    let mut announced: Vec<(i64, String)> = Vec::new();
    while announced.len() < 40 {
        let event = next_event_where(&mut events, |k| matches!(k, Kind::MessageCreated(_))).await;
        if let Some(Kind::MessageCreated(m)) = event.kind {
            announced.push((m.id.parse().expect("numeric id"), m.text));
        }
    }
    if in_id_order {
        assert!(
            announced.windows(2).all(|w| w[0].0 < w[1].0),
            "events out of id order: {announced:?}"
        );
    }
    announced.sort();
    assert_eq!(announced, sent, "each message announced once");
    let history = client
        .get_history(GetHistoryRequest {
            actor: actor(&users[0]),
            conversation_id: conv.id.clone(),
            before: String::new(),
            limit: 100,
        })
        .await
        .expect("history")
        .into_inner();
    assert_eq!(history.messages.len(), 40);

    let same_id = |mut client: Client, u: String, conv: String| async move {
        client
            .send_message(SendMessageRequest {
                actor: actor(&u),
                conversation_id: conv,
                text: "once".into(),
                client_message_id: "same-moment".into(),
                ..Default::default()
            })
            .await
            .expect("send")
            .into_inner()
    };
    let (a, b) = tokio::join!(
        same_id(client.clone(), users[1].clone(), conv.id.clone()),
        same_id(client.clone(), users[1].clone(), conv.id.clone())
    );
    let (a, b) = (a.message.expect("message"), b.message.expect("message"));
    assert_eq!(a.id, b.id, "one client message id, one message");
}

/// Many tasks sending into several conversations at once (which
/// chat-service writes in batches, on PostgreSQL several batches at once,
/// their ids interleaving): every sender gets its own message, each is
/// announced once, and each conversation's messages are announced in the
/// order of their ids.
async fn sends_from_many_tasks_in_order_per_conversation(mut client: Client) {
    // Four conversations of six senders, five messages each: 120 sends at
    // once, each user under the per-user rate limit.
    let mut convs = Vec::new();
    for c in 0..4 {
        let users: Vec<String> = (0..6).map(|i| user(&format!("c{c}u{i}"))).collect();
        let others: Vec<&str> = users[1..].iter().map(String::as_str).collect();
        let conv = create_group(&mut client, &users[0], &others).await;
        convs.push((conv.id, users));
    }
    let mut events = subscribe(&mut client).await;
    let mut sends = tokio::task::JoinSet::new();
    for n in 0..5 {
        for (conv, users) in &convs {
            for u in users {
                let (mut client, u, conv) = (client.clone(), u.clone(), conv.clone());
                sends.spawn(async move {
                    let text = format!("{u} #{n}");
                    let msg = send_text(&mut client, &u, &conv, &text).await;
                    assert_eq!(msg.text, text, "a sender got another's message back");
                    (conv, msg.id.parse::<i64>().expect("numeric id"))
                });
            }
        }
    }
    let mut sent: Vec<(String, i64)> = Vec::new();
    while let Some(done) = sends.join_next().await {
        sent.push(done.expect("send task"));
    }
    sent.sort();
    sent.dedup();
    assert_eq!(sent.len(), 120, "every message has an id of its own");

    let mut announced: Vec<(String, i64)> = Vec::new();
    while announced.len() < 120 {
        let event = next_event_where(&mut events, |k| matches!(k, Kind::MessageCreated(_))).await;
        if let Some(Kind::MessageCreated(m)) = event.kind {
            announced.push((m.conversation_id, m.id.parse().expect("numeric id")));
        }
    }
    for (conv, _) in &convs {
        let ids: Vec<i64> = announced
            .iter()
            .filter(|(c, _)| c == conv)
            .map(|(_, id)| *id)
            .collect();
        assert!(
            ids.windows(2).all(|w| w[0] < w[1]),
            "conversation {conv}: events out of id order: {ids:?}"
        );
    }
    announced.sort();
    assert_eq!(announced, sent, "each message announced once");
}

/// On PostgreSQL, a message the database refuses (text with a NUL byte)
/// among many sent at once fails its own send only: the others are stored
/// and announced, in id order, and nothing is announced for it.
#[tokio::test]
async fn postgres_a_refused_row_fails_its_send_only() {
    on_postgres(|mut client: Client| async move {
        let users: Vec<String> = (0..8).map(|i| user(&format!("r{i}"))).collect();
        let others: Vec<&str> = users[1..].iter().map(String::as_str).collect();
        let conv = create_group(&mut client, &users[0], &others).await;
        let mut events = subscribe(&mut client).await;
        let mut sends = tokio::task::JoinSet::new();
        for (i, u) in users.iter().enumerate() {
            for n in 0..5 {
                let (mut client, u, conv) = (client.clone(), u.clone(), conv.id.clone());
                // One send of the forty carries a NUL, which PostgreSQL's
                // text refuses.
                let text = if i == 3 && n == 2 {
                    format!("{u} \0 #{n}")
                } else {
                    format!("{u} #{n}")
                };
                sends.spawn(async move {
                    let sent = try_send(&mut client, &u, &conv, &text).await;
                    (text, sent.map(|r| r.into_inner().message.expect("message")))
                });
            }
        }
        let (mut stored, mut refused) = (Vec::new(), Vec::new());
        while let Some(done) = sends.join_next().await {
            match done.expect("send task") {
                (text, Ok(msg)) => {
                    assert_eq!(msg.text, text, "a sender got another's message back");
                    stored.push((msg.id.parse::<i64>().expect("numeric id"), text));
                }
                (text, Err(status)) => refused.push((text, status.code())),
            }
        }
        assert_eq!(refused.len(), 1, "only the refused row fails: {refused:?}");
        assert!(refused[0].0.contains('\0'));
        assert_eq!(stored.len(), 39);
        stored.sort();

        let mut announced: Vec<(i64, String)> = Vec::new();
        while announced.len() < 39 {
            let event =
                next_event_where(&mut events, |k| matches!(k, Kind::MessageCreated(_))).await;
            if let Some(Kind::MessageCreated(m)) = event.kind {
                announced.push((m.id.parse().expect("numeric id"), m.text));
            }
        }
        assert!(
            announced.windows(2).all(|w| w[0].0 < w[1].0),
            "events out of id order: {announced:?}"
        );
        assert_eq!(announced, stored, "each stored message announced once");
        assert_eq!(history_len(&mut client, &users[0], &conv.id).await, 39);
    })
    .await;
}

/// On PostgreSQL, a batch that gets lower ids but lands after a later one
/// holds the later one's events back: a send whose insert waits (on the
/// unique index, behind another transaction's uncommitted row with the same
/// client message id) took its id first; sends made meanwhile are stored
/// with higher ids, and neither announced nor answered until it lands.
#[tokio::test]
async fn postgres_a_batch_landing_late_holds_back_higher_ids() {
    use sea_orm::{ConnectionTrait, Database, TransactionTrait};
    let Some(url) = db::postgres_url().await else {
        return;
    };
    let (handle, mut client) = db::spawn_chat(&url).await;
    let users: Vec<String> = (0..4).map(|i| user(&format!("h{i}"))).collect();
    let others: Vec<&str> = users[1..].iter().map(String::as_str).collect();
    let conv = create_group(&mut client, &users[0], &others).await;
    let mut events = subscribe(&mut client).await;

    // Another transaction inserts, and holds uncommitted, the row the first
    // send will also try to write.
    let side = Database::connect(url.as_str()).await.expect("connect");
    let holder = side.begin().await.expect("begin");
    holder
        .execute_unprepared(&format!(
            "INSERT INTO messages (conversation_id, sender_id, sender_name, \
             sender_username, sender_avatar, text, attachments, kind, mentions, \
             client_message_id, created_at, deleted, recalled) VALUES \
             ({}, '{}', '', '', '', 'held', '[]', 'text', '[]', 'held', 0, false, false)",
            conv.id, users[0]
        ))
        .await
        .expect("hold a row");
    let first = {
        let (mut client, u, conv) = (client.clone(), users[0].clone(), conv.id.clone());
        tokio::spawn(async move {
            client
                .send_message(SendMessageRequest {
                    actor: actor(&u),
                    conversation_id: conv,
                    text: "first".into(),
                    client_message_id: "held".into(),
                    ..Default::default()
                })
                .await
                .expect("send")
                .into_inner()
                .message
                .expect("message")
        })
    };
    // The first send's insert now waits, its id taken.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut later = tokio::task::JoinSet::new();
    for u in &users[1..] {
        let (mut client, u, conv) = (client.clone(), u.clone(), conv.id.clone());
        later.spawn(async move { send_text(&mut client, &u, &conv, &format!("{u} later")).await });
    }
    // Stored (they do not wait on the held row), yet neither announced nor
    // answered while a lower id of their conversation is in flight.
    let mut stored = 0;
    while stored < 3 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        stored = history_len(&mut client, &users[1], &conv.id).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        later.try_join_next().is_none(),
        "a later send was answered first"
    );
    assert!(
        tokio::time::timeout(Duration::from_millis(200), events.message())
            .await
            .is_err(),
        "an event came out before the lower id"
    );

    holder.rollback().await.expect("rollback");
    let first = first.await.expect("first send");
    let mut later_ids = Vec::new();
    while let Some(done) = later.join_next().await {
        later_ids.push(done.expect("later send").id.parse::<i64>().expect("id"));
    }
    let first_id: i64 = first.id.parse().expect("id");
    assert!(
        later_ids.iter().all(|&id| id > first_id),
        "{first_id} {later_ids:?}"
    );
    let mut announced = Vec::new();
    while announced.len() < 4 {
        let event = next_event_where(&mut events, |k| matches!(k, Kind::MessageCreated(_))).await;
        if let Some(Kind::MessageCreated(m)) = event.kind {
            announced.push(m.id.parse::<i64>().expect("id"));
        }
    }
    assert_eq!(announced[0], first_id, "the lower id first: {announced:?}");
    assert!(announced.windows(2).all(|w| w[0] < w[1]), "{announced:?}");
    side.close().await.expect("close");
    handle.shutdown().await;
    db::drop_postgres(&url).await;
}

/// The offline queue: what reached none of a user's sockets (no delivery
/// recorded), the newest `limit` of it, oldest first, with read state;
/// taking it records it delivered (a second take, or a concurrent one,
/// gets none of it again) and tells each sender.
async fn offline_queue(mut client: Client) {
    let (alice, bob, carol, dave) = (user("alice"), user("bob"), user("carol"), user("dave"));
    let group = create_group(&mut client, &alice, &[&bob, &carol]).await;
    let direct = create_direct(&mut client, &alice, &bob).await;
    // Bob got the first message live: his queue starts after it.
    let seen = send_text(&mut client, &alice, &group.id, "seen live").await;
    record_live_delivery(&mut client, &seen.id, &bob).await;
    // 30 more, in two conversations, while bob has no socket.
    let mut sent = Vec::new();
    for i in 1..=30 {
        let conv = if i % 5 == 0 { &direct.id } else { &group.id };
        sent.push(send_text(&mut client, &alice, conv, &format!("m{i}")).await);
    }
    // Bob's own message (from another device) is never in his queue.
    send_text(&mut client, &bob, &group.id, "bob's own").await;
    // Bob reads the group up to m19 elsewhere (REST, another contract).
    mark_read(&mut client, &bob, &group.id, &sent[18].id).await;

    let mut events = subscribe(&mut client).await;
    let got = take_offline(&mut client, &bob, 25).await;
    let want: Vec<(String, bool)> = (6..=30)
        .map(|i| (format!("m{i}"), i <= 19 && i % 5 != 0))
        .collect();
    assert_eq!(got, want, "the 25 newest, oldest first, read where read");
    // The sender hears each delivery, marked offline.
    let first = next_event_where(&mut events, |k| matches!(k, Kind::MessageDelivered(_))).await;
    let Some(Kind::MessageDelivered(d)) = &first.kind else {
        unreachable!()
    };
    assert_eq!(
        (d.message_id.as_str(), d.recipient_ids.clone(), d.offline),
        (sent[5].id.as_str(), vec![bob.clone()], true)
    );
    assert_eq!(audience(&first), vec![alice.clone()]);
    // Taken once: nothing again, and m1..m5 were dropped (the newest won).
    assert_eq!(take_offline(&mut client, &bob, 25).await, vec![]);
    // A message that reached bob live is not queued.
    let live = send_text(&mut client, &alice, &group.id, "live").await;
    record_live_delivery(&mut client, &live.id, &bob).await;
    assert_eq!(take_offline(&mut client, &bob, 25).await, vec![]);
    // The sender's own messages are never in the sender's queue: alice's
    // holds bob's message alone.
    assert_eq!(
        take_offline(&mut client, &alice, 25).await,
        vec![("bob's own".to_string(), false)]
    );

    // Two takes at once (two tabs) share carol's queue: no message twice.
    let mut other = client.clone();
    let (a, b) = tokio::join!(
        take_offline(&mut client, &carol, 10),
        take_offline(&mut other, &carol, 10)
    );
    let mut both: Vec<String> = a.into_iter().chain(b).map(|(t, _)| t).collect();
    both.sort();
    let mut newest: Vec<String> = [
        "m21",
        "m22",
        "m23",
        "m24",
        "m26",
        "m27",
        "m28",
        "m29",
        "bob's own",
        "live",
    ]
    .into_iter()
    .map(String::from)
    .collect();
    newest.sort();
    assert_eq!(both, newest, "carol's 10 newest, each exactly once");

    // A member added later gets nothing from before joining.
    tokio::time::sleep(Duration::from_millis(5)).await;
    client
        .add_members(AddMembersRequest {
            actor: actor(&alice),
            conversation_id: group.id.clone(),
            user_ids: vec![dave.clone()],
        })
        .await
        .expect("add dave");
    send_text(&mut client, &alice, &group.id, "welcome").await;
    assert_eq!(
        take_offline(&mut client, &dave, 25).await,
        vec![("welcome".to_string(), false)]
    );

    for limit in [101, 1000] {
        assert_eq!(
            code(try_take_offline(&mut client, &bob, limit).await),
            ErrorCode::InvalidArgument
        );
    }
    let anonymous = client
        .take_offline_messages(TakeOfflineMessagesRequest {
            actor: None,
            limit: 25,
            ..Default::default()
        })
        .await;
    assert_eq!(code(anonymous), ErrorCode::InvalidArgument);
}

/// A socket joining one conversation takes what reached none of the user's
/// sockets there (since the last message delivered to them in it), and
/// learns the newest message the take looked at; the other conversations'
/// queues are left as they were. A conversation id that is not one is
/// `INVALID_ARGUMENT`.
async fn offline_queue_of_one_conversation(mut client: Client) {
    let (alice, bob) = (user("alice"), user("bob"));
    let group = create_group(&mut client, &alice, &[&bob]).await;
    let direct = create_direct(&mut client, &alice, &bob).await;
    let seen = send_text(&mut client, &alice, &group.id, "seen").await;
    record_live_delivery(&mut client, &seen.id, &bob).await;
    send_text(&mut client, &alice, &group.id, "g1").await;
    send_text(&mut client, &alice, &direct.id, "d1").await;
    send_text(&mut client, &alice, &group.id, "g2").await;
    send_text(&mut client, &alice, &direct.id, "d2").await;
    let bobs = send_text(&mut client, &bob, &group.id, "bob's own").await;

    let take = |conversation_id: &str| TakeOfflineMessagesRequest {
        actor: actor(&bob),
        limit: 100,
        conversation_id: conversation_id.to_string(),
    };
    let got = client
        .take_offline_messages(take(&group.id))
        .await
        .expect("take the group's")
        .into_inner();
    let texts: Vec<String> = got
        .messages
        .iter()
        .filter_map(|m| m.message.as_ref().map(|m| m.text.clone()))
        .collect();
    assert_eq!(
        texts,
        vec!["g1", "g2"],
        "the group's, since the last delivered"
    );
    assert_eq!(got.newest_message_id, bobs.id, "the newest it looked at");
    // Taken once; of the direct chat's, what came after the newest message
    // delivered to bob anywhere (g2, just taken) is still queued: d2 (the
    // queue's rule: what a later delivery passed is dropped).
    let again = client
        .take_offline_messages(take(&group.id))
        .await
        .expect("take again")
        .into_inner();
    assert!(again.messages.is_empty());
    assert_eq!(
        take_offline(&mut client, &bob, 25).await,
        vec![("d2".to_string(), false)]
    );
    let bad = client.take_offline_messages(take("not-an-id")).await;
    assert_eq!(code(bad), ErrorCode::InvalidArgument);
}

// ---- helpers -------------------------------------------------------------

/// Records that message `id` reached a socket of `user` live, as an edge
/// does.
async fn record_live_delivery(client: &mut Client, id: &str, user: &str) {
    client
        .record_deliveries(RecordDeliveriesRequest {
            deliveries: vec![Delivery {
                message_id: id.to_string(),
                recipient_ids: vec![user.to_string()],
                offline: false,
            }],
        })
        .await
        .expect("record a live delivery");
}

/// A user id unique to this run.
fn user(name: &str) -> String {
    format!("{name}-{:08x}", rand::random::<u32>())
}

fn actor(id: &str) -> Option<Actor> {
    Some(Actor {
        id: id.to_string(),
        name: format!("{id} name"),
        avatar: String::new(),
        username: format!("{id}-login"),
    })
}

/// The stable error code of a call that must have failed.
fn code<T: std::fmt::Debug>(result: Result<Response<T>, Status>) -> ErrorCode {
    match result {
        Ok(response) => panic!("expected an error, got {:?}", response.into_inner()),
        Err(status) => ServiceError::from_status(&status).code,
    }
}

async fn membership(client: &mut Client, conv: &str, user: &str) -> Membership {
    client
        .check_membership(CheckMembershipRequest {
            conversation_id: conv.to_string(),
            user_id: user.to_string(),
        })
        .await
        .expect("check membership")
        .into_inner()
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

fn ids(messages: &[ChatMessage]) -> Vec<String> {
    messages.iter().map(|m| m.id.clone()).collect()
}

fn members(conv: &Conversation) -> Vec<(String, String)> {
    conv.members
        .iter()
        .map(|m| (m.user_id.clone(), m.role.clone()))
        .collect()
}

fn audience(event: &ChatEvent) -> Vec<String> {
    event.audience.as_ref().expect("audience").user_ids.clone()
}

fn reactors(msg: &ChatMessage, emoji: &str) -> Vec<String> {
    msg.reactions
        .iter()
        .find(|r| r.emoji == emoji)
        .map(|r| r.user_ids.clone())
        .unwrap_or_default()
}

async fn create_group(client: &mut Client, owner: &str, others: &[&str]) -> Conversation {
    client
        .create_conversation(CreateConversationRequest {
            actor: actor(owner),
            kind: ConversationKind::Group as i32,
            name: "group".into(),
            member_ids: others.iter().map(|u| u.to_string()).collect(),
        })
        .await
        .expect("create group")
        .into_inner()
}

async fn create_direct(client: &mut Client, from: &str, to: &str) -> Conversation {
    client
        .create_conversation(CreateConversationRequest {
            actor: actor(from),
            kind: ConversationKind::Direct as i32,
            name: String::new(),
            member_ids: vec![to.to_string()],
        })
        .await
        .expect("find or create direct conversation")
        .into_inner()
}

async fn list_ids(client: &mut Client, user: &str) -> Vec<String> {
    client
        .list_conversations(ListConversationsRequest { actor: actor(user) })
        .await
        .expect("list conversations")
        .into_inner()
        .conversations
        .into_iter()
        .map(|c| c.id)
        .collect()
}

async fn try_send(
    client: &mut Client,
    from: &str,
    conversation_id: &str,
    text: &str,
) -> Result<Response<SendMessageResponse>, Status> {
    client
        .send_message(SendMessageRequest {
            actor: actor(from),
            conversation_id: conversation_id.to_string(),
            text: text.to_string(),
            ..Default::default()
        })
        .await
}

/// Sends as a client that honours the message rate limit: a send refused
/// with `LIMIT_EXCEEDED` is tried again after its `retry_after_ms`.
async fn send(
    client: &mut Client,
    from: &str,
    conversation_id: &str,
    text: &str,
) -> SendMessageResponse {
    for _ in 0..20 {
        match try_send(client, from, conversation_id, text).await {
            Ok(r) => return r.into_inner(),
            Err(status) => {
                let e = ServiceError::from_status(&status);
                assert_eq!(e.code, ErrorCode::LimitExceeded, "send message: {status}");
                let wait = e.retry_after_ms.clamp(10, 1000) as u64;
                tokio::time::sleep(Duration::from_millis(wait)).await;
            }
        }
    }
    panic!("send message: still over the rate limit after 20 tries")
}

async fn send_text(
    client: &mut Client,
    from: &str,
    conversation_id: &str,
    text: &str,
) -> ChatMessage {
    send(client, from, conversation_id, text)
        .await
        .message
        .expect("message")
}

async fn react(
    client: &mut Client,
    user: &str,
    message_id: &str,
    emoji: &str,
    remove: bool,
) -> ChatMessage {
    client
        .react_to_message(ReactToMessageRequest {
            actor: actor(user),
            message_id: message_id.to_string(),
            emoji: emoji.to_string(),
            remove,
        })
        .await
        .expect("react")
        .into_inner()
}

async fn mark_read(
    client: &mut Client,
    user: &str,
    conversation_id: &str,
    up_to: &str,
) -> MarkReadResponse {
    client
        .mark_read(MarkReadRequest {
            actor: actor(user),
            conversation_id: conversation_id.to_string(),
            up_to_message_id: up_to.to_string(),
        })
        .await
        .expect("mark read")
        .into_inner()
}

async fn try_history(
    client: &mut Client,
    user: &str,
    conversation_id: &str,
    before: &str,
    limit: u32,
) -> Result<Response<GetHistoryResponse>, Status> {
    client
        .get_history(GetHistoryRequest {
            actor: actor(user),
            conversation_id: conversation_id.to_string(),
            before: before.to_string(),
            limit,
        })
        .await
}

async fn history(
    client: &mut Client,
    user: &str,
    conversation_id: &str,
    before: &str,
    limit: u32,
) -> GetHistoryResponse {
    try_history(client, user, conversation_id, before, limit)
        .await
        .expect("get history")
        .into_inner()
}

async fn catch_up_for(
    client: &mut Client,
    user: &str,
    after: &str,
    limit: u32,
) -> Vec<ChatMessage> {
    client
        .catch_up(CatchUpRequest {
            actor: actor(user),
            after_message_id: after.to_string(),
            limit,
        })
        .await
        .expect("catch up")
        .into_inner()
        .messages
}

async fn try_take_offline(
    client: &mut Client,
    user: &str,
    limit: u32,
) -> Result<Response<TakeOfflineMessagesResponse>, Status> {
    client
        .take_offline_messages(TakeOfflineMessagesRequest {
            actor: actor(user),
            limit,
            ..Default::default()
        })
        .await
}

/// Takes `user`'s offline queue: the messages' texts and read flags.
async fn take_offline(client: &mut Client, user: &str, limit: u32) -> Vec<(String, bool)> {
    try_take_offline(client, user, limit)
        .await
        .expect("take offline messages")
        .into_inner()
        .messages
        .into_iter()
        .map(|q| (q.message.expect("message").text, q.read))
        .collect()
}

/// Opens a `Subscribe` stream. The server subscribes before it answers, so
/// every change made after this returns is on the stream.
async fn subscribe(client: &mut Client) -> Streaming<ChatEvent> {
    client
        .subscribe(SubscribeRequest {
            subscriber: "chat_grpc test".into(),
            ..Default::default()
        })
        .await
        .expect("subscribe")
        .into_inner()
}

/// The next event, failing the test rather than hanging if none comes.
async fn next_event(events: &mut Streaming<ChatEvent>) -> ChatEvent {
    tokio::time::timeout(Duration::from_secs(10), events.message())
        .await
        .expect("no event within 10 s")
        .expect("the event stream failed")
        .expect("the event stream ended")
}

/// The next event whose kind matches, skipping others.
async fn next_event_where(
    events: &mut Streaming<ChatEvent>,
    wanted: impl Fn(&Kind) -> bool,
) -> ChatEvent {
    loop {
        let event = next_event(events).await;
        if event.kind.as_ref().is_some_and(&wanted) {
            return event;
        }
    }
}

// ---- the message rate limit ------------------------------------------------

/// Sends `n` messages of `from` as fast as they go; returns how many were
/// stored and the refusals' retry-after (ms).
async fn burst(
    client: &mut Client,
    from: &str,
    conversation_id: &str,
    n: usize,
) -> (usize, Vec<i64>) {
    let mut stored = 0;
    let mut refused = Vec::new();
    for i in 0..n {
        match try_send(client, from, conversation_id, &format!("burst {i}")).await {
            Ok(_) => stored += 1,
            Err(status) => {
                let e = ServiceError::from_status(&status);
                assert_eq!(e.code, ErrorCode::LimitExceeded, "{e:?}");
                assert!(
                    e.message.contains("at most 10 messages a second"),
                    "{}",
                    e.message
                );
                refused.push(e.retry_after_ms);
            }
        }
    }
    (stored, refused)
}

async fn history_len(client: &mut Client, user: &str, conversation_id: &str) -> usize {
    client
        .get_history(GetHistoryRequest {
            actor: actor(user),
            conversation_id: conversation_id.to_string(),
            limit: 100,
            ..Default::default()
        })
        .await
        .expect("history")
        .into_inner()
        .messages
        .len()
}

/// 11 sends in one second: 10 stored, the 11th refused with a retry-after
/// within the window, nothing of it stored; another user is not affected;
/// after the window the user sends again.
#[tokio::test]
async fn rate_limit_in_process() {
    let (url, _dir) = db::sqlite_url().await;
    let (handle, mut client) = db::spawn_chat(&url).await;
    let (alice, bob) = (user("alice"), user("bob"));
    let conv = create_group(&mut client, &alice, &[&bob]).await;
    let (stored, refused) = burst(&mut client, &alice, &conv.id, 11).await;
    assert_eq!((stored, refused.len()), (10, 1));
    assert!(
        (1..=1000).contains(&refused[0]),
        "retry after {} ms",
        refused[0]
    );
    assert_eq!(history_len(&mut client, &bob, &conv.id).await, 10);
    // Bob has his own window.
    send_text(&mut client, &bob, &conv.id, "mine").await;
    tokio::time::sleep(Duration::from_millis(refused[0] as u64 + 50)).await;
    send_text(&mut client, &alice, &conv.id, "after the window").await;
    assert_eq!(history_len(&mut client, &bob, &conv.id).await, 12);
    handle.shutdown().await;
}

/// Two chat-services sharing Redis share each user's window: 6 sends on one
/// and 5 on the other make 10 stored and 1 refused.
#[tokio::test]
async fn rate_limit_shared_in_redis() {
    let Some(redis) = confab_tests::skip::required_env("REDIS_URL", "the Redis message rate limit")
    else {
        return;
    };
    let mut instances = Vec::new();
    let mut dirs = Vec::new();
    // Their Redis keys, apart from any other test's.
    let redis_prefix = confab_tests::redis_prefix();
    for _ in 0..2 {
        let (url, dir) = db::sqlite_url().await;
        dirs.push(dir);
        let config = confab_chat::Config {
            database_url: url,
            message_rate_limit: 10,
            redis_url: Some(redis.clone()),
            redis_prefix: redis_prefix.clone(),
            ..Default::default()
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let handle = confab_chat::serve(listener, config).await.expect("serve");
        let client = ChatServiceClient::connect(handle.url())
            .await
            .expect("connect");
        instances.push((handle, client));
    }
    let (alice, bob) = (user("alice"), user("bob"));
    let mut convs = Vec::new();
    for (_, client) in &mut instances {
        convs.push(create_group(client, &alice, &[&bob]).await.id);
    }
    let (a, b) = instances.split_at_mut(1);
    let (stored_a, refused_a) = burst(&mut a[0].1, &alice, &convs[0], 6).await;
    let (stored_b, refused_b) = burst(&mut b[0].1, &alice, &convs[1], 5).await;
    assert_eq!((stored_a, refused_a.len()), (6, 0));
    assert_eq!((stored_b, refused_b.len()), (4, 1));
    assert!(
        (1..=1000).contains(&refused_b[0]),
        "retry after {} ms",
        refused_b[0]
    );
    tokio::time::sleep(Duration::from_millis(refused_b[0] as u64 + 50)).await;
    send_text(&mut a[0].1, &alice, &convs[0], "after the window").await;
    for (handle, _) in instances {
        handle.shutdown().await;
    }
}
