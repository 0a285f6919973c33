//! One airport's state and the semantics of changing it. Every change returns the storage
//! operations that make it durable; the caller writes them before anything is broadcast.

use super::error::PacketError;
use super::ids::{Cid, Icao};
use super::json::serialized_chars;
use super::limits::{MAX_AIRPORT_STATE_CHARS, MAX_OBJECT_STATE_CHARS, MAX_OBJECTS};
use super::liveness::Schedule;
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
#[derive(Debug, Clone)]
pub struct ObjectRow {
    pub state_json: Box<RawValue>,
    pub controller_id: Cid,
    pub updated_at: i64,
}

impl PartialEq for ObjectRow {
    fn eq(&self, other: &Self) -> bool {
        self.state_json.get() == other.state_json.get()
            && self.controller_id == other.controller_id
            && self.updated_at == other.updated_at
    }
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
    /// When the periodic work is next due.
    SetSchedule(Schedule),
}

impl StoreOp {
    /// The object write this is, if it is one: the object's id and its new state as JSON text,
    /// `None` for a deletion. A change's writes are also what its broadcast carries.
    pub fn object_write(&self) -> Option<(&str, Option<&RawValue>)> {
        match self {
            StoreOp::PutObject { id, row } => Some((id, Some(&row.state_json))),
            StoreOp::DeleteObject { id } => Some((id, None)),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Airport {
    icao: Icao,
    objects: BTreeMap<String, ObjectRecord>,
    shared: SharedState,
    /// The serialized size of every object's state, summed: with the shared state's, what
    /// `MAX_AIRPORT_STATE_CHARS` bounds.
    object_chars: usize,
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
        let object_chars = objects
            .values()
            .map(|record| serialized_chars(&record.state))
            .sum();
        Airport {
            icao,
            objects,
            object_chars,
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

    /// The serialized size of everything it holds (objects' states and shared state), as
    /// `MAX_AIRPORT_STATE_CHARS` counts it.
    pub fn state_chars(&self) -> usize {
        self.object_chars
            .saturating_add(self.shared.serialized_chars())
    }

    pub fn offline_since(&self) -> Option<i64> {
        self.offline_since
    }

    /// Whether it holds objects or shared state.
    pub fn has_state(&self) -> bool {
        !self.objects.is_empty() || !self.shared.is_empty()
    }

    fn next_seq(&mut self, ops: &mut Vec<StoreOp>) {
        self.seq += 1;
        ops.push(StoreOp::SetSeq(self.seq));
    }

    /// Applies object changes all or nothing. `path_of` names the change at an index in error
    /// messages (`data` for a single update, `data.updates[i]` in a batch). Returns the storage
    /// writes: one per change that did something (deleting a missing object does nothing), in
    /// order, then the new `seq` if there was any.
    pub fn apply_changes(
        &mut self,
        changes: Vec<ObjectChange>,
        path_of: impl Fn(usize) -> String,
        by: &Cid,
        now: i64,
    ) -> Result<Vec<StoreOp>, PacketError> {
        let mut ops = Vec::with_capacity(changes.len() + 1);
        // The record each write replaced (`None`: there was none), to undo the writes made so
        // far when a later change is refused.
        let mut replaced = Vec::with_capacity(changes.len());
        let object_chars = self.object_chars;
        if let Err(error) = self.apply_each(changes, &path_of, by, now, &mut ops, &mut replaced) {
            self.object_chars = object_chars;
            for (op, record) in ops.into_iter().zip(replaced).rev() {
                let (StoreOp::PutObject { id, .. } | StoreOp::DeleteObject { id }) = op else {
                    continue;
                };
                match record {
                    Some(record) => self.objects.insert(id, record),
                    None => self.objects.remove(&id),
                };
            }
            return Err(error);
        }
        if !ops.is_empty() {
            self.next_seq(&mut ops);
        }
        Ok(ops)
    }

    /// Applies the changes in order, writing each into `objects` at once, and records each write
    /// and what it replaced; stops at the first refused change.
    fn apply_each(
        &mut self,
        changes: Vec<ObjectChange>,
        path_of: &impl Fn(usize) -> String,
        by: &Cid,
        now: i64,
        ops: &mut Vec<StoreOp>,
        replaced: &mut Vec<Option<ObjectRecord>>,
    ) -> Result<(), PacketError> {
        for (index, ObjectChange { object_id, op }) in changes.into_iter().enumerate() {
            let at_capacity = self.objects.len() >= MAX_OBJECTS;
            let current = self.objects.get_mut(&object_id);
            let state = match op {
                ChangeOp::Delete => {
                    if let Some(current) = current {
                        self.object_chars -= serialized_chars(&current.state);
                        replaced.push(self.objects.remove(&object_id));
                        ops.push(StoreOp::DeleteObject { id: object_id });
                    }
                    continue;
                }
                ChangeOp::Replace(state) => state,
                ChangeOp::Patch(patch) => {
                    let mut state = match current.as_deref() {
                        Some(ObjectRecord {
                            state: Value::Object(state),
                            ..
                        }) => Value::Object(state.clone()),
                        _ => Value::Object(Map::new()),
                    };
                    json_patch::merge(&mut state, &Value::Object(patch));
                    state
                }
            };
            // Checked for replacements too: serializing can lengthen a value (`1e15` is
            // written back as `1000000000000000.0`), so fitting in a packet is not enough.
            let state_json = serde_json::value::to_raw_value(&state)
                .map_err(|error| PacketError::Internal(error.to_string()))?;
            let chars = state_json.get().chars().count();
            if chars > MAX_OBJECT_STATE_CHARS {
                return Err(PacketError::ObjectStateTooLarge {
                    field: path_of(index),
                    chars,
                });
            }
            let old_chars = current
                .as_deref()
                .map_or(0, |record| serialized_chars(&record.state));
            let object_chars = self.object_chars - old_chars + chars;
            let total = object_chars.saturating_add(self.shared.serialized_chars());
            if total > MAX_AIRPORT_STATE_CHARS && chars > old_chars {
                return Err(PacketError::AirportStateTooLarge {
                    field: path_of(index),
                    chars: total,
                });
            }
            let record = ObjectRecord {
                state,
                controller_id: by.clone(),
                updated_at: now,
            };
            match current {
                Some(current) => replaced.push(Some(std::mem::replace(current, record))),
                None if at_capacity => {
                    return Err(PacketError::TooManyObjects {
                        field: path_of(index),
                    });
                }
                None => {
                    self.objects.insert(object_id.clone(), record);
                    replaced.push(None);
                }
            }
            self.object_chars = object_chars;
            let row = ObjectRow {
                state_json,
                controller_id: by.clone(),
                updated_at: now,
            };
            ops.push(StoreOp::PutObject { id: object_id, row });
        }
        Ok(())
    }

    /// Merges a shared-state patch (always one accepted change, even when nothing differs).
    pub fn merge_shared(
        &mut self,
        patch: &Map<String, Value>,
    ) -> Result<Vec<StoreOp>, PacketError> {
        let mut ops: Vec<StoreOp> = self
            .shared
            .merge(patch, self.object_chars)?
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
            self.object_chars = 0;
            self.shared.clear();
            ops.push(StoreOp::ClearState);
            self.next_seq(&mut ops);
        }
        ops
    }
}
