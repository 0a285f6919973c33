//! Every packet a client may send, in the canonical forms of PROTOCOL §4 (the compatibility
//! forms of §10, such as a bare-array batch, are accepted too but not described here). The
//! server ignores members it does not know, so the schemas allow them.

use super::objects::ChangeRequest;
use super::strings::{ObjectId, RequestId};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// A client packet, told apart by `type` (case-sensitive).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(tag = "type", rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ClientPacket {
    /// Answered with `HEARTBEAT_ACK`.
    Heartbeat(Envelope),
    /// Answers the server's `HEARTBEAT`; like any frame, it keeps the socket alive.
    HeartbeatAck(Envelope),
    /// Answered with `STATE_SNAPSHOT`.
    GetState(Envelope),
    /// Answered with `ONLINE_PILOTS`.
    GetOnlinePilots(Envelope),
    /// Controllers: one change.
    StateUpdate(WithData<ChangeRequest>),
    /// Controllers: changes applied all or nothing, as one `seq`.
    MultiStateUpdate(WithData<ChangeRequests>),
    /// Controllers: a merge patch to the shared state.
    SharedStateUpdate(WithData<SharedStatePatch>),
    /// Pilots: a stopbar crossed.
    StopbarCrossing(WithData<CrossedStopbar>),
    /// The server closes the socket with 1000.
    Close(Envelope),
}

/// What any client packet may carry besides `type` and `data`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[cfg_attr(feature = "schema", schemars(inline))]
pub struct Envelope {
    /// If present, must name the connected airport (any case).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "schema", schemars(pattern("^[A-Za-z0-9]{4}$")))]
    pub airport: Option<String>,
    /// Echoed on the direct reply, an `ERROR` included.
    #[serde(rename = "requestId", default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<RequestId>,
}

/// A client packet with `data`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[cfg_attr(feature = "schema", schemars(inline))]
pub struct WithData<D> {
    #[serde(flatten)]
    pub envelope: Envelope,
    pub data: D,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct ChangeRequests {
    /// Up to 200 items; up to 10,000 when every item is exactly `{objectId, state: <boolean>}`.
    #[cfg_attr(feature = "schema", schemars(length(min = 1, max = crate::limits::MAX_LIGHTING_UPDATES)))]
    pub updates: Vec<ChangeRequest>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct SharedStatePatch {
    /// An RFC 7396 merge patch: `null` members delete keys.
    pub shared_state_patch: Map<String, Value>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct CrossedStopbar {
    pub object_id: ObjectId,
}
