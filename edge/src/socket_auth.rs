//! The Socket.IO connect middleware: a socket without a valid token never
//! reaches a namespace; its client gets `connect_error` whose message is the
//! stable code (`AUTHENTICATION_REQUIRED`, `INVALID_TOKEN`, `TOKEN_EXPIRED`).

use serde_json::Value;
use socketioxide::extract::{SocketRef, State, TryData};

use crate::auth::{AuthError, find_token};
use crate::services::Services;

pub async fn authenticate(
    s: SocketRef,
    TryData(auth): TryData<Value>,
    State(svc): State<Services>,
) -> Result<(), AuthError> {
    let auth = auth.ok();
    let token = find_token(auth.as_ref(), s.req_parts()).ok_or(AuthError::Required)?;
    let identity = svc.verifier.verify(&token).inspect_err(|e| {
        tracing::debug!(ns = s.ns(), error = %e, "socket refused");
        metrics::counter!("confab_socket_auth_failures_total", "code" => e.to_string())
            .increment(1);
    })?;
    s.extensions.insert(identity);
    Ok(())
}
