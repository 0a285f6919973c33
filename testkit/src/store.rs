//! Durable storage as the Durable Object holds it after writing every `StoreOp` row by row: what
//! a restart would restore. After each event it must equal what the room holds in memory.

use airport_protocol::Airport;
use airport_protocol::airport::{ObjectRecord, StoreOp};
use airport_protocol::liveness::Schedule;
use serde_json::{Map, Value};
use std::collections::BTreeMap;

#[derive(Debug, Clone, PartialEq)]
pub struct Store {
    pub objects: BTreeMap<String, ObjectRecord>,
    pub shared: Map<String, Value>,
    pub seq: u64,
    pub offline_since: Option<i64>,
    pub schedule: Schedule,
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
            thorough: true,
        }
    }
}

impl Store {
    pub fn of(airport: &Airport) -> Store {
        Store {
            objects: airport.objects().clone(),
            shared: airport.shared().as_map().clone(),
            seq: airport.seq(),
            offline_since: airport.offline_since(),
            ..Store::default()
        }
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
            return self.objects.len() == airport.objects().len()
                && self.shared.len() == airport.shared().as_map().len()
                && self.seq == airport.seq();
        }
        &self.objects == airport.objects()
            && &self.shared == airport.shared().as_map()
            && self.seq == airport.seq()
    }

    /// What a restart would restore equals what the airport holds.
    pub fn check(&self, airport: &Airport) {
        assert!(
            &self.objects == airport.objects(),
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
    }
}
