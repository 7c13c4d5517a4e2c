//! Recoverable sessions, by private session id: in this process, or in
//! Redis so that any edge can resume a session another edge began (that
//! edge may have been stopped or killed since).
//!
//! A session is kept for the recovery window after its socket was last
//! seen: every write sets that expiry, and each edge extends it for its
//! live sockets ([`Sessions::touch`]) — so a killed edge's sessions stay
//! resumable for one window. A session is resumed at most once: taking it
//! removes it (whoever deletes it resumes it), and the resumed socket saves it
//! again.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use redis::AsyncCommands;
use redis::aio::ConnectionManager;
use serde::{Deserialize, Serialize};

/// What a socket's session is made of, as kept between connections.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    /// The token's subject: only the same user may resume it.
    pub user_id: String,
    /// The namespace (contract) it was opened on.
    pub ns: String,
    /// The socket id it last had (the events a replay renders may name
    /// that socket's room).
    pub sid: String,
    /// The conversation rooms it is in (canonical ids).
    pub conversations: Vec<String>,
    /// The chat log's position when it began: where a client that never
    /// received an event resumes from.
    pub since: Option<String>,
}

/// Where sessions are kept.
#[derive(Clone)]
pub enum Sessions {
    Memory(Arc<Mutex<HashMap<String, (Instant, Session)>>>),
    Redis {
        conn: ConnectionManager,
        prefix: String,
    },
}

impl Sessions {
    pub fn memory() -> Self {
        Self::Memory(Arc::default())
    }

    /// Sessions in Redis at `url`, under `<prefix>:session:<pid>`.
    pub async fn redis(url: &str, prefix: &str) -> anyhow::Result<Self> {
        let client = redis::Client::open(url)?;
        let conn = ConnectionManager::new(client).await?;
        Ok(Self::Redis {
            conn,
            prefix: prefix.to_string(),
        })
    }

    fn key(prefix: &str, pid: &str) -> String {
        format!("{prefix}:session:{pid}")
    }

    /// Keeps `session` under `pid` for `ttl` from now.
    pub async fn save(&self, pid: &str, session: &Session, ttl: Duration) {
        match self {
            Self::Memory(m) => {
                if let Ok(mut m) = m.lock() {
                    m.insert(pid.to_string(), (Instant::now() + ttl, session.clone()));
                }
            }
            Self::Redis { conn, prefix } => {
                let Ok(value) = serde_json::to_string(session) else {
                    return;
                };
                let ms = ttl.as_millis().max(1) as u64;
                let r: redis::RedisResult<()> = conn
                    .clone()
                    .pset_ex(Self::key(prefix, pid), value, ms)
                    .await;
                if let Err(e) = r {
                    tracing::warn!(error = %e, "a recoverable session could not be saved");
                }
            }
        }
    }

    /// Takes the session under `pid` if it is still kept and `may` resume
    /// it: it is resumed once. One that `may` not is left as it was.
    pub async fn take(&self, pid: &str, may: impl Fn(&Session) -> bool) -> Option<Session> {
        match self {
            Self::Memory(m) => {
                let mut m = m.lock().ok()?;
                let (until, session) = m.get(pid)?;
                if *until <= Instant::now() || !may(session) {
                    return None;
                }
                m.remove(pid).map(|(_, s)| s)
            }
            Self::Redis { conn, prefix } => {
                let key = Self::key(prefix, pid);
                let mut conn = conn.clone();
                let found: redis::RedisResult<Option<String>> = conn.get(&key).await;
                let session: Session = match found {
                    Ok(v) => serde_json::from_str(&v?).ok()?,
                    Err(e) => {
                        tracing::warn!(error = %e, "recoverable sessions unavailable");
                        return None;
                    }
                };
                if !may(&session) {
                    return None;
                }
                // Whoever deletes it resumes it.
                let deleted: redis::RedisResult<u32> = conn.del(&key).await;
                (deleted.ok()? == 1).then_some(session)
            }
        }
    }

    /// Keeps the sessions of `pids` (live sockets) for `ttl` more, and
    /// forgets those whose time is up.
    pub async fn touch(&self, pids: &[String], ttl: Duration) {
        match self {
            Self::Memory(m) => {
                if let Ok(mut m) = m.lock() {
                    let now = Instant::now();
                    for pid in pids {
                        if let Some((until, _)) = m.get_mut(pid) {
                            *until = now + ttl;
                        }
                    }
                    m.retain(|_, (until, _)| *until > now);
                }
            }
            Self::Redis { conn, prefix } => {
                if pids.is_empty() {
                    return;
                }
                let ms = ttl.as_millis().max(1) as i64;
                let mut pipe = redis::pipe();
                for pid in pids {
                    pipe.pexpire(Self::key(prefix, pid), ms).ignore();
                }
                let r: redis::RedisResult<()> = pipe.query_async(&mut conn.clone()).await;
                if let Err(e) = r {
                    tracing::warn!(error = %e, "recoverable sessions could not be extended");
                }
            }
        }
    }
}
