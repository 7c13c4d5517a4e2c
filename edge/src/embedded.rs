//! The embedded mode: the edge and all four services in one process. The
//! edge calls the services' gRPC handlers in-process (no socket between
//! them); the same four gRPC APIs, with health and reflection, are served
//! on `CONFAB_GRPC_LISTEN` (default `127.0.0.1:50051`) for internal
//! services. chat-service and call-service are on SQLite in the data
//! directory (or on `DATABASE_URL`; call-service reads the `CONFAB_CALL_*`
//! timers), presence-service's last-seen times in `presence.db` there (its
//! sessions, and chat-service's message rate windows, in `REDIS_URL` when set), notify-service in `notify.db` there
//! (or on `DATABASE_URL`, beside chat-service's tables). call-service asks
//! chat-service, and notify-service follows chat-service and
//! presence-service, in-process.
//!
//! On first start a random JWT secret is written to `<data dir>/jwt_secret`
//! (mode 0600) so tokens survive restarts; `CONFAB_JWT_SECRET` overrides it.

use std::path::{Path, PathBuf};

use anyhow::Context;
use confab_proto::server::{GrpcServer, ServiceHandle};
use rand::RngCore;
use tokio::net::TcpListener;

use crate::app::{self, EdgeHandle};
use crate::clients::{Service, ServiceTargets};
use crate::config::{EdgeArgs, EdgeConfig};
use confab_proto::v1::chat_service_client::ChatServiceClient;
use confab_proto::v1::presence_service_client::PresenceServiceClient;
use std::time::Duration;
use tonic::service::Routes;

/// Settings only the embedded mode has.
#[derive(Debug, Clone, clap::Args)]
pub struct EmbeddedArgs {
    /// Directory for the SQLite database and the generated JWT secret.
    #[arg(long, env = "CONFAB_DATA_DIR", default_value = "./data")]
    pub data_dir: PathBuf,
    /// chat-service's database; SQLite in the data directory when unset.
    #[arg(long, env = "DATABASE_URL")]
    pub database_url: Option<String>,
    /// presence-service's sessions and typing in Redis; in-process when unset.
    #[arg(long, env = "REDIS_URL")]
    pub redis_url: Option<String>,
    /// Where the four services' gRPC APIs (with health and reflection) are
    /// served, for internal services. The edge in this process calls them
    /// directly, not through this address.
    #[arg(long, env = "CONFAB_GRPC_LISTEN", default_value = "127.0.0.1:50051")]
    pub grpc_listen: String,
    /// The most messages one user may send in any one second (in Redis
    /// when `REDIS_URL` is set).
    #[arg(long, env = "CONFAB_MESSAGE_RATE_LIMIT", default_value_t = confab_chat::rate::DEFAULT_LIMIT,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub message_rate_limit: u32,
    /// call-service's timers (`CONFAB_CALL_*`).
    #[command(flatten)]
    pub call_timers: confab_call::CallTimers,
}

/// The whole system, running.
pub struct System {
    pub edge: EdgeHandle,
    /// All four services' gRPC APIs on `CONFAB_GRPC_LISTEN`.
    pub services: ServiceHandle,
    pub jwt_secret: String,
}

impl System {
    /// Stops the edge first (closing sockets), then the services.
    pub async fn shutdown(self) {
        self.edge.shutdown().await;
        self.services.shutdown().await;
    }
}

/// Reads the JWT secret from the data directory, creating it on first use.
pub fn load_or_create_secret(data_dir: &Path) -> anyhow::Result<String> {
    let path = data_dir.join("jwt_secret");
    if let Ok(s) = std::fs::read_to_string(&path) {
        let s = s.trim().to_string();
        if !s.is_empty() {
            return Ok(s);
        }
    }
    std::fs::create_dir_all(data_dir)?;
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    let secret: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    std::fs::write(&path, &secret)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
    }
    tracing::info!(path = %path.display(), "generated a new JWT secret");
    Ok(secret)
}

/// The secret tokens are signed with: the flag/env value, else the data dir's.
pub fn secret(edge: &EdgeArgs, emb: &EmbeddedArgs) -> anyhow::Result<String> {
    match edge.jwt_secret.as_deref().filter(|s| !s.is_empty()) {
        Some(s) => Ok(s.to_string()),
        None => load_or_create_secret(&emb.data_dir),
    }
}

/// Starts the four services, serves their gRPC APIs on `grpc_listen`, and
/// starts the edge on `listener`, calling the services in-process.
pub async fn start(
    edge: &EdgeArgs,
    emb: &EmbeddedArgs,
    listener: TcpListener,
) -> anyhow::Result<System> {
    std::fs::create_dir_all(&emb.data_dir)?;
    let jwt_secret = secret(edge, emb)?;
    let db_url = match &emb.database_url {
        Some(url) => url.clone(),
        None => format!(
            "sqlite://{}?mode=rwc",
            emb.data_dir.join("chat.db").display()
        ),
    };
    let (chat, chat_closer) = confab_chat::build(confab_chat::Config {
        database_url: db_url,
        message_rate_limit: emb.message_rate_limit,
        redis_url: emb.redis_url.clone(),
        ..Default::default()
    })
    .await?
    .into_parts();
    let presence_config = confab_presence::Config {
        database_url: format!(
            "sqlite://{}?mode=rwc",
            emb.data_dir.join("presence.db").display()
        ),
        redis_url: emb.redis_url.clone(),
        ..Default::default()
    };
    let (presence, presence_closer) = confab_presence::build(presence_config).await?.into_parts();
    // call-service asks chat-service who shares a conversation, through
    // chat-service's routes in this process.
    let chat_client = ChatServiceClient::new(
        ServiceTargets::InProcess(Routes::new(chat.clone())).transport(
            Service::Chat,
            Some(Duration::from_millis(edge.request_timeout_ms.max(1))),
        )?,
    );
    let call_config = confab_call::Config {
        database_url: match &emb.database_url {
            Some(url) => url.clone(),
            None => format!(
                "sqlite://{}?mode=rwc",
                emb.data_dir.join("call.db").display()
            ),
        },
        timers: emb.call_timers,
        ..Default::default()
    };
    let (call, call_closer) = confab_call::build(call_config, std::sync::Arc::new(chat_client))
        .await?
        .into_parts();
    let notify_db_url = match &emb.database_url {
        // notify-service keeps its own migration table, so it can share
        // chat-service's PostgreSQL database.
        Some(url) => url.clone(),
        None => format!(
            "sqlite://{}?mode=rwc",
            emb.data_dir.join("notify.db").display()
        ),
    };
    // notify-service learns of messages and presence through the other
    // services' gRPC APIs, here in-process.
    let sources = confab_notify::MessageSources {
        chat: ChatServiceClient::new(
            ServiceTargets::InProcess(Routes::new(chat.clone())).transport(Service::Chat, None)?,
        ),
        presence: PresenceServiceClient::new(
            ServiceTargets::InProcess(Routes::new(presence.clone())).transport(
                Service::Presence,
                Some(Duration::from_millis(edge.request_timeout_ms.max(1))),
            )?,
        ),
    };
    let notify_config = confab_notify::Config {
        database_url: notify_db_url,
        ..Default::default()
    };
    let (notify, notify_closer) = confab_notify::build(notify_config, Some(sources))
        .await?
        .into_parts();
    let grpc = GrpcServer::new()
        .add(chat, chat_closer)
        .add(presence, presence_closer)
        .add(call, call_closer)
        .add(notify, notify_closer);
    let targets = ServiceTargets::InProcess(grpc.routes());
    let grpc_listener = TcpListener::bind(&emb.grpc_listen).await.with_context(|| {
        format!(
            "binding the gRPC address {} (CONFAB_GRPC_LISTEN; 127.0.0.1:0 picks a free port)",
            emb.grpc_listen
        )
    })?;
    let services = grpc.spawn(grpc_listener).await?;
    let mut cfg = EdgeConfig::from_args(edge, targets, Some(&jwt_secret))?;
    cfg.recovery.redis_url = emb.redis_url.clone();
    let edge = app::start(cfg, listener).await?;
    Ok(System {
        edge,
        services,
        jwt_secret,
    })
}
