//! The message rate limit: at most `limit` messages per user in any one
//! window (one second), whatever socket, contract or edge they come from.
//!
//! A sliding window, not a bucket: a send is admitted when fewer than
//! `limit` of the user's admitted sends lie in the last [`WINDOW_MS`]; a
//! refusal says how long until the oldest of them leaves the window
//! (`retry_after_ms`). Refused sends are not counted, so a client that keeps
//! trying is not locked out longer.
//!
//! Two homes for the windows:
//! - [`LocalWindows`]: in this process, a deque of timestamps per user (at
//!   most `limit` entries each); users idle for a window are dropped now
//!   and then, so memory follows the users sending right now.
//! - Redis (when chat-service is given a Redis URL): a sorted set per user,
//!   `{<prefix>}:rate:<user>`, trimmed, counted and added to in one Lua
//!   script with the server's clock (`TIME`), so every replica shares each
//!   user's count; the key expires one window after its last send. When
//!   Redis fails, the send is counted in this process instead (logged), so
//!   an outage weakens the limit to per replica rather than refusing
//!   messages.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use ::redis::Script;
use ::redis::aio::ConnectionManager;
use confab_kit::now_ms;

/// The window the limit counts in.
pub const WINDOW_MS: i64 = 1000;

/// The seed's limit: 10 messages a second per user.
pub const DEFAULT_LIMIT: u32 = 10;

/// Why a send was refused: how long until the user may send again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limited {
    pub retry_after_ms: i64,
}

/// The message rate limit, in this process or in Redis.
pub struct RateLimit {
    limit: u32,
    local: LocalWindows,
    redis: Option<RedisWindows>,
}

impl RateLimit {
    /// In this process.
    pub fn local(limit: u32) -> Self {
        Self {
            limit: limit.max(1),
            local: LocalWindows::default(),
            redis: None,
        }
    }

    /// In Redis at `url`, keys under `{prefix}:rate:`.
    pub async fn redis(limit: u32, url: &str, prefix: &str) -> anyhow::Result<Self> {
        let client = ::redis::Client::open(url)?;
        let config = ::redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(std::time::Duration::from_secs(5)))
            .set_response_timeout(Some(std::time::Duration::from_secs(2)));
        let conn = client.get_connection_manager_with_config(config).await?;
        Ok(Self {
            redis: Some(RedisWindows {
                conn,
                prefix: format!("{{{prefix}}}:rate:"),
                script: Script::new(ADMIT),
                instance: rand::random(),
                seq: AtomicU64::new(0),
            }),
            ..Self::local(limit)
        })
    }

    pub fn limit(&self) -> u32 {
        self.limit
    }

    /// Counts one send of `user` now, or refuses it.
    pub async fn admit(&self, user: &str) -> Result<(), Limited> {
        if let Some(r) = &self.redis {
            match r.admit(user, self.limit).await {
                Ok(answer) => return answer,
                Err(e) => {
                    tracing::warn!(error = %e, "message rate limit: Redis failed; counting in this process")
                }
            }
        }
        self.local.admit(user, self.limit, now_ms())
    }
}

/// Every user's recent sends, in this process.
#[derive(Default)]
pub struct LocalWindows {
    inner: Mutex<Windows>,
}

#[derive(Default)]
struct Windows {
    users: HashMap<String, VecDeque<i64>>,
    /// When idle users were last dropped.
    swept_ms: i64,
}

impl LocalWindows {
    /// Counts one send of `user` at `now` (ms), or refuses it.
    pub fn admit(&self, user: &str, limit: u32, now: i64) -> Result<(), Limited> {
        let mut w = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        // Now and then (at most once a window), forget users with nothing in
        // the window: the map holds only users who sent in the last second
        // or two.
        if now - w.swept_ms >= WINDOW_MS {
            w.swept_ms = now;
            w.users
                .retain(|_, q| q.back().is_some_and(|&t| t > now - WINDOW_MS));
        }
        let q = match w.users.get_mut(user) {
            Some(q) => q,
            None => w.users.entry(user.to_string()).or_default(),
        };
        while q.front().is_some_and(|&t| t <= now - WINDOW_MS) {
            q.pop_front();
        }
        if q.len() >= limit as usize {
            let oldest = *q.front().expect("a full window is not empty");
            return Err(Limited {
                retry_after_ms: (oldest + WINDOW_MS - now).max(1),
            });
        }
        q.push_back(now);
        Ok(())
    }

    /// How many users are remembered (for tests).
    pub fn users(&self) -> usize {
        self.inner
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .users
            .len()
    }
}

struct RedisWindows {
    conn: ConnectionManager,
    /// `{prefix}:rate:`
    prefix: String,
    script: Script,
    /// Makes this process's set members unique among replicas.
    instance: u64,
    seq: AtomicU64,
}

/// KEYS: rate:<user>. ARGV: limit, window (ms), a unique member suffix.
/// Returns {admitted, retry_after_ms}.
const ADMIT: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local window = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[1]) then
  local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
  local wait = tonumber(oldest[2]) + window - now
  if wait < 1 then wait = 1 end
  return {0, wait}
end
redis.call('ZADD', KEYS[1], now, now .. ':' .. ARGV[3])
redis.call('PEXPIRE', KEYS[1], window)
return {1, 0}
"#;

impl RedisWindows {
    async fn admit(
        &self,
        user: &str,
        limit: u32,
    ) -> Result<Result<(), Limited>, ::redis::RedisError> {
        let member = format!(
            "{:x}:{}",
            self.instance,
            self.seq.fetch_add(1, Ordering::Relaxed)
        );
        let (admitted, wait): (i64, i64) = self
            .script
            .key(format!("{}{user}", self.prefix))
            .arg(limit)
            .arg(WINDOW_MS)
            .arg(member)
            .invoke_async(&mut self.conn.clone())
            .await?;
        Ok(if admitted == 1 {
            Ok(())
        } else {
            Err(Limited {
                retry_after_ms: wait,
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sliding_window_not_a_refilling_bucket() {
        let w = LocalWindows::default();
        for i in 0..10 {
            assert_eq!(w.admit("a", 10, 1000 + i * 50), Ok(()));
        }
        // 1,450 ms: ten in the last second.
        assert_eq!(
            w.admit("a", 10, 1500),
            Err(Limited {
                retry_after_ms: 500
            })
        );
        assert_eq!(w.admit("b", 10, 1500), Ok(()), "another user");
        // The first send (1,000) leaves the window at 2,000: one more fits.
        assert!(w.admit("a", 10, 1999).is_err());
        assert_eq!(w.admit("a", 10, 2000), Ok(()));
        assert!(w.admit("a", 10, 2001).is_err());
    }

    #[test]
    fn idle_users_are_forgotten() {
        let w = LocalWindows::default();
        for u in 0..100 {
            w.admit(&format!("u{u}"), 10, 1000).unwrap();
        }
        assert_eq!(w.users(), 100);
        w.admit("late", 10, 5000).unwrap();
        assert_eq!(w.users(), 1);
    }
}
