//! Who is asking: the extractors every handler takes. [`Me`] is the
//! socket's user while its token holds (the one place no handler can skip
//! the expiry check); [`AckRequested`] tells whether the client passed an
//! ack; [`Spoken`] is the contract a socket speaks.

use socketioxide::extract::{AckSender, SocketRef};
use socketioxide::handler::FromMessageParts;

use super::Contract;
use crate::auth::{AuthError, Identity};

/// Which contract a socket speaks (in its extensions), for [`Me`].
#[derive(Clone, Copy)]
pub struct Spoken(pub &'static Contract);

/// The socket's user, for a handler: the [`Identity`] in its extensions,
/// while its token has not expired. On an expired socket the extraction
/// fails after answering in the contract's shape, so the handler never
/// runs and nothing is stored or sent: the one place no handler can skip.
pub struct Me(pub Identity);

/// Why [`Me`] refused to extract (logged by socketioxide).
#[derive(Debug, thiserror::Error)]
pub enum NotMe {
    #[error("the socket has no identity")]
    NoIdentity,
    #[error("the socket's token has expired: request refused")]
    Expired,
}

impl FromMessageParts<socketioxide::adapter::LocalAdapter> for Me {
    type Error = NotMe;
    fn from_message_parts(
        s: &std::sync::Arc<socketioxide::socket::Socket<socketioxide::adapter::LocalAdapter>>,
        v: &mut socketioxide::handler::Value,
        ack_id: &Option<i64>,
    ) -> Result<Self, NotMe> {
        let id = s.extensions.get::<Identity>().ok_or(NotMe::NoIdentity)?;
        if !id.expired(chrono::Utc::now().timestamp_millis()) {
            return Ok(Me(id));
        }
        metrics::counter!("confab_expired_token_refusals_total").increment(1);
        if let Some(Spoken(contract)) = s.extensions.get::<Spoken>() {
            let socket = match SocketRef::from_message_parts(s, v, ack_id) {
                Ok(socket) => socket,
                Err(e) => match e {},
            };
            let ack = match AckSender::from_message_parts(s, v, ack_id) {
                Ok(ack) => ack,
                Err(e) => match e {},
            };
            (contract.token.refuse)(&socket, ack, ack_id.is_some(), AuthError::Expired);
        }
        Err(NotMe::Expired)
    }
}

/// Whether the client passed an ack callback with the event (socketioxide's
/// [`AckSender`] alone cannot tell), for
/// contracts that answer a refusal in the ack when there is one and as an
/// event otherwise.
pub struct AckRequested(pub bool);

impl<A: socketioxide::adapter::Adapter> socketioxide::handler::FromMessageParts<A>
    for AckRequested
{
    type Error = std::convert::Infallible;
    fn from_message_parts(
        _: &std::sync::Arc<socketioxide::socket::Socket<A>>,
        _: &mut socketioxide::handler::Value,
        ack_id: &Option<i64>,
    ) -> Result<Self, Self::Error> {
        Ok(Self(ack_id.is_some()))
    }
}
