//! chat-service owns conversations, their members and their messages: send,
//! edit, soft delete, recall, reactions, read and delivered receipts,
//! idempotency by the sender's client message id, history and catch-up.
//!
//! It stores them with sea-orm (SQLite by default, PostgreSQL when the
//! database URL says so), runs its migrations on start, and streams one
//! canonical `ChatEvent` per change from `Subscribe`. On SQLite it keeps
//! conversations' member lists in memory for the hot path (`members`): one
//! chat-service owns a SQLite file, so it sees every change to them; on
//! PostgreSQL it reads them for many sends in one statement. It writes new
//! messages together, many in one statement (on PostgreSQL several such
//! statements at once), announced in the order of their ids (`writer`).
//!
//! Like every service it is a [`Config`] (`config`), [`build`] into a
//! [`Service`] (connected, migrated, its rate limit opened) and served —
//! alone on a listener ([`Service::serve`], [`serve`]) or, in the embedded
//! binary, as parts of one gRPC server ([`Service::into_parts`]).
//!
//! Modules: [`config`] (settings), [`chat`] (the rules, a file per
//! capability), [`members`] (the member cache and reader), [`writer`]
//! (grouped inserts), [`rate`] (the message rate limit), [`entity`] / [`migration`]
//! (the tables), [`grpc`] (the thin RPC layer).
//!
//! It must not know Socket.IO, any frontend contract, or the other services:
//! who is online, typing or in a call is not its business.

pub mod chat;
pub mod config;
pub mod entity;
pub mod grpc;
pub mod members;
pub mod migration;
pub mod rate;
pub mod writer;

use std::sync::Arc;

use anyhow::Context;
use confab_kit::RedisBus;
use confab_proto::bus::{EventBus, LocalBus};
use confab_proto::server::{Closer, GrpcServer, ServiceHandle, closing};
use confab_proto::v1::ChatEvent;
use confab_proto::v1::chat_service_server::ChatServiceServer;
use sea_orm::DatabaseConnection;
use tokio::net::TcpListener;

pub use chat::Chat;
pub use config::Config;
pub use grpc::ChatGrpc;
pub use rate::RateLimit;

/// The gRPC name health checks ask about.
pub const SERVICE_NAME: &str = "confab.v1.ChatService";

/// How many recent events chat-service keeps in this process (without
/// Redis) for subscribers to read at their pace and to resume from after a
/// reconnect.
pub const EVENT_LOG: usize = 4096;

/// Connects to the database and brings its schema up to date.
pub async fn connect(url: &str) -> anyhow::Result<DatabaseConnection> {
    confab_kit::connect::<migration::Migrator>(url).await
}

/// chat-service, built and ready to serve.
pub struct Service {
    server: ChatServiceServer<ChatGrpc>,
    closer: Closer,
}

impl Service {
    /// Serves chat-service alone on `listener`, with health and reflection,
    /// until the returned handle shuts down.
    pub async fn serve(self, listener: TcpListener) -> std::io::Result<ServiceHandle> {
        GrpcServer::new()
            .add(self.server, self.closer)
            .spawn(listener)
            .await
    }

    /// The gRPC service and the signal that ends its `Subscribe` streams at
    /// shutdown, for a server that hosts several services (hand both to
    /// `confab_proto::server::GrpcServer::add`).
    pub fn into_parts(self) -> (ChatServiceServer<ChatGrpc>, Closer) {
        (self.server, self.closer)
    }
}

/// chat-service as `config` says: connects (and migrates) its database and
/// opens its message rate limit and its event log — in Redis, shared with
/// its replicas, when `redis_url` is set; in this process otherwise.
pub async fn build(config: Config) -> anyhow::Result<Service> {
    config.validate()?;
    let db = connect(&config.database_url)
        .await
        .context("connecting to the chat database")?;
    let (rate, bus): (RateLimit, Arc<dyn EventBus<ChatEvent>>) = match &config.redis_url {
        Some(url) => {
            let rate =
                RateLimit::redis(config.message_rate_limit, url, &config.redis_prefix).await?;
            let bus = RedisBus::open(url, &config.redis_prefix, config.event_log_retention)
                .await
                .context("opening the event log in Redis")?;
            (rate, Arc::new(bus))
        }
        None => (
            RateLimit::local(config.message_rate_limit),
            Arc::new(LocalBus::new(EVENT_LOG)),
        ),
    };
    let chat = Chat::new(db, bus).with_rate_limit(rate);
    let (closer, closing) = closing();
    Ok(Service {
        server: ChatServiceServer::new(ChatGrpc::new(chat, closing)),
        closer,
    })
}

/// Builds chat-service as `config` says and serves it on `listener`.
pub async fn serve(listener: TcpListener, config: Config) -> anyhow::Result<ServiceHandle> {
    Ok(build(config).await?.serve(listener).await?)
}
