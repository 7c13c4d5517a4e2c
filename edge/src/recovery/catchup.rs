//! What a socket that did not resume a session missed in a conversation it
//! joins: the messages since the last one delivered to its user there.
//!
//! chat-service's take (`TakeOfflineMessages` for that conversation) hands
//! them over, recorded delivered, with the newest message it looked at.
//! The take is made before the socket joins the room; the join and this
//! plan happen with the chat fan-out held ([`super::Recovery::log`]), so
//! each message reaches the socket once, in order:
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

use std::sync::Arc;

use confab_proto::ids;
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

/// Plans the catch-up of a socket joining `conversation_id`, with the log
/// held: `taken` is the take's messages (oldest first), `newest` the newest
/// message id it looked at.
pub fn plan(
    log: &Recent,
    conversation_id: &str,
    taken: &[ChatMessage],
    newest: Option<i64>,
) -> Vec<Missed> {
    let logged = log.messages_of(conversation_id);
    let last_emitted = logged.last().map(|(id, _)| *id);
    let oldest_kept = log.oldest_at_ms();
    let emitted = |m: &ChatMessage| match (ids::parse(&m.id), last_emitted) {
        (Some(id), Some(last)) => id <= last,
        // None of the conversation's messages among the recent events:
        // emitted if older than all of them (or nothing is kept to tell).
        _ => oldest_kept.is_none_or(|oldest| m.created_at_ms < oldest),
    };
    let mut out: Vec<Missed> = taken
        .iter()
        .enumerate()
        .filter(|(_, m)| emitted(m))
        .map(|(i, _)| Missed::Taken(i))
        .collect();
    let after = taken
        .iter()
        .filter_map(|m| ids::parse(&m.id))
        .chain(newest)
        .max()
        .unwrap_or(0);
    out.extend(
        logged
            .into_iter()
            .filter(|(id, _)| *id > after)
            .map(|(_, e)| Missed::Logged(e)),
    );
    out
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use confab_proto::v1::chat_event::Kind;

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
        let plan = plan(&log, "7", &taken, Some(11));
        assert_eq!(ids_of(&plan, &taken), vec!["t9", "t10", "t11", "l14"]);
    }

    #[test]
    fn a_taken_message_after_the_last_emitted_is_left_to_the_live_fan_out() {
        let mut log = Recent::new(Duration::from_secs(60), 100);
        log.push("e", created(1, message("7", 10, 0)));
        let taken = vec![message("7", 10, 0), message("7", 11, 0)];
        let plan = plan(&log, "7", &taken, Some(11));
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
        let plan = plan(&log, "7", &taken, Some(51));
        assert_eq!(ids_of(&plan, &taken), vec!["t40"], "51 is on its way");
        // Nothing kept at all: everything taken is sent.
        let empty = Recent::new(Duration::from_secs(60), 100);
        assert_eq!(
            ids_of(&super::plan(&empty, "7", &taken, Some(51)), &taken),
            vec!["t40", "t51"]
        );
    }
}
