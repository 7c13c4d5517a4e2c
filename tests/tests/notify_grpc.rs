//! notify-service over real gRPC: publish, notifications, unread counts and
//! mark read (the owner's only), idempotent retries, cursor paging, invalid
//! input with its stable codes, a 10,000-recipient publish, story views
//! readable by the story's publisher, the `Subscribe` events with their
//! audiences, and message notifications with a real chat-service and
//! presence-service. Then the REST routes on a booted edge.
//!
//! Each scenario runs against a fresh notify-service twice: over SQLite
//! (always) and over PostgreSQL (when `DATABASE_URL` is set; skipped with a
//! note otherwise, a failure when `CI=true`). User ids carry a random
//! suffix. Every check of what a user must *not* get listens on the event
//! stream from before the action, and ends at a later event it must see, so
//! a stray event in between fails the test.

use std::collections::BTreeSet;
use std::future::Future;
use std::time::Duration;

use confab_notify::Config as NotifyConfig;
use confab_proto::server::ServiceHandle;
use confab_proto::v1::chat_service_client::ChatServiceClient;
use confab_proto::v1::notify_event::Kind;
use confab_proto::v1::notify_service_client::NotifyServiceClient;
use confab_proto::v1::presence_service_client::PresenceServiceClient;
use confab_proto::v1::{
    Actor, ConversationKind, CreateConversationRequest, ListNotificationsRequest,
    ListNotificationsResponse, ListStoryViewsRequest, MarkNotificationsReadRequest,
    MarkNotificationsReadResponse, Notification, NotificationContent, NotifyEvent, PublishRequest,
    PublishResponse, RegisterSessionRequest, ReportRequest, SendMessageRequest, SubscribeRequest,
    UnreadCountRequest, UnregisterSessionRequest,
};
use confab_proto::{ErrorCode, ServiceError};
use confab_tests::app::{Db, TestApp, spawn_app_with};
use confab_tests::db;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tonic::transport::Channel;
use tonic::{Response, Status, Streaming};

type Client = NotifyServiceClient<Channel>;

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
    publish_list_unread_and_mark_read,
    idempotent_publish,
    cursor_paging,
    invalid_input,
    ten_thousand_recipients,
    story_views,
    subscribe_events,
);

async fn on_sqlite<F, Fut>(scenario: F)
where
    F: FnOnce(Client) -> Fut,
    Fut: Future<Output = ()>,
{
    let (url, _dir) = db::sqlite_url().await;
    let (handle, client) = spawn_notify(&url, None).await;
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
    let (handle, client) = spawn_notify(&url, None).await;
    scenario(client).await;
    handle.shutdown().await;
    // Only a passing run cleans up: a failing one leaves its data to look at.
    db::drop_postgres(&url).await;
}

/// notify-service on `url`, following `sources` (chat, presence URLs) for
/// message notifications when given.
async fn spawn_notify(url: &str, sources: Option<(String, String)>) -> (ServiceHandle, Client) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let (chat_url, presence_url) = sources.unzip();
    let handle = confab_notify::serve(
        listener,
        NotifyConfig {
            database_url: url.to_string(),
            chat_url,
            presence_url,
            ..Default::default()
        },
    )
    .await
    .unwrap_or_else(|e| panic!("start notify-service on {url}: {e:#}"));
    let client = NotifyServiceClient::connect(handle.url())
        .await
        .expect("connect to notify-service");
    (handle, client)
}

// ---- scenarios -----------------------------------------------------------

/// A published notification is listed, counted and marked read by its
/// owner only; another user's id is ignored, not refused.
async fn publish_list_unread_and_mark_read(mut client: Client) {
    let (alice, bob, carol) = (user("alice"), user("bob"), user("carol"));
    let liked = publish(
        &mut client,
        PublishRequest {
            r#type: "post_liked".into(),
            payload_json: json!({"postId": 7, "userId": 3, "userName": "Carol", "likeCount": 4})
                .to_string(),
            user_ids: vec![alice.clone(), bob.clone(), alice.clone()],
            notification: Some(content("like", "Carol liked your post", &carol, "/posts/7")),
            ..Default::default()
        },
    )
    .await;
    assert!(!liked.duplicate);
    assert!(!liked.event_id.is_empty());
    assert_eq!((liked.recipient_count, liked.notification_count), (2, 2));

    let page = list(&mut client, &alice, "", 0, false).await;
    assert_eq!(page.unread, 1);
    assert_eq!(page.next_before, "");
    let [n] = page.notifications.as_slice() else {
        panic!("expected one notification, got {:?}", page.notifications);
    };
    assert_eq!(n.user_id, alice);
    assert_eq!(n.r#type, "like");
    assert_eq!(n.event_type, "post_liked");
    assert_eq!(n.body, "Carol liked your post");
    assert_eq!(n.link, "/posts/7");
    let actor = n.actor.as_ref().expect("actor");
    assert_eq!(
        (
            actor.id.as_str(),
            actor.name.as_str(),
            actor.avatar.as_str()
        ),
        (carol.as_str(), "Carol", "https://img/carol.png")
    );
    assert_eq!(
        serde_json::from_str::<Value>(&n.payload_json).unwrap(),
        json!({"postId": 7, "userId": 3, "userName": "Carol", "likeCount": 4})
    );
    assert!(!n.read);
    assert_eq!(n.read_at_ms, 0);
    assert!(n.created_at_ms > 0);
    assert!(confab_proto::ids::parse(&n.id).is_some(), "id {:?}", n.id);
    let liked_alice = n.id.clone();
    let liked_bob = only(list(&mut client, &bob, "", 0, false).await).id;
    assert_ne!(liked_alice, liked_bob);

    // The notification's type defaults to the event's.
    let request = publish(
        &mut client,
        PublishRequest {
            r#type: "friend_request_sent".into(),
            payload_json: json!({"requestId": 9}).to_string(),
            user_ids: vec![alice.clone()],
            notification: Some(NotificationContent {
                content: "Carol sent you a friend request".into(),
                ..Default::default()
            }),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(request.notification_count, 1);
    let page = list(&mut client, &alice, "", 0, false).await;
    assert_eq!(page.unread, 2);
    assert_eq!(page.notifications[0].r#type, "friend_request_sent");
    assert_eq!(page.notifications[0].actor, None);
    let request_alice = page.notifications[0].id.clone();

    // A publish without a notification keeps none.
    let bare = publish(
        &mut client,
        PublishRequest {
            r#type: "post_commented".into(),
            payload_json: "{}".into(),
            user_ids: vec![alice.clone()],
            ..Default::default()
        },
    )
    .await;
    assert_eq!((bare.recipient_count, bare.notification_count), (1, 0));
    assert_eq!(unread(&mut client, &alice).await, 2);

    // Bob cannot mark Alice's notification: ignored, nothing changes.
    let by_bob = mark(&mut client, &bob, &[&request_alice], false).await;
    assert_eq!(by_bob.notification_ids, Vec::<String>::new());
    assert_eq!(by_bob.unread, 1, "bob's own count");
    assert_eq!(unread(&mut client, &alice).await, 2);

    // One of Alice's, with Bob's id and an unknown one beside it.
    let one = mark(
        &mut client,
        &alice,
        &[&liked_alice, &liked_bob, "9007199254740991"],
        false,
    )
    .await;
    assert_eq!(one.notification_ids, vec![liked_alice.clone()]);
    assert_eq!(one.unread, 1);
    assert_eq!(unread(&mut client, &bob).await, 1, "bob's stays unread");
    // Marking it again marks nothing.
    let again = mark(&mut client, &alice, &[&liked_alice], false).await;
    assert_eq!(again.notification_ids, Vec::<String>::new());
    assert_eq!(again.unread, 1);

    // All of them.
    let all = mark(&mut client, &alice, &[], true).await;
    assert_eq!(all.notification_ids, vec![request_alice.clone()]);
    assert_eq!(all.unread, 0);
    let page = list(&mut client, &alice, "", 0, false).await;
    assert_eq!(page.unread, 0);
    assert!(
        page.notifications
            .iter()
            .all(|n| n.read && n.read_at_ms > 0)
    );
    assert!(
        list(&mut client, &alice, "", 0, true)
            .await
            .notifications
            .is_empty()
    );
    assert_eq!(unread(&mut client, &bob).await, 1);
}

/// A retried publish returns the first result and publishes nothing; a key
/// reused for something else is a conflict; racing retries store one.
async fn idempotent_publish(mut client: Client) {
    let (alice, bob) = (user("alice"), user("bob"));
    let mut events = subscribe(&mut client).await;
    let key = format!("like-{}", rand::random::<u64>());
    let request = PublishRequest {
        r#type: "post_liked".into(),
        payload_json: json!({"postId": 1}).to_string(),
        user_ids: vec![alice.clone()],
        notification: Some(content("like", "Bob liked your post", &bob, "")),
        idempotency_key: key.clone(),
        ..Default::default()
    };
    let first = publish(&mut client, request.clone()).await;
    assert!(!first.duplicate);
    // domain event, notification_created, unread_count
    let first_events = next_events(&mut events, 3).await;
    let retry = publish(&mut client, request.clone()).await;
    assert!(retry.duplicate);
    assert_eq!(retry.event_id, first.event_id);
    assert_eq!(
        (retry.recipient_count, retry.notification_count),
        (first.recipient_count, first.notification_count)
    );
    assert_eq!(unread(&mut client, &alice).await, 1);
    assert_eq!(
        list(&mut client, &alice, "", 0, false)
            .await
            .notifications
            .len(),
        1
    );

    // The same key for another publish is refused, and stores nothing.
    let mut other = request.clone();
    other.payload_json = json!({"postId": 2}).to_string();
    assert_eq!(code(client.publish(other).await), ErrorCode::Conflict);
    assert_eq!(unread(&mut client, &alice).await, 1);

    // The retry and the refusal published nothing: the next event is a marker.
    let marker = marker(&mut client, &bob).await;
    let event = next_event(&mut events).await;
    assert_eq!(domain_event_id(&event), Some(marker.event_id.clone()));
    let Some(Kind::DomainEvent(d)) = &first_events[0].kind else {
        panic!("expected the first publish's domain event");
    };
    assert_eq!(d.event_id, first.event_id);

    // Racing retries of a new key store one publish.
    let mut racers = tokio::task::JoinSet::new();
    let mut race = request.clone();
    race.idempotency_key = format!("race-{}", rand::random::<u64>());
    race.user_ids = vec![bob.clone()];
    for _ in 0..4 {
        let (mut c, r) = (client.clone(), race.clone());
        racers.spawn(async move { c.publish(r).await.expect("racing publish").into_inner() });
    }
    let results = racers.join_all().await;
    assert_eq!(results.iter().filter(|r| !r.duplicate).count(), 1);
    let ids: BTreeSet<&str> = results.iter().map(|r| r.event_id.as_str()).collect();
    assert_eq!(
        ids.len(),
        1,
        "every racer got the same publish: {results:?}"
    );
    assert_eq!(unread(&mut client, &bob).await, 1);
}

/// Pages go newest first, each `next_before` leading to the next, the last
/// saying there is none.
async fn cursor_paging(mut client: Client) {
    let alice = user("alice");
    for i in 0..7 {
        publish(
            &mut client,
            PublishRequest {
                r#type: "app.reminder".into(),
                payload_json: json!({ "n": i }).to_string(),
                user_ids: vec![alice.clone()],
                notification: Some(NotificationContent {
                    content: format!("reminder {i}"),
                    ..Default::default()
                }),
                ..Default::default()
            },
        )
        .await;
    }
    let mut seen = Vec::new();
    let mut before = String::new();
    let mut pages = Vec::new();
    loop {
        let page = list(&mut client, &alice, &before, 3, false).await;
        pages.push(page.notifications.len());
        seen.extend(page.notifications.iter().map(|n| n.body.clone()));
        if page.next_before.is_empty() {
            break;
        }
        before = page.next_before;
    }
    assert_eq!(pages, vec![3, 3, 1]);
    let expected: Vec<String> = (0..7).rev().map(|i| format!("reminder {i}")).collect();
    assert_eq!(seen, expected);

    // Only unread ones, after marking the newest two.
    let newest = list(&mut client, &alice, "", 2, false).await;
    let ids: Vec<&str> = newest.notifications.iter().map(|n| n.id.as_str()).collect();
    mark(&mut client, &alice, &ids, false).await;
    let unread_page = list(&mut client, &alice, "", 10, true).await;
    assert_eq!(unread_page.notifications.len(), 5);
    assert_eq!(unread_page.notifications[0].body, "reminder 4");
    assert_eq!(unread_page.unread, 5);

    // Bad cursors and limits.
    for (before, limit) in [("x", 0), ("0", 0), ("", 101)] {
        let r = client
            .list_notifications(ListNotificationsRequest {
                user_id: alice.clone(),
                before: before.into(),
                limit,
                unread_only: false,
            })
            .await;
        assert_eq!(code(r), ErrorCode::InvalidArgument, "{before:?} {limit}");
    }
}

/// Every bad input gets `INVALID_ARGUMENT`, stores nothing and publishes
/// nothing.
async fn invalid_input(mut client: Client) {
    let (alice, bob) = (user("alice"), user("bob"));
    let mut events = subscribe(&mut client).await;
    let good = PublishRequest {
        r#type: "post_liked".into(),
        payload_json: "{}".into(),
        user_ids: vec![alice.clone()],
        notification: Some(content("like", "hi", &bob, "")),
        ..Default::default()
    };
    let too_many: Vec<String> = (0..10_001).map(|i| format!("u{i}")).collect();
    let cases: Vec<(&str, PublishRequest)> = vec![
        (
            "empty type",
            PublishRequest {
                r#type: String::new(),
                ..good.clone()
            },
        ),
        (
            "unknown type",
            PublishRequest {
                r#type: "post_exploded".into(),
                ..good.clone()
            },
        ),
        (
            "a contract's own event",
            PublishRequest {
                r#type: "receive_message".into(),
                ..good.clone()
            },
        ),
        (
            "a client report type",
            PublishRequest {
                r#type: "story_viewed".into(),
                ..good.clone()
            },
        ),
        (
            "bad app name",
            PublishRequest {
                r#type: "app.Bad-Name".into(),
                ..good.clone()
            },
        ),
        (
            "array payload",
            PublishRequest {
                payload_json: "[1]".into(),
                ..good.clone()
            },
        ),
        (
            "string payload",
            PublishRequest {
                payload_json: "\"x\"".into(),
                ..good.clone()
            },
        ),
        (
            "not JSON",
            PublishRequest {
                payload_json: "{postId:".into(),
                ..good.clone()
            },
        ),
        (
            "empty payload",
            PublishRequest {
                payload_json: String::new(),
                ..good.clone()
            },
        ),
        (
            "payload too large",
            PublishRequest {
                payload_json: json!({ "x": "y".repeat(70_000) }).to_string(),
                ..good.clone()
            },
        ),
        (
            "empty audience",
            PublishRequest {
                user_ids: vec![],
                ..good.clone()
            },
        ),
        (
            "users and everyone",
            PublishRequest {
                everyone: true,
                ..good.clone()
            },
        ),
        (
            "everyone with a notification",
            PublishRequest {
                user_ids: vec![],
                everyone: true,
                ..good.clone()
            },
        ),
        (
            "10,001 users",
            PublishRequest {
                user_ids: too_many,
                notification: None,
                ..good.clone()
            },
        ),
        (
            "empty user id",
            PublishRequest {
                user_ids: vec![alice.clone(), " ".into()],
                ..good.clone()
            },
        ),
        (
            "empty content",
            PublishRequest {
                notification: Some(content("like", "", &bob, "")),
                ..good.clone()
            },
        ),
        (
            "bad notification type",
            PublishRequest {
                notification: Some(content("Like!", "hi", &bob, "")),
                ..good.clone()
            },
        ),
        (
            "long idempotency key",
            PublishRequest {
                idempotency_key: "k".repeat(201),
                ..good.clone()
            },
        ),
    ];
    for (what, request) in cases {
        assert_eq!(
            code(client.publish(request).await),
            ErrorCode::InvalidArgument,
            "{what}"
        );
    }

    let marks = [
        (alice.clone(), vec![], false),
        (alice.clone(), vec!["1".to_string()], true),
        (alice.clone(), vec!["abc".to_string()], false),
        (String::new(), vec![], true),
    ];
    for (user_id, notification_ids, all) in marks {
        let r = client
            .mark_notifications_read(MarkNotificationsReadRequest {
                user_id,
                notification_ids,
                all,
            })
            .await;
        assert_eq!(code(r), ErrorCode::InvalidArgument);
    }
    let r = client
        .unread_count(UnreadCountRequest {
            user_id: String::new(),
        })
        .await;
    assert_eq!(code(r), ErrorCode::InvalidArgument);

    let reports = [
        (None, "story_viewed", json!({"storyId": 1}).to_string()),
        (
            actor(&bob),
            "story_liked",
            json!({"storyId": 1}).to_string(),
        ),
        (
            actor(&bob),
            "story_viewed",
            json!({"viewerId": 1}).to_string(),
        ),
        (
            actor(&bob),
            "story_viewed",
            json!({"storyId": -4}).to_string(),
        ),
        (actor(&bob), "story_viewed", "[]".to_string()),
    ];
    for (actor, kind, payload_json) in reports {
        let r = client
            .report(ReportRequest {
                actor,
                r#type: kind.into(),
                payload_json: payload_json.clone(),
            })
            .await;
        assert_eq!(code(r), ErrorCode::InvalidArgument, "{kind} {payload_json}");
    }
    let r = client
        .list_story_views(ListStoryViewsRequest {
            story_id: String::new(),
            ..Default::default()
        })
        .await;
    assert_eq!(code(r), ErrorCode::InvalidArgument);

    // Nothing was stored, nothing published: the next event is the marker.
    assert_eq!(unread(&mut client, &alice).await, 0);
    let marker = marker(&mut client, &bob).await;
    let event = next_event(&mut events).await;
    assert_eq!(domain_event_id(&event), Some(marker.event_id));
}

/// 10,000 recipients are accepted, each gets a notification, an event and
/// an unread count.
async fn ten_thousand_recipients(mut client: Client) {
    let tag = format!("{:08x}", rand::random::<u32>());
    let users: Vec<String> = (0..10_000).map(|i| format!("fan{i}-{tag}")).collect();
    let mut events = subscribe(&mut client).await;
    // Read the stream beside the publish: the bus holds publishers back
    // while a subscriber has not read (backpressure).
    let reader = tokio::spawn(async move {
        let mut created = BTreeSet::new();
        let mut counted = BTreeSet::new();
        let mut domain = 0;
        while created.len() < 10_000 || counted.len() < 10_000 {
            let event = next_event(&mut events).await;
            let to = audience(&event);
            match event.kind {
                Some(Kind::DomainEvent(_)) => domain += 1,
                Some(Kind::NotificationCreated(n)) => {
                    assert_eq!(to, vec![n.user_id.clone()]);
                    created.insert(n.user_id);
                }
                Some(Kind::UnreadCount(c)) => {
                    assert_eq!(c.unread, 1);
                    assert_eq!(to, vec![c.user_id.clone()]);
                    counted.insert(c.user_id);
                }
                other => panic!("unexpected event {other:?}"),
            }
        }
        (domain, created, counted)
    });
    let started = std::time::Instant::now();
    let published = publish(
        &mut client,
        PublishRequest {
            r#type: "story_created".into(),
            payload_json: json!({"storyId": 5, "userId": 1}).to_string(),
            user_ids: users.clone(),
            notification: Some(NotificationContent {
                r#type: "story".into(),
                content: "A new story".into(),
                ..Default::default()
            }),
            ..Default::default()
        },
    )
    .await;
    eprintln!("10,000-recipient publish took {:?}", started.elapsed());
    assert_eq!(
        (published.recipient_count, published.notification_count),
        (10_000, 10_000)
    );
    let (domain, created, counted) = tokio::time::timeout(Duration::from_secs(60), reader)
        .await
        .expect("every event within 60 s")
        .expect("reader");
    let all: BTreeSet<String> = users.iter().cloned().collect();
    assert_eq!(domain, 1);
    assert_eq!(created, all);
    assert_eq!(counted, all);
    for u in [&users[0], &users[4_999], &users[9_999]] {
        assert_eq!(unread(&mut client, u).await, 1);
        assert_eq!(
            only(list(&mut client, u, "", 0, false).await).body,
            "A new story"
        );
    }
}

/// A story view is recorded once per viewer, the viewer being the actor
/// (never the payload's `viewerId`), and the story's publisher reads who
/// viewed it, a page at a time.
async fn story_views(mut client: Client) {
    let (bob, carol, mallory) = (user("bob"), user("carol"), user("mallory"));
    let story = format!("{}", rand::random::<u32>() as u64 + 1);
    let story_num: u64 = story.parse().unwrap();
    let mut events = subscribe(&mut client).await;

    let first = report(
        &mut client,
        &bob,
        json!({"storyId": story_num, "viewerId": mallory}),
    )
    .await;
    assert!(!first.duplicate);
    let event = next_event(&mut events).await;
    let Some(Kind::DomainEvent(d)) = &event.kind else {
        panic!("expected a domain event, got {:?}", event.kind);
    };
    assert_eq!(d.r#type, "story_viewed");
    assert_eq!(d.actor_id, bob);
    assert_eq!(
        serde_json::from_str::<Value>(&d.payload_json).unwrap(),
        json!({"storyId": story_num, "viewerId": bob})
    );
    let to = event.audience.clone().expect("audience");
    assert!(
        to.user_ids.is_empty() && !to.everyone,
        "for internal services only: {to:?}"
    );

    // Viewing again (the id as a string this time) records nothing new.
    let again = report(&mut client, &bob, json!({"storyId": story})).await;
    assert!(again.duplicate);
    report(&mut client, &carol, json!({"storyId": story})).await;
    let event = next_event(&mut events).await;
    let Some(Kind::DomainEvent(d)) = &event.kind else {
        panic!("expected carol's view, got {:?}", event.kind);
    };
    assert_eq!(d.actor_id, carol, "bob's second view published nothing");

    let views = client
        .list_story_views(ListStoryViewsRequest {
            story_id: story.clone(),
            ..Default::default()
        })
        .await
        .expect("list views")
        .into_inner();
    assert_eq!(views.total, 2);
    assert_eq!(views.next_after, "");
    let viewers: Vec<(String, String)> = views
        .views
        .iter()
        .map(|v| {
            let a = v.viewer.as_ref().expect("viewer");
            (a.id.clone(), a.name.clone())
        })
        .collect();
    assert_eq!(
        viewers,
        vec![
            (bob.clone(), format!("{bob} name")),
            (carol.clone(), format!("{carol} name"))
        ]
    );
    assert!(
        views
            .views
            .iter()
            .all(|v| v.story_id == story && v.viewed_at_ms > 0)
    );

    // One at a time.
    let page = client
        .list_story_views(ListStoryViewsRequest {
            story_id: story.clone(),
            limit: 1,
            after: String::new(),
        })
        .await
        .expect("first page")
        .into_inner();
    assert_eq!(page.views.len(), 1);
    assert_ne!(page.next_after, "");
    let page = client
        .list_story_views(ListStoryViewsRequest {
            story_id: story.clone(),
            limit: 1,
            after: page.next_after,
        })
        .await
        .expect("second page")
        .into_inner();
    assert_eq!(page.views[0].viewer.as_ref().unwrap().id, carol);
    assert_eq!(page.next_after, "");

    // Another story has no views.
    let none = client
        .list_story_views(ListStoryViewsRequest {
            story_id: format!("{story}0"),
            ..Default::default()
        })
        .await
        .expect("no views")
        .into_inner();
    assert_eq!((none.total, none.views.len()), (0, 0));
}

/// Each change is one event per recipient with that recipient as its
/// audience; the domain event goes to the publish's audience; everyone
/// reaches everyone and keeps nothing.
async fn subscribe_events(mut client: Client) {
    let (alice, bob, carol) = (user("alice"), user("bob"), user("carol"));
    let mut events = subscribe(&mut client).await;

    let published = publish(
        &mut client,
        PublishRequest {
            r#type: "post_commented".into(),
            payload_json: json!({"postId": 3, "commentCount": 1}).to_string(),
            user_ids: vec![alice.clone(), bob.clone()],
            notification: Some(content("comment", "Carol commented", &carol, "/posts/3")),
            ..Default::default()
        },
    )
    .await;
    let got = next_events(&mut events, 5).await;
    let Some(Kind::DomainEvent(d)) = &got[0].kind else {
        panic!("expected the domain event first, got {:?}", got[0].kind);
    };
    assert_eq!(d.r#type, "post_commented");
    assert_eq!(d.event_id, published.event_id);
    assert_eq!(d.actor_id, carol);
    assert_eq!(
        d.payload_json,
        json!({"postId": 3, "commentCount": 1}).to_string()
    );
    assert_eq!(audience(&got[0]), vec![alice.clone(), bob.clone()]);
    assert!(!got[0].audience.as_ref().unwrap().everyone);
    for (i, who) in [(1, &alice), (2, &bob)] {
        let Some(Kind::NotificationCreated(n)) = &got[i].kind else {
            panic!("expected notification_created, got {:?}", got[i].kind);
        };
        assert_eq!(&n.user_id, who);
        assert_eq!(n.body, "Carol commented");
        assert_eq!(n.r#type, "comment");
        assert_eq!(audience(&got[i]), vec![who.clone()]);
    }
    for (i, who) in [(3, &alice), (4, &bob)] {
        let Some(Kind::UnreadCount(c)) = &got[i].kind else {
            panic!("expected unread_count, got {:?}", got[i].kind);
        };
        assert_eq!((&c.user_id, c.unread), (who, 1));
        assert_eq!(audience(&got[i]), vec![who.clone()]);
    }
    assert!(got.windows(2).all(|w| w[1].seq == w[0].seq + 1));

    // Marking read: which ones, then the new count, to the owner only.
    let id = only(list(&mut client, &alice, "", 0, false).await).id;
    mark(&mut client, &alice, &[&id], false).await;
    let got = next_events(&mut events, 2).await;
    let Some(Kind::NotificationsRead(r)) = &got[0].kind else {
        panic!("expected notifications_read, got {:?}", got[0].kind);
    };
    assert_eq!(
        (&r.user_id, &r.notification_ids),
        (&alice, &vec![id.clone()])
    );
    assert!(r.read_at_ms > 0);
    assert_eq!(audience(&got[0]), vec![alice.clone()]);
    let Some(Kind::UnreadCount(c)) = &got[1].kind else {
        panic!("expected unread_count, got {:?}", got[1].kind);
    };
    assert_eq!((&c.user_id, c.unread), (&alice, 0));
    assert_eq!(audience(&got[1]), vec![alice.clone()]);

    // Marking nothing new publishes nothing; everyone gets one event.
    mark(&mut client, &alice, &[&id], false).await;
    let story = publish(
        &mut client,
        PublishRequest {
            r#type: "story_created".into(),
            payload_json: json!({"storyId": 8}).to_string(),
            everyone: true,
            ..Default::default()
        },
    )
    .await;
    assert_eq!((story.recipient_count, story.notification_count), (0, 0));
    let event = next_event(&mut events).await;
    assert_eq!(domain_event_id(&event), Some(story.event_id));
    let to = event.audience.clone().unwrap();
    assert!(to.everyone && to.user_ids.is_empty(), "{to:?}");
    // Nothing else came with it: the next event is a marker's.
    let marker = marker(&mut client, &bob).await;
    let event = next_event(&mut events).await;
    assert_eq!(domain_event_id(&event), Some(marker.event_id));
}

// ---- message notifications -----------------------------------------------

#[tokio::test]
async fn sqlite_message_notifications() {
    let dir = tempfile::tempdir().unwrap();
    let url = |name: &str| format!("sqlite://{}?mode=rwc", dir.path().join(name).display());
    message_notifications(&url("chat.db"), &url("notify.db"), &url("presence.db")).await;
}

#[tokio::test]
async fn postgres_message_notifications() {
    let Some(url) = db::postgres_url().await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let presence = format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("presence.db").display()
    );
    // chat-service and notify-service share the database, each with its
    // own tables.
    message_notifications(&url, &url, &presence).await;
    db::drop_postgres(&url).await;
}

/// A member with no live session gets a `message` notification; one with
/// a session, and the sender, do not. A notify-service restart resumes the
/// chat stream where it stopped: a message sent meanwhile is not lost, and
/// replayed ones are not doubled.
async fn message_notifications(chat_db: &str, notify_db: &str, presence_db: &str) {
    let (chat, mut chat_client) = db::spawn_chat(chat_db).await;
    let presence = confab_presence::serve(
        TcpListener::bind("127.0.0.1:0").await.unwrap(),
        confab_presence::Config {
            database_url: presence_db.to_string(),
            ..Default::default()
        },
    )
    .await
    .expect("presence-service");
    let mut presence_client = PresenceServiceClient::connect(presence.url())
        .await
        .expect("connect to presence-service");
    let sources = Some((chat.url(), presence.url()));
    let (notify, mut client) = spawn_notify(notify_db, sources.clone()).await;

    let (alice, bob, carol) = (user("alice"), user("bob"), user("carol"));
    let conv = chat_client
        .create_conversation(CreateConversationRequest {
            actor: actor(&alice),
            kind: ConversationKind::Group as i32,
            name: "weekend".into(),
            member_ids: vec![bob.clone(), carol.clone()],
        })
        .await
        .expect("create conversation")
        .into_inner();
    // Bob is connected somewhere; Carol is not.
    presence_client
        .register_session(RegisterSessionRequest {
            actor: actor(&bob),
            edge_id: "edge-test".into(),
            socket_id: "bob-socket".into(),
            contract: "raven".into(),
            watcher_ids: vec![],
        })
        .await
        .expect("register bob's session");

    // The follower opens its stream shortly after start: wait until a
    // message reaches Carol before checking anything.
    let mut events = subscribe(&mut client).await;
    let send = |text: &str| {
        let mut c = chat_client.clone();
        let req = SendMessageRequest {
            actor: actor(&alice),
            conversation_id: conv.id.clone(),
            text: text.to_string(),
            ..Default::default()
        };
        async move {
            c.send_message(req)
                .await
                .expect("send")
                .into_inner()
                .message
                .expect("message")
        }
    };
    let mut tries = 0;
    while unread(&mut client, &carol).await == 0 {
        if tries % 10 == 0 {
            // Again every second: the follower may have subscribed after it.
            send("warm-up").await;
        }
        tries += 1;
        assert!(tries < 100, "no message notification within 10 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Messages are handled in order: once this one's events are read,
    // every warm-up's came before.
    let sync = send("sync").await;
    let sync_tag = format!("\"messageId\":\"{}\"", sync.id);
    let mut synced = false;
    let warm = loop {
        match next_event(&mut events).await.kind {
            Some(Kind::NotificationCreated(n))
                if n.user_id == carol && n.payload_json.contains(&sync_tag) =>
            {
                synced = true
            }
            Some(Kind::UnreadCount(c)) if synced && c.user_id == carol => break c.unread,
            _ => {}
        }
    };

    // Everything from here on is one message's events, in order: only
    // Carol's, and the second message's arrive after the first's.
    let hello = send("hello, anyone?").await;
    let got = next_events(&mut events, 2).await;
    let Some(Kind::NotificationCreated(n)) = &got[0].kind else {
        panic!("expected carol's notification, got {:?}", got[0].kind);
    };
    assert_eq!(audience(&got[0]), vec![carol.clone()]);
    assert_eq!(n.user_id, carol);
    assert_eq!(n.r#type, "message");
    assert_eq!(n.event_type, "message");
    assert_eq!(n.body, "hello, anyone?");
    assert_eq!(n.title, "weekend");
    let sender = n.actor.as_ref().expect("the sender");
    assert_eq!(
        (&sender.id, &sender.name),
        (&alice, &format!("{alice} name"))
    );
    assert_eq!(
        serde_json::from_str::<Value>(&n.payload_json).unwrap(),
        json!({"conversationId": conv.id, "messageId": hello.id})
    );
    let Some(Kind::UnreadCount(c)) = &got[1].kind else {
        panic!("expected carol's unread count, got {:?}", got[1].kind);
    };
    assert_eq!((&c.user_id, c.unread), (&carol, warm + 1));

    // Bob, online, got nothing: had he, his events would have come with
    // Carol's, before the next message's.
    send("second").await;
    let got = next_events(&mut events, 2).await;
    for e in &got {
        assert_eq!(audience(e), vec![carol.clone()], "only carol: {e:?}");
    }
    assert_eq!(unread(&mut client, &bob).await, 0);
    assert_eq!(unread(&mut client, &alice).await, 0, "never the sender");

    // Bob disconnects: now he is notified too.
    presence_client
        .unregister_session(UnregisterSessionRequest {
            user_id: bob.clone(),
            edge_id: "edge-test".into(),
            socket_id: "bob-socket".into(),
            watcher_ids: vec![],
        })
        .await
        .expect("unregister bob's session");
    send("bob?").await;
    let got = next_events(&mut events, 4).await;
    let mut to: Vec<String> = got.iter().flat_map(audience).collect();
    to.sort();
    let mut want = vec![bob.clone(), bob.clone(), carol.clone(), carol.clone()];
    want.sort();
    assert_eq!(to, want);
    assert_eq!(unread(&mut client, &bob).await, 1);
    let carol_before = unread(&mut client, &carol).await;
    assert_eq!(carol_before, warm + 3);

    // notify-service stops; a message comes meanwhile; it starts again,
    // made to replay chat's whole log (its saved position reset), and
    // notifies the missed message once, the replayed ones not again.
    notify.shutdown().await;
    let missed = send("while you were away").await;
    reset_chat_position(notify_db).await;
    let (notify, mut client) = spawn_notify(notify_db, sources).await;
    let mut tries = 0;
    while unread(&mut client, &carol).await < carol_before + 1 {
        tries += 1;
        assert!(
            tries < 100,
            "the missed message was not notified within 10 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut events = subscribe(&mut client).await;
    let after = send("welcome back").await;
    let got = next_events(&mut events, 4).await;
    let mut to: Vec<String> = got.iter().flat_map(audience).collect();
    to.sort();
    assert_eq!(to, want, "one new message's events, nothing replayed");
    let carol_list = list(&mut client, &carol, "", 100, false).await;
    let messages: Vec<String> = carol_list
        .notifications
        .iter()
        .map(|n| {
            serde_json::from_str::<Value>(&n.payload_json).unwrap()["messageId"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    let distinct: BTreeSet<&String> = messages.iter().collect();
    assert_eq!(
        distinct.len(),
        messages.len(),
        "no message twice: {messages:?}"
    );
    assert_eq!(messages[0], after.id);
    assert_eq!(messages[1], missed.id);
    assert_eq!(carol_list.unread, carol_before + 2);

    notify.shutdown().await;
    presence.shutdown().await;
    chat.shutdown().await;
}

/// The embedded wiring: [`confab_notify::build`] with in-process
/// [`confab_notify::MessageSources`] (each service's tonic server used as
/// its client's transport, no network). A member with no session is notified; one with a session and
/// the sender are not (one message's notifications are stored together, so
/// once Carol's is there, Bob's would be too).
#[tokio::test]
async fn message_notifications_over_in_process_clients() {
    use confab_proto::bus::LocalBus;
    use confab_proto::v1::chat_service_server::ChatServiceServer;
    use confab_proto::v1::presence_service_server::PresenceServiceServer;
    use std::sync::Arc;

    let dir = tempfile::tempdir().unwrap();
    let url = |name: &str| format!("sqlite://{}?mode=rwc", dir.path().join(name).display());
    let (_closer, closing) = confab_proto::server::closing();

    let chat_db = confab_chat::connect(&url("chat.db"))
        .await
        .expect("chat db");
    let chat = confab_chat::Chat::new(chat_db, Arc::new(LocalBus::new(4096)));
    let mut chat = ChatServiceClient::new(ChatServiceServer::new(
        confab_chat::grpc::ChatGrpc::new(chat, closing.clone()),
    ));

    let presence_config = confab_presence::Config {
        database_url: url("presence.db"),
        ..Default::default()
    };
    let presence_db = confab_presence::connect(&presence_config.database_url)
        .await
        .expect("presence db");
    let presence = confab_presence::Presence::new(
        confab_presence::open_store(&presence_config).await.unwrap(),
        confab_presence::last_seen::LastSeen::new(presence_db),
        Arc::new(LocalBus::new(4096)),
        &presence_config,
    );
    let mut presence = PresenceServiceClient::new(PresenceServiceServer::new(
        confab_presence::grpc::PresenceGrpc::new(presence, closing.clone()),
    ));

    let sources = confab_notify::MessageSources {
        chat: chat.clone(),
        presence: presence.clone(),
    };
    let notify_config = NotifyConfig {
        database_url: url("notify.db"),
        ..Default::default()
    };
    // The follower runs until the closer signals shutdown (or is dropped).
    let (server, notify_closer) = confab_notify::build(notify_config, Some(sources))
        .await
        .expect("notify-service")
        .into_parts();
    let client = NotifyServiceClient::new(server);

    let (alice, bob, carol) = (user("alice"), user("bob"), user("carol"));
    presence
        .register_session(RegisterSessionRequest {
            actor: actor(&bob),
            edge_id: "edge-test".into(),
            socket_id: "bob-socket".into(),
            contract: "raven".into(),
            watcher_ids: vec![],
        })
        .await
        .expect("register bob's session");
    let conv = chat
        .create_conversation(CreateConversationRequest {
            actor: actor(&alice),
            kind: ConversationKind::Group as i32,
            name: "in-process".into(),
            member_ids: vec![bob.clone(), carol.clone()],
        })
        .await
        .expect("create conversation")
        .into_inner();
    let unread_of = |user: &str| {
        let mut c = client.clone();
        let user_id = user.to_string();
        async move {
            c.unread_count(UnreadCountRequest { user_id })
                .await
                .expect("unread count")
                .into_inner()
                .unread
        }
    };
    let mut tries = 0;
    while unread_of(&carol).await == 0 {
        if tries % 10 == 0 {
            // Again every second: the follower may have subscribed after it.
            chat.send_message(SendMessageRequest {
                actor: actor(&alice),
                conversation_id: conv.id.clone(),
                text: "anyone?".into(),
                ..Default::default()
            })
            .await
            .expect("send");
        }
        tries += 1;
        assert!(tries < 100, "no message notification within 10 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let page = client
        .clone()
        .list_notifications(ListNotificationsRequest {
            user_id: carol.clone(),
            ..Default::default()
        })
        .await
        .expect("list")
        .into_inner();
    assert_eq!(page.notifications[0].r#type, "message");
    assert_eq!(page.notifications[0].body, "anyone?");
    assert_eq!(unread_of(&bob).await, 0, "bob has a live session");
    assert_eq!(unread_of(&alice).await, 0, "never the sender");
    drop(notify_closer);
}

/// Makes notify-service's next start replay chat's log from its start.
async fn reset_chat_position(notify_db: &str) {
    use sea_orm::{ConnectionTrait, Database};
    let db = Database::connect(notify_db).await.expect("notify database");
    db.execute_unprepared("UPDATE notify_cursors SET seq = 0")
        .await
        .expect("reset the saved position");
    db.close().await.expect("close");
}

// ---- REST ----------------------------------------------------------------

#[tokio::test]
async fn sqlite_rest_notifications() {
    let app = spawn_app_with(Db::Sqlite, "raven").await;
    rest_notifications(&app).await;
    app.shutdown().await;
}

#[tokio::test]
async fn postgres_rest_notifications() {
    if !db::postgres_url_configured() {
        return;
    }
    let app = spawn_app_with(Db::Postgres, "raven").await;
    rest_notifications(&app).await;
    app.shutdown().await;
}

/// The caller's notifications over REST: list with a cursor, unread count,
/// mark read (theirs only), errors in the REST error shape.
async fn rest_notifications(app: &TestApp) {
    let notify_url = app
        .service_urls()
        .into_iter()
        .find(|(_, name)| *name == confab_notify::SERVICE_NAME)
        .expect("notify-service's URL")
        .0;
    let mut client = NotifyServiceClient::connect(notify_url).await.unwrap();
    let (alice, bob) = (user("alice"), user("bob"));
    for i in 0..3 {
        publish(
            &mut client,
            PublishRequest {
                r#type: "friend_request_sent".into(),
                payload_json: json!({ "requestId": i }).to_string(),
                user_ids: vec![alice.clone()],
                notification: Some(content(
                    "friend_request",
                    &format!("request {i}"),
                    &bob,
                    "/friends",
                )),
                ..Default::default()
            },
        )
        .await;
    }
    publish(
        &mut client,
        PublishRequest {
            r#type: "post_liked".into(),
            payload_json: "{}".into(),
            user_ids: vec![bob.clone()],
            notification: Some(content("like", "for bob", &alice, "")),
            ..Default::default()
        },
    )
    .await;
    let bobs_id = only(list(&mut client, &bob, "", 0, false).await).id;

    let http = reqwest::Client::new();
    let (ta, tb) = (app.token(&alice, "Alice"), app.token(&bob, "Bob"));
    let get = |path: &str, token: &str| {
        http.get(format!("{}{path}", app.url))
            .bearer_auth(token)
            .send()
    };
    let post = |path: &str, token: &str, body: Value| {
        http.post(format!("{}{path}", app.url))
            .bearer_auth(token)
            .json(&body)
            .send()
    };

    // No token: the REST error shape.
    let r = http
        .get(format!("{}/api/notifications", app.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "AUTHENTICATION_REQUIRED");

    let r = get("/api/notifications?limit=2", &ta).await.unwrap();
    assert_eq!(r.status(), 200);
    let page: Value = r.json().await.unwrap();
    let items = page["notifications"].as_array().unwrap();
    assert_eq!(items.len(), 2);
    assert_eq!(page["unread"], 3);
    let newest = &items[0];
    assert_eq!(newest["content"], "request 2");
    assert_eq!(newest["type"], "friend_request");
    assert_eq!(newest["eventType"], "friend_request_sent");
    assert_eq!(newest["actor"]["id"], bob.as_str());
    assert_eq!(newest["actor"]["name"], "Bob");
    assert_eq!(newest["link"], "/friends");
    assert_eq!(newest["payload"], json!({"requestId": 2}));
    assert_eq!(newest["read"], false);
    assert!(newest["id"].is_string());
    assert!(newest["createdAt"].as_str().unwrap().ends_with('Z'));
    let next = page["nextBefore"]
        .as_str()
        .expect("a next page")
        .to_string();
    let page: Value = get(&format!("/api/notifications?limit=2&before={next}"), &ta)
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let oldest = &page["notifications"][0];
    assert_eq!(oldest["content"], "request 0");
    assert_eq!(page["notifications"].as_array().unwrap().len(), 1);
    assert_eq!(page["nextBefore"], Value::Null);

    let count: Value = get("/api/notifications/unread-count", &ta)
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(count, json!({"count": 3}));

    // Alice marks her oldest and Bob's: only hers is marked.
    let oldest_id = oldest["id"].as_str().unwrap().to_string();
    let r = post(
        "/api/notifications/read",
        &ta,
        json!({"ids": [oldest_id.clone(), bobs_id.parse::<u64>().unwrap()]}),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 200);
    let done: Value = r.json().await.unwrap();
    assert_eq!(done, json!({"unread": 2, "ids": [oldest_id]}));
    let bobs: Value = get("/api/notifications/unread-count", &tb)
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(bobs, json!({"count": 1}));

    // Bad requests.
    for body in [
        json!({}),
        json!({"ids": ["x"]}),
        json!({"ids": [1], "all": true}),
        json!({"every": true}),
    ] {
        let r = post("/api/notifications/read", &ta, body.clone())
            .await
            .unwrap();
        assert_eq!(r.status(), 400, "{body}");
        let e: Value = r.json().await.unwrap();
        assert_eq!(e["error"]["code"], "INVALID_ARGUMENT", "{body}");
    }
    for q in ["limit=abc", "limit=500", "before=x", "unreadOnly=maybe"] {
        let r = get(&format!("/api/notifications?{q}"), &ta).await.unwrap();
        assert_eq!(r.status(), 400, "{q}");
        let e: Value = r.json().await.unwrap();
        assert_eq!(e["error"]["code"], "INVALID_ARGUMENT", "{q}");
    }

    let r = post("/api/notifications/read", &ta, json!({"all": true}))
        .await
        .unwrap();
    let done: Value = r.json().await.unwrap();
    assert_eq!(done["unread"], 0);
    assert_eq!(done["ids"].as_array().unwrap().len(), 2);
    let page: Value = get("/api/notifications?unreadOnly=true", &ta)
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(page["notifications"], json!([]));
    assert_eq!(page["unread"], 0);
}

// ---- helpers -------------------------------------------------------------

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

fn content(kind: &str, text: &str, by: &str, link: &str) -> NotificationContent {
    let name = by.split('-').next().unwrap_or(by);
    let mut display = name.to_string();
    display[..1].make_ascii_uppercase();
    NotificationContent {
        r#type: kind.into(),
        content: text.into(),
        actor: Some(Actor {
            id: by.into(),
            name: display,
            avatar: format!("https://img/{name}.png"),
            username: String::new(),
        }),
        link: link.into(),
        title: String::new(),
    }
}

/// The stable error code of a call that must have failed.
fn code<T: std::fmt::Debug>(result: Result<Response<T>, Status>) -> ErrorCode {
    match result {
        Ok(response) => panic!("expected an error, got {:?}", response.into_inner()),
        Err(status) => ServiceError::from_status(&status).code,
    }
}

fn audience(event: &NotifyEvent) -> Vec<String> {
    event.audience.as_ref().expect("audience").user_ids.clone()
}

fn domain_event_id(event: &NotifyEvent) -> Option<String> {
    match &event.kind {
        Some(Kind::DomainEvent(d)) => Some(d.event_id.clone()),
        _ => None,
    }
}

fn only(page: ListNotificationsResponse) -> Notification {
    assert_eq!(page.notifications.len(), 1, "{:?}", page.notifications);
    page.notifications.into_iter().next().unwrap()
}

async fn publish(client: &mut Client, request: PublishRequest) -> PublishResponse {
    client.publish(request).await.expect("publish").into_inner()
}

/// An event nobody else publishes, to show that nothing came before it.
async fn marker(client: &mut Client, to: &str) -> PublishResponse {
    publish(
        client,
        PublishRequest {
            r#type: "app.marker".into(),
            payload_json: "{}".into(),
            user_ids: vec![to.to_string()],
            ..Default::default()
        },
    )
    .await
}

async fn list(
    client: &mut Client,
    user_id: &str,
    before: &str,
    limit: u32,
    unread_only: bool,
) -> ListNotificationsResponse {
    client
        .list_notifications(ListNotificationsRequest {
            user_id: user_id.to_string(),
            unread_only,
            limit,
            before: before.to_string(),
        })
        .await
        .expect("list notifications")
        .into_inner()
}

async fn unread(client: &mut Client, user_id: &str) -> u32 {
    client
        .unread_count(UnreadCountRequest {
            user_id: user_id.to_string(),
        })
        .await
        .expect("unread count")
        .into_inner()
        .unread
}

async fn mark(
    client: &mut Client,
    user_id: &str,
    ids: &[&str],
    all: bool,
) -> MarkNotificationsReadResponse {
    client
        .mark_notifications_read(MarkNotificationsReadRequest {
            user_id: user_id.to_string(),
            notification_ids: ids.iter().map(|s| s.to_string()).collect(),
            all,
        })
        .await
        .expect("mark read")
        .into_inner()
}

async fn report(
    client: &mut Client,
    viewer: &str,
    payload: Value,
) -> confab_proto::v1::ReportResponse {
    client
        .report(ReportRequest {
            actor: actor(viewer),
            r#type: "story_viewed".into(),
            payload_json: payload.to_string(),
        })
        .await
        .expect("report")
        .into_inner()
}

async fn subscribe(client: &mut Client) -> Streaming<NotifyEvent> {
    client
        .subscribe(SubscribeRequest {
            subscriber: "notify-test".into(),
            ..Default::default()
        })
        .await
        .expect("subscribe")
        .into_inner()
}

async fn next_event(events: &mut Streaming<NotifyEvent>) -> NotifyEvent {
    tokio::time::timeout(Duration::from_secs(10), events.message())
        .await
        .expect("an event within 10 s")
        .expect("stream error")
        .expect("stream ended")
}

async fn next_events(events: &mut Streaming<NotifyEvent>, n: usize) -> Vec<NotifyEvent> {
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        out.push(next_event(events).await);
    }
    out
}
