//! What an operator can set: the database for last-seen times, the optional
//! Redis that replicas share (sessions, typing, room presence and the event
//! log), the per-user session limit and the two TTLs.
//!
//! [`Config`] derives `clap::Args` so the `presence-service` binary
//! reads it from flags with environment fallbacks; the embedded mode and
//! tests build it as a struct (its `Default` equals the flag defaults).

use std::time::Duration;

/// The default database: SQLite under `./data`.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://./data/presence.db?mode=rwc";

/// presence-service's settings.
#[derive(Debug, Clone, PartialEq, Eq, clap::Args)]
pub struct Config {
    /// Database for last-seen times: `sqlite://path?mode=rwc` or `postgres://...`.
    #[arg(
        long = "database-url",
        env = "PRESENCE_DATABASE_URL",
        default_value = DEFAULT_DATABASE_URL
    )]
    pub database_url: String,
    /// Redis for sessions and typing state, shared by every replica
    /// (`redis://host:6379`); kept in this process when unset.
    #[arg(long, env = "REDIS_URL")]
    pub redis_url: Option<String>,
    /// Prefix of every Redis key; the replicas of one deployment share it.
    #[arg(long, env = "PRESENCE_REDIS_PREFIX", default_value = "confab:presence")]
    pub redis_prefix: String,
    /// How many events the shared event log keeps (with Redis): an edge
    /// whose stream broke resumes without a gap if it comes back within
    /// that many events.
    #[arg(long, env = "CONFAB_EVENT_LOG_RETENTION", default_value_t = confab_kit::bus::DEFAULT_RETENTION,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub event_log_retention: u64,
    /// Most sessions (sockets) one user may have at once.
    #[arg(long, env = "PRESENCE_SESSION_LIMIT", default_value_t = 10,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub session_limit: u32,
    /// Sessions of an edge that has not heartbeated for this long expire.
    #[arg(long, env = "PRESENCE_SESSION_TTL_MS", default_value_t = 30_000,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub session_ttl_ms: u64,
    /// A typing state with no stop ends by itself after this long.
    #[arg(long, env = "PRESENCE_TYPING_TTL_MS", default_value_t = 5_000,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub typing_ttl_ms: u64,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            database_url: DEFAULT_DATABASE_URL.into(),
            redis_url: None,
            redis_prefix: "confab:presence".into(),
            event_log_retention: confab_kit::bus::DEFAULT_RETENTION,
            session_limit: 10,
            session_ttl_ms: 30_000,
            typing_ttl_ms: 5_000,
        }
    }
}

impl Config {
    /// Refuses settings clap would have refused (for configs built in code).
    pub fn validate(&self) -> anyhow::Result<()> {
        anyhow::ensure!(self.session_limit >= 1, "session limit must be at least 1");
        anyhow::ensure!(
            self.session_ttl_ms >= 1,
            "session TTL must be at least 1 ms"
        );
        anyhow::ensure!(self.typing_ttl_ms >= 1, "typing TTL must be at least 1 ms");
        anyhow::ensure!(
            !self.redis_prefix.is_empty(),
            "the Redis key prefix must not be empty"
        );
        Ok(())
    }

    pub fn session_ttl(&self) -> Duration {
        Duration::from_millis(self.session_ttl_ms)
    }

    pub fn typing_ttl(&self) -> Duration {
        Duration::from_millis(self.typing_ttl_ms)
    }

    /// How often the sweeper looks for expired edges and typing states: a
    /// quarter of the shorter TTL, between 10 ms and 1 s.
    pub fn sweep_interval(&self) -> Duration {
        (self.session_ttl().min(self.typing_ttl()) / 4)
            .clamp(Duration::from_millis(10), Duration::from_secs(1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{CommandFactory, Parser};

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        config: Config,
    }

    #[test]
    fn default_matches_the_flag_defaults() {
        // Read the declared defaults, not a parse: the environment may set them.
        let cmd = Cli::command();
        let default_of = |id: &str| {
            let arg = cmd
                .get_arguments()
                .find(|a| a.get_id() == id)
                .unwrap_or_else(|| panic!("no argument {id}"));
            arg.get_default_values()
                .first()
                .map(|v| v.to_string_lossy().into_owned())
        };
        let d = Config::default();
        assert_eq!(default_of("database_url"), Some(d.database_url));
        assert_eq!(default_of("redis_url"), None);
        assert_eq!(default_of("redis_prefix"), Some(d.redis_prefix));
        assert_eq!(
            default_of("session_limit"),
            Some(d.session_limit.to_string())
        );
        assert_eq!(
            default_of("session_ttl_ms"),
            Some(d.session_ttl_ms.to_string())
        );
        assert_eq!(
            default_of("typing_ttl_ms"),
            Some(d.typing_ttl_ms.to_string())
        );
        assert_eq!(Config::default().sweep_interval(), Duration::from_secs(1));
    }

    #[test]
    fn sweeps_four_times_per_short_ttl() {
        let c = Config {
            session_ttl_ms: 300,
            typing_ttl_ms: 5_000,
            ..Default::default()
        };
        assert_eq!(c.sweep_interval(), Duration::from_millis(75));
    }
}
