//! The Redis [`Store`], shared by every presence-service replica.
//!
//! Every key starts with `{<prefix>}:` — the braces make it a Redis hash tag,
//! so all of one deployment's keys live in one slot — and ids go in last, raw:
//!
//! | key | type | holds |
//! |---|---|---|
//! | `sessions:<user>` | hash | field `["<edge>","<socket>"]` (JSON) → contract; its length is the session count |
//! | `profile:<user>` | hash | `name`, `watchers` (JSON array) of the latest registration; deleted when the user goes offline |
//! | `edge:<edge>` | hash | field `["<user>","<socket>"]` → that session's field in `sessions:<user>` |
//! | `edges` | sorted set | member edge id, score its heartbeat deadline (ms) |
//! | `typing` | sorted set | member `["<user>","<conversation>"]`, score its expiry (ms) |
//! | `typing:<member>` | hash | `name`, `started`, `members` (JSON array) of that typing state |
//!
//! Each operation that can cause a transition is one Lua script, so it runs
//! atomically on the server: registering checks the limit and adds in one
//! step; the script that removes the last session, an expired edge (`ZREM`
//! from `edges`) or a typing state (`ZREM` from `typing`) is the only one
//! that reports it, so of several replicas sweeping at once exactly one
//! publishes each event. The JSON strings are made in Rust and only decoded
//! in Lua, so keys and fields always match byte for byte.
//!
//! Deadlines are computed from each replica's clock: replicas need
//! synchronised clocks (NTP), as any TTL shared between machines does.
//! Needs Redis 6.2 or later (`ZADD ... GT` keeps a heartbeat deadline from
//! moving back).

use ::redis::Script;
use ::redis::aio::ConnectionManager;

use super::{
    Expired, NewSession, Profile, Registration, Removal, Store, StoreError, StoreResult, Typing,
    TypingKey, TypingStart,
};

/// How many due typing states one sweep script removes at most.
const TYPING_BATCH: usize = 500;

pub struct RedisStore {
    conn: ConnectionManager,
    /// `{prefix}:`
    prefix: String,
    scripts: Scripts,
}

struct Scripts {
    register: Script,
    unregister: Script,
    expire_edges: Script,
    start_typing: Script,
    stop_typing: Script,
    expire_typing: Script,
}

fn err(e: impl std::fmt::Display) -> StoreError {
    StoreError(e.to_string())
}

fn json<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string(v).expect("plain data serializes")
}

fn count(n: i64) -> u32 {
    u32::try_from(n.max(0)).unwrap_or(u32::MAX)
}

impl RedisStore {
    /// Connects to `url` (reconnecting by itself later) with keys under
    /// `{prefix}:`.
    pub async fn connect(url: &str, prefix: &str) -> StoreResult<Self> {
        let client = ::redis::Client::open(url).map_err(err)?;
        let config = ::redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(std::time::Duration::from_secs(5)))
            .set_response_timeout(Some(std::time::Duration::from_secs(5)));
        let conn = client
            .get_connection_manager_with_config(config)
            .await
            .map_err(err)?;
        Ok(Self {
            conn,
            prefix: format!("{{{prefix}}}:"),
            scripts: Scripts {
                register: Script::new(REGISTER),
                unregister: Script::new(UNREGISTER),
                expire_edges: Script::new(EXPIRE_EDGES),
                start_typing: Script::new(START_TYPING),
                stop_typing: Script::new(STOP_TYPING),
                expire_typing: Script::new(EXPIRE_TYPING),
            },
        })
    }

    fn key(&self, name: &str, id: &str) -> String {
        format!("{}{name}:{id}", self.prefix)
    }

    fn edges(&self) -> String {
        format!("{}edges", self.prefix)
    }

    fn typing(&self) -> String {
        format!("{}typing", self.prefix)
    }

    fn typing_member(key: &TypingKey) -> String {
        json(&(&key.user_id, &key.conversation_id))
    }
}

fn profile(name: String, login: String, watchers: &str) -> StoreResult<Profile> {
    Ok(Profile {
        user_name: name,
        login,
        watcher_ids: serde_json::from_str(watchers).map_err(err)?,
    })
}

fn typing_state(name: String, login: String, started: &str, members: &str) -> StoreResult<Typing> {
    Ok(Typing {
        user_name: name,
        login,
        started_at_ms: started.parse().map_err(err)?,
        member_ids: serde_json::from_str(members).map_err(err)?,
    })
}

/// KEYS: sessions:<user>, edge:<edge>, edges, profile:<user>.
/// ARGV: session field, edge field, contract, limit, edge id, deadline,
/// name, watchers, login name. Returns {accepted, came_online, session_count}.
const REGISTER: &str = r#"
local known = redis.call('HEXISTS', KEYS[1], ARGV[1]) == 1
local before = redis.call('HLEN', KEYS[1])
if not known and before >= tonumber(ARGV[4]) then
  return {0, 0, before}
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
redis.call('HSET', KEYS[2], ARGV[2], ARGV[1])
redis.call('ZADD', KEYS[3], 'GT', ARGV[6], ARGV[5])
redis.call('HSET', KEYS[4], 'name', ARGV[7], 'watchers', ARGV[8], 'login', ARGV[9])
local came_online = 0
if before == 0 then came_online = 1 end
return {1, came_online, redis.call('HLEN', KEYS[1])}
"#;

/// KEYS: sessions:<user>, edge:<edge>, profile:<user>.
/// ARGV: session field, edge field.
/// Returns {removed, went_offline, session_count, name, watchers, login}.
const UNREGISTER: &str = r#"
redis.call('HDEL', KEYS[2], ARGV[2])
local removed = redis.call('HDEL', KEYS[1], ARGV[1])
local left = redis.call('HLEN', KEYS[1])
if removed == 1 and left == 0 then
  local p = redis.call('HMGET', KEYS[3], 'name', 'watchers', 'login')
  redis.call('DEL', KEYS[3])
  return {1, 1, 0, p[1] or '', p[2] or '[]', p[3] or ''}
end
return {removed, 0, left, '', '[]', ''}
"#;

/// KEYS: edges. ARGV: now, key prefix.
/// Removes every due edge with its sessions. Returns one
/// {user, session field, name, watchers, edge deadline, login} per user left with
/// no session.
const EXPIRE_EDGES: &str = r#"
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'WITHSCORES')
local out = {}
for i = 1, #due, 2 do
  local edge, deadline = due[i], due[i + 1]
  redis.call('ZREM', KEYS[1], edge)
  local edge_key = ARGV[2] .. 'edge:' .. edge
  local sessions = redis.call('HGETALL', edge_key)
  redis.call('DEL', edge_key)
  for j = 1, #sessions, 2 do
    local user = cjson.decode(sessions[j])[1]
    local field = sessions[j + 1]
    local user_key = ARGV[2] .. 'sessions:' .. user
    if redis.call('HDEL', user_key, field) == 1 and redis.call('HLEN', user_key) == 0 then
      local profile_key = ARGV[2] .. 'profile:' .. user
      local p = redis.call('HMGET', profile_key, 'name', 'watchers', 'login')
      redis.call('DEL', profile_key)
      table.insert(out, {user, field, p[1] or '', p[2] or '[]', deadline, p[3] or ''})
    end
  end
end
return out
"#;

/// KEYS: typing, typing:<member>. ARGV: member, deadline, name, members, now,
/// login name.
/// Returns {started, started_at}.
const START_TYPING: &str = r#"
local started = redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
redis.call('HSET', KEYS[2], 'name', ARGV[3], 'members', ARGV[4], 'login', ARGV[6])
if started == 1 then
  redis.call('HSET', KEYS[2], 'started', ARGV[5])
else
  redis.call('HSETNX', KEYS[2], 'started', ARGV[5])
end
return {started, redis.call('HGET', KEYS[2], 'started')}
"#;

/// KEYS: typing, typing:<member>. ARGV: member.
/// Returns {name, started, members, login}, or nil when not typing.
const STOP_TYPING: &str = r#"
if redis.call('ZREM', KEYS[1], ARGV[1]) == 0 then
  return false
end
local t = redis.call('HMGET', KEYS[2], 'name', 'started', 'members', 'login')
redis.call('DEL', KEYS[2])
return {t[1] or '', t[2] or '0', t[3] or '[]', t[4] or ''}
"#;

/// KEYS: typing. ARGV: now, key prefix, batch size.
/// Returns one {member, name, started, members, login} per expired state.
const EXPIRE_TYPING: &str = r#"
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[3]))
local out = {}
for _, member in ipairs(due) do
  redis.call('ZREM', KEYS[1], member)
  local key = ARGV[2] .. 'typing:' .. member
  local t = redis.call('HMGET', key, 'name', 'started', 'members', 'login')
  redis.call('DEL', key)
  table.insert(out, {member, t[1] or '', t[2] or '0', t[3] or '[]', t[4] or ''})
end
return out
"#;

#[async_trait::async_trait]
impl Store for RedisStore {
    async fn register(
        &self,
        s: &NewSession,
        limit: u32,
        edge_deadline_ms: i64,
    ) -> StoreResult<Registration> {
        let (accepted, came_online, session_count): (i64, i64, i64) = self
            .scripts
            .register
            .key(self.key("sessions", &s.user_id))
            .key(self.key("edge", &s.edge_id))
            .key(self.edges())
            .key(self.key("profile", &s.user_id))
            .arg(json(&(&s.edge_id, &s.socket_id)))
            .arg(json(&(&s.user_id, &s.socket_id)))
            .arg(&s.contract)
            .arg(limit)
            .arg(&s.edge_id)
            .arg(edge_deadline_ms)
            .arg(&s.profile.user_name)
            .arg(json(&s.profile.watcher_ids))
            .arg(&s.profile.login)
            .invoke_async(&mut self.conn.clone())
            .await
            .map_err(err)?;
        Ok(if accepted == 1 {
            Registration::Accepted {
                came_online: came_online == 1,
                session_count: count(session_count),
            }
        } else {
            Registration::Refused {
                session_count: count(session_count),
            }
        })
    }

    async fn unregister(
        &self,
        user_id: &str,
        edge_id: &str,
        socket_id: &str,
    ) -> StoreResult<Removal> {
        type Row = (i64, i64, i64, String, String, String);
        let (removed, went_offline, left, name, watchers, login): Row = self
            .scripts
            .unregister
            .key(self.key("sessions", user_id))
            .key(self.key("edge", edge_id))
            .key(self.key("profile", user_id))
            .arg(json(&(edge_id, socket_id)))
            .arg(json(&(user_id, socket_id)))
            .invoke_async(&mut self.conn.clone())
            .await
            .map_err(err)?;
        Ok(Removal {
            removed: removed == 1,
            session_count: count(left),
            went_offline: if went_offline == 1 {
                Some(profile(name, login, &watchers)?)
            } else {
                None
            },
        })
    }

    async fn heartbeat(&self, edge_id: &str, deadline_ms: i64) -> StoreResult<u32> {
        let (_, sessions): (i64, i64) = ::redis::pipe()
            .cmd("ZADD")
            .arg(self.edges())
            .arg("GT")
            .arg(deadline_ms)
            .arg(edge_id)
            .cmd("HLEN")
            .arg(self.key("edge", edge_id))
            .query_async(&mut self.conn.clone())
            .await
            .map_err(err)?;
        Ok(count(sessions))
    }

    async fn session_counts(&self, user_ids: &[String]) -> StoreResult<Vec<u32>> {
        if user_ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = ::redis::pipe();
        for u in user_ids {
            pipe.hlen(self.key("sessions", u));
        }
        let counts: Vec<i64> = pipe
            .query_async(&mut self.conn.clone())
            .await
            .map_err(err)?;
        Ok(counts.into_iter().map(count).collect())
    }

    async fn expire_edges(&self, now_ms: i64) -> StoreResult<Vec<Expired>> {
        let rows: Vec<(String, String, String, String, String, String)> = self
            .scripts
            .expire_edges
            .key(self.edges())
            .arg(now_ms)
            .arg(&self.prefix)
            .invoke_async(&mut self.conn.clone())
            .await
            .map_err(err)?;
        rows.into_iter()
            .map(|(user_id, field, name, watchers, deadline, login)| {
                let (_edge, socket_id): (String, String) =
                    serde_json::from_str(&field).map_err(err)?;
                Ok(Expired {
                    user_id,
                    socket_id,
                    profile: profile(name, login, &watchers)?,
                    edge_deadline_ms: deadline.parse::<f64>().map_err(err)? as i64,
                })
            })
            .collect()
    }

    async fn start_typing(
        &self,
        key: &TypingKey,
        typing: &Typing,
        deadline_ms: i64,
    ) -> StoreResult<TypingStart> {
        let member = Self::typing_member(key);
        let (started, started_at): (i64, i64) = self
            .scripts
            .start_typing
            .key(self.typing())
            .key(self.key("typing", &member))
            .arg(&member)
            .arg(deadline_ms)
            .arg(&typing.user_name)
            .arg(json(&typing.member_ids))
            .arg(typing.started_at_ms)
            .arg(&typing.login)
            .invoke_async(&mut self.conn.clone())
            .await
            .map_err(err)?;
        Ok(TypingStart {
            started: started == 1,
            started_at_ms: started_at,
        })
    }

    async fn stop_typing(&self, key: &TypingKey) -> StoreResult<Option<Typing>> {
        let member = Self::typing_member(key);
        let row: Option<(String, String, String, String)> = self
            .scripts
            .stop_typing
            .key(self.typing())
            .key(self.key("typing", &member))
            .arg(&member)
            .invoke_async(&mut self.conn.clone())
            .await
            .map_err(err)?;
        row.map(|(name, started, members, login)| typing_state(name, login, &started, &members))
            .transpose()
    }

    async fn expire_typing(&self, now_ms: i64) -> StoreResult<Vec<(TypingKey, Typing)>> {
        let mut out = Vec::new();
        loop {
            let rows: Vec<(String, String, String, String, String)> = self
                .scripts
                .expire_typing
                .key(self.typing())
                .arg(now_ms)
                .arg(&self.prefix)
                .arg(TYPING_BATCH)
                .invoke_async(&mut self.conn.clone())
                .await
                .map_err(err)?;
            let full = rows.len() == TYPING_BATCH;
            for (member, name, started, members, login) in rows {
                let (user_id, conversation_id): (String, String) =
                    serde_json::from_str(&member).map_err(err)?;
                out.push((
                    TypingKey {
                        user_id,
                        conversation_id,
                    },
                    typing_state(name, login, &started, &members)?,
                ));
            }
            if !full {
                return Ok(out);
            }
        }
    }
}
