//! A socket's presence session: registering each authenticated socket with
//! presence-service (which refuses the one over the per-user limit) and
//! ending it when the socket goes.
//!
//! Who hears a user's online/offline: the users who share a conversation
//! with them (chat-service's `ListPeers`), never the whole server. When
//! presence-service is unreachable, sockets still connect (presence is
//! degraded, messaging is not).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use confab_proto::v1::{ListPeersRequest, RegisterSessionRequest, UnregisterSessionRequest};
use confab_proto::{ErrorCode, ServiceError};
use socketioxide::extract::SocketRef;

use crate::auth::{AuthError, Identity};
use crate::clients::PresenceClient;
use crate::state::EdgeState;

/// Kept in a socket's extensions while its session is registered: what
/// ends it, built once at registration.
#[derive(Debug, Clone)]
pub struct Session(Arc<SessionGuard>);

/// Ends a registered session when its socket is dropped without having been
/// unregistered: a socket whose connection closed during the handshake,
/// after the connect middleware registered it, is dropped by socketioxide
/// without its disconnect handler ever running — without this, its user
/// would stay online for as long as the edge lives.
struct SessionGuard {
    presence: PresenceClient,
    request: UnregisterSessionRequest,
    done: AtomicBool,
}

impl std::fmt::Debug for SessionGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionGuard")
            .field("socket_id", &self.request.socket_id)
            .field("done", &self.done)
            .finish()
    }
}

impl Drop for SessionGuard {
    fn drop(&mut self) {
        if self.done.load(Ordering::Acquire) {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let mut presence = self.presence.clone();
        let req = self.request.clone();
        tracing::debug!(socket = %req.socket_id, "socket dropped before it connected: ending its session");
        runtime.spawn(async move {
            if let Err(status) = presence.unregister_session(req).await {
                tracing::warn!(error = %status, "unregister of a dropped socket failed; it expires when this edge's liveness lapses");
            }
        });
    }
}

/// Registers a socket that just authenticated. `Err` only when the user is
/// over the per-user socket limit — after ending, while the user has any,
/// sessions of theirs lingering on this edge in their grace
/// ([`crate::lingering`]) and trying again.
pub async fn register(
    edge: &EdgeState,
    s: &SocketRef,
    me: &Identity,
    contract: &str,
) -> Result<(), AuthError> {
    let watchers = match edge
        .chat
        .clone()
        .list_peers(ListPeersRequest {
            user_id: me.user_id.clone(),
        })
        .await
    {
        Ok(r) => r.into_inner().user_ids,
        Err(status) => {
            tracing::warn!(error = %status, "peers unavailable; presence reaches nobody");
            Vec::new()
        }
    };
    let req = RegisterSessionRequest {
        actor: Some(me.actor()),
        edge_id: edge.edge_id.clone(),
        socket_id: s.id.to_string(),
        contract: contract.to_string(),
        watcher_ids: watchers.clone(),
    };
    let mut registered = edge.presence.clone().register_session(req.clone()).await;
    // Several of the user's sockets may be coming back at once: each makes
    // room with as many of the lingering sessions as it takes.
    while let Err(status) = &registered
        && ServiceError::from_status(status).code == ErrorCode::LimitExceeded
        && let Some(lingering) = edge.lingering.take_one(&me.user_id)
    {
        unregister(edge, &lingering).await;
        registered = edge.presence.clone().register_session(req.clone()).await;
    }
    match registered {
        Ok(_) => {
            s.extensions.insert(Session(Arc::new(SessionGuard {
                presence: edge.presence.clone(),
                request: UnregisterSessionRequest {
                    user_id: me.user_id.clone(),
                    edge_id: edge.edge_id.clone(),
                    socket_id: s.id.to_string(),
                    watcher_ids: watchers,
                },
                done: AtomicBool::new(false),
            })));
            Ok(())
        }
        Err(status) => match ServiceError::from_status(&status) {
            e if e.code == ErrorCode::LimitExceeded => Err(AuthError::TooManyConnections),
            e => {
                tracing::warn!(error = %e, "presence unavailable; socket connects without a session");
                Ok(())
            }
        },
    }
}

/// Unregisters a socket that disconnected (if it had a session): its
/// room presences end with it. A socket without a session that entered a
/// room (presence-service was unreachable when it connected) is
/// unregistered all the same, for its room presences.
pub async fn unregister(edge: &EdgeState, s: &SocketRef) {
    let req = match s.extensions.get::<Session>() {
        Some(Session(guard)) => {
            guard.done.store(true, Ordering::Release);
            guard.request.clone()
        }
        None => match (
            s.extensions.get::<InRooms>(),
            s.extensions.get::<Identity>(),
        ) {
            (Some(InRooms), Some(me)) => UnregisterSessionRequest {
                user_id: me.user_id,
                edge_id: edge.edge_id.clone(),
                socket_id: s.id.to_string(),
                watcher_ids: Vec::new(),
            },
            _ => return,
        },
    };
    if let Err(status) = edge.presence.clone().unregister_session(req).await {
        tracing::warn!(error = %status, "unregister session failed; it expires when this edge's liveness lapses");
    }
}

/// In a socket's extensions once it asked presence-service to put it in a
/// room ([`crate::session::rooms`]): its disconnect then unregisters it
/// even without a session.
#[derive(Debug, Clone, Copy)]
pub struct InRooms;
