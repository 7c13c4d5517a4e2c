//! `hvtsocial`'s notifications and the product's domain events (seed 000:
//! Notification, Story, Friend Request and Post Interaction events), from
//! notify-service. The events come from the internal services that own
//! posts, stories and friendships (notify-service's `Publish`); confab
//! stores the notifications and counts, and relays the rest untouched.
//!
//! | seed event | direction | confab |
//! |---|---|---|
//! | `new_notification {id, type, content, actor {id, full_name, avatar}, created_at, is_read, link?}` | s→c | `NotifyEvent.notification_created`: every socket of its owner, live; kept for later (`GET /api/notifications`) |
//! | `unread_count {count}` | s→c | on connect, and after every change (`NotifyEvent.unread_count`) on every socket of the user |
//! | `notification_read {notificationId}` | c→s | `MarkNotificationsRead` of that one, the token's user's own only (another user's id, or one already read, changes nothing) |
//! | `story_created`, `friend_request_sent`, `friend_request_accepted`, `friend_request_updated`, `post_liked`, `post_commented` | s→c | `NotifyEvent.domain_event` of that type: its payload as the publisher wrote it (the seed's shapes, numeric ids), to the audience the publisher named — a list of users, or everyone connected |
//! | `story_viewed {storyId, viewerId}` | c→s | `Report`: the viewer is the token's user (`viewerId`, when sent, must be it: `PERMISSION_DENIED`); the story's publisher reads the views over gRPC (`ListStoryViews`) |
//!
//! Choices where the seed is vague:
//! - "Server → Broadcast" in the seed means the publisher decides: a
//!   `Publish` to `everyone` reaches every connected socket of every
//!   contract that renders the event (here, hvtsocial's); each such socket
//!   gets one packet, so a large audience is one write per socket.
//! - Ids inside a domain event's payload are the publisher's; notification
//!   and user ids confab renders are numbers when numeric.
//! - Domain event types outside the seed (`app.<name>`) are not rendered:
//!   no hvtsocial frontend listens for them.
//! - Failures are the contract's `error {code, message, event}` (and a
//!   failed ack when one was passed), as for chat events.

use confab_proto::ServiceError;
use confab_proto::v1::notify_event::Kind;
use confab_proto::v1::{
    Actor, Audience, MarkNotificationsReadRequest, Notification, NotifyEvent, ReportRequest,
    UnreadCountRequest,
};
use serde::Deserialize;
use serde_json::{Value, json};
use socketioxide::extract::{SocketRef, State};

use crate::contract::me::Me;

use super::check_self;
use crate::auth::Identity;
use crate::contract::Emit;
use crate::contract::payload::Payload;
use crate::contract::reply::Reply;
use crate::rooms::{EVERYONE_ROOM, user_room};
use crate::state::EdgeState;
use crate::wire::{WireId, iso, numeric_id};

/// The domain events the seed names, rendered under their own names.
const DOMAIN_EVENTS: [&str; 6] = [
    "story_created",
    "friend_request_sent",
    "friend_request_accepted",
    "friend_request_updated",
    "post_liked",
    "post_commented",
];

pub(super) fn on_connect(s: &SocketRef) {
    s.on("notification_read", notification_read);
    s.on("story_viewed", story_viewed);
}

/// `unread_count` right after connecting, so the badge is right at once.
pub(super) fn greet(s: &SocketRef, me: &Identity, edge: &EdgeState) {
    let s = s.clone();
    let user_id = me.user_id.clone();
    let mut notify = edge.notify.clone();
    tokio::spawn(async move {
        match notify.unread_count(UnreadCountRequest { user_id }).await {
            Ok(r) => {
                let _ = s.emit("unread_count", &json!({ "count": r.into_inner().unread }));
            }
            Err(status) => {
                let e = ServiceError::from_status(&status);
                tracing::debug!(error = %e.message, "unread count on connect failed");
            }
        }
    });
}

/// Renders a notify-service event as hvtsocial's events.
pub(super) fn notify_event(e: &NotifyEvent) -> Vec<Emit> {
    let Some(audience) = e.audience.as_ref() else {
        return Vec::new();
    };
    match &e.kind {
        Some(Kind::NotificationCreated(n)) => vec![Emit::to(
            vec![user_room(&n.user_id)],
            "new_notification",
            new_notification(n),
        )],
        Some(Kind::UnreadCount(c)) => vec![Emit::to(
            vec![user_room(&c.user_id)],
            "unread_count",
            json!({ "count": c.unread }),
        )],
        Some(Kind::DomainEvent(d)) => {
            let Some(event) = DOMAIN_EVENTS.iter().find(|t| **t == d.r#type) else {
                return Vec::new();
            };
            let payload = serde_json::from_str::<Value>(&d.payload_json).unwrap_or(Value::Null);
            let rooms = rooms_of(audience);
            if rooms.is_empty() {
                return Vec::new();
            }
            let mut emit = Emit::to(rooms, event, payload);
            emit.except = audience
                .except_user_ids
                .iter()
                .map(|u| user_room(u))
                .collect();
            vec![emit]
        }
        // Other tabs learn of a read through the `unread_count` that follows.
        Some(Kind::NotificationsRead(_)) | None => Vec::new(),
    }
}

fn rooms_of(audience: &Audience) -> Vec<String> {
    if audience.everyone {
        vec![EVERYONE_ROOM.to_string()]
    } else {
        audience.user_ids.iter().map(|u| user_room(u)).collect()
    }
}

fn new_notification(n: &Notification) -> Value {
    let actor = n.actor.clone().unwrap_or_default();
    let mut v = json!({
        "id": numeric_id(&n.id),
        "type": n.r#type,
        "content": n.body,
        "actor": actor_json(&actor),
        "created_at": iso(n.created_at_ms),
        "is_read": n.read,
    });
    if !n.link.is_empty() {
        v["link"] = json!(n.link);
    }
    v
}

fn actor_json(a: &Actor) -> Value {
    json!({
        "id": if a.id.is_empty() { Value::Null } else { numeric_id(&a.id) },
        "full_name": a.name,
        "avatar": a.avatar,
    })
}

#[derive(Deserialize)]
struct NotificationRead {
    #[serde(rename = "notificationId")]
    notification_id: WireId,
}

async fn notification_read(
    State(edge): State<EdgeState>,
    Me(me): Me,
    Payload(p): Payload<NotificationRead>,
    reply: Reply,
) {
    let result = async {
        let r = edge
            .notify
            .clone()
            .mark_notifications_read(MarkNotificationsReadRequest {
                user_id: me.user_id.clone(),
                notification_ids: vec![p.notification_id.0],
                all: false,
            })
            .await
            .map_err(ServiceError::from)?
            .into_inner();
        Ok(json!({ "count": r.unread, "read": r.notification_ids.iter().map(|i| numeric_id(i)).collect::<Vec<_>>() }))
    }
    .await;
    reply.send(result);
}

#[derive(Deserialize)]
struct StoryViewed {
    #[serde(rename = "storyId")]
    story_id: WireId,
    #[serde(default, rename = "viewerId")]
    viewer_id: Option<WireId>,
}

async fn story_viewed(
    State(edge): State<EdgeState>,
    Me(me): Me,
    Payload(p): Payload<StoryViewed>,
    reply: Reply,
) {
    let result = async {
        if let Some(viewer) = &p.viewer_id {
            check_self(viewer, &me)?;
        }
        let story = numeric_id(&p.story_id.0);
        edge.notify
            .clone()
            .report(ReportRequest {
                actor: Some(me.actor()),
                r#type: "story_viewed".into(),
                payload_json: json!({ "storyId": story }).to_string(),
            })
            .await
            .map_err(ServiceError::from)?;
        Ok(json!({ "storyId": story }))
    }
    .await;
    reply.send(result);
}

#[cfg(test)]
mod tests {
    use super::*;
    use confab_proto::v1::DomainEvent;

    fn domain(kind: &str, audience: Audience) -> NotifyEvent {
        NotifyEvent {
            audience: Some(audience),
            kind: Some(Kind::DomainEvent(DomainEvent {
                r#type: kind.into(),
                payload_json: r#"{"postId":7,"likeCount":3}"#.into(),
                ..Default::default()
            })),
            ..Default::default()
        }
    }

    #[test]
    fn a_seed_domain_event_goes_to_its_audience_as_published() {
        let emits = notify_event(&domain(
            "post_liked",
            Audience {
                user_ids: vec!["1".into(), "2".into()],
                ..Default::default()
            },
        ));
        assert_eq!(emits.len(), 1);
        assert_eq!(emits[0].event, "post_liked");
        assert_eq!(emits[0].rooms, vec!["user:1", "user:2"]);
        assert_eq!(emits[0].data, json!({"postId": 7, "likeCount": 3}));
    }

    #[test]
    fn everyone_is_the_everyone_room_and_app_events_are_not_rendered() {
        let all = Audience {
            everyone: true,
            ..Default::default()
        };
        assert_eq!(
            notify_event(&domain("story_created", all.clone()))[0].rooms,
            vec![EVERYONE_ROOM]
        );
        assert!(notify_event(&domain("app.badge", all)).is_empty());
    }
}
