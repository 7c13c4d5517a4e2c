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
//! Like every service it is a [`Config`] (`config`), [`build`] into a
//! [`Service`] (connected, migrated, following chat-service when given its
//! [`MessageSources`]) and served — alone on a listener ([`Service::serve`],
//! [`serve`]) or, in the embedded binary, as parts of one gRPC server
//! ([`Service::into_parts`]).
//!
//! Modules: [`config`] (settings), [`notify`] (the rules, a file per
//! capability), [`entity`] / [`migration`] (the tables), [`messages`] (the
//! chat follower and its [`MessageSources`]), [`grpc`] (the thin RPC
//! layer).

pub mod config;
pub mod entity;
pub mod grpc;
pub mod messages;
pub mod migration;
pub mod notify;

use std::sync::Arc;

use anyhow::Context;
use confab_kit::RedisBus;
use confab_proto::bus::{EventBus, LocalBus};
use confab_proto::server::{Closer, GrpcServer, ServiceHandle, closing};
use confab_proto::v1::NotifyEvent;
use confab_proto::v1::notify_service_server::NotifyServiceServer;
use sea_orm::DatabaseConnection;
use tokio::net::TcpListener;
use tonic::codegen::{Body, Bytes, StdError};

pub use config::Config;
pub use grpc::NotifyGrpc;
pub use messages::{MessageNotifications, MessageSources};
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

/// notify-service, built and ready to serve.
pub struct Service {
    server: NotifyServiceServer<NotifyGrpc>,
    closer: Closer,
}

impl Service {
    /// Serves notify-service alone on `listener`, with health and
    /// reflection, until the returned handle shuts down.
    pub async fn serve(self, listener: TcpListener) -> std::io::Result<ServiceHandle> {
        GrpcServer::new()
            .add(self.server, self.closer)
            .spawn(listener)
            .await
    }

    /// The gRPC service and the signal that ends its `Subscribe` streams and
    /// its message follower at shutdown, for a server that hosts several
    /// services (hand both to `confab_proto::server::GrpcServer::add`).
    pub fn into_parts(self) -> (NotifyServiceServer<NotifyGrpc>, Closer) {
        (self.server, self.closer)
    }
}

/// notify-service as `config` says: connects (and migrates) its database,
/// opens its event log — in Redis, shared with its replicas, when
/// `redis_url` is set; in this process otherwise — and, given `sources`, follows chat-service for message notifications
/// ([`messages`]) until the service's [`Closer`] signals shutdown. Any
/// transport works: network channels ([`MessageSources::from_config`]), or
/// in-process services in the embedded mode.
pub async fn build<C, P>(
    config: Config,
    sources: Option<MessageSources<C, P>>,
) -> anyhow::Result<Service>
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
    let db = connect(&config.database_url)
        .await
        .context("connecting to the notify database")?;
    let bus: Arc<dyn EventBus<NotifyEvent>> = match &config.redis_url {
        Some(url) => Arc::new(
            RedisBus::open(url, &config.redis_prefix, config.event_log_retention)
                .await
                .context("opening the event log in Redis")?,
        ),
        None => Arc::new(LocalBus::new(EVENT_LOG)),
    };
    let notify = Notify::new(db, bus);
    let (closer, closing) = closing();
    match sources {
        Some(sources) => {
            let follower = messages::spawn(notify.clone(), sources.chat, sources.presence);
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
    Ok(Service {
        server: NotifyServiceServer::new(NotifyGrpc::new(notify, closing)),
        closer,
    })
}

/// Builds notify-service as `config` says and serves it on `listener`,
/// following chat-service and presence-service at the config's URLs (over
/// the network) when both are set.
pub async fn serve(listener: TcpListener, config: Config) -> anyhow::Result<ServiceHandle> {
    let sources = MessageSources::from_config(&config)?;
    Ok(build(config, sources).await?.serve(listener).await?)
}
