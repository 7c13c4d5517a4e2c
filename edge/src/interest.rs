//! What this edge holds sockets for: a count of its sockets per user and
//! per conversation room, so the fan-out can tell in a few lookups whether
//! an event concerns any socket here before any contract renders it
//! (`fanout`). With many edges most events concern sockets on another
//! edge; without this, every edge rendered every event in every contract.
//!
//! A socket holds its user from the connect middleware on, and each
//! conversation room it joined through `session::rooms` until it leaves
//! it; each hold is a [`Held`] kept in the socket's extensions, so a
//! socket that goes away, by any path, gives back what it held when it is
//! dropped (as `session::presence::SessionGuard` does for its session).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use confab_proto::v1::Audience;

/// The edge's counts; cheap to clone.
#[derive(Clone, Default)]
pub struct Interest(Arc<Mutex<Counts>>);

#[derive(Default)]
struct Counts {
    users: HashMap<String, usize>,
    conversations: HashMap<String, usize>,
}

#[derive(Clone, Copy)]
enum Kind {
    User,
    Conversation,
}

/// One socket's hold on a user or a conversation; given back when dropped.
pub struct Held {
    interest: Interest,
    kind: Kind,
    key: String,
}

impl Interest {
    /// A socket of `user_id` is here.
    pub fn hold_user(&self, user_id: &str) -> Held {
        self.hold(Kind::User, user_id)
    }

    /// A socket is in the room of conversation `id` (canonical).
    pub fn hold_conversation(&self, id: &str) -> Held {
        self.hold(Kind::Conversation, id)
    }

    fn hold(&self, kind: Kind, key: &str) -> Held {
        let mut counts = self.0.lock().expect("interest lock");
        *counts.of(kind).entry(key.to_string()).or_default() += 1;
        Held {
            interest: self.clone(),
            kind,
            key: key.to_string(),
        }
    }

    /// Whether an event for `audience` may reach a socket here: everyone's
    /// while any socket is here, its conversation's room, or one of its
    /// users (whose sockets also hold the sessions it names). An event
    /// without an audience is rendered, to be safe.
    pub fn concerns(&self, audience: Option<&Audience>) -> bool {
        let Some(a) = audience else {
            return true;
        };
        let counts = self.0.lock().expect("interest lock");
        (a.everyone && !counts.users.is_empty())
            || (!a.conversation_id.is_empty()
                && counts.conversations.contains_key(&a.conversation_id))
            || a.user_ids.iter().any(|u| counts.users.contains_key(u))
    }
}

impl Counts {
    fn of(&mut self, kind: Kind) -> &mut HashMap<String, usize> {
        match kind {
            Kind::User => &mut self.users,
            Kind::Conversation => &mut self.conversations,
        }
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        let mut counts = self.interest.0.lock().expect("interest lock");
        let map = counts.of(self.kind);
        if let Some(n) = map.get_mut(&self.key) {
            *n -= 1;
            if *n == 0 {
                map.remove(&self.key);
            }
        }
    }
}

/// A socket's holds, in its extensions: its user's, and one per
/// conversation room it is in.
#[derive(Clone, Default)]
pub struct Holds(Arc<Mutex<SocketHolds>>);

#[derive(Default)]
struct SocketHolds {
    user: Option<Held>,
    conversations: HashMap<String, Held>,
}

impl Holds {
    pub fn user(&self, held: Held) {
        self.0.lock().expect("holds lock").user = Some(held);
    }

    /// Holds conversation `id` through `interest` unless already held.
    pub fn join(&self, interest: &Interest, id: &str) {
        let mut holds = self.0.lock().expect("holds lock");
        if !holds.conversations.contains_key(id) {
            let held = interest.hold_conversation(id);
            holds.conversations.insert(id.to_string(), held);
        }
    }

    pub fn leave(&self, id: &str) {
        self.0.lock().expect("holds lock").conversations.remove(id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn audience(conversation: &str, users: &[&str], everyone: bool) -> Audience {
        Audience {
            conversation_id: conversation.into(),
            user_ids: users.iter().map(|u| u.to_string()).collect(),
            everyone,
            ..Default::default()
        }
    }

    #[test]
    fn an_event_concerns_the_edge_while_a_socket_holds_its_room_or_user() {
        let interest = Interest::default();
        let for_7 = audience("7", &["a", "b"], false);
        assert!(!interest.concerns(Some(&for_7)));
        assert!(!interest.concerns(Some(&audience("", &[], true))));

        let holds = Holds::default();
        holds.join(&interest, "7");
        holds.join(&interest, "7");
        assert!(interest.concerns(Some(&for_7)));
        assert!(!interest.concerns(Some(&audience("8", &["c"], false))));
        holds.leave("7");
        assert!(!interest.concerns(Some(&for_7)), "one join, one leave");

        let two = [interest.hold_user("b"), interest.hold_user("b")];
        assert!(interest.concerns(Some(&for_7)));
        assert!(interest.concerns(Some(&audience("", &[], true))));
        drop(two);
        assert!(!interest.concerns(Some(&for_7)));

        holds.join(&interest, "7");
        drop(holds);
        assert!(
            !interest.concerns(Some(&for_7)),
            "a dropped socket gives back its rooms"
        );
        assert!(interest.concerns(None));
    }
}
