//! Reading calls: one call (`GetCall`, participants only) and a user's
//! call records (`ListCallRecords`: who joined and left when, media, end
//! reason, duration), newest first.

use confab_kit::db_err;
use confab_proto::v1;
use confab_proto::{ServiceError, ids};
use sea_orm::sea_query::Query;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};

use super::{Calls, Loaded, MAX_RECORDS, Result, actor, denied, not_found};
use crate::entity::{call, participant};

impl Calls {
    pub async fn get(&self, req: v1::GetCallRequest) -> Result<v1::Call> {
        let me = actor(&req.actor)?;
        let id = ids::parse(&req.call_id).ok_or_else(not_found)?;
        let loaded = self.must_load(id).await?;
        if loaded.part(&me.id).is_none() {
            return Err(denied("you are not a participant of this call"));
        }
        Ok(loaded.to_proto())
    }

    /// The actor's calls (as caller or callee), newest first.
    pub async fn records(
        &self,
        req: v1::ListCallRecordsRequest,
    ) -> Result<v1::ListCallRecordsResponse> {
        let me = actor(&req.actor)?;
        let conv = ids::parse_opt(&req.conversation_id)
            .map_err(|_| ServiceError::invalid("conversation_id must be an id"))?;
        let limit = match req.limit {
            0 => 50,
            n => (n as u64).min(MAX_RECORDS),
        };
        let mine = Query::select()
            .column(participant::Column::CallId)
            .from(participant::Entity)
            .and_where(participant::Column::UserId.eq(me.id.clone()))
            .to_owned();
        let mut q = call::Entity::find().filter(call::Column::Id.in_subquery(mine));
        if let Some(c) = conv {
            q = q.filter(call::Column::ConversationId.eq(c));
        }
        let rows = q
            .order_by_desc(call::Column::Id)
            .limit(limit)
            .all(&self.db)
            .await
            .map_err(db_err)?;
        let ids: Vec<i64> = rows.iter().map(|c| c.id).collect();
        let mut parts = participant::Entity::find()
            .filter(participant::Column::CallId.is_in(ids))
            .order_by_asc(participant::Column::Id)
            .all(&self.db)
            .await
            .map_err(db_err)?;
        let calls = rows
            .into_iter()
            .map(|call| {
                let (mine, rest): (Vec<_>, Vec<_>) = std::mem::take(&mut parts)
                    .into_iter()
                    .partition(|p| p.call_id == call.id);
                parts = rest;
                Loaded { call, parts: mine }.to_proto()
            })
            .collect();
        Ok(v1::ListCallRecordsResponse { calls })
    }
}
