//! Reading back: a conversation's history a page at a time (keyset by
//! message id, newest page first) and catch-up across the user's
//! conversations after a message id or each read marker.

use confab_kit::{db_err, page};
use confab_proto::v1::{self};
use confab_proto::{ServiceError, ids};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};

use super::{Chat, Result, actor, parse_id};
use crate::entity::{member, message};

impl Chat {
    pub async fn history(&self, req: v1::GetHistoryRequest) -> Result<v1::GetHistoryResponse> {
        let actor = actor(&req.actor)?;
        let conv_id = parse_id(&req.conversation_id, "conversation_id")?;
        let before = ids::parse_opt(&req.before)
            .map_err(|_| ServiceError::invalid("before must be a message id"))?;
        let limit = page::limit(req.limit, 50, 100)?;
        self.require_member(conv_id, &actor.id).await?;
        let mut q = message::Entity::find().filter(message::Column::ConversationId.eq(conv_id));
        if let Some(b) = before {
            q = q.filter(message::Column::Id.lt(b));
        }
        let mut rows = q
            .order_by_desc(message::Column::Id)
            .limit(limit + 1)
            .all(&self.db)
            .await
            .map_err(db_err)?;
        let more = page::trim(&mut rows, limit);
        rows.reverse();
        let next_before = page::next_cursor(more, rows.first().map(|m| m.id));
        Ok(v1::GetHistoryResponse {
            messages: self.render_many(rows).await?,
            next_before,
        })
    }

    pub async fn catch_up(&self, req: v1::CatchUpRequest) -> Result<v1::CatchUpResponse> {
        let actor = actor(&req.actor)?;
        let after = ids::parse_opt(&req.after_message_id)
            .map_err(|_| ServiceError::invalid("after_message_id must be a message id"))?;
        let limit = page::limit(req.limit, 200, 1000)? as usize;
        let mine = member::Entity::find()
            .filter(member::Column::UserId.eq(actor.id.clone()))
            .all(&self.db)
            .await
            .map_err(db_err)?;
        let mut rows = Vec::new();
        for m in mine {
            let from = after.unwrap_or(m.last_read_message_id);
            let mut part = message::Entity::find()
                .filter(message::Column::ConversationId.eq(m.conversation_id))
                .filter(message::Column::Id.gt(from))
                .filter(message::Column::SenderId.ne(actor.id.clone()))
                .order_by_asc(message::Column::Id)
                .limit(limit as u64)
                .all(&self.db)
                .await
                .map_err(db_err)?;
            rows.append(&mut part);
        }
        rows.sort_by_key(|m| m.id);
        rows.truncate(limit);
        Ok(v1::CatchUpResponse {
            messages: self.render_many(rows).await?,
        })
    }
}
