//! The one way a handler answers its client: [`Reply`].
//!
//! A handler ends with [`Reply::ok`], [`Reply::fail`] (a refusal with a
//! stable code), [`Reply::unreadable`] (a payload that cannot be read) or
//! [`Reply::send`] with a `Result`; the contract's [`Answers`] decide the
//! shape — what the ack carries, which error event the socket gets, how a
//! rate limit's `retryAfter` reads — from the request's event and the
//! service's stable [`ErrorCode`](confab_proto::ErrorCode), never from its
//! message. Fields a refusal must repeat (a `chatid`, a `clientMessageId`)
//! are given with [`Reply::echo`].

use std::convert::Infallible;
use std::sync::Arc;

use confab_proto::ServiceError;
use serde_json::Value;
use socketioxide::adapter::LocalAdapter;
use socketioxide::extract::{AckSender, Event, SocketRef};
use socketioxide::handler::FromMessageParts;
use socketioxide::socket::Socket;

use super::answer::{Answer, Args, Asked};
use super::{Contract, Spoken};
use crate::auth::{AuthError, Identity};
use crate::recovery::Recovery;

/// A request's answer, extracted by every handler that answers.
pub struct Reply {
    event: String,
    socket: SocketRef,
    ack: AckSender,
    wants_ack: bool,
    contract: Option<&'static Contract>,
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
            event: Event::from_message_parts(s, v, ack_id)
                .map(|Event(e)| e)
                .unwrap_or_default(),
            socket: SocketRef::from_message_parts(s, v, ack_id)?,
            ack: AckSender::from_message_parts(s, v, ack_id)?,
            wants_ack: ack_id.is_some(),
            contract: s.extensions.get::<Spoken>().map(|Spoken(c)| c),
            echo: Vec::new(),
        })
    }
}

impl Reply {
    /// The client event being answered.
    pub fn event(&self) -> &str {
        &self.event
    }

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
    pub fn ok(self, data: Value) {
        let Some(contract) = self.contract else {
            return;
        };
        let ack = (contract.answers.ok)(&self.asked(false), data);
        let _ = self.ack.send(&ack);
    }

    /// The request was refused, with a stable code.
    pub fn fail(self, e: ServiceError) {
        let refused = self.refusal(&e);
        self.deliver(refused);
    }

    /// The request's payload could not be read (`INVALID_ARGUMENT`, `why`).
    pub fn unreadable(self, why: impl std::fmt::Display) {
        let e = ServiceError::invalid(why.to_string());
        let refused = match self.contract {
            Some(contract) => (contract.answers.refused)(&self.asked(true), &e),
            None => Answer::default(),
        };
        self.deliver(refused);
    }

    /// The request was refused for the socket's token (expired, or a bad
    /// or another user's token presented to refresh it), in the contract's
    /// shape ([`TokenRefresh::refuse`](super::TokenRefresh::refuse)).
    pub fn token_refused(self, e: AuthError) {
        let Some(contract) = self.contract else {
            return;
        };
        let answer = (contract.token.refuse)(&self.asked(false), e);
        self.deliver(answer);
    }

    /// A refresh worked: the socket's identity is now `me`.
    pub fn refreshed(self, me: &Identity) {
        let Some(contract) = self.contract else {
            return;
        };
        let answer = (contract.token.refreshed)(me);
        self.deliver(answer);
    }

    /// [`Reply::ok`] or [`Reply::fail`].
    pub fn send(self, result: Result<Value, ServiceError>) {
        match result {
            Ok(data) => self.ok(data),
            Err(e) => self.fail(e),
        }
    }

    /// How the contract would refuse `e`, without sending it (for a
    /// request that refuses several parts one by one).
    pub fn refusal(&self, e: &ServiceError) -> Answer {
        match self.contract {
            Some(contract) => (contract.answers.refused)(&self.asked(false), e),
            None => Answer::default(),
        }
    }

    /// Sends a refusal built with [`Reply::refusal`], keeping the reply for
    /// more (the ack, if any, is not sent: a request has one ack).
    pub fn refuse_again(&self, refused: Answer) {
        self.emit(&refused);
    }

    /// Sends a refusal built with [`Reply::refusal`].
    pub fn deliver(self, refused: Answer) {
        self.emit(&refused);
        if let Some(ack) = refused.ack {
            let _ = self.ack.send(&ack);
        }
    }

    /// Emits the answer's events. One whose last argument is a string
    /// (some seeds' error strings) also carries the socket's offset, which
    /// the client would otherwise take that string for
    /// ([`Recovery::offset_for`]).
    fn emit(&self, refused: &Answer) {
        for (event, args) in &refused.emit {
            let s = &self.socket;
            let offset = || Recovery::offset_for(s);
            let _ = match args {
                Args::None => s.emit(*event, &()),
                Args::One(v) => match offset().filter(|_| v.is_string()) {
                    Some(o) => s.emit(*event, &(v, &*o)),
                    None => s.emit(*event, v),
                },
                Args::Two(a, b) => match offset().filter(|_| b.is_string()) {
                    Some(o) => s.emit(*event, &(a, b, &*o)),
                    None => s.emit(*event, &(a, b)),
                },
            };
        }
    }

    fn asked(&self, unreadable: bool) -> Asked<'_> {
        Asked {
            event: &self.event,
            wants_ack: self.wants_ack,
            echo: &self.echo,
            unreadable,
        }
    }
}
