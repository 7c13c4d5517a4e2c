//! Messages: send — the hot path: checks, membership (from the member
//! cache on SQLite, read together with other sends' on PostgreSQL),
//! idempotency by the sender's client message id, the rate limit, then the
//! insert through the writer — get, edit, soft delete, recall and
//! reactions.

use confab_kit::{db_err, now_ms};
use confab_proto::v1::{self, chat_event::Kind};
use confab_proto::{ErrorCode, ServiceError, ids};
use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, QueryFilter, Set, SqlErr};

use super::render::{Att, base_message, event, to_json};
use super::{Chat, MAX_ATTACHMENTS, Result, actor, check_text, parse_id};
use crate::entity::{message, reaction};
use crate::writer::Announce;

impl Chat {
    pub async fn send_message(
        &self,
        req: v1::SendMessageRequest,
    ) -> Result<v1::SendMessageResponse> {
        let actor = actor(&req.actor)?;
        let conv_id = parse_id(&req.conversation_id, "conversation_id")?;
        check_text(&req.text)?;
        if req.text.trim().is_empty()
            && req
                .attachments
                .iter()
                .all(|a| a.url.trim().is_empty() && a.file_name.trim().is_empty())
        {
            return Err(ServiceError::new(
                ErrorCode::EmptyMessage,
                "a message needs text or an attachment",
            ));
        }
        if req.attachments.len() > MAX_ATTACHMENTS {
            return Err(ServiceError::invalid(format!(
                "at most {MAX_ATTACHMENTS} attachments"
            )));
        }
        if req.client_message_id.len() > 128
            || req.origin.len() > 128
            || req.kind.len() > 32
            || req.mentions.len() > 100
        {
            return Err(ServiceError::invalid(
                "client_message_id and origin ≤ 128 bytes, kind ≤ 32 bytes, ≤ 100 mentions",
            ));
        }
        let reply_to_id = ids::parse_opt(&req.reply_to_id)
            .map_err(|_| ServiceError::invalid("reply_to_id must be a message id"))?;
        // Hot path: the conversation, its members (who hears the message, and
        // whether the sender is one) and the insert: on SQLite only the
        // insert when the members are cached; on PostgreSQL a share of one
        // member read and of one insert, each gathering concurrent sends.
        let cached = self.conversation_members(conv_id).await?;
        let conv = &cached.conversation;
        if !cached.user_ids.contains(&actor.id) {
            return Err(ServiceError::new(
                ErrorCode::NotAMember,
                format!("you are not a member of conversation {conv_id}"),
            ));
        }
        let client_id = Some(req.client_message_id.trim().to_string()).filter(|s| !s.is_empty());
        if let Some(cid) = &client_id
            && let Some(existing) = self.find_by_client_id(conv_id, &actor.id, cid).await?
        {
            return Ok(v1::SendMessageResponse {
                message: Some(self.render(existing).await?),
                duplicate: true,
            });
        }
        if let Some(r) = reply_to_id {
            let target = self.find_message(r).await?;
            if target.conversation_id != conv_id {
                return Err(ServiceError::invalid(
                    "reply_to_id is a message of another conversation",
                ));
            }
        }
        // Last before the insert: only a send that would be stored counts.
        if let Err(limited) = self.rate.admit(&actor.id).await {
            return Err(ServiceError::limit(
                format!(
                    "at most {} messages a second; try again in {} ms",
                    self.rate.limit(),
                    limited.retry_after_ms
                ),
                limited.retry_after_ms,
            ));
        }
        let row = message::ActiveModel {
            conversation_id: Set(conv_id),
            sender_id: Set(actor.id.clone()),
            sender_name: Set(actor.name.clone()),
            sender_username: Set(actor.username.clone()),
            sender_avatar: Set(actor.avatar.clone()),
            text: Set(req.text.clone()),
            attachments: Set(to_json(
                &req.attachments.iter().map(Att::from).collect::<Vec<_>>(),
            )),
            kind: Set(if req.kind.is_empty() {
                "text".into()
            } else {
                req.kind.clone()
            }),
            reply_to_id: Set(reply_to_id),
            mentions: Set(to_json(&req.mentions)),
            client_message_id: Set(client_id.clone()),
            created_at: Set(now_ms()),
            edited_at: Set(None),
            deleted: Set(false),
            recalled: Set(false),
            ..Default::default()
        };
        // The writer announces a message that replies to none, in the order
        // of the ids it was given; any other is announced once rendered,
        // below.
        let announce: Option<Announce> = reply_to_id.is_none().then(|| {
            let conv = conv.clone();
            let members = cached.user_ids.clone();
            let origin = req.origin.clone();
            Box::new(move |row: &message::Model| {
                let msg = base_message(row.clone(), Vec::new());
                event(&conv, members, origin, Kind::MessageCreated(msg))
            }) as Announce
        });
        let announced = announce.is_some();
        let inserted = self.writer.insert(row, announce).await;
        let row = match inserted {
            Ok(row) => row,
            // A concurrent retry with the same client message id won the race.
            Err(e)
                if matches!(e.sql_err(), Some(SqlErr::UniqueConstraintViolation(_)))
                    && client_id.is_some() =>
            {
                let existing = self
                    .find_by_client_id(conv_id, &actor.id, client_id.as_deref().unwrap_or_default())
                    .await?
                    .ok_or_else(|| ServiceError::internal("idempotent message vanished"))?;
                return Ok(v1::SendMessageResponse {
                    message: Some(self.render(existing).await?),
                    duplicate: true,
                });
            }
            Err(e) => return Err(db_err(e)),
        };
        // A new message has no reactions yet; only a reply needs a lookup.
        let msg = if row.reply_to_id.is_some() {
            self.render(row).await?
        } else {
            base_message(row, Vec::new())
        };
        if !announced {
            self.publish_from(
                conv,
                cached.user_ids.clone(),
                req.origin,
                Kind::MessageCreated(msg.clone()),
            )
            .await;
        }
        Ok(v1::SendMessageResponse {
            message: Some(msg),
            duplicate: false,
        })
    }

    pub async fn get_message(&self, req: v1::GetMessageRequest) -> Result<v1::ChatMessage> {
        let actor = actor(&req.actor)?;
        let row = self
            .find_message(parse_id(&req.message_id, "message_id")?)
            .await?;
        self.require_member(row.conversation_id, &actor.id).await?;
        self.render(row).await
    }

    pub async fn edit_message(&self, req: v1::EditMessageRequest) -> Result<v1::ChatMessage> {
        let actor = actor(&req.actor)?;
        check_text(&req.text)?;
        if req.text.trim().is_empty() {
            return Err(ServiceError::new(
                ErrorCode::EmptyMessage,
                "the new text is empty",
            ));
        }
        let (conv, row) = self
            .authored_live_message(&req.message_id, &actor.id)
            .await?;
        let mut am: message::ActiveModel = row.into();
        am.text = Set(req.text);
        am.edited_at = Set(Some(now_ms()));
        let row = am.update(&self.db).await.map_err(db_err)?;
        let msg = self.render(row).await?;
        self.publish(
            &conv,
            self.member_ids_of(conv.id).await?,
            Kind::MessageEdited(msg.clone()),
        )
        .await;
        Ok(msg)
    }

    pub async fn delete_message(&self, req: v1::DeleteMessageRequest) -> Result<v1::ChatMessage> {
        self.withdraw(&req.actor, &req.message_id, Withdrawal::Delete)
            .await
    }

    pub async fn recall_message(&self, req: v1::RecallMessageRequest) -> Result<v1::ChatMessage> {
        self.withdraw(&req.actor, &req.message_id, Withdrawal::Recall)
            .await
    }

    /// Deletes or recalls an author's live message: its text and
    /// attachments go, the flag stays, and the conversation hears it.
    async fn withdraw(
        &self,
        actor: &Option<v1::Actor>,
        message_id: &str,
        how: Withdrawal,
    ) -> Result<v1::ChatMessage> {
        let actor = super::actor(actor)?;
        let (conv, row) = self.authored_live_message(message_id, &actor.id).await?;
        let mut am: message::ActiveModel = row.into();
        match how {
            Withdrawal::Delete => am.deleted = Set(true),
            Withdrawal::Recall => am.recalled = Set(true),
        }
        am.text = Set(String::new());
        am.attachments = Set("[]".into());
        let msg = self
            .render(am.update(&self.db).await.map_err(db_err)?)
            .await?;
        let kind = match how {
            Withdrawal::Delete => Kind::MessageDeleted(msg.clone()),
            Withdrawal::Recall => Kind::MessageRecalled(msg.clone()),
        };
        self.publish(&conv, self.member_ids_of(conv.id).await?, kind)
            .await;
        Ok(msg)
    }

    pub async fn react(&self, req: v1::ReactToMessageRequest) -> Result<v1::ChatMessage> {
        let actor = actor(&req.actor)?;
        let emoji = req.emoji.trim().to_string();
        if emoji.is_empty() || emoji.len() > 64 {
            return Err(ServiceError::invalid("emoji must be 1..=64 bytes"));
        }
        let id = parse_id(&req.message_id, "message_id")?;
        let row = self.find_message(id).await?;
        let (conv, _) = self.require_member(row.conversation_id, &actor.id).await?;
        if row.deleted || row.recalled {
            return Err(ServiceError::new(
                ErrorCode::MessageGone,
                "the message was deleted or recalled",
            ));
        }
        if req.remove {
            reaction::Entity::delete_many()
                .filter(reaction::Column::MessageId.eq(id))
                .filter(reaction::Column::UserId.eq(actor.id.clone()))
                .filter(reaction::Column::Emoji.eq(emoji.clone()))
                .exec(&self.db)
                .await
                .map_err(db_err)?;
        } else {
            let res = reaction::ActiveModel {
                message_id: Set(id),
                user_id: Set(actor.id.clone()),
                emoji: Set(emoji.clone()),
                created_at: Set(now_ms()),
                ..Default::default()
            }
            .insert(&self.db)
            .await;
            match res {
                Ok(_) => {}
                // Reacting twice with the same emoji is a no-op.
                Err(e) if matches!(e.sql_err(), Some(SqlErr::UniqueConstraintViolation(_))) => {}
                Err(e) => return Err(db_err(e)),
            }
        }
        let msg = self.render(row).await?;
        self.publish(
            &conv,
            self.member_ids_of(conv.id).await?,
            Kind::ReactionChanged(v1::ReactionChange {
                message: Some(msg.clone()),
                user_id: actor.id.clone(),
                emoji,
                removed: req.remove,
                user_name: actor.name.clone(),
                at_ms: now_ms(),
            }),
        )
        .await;
        Ok(msg)
    }
}

/// How an author takes a message back: deleted (soft, `deleted`) or
/// recalled (`recalled`); both empty it.
#[derive(Clone, Copy)]
enum Withdrawal {
    Delete,
    Recall,
}
