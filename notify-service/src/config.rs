//! What an operator can set: notify-service's database, where
//! chat-service and presence-service are (for message notifications), and
//! the Redis its replicas share their event log in.
//!
//! [`Config`] derives `clap::Args` so the `notify-service` binary reads
//! it from flags with environment fallbacks; the embedded mode and tests
//! build it as a struct (its `Default` equals the flag defaults).

/// The default database: SQLite under `./data`.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://./data/notify.db?mode=rwc";

/// notify-service's settings.
#[derive(Debug, Clone, PartialEq, Eq, clap::Args)]
pub struct Config {
    /// Database for notifications, publishes and story views:
    /// `sqlite://path?mode=rwc` or `postgres://...`.
    #[arg(
        long = "database-url",
        env = "NOTIFY_DATABASE_URL",
        default_value = DEFAULT_DATABASE_URL
    )]
    pub database_url: String,
    /// chat-service's gRPC URL, followed for message notifications
    /// (with `--presence-url`); message notifications are off when unset.
    /// Replicas' URLs comma-separated are balanced and failed over.
    #[arg(long, env = "NOTIFY_CHAT_URL")]
    pub chat_url: Option<String>,
    /// presence-service's gRPC URL, asked who of a message's members is
    /// online (with `--chat-url`); replicas comma-separated.
    #[arg(long, env = "NOTIFY_PRESENCE_URL")]
    pub presence_url: Option<String>,
    /// Redis where replicas share the event log; in this process when
    /// unset. Replicas also need one database (PostgreSQL).
    #[arg(long, env = "REDIS_URL")]
    pub redis_url: Option<String>,
    /// Prefix of notify-service's Redis keys; the replicas of one
    /// deployment share it, another deployment on the same Redis needs its
    /// own.
    #[arg(long, env = "NOTIFY_REDIS_PREFIX", default_value = DEFAULT_REDIS_PREFIX)]
    pub redis_prefix: String,
    /// How many events the shared event log keeps (with Redis).
    #[arg(long, env = "CONFAB_EVENT_LOG_RETENTION", default_value_t = confab_kit::bus::DEFAULT_RETENTION,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub event_log_retention: u64,
}

/// The default prefix of notify-service's Redis keys.
pub const DEFAULT_REDIS_PREFIX: &str = "confab:notify";

impl Default for Config {
    fn default() -> Self {
        Self {
            database_url: DEFAULT_DATABASE_URL.into(),
            chat_url: None,
            presence_url: None,
            redis_url: None,
            redis_prefix: DEFAULT_REDIS_PREFIX.into(),
            event_log_retention: confab_kit::bus::DEFAULT_RETENTION,
        }
    }
}

impl Config {
    /// The chat and presence URLs when message notifications are on; an
    /// error when only one of the two is set.
    pub fn message_sources(&self) -> anyhow::Result<Option<(String, String)>> {
        fn set(u: &Option<String>) -> Option<&str> {
            u.as_deref().map(str::trim).filter(|u| !u.is_empty())
        }
        match (set(&self.chat_url), set(&self.presence_url)) {
            (Some(c), Some(p)) => Ok(Some((c.to_string(), p.to_string()))),
            (None, None) => Ok(None),
            _ => anyhow::bail!(
                "message notifications need both --chat-url and --presence-url \
                 (NOTIFY_CHAT_URL, NOTIFY_PRESENCE_URL), or neither"
            ),
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
        assert_eq!(default_of("chat_url"), None);
        assert_eq!(default_of("presence_url"), None);
        assert_eq!(default_of("redis_url"), None);
        assert_eq!(default_of("redis_prefix"), Some(d.redis_prefix));
        assert_eq!(
            default_of("event_log_retention"),
            Some(d.event_log_retention.to_string())
        );
    }

    #[test]
    fn message_notifications_need_both_urls() {
        let mut c = Config::default();
        assert_eq!(c.message_sources().unwrap(), None);
        c.chat_url = Some("http://127.0.0.1:1".into());
        assert!(c.message_sources().is_err());
        c.presence_url = Some("http://127.0.0.1:2".into());
        assert_eq!(
            c.message_sources().unwrap(),
            Some(("http://127.0.0.1:1".into(), "http://127.0.0.1:2".into()))
        );
    }
}
