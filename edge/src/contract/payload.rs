//! A handler's typed payload: [`Payload<T>`] reads the client's data as
//! `T`, or answers "unreadable" in the contract's shape
//! ([`Reply::unreadable`]) and the handler never runs — so no handler
//! answers a bad payload its own way.
//!
//! A request on a socket whose token expired is refused for its token
//! first, whatever its payload and wherever `Payload` stands among the
//! handler's arguments.

use std::sync::Arc;

use serde::de::DeserializeOwned;
use socketioxide::adapter::LocalAdapter;
use socketioxide::extract::TryData;
use socketioxide::handler::FromMessageParts;
use socketioxide::socket::Socket;

use super::me::refused_for_token;
use super::reply::Reply;
use crate::auth::Identity;

/// The request's payload, read as `T`.
pub struct Payload<T>(pub T);

/// Why [`Payload`] did not extract (logged by socketioxide).
#[derive(Debug, thiserror::Error)]
pub enum Unreadable {
    #[error("the payload cannot be read: {0}")]
    Payload(String),
    #[error("the socket's token has expired: request refused")]
    Expired,
}

impl<T: DeserializeOwned> FromMessageParts<LocalAdapter> for Payload<T> {
    type Error = Unreadable;
    fn from_message_parts(
        s: &Arc<Socket<LocalAdapter>>,
        v: &mut socketioxide::handler::Value,
        ack_id: &Option<i64>,
    ) -> Result<Self, Unreadable> {
        if let Some(id) = s.extensions.get::<Identity>()
            && refused_for_token(s, v, ack_id, &id)
        {
            return Err(Unreadable::Expired);
        }
        let TryData(read) = match TryData::<T>::from_message_parts(s, v, ack_id) {
            Ok(read) => read,
            Err(e) => match e {},
        };
        match read {
            Ok(t) => Ok(Payload(t)),
            Err(e) => {
                let why = e.to_string();
                let reply = match Reply::from_message_parts(s, v, ack_id) {
                    Ok(reply) => reply,
                    Err(e) => match e {},
                };
                reply.unreadable(&why);
                Err(Unreadable::Payload(why))
            }
        }
    }
}
