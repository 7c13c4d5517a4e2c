//! A calling contract's socket as a call session: call-service hears when
//! it opens and closes (`ReportSession`), so a participant whose call socket
//! closed is out of the call after the disconnect grace unless a socket of
//! theirs comes back.

use confab_proto::v1::ReportSessionRequest;

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
