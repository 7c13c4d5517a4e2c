//! The reads every capability shares: rows by id, the membership checks
//! that guard each request, conversations' member lists (from the member
//! cache where there is one, and its invalidation) and last messages.

use std::collections::HashMap;
use std::sync::Arc;

use confab_kit::db_err;
use confab_proto::v1::{self};
use confab_proto::{ErrorCode, ServiceError};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder};

use super::render::conversation_proto;
use super::{Chat, Result, parse_id};
use crate::entity::{conversation, member, message};
use crate::members::Members;

impl Chat {
    /// The conversations `ids`, by id.
    pub(super) async fn conversations_by_id(
        &self,
        ids: &[i64],
    ) -> Result<HashMap<i64, conversation::Model>> {
        Ok(conversation::Entity::find()
            .filter(conversation::Column::Id.is_in(ids.iter().copied()))
            .all(&self.db)
            .await
            .map_err(db_err)?
            .into_iter()
            .map(|c| (c.id, c))
            .collect())
    }

    pub(super) async fn find_conversation(&self, id: i64) -> Result<conversation::Model> {
        conversation::Entity::find_by_id(id)
            .one(&self.db)
            .await
            .map_err(db_err)?
            .ok_or_else(|| no_conversation(id))
    }

    pub(super) async fn find_member(
        &self,
        conv_id: i64,
        user_id: &str,
    ) -> Result<Option<member::Model>> {
        member::Entity::find()
            .filter(member::Column::ConversationId.eq(conv_id))
            .filter(member::Column::UserId.eq(user_id))
            .one(&self.db)
            .await
            .map_err(db_err)
    }

    /// The conversation and the actor's membership, or NOT_FOUND / NOT_A_MEMBER.
    pub(super) async fn require_member(
        &self,
        conv_id: i64,
        user_id: &str,
    ) -> Result<(conversation::Model, member::Model)> {
        let conv = self.find_conversation(conv_id).await?;
        match self.find_member(conv_id, user_id).await? {
            Some(m) => Ok((conv, m)),
            None => Err(ServiceError::new(
                ErrorCode::NotAMember,
                format!("you are not a member of conversation {conv_id}"),
            )),
        }
    }

    pub(super) async fn find_message(&self, id: i64) -> Result<message::Model> {
        message::Entity::find_by_id(id)
            .one(&self.db)
            .await
            .map_err(db_err)?
            .ok_or_else(|| {
                ServiceError::new(
                    ErrorCode::MessageNotFound,
                    format!("message {id} does not exist"),
                )
            })
    }

    pub(super) async fn find_by_client_id(
        &self,
        conv_id: i64,
        sender: &str,
        cid: &str,
    ) -> Result<Option<message::Model>> {
        message::Entity::find()
            .filter(message::Column::ConversationId.eq(conv_id))
            .filter(message::Column::SenderId.eq(sender))
            .filter(message::Column::ClientMessageId.eq(cid))
            .one(&self.db)
            .await
            .map_err(db_err)
    }

    /// A message the actor wrote and that is neither deleted nor recalled.
    pub(super) async fn authored_live_message(
        &self,
        id: &str,
        actor_id: &str,
    ) -> Result<(conversation::Model, message::Model)> {
        let row = self.find_message(parse_id(id, "message_id")?).await?;
        let (conv, _) = self.require_member(row.conversation_id, actor_id).await?;
        if row.sender_id != actor_id {
            return Err(ServiceError::new(
                ErrorCode::NotAuthor,
                "only the sender may change this message",
            ));
        }
        if row.deleted || row.recalled {
            return Err(ServiceError::new(
                ErrorCode::MessageGone,
                "the message was already deleted or recalled",
            ));
        }
        Ok((conv, row))
    }

    /// A conversation and its member ids: from the cache when there is one
    /// (SQLite), read together with other requests' on PostgreSQL.
    pub(super) async fn conversation_members(&self, conv_id: i64) -> Result<Arc<Members>> {
        if let Some(reader) = &self.reader {
            return reader
                .read(conv_id)
                .await
                .map_err(db_err)?
                .ok_or_else(|| no_conversation(conv_id));
        }
        let generation = match self.members.as_deref().map(|c| c.get(conv_id)) {
            Some(Ok(hit)) => return Ok(hit),
            Some(Err(generation)) => Some(generation),
            None => None,
        };
        let read = Arc::new(Members {
            conversation: self.find_conversation(conv_id).await?,
            user_ids: self.member_ids_of(conv_id).await?,
        });
        if let (Some(cache), Some(generation)) = (self.members.as_deref(), generation) {
            cache.fill(conv_id, generation, read.clone());
        }
        Ok(read)
    }

    /// After a write to conversation `conv_id`'s members.
    pub(super) fn forget_members(&self, conv_id: i64) {
        if let Some(cache) = &self.members {
            cache.forget(conv_id);
        }
    }

    pub(super) async fn member_ids_of(&self, conv_id: i64) -> Result<Vec<String>> {
        Ok(member::Entity::find()
            .filter(member::Column::ConversationId.eq(conv_id))
            .order_by_asc(member::Column::Id)
            .all(&self.db)
            .await
            .map_err(db_err)?
            .into_iter()
            .map(|m| m.user_id)
            .collect())
    }

    pub(super) async fn last_message_id(&self, conv_id: i64) -> Result<Option<i64>> {
        Ok(message::Entity::find()
            .filter(message::Column::ConversationId.eq(conv_id))
            .order_by_desc(message::Column::Id)
            .one(&self.db)
            .await
            .map_err(db_err)?
            .map(|m| m.id))
    }

    pub(super) async fn last_message(&self, conv_id: i64) -> Result<Option<v1::ChatMessage>> {
        let row = message::Entity::find()
            .filter(message::Column::ConversationId.eq(conv_id))
            .order_by_desc(message::Column::Id)
            .one(&self.db)
            .await
            .map_err(db_err)?;
        match row {
            Some(r) => Ok(Some(self.render(r).await?)),
            None => Ok(None),
        }
    }

    pub(super) async fn load_conversation(
        &self,
        c: conversation::Model,
    ) -> Result<v1::Conversation> {
        let members = member::Entity::find()
            .filter(member::Column::ConversationId.eq(c.id))
            .order_by_asc(member::Column::Id)
            .all(&self.db)
            .await
            .map_err(db_err)?;
        Ok(conversation_proto(c, members))
    }
}

fn no_conversation(id: i64) -> ServiceError {
    ServiceError::new(
        ErrorCode::ConversationNotFound,
        format!("conversation {id} does not exist"),
    )
}

/// The distinct conversations of `messages`, in order.
pub(super) fn conversation_ids<'a>(messages: impl Iterator<Item = &'a message::Model>) -> Vec<i64> {
    let mut ids: Vec<i64> = messages.map(|m| m.conversation_id).collect();
    ids.sort();
    ids.dedup();
    ids
}
