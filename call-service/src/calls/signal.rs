//! What passes within a live call: WebRTC signaling (`Signal`, relayed only
//! between participants and, once one answered, only to its answering
//! socket; a `renegotiation` only within the ongoing call; each relayed
//! with the call as it then was, without its SDP) and call controls
//! (`UpdateControls`: mute, video, screen share).

use confab_kit::db_err;
use confab_proto::ServiceError;
use confab_proto::v1::{self, Audience, CallEvent, SignalKind, call_event};
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};

use super::state::{Loaded, in_call};
use super::{
    Calls, MAX_SIGNAL_BYTES, Result, Status, actor, conflict, denied, short, the_call_is,
    wrong_state,
};
use crate::entity::participant;

impl Calls {
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
            return Err(the_call_is(loaded.call.state));
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
            // The call's state and people, so a contract can tell a ring's
            // offer from a renegotiation; its SDP stays out (the signal
            // carries its own).
            call: Some(v1::Call {
                sdp_offer: String::new(),
                sdp_answer: String::new(),
                ..loaded.to_proto()
            }),
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
            return Err(the_call_is(loaded.call.state));
        }
        if !in_call(part) {
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
    let state = loaded.call.state;
    if state != Status::Ongoing {
        return Err(wrong_state(
            state,
            format!("only an ongoing call can be renegotiated; this one is {state}"),
        ));
    }
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
