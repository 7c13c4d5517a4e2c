//! `v3` calls: CALL MANAGEMENT, WEBRTC SIGNALING, CALL CONTROLS and the
//! legacy call aliases of seed 003, on call-service.
//!
//! | seed event | direction | confab |
//! |---|---|---|
//! | `initiate_call {targetId, callType, chatid?, callId?}` + ack (legacy `call_offer`) | c→s | `InitiateCall` (`callId` is the idempotency key: a retry answers the same call); ack `{success, callId, callerId, receiverId, callType, timestamp}` |
//! | `incoming_call {callId, callerId, callerName, callerAvatar, callType, chatid, timestamp}` | s→c | `call_initiated`, to every socket of the callee |
//! | `answer_call {callId, acceptsVideo}` (legacy `call_answer`) | c→s | `AnswerCall` from this socket: the call's signaling for the callee then goes to it alone |
//! | `call_answered {callId, answeredBy, acceptedVideo, timestamp}` | s→c | to every socket of both parties, so the callee's other tabs stop ringing |
//! | `call_rejected {callId, reason?}` (legacy `decline_call`, `call_reject`) | c→s | `RejectCall` by the callee |
//! | `call_rejected {callId, rejectedBy, timestamp}` | s→c | to the caller (and the callee's other tabs) |
//! | `call_cancelled {callId}` (legacy `cancel_call`) | c→s | `CancelCall` by the caller before an answer |
//! | `end_call {callId, reason?}` (legacy `call_end`) | c→s | `EndCall` (`reason` default `user_ended`) |
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
    SignalKind, SignalRequest, UpdateControlsRequest, call_event::Kind,
};
use serde::Deserialize;
use serde_json::{Value, json};
use socketioxide::extract::{AckSender, SocketRef, State, TryData};

use crate::contract::me::Me;

use super::{Refusal, error_event, read};
use crate::contract::Emit;
use crate::contract::me::AckRequested;
use crate::rooms::{call_rooms, socket_room, user_room};
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
        s.on(name, |s, p, svc, me, ack, wants| {
            act(s, p, svc, me, ack, wants, Act::End)
        });
    }
    for name in ["call_cancelled", "cancel_call"] {
        s.on(name, |s, p, svc, me, ack, wants| {
            act(s, p, svc, me, ack, wants, Act::Cancel)
        });
    }
    for name in ["call_rejected", "decline_call", "call_reject"] {
        s.on(name, |s, p, svc, me, ack, wants| {
            act(s, p, svc, me, ack, wants, Act::Reject)
        });
    }
    s.on("webrtc_offer", |s, p, svc, me, ack, wants| {
        signal(s, p, svc, me, ack, wants, SignalKind::Offer)
    });
    s.on("webrtc_answer", |s, p, svc, me, ack, wants| {
        signal(s, p, svc, me, ack, wants, SignalKind::Answer)
    });
    for name in ["webrtc_ice_candidate", "ice_candidate"] {
        s.on(name, |s, p, svc, me, ack, wants| {
            signal(s, p, svc, me, ack, wants, SignalKind::IceCandidate)
        });
    }
    for name in ["toggle_mute", "toggle_video", "toggle_screen_share"] {
        s.on(name, toggle);
    }
}

type Payload = TryData<Value>;

/// A refusal in v3's terms (see the module doc), with an ack or as events.
fn refuse(s: &SocketRef, event: &str, ack: AckSender, wants_ack: bool, e: ServiceError) {
    use confab_proto::ErrorCode;
    let retry_after = crate::contract::retry_secs(&e);
    let code = match e.code {
        ErrorCode::LimitExceeded => "RATE_LIMITED",
        c => c.as_str(),
    };
    if e.code == ErrorCode::LimitExceeded {
        let _ = s.emit(
            "rate_limited",
            &json!({ "error": "rate_limited", "message": e.message, "retryAfter": retry_after }),
        );
    }
    if wants_ack {
        let mut reply = json!({ "success": false, "error": e.message, "code": code });
        if e.code == ErrorCode::LimitExceeded {
            reply["retryAfter"] = json!(retry_after);
        }
        let _ = ack.send(&reply);
    } else if e.code != ErrorCode::LimitExceeded {
        error_event(s, event, &Refusal::new(code, e.message));
    }
}

fn invalid(r: Refusal) -> ServiceError {
    ServiceError::invalid(r.message)
}

fn status(st: tonic::Status) -> ServiceError {
    ServiceError::from_status(&st)
}

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
    target_id: WireId,
    call_type: String,
    #[serde(default)]
    chatid: Option<WireId>,
    #[serde(default)]
    call_id: Option<WireId>,
}

async fn initiate_call(
    s: SocketRef,
    TryData(p): Payload,
    State(svc): State<EdgeState>,
    Me(me): Me,
    ack: AckSender,
    AckRequested(wants): AckRequested,
) {
    let result = async {
        let p: Initiate = read(p.unwrap_or_default()).map_err(invalid)?;
        let req = InitiateCallRequest {
            actor: Some(me.actor()),
            callee_ids: vec![p.target_id.0],
            conversation_id: p.chatid.map(|c| c.0).unwrap_or_default(),
            media: media(&p.call_type)? as i32,
            client_call_id: p.call_id.map(|c| c.0).unwrap_or_default(),
            session_id: s.id.to_string(),
            ..Default::default()
        };
        svc.call
            .clone()
            .initiate_call(req)
            .await
            .map(|r| r.into_inner())
            .map_err(status)
    }
    .await;
    match result {
        Ok(c) => {
            let receiver = c
                .participants
                .iter()
                .find(|p| p.user_id != c.caller_id)
                .map(|p| p.user_id.clone())
                .unwrap_or_default();
            let _ = ack.send(&json!({
                "success": true,
                "callId": c.id,
                "callerId": c.caller_id,
                "receiverId": receiver,
                "callType": call_type(&c),
                "timestamp": iso(c.created_at_ms),
            }));
        }
        Err(e) => refuse(&s, "initiate_call", ack, wants, e),
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CallRef {
    call_id: WireId,
    #[serde(default)]
    accepts_video: Option<bool>,
    #[serde(default)]
    reason: Option<String>,
}

async fn answer_call(
    s: SocketRef,
    TryData(p): Payload,
    State(svc): State<EdgeState>,
    Me(me): Me,
    ack: AckSender,
    AckRequested(wants): AckRequested,
) {
    let result = async {
        let p: CallRef = read(p.unwrap_or_default()).map_err(invalid)?;
        svc.call
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
            .map_err(status)
    }
    .await;
    match result {
        Ok(c) => {
            let _ = ack.send(&json!({ "success": true, "callId": c.id }));
        }
        Err(e) => refuse(&s, "answer_call", ack, wants, e),
    }
}

#[derive(Clone, Copy)]
enum Act {
    End,
    Cancel,
    Reject,
}

async fn act(
    s: SocketRef,
    TryData(p): Payload,
    State(svc): State<EdgeState>,
    Me(me): Me,
    ack: AckSender,
    AckRequested(wants): AckRequested,
    what: Act,
) {
    let result = async {
        let p: CallRef = read(p.unwrap_or_default()).map_err(invalid)?;
        let req = CallActionRequest {
            actor: Some(me.actor()),
            call_id: p.call_id.0,
            reason: p.reason.unwrap_or_default(),
            session_id: s.id.to_string(),
            ..Default::default()
        };
        let mut call = svc.call.clone();
        match what {
            Act::End => call.end_call(req).await,
            Act::Cancel => call.cancel_call(req).await,
            Act::Reject => call.reject_call(req).await,
        }
        .map(|r| r.into_inner())
        .map_err(status)
    }
    .await;
    let event = match what {
        Act::End => "end_call",
        Act::Cancel => "call_cancelled",
        Act::Reject => "call_rejected",
    };
    match result {
        Ok(c) => {
            let _ = ack.send(&json!({ "success": true, "callId": c.id }));
        }
        Err(e) => refuse(&s, event, ack, wants, e),
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SignalIn {
    call_id: WireId,
    #[serde(default)]
    target_id: Option<WireId>,
    #[serde(default)]
    offer: Option<Value>,
    #[serde(default)]
    answer: Option<Value>,
    #[serde(default)]
    candidate: Option<Value>,
}

async fn signal(
    s: SocketRef,
    TryData(p): Payload,
    State(svc): State<EdgeState>,
    Me(me): Me,
    ack: AckSender,
    AckRequested(wants): AckRequested,
    kind: SignalKind,
) {
    let (event, field) = match kind {
        SignalKind::Offer => ("webrtc_offer", "offer"),
        SignalKind::Answer => ("webrtc_answer", "answer"),
        _ => ("webrtc_ice_candidate", "candidate"),
    };
    let result = async {
        let p: SignalIn = read(p.unwrap_or_default()).map_err(invalid)?;
        let payload = match kind {
            SignalKind::Offer => p.offer,
            SignalKind::Answer => p.answer,
            _ => p.candidate,
        }
        .filter(|v| !v.is_null())
        .ok_or_else(|| ServiceError::invalid(format!("{field} is required")))?;
        svc.call
            .clone()
            .signal(SignalRequest {
                actor: Some(me.actor()),
                call_id: p.call_id.0,
                kind: kind as i32,
                payload_json: payload.to_string(),
                to_user_id: p.target_id.map(|t| t.0).unwrap_or_default(),
                session_id: s.id.to_string(),
                renegotiation: false,
            })
            .await
            .map_err(status)
    }
    .await;
    match result {
        Ok(_) => {
            let _ = ack.send(&json!({ "success": true }));
        }
        Err(e) => refuse(&s, event, ack, wants, e),
    }
}

async fn toggle(
    s: SocketRef,
    TryData(p): Payload,
    State(svc): State<EdgeState>,
    Me(me): Me,
    ack: AckSender,
    AckRequested(wants): AckRequested,
    socketioxide::extract::Event(event): socketioxide::extract::Event,
) {
    let result = async {
        let p = p.unwrap_or_default();
        let call_id: WireId = p
            .get("callId")
            .cloned()
            .and_then(|v| serde_json::from_value(v).ok())
            .ok_or_else(|| ServiceError::invalid("callId is required"))?;
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
        match event.as_str() {
            "toggle_mute" => req.muted = Some(flag("muted")?),
            "toggle_video" => req.video_enabled = Some(flag("videoEnabled")?),
            _ => req.screen_sharing = Some(flag("screenSharing")?),
        }
        svc.call.clone().update_controls(req).await.map_err(status)
    }
    .await;
    match result {
        Ok(_) => {
            let _ = ack.send(&json!({ "success": true }));
        }
        Err(e) => refuse(&s, &event, ack, wants, e),
    }
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
