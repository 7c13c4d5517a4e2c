//! How a contract answers, as data: its [`Answers`] (one per contract),
//! what they see of a request ([`Asked`]) and what they decide
//! ([`Answer`]: events for the socket, and the ack). Sending is
//! [`super::reply::Reply`]'s.

use confab_proto::ServiceError;
use serde_json::Value;

/// How a contract answers requests.
pub struct Answers {
    /// The ack of a request that worked, from its data (sent only when the
    /// client passed an ack).
    pub ok: fn(&Asked<'_>, Value) -> Value,
    /// What a refused request gets.
    pub refused: fn(&Asked<'_>, &ServiceError) -> Answer,
}

/// The request being answered, as a contract's [`Answers`] see it.
pub struct Asked<'a> {
    /// The client event.
    pub event: &'a str,
    /// Whether the client passed an ack.
    pub wants_ack: bool,
    /// Fields of the request a refusal repeats (`Reply::echo`).
    pub echo: &'a [(&'static str, Value)],
    /// The refusal is of a payload that could not be read
    /// (`Reply::unreadable`), not the service's.
    pub unreadable: bool,
}

impl Asked<'_> {
    /// The echoed field `key`, if the handler gave it.
    pub fn echoed(&self, key: &str) -> Option<&Value> {
        self.echo.iter().find(|(k, _)| *k == key).map(|(_, v)| v)
    }
}

/// A refusal as the socket gets it: events, then the ack (when the client
/// passed one).
#[derive(Debug, Default)]
pub struct Answer {
    pub emit: Vec<(&'static str, Args)>,
    pub ack: Option<Value>,
}

/// An event's arguments: most events carry one, some seeds' `error` two
/// (a string for people, then the details), a few none.
#[derive(Debug, Clone)]
pub enum Args {
    /// An event with no payload (e.g. `v3`'s `auth_required`).
    None,
    One(Value),
    Two(Value, Value),
}
