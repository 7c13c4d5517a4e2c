//! The in-process [`Store`]: one mutex over plain maps. It serves the
//! embedded mode and single-replica deployments; its state dies with the
//! process.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

use super::{
    EdgesExpired, Expired, NewSession, Profile, Registration, Removal, RoomLeft, RoomMember,
    RoomSocket, Store, StoreResult, Typing, TypingKey, TypingStart,
};

#[derive(Default)]
pub struct MemoryStore {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// Users with at least one session (an entry with none is removed).
    users: HashMap<String, User>,
    edges: HashMap<String, Edge>,
    typing: HashMap<TypingKey, (i64, Typing)>,
    /// (conversation id, user id) → that user's sockets in the room (an
    /// entry with none is removed).
    rooms: HashMap<(String, String), Room>,
    /// (user id, edge id, socket id) → the conversations the socket is in.
    socket_rooms: HashMap<(String, String, String), HashSet<String>>,
}

struct Room {
    /// (edge id, socket id).
    sockets: HashSet<(String, String)>,
    member: RoomMember,
}

struct User {
    /// (edge id, socket id) → contract.
    sessions: HashMap<(String, String), String>,
    profile: Profile,
}

#[derive(Default)]
struct Edge {
    deadline_ms: i64,
    /// (user id, socket id) of the sessions on this edge.
    sessions: HashSet<(String, String)>,
    /// (user id, socket id) of this edge's sockets in some room.
    room_sockets: HashSet<(String, String)>,
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave the maps half-updated
        // in a way later calls would trip on, so keep going.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn count(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

impl State {
    /// Takes one socket out of every room it is in; returns the rooms it
    /// was its user's last socket in.
    fn leave_rooms(&mut self, user_id: &str, edge_id: &str, socket_id: &str) -> Vec<RoomLeft> {
        let key = (
            user_id.to_string(),
            edge_id.to_string(),
            socket_id.to_string(),
        );
        let Some(conversations) = self.socket_rooms.remove(&key) else {
            return Vec::new();
        };
        let (user_id, edge_id, socket_id) = key;
        if let Some(edge) = self.edges.get_mut(&edge_id) {
            edge.room_sockets
                .remove(&(user_id.clone(), socket_id.clone()));
        }
        let socket = (edge_id, socket_id);
        let mut left = Vec::new();
        for conversation_id in conversations {
            let room_key = (conversation_id, user_id.clone());
            let Some(room) = self.rooms.get_mut(&room_key) else {
                continue;
            };
            if room.sockets.remove(&socket)
                && room.sockets.is_empty()
                && let Some(room) = self.rooms.remove(&room_key)
            {
                left.push(RoomLeft {
                    conversation_id: room_key.0,
                    user_id: user_id.clone(),
                    socket_id: socket.1.clone(),
                    member: room.member,
                });
            }
        }
        left
    }
}

#[async_trait::async_trait]
impl Store for MemoryStore {
    async fn register(
        &self,
        s: &NewSession,
        limit: u32,
        edge_deadline_ms: i64,
    ) -> StoreResult<Registration> {
        let mut st = self.state();
        let session = (s.edge_id.clone(), s.socket_id.clone());
        let before = st.users.get(&s.user_id).map_or(0, |u| u.sessions.len());
        let known = st
            .users
            .get(&s.user_id)
            .is_some_and(|u| u.sessions.contains_key(&session));
        if !known && before >= limit as usize {
            return Ok(Registration::Refused {
                session_count: count(before),
            });
        }
        let user = st.users.entry(s.user_id.clone()).or_insert_with(|| User {
            sessions: HashMap::new(),
            profile: Profile::default(),
        });
        user.sessions.insert(session, s.contract.clone());
        user.profile = s.profile.clone();
        let after = user.sessions.len();
        let edge = st.edges.entry(s.edge_id.clone()).or_default();
        edge.deadline_ms = edge.deadline_ms.max(edge_deadline_ms);
        edge.sessions
            .insert((s.user_id.clone(), s.socket_id.clone()));
        Ok(Registration::Accepted {
            came_online: before == 0,
            session_count: count(after),
        })
    }

    async fn unregister(
        &self,
        user_id: &str,
        edge_id: &str,
        socket_id: &str,
    ) -> StoreResult<Removal> {
        let mut st = self.state();
        let rooms_left = st.leave_rooms(user_id, edge_id, socket_id);
        if let Some(edge) = st.edges.get_mut(edge_id) {
            edge.sessions
                .remove(&(user_id.to_string(), socket_id.to_string()));
        }
        let Some(user) = st.users.get_mut(user_id) else {
            return Ok(Removal {
                removed: false,
                session_count: 0,
                went_offline: None,
                rooms_left,
            });
        };
        let removed = user
            .sessions
            .remove(&(edge_id.to_string(), socket_id.to_string()))
            .is_some();
        let left = user.sessions.len();
        let went_offline = if left == 0 {
            st.users.remove(user_id).map(|u| u.profile)
        } else {
            None
        };
        Ok(Removal {
            removed,
            session_count: count(left),
            went_offline,
            rooms_left,
        })
    }

    async fn heartbeat(&self, edge_id: &str, deadline_ms: i64) -> StoreResult<u32> {
        let mut st = self.state();
        let edge = st.edges.entry(edge_id.to_string()).or_default();
        edge.deadline_ms = edge.deadline_ms.max(deadline_ms);
        Ok(count(edge.sessions.len()))
    }

    async fn session_counts(&self, user_ids: &[String]) -> StoreResult<Vec<u32>> {
        let st = self.state();
        Ok(user_ids
            .iter()
            .map(|u| st.users.get(u).map_or(0, |u| count(u.sessions.len())))
            .collect())
    }

    async fn expire_edges(&self, now_ms: i64) -> StoreResult<EdgesExpired> {
        let mut st = self.state();
        let due: Vec<String> = st
            .edges
            .iter()
            .filter(|(_, e)| e.deadline_ms <= now_ms)
            .map(|(id, _)| id.clone())
            .collect();
        let mut out = EdgesExpired::default();
        for edge_id in due {
            let Some(edge) = st.edges.get(&edge_id) else {
                continue;
            };
            let room_sockets: Vec<(String, String)> = edge.room_sockets.iter().cloned().collect();
            for (user_id, socket_id) in room_sockets {
                let left = st.leave_rooms(&user_id, &edge_id, &socket_id);
                out.rooms_left.extend(left);
            }
            let Some(edge) = st.edges.remove(&edge_id) else {
                continue;
            };
            for (user_id, socket_id) in edge.sessions {
                let Some(user) = st.users.get_mut(&user_id) else {
                    continue;
                };
                let removed = user
                    .sessions
                    .remove(&(edge_id.clone(), socket_id.clone()))
                    .is_some();
                if removed
                    && user.sessions.is_empty()
                    && let Some(user) = st.users.remove(&user_id)
                {
                    out.offline.push(Expired {
                        user_id,
                        socket_id,
                        profile: user.profile,
                        edge_deadline_ms: edge.deadline_ms,
                    });
                }
            }
        }
        Ok(out)
    }

    async fn join_room(
        &self,
        socket: &RoomSocket,
        member: &RoomMember,
        edge_deadline_ms: i64,
    ) -> StoreResult<bool> {
        let mut st = self.state();
        let room = st
            .rooms
            .entry((socket.conversation_id.clone(), socket.user_id.clone()))
            .or_insert_with(|| Room {
                sockets: HashSet::new(),
                member: RoomMember::default(),
            });
        let first = room.sockets.is_empty();
        room.sockets
            .insert((socket.edge_id.clone(), socket.socket_id.clone()));
        room.member = member.clone();
        st.socket_rooms
            .entry((
                socket.user_id.clone(),
                socket.edge_id.clone(),
                socket.socket_id.clone(),
            ))
            .or_default()
            .insert(socket.conversation_id.clone());
        let edge = st.edges.entry(socket.edge_id.clone()).or_default();
        edge.deadline_ms = edge.deadline_ms.max(edge_deadline_ms);
        edge.room_sockets
            .insert((socket.user_id.clone(), socket.socket_id.clone()));
        Ok(first)
    }

    async fn leave_room(&self, socket: &RoomSocket) -> StoreResult<Option<RoomMember>> {
        let mut st = self.state();
        let socket_key = (
            socket.user_id.clone(),
            socket.edge_id.clone(),
            socket.socket_id.clone(),
        );
        if let Some(rooms) = st.socket_rooms.get_mut(&socket_key) {
            rooms.remove(&socket.conversation_id);
            if rooms.is_empty() {
                st.socket_rooms.remove(&socket_key);
                if let Some(edge) = st.edges.get_mut(&socket.edge_id) {
                    edge.room_sockets
                        .remove(&(socket.user_id.clone(), socket.socket_id.clone()));
                }
            }
        }
        let room_key = (socket.conversation_id.clone(), socket.user_id.clone());
        let Some(room) = st.rooms.get_mut(&room_key) else {
            return Ok(None);
        };
        let removed = room
            .sockets
            .remove(&(socket.edge_id.clone(), socket.socket_id.clone()));
        if removed && room.sockets.is_empty() {
            return Ok(st.rooms.remove(&room_key).map(|r| r.member));
        }
        Ok(None)
    }

    async fn start_typing(
        &self,
        key: &TypingKey,
        typing: &Typing,
        deadline_ms: i64,
    ) -> StoreResult<TypingStart> {
        let mut st = self.state();
        match st.typing.get_mut(key) {
            Some((deadline, kept)) => {
                *deadline = deadline_ms;
                kept.user_name = typing.user_name.clone();
                kept.login = typing.login.clone();
                kept.member_ids = typing.member_ids.clone();
                Ok(TypingStart {
                    started: false,
                    started_at_ms: kept.started_at_ms,
                })
            }
            None => {
                st.typing.insert(key.clone(), (deadline_ms, typing.clone()));
                Ok(TypingStart {
                    started: true,
                    started_at_ms: typing.started_at_ms,
                })
            }
        }
    }

    async fn stop_typing(&self, key: &TypingKey) -> StoreResult<Option<Typing>> {
        Ok(self.state().typing.remove(key).map(|(_, t)| t))
    }

    async fn expire_typing(&self, now_ms: i64) -> StoreResult<Vec<(TypingKey, Typing)>> {
        let mut st = self.state();
        let due: Vec<TypingKey> = st
            .typing
            .iter()
            .filter(|(_, (deadline, _))| *deadline <= now_ms)
            .map(|(k, _)| k.clone())
            .collect();
        Ok(due
            .into_iter()
            .filter_map(|k| st.typing.remove(&k).map(|(_, t)| (k, t)))
            .collect())
    }
}
