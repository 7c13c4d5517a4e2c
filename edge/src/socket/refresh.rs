//! A client's refresh event ([`TokenRefresh::event`](crate::contract::TokenRefresh::event)):
//! a fresh token for the same user replaces the socket's identity.

use serde_json::Value;
use socketioxide::extract::{SocketRef, State, TryData};

use crate::auth::{AuthError, Identity};
use crate::contract::reply::Reply;
use crate::state::EdgeState;

/// The refresh event ([`TokenRefresh::event`](crate::contract::TokenRefresh::event)): a fresh token for the same
/// user replaces the socket's identity; another user's is refused and the
/// socket disconnected; a bad one is refused (the socket stays as it was).
pub async fn refresh_token(
    s: SocketRef,
    TryData(p): TryData<Value>,
    State(edge): State<EdgeState>,
    reply: Reply,
) {
    let Some(current) = s.extensions.get::<Identity>() else {
        return;
    };
    let token = match p {
        Ok(Value::String(t)) => Some(t),
        Ok(Value::Object(o)) => o.get("token").and_then(Value::as_str).map(str::to_string),
        _ => None,
    }
    .map(|t| t.trim().trim_start_matches("Bearer ").to_string())
    .filter(|t| !t.is_empty());
    let verified = token
        .ok_or(AuthError::Required)
        .and_then(|t| edge.verifier.verify(&t));
    match verified {
        Err(e) => reply.token_refused(e),
        Ok(fresh) if fresh.user_id != current.user_id => {
            tracing::info!(user = %current.user_id, sid = %s.id, "a token for another user was presented: disconnecting");
            reply.token_refused(AuthError::OtherUser);
            let _ = s.disconnect();
        }
        Ok(fresh) => {
            s.extensions.insert(fresh.clone());
            reply.refreshed(&fresh);
        }
    }
}
