//! Room names: how events find sockets.
//!
//! Every socket joins its user's room ([`user_room`]), its own room
//! ([`socket_room`]) and [`EVERYONE_ROOM`] when it connects, and a
//! conversation's room ([`conversation_room`]) only through
//! [`crate::session::rooms`], which checks membership and writes the id as
//! chat-service does. Nothing here knows a contract or a service.

use confab_proto::v1::Audience;

/// The room every socket of a user is in.
pub fn user_room(user_id: &str) -> String {
    format!("user:{user_id}")
}

/// The room every socket is in: an event for everyone connected (a
/// notify-service publish to `everyone`).
pub const EVERYONE_ROOM: &str = "everyone";

/// The room of one socket alone: a request's `origin` names it, so a
/// contract can leave the requesting socket out of the event's echo.
pub fn socket_room(socket_id: &str) -> String {
    format!("{SOCKET_ROOM_PREFIX}{socket_id}")
}

/// How a [`socket_room`]'s name starts.
pub const SOCKET_ROOM_PREFIX: &str = "socket:";

/// The room of the sockets that joined a conversation. `conversation_id`
/// is the canonical id (as chat-service writes it): a room named from an
/// id as a client wrote it (`"07"`) would be one no event reaches.
pub fn conversation_room(conversation_id: &str) -> String {
    format!("conv:{conversation_id}")
}

/// Every room an event with `audience` may be emitted to: its
/// conversation's room, its users' and sessions' rooms, and everyone's
/// when it is for everyone. A renderer names no other room but the socket
/// room of a session of one of these users (a call participant's, from the
/// call; checked in debug builds by `fanout`), and such a socket is in its
/// user's room: an edge with no socket in any of these rooms has nothing
/// to render.
pub fn audience_rooms(audience: Option<&Audience>) -> Vec<String> {
    let Some(a) = audience else {
        return Vec::new();
    };
    let mut rooms = Vec::with_capacity(1 + a.user_ids.len() + a.session_ids.len());
    if !a.conversation_id.is_empty() {
        rooms.push(conversation_room(&a.conversation_id));
    }
    rooms.extend(a.user_ids.iter().map(|u| user_room(u)));
    rooms.extend(a.session_ids.iter().map(|s| socket_room(s)));
    if a.everyone {
        rooms.push(EVERYONE_ROOM.to_string());
    }
    rooms
}

/// Where a call event goes: the sessions (sockets) it names, else every
/// socket of its users — the sessions one answered a call on hear its
/// signaling alone.
pub fn call_rooms(audience: Option<&Audience>) -> Vec<String> {
    let Some(a) = audience else {
        return Vec::new();
    };
    if a.session_ids.is_empty() {
        a.user_ids.iter().map(|u| user_room(u)).collect()
    } else {
        a.session_ids.iter().map(|s| socket_room(s)).collect()
    }
}
