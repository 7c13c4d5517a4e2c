//! Last-seen times, the durable part of presence: written when a user's
//! last session ends (or expires), read by `GetPresence`. Stored with
//! sea-orm so SQLite and PostgreSQL share one schema.

use std::collections::HashMap;

use sea_orm::sea_query::OnConflict;
use sea_orm::{ColumnTrait, DatabaseConnection, DbErr, EntityTrait, QueryFilter, Set};

use crate::entity::last_seen;

#[derive(Clone)]
pub struct LastSeen {
    db: DatabaseConnection,
}

impl LastSeen {
    pub fn new(db: DatabaseConnection) -> Self {
        Self { db }
    }

    /// Records that `user_id` was last seen at `at_ms`.
    pub async fn record(&self, user_id: &str, at_ms: i64) -> Result<(), DbErr> {
        let row = last_seen::ActiveModel {
            user_id: Set(user_id.to_string()),
            last_seen_ms: Set(at_ms),
        };
        last_seen::Entity::insert(row)
            .on_conflict(
                OnConflict::column(last_seen::Column::UserId)
                    .update_column(last_seen::Column::LastSeenMs)
                    .to_owned(),
            )
            .exec_without_returning(&self.db)
            .await?;
        Ok(())
    }

    /// The recorded times of those of `user_ids` that have one.
    pub async fn get_many(&self, user_ids: &[String]) -> Result<HashMap<String, i64>, DbErr> {
        if user_ids.is_empty() {
            return Ok(HashMap::new());
        }
        Ok(last_seen::Entity::find()
            .filter(last_seen::Column::UserId.is_in(user_ids.iter().cloned()))
            .all(&self.db)
            .await?
            .into_iter()
            .map(|r| (r.user_id, r.last_seen_ms))
            .collect())
    }
}
