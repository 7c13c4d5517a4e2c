//! The one way a socket enters or leaves a conversation's room.
//!
//! [`join`] asks chat-service whether the user is a member
//! (`CheckMembership`), names the room by the conversation's canonical id
//! (as chat-service writes it, so `"07"` and `7` are one room and events
//! reach it), joins it on this edge and tells presence-service
//! (`SetRoomPresence`), which announces the user's first socket there to
//! the members on every edge. [`leave`] undoes it. Both hold the socket's
//! [`RoomLock`], so two requests of one socket (a join and a leave sent
//! back to back) reach presence-service in the order its rooms changed.
//!
//! A join never fails for presence: when presence-service is unreachable
//! the join stands, unannounced. A closing socket needs nothing of this:
//! its room presences end with its presence session.
//!
//! Every change is written through to the socket's recoverable session
//! ([`crate::recovery`]); a resumed socket gets its rooms back through
//! [`restore`], which joins them and replays what it missed at one instant
//! of the chat fan-out. A socket that did not resume a session gets, as it
//! joins a conversation, the messages there since the last one delivered
//! to its user ([`crate::recovery::catchup`]) — at most
//! [`CATCH_UP_LIMIT`], the newest.

use std::sync::Arc;

use confab_proto::v1::chat_event::Kind;
use confab_proto::v1::{
    Audience, ChatEvent, ChatMessage, CheckMembershipRequest, Conversation, SetRoomPresenceRequest,
    SetRoomPresenceResponse, TakeOfflineMessagesRequest, TakeOfflineMessagesResponse,
};
use confab_proto::{ErrorCode, ServiceError, ids};
use futures::future::join_all;
use socketioxide::extract::SocketRef;

use crate::auth::Identity;
use crate::interest::Holds;
use crate::recovery::catchup::{self, Missed, Scope};
use crate::recovery::{Recent, Replay, recent};
use crate::rooms::{EVERYONE_ROOM, conversation_room, user_room};
use crate::session::presence::InRooms;
use crate::state::EdgeState;

/// A conversation the user may enter: chat-service's answer to
/// `CheckMembership` for a member.
#[derive(Debug, Clone)]
pub struct Member {
    /// The conversation, its id canonical.
    pub conversation: Conversation,
    /// The user's role in it (`member` when chat-service names none).
    pub role: String,
}

impl Member {
    /// The conversation's canonical id: its room is `conv:<id>`.
    pub fn id(&self) -> &str {
        &self.conversation.id
    }
}

/// A socket that entered a conversation's room.
#[derive(Debug, Clone)]
pub struct Joined {
    pub member: Member,
    /// presence-service's answer; `None` when it could not be reached (the
    /// join stands, unannounced).
    pub presence: Option<SetRoomPresenceResponse>,
}

/// Whether `me` may enter the conversation `conversation_id` (as the client
/// wrote it): `NOT_A_MEMBER` when not, or the service's own refusal.
pub async fn check(
    edge: &EdgeState,
    me: &Identity,
    conversation_id: &str,
) -> Result<Member, ServiceError> {
    let req = CheckMembershipRequest {
        conversation_id: conversation_id.to_string(),
        user_id: me.user_id.clone(),
    };
    let membership = edge
        .chat
        .clone()
        .check_membership(req)
        .await
        .map_err(ServiceError::from)?
        .into_inner();
    if !membership.is_member {
        return Err(ServiceError::new(
            ErrorCode::NotAMember,
            format!("you are not a member of conversation {conversation_id}"),
        ));
    }
    let mut conversation = membership.conversation.unwrap_or_default();
    if conversation.id.is_empty() {
        conversation.id = ids::canonical(conversation_id);
    }
    let role = if membership.role.is_empty() {
        "member".to_string()
    } else {
        membership.role
    };
    Ok(Member { conversation, role })
}

/// Checks membership and puts the socket in the conversation's room.
pub async fn join(
    edge: &EdgeState,
    s: &SocketRef,
    me: &Identity,
    conversation_id: &str,
) -> Result<Joined, ServiceError> {
    let member = check(edge, me, conversation_id).await?;
    let _rooms = lock(s).await;
    let missed = take_missed(edge, s, me, member.id()).await;
    let joined = enter_catching_up(edge, s, me, member, missed).await;
    remember(edge, s).await;
    Ok(joined)
}

/// Puts the socket in the rooms of several conversations it was found a
/// member of ([`check`]), telling presence-service of each side by side.
pub async fn join_all_checked(
    edge: &EdgeState,
    s: &SocketRef,
    me: &Identity,
    members: Vec<Member>,
) -> Vec<Joined> {
    let _rooms = lock(s).await;
    let missed = join_all(members.iter().map(|m| take_missed(edge, s, me, m.id()))).await;
    let joined = join_all(
        members
            .into_iter()
            .zip(missed)
            .map(|(m, missed)| enter_catching_up(edge, s, me, m, missed)),
    )
    .await;
    remember(edge, s).await;
    joined
}

/// Puts a resumed socket back in its rooms: its user's, everyone's and the
/// conversations it was found a member of again ([`check`]). Joined while
/// the chat fan-out is held ([`crate::recovery::Recovery::log`]), and
/// `replay` runs right then with the recent events: whatever the fan-out
/// emitted before, the socket gets from `replay`; whatever it emits after,
/// live — never both, never neither. Presence is told afterwards.
pub async fn restore<R>(
    edge: &EdgeState,
    s: &SocketRef,
    me: &Identity,
    members: Vec<Member>,
    replay: impl FnOnce(&Recent) -> R,
) -> R {
    let _rooms = lock(s).await;
    let replayed = {
        let log = edge.recovery.log().await;
        s.join([user_room(&me.user_id), EVERYONE_ROOM.to_string()]);
        for m in &members {
            here(edge, s, m.id());
        }
        replay(&log)
    };
    join_all(members.into_iter().map(|m| announce(edge, s, me, m))).await;
    remember(edge, s).await;
    replayed
}

/// Checks membership and makes this conversation's room the socket's only
/// one: it leaves every other conversation room first (one room at a time,
/// as some frontends have it). Returns the join and the rooms it left.
pub async fn switch(
    edge: &EdgeState,
    s: &SocketRef,
    me: &Identity,
    conversation_id: &str,
) -> Result<(Joined, Vec<String>), ServiceError> {
    let member = check(edge, me, conversation_id).await?;
    let _rooms = lock(s).await;
    let missed = take_missed(edge, s, me, member.id()).await;
    // Leave the others, then join this one (no await in between, so the
    // socket is never in two rooms).
    let previous: Vec<String> = joined(s).into_iter().filter(|r| r != member.id()).collect();
    for old in &previous {
        s.leave(conversation_room(old));
        held(s, |h| h.leave(old));
    }
    for old in &previous {
        set_room_presence(edge, s, me, old, false, Vec::new(), "").await;
    }
    let joined = enter_catching_up(edge, s, me, member, missed).await;
    remember(edge, s).await;
    Ok((joined, previous))
}

/// Takes the socket out of the conversation's room (`conversation_id` as
/// the client wrote it) and, if it was in it, tells presence-service.
/// Returns whether it was in the room.
pub async fn leave(edge: &EdgeState, s: &SocketRef, me: &Identity, conversation_id: &str) -> bool {
    let id = ids::canonical(conversation_id);
    let _rooms = lock(s).await;
    let room = conversation_room(&id);
    let was_in = s.rooms().iter().any(|r| *r == room);
    if was_in {
        s.leave(room);
        held(s, |h| h.leave(&id));
        set_room_presence(edge, s, me, &id, false, Vec::new(), "").await;
        remember(edge, s).await;
    }
    was_in
}

/// Writes the socket's rooms through to its recoverable session.
async fn remember(edge: &EdgeState, s: &SocketRef) {
    if edge.recovery.enabled() {
        edge.recovery.remember(s, joined(s)).await;
    }
}

/// Changes what the socket holds of the edge's [`Interest`]: every room
/// join and leave here is mirrored there.
///
/// [`Interest`]: crate::interest::Interest
fn held(s: &SocketRef, change: impl FnOnce(&Holds)) {
    if let Some(holds) = s.extensions.get::<Holds>() {
        change(&holds);
    }
}

/// The canonical ids of the conversations whose rooms the socket is in.
pub fn joined(s: &SocketRef) -> Vec<String> {
    let prefix = conversation_room("");
    s.rooms()
        .iter()
        .filter_map(|r| r.strip_prefix(prefix.as_str()).map(str::to_string))
        .collect()
}

/// Holds the socket's [`RoomLock`] until dropped: no room of it changes
/// meanwhile (`v3`'s offline delivery takes and sends the queue so, and
/// each conversation's messages reach the socket from one take only).
pub async fn exclusive(s: &SocketRef) -> tokio::sync::OwnedMutexGuard<()> {
    lock(s).await
}

/// Serialises one socket's room changes — its rooms on this edge and its
/// room presence in presence-service — and its catch-up takes. Only that
/// socket ever waits on it.
#[derive(Debug, Clone, Default)]
pub struct RoomLock(Arc<tokio::sync::Mutex<()>>);

/// Gives a socket its [`RoomLock`] (the socket lifecycle does, before any
/// event of the socket can run).
pub fn attach_lock(s: &SocketRef) {
    s.extensions.insert(RoomLock::default());
}

async fn lock(s: &SocketRef) -> tokio::sync::OwnedMutexGuard<()> {
    let lock = s.extensions.get::<RoomLock>().unwrap_or_else(|| {
        let lock = RoomLock::default();
        s.extensions.insert(lock.clone());
        lock
    });
    lock.0.lock_owned().await
}

/// Joins the room on this edge and tells presence-service; the caller holds
/// the room lock.
async fn enter(edge: &EdgeState, s: &SocketRef, me: &Identity, member: Member) -> Joined {
    here(edge, s, member.id());
    announce(edge, s, me, member).await
}

/// How many missed messages a joining socket gets at most, per
/// conversation (the newest win).
pub const CATCH_UP_LIMIT: u32 = 100;

/// What a socket that did not resume a session missed in the conversation
/// it is about to join (the caller holds its room lock), taken from
/// chat-service before it joins
/// ([`crate::recovery::catchup`]). Nothing for a socket already in the
/// room (it heard everything live), or with recovery off; a take that
/// fails is logged and the join goes on without it.
async fn take_missed(
    edge: &EdgeState,
    s: &SocketRef,
    me: &Identity,
    id: &str,
) -> Option<TakeOfflineMessagesResponse> {
    let room = conversation_room(id);
    if !edge.recovery.enabled() || s.rooms().iter().any(|r| *r == room) {
        return None;
    }
    take(edge, me, id).await
}

/// chat-service's take of what `me` missed in `conversation_id` ("" =
/// every conversation), at most [`CATCH_UP_LIMIT`]; `None` when it failed
/// (logged: the socket goes on without it).
async fn take(
    edge: &EdgeState,
    me: &Identity,
    conversation_id: &str,
) -> Option<TakeOfflineMessagesResponse> {
    let req = TakeOfflineMessagesRequest {
        actor: Some(me.actor()),
        limit: CATCH_UP_LIMIT,
        conversation_id: conversation_id.to_string(),
    };
    match edge.chat.clone().take_offline_messages(req).await {
        Ok(r) => Some(r.into_inner()),
        Err(status) => {
            tracing::warn!(error = %status, conversation_id, "missed messages unavailable; going on without them");
            None
        }
    }
}

/// [`enter`], sending what the socket missed ([`take_missed`]): the room
/// is joined and the missed messages sent with the chat fan-out held, so
/// each reaches the socket once, before any later one.
async fn enter_catching_up(
    edge: &EdgeState,
    s: &SocketRef,
    me: &Identity,
    member: Member,
    missed: Option<TakeOfflineMessagesResponse>,
) -> Joined {
    let Some(missed) = missed else {
        return enter(edge, s, me, member).await;
    };
    let delivered = {
        let log = edge.recovery.log().await;
        here(edge, s, member.id());
        send_missed(&log, s, me, Scope::Conversation(member.id()), missed)
    };
    edge.deliveries.record_for(&me.user_id, &delivered).await;
    announce(edge, s, me, member).await
}

/// Sends a socket what it missed in `scope`, as [`catchup::plan`] orders
/// it (the log held); returns the messages sent from the log, whose
/// delivery is still to be recorded (the take recorded its own).
fn send_missed(
    log: &Recent,
    s: &SocketRef,
    me: &Identity,
    scope: Scope<'_>,
    missed: TakeOfflineMessagesResponse,
) -> Vec<ChatMessage> {
    let taken: Vec<_> = missed
        .messages
        .into_iter()
        .filter_map(|o| Some((o.message?, o.conversation)))
        .collect();
    let messages: Vec<ChatMessage> = taken.iter().map(|(m, _)| m.clone()).collect();
    let now = log.offset();
    let mut delivered = Vec::new();
    for step in catchup::plan(log, scope, &messages, ids::parse(&missed.newest_message_id)) {
        match step {
            Missed::Taken(i) => {
                let (message, conversation) = taken[i].clone();
                let event = ChatEvent {
                    audience: Some(Audience {
                        user_ids: vec![me.user_id.clone()],
                        conversation_id: message.conversation_id.clone(),
                        ..Default::default()
                    }),
                    conversation,
                    kind: Some(Kind::MessageCreated(message)),
                    ..Default::default()
                };
                Replay::to(s, &event, now.as_deref(), None);
            }
            Missed::Logged(event) => {
                let offset = recent::offset(log.epoch(), event.seq);
                if let (true, Some(Kind::MessageCreated(m))) =
                    (Replay::to(s, &event, Some(&offset), None), &event.kind)
                {
                    delivered.push(m.clone());
                }
            }
        }
    }
    metrics::counter!("confab_join_caught_up_messages_total").increment(delivered.len() as u64);
    delivered
}

/// What a connecting socket's user missed anywhere (at most
/// [`CATCH_UP_LIMIT`], the newest), taken in the connect middleware for
/// [`enter_user_rooms`]; `None` when the take failed (logged).
pub async fn take_missed_everywhere(
    edge: &EdgeState,
    me: &Identity,
) -> Option<TakeOfflineMessagesResponse> {
    take(edge, me, "").await
}

/// Puts a socket that did not resume a session in its user's and
/// everyone's rooms, with what its user missed anywhere
/// ([`take_missed_everywhere`], taken before it was connected): for a
/// contract whose messages reach every socket of a member without a join
/// ([`crate::contract::CatchUp::OnConnect`]), whose socket joins no room
/// before this — the first thing it does once connected. As [`join`] does
/// for one conversation: sent with the rooms joined while the chat fan-out
/// is held.
pub async fn enter_user_rooms(
    edge: &EdgeState,
    s: &SocketRef,
    me: &Identity,
    missed: Option<TakeOfflineMessagesResponse>,
) {
    let _rooms = lock(s).await;
    let delivered = {
        let log = edge.recovery.log().await;
        s.join([user_room(&me.user_id), EVERYONE_ROOM.to_string()]);
        match missed {
            Some(missed) => send_missed(&log, s, me, Scope::User(&me.user_id), missed),
            None => Vec::new(),
        }
    };
    edge.deliveries.record_for(&me.user_id, &delivered).await;
}

/// Joins the conversation's room on this edge.
fn here(edge: &EdgeState, s: &SocketRef, id: &str) {
    s.join(conversation_room(id));
    held(s, |h| h.join(&edge.interest, id));
    s.extensions.insert(InRooms);
}

/// Tells presence-service the socket entered the conversation's room.
async fn announce(edge: &EdgeState, s: &SocketRef, me: &Identity, member: Member) -> Joined {
    let members = member
        .conversation
        .members
        .iter()
        .map(|m| m.user_id.clone())
        .collect();
    let id = member.id().to_string();
    let presence = set_room_presence(edge, s, me, &id, true, members, &member.role).await;
    // A socket that disconnected meanwhile may have been unregistered
    // before this join reached presence-service: take it out again.
    if presence.is_some() && !s.connected() {
        set_room_presence(edge, s, me, &id, false, Vec::new(), "").await;
    }
    Joined { member, presence }
}

async fn set_room_presence(
    edge: &EdgeState,
    s: &SocketRef,
    me: &Identity,
    conversation_id: &str,
    joined: bool,
    member_ids: Vec<String>,
    role: &str,
) -> Option<SetRoomPresenceResponse> {
    let req = SetRoomPresenceRequest {
        actor: Some(me.actor()),
        conversation_id: conversation_id.to_string(),
        joined,
        member_ids,
        socket_id: s.id.to_string(),
        edge_id: edge.edge_id.clone(),
        role: role.to_string(),
    };
    match edge.presence.clone().set_room_presence(req).await {
        Ok(r) => Some(r.into_inner()),
        Err(status) => {
            tracing::warn!(error = %status, conversation_id, joined, "room presence unavailable; not announced");
            None
        }
    }
}
