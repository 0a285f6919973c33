//! The JSON bodies of the HTTP endpoints (PROTOCOL §1).

use super::objects::Snapshot;
use crate::connect::HttpErrorCode;
use crate::ids::{Cid, Icao};
use serde::{Deserialize, Serialize};

/// `GET /state?airport=ICAO`: the airport's snapshot with its pilots and open sockets.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[cfg_attr(feature = "schema", schemars(deny_unknown_fields))]
pub struct PublicState {
    pub airport: Icao,
    #[serde(flatten)]
    pub snapshot: Snapshot,
    /// The pilots connected now, each once.
    pub pilots: Vec<Cid>,
    pub connections: Connections,
}

/// Open sockets per role.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[cfg_attr(feature = "schema", schemars(deny_unknown_fields))]
pub struct Connections {
    pub controllers: u32,
    pub pilots: u32,
}

/// `GET /state?airport=all`: every airport with a controller or a pilot connected, in ICAO order,
/// within the bounds of protocol.md §6 (at most 500 airports and 8 MiB of their states).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[cfg_attr(feature = "schema", schemars(deny_unknown_fields))]
pub struct PublicStates {
    pub states: Vec<PublicState>,
    /// Present and `true` when live airports were left out to stay within those bounds.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub truncated: bool,
}

/// Every HTTP error: `{"error":{"code":"…","message":"…"}}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[cfg_attr(feature = "schema", schemars(deny_unknown_fields))]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[cfg_attr(feature = "schema", schemars(deny_unknown_fields))]
pub struct ErrorDetail {
    pub code: HttpErrorCode,
    /// What to fix.
    pub message: String,
}

/// `GET /health`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[cfg_attr(feature = "schema", schemars(deny_unknown_fields))]
pub struct Health {
    /// Always `ok`.
    pub status: String,
    /// The service's version.
    pub version: String,
    /// The git commit it was built from.
    pub revision: String,
}
