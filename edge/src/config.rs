//! The edge's settings: command-line flags with environment fallbacks. The
//! README's configuration table lists them all.

use std::path::PathBuf;
use std::time::Duration;

use crate::auth::{Expected, Verifier};
use crate::clients::ServiceTargets;
pub use crate::clients::ServiceUrls;
pub use crate::recovery::RecoverySettings;

/// Settings every edge has, embedded or not.
#[derive(Debug, Clone, clap::Args)]
pub struct EdgeArgs {
    /// Address the Socket.IO and HTTP server listens on.
    #[arg(long, env = "CONFAB_LISTEN", default_value = "0.0.0.0:3000")]
    pub listen: String,
    /// The contract the default namespace `/` speaks.
    #[arg(long, env = "CONFAB_DEFAULT_CONTRACT", default_value = "raven")]
    pub default_contract: String,
    /// HS256 shared secret for JWTs (the embedded mode generates one if unset).
    #[arg(long, env = "CONFAB_JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: Option<String>,
    /// PEM file with an RS256 or ES256 public key; replaces the shared secret.
    #[arg(long, env = "CONFAB_JWT_PUBLIC_KEY_FILE")]
    pub jwt_public_key_file: Option<PathBuf>,
    /// Algorithm of the public key: RS256 or ES256.
    #[arg(long, env = "CONFAB_JWT_ALGORITHM", default_value = "RS256")]
    pub jwt_algorithm: String,
    /// The audiences a token must name in `aud` (comma-separated, one is
    /// enough); unset, a token's `aud` is accepted whatever it says.
    #[arg(long, env = "CONFAB_JWT_AUDIENCE", value_delimiter = ',')]
    pub jwt_audience: Vec<String>,
    /// The issuers a token's `iss` must be one of (comma-separated); unset,
    /// `iss` is not checked.
    #[arg(long, env = "CONFAB_JWT_ISSUER", value_delimiter = ',')]
    pub jwt_issuer: Vec<String>,
    /// How long a call to a service may take before the client gets an error.
    #[arg(long, env = "CONFAB_REQUEST_TIMEOUT_MS", default_value_t = 5000)]
    pub request_timeout_ms: u64,
    /// How often this edge heartbeats its sessions to presence-service (keep
    /// it well under presence-service's session TTL).
    #[arg(long, env = "CONFAB_PRESENCE_HEARTBEAT_MS", default_value_t = 5000)]
    pub presence_heartbeat_ms: u64,
    /// How often the server heartbeats the sockets of contracts that have
    /// heartbeats (`v3`: `ping` and `heartbeat`); a socket that leaves three
    /// in a row unanswered is disconnected.
    #[arg(long, env = "CONFAB_HEARTBEAT_MS", default_value_t = DEFAULT_HEARTBEAT_MS)]
    pub heartbeat_ms: u64,
    /// The largest Socket.IO packet (WebSocket message or polling request)
    /// and REST body the edge reads, in bytes: a 10 KB message with room for
    /// its envelope and escaping. Anything larger is refused before any call
    /// to a service.
    #[arg(long, env = "CONFAB_MAX_PACKET_BYTES", default_value_t = DEFAULT_MAX_PACKET_BYTES)]
    pub max_packet_bytes: usize,
    /// How many messages a user's offline queue keeps (the newest win), 1 to
    /// 100: what reached none of their sockets is delivered on their next
    /// `v3` connect.
    #[arg(long, env = "CONFAB_OFFLINE_QUEUE", default_value_t = DEFAULT_OFFLINE_QUEUE)]
    pub offline_queue: u32,
    /// How long after its connection dropped a client can resume its
    /// session (connection state recovery); 0 turns recovery off.
    #[arg(long, env = "CONFAB_RECOVERY_WINDOW_MS", default_value_t = DEFAULT_RECOVERY_WINDOW_MS)]
    pub recovery_window_ms: u64,
    /// How many of the latest chat events an edge keeps to replay to
    /// resumed sessions; a client that missed more starts afresh.
    #[arg(long, env = "CONFAB_RECOVERY_MAX_EVENTS", default_value_t = DEFAULT_RECOVERY_MAX_EVENTS)]
    pub recovery_max_events: usize,
    /// How long a socket whose connection dropped (not one its client
    /// closed) stays registered with presence-service, so that a client
    /// coming back meanwhile is not seen going offline and online again;
    /// 0 ends it at once.
    #[arg(long, env = "CONFAB_PRESENCE_GRACE_MS", default_value_t = DEFAULT_PRESENCE_GRACE_MS)]
    pub presence_grace_ms: u64,
    /// The prefix of recoverable sessions' keys when they are kept in Redis.
    #[arg(
        long,
        env = "CONFAB_RECOVERY_REDIS_PREFIX",
        default_value = "confab:recovery"
    )]
    pub recovery_redis_prefix: String,
}

/// What tokens must name: the non-empty values of
/// [`EdgeArgs::jwt_audience`] and [`EdgeArgs::jwt_issuer`], trimmed.
fn expected(args: &EdgeArgs) -> Expected {
    let values = |list: &[String]| {
        list.iter()
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
            .collect()
    };
    Expected {
        audiences: values(&args.jwt_audience),
        issuers: values(&args.jwt_issuer),
    }
}

/// [`EdgeArgs::offline_queue`]'s default: the `v3` seed's 25.
pub const DEFAULT_OFFLINE_QUEUE: u32 = 25;
/// [`EdgeArgs::heartbeat_ms`]'s default: the seed's 25 s.
pub const DEFAULT_HEARTBEAT_MS: u64 = 25_000;

/// [`EdgeArgs::presence_grace_ms`]'s default: 5 s, several times what a
/// socket.io-client waits before reconnecting (about 1 s).
pub const DEFAULT_PRESENCE_GRACE_MS: u64 = 5_000;
/// [`EdgeArgs::recovery_window_ms`]'s default: 2 minutes, as socket.io's.
pub const DEFAULT_RECOVERY_WINDOW_MS: u64 = 120_000;
/// [`EdgeArgs::recovery_max_events`]'s default.
pub const DEFAULT_RECOVERY_MAX_EVENTS: usize = 100_000;

/// [`EdgeArgs::max_packet_bytes`]'s default: 32 KiB.
pub const DEFAULT_MAX_PACKET_BYTES: usize = 32 * 1024;

/// Everything an edge needs to start.
#[derive(Clone)]
pub struct EdgeConfig {
    pub default_contract: String,
    pub verifier: Verifier,
    pub services: ServiceTargets,
    pub request_timeout: Duration,
    /// How often the edge heartbeats its sessions to presence-service.
    pub presence_heartbeat: Duration,
    /// How often sockets of heartbeat contracts get `ping` / `heartbeat`.
    pub heartbeat: Duration,
    /// How long a dropped socket's presence session outlives it.
    pub presence_grace: Duration,
    pub max_packet_bytes: usize,
    pub offline_queue: u32,
    /// Names this edge in logs and in its Subscribe streams.
    pub edge_id: String,
    /// Connection state recovery. Its Redis is set by the binary
    /// (`REDIS_URL`), as the embedded mode reads that setting itself.
    pub recovery: RecoverySettings,
}

impl EdgeConfig {
    /// Builds the config from flags; `secret` is used when no public key is
    /// configured (the embedded mode passes its generated secret).
    pub fn from_args(
        args: &EdgeArgs,
        services: impl Into<ServiceTargets>,
        secret: Option<&str>,
    ) -> anyhow::Result<Self> {
        let verifier = match (
            &args.jwt_public_key_file,
            args.jwt_secret.as_deref().or(secret),
        ) {
            (Some(path), _) => {
                let pem = std::fs::read(path)
                    .map_err(|e| anyhow::anyhow!("reading {}: {e}", path.display()))?;
                let alg = match args.jwt_algorithm.to_ascii_uppercase().as_str() {
                    "RS256" => jsonwebtoken::Algorithm::RS256,
                    "ES256" => jsonwebtoken::Algorithm::ES256,
                    other => {
                        anyhow::bail!("CONFAB_JWT_ALGORITHM must be RS256 or ES256, not {other}")
                    }
                };
                Verifier::from_public_key_pem(&pem, alg)?
            }
            (None, Some(secret)) if !secret.is_empty() => Verifier::hs256(secret.as_bytes()),
            _ => anyhow::bail!("no JWT key: set CONFAB_JWT_SECRET or CONFAB_JWT_PUBLIC_KEY_FILE"),
        }
        .expecting(&expected(args));
        Ok(Self {
            default_contract: args.default_contract.clone(),
            verifier,
            services: services.into(),
            request_timeout: Duration::from_millis(args.request_timeout_ms.max(1)),
            presence_heartbeat: Duration::from_millis(args.presence_heartbeat_ms.max(10)),
            heartbeat: Duration::from_millis(args.heartbeat_ms.max(10)),
            presence_grace: Duration::from_millis(args.presence_grace_ms),
            // At least a full 10 KB message must fit.
            max_packet_bytes: args
                .max_packet_bytes
                .max(confab_proto::limits::MAX_TEXT_BYTES + 1024),
            offline_queue: args.offline_queue.clamp(1, 100),
            edge_id: format!("edge-{}-{:08x}", std::process::id(), rand::random::<u32>()),
            recovery: RecoverySettings {
                window: Duration::from_millis(args.recovery_window_ms),
                max_events: args.recovery_max_events.max(1),
                redis_url: None,
                redis_prefix: args.recovery_redis_prefix.clone(),
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        edge: EdgeArgs,
    }

    fn parse(flags: &[&str]) -> EdgeArgs {
        Cli::try_parse_from(std::iter::once("confab-edge").chain(flags.iter().copied()))
            .unwrap()
            .edge
    }

    #[test]
    fn audience_and_issuer_are_optional_lists() {
        let none = parse(&[]);
        assert_eq!(expected(&none), Expected::default());
        let some = parse(&[
            "--jwt-audience",
            "confab-api, confab-admin,",
            "--jwt-issuer",
            "https://idp.example/",
        ]);
        assert_eq!(
            expected(&some),
            Expected {
                audiences: vec!["confab-api".into(), "confab-admin".into()],
                issuers: vec!["https://idp.example/".into()],
            }
        );
    }
}
