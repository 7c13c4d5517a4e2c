//! The presence domain: every rule about sessions, online/offline, last
//! seen, room presence and typing.
//!
//! [`Presence`] validates canonical requests, applies them to the
//! [`Store`] (which reports the transition each change caused), records
//! last-seen times and publishes one [`PresenceEvent`] per transition on the
//! bus. [`Presence::sweep`] expires edges that stopped heartbeating (with
//! their sessions and their sockets' room presences) and typing states
//! nobody stopped; the sweeper task calls it. The gRPC layer in `grpc.rs`
//! only forwards here.
//!
//! Room presence: which sockets of which user are in which conversation,
//! whatever edge they are on. Only a user's first socket entering a
//! conversation and their last one leaving it are events, so a user with
//! sockets on two edges is announced once; a socket's room presences end
//! with its session (`UnregisterSession`) or its edge, so a crashed edge
//! still has its users leave.

use std::sync::Arc;

use confab_kit::{db_err, now_ms};
use confab_proto::bus::EventBus;
use confab_proto::v1::{self, Audience, PresenceEvent, presence_event::Kind};
use confab_proto::{ErrorCode, ServiceError};

use crate::config::Config;
use crate::last_seen::LastSeen;
use crate::store::{
    NewSession, Profile, Registration, RoomLeft, RoomMember, RoomSocket, Store, StoreError, Typing,
    TypingKey,
};

/// Longest user, edge, socket or conversation id accepted.
pub const MAX_ID_LEN: usize = 256;
/// Most watcher or member ids one request may carry.
pub const MAX_AUDIENCE: usize = 10_000;
/// Most users one `GetPresence` may ask about.
pub const MAX_LOOKUP: usize = 1_000;

type Result<T> = std::result::Result<T, ServiceError>;

/// The presence domain over a store, the last-seen table and an event bus.
#[derive(Clone)]
pub struct Presence {
    store: Arc<dyn Store>,
    last_seen: LastSeen,
    bus: Arc<dyn EventBus<PresenceEvent>>,
    session_limit: u32,
    session_ttl_ms: i64,
    typing_ttl_ms: i64,
}

fn store_err(e: StoreError) -> ServiceError {
    tracing::error!(error = %e, "presence store error");
    ServiceError::internal("presence storage failure")
}

fn id<'a>(value: &'a str, what: &str) -> Result<&'a str> {
    if value.trim().is_empty() || value.len() > MAX_ID_LEN {
        return Err(ServiceError::invalid(format!(
            "{what} must be 1..={MAX_ID_LEN} characters"
        )));
    }
    Ok(value)
}

fn actor(a: &Option<v1::Actor>) -> Result<&v1::Actor> {
    match a {
        Some(a) => id(&a.id, "actor.id").map(|_| a),
        None => Err(ServiceError::invalid("actor.id is required")),
    }
}

fn audience(ids: &[String], what: &str) -> Result<()> {
    if ids.len() > MAX_AUDIENCE {
        return Err(ServiceError::invalid(format!(
            "{what} holds at most {MAX_AUDIENCE} ids"
        )));
    }
    ids.iter().try_for_each(|u| id(u, what).map(|_| ()))
}

/// A room presence change (a leave, until the caller says otherwise).
fn room_change(
    conversation_id: &str,
    user_id: &str,
    socket_id: &str,
    member: &RoomMember,
    at_ms: i64,
) -> v1::RoomPresenceChange {
    v1::RoomPresenceChange {
        user_id: user_id.to_string(),
        user_name: member.user_name.clone(),
        login_name: member.login.clone(),
        conversation_id: conversation_id.to_string(),
        joined: false,
        at_ms,
        socket_id: socket_id.to_string(),
        role: String::new(),
        disconnected: false,
    }
}

fn ms(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

impl Presence {
    pub fn new(
        store: Arc<dyn Store>,
        last_seen: LastSeen,
        bus: Arc<dyn EventBus<PresenceEvent>>,
        config: &Config,
    ) -> Self {
        Self {
            store,
            last_seen,
            bus,
            session_limit: config.session_limit,
            session_ttl_ms: ms(config.session_ttl_ms),
            typing_ttl_ms: ms(config.typing_ttl_ms),
        }
    }

    /// The bus `Subscribe` is served from.
    pub fn bus(&self) -> &dyn EventBus<PresenceEvent> {
        self.bus.as_ref()
    }

    // ---- sessions ----------------------------------------------------------

    pub async fn register_session(
        &self,
        req: v1::RegisterSessionRequest,
    ) -> Result<v1::RegisterSessionResponse> {
        let actor = actor(&req.actor)?;
        id(&req.edge_id, "edge_id")?;
        id(&req.socket_id, "socket_id")?;
        if req.contract.len() > MAX_ID_LEN {
            return Err(ServiceError::invalid("contract is too long"));
        }
        audience(&req.watcher_ids, "watcher_ids")?;
        let now = now_ms();
        let session = NewSession {
            user_id: actor.id.clone(),
            edge_id: req.edge_id,
            socket_id: req.socket_id,
            contract: req.contract,
            profile: Profile {
                user_name: actor.name.clone(),
                login: actor.username.clone(),
                watcher_ids: req.watcher_ids,
            },
        };
        let registration = self
            .store
            .register(&session, self.session_limit, now + self.session_ttl_ms)
            .await
            .map_err(store_err)?;
        match registration {
            Registration::Refused { session_count } => Err(ServiceError::new(
                ErrorCode::LimitExceeded,
                format!(
                    "user {} already has {session_count} open sessions (the limit is {}); \
                     close one before opening another",
                    actor.id, self.session_limit
                ),
            )),
            Registration::Accepted {
                came_online,
                session_count,
            } => {
                if came_online {
                    self.publish_status(
                        &session.user_id,
                        &session.profile,
                        true,
                        now,
                        &session.socket_id,
                        now,
                    )
                    .await;
                }
                Ok(v1::RegisterSessionResponse {
                    came_online,
                    session_count,
                })
            }
        }
    }

    pub async fn unregister_session(
        &self,
        req: v1::UnregisterSessionRequest,
    ) -> Result<v1::UnregisterSessionResponse> {
        id(&req.user_id, "user_id")?;
        id(&req.edge_id, "edge_id")?;
        id(&req.socket_id, "socket_id")?;
        audience(&req.watcher_ids, "watcher_ids")?;
        let removal = self
            .store
            .unregister(&req.user_id, &req.edge_id, &req.socket_id)
            .await
            .map_err(store_err)?;
        let now = now_ms();
        // The rooms first: those who share them hear the user leave before
        // (for the last session) they hear them go offline.
        for left in &removal.rooms_left {
            self.room_left(left, now).await;
        }
        let Some(mut profile) = removal.went_offline else {
            return Ok(v1::UnregisterSessionResponse {
                went_offline: false,
                last_seen_ms: 0,
                session_count: removal.session_count,
            });
        };
        if !req.watcher_ids.is_empty() {
            profile.watcher_ids = req.watcher_ids;
        }
        self.went_offline(&req.user_id, &profile, now, &req.socket_id, now)
            .await;
        Ok(v1::UnregisterSessionResponse {
            went_offline: true,
            last_seen_ms: now,
            session_count: 0,
        })
    }

    pub async fn heartbeat(&self, req: v1::HeartbeatRequest) -> Result<v1::HeartbeatResponse> {
        id(&req.edge_id, "edge_id")?;
        let session_count = self
            .store
            .heartbeat(&req.edge_id, now_ms() + self.session_ttl_ms)
            .await
            .map_err(store_err)?;
        Ok(v1::HeartbeatResponse { session_count })
    }

    pub async fn get_presence(
        &self,
        req: v1::GetPresenceRequest,
    ) -> Result<v1::GetPresenceResponse> {
        if req.user_ids.len() > MAX_LOOKUP {
            return Err(ServiceError::invalid(format!(
                "ask about at most {MAX_LOOKUP} users at once"
            )));
        }
        req.user_ids
            .iter()
            .try_for_each(|u| id(u, "user_ids").map(|_| ()))?;
        let counts = self
            .store
            .session_counts(&req.user_ids)
            .await
            .map_err(store_err)?;
        let offline: Vec<String> = req
            .user_ids
            .iter()
            .zip(&counts)
            .filter(|(_, n)| **n == 0)
            .map(|(u, _)| u.clone())
            .collect();
        let seen = self.last_seen.get_many(&offline).await.map_err(db_err)?;
        let now = now_ms();
        let users = req
            .user_ids
            .into_iter()
            .zip(counts)
            .map(|(user_id, session_count)| {
                let online = session_count > 0;
                let last_seen_ms = if online {
                    now
                } else {
                    seen.get(&user_id).copied().unwrap_or(0)
                };
                v1::UserPresence {
                    user_id,
                    online,
                    last_seen_ms,
                    session_count,
                }
            })
            .collect();
        Ok(v1::GetPresenceResponse { users })
    }

    // ---- typing and rooms --------------------------------------------------

    pub async fn set_typing(&self, req: v1::SetTypingRequest) -> Result<v1::SetTypingResponse> {
        let actor = actor(&req.actor)?;
        id(&req.conversation_id, "conversation_id")?;
        audience(&req.member_ids, "member_ids")?;
        let key = TypingKey {
            user_id: actor.id.clone(),
            conversation_id: req.conversation_id,
        };
        let now = now_ms();
        if !req.typing {
            let stopped = self.store.stop_typing(&key).await.map_err(store_err)?;
            if let Some(mut typing) = stopped {
                if !req.member_ids.is_empty() {
                    typing.member_ids = req.member_ids;
                }
                self.publish_typing(&key, &typing, false, false).await;
            }
            return Ok(v1::SetTypingResponse { expires_at_ms: 0 });
        }
        let expires_at_ms = now + self.typing_ttl_ms;
        let typing = Typing {
            user_name: actor.name.clone(),
            login: actor.username.clone(),
            started_at_ms: now,
            member_ids: req.member_ids,
        };
        let start = self
            .store
            .start_typing(&key, &typing, expires_at_ms)
            .await
            .map_err(store_err)?;
        if start.started {
            self.publish_typing(&key, &typing, true, false).await;
        }
        Ok(v1::SetTypingResponse { expires_at_ms })
    }

    /// A socket entered or left a conversation's room. Only the user's
    /// first socket there joining, or their last one leaving, is told to
    /// the conversation's members (the edges decide whether the user's own
    /// sockets hear it; `socket_id` says which socket it was).
    pub async fn set_room_presence(
        &self,
        req: v1::SetRoomPresenceRequest,
    ) -> Result<v1::SetRoomPresenceResponse> {
        let actor = actor(&req.actor)?;
        id(&req.conversation_id, "conversation_id")?;
        id(&req.edge_id, "edge_id")?;
        id(&req.socket_id, "socket_id")?;
        audience(&req.member_ids, "member_ids")?;
        if req.role.len() > MAX_ID_LEN {
            return Err(ServiceError::invalid("role is too long"));
        }
        let socket = RoomSocket {
            conversation_id: req.conversation_id,
            user_id: actor.id.clone(),
            edge_id: req.edge_id,
            socket_id: req.socket_id,
        };
        let now = now_ms();
        let changed = if req.joined {
            let member = RoomMember {
                user_name: actor.name.clone(),
                login: actor.username.clone(),
                member_ids: req.member_ids,
            };
            let first = self
                .store
                .join_room(&socket, &member, now + self.session_ttl_ms)
                .await
                .map_err(store_err)?;
            if first {
                let change = room_change(
                    &socket.conversation_id,
                    &socket.user_id,
                    &socket.socket_id,
                    &member,
                    now,
                );
                let change = v1::RoomPresenceChange {
                    joined: true,
                    role: req.role,
                    ..change
                };
                self.publish_room(change, &member).await;
            }
            first
        } else {
            let last = self.store.leave_room(&socket).await.map_err(store_err)?;
            match last {
                Some(mut member) => {
                    if !req.member_ids.is_empty() {
                        member.member_ids = req.member_ids;
                    }
                    let change = room_change(
                        &socket.conversation_id,
                        &socket.user_id,
                        &socket.socket_id,
                        &member,
                        now,
                    );
                    self.publish_room(change, &member).await;
                    true
                }
                None => false,
            }
        };
        Ok(v1::SetRoomPresenceResponse {
            changed,
            at_ms: now,
        })
    }

    // ---- expiry ------------------------------------------------------------

    /// Expires the edges whose heartbeat deadline passed (their users with
    /// no session left go offline, last seen at their edge's last heartbeat)
    /// and the typing states nobody stopped. Safe to run on every replica at
    /// once: each expiry is reported to one of them only.
    pub async fn sweep(&self) -> std::result::Result<(), StoreError> {
        let now = now_ms();
        let expired = self.store.expire_edges(now).await?;
        for left in &expired.rooms_left {
            tracing::info!(user_id = %left.user_id, conversation_id = %left.conversation_id, "room presence expired: edge stopped heartbeating");
            self.room_left(left, now).await;
        }
        for gone in expired.offline {
            let last_seen = (gone.edge_deadline_ms - self.session_ttl_ms).clamp(0, now);
            tracing::info!(user_id = %gone.user_id, "session expired: edge stopped heartbeating");
            self.went_offline(
                &gone.user_id,
                &gone.profile,
                last_seen,
                &gone.socket_id,
                now,
            )
            .await;
        }
        for (key, typing) in self.store.expire_typing(now).await? {
            self.publish_typing(&key, &typing, false, true).await;
        }
        Ok(())
    }

    // ---- events ------------------------------------------------------------

    /// Records the last-seen time and tells the watchers. A failed write is
    /// logged and the event still goes out: the sessions are already gone.
    async fn went_offline(
        &self,
        user_id: &str,
        profile: &Profile,
        last_seen_ms: i64,
        socket_id: &str,
        at_ms: i64,
    ) {
        if let Err(e) = self.last_seen.record(user_id, last_seen_ms).await {
            tracing::error!(user_id, error = %e, "could not record last seen");
        }
        self.publish_status(user_id, profile, false, last_seen_ms, socket_id, at_ms)
            .await;
    }

    async fn publish_status(
        &self,
        user_id: &str,
        profile: &Profile,
        online: bool,
        last_seen_ms: i64,
        socket_id: &str,
        at_ms: i64,
    ) {
        self.bus
            .publish(PresenceEvent {
                audience: Some(Audience {
                    user_ids: profile.watcher_ids.clone(),
                    ..Default::default()
                }),
                kind: Some(Kind::StatusChanged(v1::StatusChange {
                    user_id: user_id.to_string(),
                    user_name: profile.user_name.clone(),
                    login_name: profile.login.clone(),
                    online,
                    last_seen_ms,
                    socket_id: socket_id.to_string(),
                    at_ms,
                })),
                ..Default::default()
            })
            .await;
    }

    /// A user's last socket left a room because it (or its edge) went away.
    async fn room_left(&self, left: &RoomLeft, at_ms: i64) {
        let change = room_change(
            &left.conversation_id,
            &left.user_id,
            &left.socket_id,
            &left.member,
            at_ms,
        );
        self.publish_room(
            v1::RoomPresenceChange {
                disconnected: true,
                ..change
            },
            &left.member,
        )
        .await;
    }

    async fn publish_room(&self, change: v1::RoomPresenceChange, member: &RoomMember) {
        self.bus
            .publish(PresenceEvent {
                audience: Some(Audience {
                    conversation_id: change.conversation_id.clone(),
                    user_ids: member.member_ids.clone(),
                    ..Default::default()
                }),
                kind: Some(Kind::RoomPresenceChanged(change)),
                ..Default::default()
            })
            .await;
    }

    async fn publish_typing(&self, key: &TypingKey, typing: &Typing, on: bool, expired: bool) {
        self.bus
            .publish(PresenceEvent {
                audience: Some(Audience {
                    conversation_id: key.conversation_id.clone(),
                    user_ids: typing.member_ids.clone(),
                    except_user_ids: vec![key.user_id.clone()],
                    ..Default::default()
                }),
                kind: Some(Kind::TypingChanged(v1::TypingChange {
                    user_id: key.user_id.clone(),
                    user_name: typing.user_name.clone(),
                    login_name: typing.login.clone(),
                    conversation_id: key.conversation_id.clone(),
                    typing: on,
                    started_at_ms: typing.started_at_ms,
                    expired,
                })),
                ..Default::default()
            })
            .await;
    }
}
