//! A recipient's notifications: listed a page at a time (keyset by id,
//! newest first), unread counts (one grouped query per batch of users),
//! and mark read — only the caller's own, announced with the new count.

use std::collections::HashMap;

use confab_kit::{db_err, now_ms, page};
use confab_proto::v1::{self, notify_event::Kind};
use confab_proto::{ServiceError, ids};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ColumnTrait, ConnectionTrait, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder,
    QuerySelect, TransactionTrait,
};

use super::{INSERT_BATCH, MAX_MARK_IDS, Notify, Result, check_user_id, chunks};
use crate::entity::{event, notification};

impl Notify {
    pub async fn list(
        &self,
        req: v1::ListNotificationsRequest,
    ) -> Result<v1::ListNotificationsResponse> {
        check_user_id(&req.user_id, "user_id")?;
        let before = ids::parse_opt(&req.before)
            .map_err(|_| ServiceError::invalid("before must be a notification id"))?;
        let limit = page::limit(req.limit, 50, 100)?;
        let mut q = notification::Entity::find()
            .filter(notification::Column::UserId.eq(req.user_id.clone()));
        if let Some(b) = before {
            q = q.filter(notification::Column::Id.lt(b));
        }
        if req.unread_only {
            q = q.filter(notification::Column::Read.eq(false));
        }
        let mut rows = q
            .order_by_desc(notification::Column::Id)
            .limit(limit + 1)
            .all(&self.db)
            .await
            .map_err(db_err)?;
        let more = page::trim(&mut rows, limit);
        let next_before = page::next_cursor(more, rows.last().map(|r| r.id));
        let mut event_ids: Vec<i64> = rows.iter().map(|r| r.event_id).collect();
        event_ids.sort_unstable();
        event_ids.dedup();
        let events: HashMap<i64, event::Model> = if event_ids.is_empty() {
            HashMap::new()
        } else {
            event::Entity::find()
                .filter(event::Column::Id.is_in(event_ids))
                .all(&self.db)
                .await
                .map_err(db_err)?
                .into_iter()
                .map(|e| (e.id, e))
                .collect()
        };
        let notifications = rows
            .into_iter()
            .filter_map(|r| {
                let e = events.get(&r.event_id)?;
                Some(render(r, e))
            })
            .collect();
        Ok(v1::ListNotificationsResponse {
            notifications,
            next_before,
            unread: self.unread_of(&self.db, &req.user_id).await?,
        })
    }

    pub async fn unread_count(
        &self,
        req: v1::UnreadCountRequest,
    ) -> Result<v1::UnreadCountResponse> {
        check_user_id(&req.user_id, "user_id")?;
        Ok(v1::UnreadCountResponse {
            unread: self.unread_of(&self.db, &req.user_id).await?,
            user_id: req.user_id,
        })
    }

    pub async fn mark_read(
        &self,
        req: v1::MarkNotificationsReadRequest,
    ) -> Result<v1::MarkNotificationsReadResponse> {
        check_user_id(&req.user_id, "user_id")?;
        if req.all && !req.notification_ids.is_empty() {
            return Err(ServiceError::invalid(
                "name notification_ids or set all, not both",
            ));
        }
        if !req.all && req.notification_ids.is_empty() {
            return Err(ServiceError::invalid(
                "name the notification_ids to mark, or set all",
            ));
        }
        if req.notification_ids.len() > MAX_MARK_IDS {
            return Err(ServiceError::invalid(format!(
                "at most {MAX_MARK_IDS} notification ids per call"
            )));
        }
        let mut asked = Vec::with_capacity(req.notification_ids.len());
        for id in &req.notification_ids {
            asked.push(
                ids::parse(id).ok_or_else(|| {
                    ServiceError::invalid(format!("not a notification id: {id:?}"))
                })?,
            );
        }
        let user = req.user_id;
        let now = now_ms();
        let txn = self.db.begin().await.map_err(db_err)?;
        let mut q = notification::Entity::find()
            .select_only()
            .column(notification::Column::Id)
            .filter(notification::Column::UserId.eq(user.clone()))
            .filter(notification::Column::Read.eq(false));
        if !req.all {
            q = q.filter(notification::Column::Id.is_in(asked));
        }
        let mut marked: Vec<i64> = q.into_tuple().all(&txn).await.map_err(db_err)?;
        marked.sort_unstable();
        for chunk in chunks(&marked, INSERT_BATCH) {
            notification::Entity::update_many()
                .col_expr(notification::Column::Read, Expr::value(true))
                .col_expr(notification::Column::ReadAt, Expr::value(now))
                .filter(notification::Column::Id.is_in(chunk))
                .filter(notification::Column::UserId.eq(user.clone()))
                .exec(&txn)
                .await
                .map_err(db_err)?;
        }
        let unread = self.unread_of(&txn, &user).await?;
        txn.commit().await.map_err(db_err)?;
        let marked: Vec<String> = marked.iter().map(|id| id.to_string()).collect();
        if !marked.is_empty() {
            self.emit(
                Self::to(&user),
                Kind::NotificationsRead(v1::NotificationsRead {
                    user_id: user.clone(),
                    notification_ids: marked.clone(),
                    read_at_ms: now,
                }),
            )
            .await;
            self.emit(
                Self::to(&user),
                Kind::UnreadCount(v1::UnreadCountResponse {
                    user_id: user.clone(),
                    unread,
                }),
            )
            .await;
        }
        Ok(v1::MarkNotificationsReadResponse {
            user_id: user,
            unread,
            notification_ids: marked,
        })
    }

    /// Unread counts of `users`, one grouped query per batch.
    pub(super) async fn unread_counts(&self, users: &[String]) -> Result<HashMap<String, u32>> {
        let mut out = HashMap::with_capacity(users.len());
        for chunk in chunks(users, INSERT_BATCH) {
            let rows: Vec<(String, i64)> = notification::Entity::find()
                .select_only()
                .column(notification::Column::UserId)
                .column_as(notification::Column::Id.count(), "unread")
                .filter(notification::Column::Read.eq(false))
                .filter(notification::Column::UserId.is_in(chunk))
                .group_by(notification::Column::UserId)
                .into_tuple()
                .all(&self.db)
                .await
                .map_err(db_err)?;
            out.extend(rows.into_iter().map(|(u, n)| (u, n as u32)));
        }
        Ok(out)
    }

    pub(super) async fn unread_of<C: ConnectionTrait>(&self, db: &C, user: &str) -> Result<u32> {
        let n = notification::Entity::find()
            .filter(notification::Column::UserId.eq(user))
            .filter(notification::Column::Read.eq(false))
            .count(db)
            .await
            .map_err(db_err)?;
        Ok(n as u32)
    }
}

/// A recipient's row and its event as the canonical notification.
pub(super) fn render(n: notification::Model, e: &event::Model) -> v1::Notification {
    let actor = (!e.actor_id.is_empty() || !e.actor_name.is_empty()).then(|| v1::Actor {
        id: e.actor_id.clone(),
        name: e.actor_name.clone(),
        avatar: e.actor_avatar.clone(),
        username: e.actor_username.clone(),
    });
    v1::Notification {
        id: n.id.to_string(),
        user_id: n.user_id,
        r#type: e.n_type.clone(),
        title: e.n_title.clone(),
        body: e.n_content.clone(),
        payload_json: e.payload_json.clone(),
        read: n.read,
        created_at_ms: n.created_at,
        actor,
        link: e.n_link.clone(),
        event_type: e.event_type.clone(),
        read_at_ms: n.read_at.unwrap_or(0),
    }
}
