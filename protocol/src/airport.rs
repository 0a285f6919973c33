//! One airport's state and the semantics of changing it. Every change returns the storage
//! operations that make it durable; the caller writes them before anything is broadcast.

use super::equivalence::{Equivalence, latest};
use super::error::PacketError;
use super::history::{History, HistoryId, ResumeRequest};
use super::ids::{Cid, Icao};
use super::json::serialized_chars;
use super::limits::{MAX_AIRPORT_STATE_CHARS, MAX_OBJECT_STATE_CHARS, MAX_OBJECTS};
use super::liveness::Schedule;
use super::packet::{ChangeOp, ObjectChange};
use super::shared_state::SharedState;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::{Map, Value};
use std::collections::{BTreeMap, HashSet};

/// An object's state with its last writer and time of change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ObjectRecord {
    pub state: Value,
    pub controller_id: Cid,
    pub updated_at: i64,
    /// The change that wrote it last (0: before the airport kept this, or never).
    #[serde(default)]
    pub seq: u64,
}

/// An object's row as storage writes it: the state as the JSON text the broadcast carries,
/// serialized once for both.
#[derive(Debug, Clone)]
pub struct ObjectRow {
    pub state_json: Box<RawValue>,
    pub controller_id: Cid,
    pub updated_at: i64,
    pub seq: u64,
}

impl PartialEq for ObjectRow {
    fn eq(&self, other: &Self) -> bool {
        self.state_json.get() == other.state_json.get()
            && self.controller_id == other.controller_id
            && self.updated_at == other.updated_at
            && self.seq == other.seq
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
    /// The change `seq` deleted object `id` (the resume log, [`History`]).
    PutTombstone {
        id: String,
        seq: u64,
    },
    /// The last change to shared state.
    SetSharedSeq(u64),
    /// No resume from below this `seq`; older tombstones are forgotten.
    SetResumeFloor(u64),
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

/// Accepted object changes: their storage writes, and which of those the sender is told of.
#[derive(Debug, Clone, PartialEq)]
pub struct Applied {
    pub persist: Vec<StoreOp>,
    /// Indexes into `persist` of what its sender is told: the last write of each object that
    /// an equivalent's write touched in the change (so that, applied on top of what the sender
    /// asked, they give what was stored). Empty for an airport without equivalents.
    pub for_sender: Vec<usize>,
}

/// Where [`Airport::apply_each`] records its writes: the writes, what each replaced, and the
/// indexes of those made for equivalents.
type Written<'a> = (
    &'a mut Vec<StoreOp>,
    &'a mut Vec<Option<ObjectRecord>>,
    &'a mut Vec<usize>,
);

/// The objects' serialized size after a write of `chars` over `old` (0: a new object); refused
/// with the airport's total when that takes it past `MAX_AIRPORT_STATE_CHARS` (a write that
/// does not grow is always taken).
fn grown(
    object_chars: usize,
    shared_chars: usize,
    old: usize,
    chars: usize,
) -> Result<usize, usize> {
    let next = object_chars - old + chars;
    let total = next.saturating_add(shared_chars);
    if total > MAX_AIRPORT_STATE_CHARS && chars > old {
        Err(total)
    } else {
        Ok(next)
    }
}

/// Writes `record` as object `id` and returns what it replaced; `None` (nothing written) for a
/// new object beyond [`MAX_OBJECTS`].
fn put(
    objects: &mut BTreeMap<String, ObjectRecord>,
    id: &str,
    record: ObjectRecord,
) -> Option<Option<ObjectRecord>> {
    if let Some(current) = objects.get_mut(id) {
        return Some(Some(std::mem::replace(current, record)));
    }
    if objects.len() >= MAX_OBJECTS {
        return None;
    }
    objects.insert(id.to_owned(), record);
    Some(None)
}

/// The last write of each object that an equivalent's write touched (`by_equivalents`, the
/// indexes of those writes), in order.
fn unasked_results(writes: &[StoreOp], by_equivalents: &[usize]) -> Vec<usize> {
    let id_at = |index: usize| {
        writes
            .get(index)
            .and_then(StoreOp::object_write)
            .map(|w| w.0)
    };
    let touched: HashSet<&str> = by_equivalents.iter().filter_map(|&i| id_at(i)).collect();
    let mut seen = HashSet::new();
    let mut unasked: Vec<usize> = (0..writes.len())
        .rev()
        .filter(|&index| id_at(index).is_some_and(|id| touched.contains(id) && seen.insert(id)))
        .collect();
    unasked.reverse();
    unasked
}

/// An airport's objects: read from storage, or, until an event needs them, only counted. A
/// wake-up for a heartbeat, an alarm or a close reads no rows ([`crate::room::Room::frame`]).
#[derive(Debug, Clone, PartialEq)]
enum Objects {
    Read {
        records: BTreeMap<String, ObjectRecord>,
        /// The serialized size of every object's state, summed: with the shared state's, what
        /// `MAX_AIRPORT_STATE_CHARS` bounds.
        chars: usize,
    },
    Unread {
        count: usize,
        /// The rows changed after a `seq`, read for a resuming connect ([`RowsToRead`]).
        /// Nothing changes the objects while they are unread, so they stay right until then.
        changed: Option<ChangedRows>,
    },
}

#[derive(Debug, Clone, PartialEq)]
struct ChangedRows {
    since: u64,
    records: BTreeMap<String, ObjectRecord>,
}

/// The objects' rows an event needs read first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RowsToRead {
    /// Every row ([`Airport::read_objects`]).
    All,
    /// Only the rows whose `seq` is above this one ([`Airport::read_changed_objects`]): all a
    /// resume from it shows, the deletions and shared state being in memory already.
    ChangedSince(u64),
}

/// The airport's objects are not read yet and the event needs them: the caller reads them
/// ([`Airport::read_objects`]) and hands the event in again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the airport's objects are not read")]
pub struct NeedsObjects;

impl From<NeedsObjects> for PacketError {
    /// The room asks for the objects before a frame that needs them: a frame never gets here.
    fn from(error: NeedsObjects) -> Self {
        PacketError::Internal(error.to_string())
    }
}

impl Objects {
    fn read(records: BTreeMap<String, ObjectRecord>) -> Self {
        let chars = (records.values())
            .map(|record| serialized_chars(&record.state))
            .sum();
        Objects::Read { records, chars }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Airport {
    icao: Icao,
    objects: Objects,
    shared: SharedState,
    seq: u64,
    /// When the last controller left, while no controller is connected.
    offline_since: Option<i64>,
    /// Which points are the same light; empty without the points table.
    equivalence: Equivalence,
    /// What a reconnecting client's resume is made from.
    history: History,
}

/// What changed after a `seq` ([`Airport::changes_since`]), as clients see the airport.
#[derive(Debug, Clone, PartialEq)]
pub struct Changes<'a> {
    pub from: u64,
    /// Objects written after `from`, as they are now.
    pub objects: Vec<(&'a str, &'a ObjectRecord)>,
    /// Objects shown at `from` (possibly) and gone now.
    pub deleted: Vec<&'a str>,
    pub shared_changed: bool,
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
            objects: Objects::read(objects),
            shared: SharedState::from_members(shared),
            seq,
            offline_since,
            equivalence: Equivalence::default(),
            history: History::default(),
        }
    }

    /// Rebuilds an airport from what storage holds but its objects' rows, of which there are
    /// `object_count`: they are read when an event needs them ([`Airport::read_objects`]).
    pub fn restore_unread(
        icao: Icao,
        object_count: usize,
        shared: Map<String, Value>,
        seq: u64,
        offline_since: Option<i64>,
    ) -> Self {
        let airport = Airport::restore(icao, BTreeMap::new(), shared, seq, offline_since);
        // With none, there is nothing to read.
        if object_count == 0 {
            return airport;
        }
        Airport {
            objects: Objects::Unread {
                count: object_count,
                changed: None,
            },
            ..airport
        }
    }

    /// Whether the objects are read (always, but after [`Airport::restore_unread`] until
    /// [`Airport::read_objects`]).
    pub fn objects_read(&self) -> bool {
        matches!(self.objects, Objects::Read { .. })
    }

    /// The objects' rows as storage holds them, for an airport restored without them. Objects
    /// already read are kept: they are what storage holds, and newer.
    pub fn read_objects(&mut self, objects: BTreeMap<String, ObjectRecord>) {
        if !self.objects_read() {
            self.objects = Objects::read(objects);
        }
    }

    /// Which rows a connect with `resume` needs read first, if any: for a resume the log can
    /// serve, only those changed after its `seq` (unless they are held already).
    pub fn rows_for_connect(&self, resume: Option<&ResumeRequest>) -> Option<RowsToRead> {
        let Objects::Unread { changed, .. } = &self.objects else {
            return None;
        };
        match resume {
            Some(ResumeRequest::From { history, seq })
                if self.history.can_resume(history, *seq, self.seq) =>
            {
                let held = changed.as_ref().is_some_and(|rows| rows.since == *seq);
                (!held).then_some(RowsToRead::ChangedSince(*seq))
            }
            _ => Some(RowsToRead::All),
        }
    }

    /// The rows whose `seq` is above `since`, as storage holds them ([`RowsToRead`]), for an
    /// airport whose objects are unread; they stay unread.
    pub fn read_changed_objects(&mut self, since: u64, records: BTreeMap<String, ObjectRecord>) {
        if let Objects::Unread { changed, .. } = &mut self.objects {
            *changed = Some(ChangedRows { since, records });
        }
    }

    /// The airport with its stored resume log.
    pub fn with_history(self, history: History) -> Self {
        Airport { history, ..self }
    }

    pub fn history(&self) -> &History {
        &self.history
    }

    /// What changed after `from`, if the log still holds it for a replica of `history`; `None`
    /// (the full state is needed) for another history, a `seq` below the floor or in the future.
    pub fn changes_since(
        &self,
        history: &HistoryId,
        from: u64,
    ) -> Result<Option<Changes<'_>>, NeedsObjects> {
        if !self.history.can_resume(history, from, self.seq) {
            return Ok(None);
        }
        // The rows changed after `from` give the same answer as all of them: a change to a
        // group writes (or deletes) every member alike and the grouping is the same since
        // `from`, so a group with a member changed after `from` has all of them changed; an
        // object deleted after `from` and present now was written after its deletion.
        let records = match &self.objects {
            Objects::Read { records, .. } => records,
            Objects::Unread {
                changed: Some(rows),
                ..
            } if rows.since == from => &rows.records,
            Objects::Unread { .. } => return Err(NeedsObjects),
        };
        // Equivalent points are shown alike: what changed is what the view shows changed. A
        // grouping is the same since `from` (a new one raises the floor), so a group's shown
        // record is newer than `from` exactly when one of its members was written after it.
        let view = self.equivalence.view(records);
        let is_shown = |id: &str| match &view {
            Some(view) => view.iter().any(|(shown, _)| *shown == id),
            None => records.contains_key(id),
        };
        let mut deleted: Vec<&str> = Vec::new();
        for tombstone in self.history.tombstones().filter(|t| t.seq > from) {
            let id = tombstone.id.as_str();
            match self.equivalence.group_of(id) {
                // Tombstones are one per id.
                None if !is_shown(id) => deleted.push(id),
                None => {}
                Some(group) => {
                    // Each member of a group may have a tombstone: the group is listed once.
                    for id in group.iter().map(String::as_str) {
                        if !is_shown(id) && !deleted.contains(&id) {
                            deleted.push(id);
                        }
                    }
                }
            }
        }
        let objects = match view {
            Some(mut view) => {
                view.retain(|(_, r)| r.seq > from);
                view
            }
            None => (records.iter())
                .filter(|(_, r)| r.seq > from)
                .map(|(id, r)| (id.as_str(), r))
                .collect(),
        };
        Ok(Some(Changes {
            from,
            objects,
            deleted,
            shared_changed: self.history.shared_seq() > from,
        }))
    }

    pub fn icao(&self) -> &Icao {
        &self.icao
    }

    /// The objects, if they are read.
    pub fn objects(&self) -> Option<&BTreeMap<String, ObjectRecord>> {
        match &self.objects {
            Objects::Read { records, .. } => Some(records),
            Objects::Unread { .. } => None,
        }
    }

    /// How many objects it holds, read or not.
    pub fn object_count(&self) -> usize {
        match &self.objects {
            Objects::Read { records, .. } => records.len(),
            Objects::Unread { count, .. } => *count,
        }
    }

    pub fn shared(&self) -> &SharedState {
        &self.shared
    }

    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// The serialized size of everything it holds (objects' states and shared state), as
    /// `MAX_AIRPORT_STATE_CHARS` counts it; known once the objects are read.
    pub fn state_chars(&self) -> Option<usize> {
        match &self.objects {
            Objects::Read { chars, .. } => {
                Some(chars.saturating_add(self.shared.serialized_chars()))
            }
            Objects::Unread { .. } => None,
        }
    }

    pub fn offline_since(&self) -> Option<i64> {
        self.offline_since
    }

    pub fn equivalence(&self) -> &Equivalence {
        &self.equivalence
    }

    /// Sets the grouping of equivalent points the stored objects were written under. Returns
    /// whether it changed.
    pub fn set_equivalence(&mut self, equivalence: Equivalence) -> bool {
        let changed = self.equivalence != equivalence;
        self.equivalence = equivalence;
        changed
    }

    /// A new grouping of equivalent points (read again from the points table): what clients
    /// see changes without a `seq`, so no replica up to now can resume (storage raises its
    /// floor by the same rule, `storage::set_points`). Returns whether it changed.
    pub fn regroup(&mut self, equivalence: Equivalence) -> bool {
        let changed = self.set_equivalence(equivalence);
        if changed {
            self.history.raise_floor(self.seq + 1);
        }
        changed
    }

    /// Whether it holds objects or shared state.
    pub fn has_state(&self) -> bool {
        self.object_count() > 0 || !self.shared.is_empty()
    }

    fn next_seq(&mut self, ops: &mut Vec<StoreOp>) {
        self.seq += 1;
        ops.push(StoreOp::SetSeq(self.seq));
    }

    /// Applies object changes all or nothing. `path_of` names the change at an index in error
    /// messages (`data` for a single update, `data.updates[i]` in a batch). A change of a point
    /// with equivalents is applied to all of them, in the same change: a patch to the group's
    /// shown state ([`Equivalence::view`]), the result (or the deletion) written to each member
    /// after the named one. Returns the storage writes: one per write that did something
    /// (deleting a missing object does nothing), in order, then the new `seq` if there was any.
    pub fn apply_changes(
        &mut self,
        changes: Vec<ObjectChange>,
        path_of: impl Fn(usize) -> String,
        by: &Cid,
        now: i64,
    ) -> Result<Applied, PacketError> {
        let mut applied = Applied {
            persist: Vec::with_capacity(changes.len() + 1),
            for_sender: Vec::new(),
        };
        // The record each write replaced (`None`: there was none), to undo the writes made so
        // far when a later change is refused; and which writes were made for equivalents.
        let mut replaced = Vec::with_capacity(changes.len());
        let mut by_equivalents = Vec::new();
        let ops = &mut applied.persist;
        let written = (ops, &mut replaced, &mut by_equivalents);
        let Objects::Read {
            chars: object_chars,
            ..
        } = self.objects
        else {
            return Err(NeedsObjects.into());
        };
        if let Err(error) = self.apply_each(changes, &path_of, by, now, written) {
            if let Objects::Read { records, chars } = &mut self.objects {
                *chars = object_chars;
                for (op, record) in applied.persist.into_iter().zip(replaced).rev() {
                    let (StoreOp::PutObject { id, .. } | StoreOp::DeleteObject { id }) = op else {
                        continue;
                    };
                    match record {
                        Some(record) => records.insert(id, record),
                        None => records.remove(&id),
                    };
                }
            }
            return Err(error);
        }
        if !applied.persist.is_empty() {
            if !by_equivalents.is_empty() {
                applied.for_sender = unasked_results(&applied.persist, &by_equivalents);
            }
            self.next_seq(&mut applied.persist);
            let deleted: Vec<String> = (applied.persist.iter())
                .filter_map(|op| match op {
                    StoreOp::DeleteObject { id } => Some(id.clone()),
                    _ => None,
                })
                .collect();
            for id in deleted {
                (self.history).deleted(&id, self.seq, &mut applied.persist);
            }
        }
        Ok(applied)
    }

    /// Applies the changes in order, writing each into `objects` at once, and records each write,
    /// what it replaced and which were for equivalents; stops at the first refused change.
    fn apply_each(
        &mut self,
        changes: Vec<ObjectChange>,
        path_of: &dyn Fn(usize) -> String,
        by: &Cid,
        now: i64,
        (ops, replaced, by_equivalents): Written<'_>,
    ) -> Result<(), PacketError> {
        let Airport {
            objects:
                Objects::Read {
                    records: objects,
                    chars: object_chars,
                },
            shared,
            equivalence,
            seq,
            ..
        } = self
        else {
            return Err(NeedsObjects.into());
        };
        // The `seq` this change takes if it is accepted.
        let seq = *seq + 1;
        for (index, ObjectChange { object_id, op }) in changes.into_iter().enumerate() {
            let group = match equivalence.is_empty() {
                true => None,
                false => equivalence.group_of(&object_id),
            };
            // Borrowed from the group, not from the named id, which its write takes.
            let equivalents: Vec<&String> = group.map_or_else(Vec::new, |ids| {
                ids.iter().filter(|id| **id != object_id).collect()
            });
            // A grouped point's patch applies to its group's shown state, taken before the
            // named object is borrowed for its write.
            let group_state = match (&op, group) {
                (ChangeOp::Patch(_), Some(ids)) => Some(latest(ids, objects).map(|r| &r.state)),
                _ => None,
            }
            .map(|state| match state {
                Some(Value::Object(state)) => Value::Object(state.clone()),
                _ => Value::Object(Map::new()),
            });
            let at_capacity = objects.len() >= MAX_OBJECTS;
            let current = objects.get_mut(&object_id);
            let state = match op {
                ChangeOp::Delete => {
                    if let Some(current) = current {
                        *object_chars -= serialized_chars(&current.state);
                        replaced.push(objects.remove(&object_id));
                        ops.push(StoreOp::DeleteObject { id: object_id });
                    }
                    for id in equivalents {
                        if let Some(record) = objects.remove(id) {
                            *object_chars -= serialized_chars(&record.state);
                            by_equivalents.push(ops.len());
                            replaced.push(Some(record));
                            ops.push(StoreOp::DeleteObject { id: id.clone() });
                        }
                    }
                    continue;
                }
                ChangeOp::Replace(state) => state,
                ChangeOp::Patch(patch) => {
                    let mut state = group_state.unwrap_or_else(|| match current.as_deref() {
                        Some(ObjectRecord {
                            state: Value::Object(state),
                            ..
                        }) => Value::Object(state.clone()),
                        _ => Value::Object(Map::new()),
                    });
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
            let too_many = || PacketError::TooManyObjects {
                field: path_of(index),
            };
            let too_large = |total| PacketError::AirportStateTooLarge {
                field: path_of(index),
                chars: total,
            };
            let shared_chars = shared.serialized_chars();
            let old_chars = current
                .as_deref()
                .map_or(0, |record| serialized_chars(&record.state));
            *object_chars =
                grown(*object_chars, shared_chars, old_chars, chars).map_err(too_large)?;
            let record = |state| ObjectRecord {
                state,
                controller_id: by.clone(),
                updated_at: now,
                seq,
            };
            let row = ObjectRow {
                state_json,
                controller_id: by.clone(),
                updated_at: now,
                seq,
            };
            // The equivalents' copies, made only for a point that has any.
            let copies = group.map(|_| (state.clone(), row.clone()));
            let was = match current {
                Some(current) => Some(std::mem::replace(current, record(state))),
                None if at_capacity => return Err(too_many()),
                None => {
                    objects.insert(object_id.clone(), record(state));
                    None
                }
            };
            replaced.push(was);
            ops.push(StoreOp::PutObject { id: object_id, row });
            if let Some((state, row)) = copies {
                for id in equivalents {
                    let old_chars = objects
                        .get(id)
                        .map_or(0, |record| serialized_chars(&record.state));
                    let next = grown(*object_chars, shared_chars, old_chars, chars);
                    let next = next.map_err(too_large)?;
                    let was = put(objects, id, record(state.clone())).ok_or_else(too_many)?;
                    *object_chars = next;
                    by_equivalents.push(ops.len());
                    replaced.push(was);
                    let (id, row) = (id.clone(), row.clone());
                    ops.push(StoreOp::PutObject { id, row });
                }
            }
        }
        Ok(())
    }

    /// Merges a shared-state patch (always one accepted change, even when nothing differs).
    pub fn merge_shared(
        &mut self,
        patch: &Map<String, Value>,
    ) -> Result<Vec<StoreOp>, PacketError> {
        let Objects::Read { chars, .. } = self.objects else {
            return Err(NeedsObjects.into());
        };
        let mut ops: Vec<StoreOp> = self
            .shared
            .merge(patch, chars)?
            .into_iter()
            .map(|(key, value)| match value {
                Some(value) => StoreOp::PutShared { key, value },
                None => StoreOp::DeleteShared { key },
            })
            .collect();
        self.next_seq(&mut ops);
        ops.push(self.history.shared_changed(self.seq));
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
            // Nothing is left to read.
            self.objects = Objects::read(BTreeMap::new());
            self.shared.clear();
            ops.push(StoreOp::ClearState);
            self.next_seq(&mut ops);
            // Nothing before the clearing can be resumed from: it is not broadcast.
            ops.extend(self.history.raise_floor(self.seq));
        }
        ops
    }
}
