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
