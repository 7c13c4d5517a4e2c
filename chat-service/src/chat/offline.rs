//! The offline queue: `TakeOfflineMessages` hands a connecting user the
//! newest messages that reached none of their sockets — of every
//! conversation, or of the one a socket is joining — each recorded
//! delivered as it is taken, so no second take returns it.

use std::collections::HashMap;

use confab_kit::{db_err, now_ms, page};
use confab_proto::v1::{self};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect, Set, TransactionTrait,
};

use super::lookup::conversation_ids;
use super::render::conversation_info;
use super::{Chat, Result, actor, parse_id};
use crate::entity::{delivery, member, message};

impl Chat {
    /// Takes the actor's offline queue: the newest `limit` messages of its
    /// conversations that reached none of its sockets, oldest first, each
    /// recorded delivered (so no second take returns it) and its sender
    /// told (`message_delivered`, offline).
    ///
    /// "Reached none of its sockets" is the delivery receipts the edges
    /// record for every socket a message reached, so the queue costs
    /// nothing per message: it is read only here. Its look-back starts after
    /// the newest message ever delivered to the user (every later one is
    /// undelivered by definition) and, per conversation, at the user's
    /// joining; what falls before the newest `limit` is dropped, as the
    /// take moves that start past it. Two takes at once (two tabs, two
    /// edges) each claim rows with an insert that skips existing ones, so a
    /// message goes to one of them.
    pub async fn take_offline_messages(
        &self,
        req: v1::TakeOfflineMessagesRequest,
    ) -> Result<v1::TakeOfflineMessagesResponse> {
        let actor = actor(&req.actor)?;
        let limit = page::limit(req.limit, 25, 100)?;
        let only: Option<i64> = match req.conversation_id.as_str() {
            "" => None,
            id => Some(parse_id(id, "conversation_id")?),
        };
        // The queue is the newest `limit` messages of the user's
        // conversations (since they joined each) that came after the newest
        // one any socket of theirs received: walk them newest first, a page
        // at a time, and stop at the first with a delivery receipt for the
        // user. Each page is two indexed reads (the messages, then which of
        // them the user has a receipt for, by the receipts' unique
        // `(message_id, user_id)` index), so the hot path's receipts need no
        // index by user.
        const PAGE: u64 = 100;
        let joined = || {
            message::Entity::belongs_to(member::Entity)
                .from(message::Column::ConversationId)
                .to(member::Column::ConversationId)
                .into()
        };
        let mut rows: Vec<message::Model> = Vec::new();
        let mut before: Option<i64> = None;
        let mut newest: Option<i64> = None;
        'walk: loop {
            let mut q = message::Entity::find()
                .join(sea_orm::JoinType::InnerJoin, joined())
                .filter(member::Column::UserId.eq(actor.id.clone()))
                .filter(sea_orm::ExprTrait::gte(
                    Expr::col((message::Entity, message::Column::CreatedAt)),
                    Expr::col((member::Entity, member::Column::JoinedAt)),
                ));
            if let Some(b) = before {
                q = q.filter(message::Column::Id.lt(b));
            }
            if let Some(c) = only {
                q = q.filter(message::Column::ConversationId.eq(c));
            }
            let page = q
                .order_by_desc(message::Column::Id)
                .limit(PAGE)
                .all(&self.db)
                .await
                .map_err(db_err)?;
            let Some(last) = page.last() else {
                break;
            };
            if newest.is_none() {
                newest = page.first().map(|m| m.id);
            }
            before = Some(last.id);
            let full = page.len() as u64 == PAGE;
            let received: std::collections::HashSet<i64> = delivery::Entity::find()
                .select_only()
                .column(delivery::Column::MessageId)
                .filter(delivery::Column::MessageId.is_in(page.iter().map(|m| m.id)))
                .filter(delivery::Column::UserId.eq(actor.id.clone()))
                .into_tuple::<i64>()
                .all(&self.db)
                .await
                .map_err(db_err)?
                .into_iter()
                .collect();
            for m in page {
                if received.contains(&m.id) {
                    break 'walk;
                }
                if m.sender_id != actor.id && !m.deleted && !m.recalled {
                    rows.push(m);
                    if rows.len() as u64 == limit {
                        break 'walk;
                    }
                }
            }
            if !full {
                break;
            }
        }
        if rows.is_empty() {
            return Ok(v1::TakeOfflineMessagesResponse {
                messages: Vec::new(),
                delivered_at_ms: now_ms(),
                newest_message_id: newest.map(|id| id.to_string()).unwrap_or_default(),
            });
        }
        rows.reverse();
        let now = now_ms();
        let txn = self.db.begin().await.map_err(db_err)?;
        let mut claimed = Vec::with_capacity(rows.len());
        for row in rows {
            let inserted = delivery::Entity::insert(delivery::ActiveModel {
                message_id: Set(row.id),
                user_id: Set(actor.id.clone()),
                delivered_at: Set(now),
                ..Default::default()
            })
            .on_conflict_do_nothing_on([delivery::Column::MessageId, delivery::Column::UserId])
            .exec_without_returning(&txn)
            .await
            .map_err(db_err)?;
            if matches!(inserted, sea_orm::TryInsertResult::Inserted(1)) {
                claimed.push(row);
            }
        }
        txn.commit().await.map_err(db_err)?;
        let conv_ids = conversation_ids(claimed.iter());
        let convs = self.conversations_by_id(&conv_ids).await?;
        // Read markers after the claim: a read that raced it is seen.
        let read_up_to: HashMap<i64, i64> = member::Entity::find()
            .filter(member::Column::UserId.eq(actor.id.clone()))
            .filter(member::Column::ConversationId.is_in(conv_ids))
            .all(&self.db)
            .await
            .map_err(db_err)?
            .into_iter()
            .map(|m| (m.conversation_id, m.last_read_message_id))
            .collect();
        for msg in &claimed {
            if let Some(conv) = convs.get(&msg.conversation_id) {
                self.publish_delivered(conv, msg, vec![actor.id.clone()], now, true)
                    .await;
            }
        }
        let read: Vec<bool> = claimed
            .iter()
            .map(|m| {
                read_up_to
                    .get(&m.conversation_id)
                    .is_some_and(|r| *r >= m.id)
            })
            .collect();
        let info: Vec<Option<v1::ConversationInfo>> = claimed
            .iter()
            .map(|m| convs.get(&m.conversation_id).map(conversation_info))
            .collect();
        let messages = self
            .render_many(claimed)
            .await?
            .into_iter()
            .zip(read.into_iter().zip(info))
            .map(|(message, (read, conversation))| v1::OfflineMessage {
                message: Some(message),
                conversation,
                read,
            })
            .collect();
        Ok(v1::TakeOfflineMessagesResponse {
            messages,
            delivered_at_ms: now,
            newest_message_id: newest.map(|id| id.to_string()).unwrap_or_default(),
        })
    }
}
