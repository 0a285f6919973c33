//! One airport's state and the semantics of changing it. Every change returns the storage
//! operations that make it durable; the caller writes them before anything is broadcast.

use super::error::PacketError;
use super::ids::{Cid, Icao};
use super::limits::{MAX_OBJECT_STATE_CHARS, MAX_OBJECTS};
use super::packet::{ChangeOp, ObjectChange};
use super::shared_state::SharedState;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// An object's state with its last writer and time of change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ObjectRecord {
    pub state: Value,
    pub controller_id: Cid,
    pub updated_at: i64,
}

/// An object's row as storage writes it: the state as the JSON text the broadcast carries,
/// serialized once for both.
#[derive(Debug, Clone, PartialEq)]
pub struct ObjectRow {
    pub state_json: String,
    pub controller_id: Cid,
    pub updated_at: i64,
}

/// A write to durable storage, row by row.
#[derive(Debug, Clone, PartialEq)]
pub enum StoreOp {
    PutObject {
        id: String,
        row: ObjectRow,
    },
    DeleteObject {
        id: String,
    },
    PutShared {
        key: String,
        value: Value,
    },
    DeleteShared {
        key: String,
    },
    /// Remove every object and all shared state (the offline clearing).
    ClearState,
    SetSeq(u64),
    SetOfflineSince(Option<i64>),
}

/// The outcome of one accepted object change, as broadcast: the state after it, serialized.
#[derive(Debug, Clone)]
pub enum ChangeResult {
    Set {
        object_id: String,
        state: Box<RawValue>,
    },
    Deleted {
        object_id: String,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub struct Airport {
    icao: Icao,
    objects: BTreeMap<String, ObjectRecord>,
    shared: SharedState,
    seq: u64,
    /// When the last controller left, while no controller is connected.
    offline_since: Option<i64>,
}

impl Airport {
    pub fn new(icao: Icao) -> Self {
        Airport::restore(icao, BTreeMap::new(), Map::new(), 0, None)
    }

    /// Rebuilds an airport from what storage holds.
    pub fn restore(
        icao: Icao,
        objects: BTreeMap<String, ObjectRecord>,
        shared: Map<String, Value>,
        seq: u64,
        offline_since: Option<i64>,
    ) -> Self {
        Airport {
            icao,
            objects,
            shared: SharedState::from_members(shared),
            seq,
            offline_since,
        }
    }

    pub fn icao(&self) -> &Icao {
        &self.icao
    }

    pub fn objects(&self) -> &BTreeMap<String, ObjectRecord> {
        &self.objects
    }

    pub fn shared(&self) -> &SharedState {
        &self.shared
    }

    pub fn seq(&self) -> u64 {
        self.seq
    }

    pub fn offline_since(&self) -> Option<i64> {
        self.offline_since
    }

    fn has_state(&self) -> bool {
        !self.objects.is_empty() || !self.shared.is_empty()
    }

    fn next_seq(&mut self, ops: &mut Vec<StoreOp>) {
        self.seq += 1;
        ops.push(StoreOp::SetSeq(self.seq));
    }

    /// Applies object changes all or nothing. `paths` names each change in error messages
    /// (`data` for a single update, `data.updates[i]` in a batch). Returns the changes that did
    /// something (deleting a missing object does nothing) and, if any, the storage writes
    /// including the new `seq`.
    pub fn apply_changes(
        &mut self,
        changes: Vec<ObjectChange>,
        path_of: impl Fn(usize) -> String,
        by: &Cid,
        now: i64,
    ) -> Result<(Vec<ChangeResult>, Vec<StoreOp>), PacketError> {
        // Staged writes over the committed objects, with each new state's JSON text: None
        // marks a deletion.
        let mut staged: BTreeMap<String, Option<(Value, String)>> = BTreeMap::new();
        let mut count = self.objects.len();
        let mut results = Vec::with_capacity(changes.len());
        for (index, ObjectChange { object_id, op }) in changes.into_iter().enumerate() {
            let current = match staged.get(&object_id) {
                Some(staged) => staged.as_ref().map(|(state, _)| state),
                None => self.objects.get(&object_id).map(|record| &record.state),
            };
            let exists = current.is_some();
            let state = match op {
                ChangeOp::Delete => {
                    if exists {
                        count -= 1;
                        results.push(ChangeResult::Deleted {
                            object_id: object_id.clone(),
                        });
                        staged.insert(object_id, None);
                    }
                    continue;
                }
                ChangeOp::Replace(state) => state,
                ChangeOp::Patch(patch) => {
                    let mut state = match current {
                        Some(Value::Object(state)) => Value::Object(state.clone()),
                        _ => Value::Object(Map::new()),
                    };
                    json_patch::merge(&mut state, &Value::Object(patch));
                    state
                }
            };
            // Checked for replacements too: serializing can lengthen a value (`1e15` is
            // written back as `1000000000000000.0`), so fitting in a packet is not enough.
            let text = serde_json::value::to_raw_value(&state)
                .map_err(|error| PacketError::Internal(error.to_string()))?;
            let chars = text.get().chars().count();
            if chars > MAX_OBJECT_STATE_CHARS {
                return Err(PacketError::ObjectStateTooLarge {
                    field: path_of(index),
                    chars,
                });
            }
            if !exists {
                count += 1;
                if count > MAX_OBJECTS {
                    return Err(PacketError::TooManyObjects {
                        field: path_of(index),
                    });
                }
            }
            let state_json = text.get().to_owned();
            results.push(ChangeResult::Set {
                object_id: object_id.clone(),
                state: text,
            });
            staged.insert(object_id, Some((state, state_json)));
        }
        let mut ops = Vec::with_capacity(staged.len() + 1);
        for (id, change) in staged {
            match change {
                Some((state, state_json)) => {
                    self.objects.insert(
                        id.clone(),
                        ObjectRecord {
                            state,
                            controller_id: by.clone(),
                            updated_at: now,
                        },
                    );
                    let row = ObjectRow {
                        state_json,
                        controller_id: by.clone(),
                        updated_at: now,
                    };
                    ops.push(StoreOp::PutObject { id, row });
                }
                None => {
                    self.objects.remove(&id);
                    ops.push(StoreOp::DeleteObject { id });
                }
            }
        }
        if !results.is_empty() {
            self.next_seq(&mut ops);
        }
        Ok((results, ops))
    }

    /// Merges a shared-state patch (always one accepted change, even when nothing differs).
    pub fn merge_shared(
        &mut self,
        patch: &Map<String, Value>,
    ) -> Result<Vec<StoreOp>, PacketError> {
        let mut ops: Vec<StoreOp> = self
            .shared
            .merge(patch)?
            .into_iter()
            .map(|(key, value)| match value {
                Some(value) => StoreOp::PutShared { key, value },
                None => StoreOp::DeleteShared { key },
            })
            .collect();
        self.next_seq(&mut ops);
        Ok(ops)
    }

    /// A controller is connected again: the airport is no longer offline.
    pub fn controller_present(&mut self) -> Vec<StoreOp> {
        match self.offline_since.take() {
            Some(_) => vec![StoreOp::SetOfflineSince(None)],
            None => vec![],
        }
    }

    /// No controller is connected: start the grace period if there is state to keep and it has
    /// not started yet.
    pub fn controllers_absent(&mut self, now: i64) -> Vec<StoreOp> {
        if self.offline_since.is_none() && self.has_state() {
            self.offline_since = Some(now);
            vec![StoreOp::SetOfflineSince(Some(now))]
        } else {
            vec![]
        }
    }

    /// When the offline state is due to be cleared, if it is waiting for that.
    pub fn offline_clear_due(&self, grace_ms: i64) -> Option<i64> {
        self.offline_since
            .map(|since| since.saturating_add(grace_ms))
    }

    /// Clears objects and shared state once the grace period is over. Counts as a change
    /// (`seq` + 1) when there was anything to clear; it is not broadcast.
    pub fn clear_if_due(&mut self, now: i64, grace_ms: i64) -> Vec<StoreOp> {
        match self.offline_clear_due(grace_ms) {
            Some(due) if due <= now => {}
            _ => return vec![],
        }
        self.offline_since = None;
        let mut ops = vec![StoreOp::SetOfflineSince(None)];
        if self.has_state() {
            self.objects.clear();
            self.shared.clear();
            ops.push(StoreOp::ClearState);
            self.next_seq(&mut ops);
        }
        ops
    }
}
