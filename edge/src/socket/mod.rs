//! The socket lifecycle, the same for every contract: authenticate the
//! handshake ([`auth`]), then — still in the connect middleware, before the
//! client is told it is connected — join the socket's own rooms, attach
//! the contract's handlers and every capability it declares, and arrange
//! the disconnect; once connected, greet. The refresh event ([`refresh`])
//! is attached here too.
//!
//! Capabilities are attached whole: a contract that declares
//! [`Calls`](crate::contract::Calls) gets its call handlers *and* its
//! sessions reported to call-service; one that declares a
//! [`Heartbeat`](crate::contract::Heartbeat) gets the answer handlers *and*
//! its first beat. Nothing here renders a contract's event.
//!
//! Every socket gets a private session id in the middleware
//! ([`crate::recovery`]); one that resumed a session gets its rooms and
//! what it missed once connected ([`recover`]), instead of the offline
//! delivery a fresh socket gets.

pub mod auth;
pub mod recover;
pub mod refresh;

use confab_proto::v1::TakeOfflineMessagesResponse;
use serde_json::Value;
use socketioxide::SocketIo;
use socketioxide::extract::{SocketRef, State, TryData};
use socketioxide::handler::ConnectHandler;
use socketioxide::socket::DisconnectReason;

use crate::auth::Identity;
use crate::contract::{CatchUp, Contract, Mount, Spoken};
use crate::interest::Holds;
use crate::recovery::Resuming;
use crate::rooms::{EVERYONE_ROOM, socket_room, user_room};
use crate::session;
use crate::state::EdgeState;
use auth::AuthFailed;

/// Mounts `contracts` on `/<name>` and `default_contract` on `/` too;
/// returns the mounts so events can be fanned out to each.
pub fn mount_all(
    io: &SocketIo,
    contracts: &'static [Contract],
    default_contract: &'static Contract,
) -> Vec<Mount> {
    let mut mounts: Vec<Mount> = contracts
        .iter()
        .map(|c| Mount {
            path: Box::leak(format!("/{}", c.name).into_boxed_str()),
            contract: c,
        })
        .collect();
    mounts.push(Mount {
        path: "/",
        contract: default_contract,
    });
    for m in &mounts {
        mount(io, m.path, m.contract);
    }
    mounts
}

fn mount(io: &SocketIo, path: &'static str, contract: &'static Contract) {
    // Everything a socket needs to receive events is set up here, in the
    // connect middleware, which runs before the client is told it is
    // connected: an event the client emits right after `connect` always
    // finds its handler.
    let middleware = move |s: SocketRef,
                           TryData(auth): TryData<Value>,
                           State(edge): State<EdgeState>| async move {
        let auth = auth.ok();
        let started = std::time::Instant::now();
        auth::authenticate(contract, &s, auth.clone(), &edge).await?;
        metrics::histogram!("confab_handshake_auth_seconds", "contract" => contract.name)
            .record(started.elapsed().as_secs_f64());
        if let Some(me) = s.extensions.get::<Identity>() {
            let started = std::time::Instant::now();
            let resuming = edge.recovery.begin(&s, &me, auth.as_ref()).await;
            metrics::histogram!("confab_handshake_session_seconds", "contract" => contract.name)
                .record(started.elapsed().as_secs_f64());
            attach(contract, &s, &me, &edge, resuming.is_none());
            match resuming {
                Some(resuming) => {
                    s.extensions.insert(resuming);
                }
                // Taken before the client is told it is connected, so that
                // the socket is in its user's room a moment after.
                None if catches_up_on_connect(contract, &edge) => {
                    let missed = session::rooms::take_missed_everywhere(&edge, &me).await;
                    s.extensions.insert(Missed(missed));
                }
                None => {}
            }
        }
        Ok::<(), String>(())
    };
    // Runs once the client is connected: what the contract says first.
    let on_connect = move |s: SocketRef, State(edge): State<EdgeState>| async move {
        if let (Some(AuthFailed(e)), Some(report)) =
            (s.extensions.get::<AuthFailed>(), contract.auth_error)
        {
            let (event, payload) = report(e);
            let _ = s.emit(event, &payload);
            let _ = s.disconnect();
            return;
        }
        let Some(me) = s.extensions.get::<Identity>() else {
            let _ = s.disconnect();
            return;
        };
        metrics::counter!("confab_socket_connections_total", "contract" => contract.name)
            .increment(1);
        tracing::debug!(contract = contract.name, user = %me.user_id, sid = %s.id, "socket connected");
        match s.extensions.remove::<Resuming>() {
            Some(resuming) => {
                recover::resume(&s, &me, &edge, resuming).await;
                greet(contract, &s, &me, &edge, false);
            }
            None => {
                if let Some(Missed(missed)) = s.extensions.remove::<Missed>() {
                    session::rooms::enter_user_rooms(&edge, &s, &me, missed).await;
                }
                greet(contract, &s, &me, &edge, true);
            }
        }
    };
    io.ns(path, on_connect.with(middleware));
}

/// What a fresh socket that catches up on connect missed (in its
/// extensions from the connect middleware until it is connected).
#[derive(Clone)]
struct Missed(Option<TakeOfflineMessagesResponse>);

/// Whether a fresh socket of `contract` catches up on connect
/// ([`CatchUp::OnConnect`], with recovery on): it then joins its user's
/// and everyone's rooms only then, with what it missed.
fn catches_up_on_connect(contract: &Contract, edge: &EdgeState) -> bool {
    contract.catch_up == CatchUp::OnConnect && edge.recovery.enabled()
}

/// Gives an authenticated socket its rooms, handlers and capabilities
/// (in the connect middleware: it must not emit). A socket resuming a
/// session (`fresh` false) joins its user's and everyone's rooms when it
/// is restored, together with its conversations; one that catches up on
/// connect, when it does.
fn attach(
    contract: &'static Contract,
    s: &SocketRef,
    me: &Identity,
    edge: &EdgeState,
    fresh: bool,
) {
    s.extensions.insert(Spoken(contract));
    s.extensions.insert(recover::replay(contract));
    session::rooms::attach_lock(s);
    s.on(contract.token.event, refresh::refresh_token);
    s.join(socket_room(&s.id.to_string()));
    if fresh && !catches_up_on_connect(contract, edge) {
        s.join([user_room(&me.user_id), EVERYONE_ROOM.to_string()]);
    }
    let holds = Holds::default();
    holds.user(edge.interest.hold_user(&me.user_id));
    s.extensions.insert(holds);
    (contract.on_connect)(s);
    if let Some(calls) = &contract.calls {
        (calls.on_connect)(s);
        session::calls::report(edge, me, s.id.to_string(), true);
    }
    if let Some(notifications) = &contract.notifications {
        (notifications.on_connect)(s);
    }
    if let Some(heartbeat) = &contract.heartbeat {
        crate::heartbeat::attach(s, heartbeat);
    }
    let edge = edge.clone();
    s.on_disconnect(move |s: SocketRef, reason: DisconnectReason| async move {
        if let Some(me) = s.extensions.get::<Identity>() {
            if contract.calls.is_some() {
                session::calls::report(&edge, &me, s.id.to_string(), false);
            }
            match presence_grace(&edge, reason) {
                // A dropped connection: its client is likely back in a
                // moment (on any edge); its presence session ends after the
                // grace, so one that came back is never seen leaving.
                Some(grace) => {
                    edge.lingering.hold(&me.user_id, s.clone());
                    let (edge, s) = (edge.clone(), s.clone());
                    tokio::spawn(async move {
                        tokio::time::sleep(grace).await;
                        // Unless a new socket of its user needed its room.
                        if edge.lingering.release(&me.user_id, s.id) {
                            session::presence::unregister(&edge, &s).await;
                        }
                    });
                }
                None => session::presence::unregister(&edge, &s).await,
            }
        }
        edge.recovery.end(&s).await;
    });
}

/// How long the presence session of a socket that closed for `reason`
/// outlives it: the grace for a connection that dropped (the network, a
/// missed heartbeat, this edge stopping), none for a client that said
/// goodbye or a socket the server disconnected.
fn presence_grace(edge: &EdgeState, reason: DisconnectReason) -> Option<std::time::Duration> {
    let dropped = matches!(
        reason,
        DisconnectReason::TransportClose
            | DisconnectReason::TransportError
            | DisconnectReason::HeartbeatTimeout
            | DisconnectReason::ClosingServer
    );
    (dropped && !edge.presence_grace.is_zero()).then_some(edge.presence_grace)
}

/// What the socket hears first once connected: the contract's greeting,
/// then each capability's (the offline delivery only on a `fresh` session:
/// a resumed one was replayed what it missed).
fn greet(contract: &'static Contract, s: &SocketRef, me: &Identity, edge: &EdgeState, fresh: bool) {
    if let Some(greet) = contract.greet {
        greet(s, me);
    }
    if let Some(notifications) = &contract.notifications {
        (notifications.greet)(s, me, edge);
    }
    if let (Some(offline), true) = (&contract.offline, fresh) {
        (offline.deliver)(s, me, edge);
    }
    if let Some(heartbeat) = &contract.heartbeat {
        crate::heartbeat::first_beat(s, heartbeat);
    }
}
