//! The one way a handler answers its client: [`Reply`].
//!
//! A handler ends with [`Reply::ok`] or [`Reply::fail`] (or
//! [`Reply::send`] with a `Result`); the contract's [`Answers`] decide the
//! shape — what the ack carries, which error event the socket gets, how a
//! rate limit's `retryAfter` reads — from the service's stable
//! [`ErrorCode`](confab_proto::ErrorCode), never from its message. Fields
//! a refusal must repeat (a `chatid`, a `clientMessageId`) are given with
//! [`Reply::echo`].

use std::convert::Infallible;
use std::sync::Arc;

use confab_proto::ServiceError;
use serde_json::Value;
use socketioxide::adapter::LocalAdapter;
use socketioxide::extract::{AckSender, SocketRef};
use socketioxide::handler::FromMessageParts;
use socketioxide::socket::Socket;

use super::me::{AckRequested, Spoken};

/// How a contract answers requests.
pub struct Answers {
    /// The ack of a request that worked, from its data (sent only when the
    /// client passed an ack).
    pub ok: fn(&Asked<'_>, Value) -> Value,
    /// What a refused request gets.
    pub refused: fn(&Asked<'_>, &ServiceError) -> Refused,
}

/// The request being answered, as a contract's [`Answers`] see it.
pub struct Asked<'a> {
    /// The client event.
    pub event: &'a str,
    /// Whether the client passed an ack.
    pub wants_ack: bool,
    /// Fields of the request a refusal repeats ([`Reply::echo`]).
    pub echo: &'a [(&'static str, Value)],
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
pub struct Refused {
    pub emit: Vec<(&'static str, Args)>,
    pub ack: Option<Value>,
}

/// An event's arguments: most events carry one, some seeds' `error` two
/// (a string for people, then the details).
#[derive(Debug, Clone)]
pub enum Args {
    One(Value),
    Two(Value, Value),
}

/// A request's answer, extracted by every handler that answers.
pub struct Reply {
    socket: SocketRef,
    ack: AckSender,
    wants_ack: bool,
    answers: Option<&'static Answers>,
    echo: Vec<(&'static str, Value)>,
}

impl FromMessageParts<LocalAdapter> for Reply {
    type Error = Infallible;
    fn from_message_parts(
        s: &Arc<Socket<LocalAdapter>>,
        v: &mut socketioxide::handler::Value,
        ack_id: &Option<i64>,
    ) -> Result<Self, Infallible> {
        Ok(Self {
            socket: SocketRef::from_message_parts(s, v, ack_id)?,
            ack: AckSender::from_message_parts(s, v, ack_id)?,
            wants_ack: AckRequested::from_message_parts(s, v, ack_id)?.0,
            answers: s.extensions.get::<Spoken>().map(|Spoken(c)| &c.answers),
            echo: Vec::new(),
        })
    }
}

impl Reply {
    /// The socket being answered (for a contract's own events, e.g.
    /// `chat_joined`).
    pub fn socket(&self) -> &SocketRef {
        &self.socket
    }

    /// Whether the client passed an ack.
    pub fn wants_ack(&self) -> bool {
        self.wants_ack
    }

    /// A field of the request that the answer repeats.
    pub fn echo(mut self, key: &'static str, value: impl Into<Value>) -> Self {
        self.echo.push((key, value.into()));
        self
    }

    /// The request worked.
    pub fn ok(self, event: &str, data: Value) {
        let Some(answers) = self.answers else { return };
        let ack = (answers.ok)(&self.asked(event), data);
        let _ = self.ack.send(&ack);
    }

    /// The request was refused.
    pub fn fail(self, event: &str, e: ServiceError) {
        let refused = self.refusal(event, &e);
        self.deliver(refused);
    }

    /// [`Reply::ok`] or [`Reply::fail`].
    pub fn send(self, event: &str, result: Result<Value, ServiceError>) {
        match result {
            Ok(data) => self.ok(event, data),
            Err(e) => self.fail(event, e),
        }
    }

    /// How the contract would refuse `e`, without sending it (for a
    /// request that refuses several parts one by one).
    pub fn refusal(&self, event: &str, e: &ServiceError) -> Refused {
        match self.answers {
            Some(answers) => (answers.refused)(&self.asked(event), e),
            None => Refused::default(),
        }
    }

    /// Sends a refusal built with [`Reply::refusal`], keeping the reply for
    /// more (the ack, if any, is not sent: a request has one ack).
    pub fn refuse_again(&self, refused: Refused) {
        self.emit(&refused);
    }

    /// Sends a refusal built with [`Reply::refusal`].
    pub fn deliver(self, refused: Refused) {
        self.emit(&refused);
        if let Some(ack) = refused.ack {
            let _ = self.ack.send(&ack);
        }
    }

    fn emit(&self, refused: &Refused) {
        for (event, args) in &refused.emit {
            let _ = match args {
                Args::One(v) => self.socket.emit(*event, v),
                Args::Two(a, b) => self.socket.emit(*event, &(a, b)),
            };
        }
    }

    fn asked<'a>(&'a self, event: &'a str) -> Asked<'a> {
        Asked {
            event,
            wants_ack: self.wants_ack,
            echo: &self.echo,
        }
    }
}
