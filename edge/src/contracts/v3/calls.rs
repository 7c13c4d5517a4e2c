//! `v3` calls: CALL MANAGEMENT, WEBRTC SIGNALING, CALL CONTROLS and the
//! legacy call aliases of seed 003, on call-service.
//!
//! | seed event | direction | confab |
//! |---|---|---|
//! | `initiate_call {targetId, callType, chatid?, callId?}` + ack (legacy `call_offer`) | c→s | `InitiateCall` (`callId` is the idempotency key: a retry answers the same call); ack `{success, callId, callerId, receiverId, callType, timestamp}`; the published frontend's `receiverId` is read as `targetId` when that is absent (`mod.rs`) |
//! | `incoming_call {callId, callerId, callerName, callerAvatar, callType, chatid, timestamp}` | s→c | `call_initiated`, to every socket of the callee |
//! | `answer_call {callId, acceptsVideo}` (legacy `call_answer`) | c→s | `AnswerCall` from this socket: the call's signaling for the callee then goes to it alone; with the published frontend's `accepted: false`, `RejectCall` as `call_rejected` (`mod.rs`) |
//! | `call_answered {callId, answeredBy, acceptedVideo, timestamp}` | s→c | to every socket of both parties, so the callee's other tabs stop ringing |
//! | `call_rejected {callId, reason?}` (legacy `decline_call`, `call_reject`) | c→s | `RejectCall` by the callee |
//! | `call_rejected {callId, rejectedBy, timestamp}` | s→c | to the caller (and the callee's other tabs) |
//! | `call_cancelled {callId}` (legacy `cancel_call`) | c→s | `CancelCall` by the caller before an answer |
//! | `end_call {callId, reason?}` (legacy `call_end`) | c→s | `Hangup`: call-service decides by the call's state — an ongoing call ends (`reason` default `user_ended`), a ringing one is cancelled by its caller or declined by the callee, as a hang-up button does |
//! | `call_ended {callId, endedBy, reason, duration, timestamp}` | s→c | to both parties; `endedBy` is `system` for the timers (`timeout` after the maximum duration, `participant_disconnected` after the disconnect grace); `duration` in whole seconds from the answer |
//! | `call_missed {callId, callerId, timestamp}` | s→c | the ring timeout, to the caller and the callee |
//! | `webrtc_offer` / `webrtc_answer` / `webrtc_ice_candidate {callId, targetId, offer\|answer\|candidate}` (legacy `ice_candidate`) | c→s | `Signal` to `targetId`, refused unless both are in the call |
//! | `webrtc_offer_received` / `webrtc_answer_received` / `webrtc_ice_candidate_received {callId, fromId, …}` | s→c | to the target's answering socket (every socket before it answered); the SDP or candidate object exactly as sent |
//! | `webrtc_offer_received` / `webrtc_answer_received` from a peer on `hvtsocial` | s→c | that contract sends its offer with the ring (`call_user`) and its answer with the answer (`answer_call`): the callee gets `webrtc_offer_received` right after `incoming_call`, the caller's calling socket `webrtc_answer_received` right after `call_answered` |
//! | `toggle_mute {callId, muted}`, `toggle_video {callId, videoEnabled}`, `toggle_screen_share {callId, screenSharing}` | c→s | `UpdateControls` |
//! | `participant_muted {callId, profileid, muted, timestamp}`, `participant_video_toggled {…, videoEnabled, …}`, `participant_screen_share_toggled {…, screenSharing, …}` | s→c | to every socket of the call's participants |
//!
//! Choices where the seed is vague:
//! - A cancelled call (the caller hung up before an answer, or its socket
//!   stayed away past the grace) is `call_ended` with `reason: cancelled`
//!   (or `participant_disconnected`) to both: the seed has no cancellation
//!   event for the callee.
//! - Refusals: a client that passed an ack gets `{success: false, error,
//!   code}` (`error` the message, `code` the stable code); otherwise the
//!   socket gets `error {error, code, message, details: {event}}`. A
//!   callee (or caller) already in an ongoing call is `code: USER_BUSY`.
//!   The sixth call start in a minute is `rate_limited {error:
//!   'rate_limited', message, retryAfter}` (seconds) and, with an ack,
//!   `{success: false, error, code: 'RATE_LIMITED', retryAfter}`. Signals,
//!   answers or controls from someone not in the call are
//!   `PERMISSION_DENIED` and nothing is forwarded; a call in the wrong
//!   state is `CONFLICT`; an unknown call is `NOT_FOUND`.
//! - `callType` is `voice` or `video` both ways (`audio` is read as voice).
//! - A room call started on `dreamstudio` also rings v3 members; when one
//!   of them is out of it while it goes on (left, declined, dropped past
//!   the grace), their own sockets get `call_ended {callId, endedBy,
//!   reason, duration, timestamp}` with that `reason` (`left`, `declined`,
//!   `participant_disconnected`) and their own time in it; the seed has no
//!   event for the others.

use confab_proto::ServiceError;
use confab_proto::v1::{
    Call, CallActionRequest, CallEvent, CallMedia, ControlsChange, InitiateCallRequest, Signal,
    SignalKind, UpdateControlsRequest, call_event::Kind,
};
use serde::Deserialize;
use serde_json::{Value, json};
use socketioxide::extract::{SocketRef, State, TryData};

use super::read;
use crate::auth::Identity;
use crate::contract::Emit;
use crate::contract::me::Me;
use crate::contract::reply::Reply;
use crate::rooms::{call_rooms, socket_room, user_room};
use crate::session::calls::{self, CallRef, SignalBody};
use crate::state::EdgeState;
use crate::wire::{WireId, iso};

pub(super) fn on_connect(s: &SocketRef) {
    for name in ["initiate_call", "call_offer"] {
        s.on(name, initiate_call);
    }
    for name in ["answer_call", "call_answer"] {
        s.on(name, answer_call);
    }
    for name in ["end_call", "call_end"] {
        s.on(name, |s, p, edge, me, reply| {
            act(s, p, edge, me, reply, Act::End)
        });
    }
    for name in ["call_cancelled", "cancel_call"] {
        s.on(name, |s, p, edge, me, reply| {
            act(s, p, edge, me, reply, Act::Cancel)
        });
    }
    for name in ["call_rejected", "decline_call", "call_reject"] {
        s.on(name, |s, p, edge, me, reply| {
            act(s, p, edge, me, reply, Act::Reject)
        });
    }
    s.on("webrtc_offer", |s, p, edge, me, reply| {
        signal(s, p, edge, me, reply, SignalKind::Offer)
    });
    s.on("webrtc_answer", |s, p, edge, me, reply| {
        signal(s, p, edge, me, reply, SignalKind::Answer)
    });
    for name in ["webrtc_ice_candidate", "ice_candidate"] {
        s.on(name, |s, p, edge, me, reply| {
            signal(s, p, edge, me, reply, SignalKind::IceCandidate)
        });
    }
    for name in ["toggle_mute", "toggle_video", "toggle_screen_share"] {
        s.on(name, toggle);
    }
}

type Raw = TryData<Value>;

fn media(call_type: &str) -> Result<CallMedia, ServiceError> {
    match call_type {
        "voice" | "audio" => Ok(CallMedia::Audio),
        "video" => Ok(CallMedia::Video),
        _ => Err(ServiceError::invalid("callType must be 'voice' or 'video'")),
    }
}

fn call_type(c: &Call) -> &'static str {
    if c.media == CallMedia::Video as i32 {
        "video"
    } else {
        "voice"
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Initiate {
    #[serde(default)]
    target_id: Option<WireId>,
    /// The published frontend's name for `targetId` (module doc).
    #[serde(default)]
    receiver_id: Option<WireId>,
    call_type: String,
    #[serde(default)]
    chatid: Option<WireId>,
    #[serde(default)]
    call_id: Option<WireId>,
}

async fn initiate_call(
    s: SocketRef,
    TryData(p): Raw,
    State(edge): State<EdgeState>,
    Me(me): Me,
    reply: Reply,
) {
    let p: Initiate = match read(p.unwrap_or_default()) {
        Ok(p) => p,
        Err(why) => return reply.unreadable(why),
    };
    // The seed's `targetId` wins over the app's `receiverId`.
    let Some(callee) = p.target_id.or(p.receiver_id) else {
        return reply.unreadable("targetId (or receiverId) is required");
    };
    let result = async {
        let req = InitiateCallRequest {
            actor: Some(me.actor()),
            callee_ids: vec![callee.0],
            conversation_id: p.chatid.map(|c| c.0).unwrap_or_default(),
            media: media(&p.call_type)? as i32,
            client_call_id: p.call_id.map(|c| c.0).unwrap_or_default(),
            session_id: s.id.to_string(),
            ..Default::default()
        };
        edge.call
            .clone()
            .initiate_call(req)
            .await
            .map(|r| r.into_inner())
            .map_err(ServiceError::from)
    }
    .await;
    reply.send(result.map(|c| {
        let receiver = c
            .participants
            .iter()
            .find(|p| p.user_id != c.caller_id)
            .map(|p| p.user_id.clone())
            .unwrap_or_default();
        json!({
            "callId": c.id,
            "callerId": c.caller_id,
            "receiverId": receiver,
            "callType": call_type(&c),
            "timestamp": iso(c.created_at_ms),
        })
    }));
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CallId {
    call_id: WireId,
    #[serde(default)]
    accepts_video: Option<bool>,
    #[serde(default)]
    reason: Option<String>,
}

#[derive(Deserialize)]
struct Accepted {
    /// The published frontend's Decline button sends `false` (module doc).
    #[serde(default)]
    accepted: Option<bool>,
}

/// `answer_call`: answers from this socket; with `accepted: false` (the
/// published frontend's Decline) it declines exactly as `call_rejected`.
async fn answer_call(
    s: SocketRef,
    TryData(p): Raw,
    State(edge): State<EdgeState>,
    Me(me): Me,
    reply: Reply,
) {
    let p = p.unwrap_or_default();
    let (p, accepted): (CallId, Accepted) = match (read(p.clone()), read(p)) {
        (Ok(p), Ok(a)) => (p, a),
        (Err(why), _) | (_, Err(why)) => return reply.unreadable(why),
    };
    if accepted.accepted == Some(false) {
        let result = leave(&edge, &s, &me, Act::Reject, p).await;
        return reply.send(result.map(|c| json!({ "callId": c.id })));
    }
    let result = edge
        .call
        .clone()
        .answer_call(CallActionRequest {
            actor: Some(me.actor()),
            call_id: p.call_id.0,
            video_enabled: p.accepts_video,
            session_id: s.id.to_string(),
            ..Default::default()
        })
        .await
        .map(|r| r.into_inner())
        .map_err(ServiceError::from);
    reply.send(result.map(|c| json!({ "callId": c.id })));
}

/// The seed's ways out of a call, each its own event: `end_call` hangs up
/// (call-service decides by the call's state), `call_cancelled` and
/// `call_rejected` ask for exactly that and are refused in any other state.
#[derive(Clone, Copy)]
enum Act {
    End,
    Cancel,
    Reject,
}

async fn act(
    s: SocketRef,
    TryData(p): Raw,
    State(edge): State<EdgeState>,
    Me(me): Me,
    reply: Reply,
    what: Act,
) {
    let p: CallId = match read(p.unwrap_or_default()) {
        Ok(p) => p,
        Err(why) => return reply.unreadable(why),
    };
    let result = leave(&edge, &s, &me, what, p).await;
    reply.send(result.map(|c| json!({ "callId": c.id })));
}

/// One of the seed's ways out of the call `p` names, for this socket's user.
async fn leave(
    edge: &EdgeState,
    s: &SocketRef,
    me: &Identity,
    what: Act,
    p: CallId,
) -> Result<Call, ServiceError> {
    let reason = p.reason.unwrap_or_default();
    let call_id = p.call_id.0;
    if let Act::End = what {
        let call = CallRef {
            call_id,
            ..Default::default()
        };
        return calls::hang_up(edge, s, me, call, reason).await;
    }
    let req = CallActionRequest {
        actor: Some(me.actor()),
        call_id,
        reason,
        session_id: s.id.to_string(),
        ..Default::default()
    };
    let mut call = edge.call.clone();
    match what {
        Act::Cancel => call.cancel_call(req).await,
        _ => call.reject_call(req).await,
    }
    .map(|r| r.into_inner())
    .map_err(ServiceError::from)
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SignalIn {
    call_id: WireId,
    #[serde(default)]
    target_id: Option<WireId>,
    #[serde(flatten)]
    body: SignalBody,
}

async fn signal(
    s: SocketRef,
    TryData(p): Raw,
    State(edge): State<EdgeState>,
    Me(me): Me,
    reply: Reply,
    kind: SignalKind,
) {
    let p: SignalIn = match read(p.unwrap_or_default()) {
        Ok(p) => p,
        Err(why) => return reply.unreadable(why),
    };
    let call = CallRef {
        call_id: p.call_id.0,
        peer_user_id: p.target_id.map(|t| t.0).unwrap_or_default(),
    };
    let result = calls::relay(&edge, &s, &me, call, kind, p.body).await;
    reply.send(result.map(|_| json!({})));
}

async fn toggle(TryData(p): Raw, State(edge): State<EdgeState>, Me(me): Me, reply: Reply) {
    let p = p.unwrap_or_default();
    let call_id: WireId = match p
        .get("callId")
        .cloned()
        .and_then(|v| serde_json::from_value(v).ok())
    {
        Some(id) => id,
        None => return reply.unreadable("callId is required"),
    };
    let flag = |name: &str| {
        p.get(name)
            .and_then(Value::as_bool)
            .ok_or_else(|| ServiceError::invalid(format!("{name} must be true or false")))
    };
    let mut req = UpdateControlsRequest {
        actor: Some(me.actor()),
        call_id: call_id.0,
        ..Default::default()
    };
    let set = match reply.event() {
        "toggle_mute" => flag("muted").map(|v| req.muted = Some(v)),
        "toggle_video" => flag("videoEnabled").map(|v| req.video_enabled = Some(v)),
        _ => flag("screenSharing").map(|v| req.screen_sharing = Some(v)),
    };
    let result = match set {
        Ok(()) => edge
            .call
            .clone()
            .update_controls(req)
            .await
            .map_err(ServiceError::from),
        Err(e) => Err(e),
    };
    reply.send(result.map(|_| json!({})));
}

// ---- rendering -----------------------------------------------------------------

pub(super) fn call_event(ev: &CallEvent) -> Vec<Emit> {
    let everyone = call_rooms(ev.audience.as_ref());
    let by = ev.actor_id.as_str();
    match &ev.kind {
        Some(Kind::CallInitiated(c)) => {
            let callees: Vec<String> = c
                .participants
                .iter()
                .filter(|p| p.user_id != c.caller_id)
                .map(|p| user_room(&p.user_id))
                .collect();
            let mut payload = json!({
                "callId": c.id,
                "callerId": c.caller_id,
                "callerName": c.caller_name,
                "callerAvatar": c.caller_avatar,
                "callType": call_type(c),
                "timestamp": iso(c.created_at_ms),
            });
            if !c.conversation_id.is_empty() {
                payload["chatid"] = json!(c.conversation_id);
            }
            let mut out = vec![Emit::to(callees.clone(), "incoming_call", payload)];
            // A caller on another contract (hvtsocial) sends its offer with
            // the ring.
            if !c.sdp_offer.is_empty() {
                out.push(signal_received(
                    callees,
                    &Signal {
                        call_id: c.id.clone(),
                        from_user_id: c.caller_id.clone(),
                        kind: SignalKind::Offer as i32,
                        payload_json: c.sdp_offer.clone(),
                        ..Default::default()
                    },
                ));
            }
            out
        }
        Some(Kind::CallAnswered(c)) => {
            let accepted_video = c
                .participants
                .iter()
                .find(|p| p.user_id == by)
                .is_some_and(|p| p.video_enabled);
            let mut out = vec![Emit::to(
                everyone,
                "call_answered",
                json!({
                    "callId": c.id,
                    "answeredBy": by,
                    "acceptedVideo": accepted_video,
                    "timestamp": iso(c.answered_at_ms),
                }),
            )];
            // A callee on another contract (hvtsocial) answers with its SDP:
            // the caller's calling socket gets it.
            if !c.sdp_answer.is_empty() {
                let rooms: Vec<String> = c
                    .participants
                    .iter()
                    .filter(|p| p.user_id == c.caller_id)
                    .map(|p| {
                        if p.session_id.is_empty() {
                            user_room(&p.user_id)
                        } else {
                            socket_room(&p.session_id)
                        }
                    })
                    .collect();
                out.push(signal_received(
                    rooms,
                    &Signal {
                        call_id: c.id.clone(),
                        from_user_id: by.to_string(),
                        kind: SignalKind::Answer as i32,
                        payload_json: c.sdp_answer.clone(),
                        ..Default::default()
                    },
                ));
            }
            out
        }
        Some(Kind::CallRejected(c)) => vec![Emit::to(
            everyone,
            "call_rejected",
            json!({ "callId": c.id, "rejectedBy": by, "timestamp": iso(c.ended_at_ms) }),
        )],
        Some(Kind::CallMissed(c)) => vec![Emit::to(
            everyone,
            "call_missed",
            json!({ "callId": c.id, "callerId": c.caller_id, "timestamp": iso(c.ended_at_ms) }),
        )],
        Some(Kind::CallCancelled(c)) | Some(Kind::CallEnded(c)) => vec![Emit::to(
            everyone,
            "call_ended",
            json!({
                "callId": c.id,
                "endedBy": by,
                "reason": c.end_reason,
                "duration": (c.duration_ms + 500) / 1000,
                "timestamp": iso(c.ended_at_ms),
            }),
        )],
        Some(Kind::Signal(sig)) => vec![signal_received(everyone, sig)],
        Some(Kind::ControlsChanged(ch)) => controls(everyone, ch),
        // Out of a room call (started on dreamstudio) that goes on: the
        // call ended for this user's sockets; the seed has no event for the
        // others.
        Some(Kind::ParticipantLeft(l)) => {
            let Some(c) = &l.call else {
                return Vec::new();
            };
            let who = c.participants.iter().find(|p| p.user_id == l.user_id);
            let at = who.map_or(0, |p| p.left_at_ms);
            let in_call_ms = who
                .filter(|p| p.joined_at_ms > 0)
                .map_or(0, |p| (p.left_at_ms - p.joined_at_ms).max(0));
            vec![Emit::to(
                vec![user_room(&l.user_id)],
                "call_ended",
                json!({
                    "callId": c.id,
                    "endedBy": by,
                    "reason": l.reason,
                    "duration": (in_call_ms + 500) / 1000,
                    "timestamp": iso(at),
                }),
            )]
        }
        None => Vec::new(),
    }
}

fn signal_received(rooms: Vec<String>, sig: &Signal) -> Emit {
    let body: Value = serde_json::from_str(&sig.payload_json).unwrap_or(Value::Null);
    let (event, field) = match SignalKind::try_from(sig.kind).unwrap_or_default() {
        SignalKind::Offer => ("webrtc_offer_received", "offer"),
        SignalKind::Answer => ("webrtc_answer_received", "answer"),
        _ => ("webrtc_ice_candidate_received", "candidate"),
    };
    let mut payload = json!({ "callId": sig.call_id, "fromId": sig.from_user_id });
    payload[field] = body;
    Emit::to(rooms, event, payload)
}

fn controls(rooms: Vec<String>, ch: &ControlsChange) -> Vec<Emit> {
    let call_id = ch.call.as_ref().map(|c| c.id.clone()).unwrap_or_default();
    let now = iso(chrono::Utc::now().timestamp_millis());
    let mut out = Vec::new();
    let mut one = |event: &'static str, field: &str, v: bool| {
        let mut payload = json!({ "callId": call_id, "profileid": ch.user_id, "timestamp": now });
        payload[field] = json!(v);
        out.push(Emit::to(rooms.clone(), event, payload));
    };
    if let Some(v) = ch.muted {
        one("participant_muted", "muted", v);
    }
    if let Some(v) = ch.video_enabled {
        one("participant_video_toggled", "videoEnabled", v);
    }
    if let Some(v) = ch.screen_sharing {
        one("participant_screen_share_toggled", "screenSharing", v);
    }
    out
}
