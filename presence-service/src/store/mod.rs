//! Where sessions, room presence and typing states live: the [`Store`]
//! trait and its two implementations, [`memory::MemoryStore`] (one process) and
//! [`redis::RedisStore`] (shared by every replica).
//!
//! Both are ephemeral: losing them loses who is connected right now, which
//! edges re-establish by registering again. Each operation is atomic and
//! reports the transition it caused (came online, went offline, a user's
//! first socket in a conversation, their last one leaving it, started or
//! stopped typing, expired), so exactly one caller — one replica — sees each
//! transition and publishes its event. Times are milliseconds since the Unix
//! epoch, passed in by the caller.

pub mod memory;
pub mod redis;

pub use memory::MemoryStore;
pub use redis::RedisStore;

/// A storage failure (Redis unreachable, a malformed stored value).
#[derive(Debug, thiserror::Error)]
#[error("presence store: {0}")]
pub struct StoreError(pub String);

pub type StoreResult<T> = Result<T, StoreError>;

/// One socket to register.
#[derive(Debug, Clone)]
pub struct NewSession {
    pub user_id: String,
    pub edge_id: String,
    pub socket_id: String,
    pub contract: String,
    /// Kept as the user's [`Profile`], replacing the previous one.
    pub profile: Profile,
}

/// What the user's latest registration said about them: the name events
/// carry and who hears their online/offline transitions.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Profile {
    /// The display name.
    pub user_name: String,
    /// The login name (the token's `username`), when it has one.
    #[serde(default)]
    pub login: String,
    pub watcher_ids: Vec<String>,
}

/// The outcome of [`Store::register`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Registration {
    /// Stored (or refreshed, when the socket was already registered).
    Accepted {
        came_online: bool,
        session_count: u32,
    },
    /// The user already has `limit` sessions; nothing changed.
    Refused { session_count: u32 },
}

/// The outcome of [`Store::unregister`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Removal {
    /// Whether the session existed.
    pub removed: bool,
    /// The user's sessions left.
    pub session_count: u32,
    /// `Some` when this was the last session: the user went offline.
    pub went_offline: Option<Profile>,
    /// The conversations this socket was the user's last socket in: its
    /// room presences end with the session.
    pub rooms_left: Vec<RoomLeft>,
}

/// A user who went offline because their last sessions' edge expired.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expired {
    pub user_id: String,
    /// The last of their sessions removed.
    pub socket_id: String,
    pub profile: Profile,
    /// The heartbeat deadline the edge missed.
    pub edge_deadline_ms: i64,
}

/// What [`Store::expire_edges`] removed: users left with no session, and
/// rooms left with no socket of a user.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EdgesExpired {
    pub offline: Vec<Expired>,
    pub rooms_left: Vec<RoomLeft>,
}

/// One socket of a user in one conversation's room.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RoomSocket {
    pub conversation_id: String,
    pub user_id: String,
    pub edge_id: String,
    pub socket_id: String,
}

/// What is kept about a user in a conversation's room (from their latest
/// join), for the event when their last socket leaves it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RoomMember {
    /// The display name.
    pub user_name: String,
    /// The login name, when the token has one.
    pub login: String,
    /// Who hears the user's room presence.
    pub member_ids: Vec<String>,
}

/// A user's last socket left a conversation's room because the socket's
/// session ended or its edge expired.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomLeft {
    pub conversation_id: String,
    pub user_id: String,
    /// The socket that was the last one.
    pub socket_id: String,
    pub member: RoomMember,
}

/// One user typing in one conversation.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TypingKey {
    pub user_id: String,
    pub conversation_id: String,
}

/// What is kept about a typing state, for its stop or expiry event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Typing {
    /// The display name.
    pub user_name: String,
    /// The login name, when the token has one.
    pub login: String,
    pub started_at_ms: i64,
    pub member_ids: Vec<String>,
}

/// The outcome of [`Store::start_typing`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TypingStart {
    /// False when the user was already typing there (only the expiry moved).
    pub started: bool,
    pub started_at_ms: i64,
}

/// Sessions, edge heartbeats, room presence and typing states.
///
/// Room presence is a set of sockets per (conversation, user), indexed by
/// socket and by edge so that a socket's rooms end with its session
/// ([`Store::unregister`]) and an edge's with the edge
/// ([`Store::expire_edges`]); a socket need not have a session to be in a
/// room (presence-service may have been unreachable when it connected).
#[async_trait::async_trait]
pub trait Store: Send + Sync + 'static {
    /// Adds a session unless the user already has `limit` of them, and
    /// pushes the edge's heartbeat deadline to `edge_deadline_ms`.
    async fn register(
        &self,
        session: &NewSession,
        limit: u32,
        edge_deadline_ms: i64,
    ) -> StoreResult<Registration>;

    /// Removes a session and the socket's room presences (also when the
    /// session was unknown).
    async fn unregister(
        &self,
        user_id: &str,
        edge_id: &str,
        socket_id: &str,
    ) -> StoreResult<Removal>;

    /// Pushes the edge's deadline to `deadline_ms` (never back); returns how
    /// many sessions the edge has.
    async fn heartbeat(&self, edge_id: &str, deadline_ms: i64) -> StoreResult<u32>;

    /// Session counts, in the order of `user_ids`.
    async fn session_counts(&self, user_ids: &[String]) -> StoreResult<Vec<u32>>;

    /// Removes every edge whose deadline is at or before `now_ms`, with its
    /// sessions and its sockets' room presences; returns the users left with
    /// no session and the rooms left with no socket of a user.
    async fn expire_edges(&self, now_ms: i64) -> StoreResult<EdgesExpired>;

    /// Puts a socket in a conversation's room (again: nothing changes but
    /// the kept [`RoomMember`], which the latest join replaces) and pushes
    /// the edge's heartbeat deadline to `edge_deadline_ms`. True when it is
    /// the user's first socket there.
    async fn join_room(
        &self,
        socket: &RoomSocket,
        member: &RoomMember,
        edge_deadline_ms: i64,
    ) -> StoreResult<bool>;

    /// Takes a socket out of a conversation's room; `Some` (what was kept)
    /// when it was the user's last socket there, `None` when others remain
    /// or the socket was not in it.
    async fn leave_room(&self, socket: &RoomSocket) -> StoreResult<Option<RoomMember>>;

    /// Starts (or refreshes) a typing state ending at `deadline_ms`. A
    /// refresh keeps the original start time and replaces name and members.
    async fn start_typing(
        &self,
        key: &TypingKey,
        typing: &Typing,
        deadline_ms: i64,
    ) -> StoreResult<TypingStart>;

    /// Ends a typing state; `None` when there was none.
    async fn stop_typing(&self, key: &TypingKey) -> StoreResult<Option<Typing>>;

    /// Removes and returns the typing states due at or before `now_ms`.
    async fn expire_typing(&self, now_ms: i64) -> StoreResult<Vec<(TypingKey, Typing)>>;
}
