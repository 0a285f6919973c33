//! Every packet the server sends (PROTOCOL §5). Each has `type`, `airport` and `timestamp`
//! (epoch milliseconds); the schemas allow no other members, so that the tests catch a packet
//! that drifts from this contract. A client should still ignore members it does not know (§9).
//!
//! Each packet is its own struct with every member spelled out, though many share `airport`,
//! `data`, `timestamp` and `seq`: deliberately, so that each reads as its schema, and the
//! generated schemas keep one plain name per packet, which a generic envelope would not.

use super::objects::{ObjectEntry, ObjectUpdate, Snapshot};
use super::strings::{ObjectId, RequestId};
use crate::error::ErrorCode;
use crate::ids::{Cid, Icao};
use crate::role::Role;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// A server packet, told apart by `type`. The server may add types: a client should skip the
/// ones it does not know (read `type` first and keep the rest as raw JSON, say), hence
/// `non_exhaustive`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(tag = "type", rename_all = "SCREAMING_SNAKE_CASE")]
#[non_exhaustive]
pub enum ServerPacket {
    InitialState(InitialState),
    StateSnapshot(StateSnapshot),
    OnlinePilots(OnlinePilots),
    StateUpdate(StateUpdate),
    MultiStateUpdate(MultiStateUpdate),
    SharedStateUpdate(SharedStateUpdate),
    StopbarCrossing(StopbarCrossing),
    ControllerConnect(ControllerPresence),
    ControllerDisconnect(ControllerPresence),
    Heartbeat(Heartbeat),
    HeartbeatAck(HeartbeatAck),
    Error(ErrorPacket),
}

/// The first frame on every socket: who you are, the airport's state and the timings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[cfg_attr(feature = "schema", schemars(deny_unknown_fields))]
pub struct InitialState {
    pub airport: Icao,
    pub data: InitialStateData,
    pub timestamp: i64,
}

/// Who you are, the airport's state (or, on a resume, what changed in it), and this
/// deployment's timings. The members after `idleTimeoutMs` come only to a client that sent the
/// `resume` parameter (PROTOCOL §8).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[cfg_attr(feature = "schema", schemars(deny_unknown_fields))]
#[serde(rename_all = "camelCase")]
pub struct InitialStateData {
    /// Your role.
    pub connection_type: Role,
    /// Your account.
    pub cid: Cid,
    /// Every object; on a resume, only those changed after `resumedFrom`.
    pub objects: Vec<ObjectEntry>,
    /// Always, except on a resume in which it did not change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shared_state: Option<Map<String, Value>>,
    /// The controllers connected now, each once.
    pub controllers: Vec<Cid>,
    /// No controller is connected.
    pub offline: bool,
    /// The airport's `seq` this state is at.
    pub seq: u64,
    /// The server's `HEARTBEAT` interval.
    pub heartbeat_interval_ms: i64,
    /// A socket with no inbound frame for this long is closed with 4000.
    pub idle_timeout_ms: i64,
    /// The id of the airport's history, to send back with a `seq` in `resume`: 16 lowercase
    /// hexadecimal digits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "schema", schemars(regex(pattern = "^[0-9a-f]{16}$")))]
    pub history: Option<String>,
    /// Only on a resume: the `seq` of the replica this brings up to `seq`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resumed_from: Option<u64>,
    /// Only on a resume: the objects deleted after `resumedFrom`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deleted: Option<Vec<ObjectId>>,
}

impl InitialStateData {
    /// The full state this packet carries; `None` for a resume, which only carries changes.
    pub fn snapshot(&self) -> Option<Snapshot> {
        if self.resumed_from.is_some() {
            return None;
        }
        Some(Snapshot {
            objects: self.objects.clone(),
            shared_state: self.shared_state.clone().unwrap_or_default(),
            controllers: self.controllers.clone(),
            offline: self.offline,
            seq: self.seq,
        })
    }
}

/// The reply to `GET_STATE`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[cfg_attr(feature = "schema", schemars(deny_unknown_fields))]
pub struct StateSnapshot {
    pub airport: Icao,
    pub data: Snapshot,
    pub timestamp: i64,
    #[serde(rename = "requestId", default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<RequestId>,
}

/// The reply to `GET_ONLINE_PILOTS`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[cfg_attr(feature = "schema", schemars(deny_unknown_fields))]
pub struct OnlinePilots {
    pub airport: Icao,
    pub data: OnlinePilotsData,
    pub timestamp: i64,
    #[serde(rename = "requestId", default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<RequestId>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[cfg_attr(feature = "schema", schemars(deny_unknown_fields))]
pub struct OnlinePilotsData {
    /// Each connected pilot once.
    pub pilots: Vec<OnlinePilot>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[cfg_attr(feature = "schema", schemars(deny_unknown_fields))]
#[serde(rename_all = "camelCase")]
pub struct OnlinePilot {
    pub pilot_id: Cid,
    /// `pilotId` again (the deployed controller plugins read this name).
    pub cid: Cid,
    /// The network callsign when known, else the cid.
    #[cfg_attr(feature = "schema", schemars(length(min = 1)))]
    pub callsign: String,
}

/// One changed object, to every socket but the sender's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[cfg_attr(feature = "schema", schemars(deny_unknown_fields))]
pub struct StateUpdate {
    pub airport: Icao,
    pub data: ObjectUpdate,
    pub timestamp: i64,
    pub seq: u64,
}

/// Several changed objects: one change (one `seq`), or for pilots and observers a run of
/// changes coalesced, from `seqFrom` to `seq` (PROTOCOL §5).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[cfg_attr(feature = "schema", schemars(deny_unknown_fields))]
#[serde(rename_all = "camelCase")]
pub struct MultiStateUpdate {
    pub airport: Icao,
    pub data: ObjectUpdates,
    pub timestamp: i64,
    pub seq: u64,
    /// Only on a coalesced packet: the first change's `seq`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seq_from: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[cfg_attr(feature = "schema", schemars(deny_unknown_fields))]
pub struct ObjectUpdates {
    /// In the order applied; the same object may appear more than once.
    #[cfg_attr(feature = "schema", schemars(length(min = 1)))]
    pub updates: Vec<ObjectUpdate>,
}

/// A merge patch to the shared state, as sent, to every socket (its sender too).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[cfg_attr(feature = "schema", schemars(deny_unknown_fields))]
pub struct SharedStateUpdate {
    pub airport: Icao,
    pub data: SharedStateChange,
    pub timestamp: i64,
    pub seq: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[cfg_attr(feature = "schema", schemars(deny_unknown_fields))]
#[serde(rename_all = "camelCase")]
pub struct SharedStateChange {
    /// An RFC 7396 merge patch: `null` members delete keys.
    pub shared_state_patch: Map<String, Value>,
    pub controller_id: Cid,
}

/// A pilot crossed a stopbar; to the airport's controllers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[cfg_attr(feature = "schema", schemars(deny_unknown_fields))]
pub struct StopbarCrossing {
    pub airport: Icao,
    pub data: Crossing,
    pub timestamp: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[cfg_attr(feature = "schema", schemars(deny_unknown_fields))]
#[serde(rename_all = "camelCase")]
pub struct Crossing {
    pub object_id: ObjectId,
    pub pilot_id: Cid,
    /// The pilot's cid again, under the name the deployed controller plugins read.
    pub controller_id: Cid,
    /// The pilot's network callsign, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub callsign: Option<String>,
}

/// `CONTROLLER_CONNECT` (a controller's first socket opened) or `CONTROLLER_DISCONNECT` (their
/// last one closed), to every other socket.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[cfg_attr(feature = "schema", schemars(deny_unknown_fields))]
pub struct ControllerPresence {
    pub airport: Icao,
    pub data: Controller,
    pub timestamp: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[cfg_attr(feature = "schema", schemars(deny_unknown_fields))]
#[serde(rename_all = "camelCase")]
pub struct Controller {
    pub controller_id: Cid,
}

/// Sent to every socket each `heartbeatIntervalMs`; answer with `HEARTBEAT_ACK`. No `data`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[cfg_attr(feature = "schema", schemars(deny_unknown_fields))]
pub struct Heartbeat {
    pub airport: Icao,
    pub timestamp: i64,
}

/// The reply to a client's `HEARTBEAT`. No `data`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[cfg_attr(feature = "schema", schemars(deny_unknown_fields))]
pub struct HeartbeatAck {
    pub airport: Icao,
    pub timestamp: i64,
    #[serde(rename = "requestId", default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<RequestId>,
}

/// A refused packet, or why the session is about to end (PROTOCOL §6).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[cfg_attr(feature = "schema", schemars(deny_unknown_fields))]
pub struct ErrorPacket {
    pub airport: Icao,
    pub data: ErrorData,
    pub timestamp: i64,
    /// The refused packet's, when it could be read.
    #[serde(rename = "requestId", default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<RequestId>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[cfg_attr(feature = "schema", schemars(deny_unknown_fields))]
pub struct ErrorData {
    pub code: ErrorCode,
    /// What to fix, for a developer.
    pub message: String,
}
