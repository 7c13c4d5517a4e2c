//! A socket's life with the services, below any contract: its presence
//! session ([`presence`]), this edge's liveness in presence-service
//! ([`liveness`]), conversation rooms ([`rooms`], the one way in and out),
//! typing ([`typing`]) and, for calling contracts, its call session
//! ([`calls`]). Nothing here renders a contract's event.

pub mod calls;
pub mod liveness;
pub mod presence;
pub mod rooms;
pub mod typing;
