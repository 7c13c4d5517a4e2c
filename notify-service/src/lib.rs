//! notify-service owns notifications and the domain events of the rest of a
//! product:
//!
//! * **Publish**, for internal services: a domain event (`post_liked`,
//!   `story_created`, `friend_request_*`, `app.<name>`) with a JSON payload
//!   to a list of users or to everyone connected, optionally keeping a
//!   notification for each recipient; idempotent by the publisher's key.
//! * **Notifications** in its own tables: listed a page at a time, unread
//!   counts, mark read (one, several, all; only the owner's).
//! * **Reports** from clients (`story_viewed`, the viewer being the token's
//!   user), recorded and readable by the story's publisher
//!   (`ListStoryViews`).
//! * **Message notifications**: a chat message to a member with no live
//!   session becomes a `message` notification for them ([`messages`]).
//!
//! Every change is published on its bus as a `NotifyEvent` with its
//! audience and streamed from `Subscribe`. It stores its data with sea-orm
//! (SQLite by default, PostgreSQL when the URL says so) and migrates on
//! start.
//!
//! It must not know Socket.IO or any frontend contract (event types and
//! payloads are opaque to it beyond their checks), nor another service's
//! data: messages and presence come only from chat-service's and
//! presence-service's gRPC APIs.
//!
//! Modules: [`config`] (settings), [`notify`] (the rules, a file per
//! capability), [`entity`] /
//! [`migration`] (the tables), [`messages`] (the chat follower), [`grpc`]
//! (the thin RPC layer).

pub mod config;
pub mod entity;
pub mod grpc;
pub mod messages;
pub mod migration;
pub mod notify;

use std::sync::Arc;

use anyhow::Context;
use confab_proto::bus::LocalBus;
use confab_proto::server::{Closer, Closing, GrpcServer, ServiceHandle, closing};
use confab_proto::v1::chat_service_client::ChatServiceClient;
use confab_proto::v1::notify_service_server::NotifyServiceServer;
use confab_proto::v1::presence_service_client::PresenceServiceClient;
use sea_orm::DatabaseConnection;
use tokio::net::TcpListener;
use tonic::codegen::{Body, Bytes, StdError};
use tonic::transport::Endpoint;

pub use config::NotifyConfig;
pub use grpc::NotifyGrpc;
pub use messages::MessageNotifications;
pub use notify::Notify;

/// The gRPC name health checks ask about.
pub const SERVICE_NAME: &str = "confab.v1.NotifyService";

/// How many recent events notify-service keeps for subscribers to read at
/// their pace and to resume from after a reconnect.
pub const EVENT_LOG: usize = 4096;

/// Connects to the database and brings its schema up to date (creating a
/// SQLite file's directory first).
pub async fn connect(url: &str) -> anyhow::Result<DatabaseConnection> {
    confab_kit::connect::<migration::Migrator>(url).await
}

/// The notify domain over an already-migrated database, with its own
/// in-process event bus.
pub fn open(db: DatabaseConnection) -> Notify {
    Notify::new(db, Arc::new(LocalBus::new(EVENT_LOG)))
}

/// The gRPC service for `notify`, and the [`Closer`] that ends its
/// `Subscribe` streams (hand both to `confab_proto::server::GrpcServer`).
pub fn build(notify: Notify) -> (NotifyServiceServer<NotifyGrpc>, Closer) {
    let (closer, closing) = closing();
    (build_with(notify, closing), closer)
}

fn build_with(notify: Notify, closing: Closing) -> NotifyServiceServer<NotifyGrpc> {
    NotifyServiceServer::new(NotifyGrpc::new(notify, closing))
}

/// Starts message notifications ([`messages`]): follows `chat`'s events and
/// asks `presence` who is online. Any transport works (network channels,
/// or in-process services in the embedded mode).
pub fn spawn_message_notifications<C, P>(
    notify: Notify,
    chat: ChatServiceClient<C>,
    presence: PresenceServiceClient<P>,
) -> MessageNotifications
where
    C: tonic::client::GrpcService<tonic::body::Body> + Clone + Send + 'static,
    C::Error: Into<StdError>,
    C::Future: Send,
    C::ResponseBody: Body<Data = Bytes> + Send + 'static,
    <C::ResponseBody as Body>::Error: Into<StdError> + Send,
    P: tonic::client::GrpcService<tonic::body::Body> + Clone + Send + 'static,
    P::Error: Into<StdError>,
    P::Future: Send,
    P::ResponseBody: Body<Data = Bytes> + Send + 'static,
    <P::ResponseBody as Body>::Error: Into<StdError> + Send,
{
    messages::spawn(notify, chat, presence)
}

/// Starts notify-service on `listener` as `config` says: connects (and
/// migrates) its database, serves gRPC, and follows chat-service for
/// message notifications when both service URLs are set. Shutting the
/// handle down stops the follower too.
pub async fn serve_with(
    listener: TcpListener,
    config: NotifyConfig,
) -> anyhow::Result<ServiceHandle> {
    let sources = config.message_sources()?;
    let db = connect(&config.database_url)
        .await
        .context("connecting to the notify database")?;
    let notify = open(db);
    let (closer, closing) = closing();
    match sources {
        Some((chat_url, presence_url)) => {
            let chat = Endpoint::from_shared(chat_url)
                .context("--chat-url")?
                .connect_lazy();
            let presence = Endpoint::from_shared(presence_url)
                .context("--presence-url")?
                .connect_lazy();
            let follower = spawn_message_notifications(
                notify.clone(),
                ChatServiceClient::new(chat),
                PresenceServiceClient::new(presence),
            );
            let closed = closing.clone();
            tokio::spawn(async move {
                closed.closed().await;
                follower.stop();
            });
        }
        None => tracing::info!(
            "message notifications are off: set --chat-url and --presence-url \
             (NOTIFY_CHAT_URL, NOTIFY_PRESENCE_URL) to turn them on"
        ),
    }
    Ok(GrpcServer::new()
        .add(build_with(notify, closing), closer)
        .spawn(listener)
        .await?)
}
