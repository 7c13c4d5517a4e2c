//! chat-service owns conversations, their members and their messages: send,
//! edit, soft delete, recall, reactions, read and delivered receipts,
//! idempotency by the sender's client message id, history and catch-up.
//!
//! It stores them with sea-orm (SQLite by default, PostgreSQL when the
//! database URL says so), runs its migrations on start, and streams one
//! canonical `ChatEvent` per change from `Subscribe`.
//!
//! It must not know Socket.IO, any frontend contract, or the other services:
//! who is online, typing or in a call is not its business.

pub mod chat;
pub mod entity;
pub mod grpc;
pub mod migration;

use std::sync::Arc;
use std::time::Duration;

use confab_proto::bus::LocalBus;
use confab_proto::server::{ServiceHandle, closing, spawn};
use confab_proto::v1::chat_service_server::ChatServiceServer;
use sea_orm::{ConnectOptions, Database, DatabaseConnection};
use sea_orm_migration::MigratorTrait;
use tokio::net::TcpListener;

pub use chat::Chat;

/// The gRPC name health checks ask about.
pub const SERVICE_NAME: &str = "confab.v1.ChatService";

/// Connects to the database and brings its schema up to date.
pub async fn connect(url: &str) -> anyhow::Result<DatabaseConnection> {
    let mut opts = ConnectOptions::new(url.to_string());
    opts.max_connections(if url.starts_with("sqlite") { 4 } else { 10 })
        .connect_timeout(Duration::from_secs(10))
        .sqlx_logging(false);
    let db = Database::connect(opts).await?;
    migration::Migrator::up(&db, None).await?;
    Ok(db)
}

/// Starts chat-service on `listener` over an already-migrated database.
pub async fn serve(
    listener: TcpListener,
    db: DatabaseConnection,
) -> std::io::Result<ServiceHandle> {
    let chat = Chat::new(db, Arc::new(LocalBus::new(4096)));
    let (closer, closing) = closing();
    let routes =
        tonic::service::Routes::new(ChatServiceServer::new(grpc::ChatGrpc::new(chat, closing)));
    spawn(listener, SERVICE_NAME, routes, closer).await
}
