//! From services' event streams to sockets.
//!
//! The edge holds one `Subscribe` stream per service. Each canonical event is
//! rendered once by every contract mounted (a contract on two namespaces
//! renders once) and emitted to the rooms it names; socketioxide encodes
//! each emit once and writes the same bytes to every socket in the rooms.
//! Events are handled in order, one at a time, so a busy edge slows its
//! streams down (backpressure) rather than skipping events. A stream that
//! fails or ends is reopened with exponential backoff (100 ms up to 2 s),
//! resuming after the last event it handled; a gap that could not be
//! avoided is counted (`confab_event_stream_gaps_total`) and logged.
//! [`StreamStatus`] tells `/readyz` which streams are up.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use confab_proto::bus::{BusEvent, EPOCH_HEADER, RESUMED_HEADER};
use confab_proto::v1::call_service_client::CallServiceClient;
use confab_proto::v1::chat_event::Kind;
use confab_proto::v1::chat_service_client::ChatServiceClient;
use confab_proto::v1::notify_service_client::NotifyServiceClient;
use confab_proto::v1::presence_service_client::PresenceServiceClient;
use confab_proto::v1::{CallEvent, ChatEvent, NotifyEvent, PresenceEvent, SubscribeRequest};
use futures::future::BoxFuture;
use socketioxide::SocketIo;
use tokio::task::JoinHandle;
use tonic::{Status, Streaming};

use crate::auth::Identity;
use crate::clients::{CallClient, ChatClient, NotifyClient, PresenceClient, Transport};
use crate::contract::{Contract, Emit, Mount};
use crate::interest::Interest;
use crate::recovery::{Recovery, recent};
#[cfg(debug_assertions)]
use crate::rooms::{SOCKET_ROOM_PREFIX, audience_rooms};
use crate::state::EdgeState;

/// Which service streams are currently open, and how many times each has
/// been (re)opened.
#[derive(Clone, Default)]
pub struct StreamStatus(Arc<Mutex<BTreeMap<&'static str, (bool, u64)>>>);

impl StreamStatus {
    fn set(&self, service: &'static str, up: bool) {
        if let Ok(mut m) = self.0.lock() {
            let entry = m.entry(service).or_insert((false, 0));
            if up {
                entry.1 += 1;
            }
            entry.0 = up;
        }
        metrics::gauge!("confab_event_stream_up", "service" => service).set(if up {
            1.0
        } else {
            0.0
        });
    }

    /// Service name → whether its stream is open.
    pub fn snapshot(&self) -> BTreeMap<&'static str, bool> {
        self.0
            .lock()
            .map(|m| m.iter().map(|(k, v)| (*k, v.0)).collect())
            .unwrap_or_default()
    }

    pub fn is_up(&self, service: &str) -> bool {
        self.snapshot().get(service).copied().unwrap_or(false)
    }

    /// How many times the stream of `service` has been opened.
    pub fn opened(&self, service: &str) -> u64 {
        self.0
            .lock()
            .ok()
            .and_then(|m| m.get(service).map(|v| v.1))
            .unwrap_or(0)
    }
}

/// A service client with a `Subscribe` stream of `Event`s.
pub trait Subscribe: Clone + Send + 'static {
    type Event: BusEvent;
    /// The service's name in logs, metrics and `/readyz`.
    const SERVICE: &'static str;
    fn open(
        &mut self,
        request: SubscribeRequest,
    ) -> BoxFuture<'_, Result<tonic::Response<Streaming<Self::Event>>, Status>>;
}

macro_rules! subscribe_for {
    ($client:ident, $event:ident, $name:literal) => {
        impl Subscribe for $client<Transport> {
            type Event = $event;
            const SERVICE: &'static str = $name;
            fn open(
                &mut self,
                request: SubscribeRequest,
            ) -> BoxFuture<'_, Result<tonic::Response<Streaming<$event>>, Status>> {
                Box::pin(async move { self.subscribe(request).await })
            }
        }
    };
}
subscribe_for!(ChatServiceClient, ChatEvent, "chat");
subscribe_for!(PresenceServiceClient, PresenceEvent, "presence");
subscribe_for!(CallServiceClient, CallEvent, "call");
subscribe_for!(NotifyServiceClient, NotifyEvent, "notify");

/// Where this edge is in a service's event log: what it asks to resume
/// from after a broken stream.
#[derive(Default)]
struct Position {
    epoch: String,
    last_seq: u64,
}

impl Position {
    fn request(&self, subscriber: &str) -> SubscribeRequest {
        SubscribeRequest {
            subscriber: subscriber.to_string(),
            epoch: self.epoch.clone(),
            after_seq: self.last_seq,
        }
    }

    /// Takes in a newly opened stream's headers; tells whether events were
    /// missed since the last stream (the service could not resume it).
    fn reopened(&mut self, md: &tonic::metadata::MetadataMap) -> bool {
        let epoch = md
            .get(EPOCH_HEADER)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        let resumed = md
            .get(RESUMED_HEADER)
            .and_then(|v| v.to_str().ok())
            .is_none_or(|v| v == "true");
        let had_position = !self.epoch.is_empty();
        let gap = had_position && (!resumed || epoch != self.epoch);
        if epoch != self.epoch {
            self.epoch = epoch;
            self.last_seq = 0;
        }
        gap
    }

    /// Takes in one event's position; tells whether events were skipped.
    fn advance(&mut self, seq: u64) -> bool {
        let gap = self.last_seq != 0 && seq > self.last_seq + 1;
        self.last_seq = seq;
        gap
    }
}

/// Counts and logs events this edge missed: a gap in a stream's `seq`, or
/// a stream that could not resume where the last one ended (e.g. the
/// service restarted). Backpressure and resuming make this rare; it is
/// never silent.
fn missed(service: &'static str, why: &'static str) {
    metrics::counter!("confab_event_stream_gaps_total", "service" => service).increment(1);
    tracing::error!(service, why, "events were missed on this edge's stream");
}

/// Keeps one service's stream open for ever (subscribed as `subscriber`),
/// handing each event to `on_event` with the log's epoch, one at a time: a slow consumer slows
/// the stream (and, through the service's bus, its publishers) instead of
/// dropping events. A broken stream is reopened after the last event seen.
pub fn follow<C, H>(
    client: C,
    subscriber: String,
    status: StreamStatus,
    on_event: H,
) -> JoinHandle<()>
where
    C: Subscribe,
    H: Fn(C::Event, Arc<str>) -> BoxFuture<'static, ()> + Send + Sync + 'static,
{
    let service = C::SERVICE;
    status.set(service, false);
    tokio::spawn(async move {
        let mut backoff = Duration::from_millis(100);
        let mut position = Position::default();
        loop {
            let mut client = client.clone();
            match client.open(position.request(&subscriber)).await {
                Ok(response) => {
                    if position.reopened(response.metadata()) {
                        missed(service, "the stream could not resume where it broke");
                    }
                    let epoch: Arc<str> = Arc::from(position.epoch.as_str());
                    let mut stream = response.into_inner();
                    tracing::info!(service, "event stream open");
                    status.set(service, true);
                    backoff = Duration::from_millis(100);
                    loop {
                        match stream.message().await {
                            Ok(Some(event)) => {
                                metrics::counter!("confab_service_events_total", "service" => service)
                                    .increment(1);
                                if position.advance(event.seq()) {
                                    missed(service, "a gap in the stream's sequence");
                                }
                                on_event(event, epoch.clone()).await
                            }
                            Ok(None) => {
                                tracing::warn!(service, "event stream ended");
                                break;
                            }
                            Err(e) => {
                                tracing::warn!(service, error = %e, "event stream failed");
                                break;
                            }
                        }
                    }
                    status.set(service, false);
                }
                Err(e) => tracing::debug!(service, error = %e, "event stream unavailable"),
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(2));
        }
    })
}

/// Emits one rendered event in one namespace, with `offset` as its last
/// argument when there is one ([`crate::recovery`]). With `collect`,
/// returns the users whose sockets on this edge it reached (a lookup only
/// done when the caller needs it).
pub async fn emit(
    io: &SocketIo,
    path: &str,
    e: Emit,
    offset: Option<&str>,
    collect: bool,
) -> Vec<String> {
    let Some(ns) = io.of(path) else {
        return Vec::new();
    };
    if e.rooms.is_empty() {
        return Vec::new();
    }
    let op = ns.to(e.rooms).except(e.except);
    let reached = if collect {
        op.clone()
            .sockets()
            .into_iter()
            .filter_map(|s| s.extensions.get::<Identity>().map(|id| id.user_id))
            .collect()
    } else {
        Vec::new()
    };
    let sent = match offset {
        Some(offset) => op.emit(e.event, &(&e.data, offset)).await,
        None => op.emit(e.event, &e.data).await,
    };
    match sent {
        Ok(()) => {}
        Err(socketioxide::BroadcastError::Socket(errors)) => {
            // A socket whose queue (`SOCKET_QUEUE` packets) is full does not
            // get this packet; one already closed does not matter.
            let full = errors
                .iter()
                .filter(|e| matches!(e, socketioxide::SocketError::InternalChannelFull))
                .count();
            if full > 0 {
                metrics::counter!("confab_socket_queue_full_total").increment(full as u64);
                tracing::warn!(
                    path,
                    event = e.event,
                    sockets = full,
                    "a socket's send queue is full"
                );
            }
        }
        Err(err) => tracing::warn!(path, event = e.event, error = %err, "emit failed"),
    }
    reached
}

/// Picks a contract's renderer for one kind of event.
type PickRenderer<E> = fn(&Contract) -> fn(&E) -> Vec<Emit>;

/// A contract's call renderer; nothing for a contract without calls.
fn call_renderer(c: &Contract) -> fn(&CallEvent) -> Vec<Emit> {
    c.calls.as_ref().map_or(|_| Vec::new(), |k| k.event)
}

/// A contract's notification renderer; nothing for a contract without
/// notifications.
fn notify_renderer(c: &Contract) -> fn(&NotifyEvent) -> Vec<Emit> {
    c.notifications.as_ref().map_or(|_| Vec::new(), |k| k.event)
}

/// Which offset an emitted event carries ([`crate::recovery`]).
enum Offset<'a> {
    /// Recovery is off: none.
    Off,
    /// A chat event: its own position.
    Chat(&'a Arc<str>),
    /// Another service's event: none, unless its payload is a string
    /// (which a client would take for an offset); then the position of
    /// the last chat event handled, looked up only then.
    Other(&'a Recovery),
}

impl Offset<'_> {
    fn of(&self, e: &Emit) -> Option<Arc<str>> {
        match self {
            Offset::Off => None,
            Offset::Chat(o) => Some(Arc::clone(o)),
            Offset::Other(recovery) => e.data.is_string().then(|| recovery.last_offset()).flatten(),
        }
    }

    /// For a service other than chat-service's.
    fn other(recovery: &Recovery) -> Offset<'_> {
        if recovery.enabled() {
            Offset::Other(recovery)
        } else {
            Offset::Off
        }
    }
}

/// Renders one event with every mount's contract (`render` picks the
/// contract's renderer for this kind of event) and emits the results, each
/// with its `offset`; with `collect`, returns the users whose sockets it
/// reached.
///
/// An event that concerns no socket of this edge ([`Interest`]: none of
/// its users, not its conversation's room, not everyone's) is not
/// rendered at all: an edge pays a few lookups for the events of
/// conversations and users it holds no socket of (with many edges, most
/// events are such).
async fn fan_out<E: BusEvent>(
    io: &SocketIo,
    mounts: &[Mount],
    interest: &Interest,
    event: &E,
    render: PickRenderer<E>,
    offset: Offset<'_>,
    collect: bool,
) -> Vec<String> {
    let mut reached = Vec::new();
    if !interest.concerns(event.audience()) {
        return reached;
    }
    // A renderer emits only to rooms of the event's audience (or to a
    // session of one of its users), which is what `concerns` relies on.
    #[cfg(debug_assertions)]
    let audience = audience_rooms(event.audience());
    // A contract mounted twice (its own namespace and `/`) renders once.
    let mut rendered: Vec<(&'static Contract, Vec<Emit>)> = Vec::with_capacity(mounts.len());
    for m in mounts {
        let emits = match rendered.iter().find(|(c, _)| std::ptr::eq(*c, m.contract)) {
            Some((_, emits)) => emits.clone(),
            None => {
                let emits = render(m.contract)(event);
                #[cfg(debug_assertions)]
                assert!(
                    emits.iter().all(|e| e
                        .rooms
                        .iter()
                        .all(|r| audience.contains(r) || r.starts_with(SOCKET_ROOM_PREFIX))),
                    "{} renders to a room outside the event's audience {audience:?}: {:?}",
                    m.contract.name,
                    emits
                        .iter()
                        .map(|e| (&e.rooms, e.event))
                        .collect::<Vec<_>>()
                );
                rendered.push((m.contract, emits.clone()));
                emits
            }
        };
        for e in emits {
            let offset = offset.of(&e);
            reached.extend(emit(io, m.path, e, offset.as_deref(), collect).await);
        }
    }
    reached
}

/// Follows presence-service's stream and fans its events out to every mount.
pub fn follow_presence(
    io: SocketIo,
    mounts: Arc<Vec<Mount>>,
    edge: &EdgeState,
    client: PresenceClient,
    status: StreamStatus,
) -> JoinHandle<()> {
    follow_other(io, mounts, edge, client, status, |c| c.presence_event)
}

/// Follows call-service's stream and fans its events out to every mount.
pub fn follow_call(
    io: SocketIo,
    mounts: Arc<Vec<Mount>>,
    edge: &EdgeState,
    client: CallClient,
    status: StreamStatus,
) -> JoinHandle<()> {
    follow_other(io, mounts, edge, client, status, call_renderer)
}

/// Follows notify-service's stream and fans its events out to every mount.
pub fn follow_notify(
    io: SocketIo,
    mounts: Arc<Vec<Mount>>,
    edge: &EdgeState,
    client: NotifyClient,
    status: StreamStatus,
) -> JoinHandle<()> {
    follow_other(io, mounts, edge, client, status, notify_renderer)
}

/// Follows a stream other than chat-service's: its events carry no offset
/// of their own ([`Offset::other`]) and are not replayed.
fn follow_other<C: Subscribe>(
    io: SocketIo,
    mounts: Arc<Vec<Mount>>,
    edge: &EdgeState,
    client: C,
    status: StreamStatus,
    render: PickRenderer<C::Event>,
) -> JoinHandle<()> {
    let (interest, recovery) = (edge.interest.clone(), edge.recovery.clone());
    follow(
        client,
        edge.edge_id.clone(),
        status,
        move |event, _epoch| {
            let io = io.clone();
            let mounts = mounts.clone();
            let interest = interest.clone();
            let recovery = recovery.clone();
            Box::pin(async move {
                let offset = Offset::other(&recovery);
                fan_out(&io, &mounts, &interest, &event, render, offset, false).await;
            })
        },
    )
}

/// Follows chat-service's stream and fans its events out to every mount.
///
/// A new message's fan-out also notes whom it reached; those deliveries go
/// to chat-service batched ([`Deliveries`]), never one call per recipient.
/// With recovery on, each event carries its position as its offset, and is
/// emitted and taken into the recent events while the log is held
/// ([`Recovery::log`]): a resuming socket gets it either live or replayed.
///
/// [`Deliveries`]: crate::deliveries::Deliveries
pub fn follow_chat(
    io: SocketIo,
    mounts: Arc<Vec<Mount>>,
    edge: &EdgeState,
    client: ChatClient,
    status: StreamStatus,
) -> JoinHandle<()> {
    let (interest, deliveries, recovery) = (
        edge.interest.clone(),
        edge.deliveries.clone(),
        edge.recovery.clone(),
    );
    follow(
        client,
        edge.edge_id.clone(),
        status,
        move |event: ChatEvent, epoch| {
            let io = io.clone();
            let mounts = mounts.clone();
            let interest = interest.clone();
            let deliveries = deliveries.clone();
            let recovery = recovery.clone();
            Box::pin(async move {
                // Only a new message needs to know whom it reached (deliveries).
                let created = matches!(&event.kind, Some(Kind::MessageCreated(_)));
                let render: PickRenderer<ChatEvent> = |c| c.chat_event;
                let (event, reached) = if recovery.enabled() {
                    let event = Arc::new(event);
                    let offset: Arc<str> = Arc::from(recent::offset(&epoch, event.seq));
                    let mut log = recovery.log().await;
                    let reached = fan_out(
                        &io,
                        &mounts,
                        &interest,
                        &*event,
                        render,
                        Offset::Chat(&offset),
                        created,
                    )
                    .await;
                    recovery.handled(&mut log, &epoch, event.clone(), offset);
                    (event, reached)
                } else {
                    let reached = fan_out(
                        &io,
                        &mounts,
                        &interest,
                        &event,
                        render,
                        Offset::Off,
                        created,
                    )
                    .await;
                    (Arc::new(event), reached)
                };
                if let Some(Kind::MessageCreated(message)) = &event.kind {
                    deliveries.record(message, reached).await;
                }
            })
        },
    )
}
