//! Authentication in the connect middleware.
//!
//! A socket without a valid token never reaches a contract's handlers. By
//! default its client gets `connect_error` whose message is the stable code
//! (`AUTHENTICATION_REQUIRED`, `INVALID_TOKEN`, `TOKEN_EXPIRED`), worded
//! by the contract ([`Contract::refusal`]: the code first). A contract
//! whose frontends listen for an event instead (see
//! [`Contract::auth_error`]) lets the socket connect just long enough
//! to receive that event before it is disconnected. After the token, the
//! contract checks its own handshake fields ([`Contract::handshake`]), and
//! the socket is registered with presence-service, which refuses a user's
//! socket over the limit (`TOO_MANY_CONNECTIONS`, reported the same way).

use serde_json::Value;
use socketioxide::extract::SocketRef;

use crate::auth::{AuthError, find_token};
use crate::contract::Contract;
use crate::session::presence;
use crate::state::EdgeState;

/// Put in a socket's extensions when authentication failed but the contract
/// reports that with an event rather than `connect_error`.
#[derive(Debug, Clone, Copy)]
pub struct AuthFailed(pub AuthError);

pub async fn authenticate(
    contract: &'static Contract,
    s: &SocketRef,
    auth: Option<Value>,
    edge: &EdgeState,
) -> Result<(), String> {
    let verified = find_token(auth.as_ref(), s.req_parts())
        .ok_or(AuthError::Required)
        .and_then(|token| edge.verifier.verify(&token));
    let identity = match verified {
        Ok(identity) => identity,
        Err(e) => return refuse(contract, s, e),
    };
    (contract.handshake)(auth.as_ref(), &identity)?;
    if let Err(e) = presence::register(edge, s, &identity, contract.name).await {
        return refuse(contract, s, e);
    }
    s.extensions.insert(identity);
    Ok(())
}

/// Refuses a socket: `connect_error` with the code, or, for contracts that
/// report it as an event, a note for the connect handler.
fn refuse(contract: &'static Contract, s: &SocketRef, e: AuthError) -> Result<(), String> {
    tracing::debug!(ns = s.ns(), error = %e, "socket refused");
    metrics::counter!("confab_socket_auth_failures_total", "code" => e.to_string()).increment(1);
    if contract.auth_error.is_some() {
        s.extensions.insert(AuthFailed(e));
        return Ok(());
    }
    Err((contract.refusal)(e))
}
