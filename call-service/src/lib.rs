//! call-service owns calls: the state machine (ringing → ongoing → ended,
//! or rejected / cancelled / missed), the relay of WebRTC signaling (SDP
//! offers and answers, ICE candidates) between a call's participants, call
//! controls (mute, video, screen share), the call timers and the call
//! records (participants, who joined and left when, media, end reason,
//! duration).
//!
//! It stores calls with sea-orm (SQLite by default, PostgreSQL when the
//! database URL says so) in its own tables (`calls`, `call_participants`),
//! runs its migrations on start, and streams one canonical `CallEvent` per
//! transition from `Subscribe`, each with its `Audience`. Its timers
//! (`sweeper.rs`) are deadlines in those tables, so a restarted
//! call-service resolves overdue calls on start.
//!
//! Rules live in `calls/` (one capability per module): caller and callee
//! share a conversation (it asks chat-service over gRPC,
//! `conversations.rs`), a user in an ongoing call is busy (`USER_BUSY`),
//! at most 5 call starts a minute per user (`LIMIT_EXCEEDED` with a
//! retry-after), only participants signal and only to participants
//! (`PERMISSION_DENIED`), and each RPC refuses what the call's state does
//! not allow (`CONFLICT` with the call's state in the error's `state`,
//! `NOT_FOUND`). `Hangup` decides by the call's state whether hanging up
//! ends, leaves, cancels or declines it, so no client tries RPCs in turn.
//! Devices are opaque session ids: a call rings every session of a callee;
//! once one answers, signaling for that user goes to that session only.
//!
//! Assembly: [`Config`] → [`build`] (connects and migrates the database
//! with `confab-kit`'s settings, starts the timers) → [`Service::serve`],
//! or [`Service::into_parts`] for a process that serves several services
//! on one address. Storage failures (`db_err`) and the clock (`now_ms`)
//! are `confab-kit`'s too.
//!
//! It must not know Socket.IO, any frontend contract, or another service's
//! data: conversations and members are chat-service's, asked over its API.

pub mod calls;
pub mod config;
pub mod conversations;
pub mod entity;
pub mod grpc;
pub mod migration;
pub mod sweeper;

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use confab_kit::RedisBus;
use confab_proto::bus::{EventBus, LocalBus};
use confab_proto::failover::{self, Failover};
use confab_proto::server::{Closer, GrpcServer, ServiceHandle, closing};
use confab_proto::v1::CallEvent;
use confab_proto::v1::call_service_server::CallServiceServer;
use sea_orm::DatabaseConnection;
use tokio::net::TcpListener;

pub use calls::Calls;
pub use config::{CallTimers, Config};
pub use conversations::Conversations;

/// The gRPC name health checks ask about.
pub const SERVICE_NAME: &str = "confab.v1.CallService";

/// How many recent events call-service keeps for subscribers to read at
/// their pace and to resume from after a reconnect.
pub const EVENT_LOG: usize = 4096;

/// Connects to the call database and brings its schema up to date.
pub async fn connect(url: &str) -> anyhow::Result<DatabaseConnection> {
    confab_kit::connect::<migration::Migrator>(url).await
}

/// call-service assembled, not yet serving: its gRPC service and the
/// signal that ends its streams and its timers at shutdown.
pub struct Service {
    server: CallServiceServer<grpc::CallGrpc>,
    closer: Closer,
}

/// Builds call-service from `config`: connects to (and migrates) its
/// database and starts its timers, which resolve overdue calls right away
/// and stop when the service closes. `chat` is how it reaches chat-service
/// (any tonic transport: a network channel, or chat-service's routes in
/// this process).
pub async fn build(config: Config, chat: Arc<dyn Conversations>) -> anyhow::Result<Service> {
    config.timers.validate()?;
    let db = connect(&config.database_url)
        .await
        .context("connecting to the call database")?;
    let (bus, shared): (Arc<dyn EventBus<CallEvent>>, bool) = match &config.redis_url {
        Some(url) => (
            Arc::new(
                RedisBus::open(url, &config.redis_prefix, config.event_log_retention)
                    .await
                    .context("opening the event log in Redis")?,
            ),
            true,
        ),
        None => (Arc::new(LocalBus::new(EVENT_LOG)), false),
    };
    let calls = Calls::new(db, bus, chat, config.timers);
    let (closer, closing) = closing();
    sweeper::spawn(calls.clone(), closing.clone());
    if shared {
        // Another replica's call sets deadlines this one must also watch:
        // its events wake this sweeper, so a call rings out even when the
        // replica that started it is gone.
        sweeper::follow_replicas(calls.clone(), closing.clone());
    }
    Ok(Service {
        server: CallServiceServer::new(grpc::CallGrpc::new(calls, closing)),
        closer,
    })
}

impl Service {
    /// Serves call-service alone on `listener` until the returned handle
    /// shuts down.
    pub async fn serve(self, listener: TcpListener) -> std::io::Result<ServiceHandle> {
        GrpcServer::new()
            .add(self.server, self.closer)
            .spawn(listener)
            .await
    }

    /// The gRPC service and its closer, for a process that serves several
    /// services together.
    pub fn into_parts(self) -> (CallServiceServer<grpc::CallGrpc>, Closer) {
        (self.server, self.closer)
    }
}

/// Builds call-service from `config` and serves it on `listener`.
pub async fn serve(
    listener: TcpListener,
    config: Config,
    chat: Arc<dyn Conversations>,
) -> anyhow::Result<ServiceHandle> {
    Ok(build(config, chat).await?.serve(listener).await?)
}

/// A chat-service client over the network at `urls` — one address, or its
/// replicas comma-separated, balanced and failed over per call
/// (`confab_proto::failover`) — connected lazily, so call-service starts
/// while chat-service is down, with a request timeout.
pub fn chat_at(urls: &str) -> anyhow::Result<Arc<dyn Conversations>> {
    let replicas = Failover::lazy(urls, |e| {
        failover::endpoint(e, Some(Duration::from_secs(5)))
    })
    .map_err(|e| anyhow::anyhow!("chat-service's URL: {e}"))?;
    Ok(Arc::new(
        confab_proto::v1::chat_service_client::ChatServiceClient::new(replicas),
    ))
}
