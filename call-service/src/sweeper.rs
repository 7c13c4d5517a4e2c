//! The call timers: ring timeout → `missed`, maximum duration → `ended`
//! (`timeout`), disconnect grace → the participant is out (a two-party call
//! then ends, `participant_disconnected`).
//!
//! Every deadline is a column (`calls.ring_deadline`, `calls.end_deadline`,
//! `call_participants.grace_deadline`), so the timers survive a restart: the
//! sweeper's first pass, at start, resolves whatever fell due while the
//! service was down. It then sleeps until the nearest deadline, or until a
//! request sets a new one. Each resolution is a conditional transition, so
//! a timer racing an answer (or another replica's sweeper) has one winner.

use std::time::Duration;

use confab_kit::now_ms;
use confab_proto::ServiceError;
use confab_proto::bus::Resume;
use confab_proto::server::Closing;
use futures::StreamExt;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};

use crate::calls::{Calls, Role, SYSTEM, Status, reason};
use crate::entity::{call, participant};

/// Runs the timers of `calls` until `closing`.
pub fn spawn(calls: Calls, closing: Closing) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let wake = calls.wake();
        let closed = closing.closed();
        tokio::pin!(closed);
        loop {
            // Register for wake-ups before looking, so none is missed.
            let woken = wake.notified();
            tokio::pin!(woken);
            woken.as_mut().enable();
            let next = match sweep(&calls).await {
                Ok(next) => next,
                Err(e) => {
                    tracing::warn!(error = %e, "call sweep failed; retrying");
                    Some(now_ms() + 1000)
                }
            };
            let wait = next
                .map(|at| Duration::from_millis((at - now_ms()).clamp(0, 3_600_000) as u64))
                .unwrap_or(Duration::from_secs(3600));
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = &mut woken => {}
                _ = &mut closed => return,
            }
        }
    })
}

/// With a log shared by replicas: wakes this replica's sweeper on every
/// call event, any replica's, so it knows the deadlines other replicas set
/// (a call started on a replica that then died still rings out). Follows
/// the log until `closing`, reopening it after the last event it saw.
pub fn follow_replicas(calls: Calls, closing: Closing) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let closed = closing.closed();
        tokio::pin!(closed);
        let mut position: Option<Resume> = None;
        loop {
            let mut sub = calls.bus().subscribe(position.clone()).await;
            loop {
                tokio::select! {
                    _ = &mut closed => return,
                    event = sub.events.next() => match event {
                        Some(Ok(e)) => {
                            position = Some(Resume {
                                epoch: sub.epoch.clone(),
                                after_seq: e.seq,
                            });
                            calls.wake().notify_one();
                        }
                        Some(Err(e)) => {
                            tracing::warn!(error = %e, "call event log lost; following it again");
                            break;
                        }
                        None => break,
                    },
                }
            }
            // Whatever was missed, the sweep after a wake reads it from
            // the database.
            calls.wake().notify_one();
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
}

/// Resolves every overdue timer; returns the next deadline, if any.
pub async fn sweep(calls: &Calls) -> Result<Option<i64>, ServiceError> {
    let now = now_ms();
    let db = calls.db();
    let err = |e: sea_orm::DbErr| {
        tracing::error!(error = %e, "database error");
        ServiceError::internal("storage failure")
    };

    let missed = call::Entity::find()
        .filter(call::Column::State.eq(Status::Ringing))
        .filter(call::Column::RingDeadline.lte(now))
        .all(db)
        .await
        .map_err(err)?;
    for c in missed {
        calls
            .finish(
                c.id,
                &[Status::Ringing],
                Status::Missed,
                reason::MISSED,
                SYSTEM,
                now,
            )
            .await?;
    }

    let too_long = call::Entity::find()
        .filter(call::Column::State.eq(Status::Ongoing))
        .filter(call::Column::EndDeadline.gt(0))
        .filter(call::Column::EndDeadline.lte(now))
        .all(db)
        .await
        .map_err(err)?;
    for c in too_long {
        calls
            .finish(
                c.id,
                &[Status::Ongoing],
                Status::Ended,
                reason::TIMEOUT,
                SYSTEM,
                now,
            )
            .await?;
    }

    let gone = participant::Entity::find()
        .filter(participant::Column::GraceDeadline.gt(0))
        .filter(participant::Column::GraceDeadline.lte(now))
        .filter(participant::Column::LeftAt.eq(0))
        .all(db)
        .await
        .map_err(err)?;
    for p in gone {
        drop_out(calls, p, now).await?;
    }

    let mut next: Option<i64> = None;
    let mut consider = |v: Option<i64>| {
        if let Some(v) = v.filter(|v| *v > 0) {
            next = Some(next.map_or(v, |n| n.min(v)));
        }
    };
    consider(
        call::Entity::find()
            .filter(call::Column::State.eq(Status::Ringing))
            .order_by_asc(call::Column::RingDeadline)
            .limit(1)
            .one(db)
            .await
            .map_err(err)?
            .map(|c| c.ring_deadline),
    );
    consider(
        call::Entity::find()
            .filter(call::Column::State.eq(Status::Ongoing))
            .filter(call::Column::EndDeadline.gt(0))
            .order_by_asc(call::Column::EndDeadline)
            .limit(1)
            .one(db)
            .await
            .map_err(err)?
            .map(|c| c.end_deadline),
    );
    consider(
        participant::Entity::find()
            .filter(participant::Column::GraceDeadline.gt(0))
            .filter(participant::Column::LeftAt.eq(0))
            .order_by_asc(participant::Column::GraceDeadline)
            .limit(1)
            .one(db)
            .await
            .map_err(err)?
            .map(|p| p.grace_deadline),
    );
    Ok(next)
}

/// A participant's grace ran out: they are out of the call. A ringing
/// call whose caller is gone is cancelled; a call left with fewer than two
/// people in it ends (`participant_disconnected`); a room call that goes on
/// tells the others (`participant_left`).
async fn drop_out(calls: &Calls, p: participant::Model, now: i64) -> Result<(), ServiceError> {
    const WHY: &str = reason::DISCONNECTED;
    let Some(loaded) = calls.load(p.call_id).await? else {
        return Ok(());
    };
    match loaded.call.state {
        Status::Ringing if p.role == Role::Caller => {
            calls
                .finish(
                    p.call_id,
                    &[Status::Ringing],
                    Status::Cancelled,
                    WHY,
                    SYSTEM,
                    now,
                )
                .await?;
        }
        Status::Ongoing => {
            let others = loaded
                .parts
                .iter()
                .filter(|o| o.id != p.id && o.joined_at > 0 && o.left_at == 0)
                .count();
            if others < 2 {
                calls
                    .finish(
                        p.call_id,
                        &[Status::Ongoing],
                        Status::Ended,
                        WHY,
                        SYSTEM,
                        now,
                    )
                    .await?;
            } else if calls.leave_at(p.id, p.disconnected_at.max(1)).await?
                && let Some(after) = calls.load(p.call_id).await?
            {
                calls.publish_left(&after, &p.user_id, SYSTEM, WHY).await;
            }
        }
        _ => {
            calls.leave_at(p.id, now).await?;
        }
    }
    Ok(())
}
