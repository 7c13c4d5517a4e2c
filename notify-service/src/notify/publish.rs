//! Publishes: a domain event checked (its type, JSON-object payload,
//! audience and optional notification), stored once with a notification
//! per recipient written [`INSERT_BATCH`](super::INSERT_BATCH) rows a
//! statement in one transaction, then announced — the event to its
//! audience, one `notification_created` and one `unread_count` per
//! recipient. Idempotent by the publisher's key; a missed chat message
//! ([`Notify::notify_message`]) is a publish too.

use std::collections::HashSet;

use confab_kit::{db_err, now_ms};
use confab_proto::v1::{self, Audience, notify_event::Kind};
use confab_proto::{ErrorCode, ServiceError};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, EntityTrait, QueryFilter, Set, SqlErr, TransactionTrait,
};
use serde_json::Value;

use super::notifications::render;
use super::{
    APP_EVENT_PREFIX, INSERT_BATCH, MAX_AUDIENCE, MAX_CONTENT_BYTES, MAX_PAYLOAD_BYTES,
    MESSAGE_TYPE, Notify, Result, SEED_EVENTS, check_len, check_user_id, chunks,
};
use crate::entity::{event, notification};

impl Notify {
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
    pub(super) async fn earlier(&self, key: &str, fp: &str) -> Result<Option<v1::PublishResponse>> {
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

    pub(super) async fn run(&self, plan: Plan) -> Result<v1::PublishResponse> {
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

pub(super) fn check_event_type(t: &str) -> Result<()> {
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
pub(super) fn json_object(payload: &str) -> Result<serde_json::Map<String, Value>> {
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
pub(super) fn fingerprint(parts: &[&str]) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for b in part.bytes().chain([0xff]) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    format!("{h:016x}")
}

/// What a publish will store and send, once checked.
pub(super) struct Plan {
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

pub(super) struct Content {
    kind: String,
    title: String,
    content: String,
    link: String,
    actor: v1::Actor,
}

/// Checks a publish's notification; its type defaults to the event's.
pub(super) fn check_content(n: v1::NotificationContent, event_type: &str) -> Result<Content> {
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
}
