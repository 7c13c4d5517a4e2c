//! chat-service owns conversations, their members and their messages: send,
//! edit, soft delete, recall, reactions, read and delivered receipts,
//! idempotency by the sender's client message id, history and catch-up.
//!
//! It stores them with sea-orm (SQLite by default, PostgreSQL when the
//! database URL says so), runs its migrations on start, and streams one
//! canonical `ChatEvent` per change from `Subscribe`. On SQLite it keeps
//! conversations' member lists in memory for the hot path (`members`): one
//! chat-service owns a SQLite file, so it sees every change to them; and
//! it writes new messages together, many in one statement, announced in
//! the order of their ids (`writer`).
//!
//! It must not know Socket.IO, any frontend contract, or the other services:
//! who is online, typing or in a call is not its business.

pub mod chat;
pub mod entity;
pub mod grpc;
pub mod members;
pub mod migration;
pub mod rate;
pub mod writer;

use std::sync::Arc;

use confab_proto::bus::LocalBus;
use confab_proto::server::{Closer, GrpcServer, ServiceHandle, closing};
use confab_proto::v1::chat_service_server::ChatServiceServer;
use sea_orm::DatabaseConnection;
use tokio::net::TcpListener;

pub use chat::Chat;
pub use rate::RateLimit;

/// The gRPC name health checks ask about.
pub const SERVICE_NAME: &str = "confab.v1.ChatService";

/// How many recent events chat-service keeps for subscribers to read at
/// their pace and to resume from after a reconnect.
pub const EVENT_LOG: usize = 4096;

/// Connects to the database and brings its schema up to date.
pub async fn connect(url: &str) -> anyhow::Result<DatabaseConnection> {
    confab_kit::connect::<migration::Migrator>(url).await
}

/// chat-service over an already-migrated database, ready to serve: its
/// gRPC service and the signal that ends its streams at shutdown.
pub fn build(db: DatabaseConnection) -> (ChatServiceServer<grpc::ChatGrpc>, Closer) {
    build_with(db, RateLimit::local(rate::DEFAULT_LIMIT))
}

/// [`build`] with a message rate limit of its own.
pub fn build_with(
    db: DatabaseConnection,
    rate: RateLimit,
) -> (ChatServiceServer<grpc::ChatGrpc>, Closer) {
    let chat = Chat::new(db, Arc::new(LocalBus::new(EVENT_LOG))).with_rate_limit(rate);
    let (closer, closing) = closing();
    (
        ChatServiceServer::new(grpc::ChatGrpc::new(chat, closing)),
        closer,
    )
}

/// Starts chat-service on `listener` over an already-migrated database.
pub async fn serve(
    listener: TcpListener,
    db: DatabaseConnection,
) -> std::io::Result<ServiceHandle> {
    serve_with(listener, db, RateLimit::local(rate::DEFAULT_LIMIT)).await
}

/// [`serve`] with a message rate limit of its own.
pub async fn serve_with(
    listener: TcpListener,
    db: DatabaseConnection,
    rate: RateLimit,
) -> std::io::Result<ServiceHandle> {
    let (svc, closer) = build_with(db, rate);
    GrpcServer::new().add(svc, closer).spawn(listener).await
}

/// The message rate limit `limit` a second per user: in Redis at
/// `redis_url` (keys under `{confab:chat}:rate:`) when given, so replicas
/// share it, else in this process.
pub async fn rate_limit(limit: u32, redis_url: Option<&str>) -> anyhow::Result<RateLimit> {
    match redis_url {
        Some(url) => RateLimit::redis(limit, url, REDIS_PREFIX).await,
        None => Ok(RateLimit::local(limit)),
    }
}

/// The prefix of chat-service's Redis keys.
pub const REDIS_PREFIX: &str = "confab:chat";
