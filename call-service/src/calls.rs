//! The call domain: every rule about calls.
//!
//! [`Calls`] takes canonical requests, checks them against the call's state
//! and the actor's place in it, stores the change and publishes one
//! [`CallEvent`] per transition on the bus. Each transition is a
//! conditional update (`… WHERE state = 'ringing'`), so an answer racing the
//! ring timeout (or a second device) has exactly one winner, also between
//! replicas. The gRPC layer in `grpc.rs` only forwards to it; the timers
//! live in `sweeper.rs`.
//!
//! States: `ringing` → `ongoing` → `ended`, or `ringing` → `rejected` /
//! `cancelled` / `missed`. The last four are final.

use std::collections::HashSet;
use std::sync::Arc;

use confab_proto::bus::EventBus;
use confab_proto::v1::{self, Audience, CallEvent, CallMedia, CallState, SignalKind, call_event};
use confab_proto::{ErrorCode, ServiceError, ids};
use sea_orm::sea_query::{Expr, Query};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, DatabaseConnection, EntityTrait, PaginatorTrait, QueryFilter,
    QueryOrder, QuerySelect, Set, SqlErr, TransactionTrait,
};
use tokio::sync::Notify;

use crate::config::CallTimers;
use crate::conversations::Conversations;
use crate::entity::{call, participant};

type Result<T> = std::result::Result<T, ServiceError>;

/// Who ends a call when a timer does.
pub const SYSTEM: &str = "system";
/// Call starts one user may make per [`RATE_WINDOW_MS`] (the seed's 5/min).
pub const MAX_STARTS: u64 = 5;
pub const RATE_WINDOW_MS: i64 = 60_000;
/// The most users a room call rings.
pub const MAX_CALLEES: usize = 100;
/// The largest SDP or ICE payload relayed.
pub const MAX_SIGNAL_BYTES: usize = 64 * 1024;
/// The most call records one `ListCallRecords` returns.
pub const MAX_RECORDS: u64 = 200;

const RINGING: &str = "ringing";
const ONGOING: &str = "ongoing";
const LIVE: [&str; 2] = [RINGING, ONGOING];

/// The call domain over one database, one event bus and chat-service.
#[derive(Clone)]
pub struct Calls {
    db: DatabaseConnection,
    bus: Arc<dyn EventBus<CallEvent>>,
    chat: Arc<dyn Conversations>,
    timers: CallTimers,
    /// Wakes the sweeper when a new deadline is set.
    wake: Arc<Notify>,
}

pub(crate) fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

fn db_err(e: sea_orm::DbErr) -> ServiceError {
    tracing::error!(error = %e, "database error");
    ServiceError::internal("storage failure")
}

fn actor(a: &Option<v1::Actor>) -> Result<&v1::Actor> {
    match a {
        Some(a) if !a.id.trim().is_empty() && a.id.len() <= 128 => Ok(a),
        _ => Err(ServiceError::invalid(
            "actor.id is required (1..=128 bytes)",
        )),
    }
}

fn short(s: &str, what: &str) -> Result<()> {
    if s.len() > 128 {
        return Err(ServiceError::invalid(format!(
            "{what} is at most 128 bytes"
        )));
    }
    Ok(())
}

fn conflict(m: impl Into<String>) -> ServiceError {
    ServiceError::new(ErrorCode::Conflict, m)
}

fn denied(m: impl Into<String>) -> ServiceError {
    ServiceError::new(ErrorCode::PermissionDenied, m)
}

fn not_found() -> ServiceError {
    ServiceError::new(ErrorCode::NotFound, "no such call")
}

fn state_of(s: &str) -> CallState {
    match s {
        RINGING => CallState::Ringing,
        ONGOING => CallState::Ongoing,
        "ended" => CallState::Ended,
        "rejected" => CallState::Rejected,
        "cancelled" => CallState::Cancelled,
        "missed" => CallState::Missed,
        _ => CallState::Unspecified,
    }
}

/// A call with its participants, as stored.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub call: call::Model,
    pub parts: Vec<participant::Model>,
}

impl Loaded {
    fn part(&self, user: &str) -> Option<&participant::Model> {
        self.parts.iter().find(|p| p.user_id == user)
    }

    fn user_ids(&self) -> Vec<String> {
        self.parts.iter().map(|p| p.user_id.clone()).collect()
    }

    fn is_live(&self) -> bool {
        LIVE.contains(&self.call.state.as_str())
    }

    /// Participants in the call now (joined, not left).
    fn in_call(&self) -> usize {
        self.parts
            .iter()
            .filter(|p| p.joined_at > 0 && p.left_at == 0)
            .count()
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
            media: if c.media == "video" {
                CallMedia::Video
            } else {
                CallMedia::Audio
            } as i32,
            state: state_of(&c.state) as i32,
            participants: self
                .parts
                .iter()
                .map(|p| v1::Participant {
                    user_id: p.user_id.clone(),
                    joined: p.joined_at > 0 && p.left_at == 0,
                    muted: p.muted,
                    video_enabled: p.video_enabled,
                    screen_sharing: p.screen_sharing,
                    role: p.role.clone(),
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

impl Calls {
    pub fn new(
        db: DatabaseConnection,
        bus: Arc<dyn EventBus<CallEvent>>,
        chat: Arc<dyn Conversations>,
        timers: CallTimers,
    ) -> Self {
        Self {
            db,
            bus,
            chat,
            timers,
            wake: Arc::new(Notify::new()),
        }
    }

    /// The bus `Subscribe` is served from.
    pub fn bus(&self) -> &dyn EventBus<CallEvent> {
        self.bus.as_ref()
    }

    pub(crate) fn db(&self) -> &DatabaseConnection {
        &self.db
    }

    pub(crate) fn wake(&self) -> Arc<Notify> {
        self.wake.clone()
    }

    // ---- loading -----------------------------------------------------------

    pub(crate) async fn load(&self, id: i64) -> Result<Option<Loaded>> {
        let Some(call) = call::Entity::find_by_id(id)
            .one(&self.db)
            .await
            .map_err(db_err)?
        else {
            return Ok(None);
        };
        let parts = participant::Entity::find()
            .filter(participant::Column::CallId.eq(id))
            .order_by_asc(participant::Column::Id)
            .all(&self.db)
            .await
            .map_err(db_err)?;
        Ok(Some(Loaded { call, parts }))
    }

    async fn must_load(&self, id: i64) -> Result<Loaded> {
        self.load(id).await?.ok_or_else(not_found)
    }

    /// The call a request names: by id, or (id "") the actor's newest live
    /// call with `peer`.
    async fn resolve(&self, me: &str, call_id: &str, peer: &str) -> Result<Loaded> {
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
            .filter(call::Column::State.is_in(LIVE))
            .all(&self.db)
            .await
            .map_err(db_err)?;
        Ok(live.into_iter().map(|c| c.id).collect())
    }

    /// Whether `user` is in an ongoing call (joined, not left), other than
    /// `except`.
    async fn busy(&self, user: &str, except: i64) -> Result<bool> {
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
            .filter(call::Column::State.eq(ONGOING))
            .count(&self.db)
            .await
            .map_err(db_err)?;
        Ok(n > 0)
    }

    async fn publish(&self, loaded: &Loaded, actor: &str, kind: call_event::Kind) {
        self.bus
            .publish(CallEvent {
                audience: Some(audience(loaded)),
                actor_id: actor.to_string(),
                kind: Some(kind),
                ..Default::default()
            })
            .await;
    }

    // ---- starting ------------------------------------------------------------

    pub async fn initiate(&self, req: v1::InitiateCallRequest) -> Result<v1::Call> {
        let me = actor(&req.actor)?;
        short(&req.session_id, "session_id")?;
        short(&req.client_call_id, "client_call_id")?;
        if req.sdp_offer.len() > MAX_SIGNAL_BYTES {
            return Err(ServiceError::invalid("sdp_offer is too large"));
        }
        if me.name.len() > 256 || me.avatar.len() > 2048 {
            return Err(ServiceError::invalid("actor name or avatar is too long"));
        }
        let media = match CallMedia::try_from(req.media).unwrap_or_default() {
            CallMedia::Audio => "audio",
            CallMedia::Video => "video",
            CallMedia::Unspecified => {
                return Err(ServiceError::invalid("media must be audio or video"));
            }
        };
        let client_call_id = Some(req.client_call_id.trim().to_string()).filter(|s| !s.is_empty());
        if let Some(key) = &client_call_id
            && let Some(existing) = self.by_client_id(&me.id, key).await?
        {
            return Ok(existing.to_proto());
        }

        // Who is rung, and the conversation they share with the caller.
        let conv_id = ids::parse_opt(&req.conversation_id)
            .map_err(|_| ServiceError::invalid("conversation_id must be an id"))?;
        let (conversation, callees) = if req.group_call {
            let Some(cid) = conv_id else {
                return Err(ServiceError::invalid("a room call needs conversation_id"));
            };
            let conv = self
                .chat
                .member_of(cid.to_string(), me.id.clone())
                .await?
                .ok_or_else(|| {
                    ServiceError::new(
                        ErrorCode::NotAMember,
                        "you are not a member of that conversation",
                    )
                })?;
            let callees: Vec<String> = conv
                .members
                .iter()
                .map(|m| m.user_id.clone())
                .filter(|u| *u != me.id)
                .collect();
            if callees.is_empty() {
                return Err(ServiceError::invalid("nobody else is in that conversation"));
            }
            if callees.len() > MAX_CALLEES {
                return Err(ServiceError::invalid(format!(
                    "a room call rings at most {MAX_CALLEES} users"
                )));
            }
            (cid, callees)
        } else {
            let mut callees = req.callee_ids.clone();
            callees.dedup();
            let [callee] = callees.as_slice() else {
                return Err(ServiceError::invalid("a call has exactly one callee"));
            };
            let callee = callee.trim().to_string();
            if callee.is_empty() || callee.len() > 128 {
                return Err(ServiceError::invalid("callee id must be 1..=128 bytes"));
            }
            if callee == me.id {
                return Err(ServiceError::invalid("you cannot call yourself"));
            }
            let shared = match conv_id {
                Some(cid) => {
                    let conv = self
                        .chat
                        .member_of(cid.to_string(), me.id.clone())
                        .await?
                        .ok_or_else(|| {
                            ServiceError::new(
                                ErrorCode::NotAMember,
                                "you are not a member of that conversation",
                            )
                        })?;
                    conv.members
                        .iter()
                        .any(|m| m.user_id == callee)
                        .then_some(cid)
                }
                None => self
                    .chat
                    .shared(me.id.clone(), callee.clone())
                    .await?
                    .and_then(|c| ids::parse(&c.id)),
            };
            let Some(cid) = shared else {
                return Err(denied("you and the callee share no conversation"));
            };
            (cid, vec![callee])
        };

        if self.busy(&me.id, 0).await? {
            return Err(conflict("busy: you are already in a call"));
        }
        if !req.group_call && self.busy(&callees[0], 0).await? {
            return Err(conflict("busy: the callee is in another call"));
        }
        self.check_rate(&me.id).await?;

        let now = now_ms();
        let txn = self.db.begin().await.map_err(db_err)?;
        let inserted = call::ActiveModel {
            caller_id: Set(me.id.clone()),
            caller_name: Set(if me.name.is_empty() {
                me.id.clone()
            } else {
                me.name.clone()
            }),
            caller_avatar: Set(me.avatar.clone()),
            conversation_id: Set(conversation),
            group_call: Set(req.group_call),
            media: Set(media.into()),
            state: Set(RINGING.into()),
            client_call_id: Set(client_call_id.clone()),
            created_at: Set(now),
            answered_at: Set(0),
            ended_at: Set(0),
            end_reason: Set(String::new()),
            ended_by: Set(String::new()),
            sdp_offer: Set(req.sdp_offer.clone()),
            sdp_answer: Set(String::new()),
            ring_deadline: Set(now + self.timers.ring_timeout_ms as i64),
            end_deadline: Set(0),
            ..Default::default()
        }
        .insert(&txn)
        .await;
        let row = match inserted {
            Ok(row) => row,
            Err(e) if matches!(e.sql_err(), Some(SqlErr::UniqueConstraintViolation(_))) => {
                // The same client call id, started concurrently: the first wins.
                txn.rollback().await.map_err(db_err)?;
                let key = client_call_id.unwrap_or_default();
                return self
                    .by_client_id(&me.id, &key)
                    .await?
                    .map(|l| l.to_proto())
                    .ok_or_else(|| ServiceError::internal("call vanished"));
            }
            Err(e) => return Err(db_err(e)),
        };
        let video = media == "video";
        let mut users = vec![(me.id.clone(), "caller")];
        users.extend(callees.iter().map(|c| (c.clone(), "callee")));
        for (user, role) in users {
            let caller = role == "caller";
            participant::ActiveModel {
                call_id: Set(row.id),
                user_id: Set(user),
                role: Set(role.into()),
                session_id: Set(if caller {
                    req.session_id.clone()
                } else {
                    String::new()
                }),
                joined_at: Set(if caller { now } else { 0 }),
                left_at: Set(0),
                disconnected_at: Set(0),
                grace_deadline: Set(0),
                muted: Set(false),
                video_enabled: Set(caller && video),
                screen_sharing: Set(false),
                ..Default::default()
            }
            .insert(&txn)
            .await
            .map_err(db_err)?;
        }
        txn.commit().await.map_err(db_err)?;
        self.wake.notify_one();
        let loaded = self.must_load(row.id).await?;
        let call = loaded.to_proto();
        self.publish(
            &loaded,
            &me.id,
            call_event::Kind::CallInitiated(call.clone()),
        )
        .await;
        Ok(call)
    }

    async fn by_client_id(&self, caller: &str, key: &str) -> Result<Option<Loaded>> {
        let found = call::Entity::find()
            .filter(call::Column::CallerId.eq(caller))
            .filter(call::Column::ClientCallId.eq(key))
            .one(&self.db)
            .await
            .map_err(db_err)?;
        match found {
            Some(c) => self.load(c.id).await,
            None => Ok(None),
        }
    }

    /// At most [`MAX_STARTS`] calls per [`RATE_WINDOW_MS`] per caller,
    /// counted from the stored calls (so a restart does not reset it).
    async fn check_rate(&self, caller: &str) -> Result<()> {
        let now = now_ms();
        let recent = call::Entity::find()
            .filter(call::Column::CallerId.eq(caller))
            .filter(call::Column::CreatedAt.gt(now - RATE_WINDOW_MS))
            .order_by_desc(call::Column::CreatedAt)
            .limit(MAX_STARTS)
            .all(&self.db)
            .await
            .map_err(db_err)?;
        if recent.len() as u64 >= MAX_STARTS {
            let oldest = recent.last().map(|c| c.created_at).unwrap_or(now);
            return Err(ServiceError::limit(
                format!("at most {MAX_STARTS} calls a minute"),
                (oldest + RATE_WINDOW_MS - now).max(1),
            ));
        }
        Ok(())
    }

    // ---- transitions -----------------------------------------------------------

    /// Moves a call from one of `from` to `to`, setting `extra` columns too;
    /// false when another request or a timer moved it first.
    async fn transition(
        &self,
        id: i64,
        from: &[&str],
        to: &str,
        extra: impl FnOnce(sea_orm::UpdateMany<call::Entity>) -> sea_orm::UpdateMany<call::Entity>,
    ) -> Result<bool> {
        let update = call::Entity::update_many()
            .col_expr(call::Column::State, Expr::value(to))
            .filter(call::Column::Id.eq(id))
            .filter(call::Column::State.is_in(from.iter().copied()));
        let done = extra(update).exec(&self.db).await.map_err(db_err)?;
        Ok(done.rows_affected == 1)
    }

    /// Ends a live call in `state` (`ended`, `rejected`, `cancelled`,
    /// `missed`): everyone still in leaves, and the matching event goes out.
    pub(crate) async fn finish(
        &self,
        id: i64,
        from: &[&str],
        state: &str,
        reason: &str,
        by: &str,
        now: i64,
    ) -> Result<Option<Loaded>> {
        let moved = self
            .transition(id, from, state, |u| {
                u.col_expr(call::Column::EndedAt, Expr::value(now))
                    .col_expr(call::Column::EndReason, Expr::value(reason))
                    .col_expr(call::Column::EndedBy, Expr::value(by))
                    .col_expr(call::Column::RingDeadline, Expr::value(0))
                    .col_expr(call::Column::EndDeadline, Expr::value(0))
            })
            .await?;
        if !moved {
            return Ok(None);
        }
        participant::Entity::update_many()
            .col_expr(participant::Column::LeftAt, Expr::value(now))
            .col_expr(participant::Column::GraceDeadline, Expr::value(0))
            .filter(participant::Column::CallId.eq(id))
            .filter(participant::Column::LeftAt.eq(0))
            .exec(&self.db)
            .await
            .map_err(db_err)?;
        let loaded = self.must_load(id).await?;
        let call = loaded.to_proto();
        let kind = match state {
            "rejected" => call_event::Kind::CallRejected(call),
            "cancelled" => call_event::Kind::CallCancelled(call),
            "missed" => call_event::Kind::CallMissed(call),
            _ => call_event::Kind::CallEnded(call),
        };
        self.publish(&loaded, by, kind).await;
        Ok(Some(loaded))
    }

    pub async fn answer(&self, req: v1::CallActionRequest) -> Result<v1::Call> {
        let me = actor(&req.actor)?;
        short(&req.session_id, "session_id")?;
        if req.sdp.len() > MAX_SIGNAL_BYTES {
            return Err(ServiceError::invalid("sdp is too large"));
        }
        let loaded = self
            .resolve(&me.id, &req.call_id, &req.peer_user_id)
            .await?;
        let part = loaded
            .part(&me.id)
            .ok_or_else(|| denied("not a participant"))?;
        if part.role == "caller" {
            return Err(denied("the caller cannot answer its own call"));
        }
        let allowed: &[&str] = if loaded.call.group_call {
            &LIVE
        } else {
            &[RINGING]
        };
        if !allowed.contains(&loaded.call.state.as_str()) {
            return Err(conflict(format!("the call is {}", loaded.call.state)));
        }
        if part.left_at > 0 {
            return Err(conflict("you already declined or left this call"));
        }
        if part.joined_at > 0 {
            return Err(conflict("the call was already answered"));
        }
        if self.busy(&me.id, loaded.call.id).await? {
            return Err(conflict("busy: you are in another call"));
        }
        let now = now_ms();
        let id = loaded.call.id;
        if loaded.call.state == RINGING {
            let max = self.timers.max_duration_ms as i64;
            let sdp = req.sdp.clone();
            let moved = self
                .transition(id, &[RINGING], ONGOING, |u| {
                    u.col_expr(call::Column::AnsweredAt, Expr::value(now))
                        .col_expr(call::Column::RingDeadline, Expr::value(0))
                        .col_expr(call::Column::EndDeadline, Expr::value(now + max))
                        .col_expr(call::Column::SdpAnswer, Expr::value(sdp))
                })
                .await?;
            if !moved && !loaded.call.group_call {
                return Err(conflict("the call is no longer ringing"));
            }
        }
        let video = req.video_enabled.unwrap_or(loaded.call.media == "video");
        let joined = participant::Entity::update_many()
            .col_expr(participant::Column::JoinedAt, Expr::value(now))
            .col_expr(
                participant::Column::SessionId,
                Expr::value(req.session_id.clone()),
            )
            .col_expr(participant::Column::VideoEnabled, Expr::value(video))
            .filter(participant::Column::Id.eq(part.id))
            .filter(participant::Column::JoinedAt.eq(0))
            .filter(participant::Column::LeftAt.eq(0))
            .exec(&self.db)
            .await
            .map_err(db_err)?;
        if joined.rows_affected != 1 {
            return Err(conflict("the call was already answered"));
        }
        self.wake.notify_one();
        let loaded = self.must_load(id).await?;
        if !loaded.is_live() {
            return Err(conflict(format!("the call is {}", loaded.call.state)));
        }
        let call = loaded.to_proto();
        self.publish(
            &loaded,
            &me.id,
            call_event::Kind::CallAnswered(call.clone()),
        )
        .await;
        Ok(call)
    }

    pub async fn reject(&self, req: v1::CallActionRequest) -> Result<v1::Call> {
        let me = actor(&req.actor)?;
        let loaded = self
            .resolve(&me.id, &req.call_id, &req.peer_user_id)
            .await?;
        let part = loaded
            .part(&me.id)
            .ok_or_else(|| denied("not a participant"))?;
        if part.role == "caller" {
            return Err(denied("the caller cancels, it does not reject"));
        }
        // A room call still rings the callees who have not answered once
        // it is ongoing, so they may decline it then too.
        let may_decline = if loaded.call.group_call {
            loaded.is_live()
        } else {
            loaded.call.state == RINGING
        };
        if !may_decline {
            return Err(conflict(format!(
                "only a ringing call can be rejected; this one is {}",
                loaded.call.state
            )));
        }
        if part.joined_at > 0 || part.left_at > 0 {
            return Err(conflict("you already answered or declined this call"));
        }
        let now = now_ms();
        let reason = if req.reason.trim().is_empty() {
            "rejected".to_string()
        } else {
            req.reason.chars().take(64).collect()
        };
        if !loaded.call.group_call {
            return match self
                .finish(loaded.call.id, &[RINGING], "rejected", &reason, &me.id, now)
                .await?
            {
                Some(l) => Ok(l.to_proto()),
                None => Err(conflict("the call is no longer ringing")),
            };
        }
        // A room call: this callee declines; the call is rejected once
        // every callee has, and goes on for the others until then.
        let declined = participant::Entity::update_many()
            .col_expr(participant::Column::LeftAt, Expr::value(now))
            .filter(participant::Column::Id.eq(part.id))
            .filter(participant::Column::JoinedAt.eq(0))
            .filter(participant::Column::LeftAt.eq(0))
            .exec(&self.db)
            .await
            .map_err(db_err)?;
        if declined.rows_affected != 1 {
            return Err(conflict("you already answered or declined this call"));
        }
        let after = self.must_load(loaded.call.id).await?;
        let waiting = after
            .parts
            .iter()
            .any(|p| p.role == "callee" && p.left_at == 0);
        if !waiting
            && let Some(l) = self
                .finish(after.call.id, &[RINGING], "rejected", &reason, &me.id, now)
                .await?
        {
            return Ok(l.to_proto());
        }
        self.publish_left(&after, &me.id, &me.id, "declined").await;
        Ok(after.to_proto())
    }

    /// Tells a room call's participants that `user` is out of a call that
    /// goes on without them.
    pub(crate) async fn publish_left(&self, after: &Loaded, user: &str, by: &str, reason: &str) {
        self.publish(
            after,
            by,
            call_event::Kind::ParticipantLeft(v1::ParticipantLeft {
                call: Some(after.to_proto()),
                user_id: user.to_string(),
                reason: reason.to_string(),
            }),
        )
        .await;
    }

    pub async fn cancel(&self, req: v1::CallActionRequest) -> Result<v1::Call> {
        let me = actor(&req.actor)?;
        let loaded = self
            .resolve(&me.id, &req.call_id, &req.peer_user_id)
            .await?;
        if loaded.call.caller_id != me.id {
            return Err(denied("only the caller cancels a call"));
        }
        if loaded.call.state != RINGING {
            return Err(conflict(format!(
                "only a ringing call can be cancelled; this one is {}",
                loaded.call.state
            )));
        }
        match self
            .finish(
                loaded.call.id,
                &[RINGING],
                "cancelled",
                "cancelled",
                &me.id,
                now_ms(),
            )
            .await?
        {
            Some(l) => Ok(l.to_proto()),
            None => Err(conflict("the call is no longer ringing")),
        }
    }

    pub async fn end(&self, req: v1::CallActionRequest) -> Result<v1::Call> {
        let me = actor(&req.actor)?;
        let loaded = self
            .resolve(&me.id, &req.call_id, &req.peer_user_id)
            .await?;
        let part = loaded
            .part(&me.id)
            .ok_or_else(|| denied("not a participant"))?;
        if loaded.call.state != ONGOING {
            return Err(conflict(format!(
                "only an ongoing call can be ended; this one is {}",
                loaded.call.state
            )));
        }
        if part.joined_at == 0 || part.left_at > 0 {
            return Err(conflict("you are not in this call"));
        }
        let reason: String = if req.reason.trim().is_empty() {
            "user_ended".into()
        } else {
            req.reason.trim().chars().take(64).collect()
        };
        let now = now_ms();
        if loaded.call.group_call && loaded.call.caller_id != me.id && loaded.in_call() > 2 {
            // Leaving a room call that goes on without this participant.
            let left = self.leave_at(part.id, now).await?;
            let after = self.must_load(loaded.call.id).await?;
            if left {
                self.publish_left(&after, &me.id, &me.id, "left").await;
            }
            return Ok(after.to_proto());
        }
        match self
            .finish(loaded.call.id, &[ONGOING], "ended", &reason, &me.id, now)
            .await?
        {
            Some(l) => Ok(l.to_proto()),
            None => Err(conflict("the call has already ended")),
        }
    }

    /// Marks a participant out of the call at `at`; false when it already
    /// was.
    pub(crate) async fn leave_at(&self, part_id: i64, at: i64) -> Result<bool> {
        let done = participant::Entity::update_many()
            .col_expr(participant::Column::LeftAt, Expr::value(at))
            .col_expr(participant::Column::GraceDeadline, Expr::value(0))
            .filter(participant::Column::Id.eq(part_id))
            .filter(participant::Column::LeftAt.eq(0))
            .exec(&self.db)
            .await
            .map_err(db_err)?;
        Ok(done.rows_affected == 1)
    }

    // ---- in the call -----------------------------------------------------------

    pub async fn signal(&self, req: v1::SignalRequest) -> Result<v1::SignalResponse> {
        let me = actor(&req.actor)?;
        let kind = SignalKind::try_from(req.kind).unwrap_or_default();
        if kind == SignalKind::Unspecified {
            return Err(ServiceError::invalid(
                "kind must be offer, answer or ICE candidate",
            ));
        }
        if req.payload_json.trim().is_empty() || req.payload_json.len() > MAX_SIGNAL_BYTES {
            return Err(ServiceError::invalid(format!(
                "payload must be 1..={MAX_SIGNAL_BYTES} bytes"
            )));
        }
        short(&req.to_user_id, "to_user_id")?;
        let loaded = self.resolve(&me.id, &req.call_id, &req.to_user_id).await?;
        let part = loaded
            .part(&me.id)
            .ok_or_else(|| denied("not a participant"))?;
        if part.left_at > 0 {
            return Err(denied("you are no longer in this call"));
        }
        if !loaded.is_live() {
            return Err(conflict(format!("the call is {}", loaded.call.state)));
        }
        if req.renegotiation {
            renegotiable(&loaded, part, &req, kind)?;
        }
        let targets: Vec<&participant::Model> = if req.to_user_id.is_empty() {
            loaded
                .parts
                .iter()
                .filter(|p| p.user_id != me.id && p.left_at == 0)
                .collect()
        } else {
            match loaded.part(&req.to_user_id) {
                Some(p) if p.user_id != me.id && p.left_at == 0 => vec![p],
                _ => return Err(denied("signals go only to the call's participants")),
            }
        };
        let signal = v1::Signal {
            call_id: loaded.call.id.to_string(),
            from_user_id: me.id.clone(),
            kind: kind as i32,
            payload_json: req.payload_json.clone(),
        };
        for t in targets {
            // Once a participant answered, only its answering socket hears
            // the call's signaling; before that, all of its sockets do.
            let session_ids = if t.joined_at > 0 && !t.session_id.is_empty() {
                vec![t.session_id.clone()]
            } else {
                Vec::new()
            };
            self.bus
                .publish(CallEvent {
                    audience: Some(Audience {
                        user_ids: vec![t.user_id.clone()],
                        call_id: loaded.call.id.to_string(),
                        session_ids,
                        ..Default::default()
                    }),
                    actor_id: me.id.clone(),
                    kind: Some(call_event::Kind::Signal(signal.clone())),
                    ..Default::default()
                })
                .await;
        }
        Ok(v1::SignalResponse {
            call_id: loaded.call.id.to_string(),
        })
    }

    pub async fn update_controls(&self, req: v1::UpdateControlsRequest) -> Result<v1::Call> {
        let me = actor(&req.actor)?;
        if req.muted.is_none() && req.video_enabled.is_none() && req.screen_sharing.is_none() {
            return Err(ServiceError::invalid("no control to change"));
        }
        let loaded = self.resolve(&me.id, &req.call_id, "").await?;
        let part = loaded
            .part(&me.id)
            .ok_or_else(|| denied("not a participant"))?;
        if !loaded.is_live() {
            return Err(conflict(format!("the call is {}", loaded.call.state)));
        }
        if part.joined_at == 0 || part.left_at > 0 {
            return Err(conflict("you are not in this call"));
        }
        let mut update =
            participant::Entity::update_many().filter(participant::Column::Id.eq(part.id));
        if let Some(v) = req.muted {
            update = update.col_expr(participant::Column::Muted, Expr::value(v));
        }
        if let Some(v) = req.video_enabled {
            update = update.col_expr(participant::Column::VideoEnabled, Expr::value(v));
        }
        if let Some(v) = req.screen_sharing {
            update = update.col_expr(participant::Column::ScreenSharing, Expr::value(v));
        }
        update.exec(&self.db).await.map_err(db_err)?;
        let loaded = self.must_load(loaded.call.id).await?;
        let call = loaded.to_proto();
        self.publish(
            &loaded,
            &me.id,
            call_event::Kind::ControlsChanged(v1::ControlsChange {
                call: Some(call.clone()),
                user_id: me.id.clone(),
                muted: req.muted,
                video_enabled: req.video_enabled,
                screen_sharing: req.screen_sharing,
            }),
        )
        .await;
        Ok(call)
    }

    // ---- reading -----------------------------------------------------------------

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

    // ---- sessions ----------------------------------------------------------------

    /// A socket of the actor opened or closed. Closing the socket a
    /// participant calls from starts its disconnect grace; opening any
    /// socket of a participant in grace ends it, and signaling follows the
    /// new socket.
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

/// Whether a `renegotiation` signal may pass: an offer or answer between
/// two participants who are both in the ongoing call, from the socket the
/// sender calls from (so a second tab's late `answer_call` is not taken for
/// one).
fn renegotiable(
    loaded: &Loaded,
    me: &participant::Model,
    req: &v1::SignalRequest,
    kind: SignalKind,
) -> Result<()> {
    if !matches!(kind, SignalKind::Offer | SignalKind::Answer) {
        return Err(ServiceError::invalid(
            "only an offer or an answer renegotiates a call",
        ));
    }
    if loaded.call.state != ONGOING {
        return Err(conflict(format!(
            "only an ongoing call can be renegotiated; this one is {}",
            loaded.call.state
        )));
    }
    let in_call = |p: &participant::Model| p.joined_at > 0 && p.left_at == 0;
    if !in_call(me) {
        return Err(conflict("you are not in this call"));
    }
    if !req.session_id.is_empty() && me.session_id != req.session_id {
        return Err(conflict("this socket is not the one in the call"));
    }
    match loaded.part(&req.to_user_id) {
        Some(p) if p.user_id != me.user_id && in_call(p) => Ok(()),
        _ => Err(conflict("the other user is not in this call")),
    }
}

/// Every participant's sockets, the call, and for a room call its
/// conversation.
fn audience(l: &Loaded) -> Audience {
    Audience {
        user_ids: l.user_ids(),
        call_id: l.call.id.to_string(),
        conversation_id: if l.call.group_call {
            l.call.conversation_id.to_string()
        } else {
            String::new()
        },
        ..Default::default()
    }
}
