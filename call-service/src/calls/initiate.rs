//! Starting a call: `InitiateCall`, in steps — read the request, answer a
//! retry with the call it already started, find who is rung and the
//! conversation they share with the caller (asking chat-service), refuse a
//! busy caller or callee (`USER_BUSY`) and a caller over the start rate
//! (`LIMIT_EXCEEDED`), then store the ringing call with its participants
//! in one transaction and announce it.

use confab_kit::{db_err, now_ms};
use confab_proto::v1::{self, CallMedia, call_event};
use confab_proto::{ErrorCode, ServiceError, ids};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect, Set, SqlErr,
    TransactionTrait,
};

use super::{
    Calls, Loaded, MAX_CALLEES, MAX_SIGNAL_BYTES, MAX_STARTS, Media, RATE_WINDOW_MS, Result, Role,
    Status, actor, busy, denied, short,
};
use crate::entity::{call, participant};

/// A start request, checked.
struct Start<'a> {
    me: &'a v1::Actor,
    media: Media,
    /// The caller's idempotency key, trimmed; `None` when it sent none.
    client_call_id: Option<String>,
}

/// Who a call rings, and the conversation it belongs to.
struct Rung {
    conversation: i64,
    callees: Vec<String>,
}

/// What storing a call found.
enum Stored {
    New(i64),
    /// A concurrent start with the same client call id won.
    Existing(Box<Loaded>),
}

impl Calls {
    pub async fn initiate(&self, req: v1::InitiateCallRequest) -> Result<v1::Call> {
        let start = read(&req)?;
        let me = start.me;
        if let Some(key) = &start.client_call_id
            && let Some(existing) = self.by_client_id(&me.id, key).await?
        {
            return Ok(existing.to_proto());
        }
        let rung = if req.group_call {
            self.room_callees(&req, me).await?
        } else {
            self.direct_callee(&req, me).await?
        };
        if self.is_busy(&me.id, 0).await? {
            return Err(busy("you are already in a call"));
        }
        if !req.group_call && self.is_busy(&rung.callees[0], 0).await? {
            return Err(busy("the callee is in another call"));
        }
        self.check_rate(&me.id).await?;
        let id = match self.store(&req, &start, &rung).await? {
            Stored::New(id) => id,
            Stored::Existing(loaded) => return Ok(loaded.to_proto()),
        };
        self.wake.notify_one();
        let loaded = self.must_load(id).await?;
        let call = loaded.to_proto();
        self.publish(
            &loaded,
            &me.id,
            call_event::Kind::CallInitiated(call.clone()),
        )
        .await;
        Ok(call)
    }

    /// A room call rings every other member of its conversation.
    async fn room_callees(&self, req: &v1::InitiateCallRequest, me: &v1::Actor) -> Result<Rung> {
        let Some(cid) = conversation_id(req)? else {
            return Err(ServiceError::invalid("a room call needs conversation_id"));
        };
        let conv = self.member_of(cid, me).await?;
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
        Ok(Rung {
            conversation: cid,
            callees,
        })
    }

    /// A 1:1 call rings one callee who shares a conversation with the
    /// caller: the one named, else their direct one (or any other).
    async fn direct_callee(&self, req: &v1::InitiateCallRequest, me: &v1::Actor) -> Result<Rung> {
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
        let shared = match conversation_id(req)? {
            Some(cid) => {
                let conv = self.member_of(cid, me).await?;
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
        let Some(conversation) = shared else {
            return Err(denied("you and the callee share no conversation"));
        };
        Ok(Rung {
            conversation,
            callees: vec![callee],
        })
    }

    /// The conversation `cid` with its members, when the caller is one.
    async fn member_of(&self, cid: i64, me: &v1::Actor) -> Result<v1::Conversation> {
        self.chat
            .member_of(cid.to_string(), me.id.clone())
            .await?
            .ok_or_else(|| {
                ServiceError::new(
                    ErrorCode::NotAMember,
                    "you are not a member of that conversation",
                )
            })
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

    /// Stores the ringing call and its participants in one transaction.
    async fn store(
        &self,
        req: &v1::InitiateCallRequest,
        start: &Start<'_>,
        rung: &Rung,
    ) -> Result<Stored> {
        let me = start.me;
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
            conversation_id: Set(rung.conversation),
            group_call: Set(req.group_call),
            media: Set(start.media),
            state: Set(Status::Ringing),
            client_call_id: Set(start.client_call_id.clone()),
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
                let key = start.client_call_id.clone().unwrap_or_default();
                return self
                    .by_client_id(&me.id, &key)
                    .await?
                    .map(|l| Stored::Existing(Box::new(l)))
                    .ok_or_else(|| ServiceError::internal("call vanished"));
            }
            Err(e) => return Err(db_err(e)),
        };
        let video = start.media == Media::Video;
        let mut users = vec![(me.id.clone(), Role::Caller)];
        users.extend(rung.callees.iter().map(|c| (c.clone(), Role::Callee)));
        for (user, role) in users {
            let caller = role == Role::Caller;
            participant::ActiveModel {
                call_id: Set(row.id),
                user_id: Set(user),
                role: Set(role),
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
        Ok(Stored::New(row.id))
    }
}

/// Checks a start request's fields.
fn read(req: &v1::InitiateCallRequest) -> Result<Start<'_>> {
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
        CallMedia::Audio => Media::Audio,
        CallMedia::Video => Media::Video,
        CallMedia::Unspecified => {
            return Err(ServiceError::invalid("media must be audio or video"));
        }
    };
    let client_call_id = Some(req.client_call_id.trim().to_string()).filter(|s| !s.is_empty());
    Ok(Start {
        me,
        media,
        client_call_id,
    })
}

/// The conversation a request names, if any.
fn conversation_id(req: &v1::InitiateCallRequest) -> Result<Option<i64>> {
    ids::parse_opt(&req.conversation_id)
        .map_err(|_| ServiceError::invalid("conversation_id must be an id"))
}
