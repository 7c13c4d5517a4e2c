//! A resumed session's return ([`crate::recovery`]): its rooms back and
//! the chat events it missed, rendered by its contract, before any live
//! event.
//!
//! The missed events are those after the client's offset; each goes to
//! the socket when one of its contract's emits names a room the socket is
//! in (its user's, a conversation it is still a member of, or its previous
//! socket's) and its exceptions name none of them — as the live fan-out
//! would have sent it. Each carries its own offset, and a new message
//! replayed is recorded delivered, as a live one is.

use std::collections::HashSet;
use std::sync::Arc;

use confab_proto::v1::ChatEvent;
use confab_proto::v1::chat_event::Kind;
use futures::future::join_all;
use socketioxide::extract::SocketRef;

use crate::auth::Identity;
use crate::contract::Contract;
use crate::recovery::{Replay, Resuming, recent};
use crate::rooms::{audience_rooms, socket_room};
use crate::session::rooms;
use crate::state::EdgeState;

/// Restores a resumed socket's rooms and replays what it missed.
pub async fn resume(s: &SocketRef, me: &Identity, edge: &EdgeState, resuming: Resuming) {
    // Membership is checked again: a user removed meanwhile is not put back.
    let checks = join_all(
        resuming
            .session
            .conversations
            .iter()
            .map(|c| rooms::check(edge, me, c)),
    )
    .await;
    let members = checks.into_iter().filter_map(Result::ok).collect();
    let previous = socket_room(&resuming.session.sid);
    let replayed = rooms::restore(edge, s, me, members, |log| {
        let mut missed = resuming.missed;
        match log.after(&resuming.until) {
            Some(rest) => missed.extend(rest),
            None => {
                // The log started over since (a gap in this edge's stream,
                // which is counted and logged where it happened).
                metrics::counter!("confab_sessions_replay_incomplete_total").increment(1);
                tracing::warn!(sid = %s.id, "a resumed session's replay is incomplete");
            }
        }
        let epoch = recent::parse(&resuming.until).map_or("", |(e, _)| e);
        let mut delivered = Vec::new();
        for event in &missed {
            let offset = recent::offset(epoch, event.seq);
            let reached = Replay::to(s, event, Some(&offset), Some(&previous));
            if let (true, Some(Kind::MessageCreated(m))) = (reached, &event.kind) {
                delivered.push(m.clone());
            }
        }
        metrics::counter!("confab_sessions_replayed_events_total").increment(missed.len() as u64);
        delivered
    })
    .await;
    edge.deliveries.record_for(&me.user_id, &replayed).await;
}

/// The socket's [`Replay`]: `contract` renders an event, and what of it
/// names a room the socket is in (or `also`), and no exception it is in,
/// is emitted to the socket with `offset` — as the live fan-out would
/// have sent it.
pub fn replay(contract: &'static Contract) -> Replay {
    Replay(Arc::new(
        move |s: &SocketRef, event: &ChatEvent, offset: Option<&str>, also: Option<&str>| {
            let mut mine: HashSet<String> = s.rooms().iter().map(|r| r.to_string()).collect();
            mine.extend(also.map(str::to_string));
            // A renderer emits only to the event's audience rooms (or a
            // socket of one of its users, which is in its user's room): an
            // event none of whose rooms the socket is in is not rendered.
            if !audience_rooms(event.audience.as_ref())
                .iter()
                .any(|r| mine.contains(r))
            {
                return false;
            }
            let mut reached = false;
            for e in (contract.chat_event)(event) {
                if e.rooms.iter().any(|r| mine.contains(r))
                    && !e.except.iter().any(|r| mine.contains(r))
                {
                    let sent = match offset {
                        Some(offset) => s.emit(e.event, &(&e.data, offset)),
                        None => s.emit(e.event, &e.data),
                    };
                    reached |= sent.is_ok();
                }
            }
            reached
        },
    ))
}
