//! The edge: the Socket.IO (and REST) face of confab.
//!
//! It owns only per-connection state (who a socket is, which rooms it is in).
//! It authenticates the handshake ([`auth`], [`socket_auth`]), translates each
//! contract's events into canonical gRPC calls ([`contract`]), and turns the
//! services' event streams back into each contract's events for the right
//! sockets ([`fanout`]).
//!
//! It must not store business data or decide business rules (membership,
//! authorship, limits are chat-service's), and the services must never need
//! to know it exists beyond their `Subscribe` streams. The [`embedded`]
//! module is the one place that starts services in-process, for the
//! all-in-one `confab` binary.

pub mod app;
pub mod auth;
pub mod config;
pub mod contract;
pub mod deliveries;
pub mod embedded;
pub mod fanout;
pub mod heartbeat;
pub mod presence;
pub mod rest;
pub mod services;
pub mod socket_auth;
pub mod wire;

pub use app::{EdgeHandle, start};
