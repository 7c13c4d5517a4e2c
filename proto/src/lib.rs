//! The canonical gRPC API of confab — the language every service and the edge
//! speak — plus the two small conventions that go with it:
//!
//! * [`error`]: every failure is a gRPC status whose details carry an
//!   [`v1::ErrorDetail`] with a stable code, so an edge can turn it into a
//!   contract's error event without parsing messages.
//! * [`bus`]: the interface a service publishes its events on and serves
//!   `Subscribe` from (in-process now; shared between replicas later).
//! * [`failover`]: one service at several addresses, balanced and failed
//!   over per call, for every caller of a service.
//! * [`ids`]: ids are decimal strings holding positive integers below 2^53.
//!
//! This crate knows no storage, no transport other than gRPC, and nothing of
//! Socket.IO or any frontend contract.

pub mod bus;
pub mod error;
pub mod failover;
pub mod ids;
pub mod limits;
pub mod server;

/// Generated messages and services of package `confab.v1`.
pub mod v1 {
    tonic::include_proto!("confab.v1");
}

/// The encoded descriptors of every confab service, for gRPC reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/confab_descriptor.bin"));

pub use error::{ErrorCode, ServiceError};
