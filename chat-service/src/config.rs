//! What an operator can set: chat-service's database, the message rate
//! limit and the Redis replicas share its windows in.
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
    /// Redis where replicas share the message rate windows; in this
    /// process when unset.
    #[arg(long, env = "REDIS_URL")]
    pub redis_url: Option<String>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            database_url: DEFAULT_DATABASE_URL.into(),
            message_rate_limit: DEFAULT_LIMIT,
            redis_url: None,
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
        assert_eq!(default_of("redis_url"), None);
    }
}
