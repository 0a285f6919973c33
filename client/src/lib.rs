//! A well-behaved client of the airport lighting service (docs/protocol.md §9), on tokio:
//!
//! * [`session`]: one connection as a state machine with no I/O: heartbeats, liveness, the
//!   replica, `GET_STATE` after a gap. Tested with simulated time.
//! * [`replica`]: the airport's objects, shared state, controllers and pilots, kept by `seq`.
//! * [`backoff`] and [`policy`]: when to try again, and whether, after a close or a refusal.
//! * [`connection`]: the driver that runs all of it over a real socket ([`Client`]).
//!
//! Packets are the protocol crate's wire types (`airport_protocol::wire`).

pub mod backoff;
pub mod connection;
pub mod policy;
pub mod replica;
pub mod session;

pub use connection::{Client, Command, Notice, Options, Rejection};
pub use replica::Replica;
pub use session::Event;
