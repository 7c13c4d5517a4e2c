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
    format!("socket:{socket_id}")
}

/// The room of the sockets that joined a conversation. `conversation_id`
/// is the canonical id (as chat-service writes it): a room named from an
/// id as a client wrote it (`"07"`) would be one no event reaches.
pub fn conversation_room(conversation_id: &str) -> String {
    format!("conv:{conversation_id}")
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
