//! The airport lighting protocol, without I/O. Nothing in here knows about Workers (Cargo
//! keeps it so: this crate has no such dependency): every function takes plain data and the
//! time and returns what should happen. [`Room`] is one airport as a state machine; the
//! Durable Object only carries out its [`Effects`].

pub mod account;
pub mod airport;
pub mod coalesce;
pub mod config;
pub mod connect;
#[cfg(feature = "schema")]
pub mod contract;
pub mod directory;
pub mod effects;
pub mod equivalence;
pub mod error;
pub mod history;
pub mod ids;
pub mod json;
pub mod limits;
pub mod liveness;
pub mod machine;
pub mod members;
pub mod metrics;
pub mod outbound;
pub mod outbox;
pub mod packet;
pub mod presence;
pub mod rate_limit;
pub mod recheck;
pub mod role;
pub mod room;
pub mod session;
pub mod shared_state;
pub mod vatsim;
pub mod wire;
mod wire_name;

pub use airport::{Airport, NeedsObjects, ObjectRecord, RowsToRead, StoreOp};
pub use effects::{CloseCode, Effects, SocketId};
pub use error::{ErrorCode, PacketError};
pub use ids::{Cid, Icao};
pub use presence::Presence;
pub use role::Role;
pub use room::Room;
pub use session::Session;
