//! The chat events this edge handled lately, by their position in
//! chat-service's log: what a resumed session is replayed from.
//!
//! Positions are chat-service's (`epoch`, `seq`), the same on every edge
//! following that log, so a session begun on one edge resumes on another.
//! The events kept are contiguous: a new epoch or a gap in `seq` (events
//! this edge missed) starts over, so a replay never skips an event. They
//! are kept for the recovery window, at most `max_events` of them.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use confab_proto::ids;
use confab_proto::v1::ChatEvent;
use confab_proto::v1::chat_event::Kind;

/// A position in chat-service's log as a client holds it: `<epoch>-<seq>`,
/// the last argument of every chat event a socket receives.
pub fn offset(epoch: &str, seq: u64) -> String {
    format!("{epoch}-{seq}")
}

/// `(epoch, seq)` of an offset; `None` when it is not one.
pub fn parse(offset: &str) -> Option<(&str, u64)> {
    let (epoch, seq) = offset.rsplit_once('-')?;
    Some((epoch, seq.parse().ok()?))
}

/// The recent chat events, oldest first.
pub struct Recent {
    epoch: String,
    /// The `seq` of the last event handled (0 before the first).
    last: u64,
    /// Each event with when it was handled.
    events: VecDeque<(Instant, Arc<ChatEvent>)>,
    window: Duration,
    max_events: usize,
}

impl Recent {
    pub fn new(window: Duration, max_events: usize) -> Self {
        Self {
            epoch: String::new(),
            last: 0,
            events: VecDeque::new(),
            window,
            max_events: max_events.max(1),
        }
    }

    /// The epoch of the events kept.
    pub fn epoch(&self) -> &str {
        &self.epoch
    }

    /// The position of the last event handled, as an offset; `None` before
    /// the first.
    pub fn offset(&self) -> Option<String> {
        (self.last != 0).then(|| offset(&self.epoch, self.last))
    }

    /// Takes in the next event handled (of log `epoch`).
    pub fn push(&mut self, epoch: &str, event: Arc<ChatEvent>) {
        let seq = event.seq;
        if epoch != self.epoch || (self.last != 0 && seq != self.last + 1) {
            // What came before cannot be joined to what follows.
            self.events.clear();
            if epoch != self.epoch {
                self.epoch = epoch.to_string();
            }
        }
        let now = Instant::now();
        self.last = seq;
        self.events.push_back((now, event));
        while self.events.len() > self.max_events
            || self
                .events
                .front()
                .is_some_and(|(at, _)| now.duration_since(*at) > self.window)
        {
            self.events.pop_front();
        }
    }

    /// Whether this log has reached `offset` (it may lag behind another
    /// edge's by a moment). False for another epoch.
    pub fn reached(&self, offset: &str) -> bool {
        parse(offset).is_some_and(|(epoch, seq)| epoch == self.epoch && seq <= self.last)
    }

    /// Every event after `offset`, oldest first — `None` unless all of them
    /// are still here (another epoch, before the oldest event kept, past the
    /// last one handled, or not an offset).
    pub fn after(&self, offset: &str) -> Option<Vec<Arc<ChatEvent>>> {
        let (epoch, seq) = parse(offset)?;
        if epoch != self.epoch || seq > self.last || self.last == 0 {
            return None;
        }
        if seq == self.last {
            return Some(Vec::new());
        }
        let oldest = self.events.front()?.1.seq;
        if seq + 1 < oldest {
            return None;
        }
        // The events kept are contiguous: the one after `seq` is at
        // `seq + 1 - oldest`.
        let from = usize::try_from(seq + 1 - oldest).ok()?;
        Some(self.events.range(from..).map(|(_, e)| e.clone()).collect())
    }

    /// When the oldest event kept was handled (ms since the epoch).
    pub fn oldest_at_ms(&self) -> Option<i64> {
        let (at, _) = self.events.front()?;
        let ago = i64::try_from(at.elapsed().as_millis()).unwrap_or(i64::MAX);
        Some(chrono::Utc::now().timestamp_millis().saturating_sub(ago))
    }

    /// The new messages kept, oldest first, with their ids.
    pub fn messages(&self) -> impl Iterator<Item = (i64, &Arc<ChatEvent>)> {
        self.events.iter().filter_map(|(_, e)| match &e.kind {
            Some(Kind::MessageCreated(m)) => Some((ids::parse(&m.id)?, e)),
            _ => None,
        })
    }

    /// The new messages of conversation `conversation_id` kept, oldest
    /// first, with their ids.
    pub fn messages_of(&self, conversation_id: &str) -> Vec<(i64, Arc<ChatEvent>)> {
        self.events
            .iter()
            .filter_map(|(_, e)| match &e.kind {
                Some(Kind::MessageCreated(m)) if m.conversation_id == conversation_id => {
                    Some((ids::parse(&m.id)?, e.clone()))
                }
                _ => None,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(seq: u64) -> Arc<ChatEvent> {
        Arc::new(ChatEvent {
            seq,
            ..Default::default()
        })
    }

    fn seqs(events: Option<Vec<Arc<ChatEvent>>>) -> Option<Vec<u64>> {
        events.map(|v| v.iter().map(|e| e.seq).collect())
    }

    #[test]
    fn replays_what_follows_an_offset_it_still_holds() {
        let mut r = Recent::new(Duration::from_secs(60), 3);
        assert_eq!(r.offset(), None);
        for s in 1..=5 {
            r.push("e", event(s));
        }
        assert_eq!(r.offset().as_deref(), Some("e-5"));
        // Events 3, 4, 5 are kept: after 2 is all of them, after 1 is not.
        assert_eq!(seqs(r.after("e-2")), Some(vec![3, 4, 5]));
        assert_eq!(seqs(r.after("e-4")), Some(vec![5]));
        assert_eq!(seqs(r.after("e-5")), Some(vec![]));
        assert_eq!(seqs(r.after("e-1")), None);
        assert_eq!(seqs(r.after("e-6")), None, "past the last event");
        assert_eq!(seqs(r.after("f-4")), None, "another epoch");
        assert_eq!(seqs(r.after("garbage")), None);
        assert!(r.reached("e-5") && !r.reached("e-6") && !r.reached("f-1"));
    }

    #[test]
    fn a_gap_or_a_new_epoch_starts_over() {
        let mut r = Recent::new(Duration::from_secs(60), 100);
        r.push("e", event(1));
        r.push("e", event(2));
        r.push("e", event(5));
        assert_eq!(seqs(r.after("e-2")), None, "3 and 4 were missed");
        assert_eq!(seqs(r.after("e-4")), Some(vec![5]));
        r.push("g", event(1));
        assert_eq!(seqs(r.after("e-5")), None);
        assert_eq!(seqs(r.after("g-0")), Some(vec![1]));
    }

    #[test]
    fn an_epoch_with_dashes_is_parsed_from_the_right() {
        assert_eq!(parse("a-b-17"), Some(("a-b", 17)));
        assert_eq!(parse("17"), None);
    }
}
