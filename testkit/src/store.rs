//! Durable storage as the Durable Object holds it after writing every `StoreOp` row by row: what
//! a restart would restore. After each event it must equal what the room holds in memory.

use airport_protocol::airport::{ObjectRecord, StoreOp};
use airport_protocol::history::{History, HistoryId, Tombstone};
use airport_protocol::liveness::Schedule;
use airport_protocol::{Airport, Icao};
use serde_json::{Map, Value};
use std::collections::BTreeMap;

#[derive(Debug, Clone, PartialEq)]
pub struct Store {
    pub objects: BTreeMap<String, ObjectRecord>,
    pub shared: Map<String, Value>,
    pub seq: u64,
    pub offline_since: Option<i64>,
    pub schedule: Schedule,
    /// The resume log: the history's id, the last change to shared state, the floor and the
    /// tombstones (`seq` by id).
    pub history: HistoryId,
    pub shared_seq: u64,
    pub resume_floor: u64,
    pub tombstones: BTreeMap<String, u64>,
    /// Compare everything (the default). When false, `same_state` compares only sizes, `seq`
    /// and `offline_since`: the fuzzer switches to that for near-limit airports between
    /// writes, and compares everything after every write and at its end.
    pub thorough: bool,
}

impl Default for Store {
    fn default() -> Self {
        Store {
            objects: BTreeMap::new(),
            shared: Map::new(),
            seq: 0,
            offline_since: None,
            schedule: Schedule::default(),
            history: HistoryId::default(),
            shared_seq: 0,
            resume_floor: 0,
            tombstones: BTreeMap::new(),
            thorough: true,
        }
    }
}

/// The objects of an airport whose objects are read, as every airport compared here is.
pub fn objects_of(airport: &Airport) -> &BTreeMap<String, ObjectRecord> {
    airport.objects().expect("the airport's objects are read")
}

impl Store {
    pub fn of(airport: &Airport) -> Store {
        Store {
            objects: objects_of(airport).clone(),
            shared: airport.shared().as_map().clone(),
            seq: airport.seq(),
            offline_since: airport.offline_since(),
            history: airport.history().id().clone(),
            shared_seq: airport.history().shared_seq(),
            resume_floor: airport.history().floor(),
            tombstones: (airport.history().tombstones())
                .map(|t| (t.id.clone(), t.seq))
                .collect(),
            ..Store::default()
        }
    }

    /// The airport a restart would load (without its grouping of points, which is stored
    /// apart).
    pub fn restore(&self, icao: Icao) -> Airport {
        // As storage reads them: in `seq` order.
        let mut tombstones: Vec<Tombstone> = (self.tombstones.iter())
            .map(|(id, &seq)| Tombstone {
                id: id.clone(),
                seq,
            })
            .collect();
        tombstones.sort_by_key(|t| t.seq);
        let history = History::restore(
            self.history.clone(),
            self.shared_seq,
            self.resume_floor,
            tombstones,
        );
        let (objects, shared) = (self.objects.clone(), self.shared.clone());
        Airport::restore(icao, objects, shared, self.seq, self.offline_since).with_history(history)
    }

    pub fn apply(&mut self, ops: &[StoreOp]) {
        for op in ops {
            match op {
                StoreOp::PutObject { id, row } => {
                    // What a reload reads back: the row's text, parsed.
                    let record = ObjectRecord {
                        state: serde_json::from_str(row.state_json.get())
                            .unwrap_or_else(|e| panic!("object {id} stored unparsable JSON: {e}")),
                        controller_id: row.controller_id.clone(),
                        updated_at: row.updated_at,
                        seq: row.seq,
                    };
                    self.objects.insert(id.clone(), record);
                }
                StoreOp::DeleteObject { id } => {
                    self.objects.remove(id);
                }
                StoreOp::PutShared { key, value } => {
                    self.shared.insert(key.clone(), value.clone());
                }
                StoreOp::DeleteShared { key } => {
                    self.shared.remove(key);
                }
                StoreOp::ClearState => {
                    self.objects.clear();
                    self.shared.clear();
                }
                StoreOp::SetSeq(seq) => self.seq = *seq,
                StoreOp::PutTombstone { id, seq } => {
                    self.tombstones.insert(id.clone(), *seq);
                }
                StoreOp::SetSharedSeq(seq) => self.shared_seq = *seq,
                StoreOp::SetResumeFloor(floor) => {
                    self.resume_floor = *floor;
                    self.tombstones.retain(|_, seq| *seq > *floor);
                }
                StoreOp::SetOfflineSince(since) => self.offline_since = *since,
                StoreOp::SetSchedule(schedule) => self.schedule = *schedule,
            }
        }
    }

    pub fn has_state(&self) -> bool {
        !self.objects.is_empty() || !self.shared.is_empty()
    }

    /// The same objects, shared state and `seq` (`offline_since` is not "state").
    pub fn same_state(&self, airport: &Airport) -> bool {
        if !self.thorough {
            return self.objects.len() == objects_of(airport).len()
                && self.shared.len() == airport.shared().as_map().len()
                && self.seq == airport.seq();
        }
        &self.objects == objects_of(airport)
            && &self.shared == airport.shared().as_map()
            && self.seq == airport.seq()
    }

    /// What a restart would restore equals what the airport holds.
    pub fn check(&self, airport: &Airport) {
        assert!(
            &self.objects == objects_of(airport),
            "stored objects differ from the airport's"
        );
        assert!(
            &self.shared == airport.shared().as_map(),
            "stored shared state differs from the airport's"
        );
        assert_eq!(self.seq, airport.seq(), "stored seq differs");
        assert_eq!(
            self.offline_since,
            airport.offline_since(),
            "stored offline_since differs"
        );
        let held = Store::of(airport);
        let log = |store: &Store| {
            let (id, shared) = (store.history.clone(), store.shared_seq);
            (id, shared, store.resume_floor, store.tombstones.clone())
        };
        assert_eq!(log(self), log(&held), "the stored resume log differs");
    }
}
