//! A calling contract's socket as a call session: call-service hears when
//! it opens and closes (`ReportSession`), so a participant whose call socket
//! closed is out of the call after the disconnect grace unless a socket of
//! theirs comes back. And what every calling contract asks of a call the
//! same way: hanging up ([`hang_up`], decided by call-service) and WebRTC
//! signals ([`relay`], [`renegotiate`]), always from this socket, so call-service knows
//! which of the user's sockets is in the call.

use confab_proto::ServiceError;
use confab_proto::v1::{Call, CallActionRequest, ReportSessionRequest, SignalKind, SignalRequest};
use serde::Deserialize;
use serde_json::Value;
use socketioxide::extract::SocketRef;

use crate::auth::Identity;
use crate::state::EdgeState;

/// Tells call-service that a socket of a calling contract opened or closed,
/// without holding the socket up (a failure is logged: the worst outcome is
/// a call ended by its disconnect grace).
pub fn report(edge: &EdgeState, me: &Identity, session_id: String, open: bool) {
    let mut call = edge.call.clone();
    let req = ReportSessionRequest {
        actor: Some(me.actor()),
        session_id,
        open,
    };
    tokio::spawn(async move {
        if let Err(e) = call.report_session(req).await {
            tracing::debug!(error = %e, open, "could not report a session to call-service");
        }
    });
}

/// Which call a request names: its id, or (for contracts whose events name
/// the other user instead) the live call with `peer_user_id`.
#[derive(Debug, Clone, Default)]
pub struct CallRef {
    pub call_id: String,
    pub peer_user_id: String,
}

/// Hangs up the call from this socket: call-service decides by the call's
/// state, in one step — an ongoing call is ended (or left, in a room call
/// that goes on), a ringing one cancelled by its caller or declined by a
/// callee. `reason` is the client's, when it gives one.
pub async fn hang_up(
    edge: &EdgeState,
    s: &SocketRef,
    me: &Identity,
    call: CallRef,
    reason: String,
) -> Result<Call, ServiceError> {
    let req = CallActionRequest {
        actor: Some(me.actor()),
        call_id: call.call_id,
        peer_user_id: call.peer_user_id,
        reason,
        session_id: s.id.to_string(),
        ..Default::default()
    };
    edge.call
        .clone()
        .hangup(req)
        .await
        .map(|r| r.into_inner())
        .map_err(ServiceError::from)
}

/// What a signal event carries, in the field named by its kind (`offer`,
/// `answer` or `candidate`); a contract's payload type flattens it in.
#[derive(Debug, Default, Deserialize)]
pub struct SignalBody {
    #[serde(default)]
    pub offer: Option<Value>,
    #[serde(default)]
    pub answer: Option<Value>,
    #[serde(default)]
    pub candidate: Option<Value>,
}

impl SignalBody {
    /// The payload field a signal of `kind` travels in.
    pub fn field(kind: SignalKind) -> &'static str {
        match kind {
            SignalKind::Offer => "offer",
            SignalKind::Answer => "answer",
            _ => "candidate",
        }
    }

    /// The signal of `kind`: an `INVALID_ARGUMENT` when its field is
    /// missing or `null`.
    fn take(self, kind: SignalKind) -> Result<Value, ServiceError> {
        match kind {
            SignalKind::Offer => self.offer,
            SignalKind::Answer => self.answer,
            _ => self.candidate,
        }
        .filter(|v| !v.is_null())
        .ok_or_else(|| ServiceError::invalid(format!("{} is required", Self::field(kind))))
    }
}

/// Relays a WebRTC signal from this socket — an SDP offer or answer, or an
/// ICE candidate — through call-service to the call's other participants
/// (or to `call.peer_user_id` alone), untouched.
pub async fn relay(
    edge: &EdgeState,
    s: &SocketRef,
    me: &Identity,
    call: CallRef,
    kind: SignalKind,
    body: SignalBody,
) -> Result<String, ServiceError> {
    let payload = body.take(kind)?;
    signal(edge, s, me, call, kind, &payload, false).await
}

/// Relays `sdp` as a renegotiation within the ongoing call between this
/// socket's user and `call.peer_user_id` (contracts whose offer events also
/// start calls); the call's id, or `None` when there is no such call.
pub async fn renegotiate(
    edge: &EdgeState,
    s: &SocketRef,
    me: &Identity,
    call: CallRef,
    kind: SignalKind,
    sdp: &Value,
) -> Option<String> {
    signal(edge, s, me, call, kind, sdp, true).await.ok()
}

/// Sends a signal; the id of the call it went into.
async fn signal(
    edge: &EdgeState,
    s: &SocketRef,
    me: &Identity,
    call: CallRef,
    kind: SignalKind,
    payload: &Value,
    renegotiation: bool,
) -> Result<String, ServiceError> {
    let req = SignalRequest {
        actor: Some(me.actor()),
        call_id: call.call_id,
        kind: kind as i32,
        payload_json: payload.to_string(),
        to_user_id: call.peer_user_id,
        session_id: s.id.to_string(),
        renegotiation,
    };
    edge.call
        .clone()
        .signal(req)
        .await
        .map(|r| r.into_inner().call_id)
        .map_err(ServiceError::from)
}
