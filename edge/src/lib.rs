//! The edge: the Socket.IO (and REST) face of confab.
//!
//! It owns only per-connection state (who a socket is, which rooms it is
//! in). It authenticates the handshake, translates each contract's events
//! into canonical gRPC calls, and turns the services' event streams back
//! into each contract's events for the right sockets.
//!
//! It must not store business data or decide business rules (membership,
//! authorship, limits are the services'), and must never decide by reading
//! a service's error message: the stable code says what happened. The
//! services never need to know it exists beyond their `Subscribe` streams.
//!
//! Its modules, in layers — each imports only those above it in this list:
//!
//! 1. [`wire`], [`rooms`], [`throttle`], [`lingering`]: ids and dates on
//!    the wire, room names, the typing throttle, dropped sockets in their
//!    presence grace;
//! 2. [`auth`] (tokens → identity), [`clients`] (the service clients and
//!    how they reach the services; [`failover`] over a service's replicas),
//!    [`config`], [`deliveries`] (batched delivery receipts),
//!    [`recovery`] (resumable sessions and the recent chat events they are
//!    replayed from);
//! 3. [`state`]: the edge's shared state, handed to every handler;
//! 4. [`session`]: a socket's life with the services — presence session,
//!    rooms, typing, call session — and this edge's liveness;
//! 5. [`contract`]: the toolkit every contract is built from (the
//!    `Contract` table, capabilities, `Me`, `Reply`);
//! 6. [`heartbeat`] (client heartbeats), [`socket`] (the socket lifecycle:
//!    authenticate, attach, greet, refresh);
//! 7. [`contracts`]: the five contracts, one folder each;
//! 8. [`fanout`] (service events → rooms), [`rest`],
//!    [`app`] (assembly, probes), [`embedded`] (the all-in-one binary, the
//!    one place that starts services in-process).

pub mod app;
pub mod auth;
pub mod clients;
pub mod config;
pub mod contract;
pub mod contracts;
pub mod deliveries;
pub mod embedded;
pub mod fanout;
pub mod heartbeat;
pub mod interest;
pub mod lingering;
pub mod recovery;
pub mod rest;
pub mod rooms;
pub mod session;
pub mod socket;
pub mod state;
pub mod throttle;
pub mod wire;

pub use app::{EdgeHandle, start};
