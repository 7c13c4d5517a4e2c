//! Where the message follower (`messages.rs`) left off in chat-service's
//! stream, `(epoch, seq)`, saved in notify-service's database so a restart
//! resumes there.

use confab_kit::db_err;
use sea_orm::sea_query::OnConflict;
use sea_orm::{EntityTrait, Set};

use super::{Notify, Result};
use crate::entity::cursor;

impl Notify {
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
