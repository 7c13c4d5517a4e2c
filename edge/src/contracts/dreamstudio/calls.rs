//! `dreamstudio` calls: seed 004's Call Events on call-service's room calls.
//!
//! | seed event | direction | confab |
//! |---|---|---|
//! | `call:initiated {callType, roomId}` | c→s | `InitiateCall` with `group_call`: every other member of the room is rung (the caller must be a member); `callType` `AUDIO` or `VIDEO` (any case; default `AUDIO`); the seed's `initiatedBy` is ignored (the token decides) |
//! | `call:initiated {callId, callType, initiatedBy, roomId, timestamp}` | s→c | `call_initiated`, to every socket of every member the call rings and of the caller |
//! | `call:answered {callId, roomId}` | c→s | `AnswerCall` from this socket (its signaling then goes to it alone); each member who answers gets a participant record with when they joined |
//! | `call:answered {callId, answeredBy, roomId, timestamp}` | s→c | to every socket of the call's participants, so the answerer's other tabs stop ringing |
//! | `call:ended {callId, roomId}` | c→s | `Hangup`, decided by call-service from the call's state: one in the call ends it (the caller, or the last two in it, end it for everyone; anyone else leaves it and it goes on); a ringing one, or one still ringing for this callee, is cancelled by the caller and declined by a callee (a call nobody answered is rejected once every callee has) |
//! | `call:ended {callId, endedBy, reason, duration, roomId}` | s→c | every end (hung up, `cancelled`, `rejected`, `missed` after the ring timeout, `timeout` after the maximum duration, `participant_disconnected` after the disconnect grace) to every socket of the participants; `endedBy` is `"system"` for the timers; `duration` in whole seconds from the first answer. Also, to one participant's sockets alone, when that participant is out of a call that goes on for the others (below) |
//!
//! Beyond the seed (it has no signaling events; a frontend on it needs some
//! to connect peers), colon-named like its own:
//!
//! | event | direction | confab |
//! |---|---|---|
//! | `call:offer {callId, to?, offer}`, `call:answer {callId, to?, answer}`, `call:ice-candidate {callId, to?, candidate}` | c→s | `Signal` to `to` (every other participant when absent), refused unless sender and target are in the call |
//! | `call:offer {callId, from, offer}`, `call:answer {callId, from, answer}`, `call:ice-candidate {callId, from, candidate}` | s→c | to the target's answering socket (every socket before it answered), the SDP or candidate exactly as sent |
//! | `call:left {callId, userId, reason, roomId, timestamp}` | s→c | `participant_left`: one participant is out of a room call that goes on; to every socket of everyone still in it or still rung |
//!
//! Choices where the seed is vague:
//! - The seed broadcasts to `room:<roomId>` (the sockets that joined the
//!   room); confab rings every socket of every member, joined or not, as a
//!   call must ring on a member's every tab.
//! - `roomId` in `call:answered` / `call:ended` is optional and not trusted:
//!   the call decides. Every server event carries the call's `roomId`.
//! - Refusals are the seed's `error` string with `{code, message}` (and,
//!   with an ack, `{success: false, error, code}`): `User is busy`
//!   (`USER_BUSY`) when the caller is already in an ongoing call, or a
//!   callee answering is; `Too many calls, try again later` (`RATE_LIMITED`,
//!   with `retryAfter` in seconds in the second argument) for the sixth call
//!   start in a minute; `Not a member of this room` (`NOT_A_MEMBER`);
//!   `Not authorized` (`PERMISSION_DENIED`) for a call the sender is not
//!   in; `Call not found` (`NOT_FOUND`); for a call in the wrong state
//!   (`CONFLICT` with the call's state in the refusal) `Call is <state>`,
//!   for any other `CONFLICT` the service's reason with a capital letter
//!   (`The call was already answered` for a second tab answering).
//! - One participant out of a room call that goes on for the others —
//!   who left it (`call:ended` while in it, not the caller, three or more
//!   in it), declined it (`call:ended` while it still rang for them, before
//!   or after others answered) or dropped past the disconnect grace — is
//!   told in the seed's own words, and only them: `call:ended {callId,
//!   endedBy, reason, duration, roomId}` on every socket of theirs, with
//!   `reason` `left`, `declined` or `participant_disconnected`, `endedBy`
//!   them (`"system"` for the grace) and `duration` their own whole seconds
//!   in the call. A frontend on the seed closes the call on `call:ended`,
//!   so the others must not get it while the call goes on: they get
//!   `call:left` (beyond the seed, named like its `member:left`) to drop
//!   that participant's tile, and a frontend that ignores it keeps its
//!   call. The record keeps when each one left.

use confab_proto::v1::{
    Call, CallActionRequest, CallEvent, CallMedia, InitiateCallRequest, ParticipantLeft,
    SignalKind, call_event::Kind,
};
use confab_proto::{ErrorCode, ServiceError};
use serde::Deserialize;
use serde_json::{Value, json};
use socketioxide::extract::{SocketRef, State};

use super::refused_with;
use crate::contract::Emit;
use crate::contract::me::Me;
use crate::contract::payload::Payload;
use crate::contract::reply::Reply;
use crate::rooms::{call_rooms, user_room};
use crate::session::calls::{self, CallRef, SignalBody};
use crate::state::EdgeState;
use crate::wire::{WireId, iso, numeric_id};

pub(super) fn on_connect(s: &SocketRef) {
    s.on("call:initiated", initiate);
    s.on("call:answered", answered);
    s.on("call:ended", ended);
    s.on("call:offer", |s, p, edge, me, reply| {
        signal(s, p, edge, me, reply, SignalKind::Offer)
    });
    s.on("call:answer", |s, p, edge, me, reply| {
        signal(s, p, edge, me, reply, SignalKind::Answer)
    });
    s.on("call:ice-candidate", |s, p, edge, me, reply| {
        signal(s, p, edge, me, reply, SignalKind::IceCandidate)
    });
}

/// A call refusal in the seed's words and its code (module doc): the
/// seed's string for people, and the stable code beside it.
pub(super) fn refusal_text(e: &ServiceError) -> (String, &'static str) {
    match e.code {
        ErrorCode::LimitExceeded => (
            "Too many calls, try again later".to_string(),
            "RATE_LIMITED",
        ),
        ErrorCode::UserBusy => ("User is busy".to_string(), "USER_BUSY"),
        ErrorCode::Conflict => (conflict_text(e), "CONFLICT"),
        ErrorCode::NotFound => ("Call not found".to_string(), "NOT_FOUND"),
        _ => (
            refused_with(e.clone(), "Not authorized").text,
            e.code.as_str(),
        ),
    }
}

/// A refusal by the call's state, for people: `Call is ended` when the
/// call's state is why (it comes as data); else the service's reason with a
/// capital letter (`The call was already answered`).
fn conflict_text(e: &ServiceError) -> String {
    if !e.state.is_empty() {
        return format!("Call is {}", e.state);
    }
    let mut chars = e.message.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => "Call cannot change now".to_string(),
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Initiate {
    room_id: WireId,
    #[serde(default)]
    call_type: Option<String>,
}

async fn initiate(
    s: SocketRef,
    State(edge): State<EdgeState>,
    Me(me): Me,
    Payload(p): Payload<Initiate>,
    reply: Reply,
) {
    let media = match p
        .call_type
        .as_deref()
        .unwrap_or("AUDIO")
        .to_ascii_uppercase()
        .as_str()
    {
        "AUDIO" | "VOICE" => CallMedia::Audio,
        "VIDEO" => CallMedia::Video,
        _ => return reply.fail(ServiceError::invalid("callType must be AUDIO or VIDEO")),
    };
    let result = edge
        .call
        .clone()
        .initiate_call(InitiateCallRequest {
            actor: Some(me.actor()),
            conversation_id: p.room_id.0,
            group_call: true,
            media: media as i32,
            session_id: s.id.to_string(),
            ..Default::default()
        })
        .await
        .map_err(ServiceError::from);
    reply.send(result.map(|c| {
        let c = c.into_inner();
        json!({ "callId": numeric_id(&c.id), "roomId": numeric_id(&c.conversation_id) })
    }));
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CallId {
    call_id: WireId,
}

async fn answered(
    s: SocketRef,
    State(edge): State<EdgeState>,
    Me(me): Me,
    Payload(p): Payload<CallId>,
    reply: Reply,
) {
    let result = edge
        .call
        .clone()
        .answer_call(CallActionRequest {
            actor: Some(me.actor()),
            call_id: p.call_id.0,
            session_id: s.id.to_string(),
            ..Default::default()
        })
        .await
        .map_err(ServiceError::from);
    reply.send(result.map(|c| json!({ "callId": numeric_id(&c.into_inner().id) })));
}

/// `call:ended`: call-service decides — end or leave it when ongoing; while
/// it rings, the caller cancels and a callee declines.
async fn ended(
    s: SocketRef,
    State(edge): State<EdgeState>,
    Me(me): Me,
    Payload(p): Payload<CallId>,
    reply: Reply,
) {
    let call = CallRef {
        call_id: p.call_id.0,
        ..Default::default()
    };
    let result = calls::hang_up(&edge, &s, &me, call, String::new()).await;
    reply.send(result.map(|c| json!({ "callId": numeric_id(&c.id) })));
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SignalIn {
    call_id: WireId,
    #[serde(default)]
    to: Option<WireId>,
    #[serde(flatten)]
    body: SignalBody,
}

async fn signal(
    s: SocketRef,
    State(edge): State<EdgeState>,
    Me(me): Me,
    Payload(p): Payload<SignalIn>,
    reply: Reply,
    kind: SignalKind,
) {
    let call = CallRef {
        call_id: p.call_id.0,
        peer_user_id: p.to.map(|t| t.0).unwrap_or_default(),
    };
    let result = calls::relay(&edge, &s, &me, call, kind, p.body).await;
    reply.send(result.map(|_| json!({})));
}

// ---- rendering -----------------------------------------------------------------

fn call_type(c: &Call) -> &'static str {
    if c.media == CallMedia::Video as i32 {
        "VIDEO"
    } else {
        "AUDIO"
    }
}

pub(super) fn call_event(ev: &CallEvent) -> Vec<Emit> {
    let everyone = call_rooms(ev.audience.as_ref());
    let by = numeric_id(&ev.actor_id);
    match &ev.kind {
        Some(Kind::CallInitiated(c)) => vec![Emit::to(
            everyone,
            "call:initiated",
            json!({
                "callId": numeric_id(&c.id),
                "callType": call_type(c),
                "initiatedBy": numeric_id(&c.caller_id),
                "roomId": numeric_id(&c.conversation_id),
                "timestamp": iso(c.created_at_ms),
            }),
        )],
        Some(Kind::CallAnswered(c)) => {
            let at = c
                .participants
                .iter()
                .find(|p| p.user_id == ev.actor_id)
                .map_or(c.answered_at_ms, |p| p.joined_at_ms);
            vec![Emit::to(
                everyone,
                "call:answered",
                json!({
                    "callId": numeric_id(&c.id),
                    "answeredBy": by,
                    "roomId": numeric_id(&c.conversation_id),
                    "timestamp": iso(at),
                }),
            )]
        }
        Some(
            Kind::CallRejected(c)
            | Kind::CallCancelled(c)
            | Kind::CallMissed(c)
            | Kind::CallEnded(c),
        ) => vec![Emit::to(
            everyone,
            "call:ended",
            json!({
                "callId": numeric_id(&c.id),
                "endedBy": by,
                "reason": c.end_reason,
                "duration": (c.duration_ms + 500) / 1000,
                "roomId": numeric_id(&c.conversation_id),
            }),
        )],
        Some(Kind::Signal(sig)) => {
            let kind = SignalKind::try_from(sig.kind).unwrap_or_default();
            let event = match kind {
                SignalKind::Offer => "call:offer",
                SignalKind::Answer => "call:answer",
                _ => "call:ice-candidate",
            };
            let mut payload = json!({
                "callId": numeric_id(&sig.call_id),
                "from": numeric_id(&sig.from_user_id),
            });
            payload[SignalBody::field(kind)] =
                serde_json::from_str(&sig.payload_json).unwrap_or(Value::Null);
            vec![Emit::to(everyone, event, payload)]
        }
        Some(Kind::ParticipantLeft(l)) => participant_left(l, by),
        // The seed has no call controls.
        Some(Kind::ControlsChanged(_)) | None => Vec::new(),
    }
}

/// One participant out of a room call that goes on (module doc): the
/// call ended for them (`call:ended` on their own sockets, so their other
/// tabs stop ringing or close the call), and `call:left` for everyone still
/// in it or still rung.
fn participant_left(l: &ParticipantLeft, by: Value) -> Vec<Emit> {
    let Some(c) = &l.call else {
        return Vec::new();
    };
    let who = c.participants.iter().find(|p| p.user_id == l.user_id);
    let left_at = who.map_or(0, |p| p.left_at_ms);
    let in_call_ms = who
        .filter(|p| p.joined_at_ms > 0 && p.left_at_ms > 0)
        .map_or(0, |p| (p.left_at_ms - p.joined_at_ms).max(0));
    let others: Vec<String> = c
        .participants
        .iter()
        .filter(|p| p.user_id != l.user_id && p.left_at_ms == 0)
        .map(|p| user_room(&p.user_id))
        .collect();
    vec![
        Emit::to(
            vec![user_room(&l.user_id)],
            "call:ended",
            json!({
                "callId": numeric_id(&c.id),
                "endedBy": by,
                "reason": l.reason,
                "duration": (in_call_ms + 500) / 1000,
                "roomId": numeric_id(&c.conversation_id),
            }),
        ),
        Emit::to(
            others,
            "call:left",
            json!({
                "callId": numeric_id(&c.id),
                "userId": numeric_id(&l.user_id),
                "reason": l.reason,
                "roomId": numeric_id(&c.conversation_id),
                "timestamp": iso(left_at),
            }),
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use confab_proto::v1::{Audience, Signal};

    fn event(kind: Kind, sessions: &[&str]) -> CallEvent {
        CallEvent {
            audience: Some(Audience {
                user_ids: vec!["100001".into(), "100002".into()],
                session_ids: sessions.iter().map(|s| s.to_string()).collect(),
                ..Default::default()
            }),
            actor_id: "100001".into(),
            kind: Some(kind),
            ..Default::default()
        }
    }

    #[test]
    fn room_calls_render_in_the_seed_shape() {
        let c = Call {
            id: "5".into(),
            caller_id: "100001".into(),
            conversation_id: "3".into(),
            media: CallMedia::Video as i32,
            created_at_ms: 1_700_000_000_000,
            group_call: true,
            ..Default::default()
        };
        let out = call_event(&event(Kind::CallInitiated(c.clone()), &[]));
        assert_eq!(out[0].event, "call:initiated");
        assert_eq!(out[0].rooms, vec!["user:100001", "user:100002"]);
        assert_eq!(
            out[0].data,
            json!({"callId": 5, "callType": "VIDEO", "initiatedBy": 100001, "roomId": 3,
                   "timestamp": "2023-11-14T22:13:20.000Z"})
        );
        let ended = Call {
            end_reason: "user_ended".into(),
            duration_ms: 2_400,
            ..c
        };
        let out = call_event(&event(Kind::CallEnded(ended), &[]));
        assert_eq!(
            out[0].data,
            json!({"callId": 5, "endedBy": 100001, "reason": "user_ended", "duration": 2, "roomId": 3})
        );
    }

    #[test]
    fn one_leaving_a_room_call_ends_it_for_them_and_tells_the_rest() {
        use confab_proto::v1::Participant;
        let part = |id: &str, joined: i64, left: i64| Participant {
            user_id: id.into(),
            joined_at_ms: joined,
            left_at_ms: left,
            ..Default::default()
        };
        let c = Call {
            id: "5".into(),
            conversation_id: "3".into(),
            group_call: true,
            participants: vec![
                part("100001", 1_700_000_000_000, 0),
                part("100002", 1_700_000_001_000, 1_700_000_004_000),
                part("100003", 0, 0),
                part("100004", 0, 1_700_000_000_500),
            ],
            ..Default::default()
        };
        let l = ParticipantLeft {
            call: Some(c),
            user_id: "100002".into(),
            reason: "left".into(),
        };
        let out = participant_left(&l, json!(100002));
        assert_eq!(out[0].event, "call:ended");
        assert_eq!(out[0].rooms, vec!["user:100002"]);
        assert_eq!(
            out[0].data,
            json!({"callId": 5, "endedBy": 100002, "reason": "left", "duration": 3, "roomId": 3})
        );
        assert_eq!(out[1].event, "call:left");
        // Still in it or still rung; not whoever declined before.
        assert_eq!(out[1].rooms, vec!["user:100001", "user:100003"]);
        assert_eq!(
            out[1].data,
            json!({"callId": 5, "userId": 100002, "reason": "left", "roomId": 3,
                   "timestamp": "2023-11-14T22:13:24.000Z"})
        );
    }

    #[test]
    fn conflicts_read_for_people() {
        let state = ServiceError::conflict_in("ended", "only an ongoing call can be ended");
        assert_eq!(conflict_text(&state), "Call is ended");
        let conflict = |m: &str| ServiceError::new(ErrorCode::Conflict, m);
        assert_eq!(
            conflict_text(&conflict("the call was already answered")),
            "The call was already answered"
        );
        assert_eq!(conflict_text(&conflict("")), "Call cannot change now");
    }

    #[test]
    fn signals_go_to_the_answering_socket() {
        let sig = Signal {
            call_id: "5".into(),
            from_user_id: "100001".into(),
            kind: SignalKind::Offer as i32,
            payload_json: r#"{"type":"offer"}"#.into(),
            call: None,
        };
        let out = call_event(&event(Kind::Signal(sig), &["sb"]));
        assert_eq!(out[0].event, "call:offer");
        assert_eq!(out[0].rooms, vec!["socket:sb"]);
        assert_eq!(
            out[0].data,
            json!({"callId": 5, "from": 100001, "offer": {"type": "offer"}})
        );
    }
}
