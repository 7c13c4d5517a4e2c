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
//! | `room:<room>` | set | the sockets `["<edge>","<socket>"]` of one user in one conversation, `<room>` = `["<conversation>","<user>"]`; its size says first / last |
//! | `roominfo:<room>` | hash | `name`, `login`, `members` (JSON array) of the user's latest join there; deleted with the last socket |
//! | `sockrooms:<socket>` | set | the rooms `["<conversation>","<user>"]` one socket `["<edge>","<socket>"]` is in |
//! | `edgerooms:<edge>` | set | the sockets `["<edge>","<socket>"]` of that edge in some room |
//!
//! Each operation that can cause a transition is one Lua script, so it runs
//! atomically on the server: registering checks the limit and adds in one
//! step; the script that removes the last session, a user's last socket
//! from a room (a leave, an unregister or an edge's expiry), an expired
//! edge (`ZREM` from `edges`) or a typing state (`ZREM` from `typing`) is
//! the only one that reports it, so of several replicas sweeping at once
//! exactly one publishes each event. The JSON strings are made in Rust and only decoded
//! in Lua, so keys and fields always match byte for byte.
//!
//! Deadlines are computed from each replica's clock: replicas need
//! synchronised clocks (NTP), as any TTL shared between machines does.
//! Needs Redis 6.2 or later (`ZADD ... GT` keeps a heartbeat deadline from
//! moving back).

use ::redis::Script;
use ::redis::aio::ConnectionManager;

use super::{
    EdgesExpired, Expired, NewSession, Profile, Registration, Removal, RoomLeft, RoomMember,
    RoomSocket, Store, StoreError, StoreResult, Typing, TypingKey, TypingStart,
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
    join_room: Script,
    leave_room: Script,
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
                unregister: Script::new(&format!("{LEAVE_ROOMS}{UNREGISTER}")),
                expire_edges: Script::new(&format!("{LEAVE_ROOMS}{EXPIRE_EDGES}")),
                start_typing: Script::new(START_TYPING),
                stop_typing: Script::new(STOP_TYPING),
                expire_typing: Script::new(EXPIRE_TYPING),
                join_room: Script::new(JOIN_ROOM),
                leave_room: Script::new(LEAVE_ROOM),
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

    /// `["<conversation>","<user>"]`: names a user's presence in a room.
    fn room_member(socket: &RoomSocket) -> String {
        json(&(&socket.conversation_id, &socket.user_id))
    }
}

fn room_member(name: String, login: String, members: &str) -> StoreResult<RoomMember> {
    Ok(RoomMember {
        user_name: name,
        login,
        member_ids: serde_json::from_str(members).map_err(err)?,
    })
}

/// One row of [`LEAVE_ROOMS`]: {room, socket field, name, login, members}.
type RoomRow = (String, String, String, String, String);

fn room_left((room, socket, name, login, members): RoomRow) -> StoreResult<RoomLeft> {
    let (conversation_id, user_id): (String, String) = serde_json::from_str(&room).map_err(err)?;
    let (_edge, socket_id): (String, String) = serde_json::from_str(&socket).map_err(err)?;
    Ok(RoomLeft {
        conversation_id,
        user_id,
        socket_id,
        member: room_member(name, login, &members)?,
    })
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

/// A Lua function the scripts that end sockets start with: takes one
/// socket (`["<edge>","<socket>"]`) out of every room it is in and appends
/// to `out` one {room, socket, name, login, members} per room it was its
/// user's last socket in.
const LEAVE_ROOMS: &str = r#"
local function leave_rooms(prefix, edge, socket, out)
  local socket_key = prefix .. 'sockrooms:' .. socket
  local rooms = redis.call('SMEMBERS', socket_key)
  redis.call('DEL', socket_key)
  redis.call('SREM', prefix .. 'edgerooms:' .. edge, socket)
  for _, room in ipairs(rooms) do
    local room_key = prefix .. 'room:' .. room
    if redis.call('SREM', room_key, socket) == 1 and redis.call('SCARD', room_key) == 0 then
      local info_key = prefix .. 'roominfo:' .. room
      local p = redis.call('HMGET', info_key, 'name', 'login', 'members')
      redis.call('DEL', info_key)
      table.insert(out, {room, socket, p[1] or '', p[2] or '', p[3] or '[]'})
    end
  end
end
"#;

/// KEYS: sessions:<user>, edge:<edge>, profile:<user>.
/// ARGV: session field (= the socket), edge field, key prefix, edge id.
/// Returns {removed, went_offline, session_count, name, watchers, login,
/// rooms left} (see [`LEAVE_ROOMS`]).
const UNREGISTER: &str = r#"
local rooms = {}
leave_rooms(ARGV[3], ARGV[4], ARGV[1], rooms)
redis.call('HDEL', KEYS[2], ARGV[2])
local removed = redis.call('HDEL', KEYS[1], ARGV[1])
local left = redis.call('HLEN', KEYS[1])
if removed == 1 and left == 0 then
  local p = redis.call('HMGET', KEYS[3], 'name', 'watchers', 'login')
  redis.call('DEL', KEYS[3])
  return {1, 1, 0, p[1] or '', p[2] or '[]', p[3] or '', rooms}
end
return {removed, 0, left, '', '[]', '', rooms}
"#;

/// KEYS: edges. ARGV: now, key prefix.
/// Removes every due edge with its sessions and its sockets' rooms. Returns
/// {offline, rooms left}: one {user, session field, name, watchers, edge
/// deadline, login} per user left with no session, and the rooms as
/// [`LEAVE_ROOMS`] reports them.
const EXPIRE_EDGES: &str = r#"
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'WITHSCORES')
local out = {}
local rooms = {}
for i = 1, #due, 2 do
  local edge, deadline = due[i], due[i + 1]
  redis.call('ZREM', KEYS[1], edge)
  for _, socket in ipairs(redis.call('SMEMBERS', ARGV[2] .. 'edgerooms:' .. edge)) do
    leave_rooms(ARGV[2], edge, socket, rooms)
  end
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
return {out, rooms}
"#;

/// KEYS: room:<room>, roominfo:<room>, sockrooms:<socket>, edgerooms:<edge>,
/// edges. ARGV: socket, room, name, login, members, edge id, deadline.
/// Returns 1 when this is the user's first socket in the room, else 0.
const JOIN_ROOM: &str = r#"
local added = redis.call('SADD', KEYS[1], ARGV[1])
redis.call('HSET', KEYS[2], 'name', ARGV[3], 'login', ARGV[4], 'members', ARGV[5])
redis.call('SADD', KEYS[3], ARGV[2])
redis.call('SADD', KEYS[4], ARGV[1])
redis.call('ZADD', KEYS[5], 'GT', ARGV[7], ARGV[6])
if added == 1 and redis.call('SCARD', KEYS[1]) == 1 then
  return 1
end
return 0
"#;

/// KEYS: room:<room>, roominfo:<room>, sockrooms:<socket>, edgerooms:<edge>.
/// ARGV: socket, room.
/// Returns {name, login, members} when this was the user's last socket in
/// the room, else nil.
const LEAVE_ROOM: &str = r#"
redis.call('SREM', KEYS[3], ARGV[2])
if redis.call('SCARD', KEYS[3]) == 0 then
  redis.call('SREM', KEYS[4], ARGV[1])
end
if redis.call('SREM', KEYS[1], ARGV[1]) == 1 and redis.call('SCARD', KEYS[1]) == 0 then
  local p = redis.call('HMGET', KEYS[2], 'name', 'login', 'members')
  redis.call('DEL', KEYS[2])
  return {p[1] or '', p[2] or '', p[3] or '[]'}
end
return false
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
        type Row = (i64, i64, i64, String, String, String, Vec<RoomRow>);
        let (removed, went_offline, left, name, watchers, login, rooms): Row = self
            .scripts
            .unregister
            .key(self.key("sessions", user_id))
            .key(self.key("edge", edge_id))
            .key(self.key("profile", user_id))
            .arg(json(&(edge_id, socket_id)))
            .arg(json(&(user_id, socket_id)))
            .arg(&self.prefix)
            .arg(edge_id)
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
            rooms_left: rooms
                .into_iter()
                .map(room_left)
                .collect::<StoreResult<_>>()?,
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

    async fn expire_edges(&self, now_ms: i64) -> StoreResult<EdgesExpired> {
        type Row = (String, String, String, String, String, String);
        let (rows, rooms): (Vec<Row>, Vec<RoomRow>) = self
            .scripts
            .expire_edges
            .key(self.edges())
            .arg(now_ms)
            .arg(&self.prefix)
            .invoke_async(&mut self.conn.clone())
            .await
            .map_err(err)?;
        let offline = rows
            .into_iter()
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
            .collect::<StoreResult<_>>()?;
        Ok(EdgesExpired {
            offline,
            rooms_left: rooms
                .into_iter()
                .map(room_left)
                .collect::<StoreResult<_>>()?,
        })
    }

    async fn join_room(
        &self,
        socket: &RoomSocket,
        member: &RoomMember,
        edge_deadline_ms: i64,
    ) -> StoreResult<bool> {
        let room = Self::room_member(socket);
        let field = json(&(&socket.edge_id, &socket.socket_id));
        let first: i64 = self
            .scripts
            .join_room
            .key(self.key("room", &room))
            .key(self.key("roominfo", &room))
            .key(self.key("sockrooms", &field))
            .key(self.key("edgerooms", &socket.edge_id))
            .key(self.edges())
            .arg(&field)
            .arg(&room)
            .arg(&member.user_name)
            .arg(&member.login)
            .arg(json(&member.member_ids))
            .arg(&socket.edge_id)
            .arg(edge_deadline_ms)
            .invoke_async(&mut self.conn.clone())
            .await
            .map_err(err)?;
        Ok(first == 1)
    }

    async fn leave_room(&self, socket: &RoomSocket) -> StoreResult<Option<RoomMember>> {
        let room = Self::room_member(socket);
        let field = json(&(&socket.edge_id, &socket.socket_id));
        let row: Option<(String, String, String)> = self
            .scripts
            .leave_room
            .key(self.key("room", &room))
            .key(self.key("roominfo", &room))
            .key(self.key("sockrooms", &field))
            .key(self.key("edgerooms", &socket.edge_id))
            .arg(&field)
            .arg(&room)
            .invoke_async(&mut self.conn.clone())
            .await
            .map_err(err)?;
        row.map(|(name, login, members)| room_member(name, login, &members))
            .transpose()
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
