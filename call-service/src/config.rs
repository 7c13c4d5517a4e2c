//! What an operator can set: the database, the three call timers, and the
//! Redis its replicas share their event log in.
//!
//! [`CallTimers`] derives `clap::Args` so both the `call-service` binary and
//! the embedded `confab` read `CONFAB_CALL_RING_TIMEOUT_MS`,
//! `CONFAB_CALL_MAX_DURATION_MS` and `CONFAB_CALL_DISCONNECT_GRACE_MS`; its
//! `Default` equals the flag defaults, for configs built in code (tests).

use std::time::Duration;

/// The default database: SQLite under `./data`.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://./data/call.db?mode=rwc";

/// The call timers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::Args)]
pub struct CallTimers {
    /// An unanswered call becomes missed after this long (the seed's 60 s).
    #[arg(long, env = "CONFAB_CALL_RING_TIMEOUT_MS", default_value_t = 60_000,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub ring_timeout_ms: u64,
    /// An ongoing call ends (reason `timeout`) after this long (3 h).
    #[arg(long, env = "CONFAB_CALL_MAX_DURATION_MS", default_value_t = 10_800_000,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub max_duration_ms: u64,
    /// A participant whose call socket closed is out after this long unless
    /// one of their sockets comes back.
    #[arg(long, env = "CONFAB_CALL_DISCONNECT_GRACE_MS", default_value_t = 15_000,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub disconnect_grace_ms: u64,
}

impl Default for CallTimers {
    fn default() -> Self {
        Self {
            ring_timeout_ms: 60_000,
            max_duration_ms: 3 * 60 * 60 * 1000,
            disconnect_grace_ms: 15_000,
        }
    }
}

impl CallTimers {
    pub fn ring_timeout(&self) -> Duration {
        Duration::from_millis(self.ring_timeout_ms)
    }
    pub fn max_duration(&self) -> Duration {
        Duration::from_millis(self.max_duration_ms)
    }
    pub fn disconnect_grace(&self) -> Duration {
        Duration::from_millis(self.disconnect_grace_ms)
    }

    /// Refuses settings clap would have refused (for configs built in code).
    pub fn validate(&self) -> anyhow::Result<()> {
        anyhow::ensure!(
            self.ring_timeout_ms >= 1 && self.max_duration_ms >= 1 && self.disconnect_grace_ms >= 1,
            "call timers must be at least 1 ms"
        );
        Ok(())
    }
}

/// call-service's settings: what `call-service` and the embedded `confab`
/// flatten into their command lines.
#[derive(Debug, Clone, PartialEq, Eq, clap::Args)]
pub struct Config {
    /// Database for calls and their records: `sqlite://path?mode=rwc` or
    /// `postgres://...`.
    #[arg(
        long = "database-url",
        env = "CALL_DATABASE_URL",
        default_value = DEFAULT_DATABASE_URL
    )]
    pub database_url: String,
    #[command(flatten)]
    pub timers: CallTimers,
    /// Redis where replicas share the event log; in this process when
    /// unset.
    #[arg(long, env = "REDIS_URL")]
    pub redis_url: Option<String>,
    /// Prefix of call-service's Redis keys; the replicas of one deployment
    /// share it.
    #[arg(long, env = "CALL_REDIS_PREFIX", default_value = "confab:call")]
    pub redis_prefix: String,
    /// How many events the shared event log keeps (with Redis).
    #[arg(long, env = "CONFAB_EVENT_LOG_RETENTION", default_value_t = confab_kit::bus::DEFAULT_RETENTION,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub event_log_retention: u64,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            database_url: DEFAULT_DATABASE_URL.into(),
            timers: CallTimers::default(),
            redis_url: None,
            redis_prefix: "confab:call".into(),
            event_log_retention: confab_kit::bus::DEFAULT_RETENTION,
        }
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
        let cmd = Cli::command();
        let default_of = |id: &str| {
            cmd.get_arguments()
                .find(|a| a.get_id() == id)
                .and_then(|a| a.get_default_values().first().cloned())
                .map(|v| v.to_string_lossy().into_owned())
        };
        let d = Config::default();
        assert_eq!(default_of("database_url"), Some(d.database_url));
        assert_eq!(
            default_of("ring_timeout_ms"),
            Some(d.timers.ring_timeout_ms.to_string())
        );
        assert_eq!(
            default_of("max_duration_ms"),
            Some(d.timers.max_duration_ms.to_string())
        );
        assert_eq!(
            default_of("disconnect_grace_ms"),
            Some(d.timers.disconnect_grace_ms.to_string())
        );
    }
}
