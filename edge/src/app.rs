//! Assembling and running an edge: the axum app (Socket.IO layer, REST,
//! `/healthz`, `/readyz`, `/metrics`) plus the tasks that follow the services'
//! event streams.

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};

use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::serve::ListenerExt;
use axum::{Json, Router};
use confab_proto::v1::call_service_client::CallServiceClient;
use confab_proto::v1::chat_service_client::ChatServiceClient;
use confab_proto::v1::notify_service_client::NotifyServiceClient;
use confab_proto::v1::presence_service_client::PresenceServiceClient;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use serde_json::json;
use socketioxide::SocketIo;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tower_http::cors::CorsLayer;

use crate::clients::Service;
use crate::config::EdgeConfig;
use crate::deliveries::Deliveries;
use crate::fanout::{self, StreamStatus};
use crate::recovery::Recovery;
use crate::state::EdgeState;
use crate::{contracts, socket};

/// How many packets may wait for one socket (see `max_buffer_size`).
pub const SOCKET_QUEUE: usize = 8192;

/// A running edge.
pub struct EdgeHandle {
    pub addr: SocketAddr,
    pub streams: StreamStatus,
    stop: Option<oneshot::Sender<()>>,
    server: JoinHandle<()>,
    followers: Vec<JoinHandle<()>>,
}

impl EdgeHandle {
    /// `http://addr`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Closes every socket, stops serving and stops following the services.
    pub async fn shutdown(mut self) {
        for f in &self.followers {
            f.abort();
        }
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let _ = (&mut self.server).await;
    }

    /// Waits until the server stops.
    pub async fn wait(self) {
        let _ = self.server.await;
    }
}

fn prometheus() -> Option<PrometheusHandle> {
    static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            PrometheusBuilder::new()
                .set_buckets_for_metric(
                    Matcher::Full(crate::heartbeat::RTT_METRIC.into()),
                    crate::heartbeat::RTT_BUCKETS,
                )
                .ok()?
                .install_recorder()
                .ok()
        })
        .clone()
}

#[derive(Clone)]
struct Probe {
    streams: StreamStatus,
}

async fn healthz() -> impl IntoResponse {
    Json(json!({ "status": "ok" }))
}

/// Ready when the chat event stream is open: before that, messages would be
/// stored but not delivered.
async fn readyz(State(p): State<Probe>) -> impl IntoResponse {
    let streams = p.streams.snapshot();
    let ready = p.streams.is_up("chat");
    let code = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        code,
        Json(json!({ "status": if ready { "ready" } else { "not ready" }, "streams": streams })),
    )
}

async fn metrics() -> impl IntoResponse {
    prometheus().map(|h| h.render()).unwrap_or_default()
}

/// Starts an edge on `listener`.
pub async fn start(cfg: EdgeConfig, listener: TcpListener) -> anyhow::Result<EdgeHandle> {
    prometheus();
    let addr = listener.local_addr()?;
    let (deliveries, delivery_task) = Deliveries::spawn(ChatServiceClient::new(
        cfg.services
            .transport(Service::Chat, Some(cfg.request_timeout))?,
    ));
    let recovery = Recovery::open(cfg.recovery.clone()).await?;
    let services = EdgeState::new(&cfg, deliveries, recovery)?;
    let (layer, io) = SocketIo::builder()
        .with_state(services.clone())
        // Packets queued per socket before an emit to it fails. A burst into
        // a busy room must wait in the queue, not be dropped; the queue
        // grows in blocks as it fills, so an idle socket costs no more.
        .max_buffer_size(SOCKET_QUEUE)
        // A packet over the limit is not read: a WebSocket message closes the
        // connection, a polling request is answered 413 (the client then
        // drops the connection), so nothing of it reaches a service.
        .max_payload(cfg.max_packet_bytes as u64)
        .ws_max_message_size(cfg.max_packet_bytes)
        .ws_max_frame_size(cfg.max_packet_bytes)
        .build_layer();
    let default = contracts::named(&cfg.default_contract)?;
    let mounts = Arc::new(socket::mount_all(&io, &contracts::ALL, default));

    let streams = StreamStatus::default();
    let mut followers = vec![
        delivery_task,
        fanout::follow_chat(
            io.clone(),
            mounts.clone(),
            &services,
            ChatServiceClient::new(cfg.services.transport(Service::Chat, None)?),
            streams.clone(),
        ),
        fanout::follow_presence(
            io.clone(),
            mounts.clone(),
            &services,
            PresenceServiceClient::new(cfg.services.transport(Service::Presence, None)?),
            streams.clone(),
        ),
        fanout::follow_call(
            io.clone(),
            mounts.clone(),
            &services,
            CallServiceClient::new(cfg.services.transport(Service::Call, None)?),
            streams.clone(),
        ),
        fanout::follow_notify(
            io.clone(),
            mounts.clone(),
            &services,
            NotifyServiceClient::new(cfg.services.transport(Service::Notify, None)?),
            streams.clone(),
        ),
    ];
    followers.push(crate::session::liveness::spawn(
        services.clone(),
        cfg.presence_heartbeat,
    ));
    followers.extend(
        services
            .recovery
            .spawn_keepalive(io.clone(), mounts.iter().map(|m| m.path).collect()),
    );
    followers.push(crate::heartbeat::spawn(
        io.clone(),
        mounts.clone(),
        cfg.heartbeat,
    ));

    let app = Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(Probe {
            streams: streams.clone(),
        })
        .route("/metrics", get(metrics))
        .merge(
            crate::rest::router()
                .layer(DefaultBodyLimit::max(cfg.max_packet_bytes))
                .with_state(services),
        )
        .layer(layer)
        .layer(CorsLayer::very_permissive());

    let (stop, stopped) = oneshot::channel::<()>();
    let io_for_close = io.clone();
    let server = tokio::spawn(async move {
        let shutdown = async move {
            let _ = stopped.await;
            io_for_close.close().await;
        };
        // Every Socket.IO packet is a small write (an ack, a `new_message`),
        // often right after another: with Nagle's algorithm the kernel holds
        // the second until the client acknowledges the first, which a client
        // with nothing to send delays by up to 40 ms. The edge sends what it
        // has at once.
        let listener = listener.tap_io(|tcp| {
            if let Err(e) = tcp.set_nodelay(true) {
                tracing::debug!(error = %e, "TCP_NODELAY not set on a connection");
            }
        });
        if let Err(e) = axum::serve(listener, app)
            .with_graceful_shutdown(shutdown)
            .await
        {
            tracing::error!(error = %e, "edge server failed");
        }
    });
    tracing::info!(%addr, default_contract = %cfg.default_contract, "edge listening");
    Ok(EdgeHandle {
        addr,
        streams,
        stop: Some(stop),
        server,
        followers,
    })
}
