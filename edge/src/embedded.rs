//! The embedded mode: the edge and all four services in one process, each
//! service still a real gRPC server on a loopback port, chat-service on
//! SQLite in the data directory (or on `DATABASE_URL`), presence-service's
//! last-seen times in `presence.db` there (its sessions in `REDIS_URL` when set).
//!
//! On first start a random JWT secret is written to `<data dir>/jwt_secret`
//! (mode 0600) so tokens survive restarts; `CONFAB_JWT_SECRET` overrides it.

use std::path::{Path, PathBuf};

use confab_proto::server::ServiceHandle;
use rand::RngCore;
use tokio::net::TcpListener;

use crate::app::{self, EdgeHandle};
use crate::config::{EdgeArgs, EdgeConfig, ServiceUrls};

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
}

/// The whole system, running.
pub struct System {
    pub edge: EdgeHandle,
    pub chat: ServiceHandle,
    pub presence: ServiceHandle,
    pub call: ServiceHandle,
    pub notify: ServiceHandle,
    pub jwt_secret: String,
}

impl System {
    /// Stops the edge first (closing sockets), then the services.
    pub async fn shutdown(self) {
        self.edge.shutdown().await;
        self.chat.shutdown().await;
        self.presence.shutdown().await;
        self.call.shutdown().await;
        self.notify.shutdown().await;
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

/// Starts the four services on loopback and the edge on `listener`.
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
    let db = confab_chat::connect(&db_url).await?;
    let loopback = || TcpListener::bind("127.0.0.1:0");
    let chat = confab_chat::serve(loopback().await?, db).await?;
    let presence_config = confab_presence::PresenceConfig {
        database_url: format!(
            "sqlite://{}?mode=rwc",
            emb.data_dir.join("presence.db").display()
        ),
        redis_url: emb.redis_url.clone(),
        ..Default::default()
    };
    let presence = confab_presence::serve(loopback().await?, presence_config).await?;
    let call = confab_call::serve(loopback().await?).await?;
    let notify = confab_notify::serve(loopback().await?).await?;
    let urls = ServiceUrls {
        chat_url: chat.url(),
        presence_url: presence.url(),
        call_url: call.url(),
        notify_url: notify.url(),
    };
    let cfg = EdgeConfig::from_args(edge, urls, Some(&jwt_secret))?;
    let edge = app::start(cfg, listener).await?;
    Ok(System {
        edge,
        chat,
        presence,
        call,
        notify,
        jwt_secret,
    })
}
