//! Objects on the wire: their states, an airport's snapshot, and changes both ways.

use super::strings::ObjectId;
use crate::ids::Cid;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// An object's state: a boolean (a stopbar on or off) or a JSON object (settings such as a
/// lead-on light's).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(untagged)]
pub enum ObjectState {
    Switch(bool),
    Settings(Map<String, Value>),
}

/// One object in a snapshot, with its last writer and the time of its last change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[cfg_attr(feature = "schema", schemars(deny_unknown_fields))]
#[serde(rename_all = "camelCase")]
pub struct ObjectEntry {
    pub id: ObjectId,
    pub state: ObjectState,
    pub controller_id: Cid,
    /// Epoch milliseconds.
    pub timestamp: i64,
}

/// An airport's state: in `INITIAL_STATE`, `STATE_SNAPSHOT` and the public `/state`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[cfg_attr(feature = "schema", schemars(deny_unknown_fields))]
#[serde(rename_all = "camelCase")]
pub struct Snapshot {
    pub objects: Vec<ObjectEntry>,
    pub shared_state: Map<String, Value>,
    /// The controllers connected now, each once.
    pub controllers: Vec<Cid>,
    /// No controller is connected.
    pub offline: bool,
    /// The airport's `seq` this state is at.
    pub seq: u64,
}

/// A changed object as the server sends it: its full state after the change, or `patch: null`
/// once deleted; with the controller who changed it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[cfg_attr(feature = "schema", schemars(deny_unknown_fields))]
#[serde(untagged)]
pub enum ObjectUpdate {
    #[serde(rename_all = "camelCase")]
    State {
        object_id: ObjectId,
        state: ObjectState,
        controller_id: Cid,
    },
    #[serde(rename_all = "camelCase")]
    Deleted {
        object_id: ObjectId,
        /// Always `null`.
        patch: (),
        controller_id: Cid,
    },
}

impl ObjectUpdate {
    pub fn object_id(&self) -> &ObjectId {
        match self {
            ObjectUpdate::State { object_id, .. } | ObjectUpdate::Deleted { object_id, .. } => {
                object_id
            }
        }
    }

    pub fn controller_id(&self) -> &Cid {
        match self {
            ObjectUpdate::State { controller_id, .. }
            | ObjectUpdate::Deleted { controller_id, .. } => controller_id,
        }
    }

    /// The state after the change; `None` once deleted.
    pub fn state(&self) -> Option<&ObjectState> {
        match self {
            ObjectUpdate::State { state, .. } => Some(state),
            ObjectUpdate::Deleted { .. } => None,
        }
    }
}

/// A change a controller asks for: a `STATE_UPDATE`'s `data` or a batch item (PROTOCOL §4).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(untagged)]
pub enum ChangeRequest {
    /// Replaces the state, creating the object if needed.
    #[serde(rename_all = "camelCase")]
    Set {
        object_id: ObjectId,
        state: ObjectState,
    },
    /// An RFC 7396 merge patch on the current state (a missing or boolean state counts as `{}`).
    #[serde(rename_all = "camelCase")]
    Patch {
        object_id: ObjectId,
        patch: Map<String, Value>,
    },
    /// Deletes the object: `patch: null`.
    #[serde(rename_all = "camelCase")]
    Delete {
        object_id: ObjectId,
        /// Always `null`.
        patch: (),
    },
}

impl ChangeRequest {
    pub fn object_id(&self) -> &ObjectId {
        match self {
            ChangeRequest::Set { object_id, .. }
            | ChangeRequest::Patch { object_id, .. }
            | ChangeRequest::Delete { object_id, .. } => object_id,
        }
    }
}
