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
//! Rules live in `calls.rs`: caller and callee share a conversation (it
//! asks chat-service over gRPC, `conversations.rs`), a user in an ongoing
//! call is busy (`CONFLICT`), at most 5 call starts a minute per user
//! (`LIMIT_EXCEEDED` with a retry-after), only participants signal and
//! only to participants (`PERMISSION_DENIED`), and each RPC refuses what
//! the call's state does not allow (`CONFLICT`, `NOT_FOUND`). Devices are
//! opaque session ids: a call rings every session of a callee; once one
//! answers, signaling for that user goes to that session only.
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
use confab_proto::bus::LocalBus;
use confab_proto::server::{Closer, GrpcServer, ServiceHandle, closing};
use confab_proto::v1::call_service_server::CallServiceServer;
use sea_orm::{ConnectOptions, Database, DatabaseConnection};
use sea_orm_migration::MigratorTrait;
use tokio::net::TcpListener;

pub use calls::Calls;
pub use config::{CallConfig, CallTimers};
pub use conversations::Conversations;

/// The gRPC name health checks ask about.
pub const SERVICE_NAME: &str = "confab.v1.CallService";

/// How many recent events call-service keeps for subscribers to read at
/// their pace and to resume from after a reconnect.
pub const EVENT_LOG: usize = 4096;

/// Connects to the call database and brings its schema up to date.
pub async fn connect(url: &str) -> anyhow::Result<DatabaseConnection> {
    let mut opts = ConnectOptions::new(url.to_string());
    opts.connect_timeout(Duration::from_secs(10))
        .sqlx_logging(false);
    if url.starts_with("sqlite") {
        // One writer at a time, as in chat-service.
        opts.max_connections(1).map_sqlx_sqlite_opts(|o| {
            o.pragma("journal_mode", "WAL")
                .pragma("synchronous", "NORMAL")
                .busy_timeout(Duration::from_secs(5))
        });
    } else {
        opts.max_connections(10);
    }
    let db = Database::connect(opts).await?;
    migration::Migrator::up(&db, None).await?;
    Ok(db)
}

/// call-service over an already-migrated database, ready to serve: its
/// gRPC service and the signal that ends its streams and its timers at
/// shutdown. `chat` is how it reaches chat-service (any tonic transport:
/// a network channel, or chat-service's routes in this process). The
/// timers start here: overdue calls are resolved right away.
pub fn build(
    db: DatabaseConnection,
    timers: CallTimers,
    chat: Arc<dyn Conversations>,
) -> (CallServiceServer<grpc::CallGrpc>, Closer) {
    let calls = Calls::new(db, Arc::new(LocalBus::new(EVENT_LOG)), chat, timers);
    let (closer, closing) = closing();
    sweeper::spawn(calls.clone(), closing.clone());
    (
        CallServiceServer::new(grpc::CallGrpc::new(calls, closing)),
        closer,
    )
}

/// Starts call-service on `listener`: connects (and migrates) the database
/// `config` names and serves until the returned handle shuts down.
pub async fn serve(
    listener: TcpListener,
    config: CallConfig,
    chat: Arc<dyn Conversations>,
) -> anyhow::Result<ServiceHandle> {
    config.timers.validate()?;
    let db = connect(&config.database_url)
        .await
        .context("connecting to the call database")?;
    let (svc, closer) = build(db, config.timers, chat);
    Ok(GrpcServer::new().add(svc, closer).spawn(listener).await?)
}

/// A chat-service client over the network at `url` (connected lazily, so
/// call-service starts while chat-service is down), with a request timeout.
pub fn chat_at(url: &str) -> anyhow::Result<Arc<dyn Conversations>> {
    let channel = tonic::transport::Endpoint::from_shared(url.to_string())?
        .connect_timeout(Duration::from_secs(1))
        .timeout(Duration::from_secs(5))
        .connect_lazy();
    Ok(Arc::new(
        confab_proto::v1::chat_service_client::ChatServiceClient::new(channel),
    ))
}
