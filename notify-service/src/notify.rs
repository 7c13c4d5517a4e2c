//! The notify domain: every rule about publishes, notifications, unread
//! counts and reports.
//!
//! [`Notify`] takes canonical requests, checks them, stores the result and
//! publishes [`NotifyEvent`]s on the bus, each with its audience: the domain
//! event to its audience, then one `notification_created` and one
//! `unread_count` per recipient. The gRPC layer in `grpc.rs` only forwards
//! to it; the message follower (`messages.rs`) calls [`Notify::notify_message`].
//!
//! Rules:
//!
//! * **Event types.** A publish names one of the seed's domain events
//!   ([`SEED_EVENTS`]) or an application event `app.<name>` (`<name>`: 1–60
//!   of `a-z 0-9 _ .`, starting with a letter). Anything else is
//!   `INVALID_ARGUMENT`: a publisher cannot make a frontend hear a name the
//!   contracts use for something else (`receive_message`, `connect`, ...).
//! * **Payloads** are JSON objects of at most [`MAX_PAYLOAD_BYTES`], passed on
//!   untouched.
//! * **Audience**: `user_ids` (1..=[`MAX_AUDIENCE`], duplicates folded) or
//!   `everyone`, never both, never neither. `everyone` is one event for
//!   every edge, which emits it once per namespace to all its sockets: cheap
//!   here, but every connected client receives and parses it, so a publisher
//!   should keep it for what everyone needs (a new story on a small
//!   network) and address users otherwise. It cannot keep notifications:
//!   notify-service does not know who "everyone" is.
//! * **Notifications** for `user_ids` are written in batches
//!   ([`INSERT_BATCH`] rows a statement) in one transaction with the event,
//!   and unread counts are read back with one grouped query per batch:
//!   a 10,000-recipient publish is a few dozen statements, not 10,000.
//! * **Idempotency**: a publish with a key seen before returns the first
//!   result (`duplicate`) and publishes nothing; the same key with a
//!   different request is `CONFLICT`.
//! * **Mark read** only touches the caller's own notifications: ids of other
//!   users' notifications, unknown ids and already read ones are ignored (not
//!   refused, so a client cannot probe which ids exist); the response lists
//!   what was marked.
//! * **Reports** (`story_viewed`): the viewer is the request's actor, never
//!   an id from the payload; a story's first view by a user is recorded and
//!   published (audience empty, for internal services), a repeat is a
//!   `duplicate` no-op.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use confab_kit::{db_err, now_ms, page};
use confab_proto::bus::EventBus;
use confab_proto::v1::{self, Audience, NotifyEvent, notify_event::Kind};
use confab_proto::{ErrorCode, ServiceError, ids};
use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait,
    PaginatorTrait, QueryFilter, QueryOrder, QuerySelect, Set, SqlErr, TransactionTrait,
};
use serde_json::Value;

use crate::entity::{cursor, event, notification, story_view};

/// The seed's server→client domain events a publish may name.
pub const SEED_EVENTS: [&str; 6] = [
    "story_created",
    "friend_request_sent",
    "friend_request_accepted",
    "friend_request_updated",
    "post_liked",
    "post_commented",
];
/// The prefix of application-defined event types (`app.post_shared`).
pub const APP_EVENT_PREFIX: &str = "app.";
/// What clients may report.
pub const REPORT_TYPES: [&str; 1] = ["story_viewed"];
/// The most users one publish may address.
pub const MAX_AUDIENCE: usize = 10_000;
/// The largest payload accepted, in bytes.
pub const MAX_PAYLOAD_BYTES: usize = 64 * 1024;
/// The longest notification text, in bytes.
pub const MAX_CONTENT_BYTES: usize = 2_000;
/// The most notification ids one mark-read call may name.
pub const MAX_MARK_IDS: usize = 1_000;
/// Rows per insert statement (and ids per `IN (...)` list).
pub const INSERT_BATCH: usize = 1_000;
/// The type of the notification a missed chat message becomes.
pub const MESSAGE_TYPE: &str = "message";

type Result<T> = std::result::Result<T, ServiceError>;

/// The notify domain over one database and one event bus.
#[derive(Clone)]
pub struct Notify {
    db: DatabaseConnection,
    bus: Arc<dyn EventBus<NotifyEvent>>,
}

fn check_user_id(u: &str, what: &str) -> Result<()> {
    if u.trim().is_empty() || u.len() > 128 {
        return Err(ServiceError::invalid(format!(
            "{what} must be 1..=128 characters"
        )));
    }
    Ok(())
}

fn check_len(s: &str, max: usize, what: &str) -> Result<()> {
    if s.len() > max {
        return Err(ServiceError::invalid(format!(
            "{what} is at most {max} bytes"
        )));
    }
    Ok(())
}

/// Whether `t` is a type a publish may name (see the module doc).
pub fn is_publishable_type(t: &str) -> bool {
    if SEED_EVENTS.contains(&t) {
        return true;
    }
    let Some(name) = t.strip_prefix(APP_EVENT_PREFIX) else {
        return false;
    };
    (1..=60).contains(&name.len())
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'.')
}

fn check_event_type(t: &str) -> Result<()> {
    if t.is_empty() {
        return Err(ServiceError::invalid("type is required"));
    }
    if !is_publishable_type(t) {
        return Err(ServiceError::invalid(format!(
            "unknown event type {t:?}: use one of {} or \"{APP_EVENT_PREFIX}<name>\"",
            SEED_EVENTS.join(", ")
        )));
    }
    Ok(())
}

/// Parses a payload that must be a JSON object.
fn json_object(payload: &str) -> Result<serde_json::Map<String, Value>> {
    check_len(payload, MAX_PAYLOAD_BYTES, "payload_json")?;
    match serde_json::from_str::<Value>(payload) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err(ServiceError::invalid("payload_json must be a JSON object")),
        Err(e) => Err(ServiceError::invalid(format!(
            "payload_json is not JSON: {e}"
        ))),
    }
}

/// A stable 64-bit digest (FNV-1a) of the parts of a request, as hex.
fn fingerprint(parts: &[&str]) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for b in part.bytes().chain([0xff]) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    format!("{h:016x}")
}

/// `items` in chunks of at most `n` (a statement's bound parameters are limited).
fn chunks<T: Clone>(items: &[T], n: usize) -> impl Iterator<Item = Vec<T>> + '_ {
    items.chunks(n).map(|c| c.to_vec())
}

/// What a publish will store and send, once checked.
struct Plan {
    key: Option<String>,
    fingerprint: String,
    event_type: String,
    payload_json: String,
    recipients: Vec<String>,
    everyone: bool,
    notification: Option<Content>,
    /// Whether the domain event itself goes on the bus (a missed chat
    /// message only becomes notifications: the message reached its sockets
    /// through chat-service).
    domain_event: bool,
}

struct Content {
    kind: String,
    title: String,
    content: String,
    link: String,
    actor: v1::Actor,
}

impl Notify {
    pub fn new(db: DatabaseConnection, bus: Arc<dyn EventBus<NotifyEvent>>) -> Self {
        Self { db, bus }
    }

    pub fn db(&self) -> &DatabaseConnection {
        &self.db
    }

    /// The bus `Subscribe` is served from.
    pub fn bus(&self) -> &dyn EventBus<NotifyEvent> {
        self.bus.as_ref()
    }

    async fn emit(&self, audience: Audience, kind: Kind) {
        self.bus
            .publish(NotifyEvent {
                audience: Some(audience),
                kind: Some(kind),
                ..Default::default()
            })
            .await;
    }

    fn to(user: &str) -> Audience {
        Audience {
            user_ids: vec![user.to_string()],
            ..Default::default()
        }
    }

    // ---- publish ---------------------------------------------------------

    pub async fn publish(&self, req: v1::PublishRequest) -> Result<v1::PublishResponse> {
        check_event_type(&req.r#type)?;
        json_object(&req.payload_json)?;
        let key = Some(req.idempotency_key.trim().to_string()).filter(|k| !k.is_empty());
        if let Some(k) = &key {
            check_len(k, 200, "idempotency_key")?;
        }
        if req.everyone && !req.user_ids.is_empty() {
            return Err(ServiceError::invalid(
                "the audience is user_ids or everyone, not both",
            ));
        }
        if !req.everyone && req.user_ids.is_empty() {
            return Err(ServiceError::invalid(
                "the audience is empty: name user_ids or set everyone",
            ));
        }
        if req.user_ids.len() > MAX_AUDIENCE {
            return Err(ServiceError::invalid(format!(
                "an audience has at most {MAX_AUDIENCE} users, got {}",
                req.user_ids.len()
            )));
        }
        let mut seen = HashSet::with_capacity(req.user_ids.len());
        let mut recipients = Vec::with_capacity(req.user_ids.len());
        for u in req.user_ids {
            check_user_id(&u, "user ids")?;
            if seen.insert(u.clone()) {
                recipients.push(u);
            }
        }
        let notification = match req.notification {
            None => None,
            Some(_) if req.everyone => {
                return Err(ServiceError::invalid(
                    "a notification needs user_ids: everyone cannot keep notifications",
                ));
            }
            Some(n) => Some(check_content(n, &req.r#type)?),
        };
        let mut sorted = recipients.clone();
        sorted.sort();
        let fp = {
            let n = notification.as_ref();
            let actor = n.map(|n| &n.actor);
            fingerprint(&[
                &req.r#type,
                &req.payload_json,
                if req.everyone { "everyone" } else { "users" },
                &sorted.join("\u{1}"),
                n.map_or("-", |n| n.kind.as_str()),
                n.map_or("", |n| n.title.as_str()),
                n.map_or("", |n| n.content.as_str()),
                n.map_or("", |n| n.link.as_str()),
                actor.map_or("", |a| a.id.as_str()),
                actor.map_or("", |a| a.name.as_str()),
                actor.map_or("", |a| a.avatar.as_str()),
                actor.map_or("", |a| a.username.as_str()),
            ])
        };
        self.run(Plan {
            key,
            fingerprint: fp,
            event_type: req.r#type,
            payload_json: req.payload_json,
            recipients,
            everyone: req.everyone,
            notification,
            domain_event: true,
        })
        .await
    }

    /// A chat message `recipients` missed (no live session) becomes a
    /// `message` notification for each of them. Idempotent by the message,
    /// so a replayed chat event adds nothing.
    pub async fn notify_message(
        &self,
        message: &v1::ChatMessage,
        conversation_name: &str,
        recipients: Vec<String>,
    ) -> Result<v1::PublishResponse> {
        let key = format!("chat-message:{}:{}", message.id, message.created_at_ms);
        let text: String = if message.text.is_empty() && !message.attachments.is_empty() {
            "sent an attachment".into()
        } else {
            message.text.chars().take(200).collect()
        };
        let payload = serde_json::json!({
            "conversationId": message.conversation_id,
            "messageId": message.id,
        })
        .to_string();
        // Not the recipients: a replay may find other members online by now,
        // and must still be answered as the first time.
        let fp = fingerprint(&[MESSAGE_TYPE, &payload]);
        self.run(Plan {
            key: Some(key),
            fingerprint: fp,
            event_type: MESSAGE_TYPE.into(),
            payload_json: payload,
            recipients,
            everyone: false,
            notification: Some(Content {
                kind: MESSAGE_TYPE.into(),
                title: conversation_name.to_string(),
                content: text,
                link: String::new(),
                actor: v1::Actor {
                    id: message.sender_id.clone(),
                    name: message.sender_name.clone(),
                    avatar: message.sender_avatar.clone(),
                    username: message.sender_username.clone(),
                },
            }),
            domain_event: false,
        })
        .await
    }

    /// The earlier publish with this key, as its first result; `CONFLICT`
    /// when it asked for something else.
    async fn earlier(&self, key: &str, fp: &str) -> Result<Option<v1::PublishResponse>> {
        let Some(row) = event::Entity::find()
            .filter(event::Column::IdempotencyKey.eq(key))
            .one(&self.db)
            .await
            .map_err(db_err)?
        else {
            return Ok(None);
        };
        if row.fingerprint != fp {
            return Err(ServiceError::new(
                ErrorCode::Conflict,
                "idempotency_key was used before for a different publish",
            ));
        }
        Ok(Some(v1::PublishResponse {
            event_id: row.id.to_string(),
            duplicate: true,
            recipient_count: row.recipient_count as u32,
            notification_count: if row.has_notification {
                row.recipient_count as u32
            } else {
                0
            },
        }))
    }

    async fn run(&self, plan: Plan) -> Result<v1::PublishResponse> {
        if let Some(k) = &plan.key
            && let Some(first) = self.earlier(k, &plan.fingerprint).await?
        {
            return Ok(first);
        }
        let now = now_ms();
        let n = plan.notification.as_ref();
        let txn = self.db.begin().await.map_err(db_err)?;
        let inserted = event::ActiveModel {
            idempotency_key: Set(plan.key.clone()),
            fingerprint: Set(plan.fingerprint.clone()),
            event_type: Set(plan.event_type.clone()),
            payload_json: Set(plan.payload_json.clone()),
            everyone: Set(plan.everyone),
            recipient_count: Set(plan.recipients.len() as i32),
            has_notification: Set(n.is_some()),
            n_type: Set(n.map(|n| n.kind.clone()).unwrap_or_default()),
            n_title: Set(n.map(|n| n.title.clone()).unwrap_or_default()),
            n_content: Set(n.map(|n| n.content.clone()).unwrap_or_default()),
            n_link: Set(n.map(|n| n.link.clone()).unwrap_or_default()),
            actor_id: Set(n.map(|n| n.actor.id.clone()).unwrap_or_default()),
            actor_name: Set(n.map(|n| n.actor.name.clone()).unwrap_or_default()),
            actor_username: Set(n.map(|n| n.actor.username.clone()).unwrap_or_default()),
            actor_avatar: Set(n.map(|n| n.actor.avatar.clone()).unwrap_or_default()),
            created_at: Set(now),
            ..Default::default()
        }
        .insert(&txn)
        .await;
        let row = match inserted {
            Ok(row) => row,
            // A concurrent publish with the same key committed first.
            Err(e) if matches!(e.sql_err(), Some(SqlErr::UniqueConstraintViolation(_))) => {
                txn.rollback().await.map_err(db_err)?;
                let key = plan.key.as_deref().unwrap_or_default();
                return self
                    .earlier(key, &plan.fingerprint)
                    .await?
                    .ok_or_else(|| ServiceError::internal("the earlier publish vanished"));
            }
            Err(e) => return Err(db_err(e)),
        };
        let mut created: Vec<notification::Model> = Vec::new();
        if n.is_some() {
            created.reserve(plan.recipients.len());
            for chunk in chunks(&plan.recipients, INSERT_BATCH) {
                let rows = notification::Entity::insert_many(chunk.into_iter().map(|u| {
                    notification::ActiveModel {
                        user_id: Set(u),
                        event_id: Set(row.id),
                        read: Set(false),
                        created_at: Set(now),
                        read_at: Set(None),
                        ..Default::default()
                    }
                }))
                .exec_with_returning(&txn)
                .await
                .map_err(db_err)?;
                created.extend(rows);
            }
        }
        txn.commit().await.map_err(db_err)?;

        if plan.domain_event {
            self.emit(
                Audience {
                    user_ids: plan.recipients.clone(),
                    everyone: plan.everyone,
                    ..Default::default()
                },
                Kind::DomainEvent(v1::DomainEvent {
                    r#type: row.event_type.clone(),
                    payload_json: row.payload_json.clone(),
                    actor_id: row.actor_id.clone(),
                    event_id: row.id.to_string(),
                    at_ms: now,
                }),
            )
            .await;
        }
        if !created.is_empty() {
            created.sort_by_key(|c| c.id);
            for c in &created {
                let user = c.user_id.clone();
                self.emit(
                    Self::to(&user),
                    Kind::NotificationCreated(render(c.clone(), &row)),
                )
                .await;
            }
            let users: Vec<String> = created.iter().map(|c| c.user_id.clone()).collect();
            let counts = self.unread_counts(&users).await?;
            for user in users {
                let unread = counts.get(&user).copied().unwrap_or(0);
                self.emit(
                    Self::to(&user),
                    Kind::UnreadCount(v1::UnreadCountResponse {
                        user_id: user.clone(),
                        unread,
                    }),
                )
                .await;
            }
        }
        Ok(v1::PublishResponse {
            event_id: row.id.to_string(),
            duplicate: false,
            recipient_count: plan.recipients.len() as u32,
            notification_count: created.len() as u32,
        })
    }

    /// Unread counts of `users`, one grouped query per batch.
    async fn unread_counts(&self, users: &[String]) -> Result<HashMap<String, u32>> {
        let mut out = HashMap::with_capacity(users.len());
        for chunk in chunks(users, INSERT_BATCH) {
            let rows: Vec<(String, i64)> = notification::Entity::find()
                .select_only()
                .column(notification::Column::UserId)
                .column_as(notification::Column::Id.count(), "unread")
                .filter(notification::Column::Read.eq(false))
                .filter(notification::Column::UserId.is_in(chunk))
                .group_by(notification::Column::UserId)
                .into_tuple()
                .all(&self.db)
                .await
                .map_err(db_err)?;
            out.extend(rows.into_iter().map(|(u, n)| (u, n as u32)));
        }
        Ok(out)
    }

    async fn unread_of<C: ConnectionTrait>(&self, db: &C, user: &str) -> Result<u32> {
        let n = notification::Entity::find()
            .filter(notification::Column::UserId.eq(user))
            .filter(notification::Column::Read.eq(false))
            .count(db)
            .await
            .map_err(db_err)?;
        Ok(n as u32)
    }

    // ---- reading and marking -------------------------------------------

    pub async fn list(
        &self,
        req: v1::ListNotificationsRequest,
    ) -> Result<v1::ListNotificationsResponse> {
        check_user_id(&req.user_id, "user_id")?;
        let before = ids::parse_opt(&req.before)
            .map_err(|_| ServiceError::invalid("before must be a notification id"))?;
        let limit = page::limit(req.limit, 50, 100)?;
        let mut q = notification::Entity::find()
            .filter(notification::Column::UserId.eq(req.user_id.clone()));
        if let Some(b) = before {
            q = q.filter(notification::Column::Id.lt(b));
        }
        if req.unread_only {
            q = q.filter(notification::Column::Read.eq(false));
        }
        let mut rows = q
            .order_by_desc(notification::Column::Id)
            .limit(limit + 1)
            .all(&self.db)
            .await
            .map_err(db_err)?;
        let more = page::trim(&mut rows, limit);
        let next_before = page::next_cursor(more, rows.last().map(|r| r.id));
        let mut event_ids: Vec<i64> = rows.iter().map(|r| r.event_id).collect();
        event_ids.sort_unstable();
        event_ids.dedup();
        let events: HashMap<i64, event::Model> = if event_ids.is_empty() {
            HashMap::new()
        } else {
            event::Entity::find()
                .filter(event::Column::Id.is_in(event_ids))
                .all(&self.db)
                .await
                .map_err(db_err)?
                .into_iter()
                .map(|e| (e.id, e))
                .collect()
        };
        let notifications = rows
            .into_iter()
            .filter_map(|r| {
                let e = events.get(&r.event_id)?;
                Some(render(r, e))
            })
            .collect();
        Ok(v1::ListNotificationsResponse {
            notifications,
            next_before,
            unread: self.unread_of(&self.db, &req.user_id).await?,
        })
    }

    pub async fn unread_count(
        &self,
        req: v1::UnreadCountRequest,
    ) -> Result<v1::UnreadCountResponse> {
        check_user_id(&req.user_id, "user_id")?;
        Ok(v1::UnreadCountResponse {
            unread: self.unread_of(&self.db, &req.user_id).await?,
            user_id: req.user_id,
        })
    }

    pub async fn mark_read(
        &self,
        req: v1::MarkNotificationsReadRequest,
    ) -> Result<v1::MarkNotificationsReadResponse> {
        check_user_id(&req.user_id, "user_id")?;
        if req.all && !req.notification_ids.is_empty() {
            return Err(ServiceError::invalid(
                "name notification_ids or set all, not both",
            ));
        }
        if !req.all && req.notification_ids.is_empty() {
            return Err(ServiceError::invalid(
                "name the notification_ids to mark, or set all",
            ));
        }
        if req.notification_ids.len() > MAX_MARK_IDS {
            return Err(ServiceError::invalid(format!(
                "at most {MAX_MARK_IDS} notification ids per call"
            )));
        }
        let mut asked = Vec::with_capacity(req.notification_ids.len());
        for id in &req.notification_ids {
            asked.push(
                ids::parse(id).ok_or_else(|| {
                    ServiceError::invalid(format!("not a notification id: {id:?}"))
                })?,
            );
        }
        let user = req.user_id;
        let now = now_ms();
        let txn = self.db.begin().await.map_err(db_err)?;
        let mut q = notification::Entity::find()
            .select_only()
            .column(notification::Column::Id)
            .filter(notification::Column::UserId.eq(user.clone()))
            .filter(notification::Column::Read.eq(false));
        if !req.all {
            q = q.filter(notification::Column::Id.is_in(asked));
        }
        let mut marked: Vec<i64> = q.into_tuple().all(&txn).await.map_err(db_err)?;
        marked.sort_unstable();
        for chunk in chunks(&marked, INSERT_BATCH) {
            notification::Entity::update_many()
                .col_expr(notification::Column::Read, Expr::value(true))
                .col_expr(notification::Column::ReadAt, Expr::value(now))
                .filter(notification::Column::Id.is_in(chunk))
                .filter(notification::Column::UserId.eq(user.clone()))
                .exec(&txn)
                .await
                .map_err(db_err)?;
        }
        let unread = self.unread_of(&txn, &user).await?;
        txn.commit().await.map_err(db_err)?;
        let marked: Vec<String> = marked.iter().map(|id| id.to_string()).collect();
        if !marked.is_empty() {
            self.emit(
                Self::to(&user),
                Kind::NotificationsRead(v1::NotificationsRead {
                    user_id: user.clone(),
                    notification_ids: marked.clone(),
                    read_at_ms: now,
                }),
            )
            .await;
            self.emit(
                Self::to(&user),
                Kind::UnreadCount(v1::UnreadCountResponse {
                    user_id: user.clone(),
                    unread,
                }),
            )
            .await;
        }
        Ok(v1::MarkNotificationsReadResponse {
            user_id: user,
            unread,
            notification_ids: marked,
        })
    }

    // ---- reports ---------------------------------------------------------

    pub async fn report(&self, req: v1::ReportRequest) -> Result<v1::ReportResponse> {
        let actor = match &req.actor {
            Some(a) if !a.id.trim().is_empty() => a.clone(),
            _ => return Err(ServiceError::invalid("actor.id is required")),
        };
        check_user_id(&actor.id, "actor.id")?;
        if !REPORT_TYPES.contains(&req.r#type.as_str()) {
            return Err(ServiceError::invalid(format!(
                "unknown report type {:?}: use one of {}",
                req.r#type,
                REPORT_TYPES.join(", ")
            )));
        }
        let payload = json_object(&req.payload_json)?;
        let story = payload.get("storyId").cloned().unwrap_or(Value::Null);
        let story_id = story_id_of(&story)?;
        let now = now_ms();
        let added = story_view::Entity::insert(story_view::ActiveModel {
            story_id: Set(story_id.clone()),
            viewer_id: Set(actor.id.clone()),
            viewer_name: Set(actor.name.clone()),
            viewer_username: Set(actor.username.clone()),
            viewer_avatar: Set(actor.avatar.clone()),
            viewed_at: Set(now),
            ..Default::default()
        })
        .on_conflict(
            OnConflict::columns([story_view::Column::StoryId, story_view::Column::ViewerId])
                .do_nothing()
                .to_owned(),
        )
        .exec_without_returning(&self.db)
        .await
        .map_err(db_err)?;
        if added == 0 {
            return Ok(v1::ReportResponse { duplicate: true });
        }
        // The canonical payload: the story as the client named it, the
        // viewer from the token.
        let payload = serde_json::json!({ "storyId": story, "viewerId": actor.id });
        self.emit(
            Audience::default(),
            Kind::DomainEvent(v1::DomainEvent {
                r#type: req.r#type,
                payload_json: payload.to_string(),
                actor_id: actor.id,
                event_id: String::new(),
                at_ms: now,
            }),
        )
        .await;
        Ok(v1::ReportResponse { duplicate: false })
    }

    pub async fn story_views(
        &self,
        req: v1::ListStoryViewsRequest,
    ) -> Result<v1::ListStoryViewsResponse> {
        let story_id = story_id_of(&Value::String(req.story_id.clone()))?;
        let after = ids::parse_opt(&req.after)
            .map_err(|_| ServiceError::invalid("after must be a cursor from next_after"))?;
        let limit = page::limit(req.limit, 100, 1000)?;
        let mut q =
            story_view::Entity::find().filter(story_view::Column::StoryId.eq(story_id.clone()));
        if let Some(a) = after {
            q = q.filter(story_view::Column::Id.gt(a));
        }
        let mut rows = q
            .order_by_asc(story_view::Column::Id)
            .limit(limit + 1)
            .all(&self.db)
            .await
            .map_err(db_err)?;
        let more = page::trim(&mut rows, limit);
        let next_after = page::next_cursor(more, rows.last().map(|r| r.id));
        let total = story_view::Entity::find()
            .filter(story_view::Column::StoryId.eq(story_id))
            .count(&self.db)
            .await
            .map_err(db_err)? as u32;
        Ok(v1::ListStoryViewsResponse {
            views: rows
                .into_iter()
                .map(|r| v1::StoryView {
                    story_id: r.story_id,
                    viewer: Some(v1::Actor {
                        id: r.viewer_id,
                        name: r.viewer_name,
                        avatar: r.viewer_avatar,
                        username: r.viewer_username,
                    }),
                    viewed_at_ms: r.viewed_at,
                })
                .collect(),
            next_after,
            total,
        })
    }

    // ---- the message follower's position --------------------------------

    /// Where the follower of `stream` left off: `(epoch, seq)`.
    pub(crate) async fn position(&self, stream: &str) -> Result<Option<(String, u64)>> {
        Ok(cursor::Entity::find_by_id(stream.to_string())
            .one(&self.db)
            .await
            .map_err(db_err)?
            .map(|c| (c.epoch, c.seq.max(0) as u64)))
    }

    pub(crate) async fn save_position(&self, stream: &str, epoch: &str, seq: u64) -> Result<()> {
        cursor::Entity::insert(cursor::ActiveModel {
            stream: Set(stream.to_string()),
            epoch: Set(epoch.to_string()),
            seq: Set(seq as i64),
        })
        .on_conflict(
            OnConflict::column(cursor::Column::Stream)
                .update_columns([cursor::Column::Epoch, cursor::Column::Seq])
                .to_owned(),
        )
        .exec_without_returning(&self.db)
        .await
        .map_err(db_err)?;
        Ok(())
    }
}

/// Checks a publish's notification; its type defaults to the event's.
fn check_content(n: v1::NotificationContent, event_type: &str) -> Result<Content> {
    let kind = if n.r#type.is_empty() {
        event_type.to_string()
    } else {
        n.r#type
    };
    if kind.len() > 64
        || !kind
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'.')
    {
        return Err(ServiceError::invalid(
            "notification.type is at most 64 of a-z 0-9 _ .",
        ));
    }
    if n.content.trim().is_empty() {
        return Err(ServiceError::invalid("notification.content is required"));
    }
    check_len(&n.content, MAX_CONTENT_BYTES, "notification.content")?;
    check_len(&n.title, 200, "notification.title")?;
    check_len(&n.link, 2048, "notification.link")?;
    let actor = n.actor.unwrap_or_default();
    check_len(&actor.id, 128, "notification.actor.id")?;
    check_len(&actor.name, 200, "notification.actor.name")?;
    check_len(&actor.username, 200, "notification.actor.username")?;
    check_len(&actor.avatar, 2048, "notification.actor.avatar")?;
    Ok(Content {
        kind,
        title: n.title,
        content: n.content,
        link: n.link,
        actor,
    })
}

/// A story id as a client may send it: a positive integer or a non-empty
/// string of at most 128 bytes.
fn story_id_of(v: &Value) -> Result<String> {
    let s = match v {
        Value::Number(n) => match n.as_u64() {
            Some(n) if n > 0 => n.to_string(),
            _ => String::new(),
        },
        Value::String(s) => s.trim().to_string(),
        _ => String::new(),
    };
    if s.is_empty() || s.len() > 128 {
        return Err(ServiceError::invalid(
            "storyId must be a positive integer or a string of 1..=128 bytes",
        ));
    }
    Ok(s)
}

/// A recipient's row and its event as the canonical notification.
fn render(n: notification::Model, e: &event::Model) -> v1::Notification {
    let actor = (!e.actor_id.is_empty() || !e.actor_name.is_empty()).then(|| v1::Actor {
        id: e.actor_id.clone(),
        name: e.actor_name.clone(),
        avatar: e.actor_avatar.clone(),
        username: e.actor_username.clone(),
    });
    v1::Notification {
        id: n.id.to_string(),
        user_id: n.user_id,
        r#type: e.n_type.clone(),
        title: e.n_title.clone(),
        body: e.n_content.clone(),
        payload_json: e.payload_json.clone(),
        read: n.read,
        created_at_ms: n.created_at,
        actor,
        link: e.n_link.clone(),
        event_type: e.event_type.clone(),
        read_at_ms: n.read_at.unwrap_or(0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn publishable_types_are_the_seed_events_and_app_names() {
        for t in SEED_EVENTS {
            assert!(is_publishable_type(t), "{t}");
        }
        assert!(is_publishable_type("app.post_shared"));
        assert!(is_publishable_type("app.group.invite2"));
        for t in [
            "",
            "receive_message",
            "connect",
            "story_viewed",
            "app.",
            "app.Post",
            "app.1x",
            "app.a-b",
            "POST_LIKED",
        ] {
            assert!(!is_publishable_type(t), "{t:?}");
        }
    }

    #[test]
    fn payloads_must_be_objects() {
        assert!(json_object("{}").is_ok());
        assert!(json_object(r#"{"a":1}"#).is_ok());
        for bad in ["", "[]", "1", "\"x\"", "null", "{", "{\"a\":}"] {
            assert_eq!(
                json_object(bad).unwrap_err().code,
                ErrorCode::InvalidArgument
            );
        }
    }

    #[test]
    fn fingerprints_are_stable_and_separate_parts() {
        assert_eq!(fingerprint(&["a", "b"]), fingerprint(&["a", "b"]));
        assert_ne!(fingerprint(&["ab", ""]), fingerprint(&["a", "b"]));
        assert_eq!(fingerprint(&[]), "cbf29ce484222325");
    }

    #[test]
    fn story_ids_are_numbers_or_strings() {
        assert_eq!(story_id_of(&serde_json::json!(12)).unwrap(), "12");
        assert_eq!(story_id_of(&serde_json::json!("s-1")).unwrap(), "s-1");
        for bad in [
            serde_json::json!(0),
            serde_json::json!(-1),
            serde_json::json!(1.5),
            serde_json::json!(""),
            serde_json::json!(null),
            serde_json::json!({}),
        ] {
            assert!(story_id_of(&bad).is_err(), "{bad}");
        }
    }
}
