//! Sockets whose connection dropped and whose presence session is still
//! running out its grace (`CONFAB_PRESENCE_GRACE_MS`), by user.
//!
//! Such a session still counts towards its user's socket limit in
//! presence-service. A user whose every tab dropped at once comes back
//! with as many new sockets while the old sessions linger: when the limit
//! refuses one, a lingering session of that user on this edge is ended at
//! once to make room (the user keeps their other sessions, so no one sees
//! them leave). Whoever takes a socket out of here ends its session: the
//! grace's end, or a registration that needed its room.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use socketioxide::extract::SocketRef;
use socketioxide::socket::Sid;

/// The lingering sockets of this edge, by user.
#[derive(Clone, Default)]
pub struct Lingering(Arc<Mutex<HashMap<String, Vec<SocketRef>>>>);

impl Lingering {
    /// Holds a dropped socket of `user` for its grace.
    pub fn hold(&self, user: &str, s: SocketRef) {
        if let Ok(mut m) = self.0.lock() {
            m.entry(user.to_string()).or_default().push(s);
        }
    }

    /// Takes the socket `sid` of `user` out, if it is still held: true when
    /// the caller is the one to end its session.
    pub fn release(&self, user: &str, sid: Sid) -> bool {
        let Ok(mut m) = self.0.lock() else {
            return false;
        };
        let Some(held) = m.get_mut(user) else {
            return false;
        };
        let before = held.len();
        held.retain(|s| s.id != sid);
        let released = held.len() < before;
        if held.is_empty() {
            m.remove(user);
        }
        released
    }

    /// Takes out the oldest lingering socket of `user`, whose session the
    /// caller ends.
    pub fn take_one(&self, user: &str) -> Option<SocketRef> {
        let mut m = self.0.lock().ok()?;
        let held = m.get_mut(user)?;
        let s = (!held.is_empty()).then(|| held.remove(0));
        if held.is_empty() {
            m.remove(user);
        }
        s
    }
}
