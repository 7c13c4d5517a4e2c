//! From services' event streams to sockets.
//!
//! The edge holds one `Subscribe` stream per service. Each canonical event is
//! rendered by every mounted contract and emitted to the rooms it names. A
//! stream that fails or ends is reopened with exponential backoff (100 ms up
//! to 2 s); [`StreamStatus`] tells `/readyz` which streams are up.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use confab_proto::v1::call_service_client::CallServiceClient;
use confab_proto::v1::chat_event::Kind;
use confab_proto::v1::chat_service_client::ChatServiceClient;
use confab_proto::v1::notify_service_client::NotifyServiceClient;
use confab_proto::v1::presence_service_client::PresenceServiceClient;
use confab_proto::v1::{
    Actor, CallEvent, ChatEvent, ChatMessage, MarkDeliveredRequest, NotifyEvent, PresenceEvent,
    SubscribeRequest,
};
use futures::future::BoxFuture;
use socketioxide::SocketIo;
use tokio::task::JoinHandle;
use tonic::transport::Channel;
use tonic::{Status, Streaming};

use crate::auth::Identity;
use crate::contract::{Contract, Emit, Mount};
use crate::services::Services;

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
    type Event: Send + 'static;
    /// The service's name in logs, metrics and `/readyz`.
    const SERVICE: &'static str;
    fn open(&mut self, subscriber: String)
    -> BoxFuture<'_, Result<Streaming<Self::Event>, Status>>;
}

macro_rules! subscribe_for {
    ($client:ident, $event:ident, $name:literal) => {
        impl Subscribe for $client<Channel> {
            type Event = $event;
            const SERVICE: &'static str = $name;
            fn open(
                &mut self,
                subscriber: String,
            ) -> BoxFuture<'_, Result<Streaming<$event>, Status>> {
                Box::pin(async move {
                    self.subscribe(SubscribeRequest { subscriber })
                        .await
                        .map(|r| r.into_inner())
                })
            }
        }
    };
}
subscribe_for!(ChatServiceClient, ChatEvent, "chat");
subscribe_for!(PresenceServiceClient, PresenceEvent, "presence");
subscribe_for!(CallServiceClient, CallEvent, "call");
subscribe_for!(NotifyServiceClient, NotifyEvent, "notify");

/// Keeps one service's stream open for ever (subscribed as `subscriber`),
/// handing each event to `on_event`.
pub fn follow<C, H>(
    client: C,
    subscriber: String,
    status: StreamStatus,
    on_event: H,
) -> JoinHandle<()>
where
    C: Subscribe,
    H: Fn(C::Event) -> BoxFuture<'static, ()> + Send + Sync + 'static,
{
    let service = C::SERVICE;
    status.set(service, false);
    tokio::spawn(async move {
        let mut backoff = Duration::from_millis(100);
        loop {
            let mut client = client.clone();
            match client.open(subscriber.clone()).await {
                Ok(mut stream) => {
                    tracing::info!(service, "event stream open");
                    status.set(service, true);
                    backoff = Duration::from_millis(100);
                    loop {
                        match stream.message().await {
                            Ok(Some(event)) => {
                                metrics::counter!("confab_service_events_total", "service" => service)
                                    .increment(1);
                                on_event(event).await
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

/// Emits one rendered event in one namespace. With `collect`, returns the
/// users whose sockets on this edge it reached (a lookup only done when the
/// caller needs it).
pub async fn emit(io: &SocketIo, path: &str, e: Emit, collect: bool) -> Vec<String> {
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
    if let Err(err) = op.emit(e.event, &e.data).await {
        tracing::warn!(path, event = e.event, error = %err, "emit failed");
    }
    reached
}

/// Records that a new message reached recipients' sockets on this edge
/// (chat-service keeps one delivery per recipient and tells the sender).
fn mark_delivered(chat: &ChatServiceClient<Channel>, message: &ChatMessage, reached: Vec<String>) {
    let mut recipients: Vec<String> = reached
        .into_iter()
        .filter(|u| *u != message.sender_id)
        .collect();
    recipients.sort();
    recipients.dedup();
    for user in recipients {
        let mut chat = chat.clone();
        let req = MarkDeliveredRequest {
            actor: Some(Actor {
                id: user,
                ..Default::default()
            }),
            message_id: message.id.clone(),
            offline: false,
        };
        tokio::spawn(async move {
            if let Err(status) = chat.mark_delivered(req).await {
                tracing::debug!(error = %status, "mark delivered failed");
            }
        });
    }
}

/// Picks a contract's renderer for one kind of event.
type PickRenderer<E> = fn(&Contract) -> fn(&E) -> Vec<Emit>;

/// Renders one event with every mount's contract (`render` picks the
/// contract's renderer for this kind of event) and emits the results;
/// with `collect`, returns the users whose sockets it reached.
async fn fan_out<E>(
    io: &SocketIo,
    mounts: &[Mount],
    event: &E,
    render: PickRenderer<E>,
    collect: bool,
) -> Vec<String> {
    let mut reached = Vec::new();
    for m in mounts {
        for e in render(m.contract)(event) {
            reached.extend(emit(io, m.path, e, collect).await);
        }
    }
    reached
}

/// Follows presence-service's stream and fans its events out to every mount.
pub fn follow_presence(
    io: SocketIo,
    mounts: Arc<Vec<Mount>>,
    client: PresenceServiceClient<Channel>,
    edge_id: String,
    status: StreamStatus,
) -> JoinHandle<()> {
    follow(client, edge_id, status, move |event: PresenceEvent| {
        let io = io.clone();
        let mounts = mounts.clone();
        Box::pin(async move {
            fan_out(&io, &mounts, &event, |c| c.presence_event, false).await;
        })
    })
}

/// Holds the stream of a service whose events no contract renders yet, so
/// readiness and metrics report it.
pub fn hold<C: Subscribe>(client: C, edge_id: String, status: StreamStatus) -> JoinHandle<()> {
    follow(client, edge_id, status, |_| Box::pin(async {}))
}

/// Follows chat-service's stream and fans its events out to every mount.
pub fn follow_chat(
    io: SocketIo,
    mounts: Arc<Vec<Mount>>,
    client: ChatServiceClient<Channel>,
    services: Services,
    edge_id: String,
    status: StreamStatus,
) -> JoinHandle<()> {
    follow(client, edge_id, status, move |event: ChatEvent| {
        let io = io.clone();
        let mounts = mounts.clone();
        let chat = services.chat.clone();
        Box::pin(async move {
            // Only a new message needs to know whom it reached (deliveries).
            let created = matches!(&event.kind, Some(Kind::MessageCreated(_)));
            let reached = fan_out(&io, &mounts, &event, |c| c.chat_event, created).await;
            if let Some(Kind::MessageCreated(message)) = &event.kind {
                mark_delivered(&chat, message, reached);
            }
        })
    })
}
