//! From services' event streams to sockets.
//!
//! The edge holds one `Subscribe` stream per service. Each canonical event is
//! rendered by every mounted contract and emitted to the rooms it names. A
//! stream that fails or ends is reopened with exponential backoff (100 ms up
//! to 2 s); [`StreamStatus`] tells `/readyz` which streams are up.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use confab_proto::v1::chat_event::Kind;
use confab_proto::v1::chat_service_client::ChatServiceClient;
use confab_proto::v1::presence_service_client::PresenceServiceClient;
use confab_proto::v1::{
    Actor, ChatEvent, ChatMessage, MarkDeliveredRequest, PresenceEvent, SubscribeRequest,
};
use socketioxide::SocketIo;
use tokio::task::JoinHandle;
use tonic::Streaming;
use tonic::transport::Channel;

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

/// Keeps one service's stream open for ever, handing each event to `on_event`.
pub fn follow<E, C, F, H>(
    service: &'static str,
    status: StreamStatus,
    connect: C,
    on_event: H,
) -> JoinHandle<()>
where
    E: Send + 'static,
    C: Fn() -> F + Send + 'static,
    F: Future<Output = Result<Streaming<E>, tonic::Status>> + Send,
    H: Fn(E) -> futures::future::BoxFuture<'static, ()> + Send + Sync + 'static,
{
    status.set(service, false);
    tokio::spawn(async move {
        let mut backoff = Duration::from_millis(100);
        loop {
            match connect().await {
                Ok(mut stream) => {
                    tracing::info!(service, "event stream open");
                    status.set(service, true);
                    backoff = Duration::from_millis(100);
                    loop {
                        match stream.message().await {
                            Ok(Some(event)) => on_event(event).await,
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

/// Emits one rendered event in one namespace; returns the users whose
/// sockets on this edge it reached.
pub async fn emit(io: &SocketIo, path: &str, e: Emit) -> Vec<String> {
    let Some(ns) = io.of(path) else {
        return Vec::new();
    };
    if e.rooms.is_empty() {
        return Vec::new();
    }
    let op = ns.to(e.rooms).except(e.except);
    let reached = op
        .clone()
        .sockets()
        .into_iter()
        .filter_map(|s| s.extensions.get::<Identity>().map(|id| id.user_id))
        .collect();
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
/// returns the users whose sockets it reached.
async fn fan_out<E>(
    io: &SocketIo,
    mounts: &[Mount],
    event: &E,
    render: PickRenderer<E>,
) -> Vec<String> {
    let mut reached = Vec::new();
    for m in mounts {
        for e in render(m.contract)(event) {
            reached.extend(emit(io, m.path, e).await);
        }
    }
    reached
}

/// Follows presence-service's stream and fans its events out to every mount.
pub fn follow_presence(
    io: SocketIo,
    mounts: Arc<Vec<Mount>>,
    channel: Channel,
    edge_id: String,
    status: StreamStatus,
) -> JoinHandle<()> {
    let client = PresenceServiceClient::new(channel);
    follow(
        "presence",
        status,
        move || {
            let mut client = client.clone();
            let subscriber = edge_id.clone();
            async move {
                client
                    .subscribe(SubscribeRequest { subscriber })
                    .await
                    .map(|r| r.into_inner())
            }
        },
        move |event: PresenceEvent| {
            let io = io.clone();
            let mounts = mounts.clone();
            Box::pin(async move {
                metrics::counter!("confab_service_events_total", "service" => "presence")
                    .increment(1);
                fan_out(&io, &mounts, &event, |c| c.presence_event).await;
            })
        },
    )
}

/// Follows chat-service's stream and fans its events out to every mount.
pub fn follow_chat(
    io: SocketIo,
    mounts: Arc<Vec<Mount>>,
    channel: Channel,
    services: Services,
    edge_id: String,
    status: StreamStatus,
) -> JoinHandle<()> {
    let client = ChatServiceClient::new(channel);
    follow(
        "chat",
        status,
        move || {
            let mut client = client.clone();
            let subscriber = edge_id.clone();
            async move {
                client
                    .subscribe(SubscribeRequest { subscriber })
                    .await
                    .map(|r| r.into_inner())
            }
        },
        move |event: ChatEvent| {
            let io = io.clone();
            let mounts = mounts.clone();
            let chat = services.chat.clone();
            Box::pin(async move {
                metrics::counter!("confab_service_events_total", "service" => "chat").increment(1);
                let reached = fan_out(&io, &mounts, &event, |c| c.chat_event).await;
                if let Some(Kind::MessageCreated(message)) = &event.kind {
                    mark_delivered(&chat, message, reached);
                }
            })
        },
    )
}
