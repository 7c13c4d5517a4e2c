//! A participant's sockets (`ReportSession`): closing the socket a
//! participant calls from starts its disconnect grace (the sweeper takes
//! them out when it runs out); opening any socket of a participant in
//! grace ends it, and signaling follows the new socket.

use confab_kit::{db_err, now_ms};
use confab_proto::ServiceError;
use confab_proto::v1;
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};

use super::{Calls, Result, actor, short};
use crate::entity::participant;

impl Calls {
    /// A socket of the actor opened or closed.
    pub async fn report_session(
        &self,
        req: v1::ReportSessionRequest,
    ) -> Result<v1::ReportSessionResponse> {
        let me = actor(&req.actor)?;
        short(&req.session_id, "session_id")?;
        if req.session_id.is_empty() {
            return Err(ServiceError::invalid("session_id is required"));
        }
        let now = now_ms();
        if req.open {
            participant::Entity::update_many()
                .col_expr(participant::Column::DisconnectedAt, Expr::value(0))
                .col_expr(participant::Column::GraceDeadline, Expr::value(0))
                .col_expr(
                    participant::Column::SessionId,
                    Expr::value(req.session_id.clone()),
                )
                .filter(participant::Column::UserId.eq(me.id.clone()))
                .filter(participant::Column::DisconnectedAt.gt(0))
                .filter(participant::Column::LeftAt.eq(0))
                .exec(&self.db)
                .await
                .map_err(db_err)?;
        } else {
            let grace = self.timers.disconnect_grace_ms as i64;
            let changed = participant::Entity::update_many()
                .col_expr(participant::Column::DisconnectedAt, Expr::value(now))
                .col_expr(participant::Column::GraceDeadline, Expr::value(now + grace))
                .filter(participant::Column::UserId.eq(me.id.clone()))
                .filter(participant::Column::SessionId.eq(req.session_id.clone()))
                .filter(participant::Column::DisconnectedAt.eq(0))
                .filter(participant::Column::LeftAt.eq(0))
                .exec(&self.db)
                .await
                .map_err(db_err)?;
            if changed.rows_affected > 0 {
                self.wake.notify_one();
            }
        }
        Ok(v1::ReportSessionResponse {})
    }
}
