//! Who is on the other end of a socket, as resolved by the role source when it connected.

use super::ids::Cid;
use super::role::Role;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    pub cid: Cid,
    pub role: Role,
    /// The network callsign, when the role source knows one (pilots under `vatsim`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub callsign: Option<String>,
}

/// What the runtime keeps with each socket, to rebuild the airport's sockets after hibernation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attachment {
    pub id: super::effects::SocketId,
    pub session: Session,
    /// SHA-256 of the API key the socket connected with, to notice its revocation.
    pub key_hash: String,
    /// Time of an inbound frame, refreshed at most every
    /// [`STORE_LAST_SEEN_EVERY_MS`](super::liveness::STORE_LAST_SEEN_EVERY_MS) (epoch ms).
    pub last_seen: i64,
    /// The socket has left the airport: announced, and closed or closing.
    #[serde(default)]
    pub left: bool,
}
