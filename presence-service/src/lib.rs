//! presence-service owns who is connected right now and what follows from
//! it: sessions (one per authenticated socket, on some edge), online /
//! offline transitions, last-seen times, per-user session limits, and
//! typing states that end by themselves.
//!
//! A user is online while at least one of their sessions is alive on any
//! edge. Edges heartbeat; the sessions of an edge that stops expire after
//! the session TTL, and a background sweeper turns that into offline events.
//! Sessions and typing live in a [`store::Store`] — in this process, or in
//! Redis so that several replicas share them — and last-seen times in a
//! sea-orm database (SQLite or PostgreSQL, migrated on start). Every
//! transition is published once, as a `PresenceEvent` with its audience,
//! and streamed from `Subscribe`.
//!
//! It must not know Socket.IO or any frontend contract (the contract name a
//! session carries is an opaque label), nor chat data: who watches a user
//! and who is in a conversation arrive in each request, filled in by the
//! edge.
//!
//! Like every service it is a [`Config`] (`config`), [`build`] into a
//! [`Service`] (connected, migrated, its store opened, its sweeper started)
//! and served — alone on a listener ([`Service::serve`], [`serve`]) or, in
//! the embedded binary, as parts of one gRPC server
//! ([`Service::into_parts`]).
//!
//! Modules: [`config`] (settings), [`presence`] (the rules), [`store`]
//! (sessions and typing, in memory or Redis), [`last_seen`] and [`entity`] /
//! [`migration`] (the durable table), [`sweeper`] (expiry), [`grpc`] (the
//! thin RPC layer).

pub mod config;
pub mod entity;
pub mod grpc;
pub mod last_seen;
pub mod migration;
pub mod presence;
pub mod store;
pub mod sweeper;

use std::sync::Arc;

use anyhow::Context;
use confab_kit::RedisBus;
use confab_proto::bus::{EventBus, LocalBus};
use confab_proto::server::{Closer, GrpcServer, ServiceHandle, closing};
use confab_proto::v1::PresenceEvent;
use confab_proto::v1::presence_service_server::PresenceServiceServer;
use sea_orm::DatabaseConnection;
use tokio::net::TcpListener;

pub use config::Config;
pub use presence::Presence;

/// The gRPC name health checks ask about.
pub const SERVICE_NAME: &str = "confab.v1.PresenceService";

/// How many recent events presence-service keeps for subscribers to read at
/// their pace and to resume from after a reconnect.
pub const EVENT_LOG: usize = 4096;

/// Connects to the last-seen database and brings its schema up to date.
pub async fn connect(url: &str) -> anyhow::Result<DatabaseConnection> {
    confab_kit::connect::<migration::Migrator>(url).await
}

/// The store `config` asks for: Redis when it has a URL, else in-process.
pub async fn open_store(config: &Config) -> anyhow::Result<Arc<dyn store::Store>> {
    Ok(match &config.redis_url {
        Some(url) if !url.trim().is_empty() => Arc::new(
            store::RedisStore::connect(url, &config.redis_prefix)
                .await
                .context("connecting to Redis")?,
        ),
        _ => Arc::new(store::MemoryStore::new()),
    })
}

/// presence-service, built and ready to serve.
pub struct Service {
    server: PresenceServiceServer<grpc::PresenceGrpc>,
    closer: Closer,
}

impl Service {
    /// Serves presence-service alone on `listener`, with health and
    /// reflection, until the returned handle shuts down.
    pub async fn serve(self, listener: TcpListener) -> std::io::Result<ServiceHandle> {
        GrpcServer::new()
            .add(self.server, self.closer)
            .spawn(listener)
            .await
    }

    /// The gRPC service and the signal that ends its `Subscribe` streams and
    /// its sweeper at shutdown, for a server that hosts several services
    /// (hand both to `confab_proto::server::GrpcServer::add`).
    pub fn into_parts(self) -> (PresenceServiceServer<grpc::PresenceGrpc>, Closer) {
        (self.server, self.closer)
    }
}

/// presence-service as `config` says: connects (and migrates) its
/// database, opens its store and starts the sweeper, which runs until the
/// service's [`Closer`] signals shutdown.
pub async fn build(config: Config) -> anyhow::Result<Service> {
    config.validate()?;
    let db = connect(&config.database_url)
        .await
        .context("connecting to the presence database")?;
    let store = open_store(&config).await?;
    let bus: Arc<dyn EventBus<PresenceEvent>> = match &config.redis_url {
        Some(url) => Arc::new(
            RedisBus::open(url, &config.redis_prefix, config.event_log_retention)
                .await
                .context("opening the event log in Redis")?,
        ),
        None => Arc::new(LocalBus::new(EVENT_LOG)),
    };
    let presence = Presence::new(store, last_seen::LastSeen::new(db), bus, &config);
    let (closer, closing) = closing();
    sweeper::spawn(presence.clone(), config.sweep_interval(), closing.clone());
    Ok(Service {
        server: PresenceServiceServer::new(grpc::PresenceGrpc::new(presence, closing)),
        closer,
    })
}

/// Builds presence-service as `config` says and serves it on `listener`.
pub async fn serve(listener: TcpListener, config: Config) -> anyhow::Result<ServiceHandle> {
    Ok(build(config).await?.serve(listener).await?)
}
