//! A call as stored and the moves of its state machine.
//!
//! [`Loaded`] is a call with its participants and their API shape. Finding
//! the call a request names (`resolve`), who is busy, and the conditional
//! transitions live here: each transition is one `UPDATE … WHERE state IN
//! (…)`, so of two requests (or a request and a timer) racing for the same
//! call exactly one moves it. The functions that write take any
//! connection, so `actions` can run them inside its transaction.

use std::collections::HashSet;

use confab_kit::db_err;
use confab_proto::v1::{self, CallMedia, CallState, call_event};
use confab_proto::{ErrorCode, ServiceError, ids};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ColumnTrait, ConnectionTrait, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder, QuerySelect,
};

use super::{Calls, Media, Result, Role, Status, denied, not_found};
use crate::entity::{call, participant};

impl From<Status> for CallState {
    fn from(s: Status) -> Self {
        match s {
            Status::Ringing => CallState::Ringing,
            Status::Ongoing => CallState::Ongoing,
            Status::Ended => CallState::Ended,
            Status::Rejected => CallState::Rejected,
            Status::Cancelled => CallState::Cancelled,
            Status::Missed => CallState::Missed,
        }
    }
}

/// A call with its participants, as stored.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub call: call::Model,
    pub parts: Vec<participant::Model>,
}

impl Loaded {
    pub(super) fn part(&self, user: &str) -> Option<&participant::Model> {
        self.parts.iter().find(|p| p.user_id == user)
    }

    pub(super) fn user_ids(&self) -> Vec<String> {
        self.parts.iter().map(|p| p.user_id.clone()).collect()
    }

    pub(super) fn is_live(&self) -> bool {
        self.call.state.is_live()
    }

    /// Participants in the call now (joined, not left).
    pub(super) fn in_call(&self) -> usize {
        self.parts.iter().filter(|p| in_call(p)).count()
    }

    pub fn to_proto(&self) -> v1::Call {
        let c = &self.call;
        let end = if c.ended_at > 0 { c.ended_at } else { 0 };
        v1::Call {
            id: c.id.to_string(),
            caller_id: c.caller_id.clone(),
            caller_name: c.caller_name.clone(),
            caller_avatar: c.caller_avatar.clone(),
            conversation_id: if c.conversation_id > 0 {
                c.conversation_id.to_string()
            } else {
                String::new()
            },
            media: match c.media {
                Media::Video => CallMedia::Video,
                Media::Audio => CallMedia::Audio,
            } as i32,
            state: CallState::from(c.state) as i32,
            participants: self
                .parts
                .iter()
                .map(|p| v1::Participant {
                    user_id: p.user_id.clone(),
                    joined: in_call(p),
                    muted: p.muted,
                    video_enabled: p.video_enabled,
                    screen_sharing: p.screen_sharing,
                    role: p.role.name().to_string(),
                    joined_at_ms: p.joined_at,
                    left_at_ms: p.left_at,
                    session_id: p.session_id.clone(),
                    disconnected_at_ms: p.disconnected_at,
                })
                .collect(),
            created_at_ms: c.created_at,
            answered_at_ms: c.answered_at,
            ended_at_ms: end,
            duration_ms: if c.answered_at > 0 && end > 0 {
                (end - c.answered_at).max(0)
            } else {
                0
            },
            end_reason: c.end_reason.clone(),
            sdp_offer: c.sdp_offer.clone(),
            sdp_answer: c.sdp_answer.clone(),
            group_call: c.group_call,
            client_call_id: c.client_call_id.clone().unwrap_or_default(),
        }
    }
}

/// Joined and not left: in the call now.
pub(super) fn in_call(p: &participant::Model) -> bool {
    p.joined_at > 0 && p.left_at == 0
}

/// A call and its participants over `conn`; with `lock`, the call's row
/// is locked for the rest of `conn`'s transaction (PostgreSQL; SQLite has
/// one writer at a time anyway).
pub(super) async fn load_in<C: ConnectionTrait>(
    conn: &C,
    id: i64,
    lock: bool,
) -> Result<Option<Loaded>> {
    let mut q = call::Entity::find_by_id(id);
    if lock {
        q = q.lock_exclusive();
    }
    let Some(call) = q.one(conn).await.map_err(db_err)? else {
        return Ok(None);
    };
    let parts = participant::Entity::find()
        .filter(participant::Column::CallId.eq(id))
        .order_by_asc(participant::Column::Id)
        .all(conn)
        .await
        .map_err(db_err)?;
    Ok(Some(Loaded { call, parts }))
}

/// Moves a call from one of `from` to `to`, setting `extra` columns too;
/// false when another request or a timer moved it first.
pub(super) async fn transition<C: ConnectionTrait>(
    conn: &C,
    id: i64,
    from: &[Status],
    to: Status,
    extra: impl FnOnce(sea_orm::UpdateMany<call::Entity>) -> sea_orm::UpdateMany<call::Entity>,
) -> Result<bool> {
    let update = call::Entity::update_many()
        .col_expr(call::Column::State, Expr::value(to))
        .filter(call::Column::Id.eq(id))
        .filter(call::Column::State.is_in(from.iter().copied()));
    let done = extra(update).exec(conn).await.map_err(db_err)?;
    Ok(done.rows_affected == 1)
}

/// Ends a live call in `to` (`Ended`, `Rejected`, `Cancelled`, `Missed`)
/// if it is in one of `from`: everyone still in leaves. False when it was
/// not (another request or a timer was first).
pub(super) async fn finish_in<C: ConnectionTrait>(
    conn: &C,
    id: i64,
    from: &[Status],
    to: Status,
    reason: &str,
    by: &str,
    now: i64,
) -> Result<bool> {
    let moved = transition(conn, id, from, to, |u| {
        u.col_expr(call::Column::EndedAt, Expr::value(now))
            .col_expr(call::Column::EndReason, Expr::value(reason))
            .col_expr(call::Column::EndedBy, Expr::value(by))
            .col_expr(call::Column::RingDeadline, Expr::value(0))
            .col_expr(call::Column::EndDeadline, Expr::value(0))
    })
    .await?;
    if moved {
        participant::Entity::update_many()
            .col_expr(participant::Column::LeftAt, Expr::value(now))
            .col_expr(participant::Column::GraceDeadline, Expr::value(0))
            .filter(participant::Column::CallId.eq(id))
            .filter(participant::Column::LeftAt.eq(0))
            .exec(conn)
            .await
            .map_err(db_err)?;
    }
    Ok(moved)
}

/// Marks a participant out of the call at `at`; false when it already was.
pub(super) async fn leave_in<C: ConnectionTrait>(conn: &C, part_id: i64, at: i64) -> Result<bool> {
    let done = participant::Entity::update_many()
        .col_expr(participant::Column::LeftAt, Expr::value(at))
        .col_expr(participant::Column::GraceDeadline, Expr::value(0))
        .filter(participant::Column::Id.eq(part_id))
        .filter(participant::Column::LeftAt.eq(0))
        .exec(conn)
        .await
        .map_err(db_err)?;
    Ok(done.rows_affected == 1)
}

/// The event that announces a call ending in `state`.
pub(super) fn ended_event(state: Status, call: v1::Call) -> call_event::Kind {
    match state {
        Status::Rejected => call_event::Kind::CallRejected(call),
        Status::Cancelled => call_event::Kind::CallCancelled(call),
        Status::Missed => call_event::Kind::CallMissed(call),
        _ => call_event::Kind::CallEnded(call),
    }
}

impl Calls {
    pub(crate) async fn load(&self, id: i64) -> Result<Option<Loaded>> {
        load_in(&self.db, id, false).await
    }

    pub(super) async fn must_load(&self, id: i64) -> Result<Loaded> {
        self.load(id).await?.ok_or_else(not_found)
    }

    /// The call a request names: by id, or (id "") the actor's newest live
    /// call with `peer`.
    pub(super) async fn resolve(&self, me: &str, call_id: &str, peer: &str) -> Result<Loaded> {
        if !call_id.is_empty() {
            let id = ids::parse(call_id).ok_or_else(not_found)?;
            let loaded = self.must_load(id).await?;
            if loaded.part(me).is_none() {
                return Err(denied("you are not a participant of this call"));
            }
            return Ok(loaded);
        }
        if peer.is_empty() || peer == me {
            return Err(ServiceError::invalid(
                "call_id, or the other participant's user id, is required",
            ));
        }
        let mine = self.live_call_ids(me).await?;
        let theirs: HashSet<i64> = self.live_call_ids(peer).await?.into_iter().collect();
        let newest = mine.into_iter().filter(|id| theirs.contains(id)).max();
        match newest {
            Some(id) => self.must_load(id).await,
            None => Err(ServiceError::new(
                ErrorCode::NotFound,
                "no live call with that user",
            )),
        }
    }

    /// Ids of the live calls `user` takes part in (not left).
    async fn live_call_ids(&self, user: &str) -> Result<Vec<i64>> {
        let parts = participant::Entity::find()
            .filter(participant::Column::UserId.eq(user))
            .filter(participant::Column::LeftAt.eq(0))
            .all(&self.db)
            .await
            .map_err(db_err)?;
        if parts.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<i64> = parts.iter().map(|p| p.call_id).collect();
        let live = call::Entity::find()
            .filter(call::Column::Id.is_in(ids))
            .filter(call::Column::State.is_in(Status::LIVE))
            .all(&self.db)
            .await
            .map_err(db_err)?;
        Ok(live.into_iter().map(|c| c.id).collect())
    }

    /// Whether `user` is in an ongoing call (joined, not left), other than
    /// `except`.
    pub(super) async fn is_busy(&self, user: &str, except: i64) -> Result<bool> {
        let parts = participant::Entity::find()
            .filter(participant::Column::UserId.eq(user))
            .filter(participant::Column::JoinedAt.gt(0))
            .filter(participant::Column::LeftAt.eq(0))
            .filter(participant::Column::CallId.ne(except))
            .all(&self.db)
            .await
            .map_err(db_err)?;
        if parts.is_empty() {
            return Ok(false);
        }
        let n = call::Entity::find()
            .filter(call::Column::Id.is_in(parts.iter().map(|p| p.call_id)))
            .filter(call::Column::State.eq(Status::Ongoing))
            .count(&self.db)
            .await
            .map_err(db_err)?;
        Ok(n > 0)
    }

    /// Ends a live call in `to` if it is in one of `from` and announces it;
    /// `None` when another request or a timer was first.
    pub(crate) async fn finish(
        &self,
        id: i64,
        from: &[Status],
        to: Status,
        reason: &str,
        by: &str,
        now: i64,
    ) -> Result<Option<Loaded>> {
        if !finish_in(&self.db, id, from, to, reason, by, now).await? {
            return Ok(None);
        }
        let loaded = self.must_load(id).await?;
        self.publish(&loaded, by, ended_event(to, loaded.to_proto()))
            .await;
        Ok(Some(loaded))
    }

    /// Marks a participant out of the call at `at`; false when it already
    /// was.
    pub(crate) async fn leave_at(&self, part_id: i64, at: i64) -> Result<bool> {
        leave_in(&self.db, part_id, at).await
    }
}

/// Whether this participant is the caller.
pub(super) fn is_caller(p: &participant::Model) -> bool {
    p.role == Role::Caller
}
