//! The test harness acting as one of the product's internal services: a
//! JavaScript suite asks it over HTTP (`CONFAB_CONTROL_URL`) to make a real
//! gRPC call to notify-service — what the services that own posts, stories
//! and friendships do — and gets the answer back as JSON.
//!
//! - `POST /notify/publish` `{user_ids?, everyone?, type, payload, notification?: {type, content, actor?: {id, name, avatar}, link?}, idempotency_key?}`
//!   → `Publish`; `200 {event_id, duplicate, recipient_count, notification_count}`
//!   or `400 {code, message}` with the service's stable code.
//! - `GET /notify/story-views/{story_id}` → `ListStoryViews`;
//!   `200 {total, views: [{viewer, viewed_at_ms}]}`.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use confab_proto::ServiceError;
use confab_proto::v1::notify_service_client::NotifyServiceClient;
use confab_proto::v1::{Actor, ListStoryViewsRequest, NotificationContent, PublishRequest};
use serde::Deserialize;
use serde_json::{Value, json};
use tonic::transport::Channel;

#[derive(Deserialize)]
struct Publish {
    #[serde(default)]
    user_ids: Vec<String>,
    #[serde(default)]
    everyone: bool,
    r#type: String,
    payload: Value,
    #[serde(default)]
    notification: Option<Keep>,
    #[serde(default)]
    idempotency_key: String,
}

#[derive(Deserialize)]
struct Keep {
    r#type: String,
    content: String,
    #[serde(default)]
    actor: Option<Who>,
    #[serde(default)]
    link: String,
}

#[derive(Deserialize)]
struct Who {
    id: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    avatar: String,
}

fn refused(status: tonic::Status) -> (StatusCode, Json<Value>) {
    let e = ServiceError::from_status(&status);
    (
        StatusCode::BAD_REQUEST,
        Json(json!({ "code": e.code.as_str(), "message": e.message })),
    )
}

async fn publish(
    State(mut notify): State<NotifyServiceClient<Channel>>,
    Json(p): Json<Publish>,
) -> (StatusCode, Json<Value>) {
    let request = PublishRequest {
        user_ids: p.user_ids,
        everyone: p.everyone,
        r#type: p.r#type,
        // A string is passed as it is (to send what is not a JSON object).
        payload_json: match p.payload {
            Value::String(s) => s,
            other => other.to_string(),
        },
        notification: p.notification.map(|n| NotificationContent {
            r#type: n.r#type,
            content: n.content,
            actor: n.actor.map(|a| Actor {
                id: a.id,
                name: a.name,
                avatar: a.avatar,
                ..Default::default()
            }),
            link: n.link,
            ..Default::default()
        }),
        idempotency_key: p.idempotency_key,
    };
    match notify.publish(request).await {
        Ok(r) => {
            let r = r.into_inner();
            (
                StatusCode::OK,
                Json(json!({
                    "event_id": r.event_id,
                    "duplicate": r.duplicate,
                    "recipient_count": r.recipient_count,
                    "notification_count": r.notification_count,
                })),
            )
        }
        Err(status) => refused(status),
    }
}

async fn story_views(
    State(mut notify): State<NotifyServiceClient<Channel>>,
    Path(story_id): Path<String>,
) -> (StatusCode, Json<Value>) {
    match notify
        .list_story_views(ListStoryViewsRequest {
            story_id,
            ..Default::default()
        })
        .await
    {
        Ok(r) => {
            let r = r.into_inner();
            let views: Vec<Value> = r
                .views
                .iter()
                .map(|v| {
                    json!({
                        "viewer": v.viewer.as_ref().map(|a| a.id.clone()).unwrap_or_default(),
                        "viewed_at_ms": v.viewed_at_ms,
                    })
                })
                .collect();
            (
                StatusCode::OK,
                Json(json!({ "total": r.total, "views": views })),
            )
        }
        Err(status) => refused(status),
    }
}

/// The routes, calling notify-service at `notify_url`.
pub fn routes(notify_url: &str) -> Router {
    let channel = tonic::transport::Endpoint::from_shared(notify_url.to_string())
        .expect("notify-service URL")
        .connect_lazy();
    Router::new()
        .route("/notify/publish", post(publish))
        .route("/notify/story-views/{story_id}", get(story_views))
        .with_state(NotifyServiceClient::new(channel))
}
