//! Who is asking: [`Me`], the socket's user while its token holds — the
//! one place no handler can skip the expiry check.

use socketioxide::adapter::LocalAdapter;
use socketioxide::handler::FromMessageParts;
use socketioxide::socket::Socket;

use super::reply::Reply;
use crate::auth::{AuthError, Identity};

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

impl FromMessageParts<LocalAdapter> for Me {
    type Error = NotMe;
    fn from_message_parts(
        s: &std::sync::Arc<Socket<LocalAdapter>>,
        v: &mut socketioxide::handler::Value,
        ack_id: &Option<i64>,
    ) -> Result<Self, NotMe> {
        let id = s.extensions.get::<Identity>().ok_or(NotMe::NoIdentity)?;
        if refused_for_token(s, v, ack_id, &id) {
            return Err(NotMe::Expired);
        }
        Ok(Me(id))
    }
}

/// Whether `id`'s token has expired; if so the request is answered with
/// the contract's token refusal. For every extractor that may run first
/// ([`Me`], [`Payload`](super::payload::Payload)), so the order of a
/// handler's arguments never lets a request on an expired socket through
/// or answer it another way.
pub(super) fn refused_for_token(
    s: &std::sync::Arc<Socket<LocalAdapter>>,
    v: &mut socketioxide::handler::Value,
    ack_id: &Option<i64>,
    id: &Identity,
) -> bool {
    if !id.expired(chrono::Utc::now().timestamp_millis()) {
        return false;
    }
    metrics::counter!("confab_expired_token_refusals_total").increment(1);
    let reply = match Reply::from_message_parts(s, v, ack_id) {
        Ok(reply) => reply,
        Err(e) => match e {},
    };
    reply.token_refused(AuthError::Expired);
    true
}
