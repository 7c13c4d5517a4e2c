//! What a socket that did not resume a session missed in a conversation it
//! joins — or, for a contract whose messages reach a member's every socket
//! without a join, as it connects: the messages since the last one
//! delivered to its user (there, or anywhere).
//!
//! chat-service's take (`TakeOfflineMessages`, for that conversation or
//! every one) hands them over, recorded delivered, with the newest message
//! it looked at. The take is made before the socket joins the room (the
//! conversation's, or its user's); the join and this plan happen with the
//! chat fan-out held ([`super::Recovery::log`]), so each message reaches
//! the socket once, in order:
//!
//! - a taken message the fan-out has already emitted (the room did not
//!   hold the socket then) is sent from the take;
//! - a taken message not yet emitted will reach the socket live: skipped;
//! - a message sent after the take and already emitted before the join is
//!   sent from the recent events.
//!
//! "Already emitted" rests on chat-service announcing each conversation's
//! messages in id order: a message is emitted when its id is at most that
//! of the conversation's last message the fan-out handled; when none is
//! among the recent events, when it is older than the oldest of them.

use std::collections::HashMap;
use std::sync::Arc;

use confab_proto::ids;
use confab_proto::v1::chat_event::Kind;
use confab_proto::v1::{ChatEvent, ChatMessage};

use super::Recent;

/// One message a joining socket gets, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum Missed {
    /// The take's message at this index.
    Taken(usize),
    /// A message the fan-out emitted after the take.
    Logged(Arc<ChatEvent>),
}

/// Which messages a catch-up is about: one conversation's (a socket
/// joining it), or every message a user is in the audience of (a socket of
/// a contract whose messages reach a member's every socket without a join).
#[derive(Debug, Clone, Copy)]
pub enum Scope<'a> {
    Conversation(&'a str),
    User(&'a str),
}

impl Scope<'_> {
    fn covers(&self, event: &ChatEvent, m: &ChatMessage) -> bool {
        match self {
            Scope::Conversation(id) => m.conversation_id == *id,
            Scope::User(user) => event
                .audience
                .as_ref()
                .is_some_and(|a| a.user_ids.iter().any(|u| u == user)),
        }
    }
}

/// Plans the catch-up of a socket entering `scope`, with the log held:
/// `taken` is the take's messages (oldest first), `newest` the newest
/// message id it looked at.
pub fn plan(
    log: &Recent,
    scope: Scope<'_>,
    taken: &[ChatMessage],
    newest: Option<i64>,
) -> Vec<Missed> {
    let emitted = Emitted::of(log, taken);
    let emitted = |m: &ChatMessage| emitted.already(m);
    let mut out: Vec<Missed> = taken
        .iter()
        .enumerate()
        .filter(|(_, m)| emitted(m))
        .map(|(i, _)| Missed::Taken(i))
        .collect();
    // Sent after the take: above everything it saw (in the conversation
    // when one, else anywhere).
    let after = taken
        .iter()
        .filter_map(|m| ids::parse(&m.id))
        .chain(newest)
        .max()
        .unwrap_or(0);
    out.extend(log.messages().filter_map(|(id, e)| match &e.kind {
        Some(Kind::MessageCreated(m)) if id > after && scope.covers(e, m) => {
            Some(Missed::Logged(e.clone()))
        }
        _ => None,
    }));
    out
}

/// Whether the fan-out has already emitted a taken message (so a socket
/// not in its room then missed it) or has still to (so a socket in its
/// room will get it live): a conversation's messages are announced in id
/// order, so a message is emitted when its id is at most that of its
/// conversation's last message among the recent events; when none of them
/// is there, when it is older than the oldest of them.
pub struct Emitted {
    last: HashMap<String, Option<i64>>,
    oldest_kept: Option<i64>,
}

impl Emitted {
    /// Looks `taken`'s conversations up in `log` (held).
    pub fn of(log: &Recent, taken: &[ChatMessage]) -> Self {
        let mut last = HashMap::new();
        for m in taken {
            last.entry(m.conversation_id.clone()).or_insert_with(|| {
                log.messages_of(&m.conversation_id)
                    .last()
                    .map(|(id, _)| *id)
            });
        }
        Self {
            last,
            oldest_kept: log.oldest_at_ms(),
        }
    }

    /// Whether `m` has been emitted already.
    pub fn already(&self, m: &ChatMessage) -> bool {
        let last = self.last.get(&m.conversation_id).copied().flatten();
        match (ids::parse(&m.id), last) {
            (Some(id), Some(last)) => id <= last,
            // None of the conversation's messages among the recent events:
            // emitted if older than all of them (or nothing is kept to tell).
            _ => self
                .oldest_kept
                .is_none_or(|oldest| m.created_at_ms < oldest),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use confab_proto::v1::Audience;

    use super::*;

    fn message(conv: &str, id: i64, created_at_ms: i64) -> ChatMessage {
        ChatMessage {
            id: id.to_string(),
            conversation_id: conv.into(),
            created_at_ms,
            ..Default::default()
        }
    }

    fn created(seq: u64, m: ChatMessage) -> Arc<ChatEvent> {
        Arc::new(ChatEvent {
            seq,
            kind: Some(Kind::MessageCreated(m)),
            ..Default::default()
        })
    }

    fn ids_of(plan: &[Missed], taken: &[ChatMessage]) -> Vec<String> {
        plan.iter()
            .map(|p| match p {
                Missed::Taken(i) => format!("t{}", taken[*i].id),
                Missed::Logged(e) => match &e.kind {
                    Some(Kind::MessageCreated(m)) => format!("l{}", m.id),
                    _ => unreachable!(),
                },
            })
            .collect()
    }

    #[test]
    fn emitted_taken_messages_come_from_the_take_and_later_ones_from_the_log() {
        let mut log = Recent::new(Duration::from_secs(60), 100);
        // Conversation 7's messages 10 and 11 were emitted, then another
        // conversation's, then 7's message 14 (sent after the take).
        log.push("e", created(1, message("7", 10, 0)));
        log.push("e", created(2, message("7", 11, 0)));
        log.push("e", created(3, message("8", 12, 0)));
        log.push("e", created(4, message("7", 14, 0)));
        // The take had 9, 10 and 11, the newest it saw.
        let taken = vec![message("7", 9, 0), message("7", 10, 0), message("7", 11, 0)];
        let plan = plan(&log, Scope::Conversation("7"), &taken, Some(11));
        assert_eq!(ids_of(&plan, &taken), vec!["t9", "t10", "t11", "l14"]);
    }

    #[test]
    fn a_taken_message_after_the_last_emitted_is_left_to_the_live_fan_out() {
        let mut log = Recent::new(Duration::from_secs(60), 100);
        log.push("e", created(1, message("7", 10, 0)));
        let taken = vec![message("7", 10, 0), message("7", 11, 0)];
        let plan = plan(&log, Scope::Conversation("7"), &taken, Some(11));
        assert_eq!(ids_of(&plan, &taken), vec!["t10"], "11 comes live");
    }

    #[test]
    fn without_the_conversation_in_the_log_age_decides() {
        let mut log = Recent::new(Duration::from_secs(60), 100);
        log.push("e", created(1, message("8", 50, 0)));
        let oldest = log.oldest_at_ms().expect("an event is kept");
        let taken = vec![
            message("7", 40, oldest - 60_000),
            message("7", 51, oldest + 10),
        ];
        let plan = plan(&log, Scope::Conversation("7"), &taken, Some(51));
        assert_eq!(ids_of(&plan, &taken), vec!["t40"], "51 is on its way");
        // Nothing kept at all: everything taken is sent.
        let empty = Recent::new(Duration::from_secs(60), 100);
        assert_eq!(
            ids_of(
                &super::plan(&empty, Scope::Conversation("7"), &taken, Some(51)),
                &taken
            ),
            vec!["t40", "t51"]
        );
    }

    #[test]
    fn a_users_scope_covers_every_conversation_they_are_in() {
        let mut log = Recent::new(Duration::from_secs(60), 100);
        let to = |users: &[&str], seq, m| {
            let mut e = (*created(seq, m)).clone();
            e.audience = Some(Audience {
                user_ids: users.iter().map(|u| u.to_string()).collect(),
                ..Default::default()
            });
            Arc::new(e)
        };
        log.push("e", to(&["bob", "al"], 1, message("7", 10, 0)));
        log.push("e", to(&["cy", "al"], 2, message("8", 11, 0)));
        log.push("e", to(&["bob", "al"], 3, message("9", 12, 0)));
        // The take (every conversation of bob's) had 7's message 10 and saw
        // nothing newer: 9's message 12, sent after it, comes from the log;
        // 8's is not bob's.
        let taken = vec![message("7", 10, 0)];
        let plan = plan(&log, Scope::User("bob"), &taken, Some(10));
        assert_eq!(ids_of(&plan, &taken), vec!["t10", "l12"]);
    }
}
