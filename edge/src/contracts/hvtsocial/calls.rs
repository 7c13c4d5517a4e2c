//! `hvtsocial` calls: seed 000's Video Call Events on call-service.
//!
//! | seed event | direction | confab |
//! |---|---|---|
//! | `call_user {to, offer, isVideo, callerName, callerAvatar, chatId}` | c→s | `InitiateCall` to `to` (`chatId`, when sent, must be a chat both are in; else their direct chat is found), `offer` stored and relayed with the ring; `callerName`/`callerAvatar` come from the token, not the payload. Within an ongoing call with `to`, from the socket in it: a renegotiation offer (`Signal`, below) |
//! | `incoming_call {from, offer, isVideo, callerName, callerAvatar, chatId, callId}` | s→c | `call_initiated`, to every socket of the callee; `offer` is `null` when the caller (on another contract) sent none with the ring. The caller's offer relayed while the call still rings for the callee (`Signal` with the call: a `v3` caller sends its `webrtc_offer` after the ring) is this full ring again, with the offer. A renegotiation offer within the ongoing call is `incoming_call {from, offer, callId}` to the socket in the call |
//! | `answer_call {to, answer}` | c→s | `AnswerCall` of the ringing call from `to`, from this socket (its signaling then goes to this socket alone), with `answer`. Within an ongoing call with `to`, from the socket in it: the answer to a renegotiation offer (`Signal`) |
//! | `call_answered {from, answer, callId}` | s→c | to the caller, when the answer carries SDP; the callee's *other* sockets get `call_ended {reason: 'answered_elsewhere'}` instead, so they stop ringing |
//! | `ice_candidate {to, candidate}` | c→s | `Signal` (ICE) to `to` in the live call between the two, refused unless both are in it |
//! | `ice_candidate {from, candidate, callId}` | s→c | to `to`'s answering socket (every socket before it answered), the candidate exactly as sent |
//! | `end_call {to}` | c→s | `Hangup` of the live call with `to`: call-service ends it when ongoing; while ringing, cancels it for the caller and rejects it for the callee |
//! | `call_ended {from, callId, reason}` and `end_call {from, callId}` | s→c | every end (hung up, cancelled, rejected, missed after the ring timeout, `timeout` after the maximum duration, `participant_disconnected` after the disconnect grace), to every socket of both parties; `from` is who ended it, `"system"` for the timers |
//!
//! Choices where the seed is vague:
//! - The seed has no call id: a request names the other user (`to`) and
//!   call-service finds the one live call between the two. Every payload may
//!   also carry `callId` (a confab addition, sent with every server event),
//!   which then decides.
//! - Renegotiation: the seed's only events carrying SDP are `call_user`
//!   and `answer_call`, so a frontend that renegotiates mid-call (turning
//!   video on, an ICE restart) sends its new offer as `call_user` and the
//!   answer as `answer_call`. When sender and `to` are both in an ongoing
//!   call and the sender's socket is the one in it, call-service relays
//!   these as signaling in that call (`Signal` with `renegotiation`): the
//!   peer's socket in the call gets `incoming_call {from, offer, callId}`
//!   (the `callId` of the call in progress, no caller name: not a new
//!   ring) and then `call_answered {from, answer, callId}`; the ack is
//!   `{success, data: {callId}}`. No new call starts and the call's state
//!   does not change. Anything else (no ongoing call between the two,
//!   another tab of a participant) is a call start or answer as before,
//!   refused as before (`USER_BUSY`, `CONFLICT`).
//! - SDP and ICE from a peer on another contract: the caller's offer sent
//!   after the ring (a `v3` caller sends its `webrtc_offer` on its own)
//!   reaches a callee who has not answered as the full ring — `incoming_call
//!   {from, offer, isVideo, callerName, callerAvatar, chatId, callId}`, the
//!   seed's one event carrying an offer, which the seed's frontend takes
//!   for the ring wherever it comes from (so the call shows with its media
//!   and caller) — and, once the call is ongoing, as the renegotiation form
//!   `incoming_call {from, offer, callId}`; an answer arrives as
//!   `call_answered {from, answer, callId}`. A `v3` peer gets this
//!   contract's `offer` and `answer` as `webrtc_offer_received` /
//!   `webrtc_answer_received`.
//! - Refusals are `error {code, message, event}` (and, with an ack,
//!   `{success: false, error: {code, message}}`): `USER_BUSY` when the
//!   caller or callee is already in an ongoing call; `RATE_LIMITED` with
//!   `retryAfter` (seconds) for the sixth call start in a minute;
//!   `PERMISSION_DENIED` when the two share no chat, or for a `callId`
//!   the sender is not in; `NOT_FOUND` when there is no live call with
//!   `to` (so a signal to someone you are not calling is refused and
//!   forwarded to nobody); `CONFLICT` for a call in the wrong state (a
//!   second tab answering an answered call); `INVALID_ARGUMENT` for a
//!   malformed payload. The connection stays up.
//! - Call controls (mute, video, screen share) have no event in the seed and
//!   are not rendered here.
//! - A room call started on `dreamstudio` also rings hvtsocial members;
//!   when one of them is out of it while it goes on (left, declined,
//!   dropped), their own sockets get `call_ended` / `end_call` with that
//!   `reason`; the seed has no event for the others.

use confab_proto::ServiceError;
use confab_proto::v1::{
    Call, CallActionRequest, CallEvent, CallMedia, InitiateCallRequest, SignalKind,
    call_event::Kind,
};
use serde::Deserialize;
use serde_json::{Value, json};
use socketioxide::extract::{SocketRef, State};

use crate::auth::Identity;
use crate::contract::Emit;
use crate::contract::me::Me;
use crate::contract::payload::Payload;
use crate::contract::reply::Reply;
use crate::rooms::{call_rooms, socket_room, user_room};
use crate::session::calls::{self, CallRef, SignalBody};
use crate::state::EdgeState;
use crate::wire::{WireId, numeric_id};

/// The call events; their refusals say `RATE_LIMITED` where a message's
/// says `LIMIT_EXCEEDED` (module doc).
pub(super) const EVENTS: [&str; 4] = ["call_user", "answer_call", "ice_candidate", "end_call"];

pub(super) fn on_connect(s: &SocketRef) {
    s.on("call_user", call_user);
    s.on("answer_call", answer_call);
    s.on("ice_candidate", ice_candidate);
    s.on("end_call", end_call);
}

fn call_id(c: Option<WireId>) -> String {
    c.map(|c| c.0).unwrap_or_default()
}

/// A JSON value that is there and not `null`.
fn present(v: Option<Value>) -> Option<Value> {
    v.filter(|v| !v.is_null())
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CallUser {
    to: WireId,
    #[serde(default)]
    offer: Option<Value>,
    #[serde(default)]
    is_video: Option<bool>,
    #[serde(default)]
    chat_id: Option<WireId>,
}

async fn call_user(
    s: SocketRef,
    State(edge): State<EdgeState>,
    Me(me): Me,
    Payload(p): Payload<CallUser>,
    reply: Reply,
) {
    let offer = present(p.offer);
    // An offer to someone already in an ongoing call with this user
    // renegotiates that call (module doc).
    if let Some(offer) = &offer
        && let Some(id) = renegotiate(
            &edge,
            &me,
            &s,
            &p.to,
            String::new(),
            SignalKind::Offer,
            offer,
        )
        .await
    {
        return reply.ok(json!({ "callId": numeric_id(&id) }));
    }
    let req = InitiateCallRequest {
        actor: Some(me.actor()),
        callee_ids: vec![p.to.0],
        conversation_id: call_id(p.chat_id),
        media: if p.is_video.unwrap_or(false) {
            CallMedia::Video
        } else {
            CallMedia::Audio
        } as i32,
        sdp_offer: offer.map(|o| o.to_string()).unwrap_or_default(),
        session_id: s.id.to_string(),
        ..Default::default()
    };
    let result = edge
        .call
        .clone()
        .initiate_call(req)
        .await
        .map_err(ServiceError::from);
    reply.send(result.map(|c| json!({ "callId": numeric_id(&c.into_inner().id) })));
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct AnswerCall {
    to: WireId,
    #[serde(default)]
    answer: Option<Value>,
    #[serde(default)]
    call_id: Option<WireId>,
}

async fn answer_call(
    s: SocketRef,
    State(edge): State<EdgeState>,
    Me(me): Me,
    Payload(p): Payload<AnswerCall>,
    reply: Reply,
) {
    let sdp = present(p.answer);
    // The answer to a renegotiation offer within an ongoing call
    // (module doc).
    if let Some(sdp) = &sdp
        && let Some(id) = renegotiate(
            &edge,
            &me,
            &s,
            &p.to,
            call_id(p.call_id.clone()),
            SignalKind::Answer,
            sdp,
        )
        .await
    {
        return reply.ok(json!({ "callId": numeric_id(&id) }));
    }
    let result = edge
        .call
        .clone()
        .answer_call(CallActionRequest {
            actor: Some(me.actor()),
            call_id: call_id(p.call_id),
            peer_user_id: p.to.0,
            sdp: sdp.map(|a| a.to_string()).unwrap_or_default(),
            session_id: s.id.to_string(),
            ..Default::default()
        })
        .await
        .map_err(ServiceError::from);
    reply.send(result.map(|c| json!({ "callId": numeric_id(&c.into_inner().id) })));
}

/// Relays `sdp` as a renegotiation `kind` within the ongoing call between
/// this socket's user and `to`; the call's id when call-service took it,
/// `None` when there is no such call (the request is then a call start or
/// answer, and reports its own refusal).
async fn renegotiate(
    edge: &EdgeState,
    me: &Identity,
    s: &SocketRef,
    to: &WireId,
    call_id: String,
    kind: SignalKind,
    sdp: &Value,
) -> Option<String> {
    let call = CallRef {
        call_id,
        peer_user_id: to.0.clone(),
    };
    calls::renegotiate(edge, s, me, call, kind, sdp).await
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct IceCandidate {
    to: WireId,
    #[serde(flatten)]
    body: SignalBody,
    #[serde(default)]
    call_id: Option<WireId>,
}

async fn ice_candidate(
    s: SocketRef,
    State(edge): State<EdgeState>,
    Me(me): Me,
    Payload(p): Payload<IceCandidate>,
    reply: Reply,
) {
    let call = CallRef {
        call_id: call_id(p.call_id),
        peer_user_id: p.to.0,
    };
    let result = calls::relay(&edge, &s, &me, call, SignalKind::IceCandidate, p.body).await;
    reply.send(result.map(|_| json!({})));
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct EndCall {
    to: WireId,
    #[serde(default)]
    call_id: Option<WireId>,
}

/// `end_call`: call-service decides — end, cancel or reject, by the call's
/// state.
async fn end_call(
    s: SocketRef,
    State(edge): State<EdgeState>,
    Me(me): Me,
    Payload(p): Payload<EndCall>,
    reply: Reply,
) {
    let call = CallRef {
        call_id: call_id(p.call_id),
        peer_user_id: p.to.0,
    };
    let result = calls::hang_up(&edge, &s, &me, call, String::new()).await;
    reply.send(result.map(|c| json!({ "callId": numeric_id(&c.id) })));
}

// ---- rendering -----------------------------------------------------------------

/// SDP or a candidate as the peer sent it (JSON text), `null` when none.
fn parsed(json_text: &str) -> Value {
    if json_text.is_empty() {
        return Value::Null;
    }
    serde_json::from_str(json_text).unwrap_or_else(|_| Value::from(json_text))
}

fn users_except(c: &Call, but: &str) -> Vec<String> {
    c.participants
        .iter()
        .filter(|p| p.user_id != but)
        .map(|p| user_room(&p.user_id))
        .collect()
}

/// The seed's ring, `incoming_call {from, offer, isVideo, callerName,
/// callerAvatar, chatId?, callId}`.
fn ring(c: &Call, offer: Value) -> Value {
    let mut ring = json!({
        "from": numeric_id(&c.caller_id),
        "offer": offer,
        "isVideo": c.media == CallMedia::Video as i32,
        "callerName": c.caller_name,
        "callerAvatar": c.caller_avatar,
        "callId": numeric_id(&c.id),
    });
    if !c.conversation_id.is_empty() {
        ring["chatId"] = numeric_id(&c.conversation_id);
    }
    ring
}

/// Whether `c` still rings for `user`: a callee who has neither answered
/// nor left it.
fn rings_for(c: &Call, user: &str) -> bool {
    user != c.caller_id
        && c.participants
            .iter()
            .any(|p| p.user_id == user && p.joined_at_ms == 0 && p.left_at_ms == 0)
}

pub(super) fn call_event(ev: &CallEvent) -> Vec<Emit> {
    let by = ev.actor_id.as_str();
    match &ev.kind {
        Some(Kind::CallInitiated(c)) => vec![Emit::to(
            users_except(c, &c.caller_id),
            "incoming_call",
            ring(c, parsed(&c.sdp_offer)),
        )],
        Some(Kind::CallAnswered(c)) => {
            let mut out = Vec::new();
            if !c.sdp_answer.is_empty() {
                out.push(Emit::to(
                    users_except(c, by),
                    "call_answered",
                    json!({
                        "from": numeric_id(by),
                        "answer": parsed(&c.sdp_answer),
                        "callId": numeric_id(&c.id),
                    }),
                ));
            }
            // The answerer's other sockets stop ringing.
            let answering = c
                .participants
                .iter()
                .find(|p| p.user_id == by)
                .map(|p| p.session_id.as_str())
                .unwrap_or_default();
            if !answering.is_empty() {
                out.push(Emit {
                    rooms: vec![user_room(by)],
                    except: vec![socket_room(answering)],
                    event: "call_ended",
                    data: json!({
                        "from": numeric_id(by),
                        "callId": numeric_id(&c.id),
                        "reason": "answered_elsewhere",
                    }),
                });
            }
            out
        }
        Some(
            Kind::CallRejected(c)
            | Kind::CallCancelled(c)
            | Kind::CallMissed(c)
            | Kind::CallEnded(c),
        ) => {
            let everyone = call_rooms(ev.audience.as_ref());
            let reason = if c.end_reason.is_empty() {
                "ended"
            } else {
                c.end_reason.as_str()
            };
            vec![
                Emit::to(
                    everyone.clone(),
                    "call_ended",
                    json!({ "from": numeric_id(by), "callId": numeric_id(&c.id), "reason": reason }),
                ),
                Emit::to(
                    everyone,
                    "end_call",
                    json!({ "from": numeric_id(by), "callId": numeric_id(&c.id) }),
                ),
            ]
        }
        Some(Kind::Signal(sig)) => {
            let rooms = call_rooms(ev.audience.as_ref());
            // The caller's offer to a callee the call still rings for (a
            // peer on another contract sends it after the ring): the ring
            // again, now with the offer, as the seed's frontend reads every
            // incoming_call. Within the ongoing call: a renegotiation.
            let to = ev.audience.as_ref().map(|a| a.user_ids.as_slice());
            if let Some(c) = &sig.call
                && sig.kind == SignalKind::Offer as i32
                && sig.from_user_id == c.caller_id
                && to.is_some_and(|to| !to.is_empty() && to.iter().all(|u| rings_for(c, u)))
            {
                let payload = ring(c, parsed(&sig.payload_json));
                return vec![Emit::to(rooms, "incoming_call", payload)];
            }
            let (event, field) = match SignalKind::try_from(sig.kind).unwrap_or_default() {
                SignalKind::Offer => ("incoming_call", "offer"),
                SignalKind::Answer => ("call_answered", "answer"),
                _ => ("ice_candidate", "candidate"),
            };
            let mut payload = json!({
                "from": numeric_id(&sig.from_user_id),
                "callId": numeric_id(&sig.call_id),
            });
            payload[field] = parsed(&sig.payload_json);
            vec![Emit::to(rooms, event, payload)]
        }
        // Out of a room call (started on dreamstudio) that goes on: the
        // call ended for this user's sockets; the seed has no event for the
        // others.
        Some(Kind::ParticipantLeft(l)) => {
            let Some(c) = &l.call else {
                return Vec::new();
            };
            let mine = vec![user_room(&l.user_id)];
            vec![
                Emit::to(
                    mine.clone(),
                    "call_ended",
                    json!({ "from": numeric_id(by), "callId": numeric_id(&c.id), "reason": l.reason }),
                ),
                Emit::to(
                    mine,
                    "end_call",
                    json!({ "from": numeric_id(by), "callId": numeric_id(&c.id) }),
                ),
            ]
        }
        // The seed has no call controls.
        Some(Kind::ControlsChanged(_)) | None => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use confab_proto::v1::{Audience, Participant, Signal};

    fn call() -> Call {
        Call {
            id: "9".into(),
            caller_id: "100001".into(),
            caller_name: "Ada".into(),
            conversation_id: "7".into(),
            media: CallMedia::Video as i32,
            sdp_offer: r#"{"type":"offer","sdp":"v=0"}"#.into(),
            participants: vec![
                Participant {
                    user_id: "100001".into(),
                    session_id: "sa".into(),
                    ..Default::default()
                },
                Participant {
                    user_id: "100002".into(),
                    session_id: "sb".into(),
                    ..Default::default()
                },
            ],
            ..Default::default()
        }
    }

    fn event(actor: &str, kind: Kind) -> CallEvent {
        CallEvent {
            audience: Some(Audience {
                user_ids: vec!["100001".into(), "100002".into()],
                ..Default::default()
            }),
            actor_id: actor.into(),
            kind: Some(kind),
            ..Default::default()
        }
    }

    #[test]
    fn the_ring_carries_the_offer_to_the_callee() {
        let out = call_event(&event("100001", Kind::CallInitiated(call())));
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].event, "incoming_call");
        assert_eq!(out[0].rooms, vec!["user:100002"]);
        assert_eq!(
            out[0].data,
            json!({"from": 100001, "offer": {"type": "offer", "sdp": "v=0"}, "isVideo": true,
                   "callerName": "Ada", "callerAvatar": "", "chatId": 7, "callId": 9})
        );
    }

    #[test]
    fn an_answer_reaches_the_caller_and_stops_the_other_tabs() {
        let mut c = call();
        c.sdp_answer = r#"{"type":"answer"}"#.into();
        let out = call_event(&event("100002", Kind::CallAnswered(c.clone())));
        assert_eq!(out[0].event, "call_answered");
        assert_eq!(out[0].rooms, vec!["user:100001"]);
        assert_eq!(out[0].data["answer"], json!({"type": "answer"}));
        assert_eq!(out[1].event, "call_ended");
        assert_eq!(out[1].rooms, vec!["user:100002"]);
        assert_eq!(out[1].except, vec!["socket:sb"]);
        // No SDP (a peer on another contract): no call_answered yet.
        c.sdp_answer.clear();
        let out = call_event(&event("100002", Kind::CallAnswered(c)));
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].event, "call_ended");
    }

    #[test]
    fn ends_and_signals_in_the_seed_shape() {
        let mut c = call();
        c.end_reason = "timeout".into();
        let out = call_event(&event("system", Kind::CallEnded(c)));
        assert_eq!(
            out[0].data,
            json!({"from": "system", "callId": 9, "reason": "timeout"})
        );
        assert_eq!(out[1].event, "end_call");
        let sig = Signal {
            call_id: "9".into(),
            from_user_id: "100001".into(),
            kind: SignalKind::IceCandidate as i32,
            payload_json: r#"{"candidate":"c"}"#.into(),
            call: Some(call()),
        };
        let out = call_event(&event("100001", Kind::Signal(sig)));
        assert_eq!(out[0].event, "ice_candidate");
        assert_eq!(
            out[0].data,
            json!({"from": 100001, "callId": 9, "candidate": {"candidate": "c"}})
        );
    }

    #[test]
    fn the_callers_offer_is_the_ring_while_it_rings_and_a_renegotiation_after() {
        let offer = |c: Call, from: &str, to: &str| {
            let sig = Signal {
                call_id: "9".into(),
                from_user_id: from.into(),
                kind: SignalKind::Offer as i32,
                payload_json: r#"{"type":"offer"}"#.into(),
                call: Some(c),
            };
            let mut ev = event(from, Kind::Signal(sig));
            ev.audience.as_mut().unwrap().user_ids = vec![to.into()];
            call_event(&ev).remove(0)
        };
        let out = offer(call(), "100001", "100002");
        assert_eq!(out.event, "incoming_call");
        assert_eq!(
            out.data,
            json!({"from": 100001, "offer": {"type": "offer"}, "isVideo": true,
                   "callerName": "Ada", "callerAvatar": "", "chatId": 7, "callId": 9})
        );
        let mut ongoing = call();
        ongoing.participants[1].joined = true;
        ongoing.participants[1].joined_at_ms = 1;
        let renegotiation = json!({"from": 100001, "offer": {"type": "offer"}, "callId": 9});
        assert_eq!(offer(ongoing, "100001", "100002").data, renegotiation);
        // The callee's offer to the caller is no ring.
        let back = offer(call(), "100002", "100001");
        assert_eq!(back.data["from"], 100002);
        assert!(back.data.get("isVideo").is_none());
    }
}
