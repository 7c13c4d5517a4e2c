//! What an operator can set: chat-service's database, the message rate
//! limit, and the Redis its replicas share their rate windows and event
//! log in.
//!
//! [`Config`] derives `clap::Args` so the `chat-service` binary reads it
//! from flags with environment fallbacks; the embedded mode and tests build
//! it as a struct (its `Default` equals the flag defaults).

use crate::rate::DEFAULT_LIMIT;

/// The default database: SQLite under `./data`.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://./data/chat.db?mode=rwc";

/// chat-service's settings.
#[derive(Debug, Clone, PartialEq, Eq, clap::Args)]
pub struct Config {
    /// `sqlite://path?mode=rwc` or `postgres://...`.
    #[arg(long, env = "DATABASE_URL", default_value = DEFAULT_DATABASE_URL)]
    pub database_url: String,
    /// The most messages one user may send in any one second, counted over
    /// all their sockets and contracts.
    #[arg(long, env = "CONFAB_MESSAGE_RATE_LIMIT", default_value_t = DEFAULT_LIMIT,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub message_rate_limit: u32,
    /// Redis where replicas share the message rate windows and the event
    /// log; both in this process when unset.
    #[arg(long, env = "REDIS_URL")]
    pub redis_url: Option<String>,
    /// Prefix of chat-service's Redis keys; the replicas of one deployment
    /// share it, another deployment on the same Redis needs its own.
    #[arg(long, env = "CHAT_REDIS_PREFIX", default_value = DEFAULT_REDIS_PREFIX)]
    pub redis_prefix: String,
    /// How many events the shared event log keeps (with Redis): an edge
    /// whose stream broke resumes without a gap if it comes back within
    /// that many events.
    #[arg(long, env = "CONFAB_EVENT_LOG_RETENTION", default_value_t = confab_kit::bus::DEFAULT_RETENTION,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub event_log_retention: u64,
}

/// The default prefix of chat-service's Redis keys.
pub const DEFAULT_REDIS_PREFIX: &str = "confab:chat";

impl Default for Config {
    fn default() -> Self {
        Self {
            database_url: DEFAULT_DATABASE_URL.into(),
            message_rate_limit: DEFAULT_LIMIT,
            redis_url: None,
            redis_prefix: DEFAULT_REDIS_PREFIX.into(),
            event_log_retention: confab_kit::bus::DEFAULT_RETENTION,
        }
    }
}

impl Config {
    /// Refuses settings clap would have refused (for configs built in code).
    pub fn validate(&self) -> anyhow::Result<()> {
        anyhow::ensure!(
            self.message_rate_limit >= 1,
            "the message rate limit must be at least 1"
        );
        anyhow::ensure!(
            !self.redis_prefix.is_empty(),
            "the Redis key prefix must not be empty"
        );
        anyhow::ensure!(
            self.event_log_retention >= 1,
            "the event log must keep at least one event"
        );
        Ok(())
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
        assert_eq!(
            default_of("message_rate_limit"),
            Some(d.message_rate_limit.to_string())
        );
        assert_eq!(default_of("redis_prefix"), Some(d.redis_prefix));
        assert_eq!(
            default_of("event_log_retention"),
            Some(d.event_log_retention.to_string())
        );
        assert_eq!(default_of("redis_url"), None);
    }
}
