//! Answering a call, and every way out of one.
//!
//! `EndCall`, `CancelCall`, `RejectCall` and `Hangup` share one path
//! ([`Calls::act`]): the call's row is locked in a transaction, a pure
//! decision ([`Step`]) is made from its state and the actor's place in it,
//! the step is written in that same transaction, and the event goes out
//! after the commit. `Hangup` is the one the contracts use: it picks end,
//! leave, cancel or decline by the call's state, so a client's "hang up"
//! is one request that cannot race an answer between two tries.

use confab_kit::{db_err, now_ms};
use confab_proto::ServiceError;
use confab_proto::v1::{self, call_event};
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, TransactionTrait};

use super::state::{self, Loaded, finish_in, in_call, is_caller, leave_in, load_in};
use super::{
    Calls, MAX_SIGNAL_BYTES, Media, Result, Role, Status, actor, busy, conflict, denied, not_found,
    reason, short, the_call_is, wrong_state,
};
use crate::entity::{call, participant};

/// What ending, cancelling, rejecting or hanging up does to a call.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Step {
    /// The call is over for everyone: from `from` to `to`.
    Finish {
        from: Status,
        to: Status,
        reason: String,
    },
    /// This participant leaves a room call that goes on.
    Leave { part_id: i64 },
    /// This callee declines a room call; it is rejected when no callee is
    /// left to answer it while it still rings, else goes on.
    Decline { part_id: i64, reason: String },
}

/// What a written step announces.
enum Done {
    Finished(Status),
    /// One participant out of a call that goes on (`publish`: false when
    /// they already were).
    Out {
        reason: &'static str,
        publish: bool,
    },
}

/// Which RPC is deciding.
#[derive(Clone, Copy)]
enum Act {
    End,
    Cancel,
    Reject,
    Hangup,
}

impl Calls {
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
        if is_caller(part) {
            return Err(denied("the caller cannot answer its own call"));
        }
        // A room call rings those who have not answered while it goes on.
        let answerable = match loaded.call.group_call {
            true => loaded.is_live(),
            false => loaded.call.state == Status::Ringing,
        };
        if !answerable {
            return Err(the_call_is(loaded.call.state));
        }
        if part.left_at > 0 {
            return Err(conflict("you already declined or left this call"));
        }
        if part.joined_at > 0 {
            return Err(conflict("the call was already answered"));
        }
        if self.is_busy(&me.id, loaded.call.id).await? {
            return Err(busy("you are in another call"));
        }
        let now = now_ms();
        let id = loaded.call.id;
        if loaded.call.state == Status::Ringing {
            let max = self.timers.max_duration_ms as i64;
            let sdp = req.sdp.clone();
            let moved = state::transition(&self.db, id, &[Status::Ringing], Status::Ongoing, |u| {
                u.col_expr(call::Column::AnsweredAt, Expr::value(now))
                    .col_expr(call::Column::RingDeadline, Expr::value(0))
                    .col_expr(call::Column::EndDeadline, Expr::value(now + max))
                    .col_expr(call::Column::SdpAnswer, Expr::value(sdp))
            })
            .await?;
            if !moved && !loaded.call.group_call {
                // A timer or the caller was first.
                let now_in = self.must_load(id).await?.call.state;
                return Err(wrong_state(now_in, "the call is no longer ringing"));
            }
        }
        let video = req
            .video_enabled
            .unwrap_or(loaded.call.media == Media::Video);
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
            return Err(the_call_is(loaded.call.state));
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
        self.act(req, Act::Reject).await
    }

    pub async fn cancel(&self, req: v1::CallActionRequest) -> Result<v1::Call> {
        self.act(req, Act::Cancel).await
    }

    pub async fn end(&self, req: v1::CallActionRequest) -> Result<v1::Call> {
        self.act(req, Act::End).await
    }

    /// Ends, leaves, cancels or declines the call by its state (module
    /// doc; `Hangup` in call.proto).
    pub async fn hangup(&self, req: v1::CallActionRequest) -> Result<v1::Call> {
        self.act(req, Act::Hangup).await
    }

    /// Decides and writes one way out of the call in one transaction, then
    /// announces it.
    async fn act(&self, req: v1::CallActionRequest, what: Act) -> Result<v1::Call> {
        let me = actor(&req.actor)?;
        let id = self
            .resolve(&me.id, &req.call_id, &req.peer_user_id)
            .await?
            .call
            .id;
        let now = now_ms();
        let txn = self.db.begin().await.map_err(db_err)?;
        let loaded = load_in(&txn, id, true).await?.ok_or_else(not_found)?;
        let part = loaded
            .part(&me.id)
            .ok_or_else(|| denied("not a participant"))?;
        let step = match what {
            Act::End => end(&loaded, part, &req.reason),
            Act::Cancel => cancel(&loaded, part),
            Act::Reject => reject(&loaded, part, &req.reason),
            Act::Hangup => hangup(&loaded, part, &req.reason),
        }?;
        let done = write(&txn, &loaded, step, &me.id, now).await?;
        txn.commit().await.map_err(db_err)?;
        let after = self.must_load(id).await?;
        match done {
            Done::Finished(to) => {
                self.publish(&after, &me.id, state::ended_event(to, after.to_proto()))
                    .await
            }
            Done::Out { reason, publish } => {
                if publish {
                    self.publish_left(&after, &me.id, &me.id, reason).await;
                }
            }
        }
        Ok(after.to_proto())
    }
}

/// `EndCall`: one in an ongoing call ends it for everyone, or leaves a
/// room call that goes on (not its caller, three or more in it).
fn end(loaded: &Loaded, part: &participant::Model, why: &str) -> Result<Step> {
    let state = loaded.call.state;
    if state != Status::Ongoing {
        return Err(wrong_state(
            state,
            format!("only an ongoing call can be ended; this one is {state}"),
        ));
    }
    if !in_call(part) {
        return Err(conflict("you are not in this call"));
    }
    if loaded.call.group_call && !is_caller(part) && loaded.in_call() > 2 {
        return Ok(Step::Leave { part_id: part.id });
    }
    let why = why.trim();
    Ok(Step::Finish {
        from: Status::Ongoing,
        to: Status::Ended,
        reason: if why.is_empty() {
            reason::USER_ENDED.into()
        } else {
            why.chars().take(64).collect()
        },
    })
}

/// `CancelCall`: the caller, before anyone answered.
fn cancel(loaded: &Loaded, part: &participant::Model) -> Result<Step> {
    if !is_caller(part) {
        return Err(denied("only the caller cancels a call"));
    }
    let state = loaded.call.state;
    if state != Status::Ringing {
        return Err(wrong_state(
            state,
            format!("only a ringing call can be cancelled; this one is {state}"),
        ));
    }
    Ok(Step::Finish {
        from: Status::Ringing,
        to: Status::Cancelled,
        reason: reason::CANCELLED.into(),
    })
}

/// `RejectCall`: a callee it rings. A room call still rings the callees
/// who have not answered once it is ongoing, so they may decline it then.
fn reject(loaded: &Loaded, part: &participant::Model, why: &str) -> Result<Step> {
    if is_caller(part) {
        return Err(denied("the caller cancels, it does not reject"));
    }
    let state = loaded.call.state;
    let may_decline = match loaded.call.group_call {
        true => state.is_live(),
        false => state == Status::Ringing,
    };
    if !may_decline {
        return Err(wrong_state(
            state,
            format!("only a ringing call can be rejected; this one is {state}"),
        ));
    }
    if part.joined_at > 0 || part.left_at > 0 {
        return Err(conflict("you already answered or declined this call"));
    }
    let reason = if why.trim().is_empty() {
        reason::REJECTED.to_string()
    } else {
        why.chars().take(64).collect()
    };
    if loaded.call.group_call {
        return Ok(Step::Decline {
            part_id: part.id,
            reason,
        });
    }
    Ok(Step::Finish {
        from: Status::Ringing,
        to: Status::Rejected,
        reason,
    })
}

/// `Hangup`: whatever ends the call for this participant now.
fn hangup(loaded: &Loaded, part: &participant::Model, why: &str) -> Result<Step> {
    match loaded.call.state {
        Status::Ringing if is_caller(part) => cancel(loaded, part),
        Status::Ringing => reject(loaded, part, why),
        Status::Ongoing if in_call(part) => end(loaded, part, why),
        // A room call still ringing for this callee.
        Status::Ongoing
            if part.role == Role::Callee && part.joined_at == 0 && part.left_at == 0 =>
        {
            reject(loaded, part, why)
        }
        Status::Ongoing => Err(conflict("you already declined or left this call")),
        over => Err(the_call_is(over)),
    }
}

/// Writes `step` over `conn` (the caller's transaction, with the call's
/// row locked).
async fn write<C: ConnectionTrait>(
    conn: &C,
    loaded: &Loaded,
    step: Step,
    by: &str,
    now: i64,
) -> Result<Done> {
    let id = loaded.call.id;
    match step {
        Step::Finish { from, to, reason } => {
            if finish_in(conn, id, &[from], to, &reason, by, now).await? {
                Ok(Done::Finished(to))
            } else {
                // Another replica's timer, without the lock, was first.
                let now_in = load_in(conn, id, false).await?.ok_or_else(not_found)?;
                Err(the_call_is(now_in.call.state))
            }
        }
        Step::Leave { part_id } => Ok(Done::Out {
            reason: reason::LEFT,
            publish: leave_in(conn, part_id, now).await?,
        }),
        Step::Decline { part_id, reason } => {
            let declined = participant::Entity::update_many()
                .col_expr(participant::Column::LeftAt, Expr::value(now))
                .filter(participant::Column::Id.eq(part_id))
                .filter(participant::Column::JoinedAt.eq(0))
                .filter(participant::Column::LeftAt.eq(0))
                .exec(conn)
                .await
                .map_err(db_err)?;
            if declined.rows_affected != 1 {
                return Err(conflict("you already answered or declined this call"));
            }
            let waiting = loaded
                .parts
                .iter()
                .any(|p| p.id != part_id && p.role == Role::Callee && p.left_at == 0);
            if !waiting
                && finish_in(
                    conn,
                    id,
                    &[Status::Ringing],
                    Status::Rejected,
                    &reason,
                    by,
                    now,
                )
                .await?
            {
                return Ok(Done::Finished(Status::Rejected));
            }
            Ok(Done::Out {
                reason: reason::DECLINED,
                publish: true,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn part(id: i64, role: Role, joined: i64, left: i64) -> participant::Model {
        participant::Model {
            id,
            call_id: 1,
            user_id: format!("u{id}"),
            role,
            session_id: String::new(),
            joined_at: joined,
            left_at: left,
            disconnected_at: 0,
            grace_deadline: 0,
            muted: false,
            video_enabled: false,
            screen_sharing: false,
        }
    }

    fn call(state: Status, group: bool, parts: Vec<participant::Model>) -> Loaded {
        Loaded {
            call: call::Model {
                id: 1,
                caller_id: "u1".into(),
                caller_name: String::new(),
                caller_avatar: String::new(),
                conversation_id: 3,
                group_call: group,
                media: Media::Audio,
                state,
                client_call_id: None,
                created_at: 1,
                answered_at: 0,
                ended_at: 0,
                end_reason: String::new(),
                ended_by: String::new(),
                sdp_offer: String::new(),
                sdp_answer: String::new(),
                ring_deadline: 0,
                end_deadline: 0,
            },
            parts,
        }
    }

    #[test]
    fn hangup_picks_the_way_out_by_the_calls_state() {
        let ringing = call(
            Status::Ringing,
            false,
            vec![part(1, Role::Caller, 1, 0), part(2, Role::Callee, 0, 0)],
        );
        let to = |s: &Step| match s {
            Step::Finish { to, .. } => Some(*to),
            _ => None,
        };
        let by_caller = hangup(&ringing, &ringing.parts[0], "").unwrap();
        assert_eq!(to(&by_caller), Some(Status::Cancelled));
        let by_callee = hangup(&ringing, &ringing.parts[1], "").unwrap();
        assert_eq!(to(&by_callee), Some(Status::Rejected));
        let ongoing = call(
            Status::Ongoing,
            false,
            vec![part(1, Role::Caller, 1, 0), part(2, Role::Callee, 2, 0)],
        );
        let hung = hangup(&ongoing, &ongoing.parts[1], "").unwrap();
        assert_eq!(to(&hung), Some(Status::Ended));
        let over = call(Status::Missed, false, ongoing.parts.clone());
        let e = hangup(&over, &over.parts[0], "").unwrap_err();
        assert_eq!(e.state, "missed");
    }

    #[test]
    fn hangup_in_a_room_call_that_goes_on_leaves_or_declines() {
        let room = call(
            Status::Ongoing,
            true,
            vec![
                part(1, Role::Caller, 1, 0),
                part(2, Role::Callee, 2, 0),
                part(3, Role::Callee, 2, 0),
                part(4, Role::Callee, 0, 0),
            ],
        );
        assert_eq!(
            hangup(&room, &room.parts[1], "").unwrap(),
            Step::Leave { part_id: 2 }
        );
        assert!(matches!(
            hangup(&room, &room.parts[3], "").unwrap(),
            Step::Decline { part_id: 4, .. }
        ));
        assert!(matches!(
            hangup(&room, &room.parts[0], "").unwrap(),
            Step::Finish {
                to: Status::Ended,
                ..
            }
        ));
    }
}
