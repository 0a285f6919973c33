//! The wire format as types: every packet both ways and the HTTP bodies, for clients to
//! (de)serialize and for the published contract (`docs/contract/`, generated from these types
//! with the `schema` feature).
//!
//! The server itself does not use them: it reads frames in one pass (`packet.rs`) and writes
//! packets as spliced text (`outbound.rs`), for speed. The tests hold the two together: every
//! packet `outbound.rs` builds must read back into these types unchanged.

pub mod client;
pub mod http;
pub mod objects;
pub mod server;
pub mod strings;

pub use client::ClientPacket;
pub use objects::{ChangeRequest, ObjectEntry, ObjectState, ObjectUpdate, Snapshot};
pub use server::ServerPacket;
pub use strings::{ObjectId, RequestId};
