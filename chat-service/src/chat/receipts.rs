//! Read and delivery receipts: mark read (a compare-and-set on the
//! member's read marker, so of two concurrent calls one reports), mark
//! delivered, and the edges' batched `RecordDeliveries` (five queries per
//! call on SQLite, however many messages and recipients; one statement on
//! PostgreSQL); the sender hears each as `message_delivered`.

use std::collections::{HashMap, HashSet};

use confab_kit::{db_err, now_ms};
use confab_proto::v1::{self, chat_event::Kind};
use confab_proto::{ErrorCode, ServiceError, ids};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DbBackend, EntityTrait, QueryFilter,
    QueryOrder, Set, SqlErr, Statement,
};

use super::lookup::conversation_ids;
use super::{Chat, MAX_DELIVERY_BATCH, MAX_MEMBERS, Result, actor, check_user_id, parse_id};
use crate::entity::{conversation, delivery, member, message};

impl Chat {
    pub async fn mark_read(&self, req: v1::MarkReadRequest) -> Result<v1::MarkReadResponse> {
        let actor = actor(&req.actor)?;
        let conv_id = parse_id(&req.conversation_id, "conversation_id")?;
        let up_to = ids::parse_opt(&req.up_to_message_id)
            .map_err(|_| ServiceError::invalid("up_to_message_id must be a message id"))?;
        let (conv, mut me) = self.require_member(conv_id, &actor.id).await?;
        let newest = match up_to {
            Some(id) => {
                let m = self.find_message(id).await?;
                if m.conversation_id != conv_id {
                    return Err(ServiceError::new(
                        ErrorCode::MessageNotFound,
                        "no such message in this conversation",
                    ));
                }
                id
            }
            None => self.last_message_id(conv_id).await?.unwrap_or(0),
        };
        let read_at = now_ms();
        let mut newly = Vec::new();
        // Compare-and-set on the read marker: of two concurrent calls, only
        // the one that moved the marker reports (and publishes) what it read.
        for _ in 0..5 {
            let from = me.last_read_message_id;
            if newest <= from {
                break;
            }
            let moved = member::Entity::update_many()
                .col_expr(member::Column::LastReadMessageId, Expr::value(newest))
                .filter(member::Column::Id.eq(me.id))
                .filter(member::Column::LastReadMessageId.eq(from))
                .exec(&self.db)
                .await
                .map_err(db_err)?
                .rows_affected;
            if moved == 1 {
                newly = message::Entity::find()
                    .filter(message::Column::ConversationId.eq(conv_id))
                    .filter(message::Column::Id.gt(from))
                    .filter(message::Column::Id.lte(newest))
                    .filter(message::Column::SenderId.ne(actor.id.clone()))
                    .order_by_asc(message::Column::Id)
                    .all(&self.db)
                    .await
                    .map_err(db_err)?;
                break;
            }
            me = self.find_member(conv_id, &actor.id).await?.ok_or_else(|| {
                ServiceError::new(ErrorCode::NotAMember, "you left the conversation")
            })?;
        }
        let message_ids: Vec<String> = newly.iter().map(|m| m.id.to_string()).collect();
        let mut sender_ids: Vec<String> = newly.iter().map(|m| m.sender_id.clone()).collect();
        sender_ids.sort();
        sender_ids.dedup();
        let up_to_message_id = if newest > 0 {
            newest.to_string()
        } else {
            String::new()
        };
        if !message_ids.is_empty() {
            self.publish(
                &conv,
                self.member_ids_of(conv_id).await?,
                Kind::MessagesRead(v1::ReadReceipt {
                    conversation_id: conv_id.to_string(),
                    reader_id: actor.id.clone(),
                    message_ids: message_ids.clone(),
                    up_to_message_id: up_to_message_id.clone(),
                    read_at_ms: read_at,
                    sender_ids,
                    messages: newly
                        .iter()
                        .map(|m| v1::ReadMessage {
                            message_id: m.id.to_string(),
                            sender_id: m.sender_id.clone(),
                            client_message_id: m.client_message_id.clone().unwrap_or_default(),
                        })
                        .collect(),
                }),
            )
            .await;
        }
        Ok(v1::MarkReadResponse {
            conversation_id: conv_id.to_string(),
            up_to_message_id,
            message_ids,
            read_at_ms: read_at,
        })
    }

    pub async fn mark_delivered(
        &self,
        req: v1::MarkDeliveredRequest,
    ) -> Result<v1::MarkDeliveredResponse> {
        let actor = actor(&req.actor)?;
        let id = parse_id(&req.message_id, "message_id")?;
        let row = self.find_message(id).await?;
        let (conv, _) = self.require_member(row.conversation_id, &actor.id).await?;
        let now = now_ms();
        if row.sender_id == actor.id {
            return Ok(v1::MarkDeliveredResponse {
                message_id: id.to_string(),
                delivered_at_ms: now,
            });
        }
        let res = delivery::ActiveModel {
            message_id: Set(id),
            user_id: Set(actor.id.clone()),
            delivered_at: Set(now),
            ..Default::default()
        }
        .insert(&self.db)
        .await;
        match res {
            Ok(_) => {
                self.publish(
                    &conv,
                    vec![row.sender_id.clone()],
                    Kind::MessageDelivered(v1::DeliveryReceipt {
                        conversation_id: row.conversation_id.to_string(),
                        message_id: id.to_string(),
                        recipient_ids: vec![actor.id.clone()],
                        sender_id: row.sender_id.clone(),
                        delivered_at_ms: now,
                        client_message_id: row.client_message_id.clone().unwrap_or_default(),
                        offline: req.offline,
                    }),
                )
                .await
            }
            // Already recorded: acknowledge again without a second event.
            Err(e) if matches!(e.sql_err(), Some(SqlErr::UniqueConstraintViolation(_))) => {}
            Err(e) => return Err(db_err(e)),
        }
        Ok(v1::MarkDeliveredResponse {
            message_id: id.to_string(),
            delivered_at_ms: now,
        })
    }

    /// Records what edges saw delivered: for each message, the recipients
    /// (members other than the sender, not recorded before) get a delivery
    /// row, and the sender hears one `message_delivered` naming them all.
    /// Five queries per call on SQLite, one statement on PostgreSQL
    /// ([`Chat::record_deliveries_at_once`]), however many messages and
    /// recipients.
    pub async fn record_deliveries(
        &self,
        req: v1::RecordDeliveriesRequest,
    ) -> Result<v1::RecordDeliveriesResponse> {
        if req.deliveries.len() > MAX_DELIVERY_BATCH {
            return Err(ServiceError::invalid(format!(
                "at most {MAX_DELIVERY_BATCH} deliveries per call"
            )));
        }
        let mut asked: Vec<(i64, Vec<String>, bool)> = Vec::with_capacity(req.deliveries.len());
        for d in req.deliveries {
            if d.recipient_ids.len() > MAX_MEMBERS {
                return Err(ServiceError::invalid(format!(
                    "at most {MAX_MEMBERS} recipients per delivery"
                )));
            }
            for u in &d.recipient_ids {
                check_user_id(u)?;
            }
            asked.push((
                parse_id(&d.message_id, "message_id")?,
                d.recipient_ids,
                d.offline,
            ));
        }
        if self.db.get_database_backend() == DbBackend::Postgres {
            return self.record_deliveries_at_once(asked).await;
        }
        let message_ids: Vec<i64> = asked.iter().map(|a| a.0).collect();
        let mut users: Vec<String> = asked.iter().flat_map(|a| a.1.iter().cloned()).collect();
        users.sort();
        users.dedup();
        if message_ids.is_empty() || users.is_empty() {
            return Ok(v1::RecordDeliveriesResponse { recorded: 0 });
        }
        let messages: HashMap<i64, message::Model> = message::Entity::find()
            .filter(message::Column::Id.is_in(message_ids.clone()))
            .all(&self.db)
            .await
            .map_err(db_err)?
            .into_iter()
            .map(|m| (m.id, m))
            .collect();
        let conv_ids = conversation_ids(messages.values());
        let convs = self.conversations_by_id(&conv_ids).await?;
        let members: std::collections::HashSet<(i64, String)> = member::Entity::find()
            .filter(member::Column::ConversationId.is_in(conv_ids))
            .filter(member::Column::UserId.is_in(users.clone()))
            .all(&self.db)
            .await
            .map_err(db_err)?
            .into_iter()
            .map(|m| (m.conversation_id, m.user_id))
            .collect();
        let mut seen: std::collections::HashSet<(i64, String)> = delivery::Entity::find()
            .filter(delivery::Column::MessageId.is_in(message_ids))
            .filter(delivery::Column::UserId.is_in(users))
            .all(&self.db)
            .await
            .map_err(db_err)?
            .into_iter()
            .map(|d| (d.message_id, d.user_id))
            .collect();
        let now = now_ms();
        let mut rows = Vec::new();
        let mut receipts = Vec::new();
        for (id, recipients, offline) in asked {
            let Some(msg) = messages.get(&id) else {
                continue;
            };
            let mut new = Vec::new();
            for user in recipients {
                if user != msg.sender_id
                    && members.contains(&(msg.conversation_id, user.clone()))
                    && seen.insert((id, user.clone()))
                {
                    rows.push(delivery::ActiveModel {
                        message_id: Set(id),
                        user_id: Set(user.clone()),
                        delivered_at: Set(now),
                        ..Default::default()
                    });
                    new.push(user);
                }
            }
            if !new.is_empty() {
                receipts.push((msg, new, offline));
            }
        }
        let recorded = rows.len() as u32;
        // A concurrent call may have recorded some of these since the lookup:
        // those rows are skipped, not an error.
        for chunk in chunked(rows, 500) {
            delivery::Entity::insert_many(chunk)
                .on_conflict_do_nothing_on([delivery::Column::MessageId, delivery::Column::UserId])
                .exec_without_returning(&self.db)
                .await
                .map_err(db_err)?;
        }
        for (msg, recipient_ids, offline) in receipts {
            if let Some(conv) = convs.get(&msg.conversation_id) {
                self.publish_delivered(conv, msg, recipient_ids, now, offline)
                    .await;
            }
        }
        Ok(v1::RecordDeliveriesResponse { recorded })
    }

    /// [`Chat::record_deliveries`] on PostgreSQL: one statement inserts the
    /// receipts of the recipients that are members other than the sender,
    /// skips those recorded before (by this call or a concurrent one) and
    /// returns the new ones with their messages; the conversations come
    /// from the member reader's rows.
    async fn record_deliveries_at_once(
        &self,
        asked: Vec<(i64, Vec<String>, bool)>,
    ) -> Result<v1::RecordDeliveriesResponse> {
        const RECORD: &str = "WITH asked (message_id, user_id) AS ( \
                SELECT * FROM unnest($1::bigint[], $2::text[])), \
            stored AS ( \
                INSERT INTO deliveries (message_id, user_id, delivered_at) \
                SELECT a.message_id, a.user_id, $3 FROM asked a \
                JOIN messages m ON m.id = a.message_id \
                JOIN members mb ON mb.conversation_id = m.conversation_id \
                    AND mb.user_id = a.user_id \
                WHERE a.user_id <> m.sender_id \
                ON CONFLICT (message_id, user_id) DO NOTHING \
                RETURNING message_id, user_id) \
            SELECT s.message_id, s.user_id, m.conversation_id, m.sender_id, \
                m.client_message_id \
            FROM stored s JOIN messages m ON m.id = s.message_id";
        let mut message_ids: Vec<i64> = Vec::new();
        let mut user_ids: Vec<String> = Vec::new();
        for (id, recipients, _) in &asked {
            for user in recipients {
                message_ids.push(*id);
                user_ids.push(user.clone());
            }
        }
        if message_ids.is_empty() {
            return Ok(v1::RecordDeliveriesResponse { recorded: 0 });
        }
        let now = now_ms();
        let rows = self
            .db
            .query_all_raw(Statement::from_sql_and_values(
                DbBackend::Postgres,
                RECORD,
                [message_ids.into(), user_ids.into(), now.into()],
            ))
            .await
            .map_err(db_err)?;
        let recorded = rows.len() as u32;
        let mut new: HashSet<(i64, String)> = HashSet::with_capacity(rows.len());
        let mut messages: HashMap<i64, message::Model> = HashMap::new();
        for row in rows {
            let id: i64 = row.try_get("", "message_id").map_err(db_err)?;
            new.insert((id, row.try_get("", "user_id").map_err(db_err)?));
            if let std::collections::hash_map::Entry::Vacant(slot) = messages.entry(id) {
                // What a receipt tells of its message; the rest is not read.
                slot.insert(message::Model {
                    id,
                    conversation_id: row.try_get("", "conversation_id").map_err(db_err)?,
                    sender_id: row.try_get("", "sender_id").map_err(db_err)?,
                    client_message_id: row.try_get("", "client_message_id").map_err(db_err)?,
                    sender_name: String::new(),
                    sender_username: String::new(),
                    sender_avatar: String::new(),
                    text: String::new(),
                    attachments: String::new(),
                    kind: String::new(),
                    reply_to_id: None,
                    mentions: String::new(),
                    created_at: 0,
                    edited_at: None,
                    deleted: false,
                    recalled: false,
                });
            }
        }
        let conv_ids = conversation_ids(messages.values());
        let convs = match &self.reader {
            Some(reader) => reader.conversations(&conv_ids).await.map_err(db_err)?,
            None => self.conversations_by_id(&conv_ids).await?,
        };
        // Each message's new recipients in the order asked, told once.
        for (id, recipients, offline) in asked {
            let Some(msg) = messages.get(&id) else {
                continue;
            };
            let recipient_ids: Vec<String> = recipients
                .into_iter()
                .filter(|u| new.remove(&(id, u.clone())))
                .collect();
            if let (false, Some(conv)) = (recipient_ids.is_empty(), convs.get(&msg.conversation_id))
            {
                self.publish_delivered(conv, msg, recipient_ids, now, offline)
                    .await;
            }
        }
        Ok(v1::RecordDeliveriesResponse { recorded })
    }

    /// Tells `msg`'s sender that it reached `recipient_ids`.
    pub(super) async fn publish_delivered(
        &self,
        conv: &conversation::Model,
        msg: &message::Model,
        recipient_ids: Vec<String>,
        delivered_at_ms: i64,
        offline: bool,
    ) {
        self.publish(
            conv,
            vec![msg.sender_id.clone()],
            Kind::MessageDelivered(v1::DeliveryReceipt {
                conversation_id: msg.conversation_id.to_string(),
                message_id: msg.id.to_string(),
                recipient_ids,
                sender_id: msg.sender_id.clone(),
                delivered_at_ms,
                client_message_id: msg.client_message_id.clone().unwrap_or_default(),
                offline,
            }),
        )
        .await;
    }
}

/// `items` in chunks of at most `n` (a statement's bound parameters are limited).
pub(super) fn chunked<T>(items: Vec<T>, n: usize) -> Vec<Vec<T>> {
    let mut out = Vec::new();
    let mut it = items.into_iter().peekable();
    while it.peek().is_some() {
        out.push(it.by_ref().take(n).collect());
    }
    out
}
