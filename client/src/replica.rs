//! The client's copy of one airport: objects, shared state, controllers and pilots, kept in
//! step by `seq` (docs/protocol.md §8). Every (re)connect replaces it from `INITIAL_STATE`; a
//! gap asks for a `STATE_SNAPSHOT`, and nothing sequenced is applied until it comes.

use airport_protocol::Cid;
use airport_protocol::history::{HistoryId, ResumeRequest};
use airport_protocol::wire::server::{
    InitialStateData, MultiStateUpdate, OnlinePilot, ServerPacket,
};
use airport_protocol::wire::{ChangeRequest, ObjectEntry, ObjectState, ObjectUpdate, Snapshot};
use serde::Serialize;
use serde_json::{Map, Value};
use std::collections::{BTreeMap, BTreeSet, VecDeque};

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Replica {
    /// By object id.
    pub objects: BTreeMap<String, ObjectEntry>,
    pub shared_state: Map<String, Value>,
    pub controllers: BTreeSet<Cid>,
    /// As the last `ONLINE_PILOTS` said (the server announces no pilot comings and goings).
    pub pilots: Vec<OnlinePilot>,
    /// No controller is connected.
    pub offline: bool,
    /// The `seq` everything above is at.
    pub seq: u64,
    /// The airport's history id, from the `INITIAL_STATE`: with `seq`, where to resume from.
    #[serde(skip)]
    pub history: Option<String>,
    /// Until the first `INITIAL_STATE`, and from a gap until its `STATE_SNAPSHOT`.
    #[serde(skip)]
    pub stale: bool,
    /// Our own packets of object changes not yet accounted for, oldest first, each with the
    /// objects it touched. A controller never receives them, yet each takes a `seq`: missing
    /// numbers are ours, in order, as far as these go.
    #[serde(skip)]
    own: VecDeque<Vec<String>>,
}

/// What a packet did to the replica.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// The replica changed (or was replaced).
    Changed,
    /// Nothing to apply: not a state packet, already included, or waiting for a snapshot.
    Nothing,
    /// Changes are missing: ask for `GET_STATE`; the replica is stale until the snapshot.
    Gap,
}

impl Replica {
    /// A replica that waits for its first `INITIAL_STATE`.
    pub fn new() -> Self {
        Replica {
            stale: true,
            ..Replica::default()
        }
    }

    pub fn apply(&mut self, packet: &ServerPacket) -> Applied {
        match packet {
            ServerPacket::InitialState(initial) => self.initial(&initial.data),
            ServerPacket::StateSnapshot(snapshot) => self.replace(&snapshot.data),
            ServerPacket::OnlinePilots(online) => {
                self.pilots = online.data.pilots.clone();
                Applied::Changed
            }
            ServerPacket::StateUpdate(update) => self.sequenced(
                update.seq,
                update.seq,
                std::slice::from_ref(&update.data),
                update.timestamp,
            ),
            ServerPacket::MultiStateUpdate(MultiStateUpdate {
                seq,
                seq_from,
                data,
                timestamp,
                ..
            }) => self.sequenced(seq_from.unwrap_or(*seq), *seq, &data.updates, *timestamp),
            ServerPacket::SharedStateUpdate(update) => {
                let patch = &update.data.shared_state_patch;
                self.in_order(update.seq, update.seq, &[], |replica| {
                    merge(&mut replica.shared_state, patch)
                })
            }
            ServerPacket::ControllerConnect(presence) => {
                self.controllers.insert(presence.data.controller_id.clone());
                self.offline = false;
                Applied::Changed
            }
            ServerPacket::ControllerDisconnect(presence) => {
                self.controllers.remove(&presence.data.controller_id);
                self.offline = self.controllers.is_empty();
                Applied::Changed
            }
            _ => Applied::Nothing,
        }
    }

    /// Our own packet of changes (one `seq` if accepted), applied at once since the server
    /// will not echo it, as `cid`. Counted even if it turns out to change nothing (a deletion
    /// of a missing object takes no `seq`): the server does not acknowledge changes, so this
    /// is the most our own may account for.
    pub fn apply_own(&mut self, changes: &[ChangeRequest], cid: &Cid, now_ms: i64) {
        let touched = changes.iter().map(|c| c.object_id().0.clone()).collect();
        self.own.push_back(touched);
        for change in changes {
            self.apply_own_change(change, cid, now_ms);
        }
    }

    /// Our change as the server would broadcast it (the state after it), applied as theirs.
    fn apply_own_change(&mut self, change: &ChangeRequest, cid: &Cid, now_ms: i64) {
        let (object_id, controller_id) = (change.object_id().clone(), cid.clone());
        let update = match change {
            ChangeRequest::Set { state, .. } => ObjectUpdate::State {
                object_id,
                state: state.clone(),
                controller_id,
            },
            ChangeRequest::Patch { patch, .. } => {
                // A missing or boolean state counts as `{}`.
                let mut settings = match self.objects.get(object_id.0.as_str()) {
                    Some(ObjectEntry {
                        state: ObjectState::Settings(settings),
                        ..
                    }) => settings.clone(),
                    _ => Map::new(),
                };
                merge(&mut settings, patch);
                ObjectUpdate::State {
                    object_id,
                    state: ObjectState::Settings(settings),
                    controller_id,
                }
            }
            ChangeRequest::Delete { .. } => ObjectUpdate::Deleted {
                object_id,
                patch: (),
                controller_id,
            },
        };
        self.apply_update(&update, now_ms);
    }

    /// The server refused one of our own changes: what we applied locally is wrong, so the
    /// replica is stale until a snapshot.
    pub fn own_change_refused(&mut self) {
        self.stale = true;
    }

    /// Where the next connection may resume from (PROTOCOL §8): this replica's `seq`, if it is
    /// exactly the airport at that `seq` (not waiting for a snapshot, no change of our own
    /// unaccounted for); else the full state, with the history id for next time.
    pub fn resume(&self) -> ResumeRequest {
        let history = self.history.as_deref().and_then(HistoryId::parse);
        match history {
            Some(history) if !self.stale && self.own.is_empty() => ResumeRequest::From {
                history,
                seq: self.seq,
            },
            _ => ResumeRequest::Fresh,
        }
    }

    /// An `INITIAL_STATE`: the full state replaces the replica; a resume from its `seq` (what
    /// the last connection asked for) brings it up to date.
    fn initial(&mut self, data: &InitialStateData) -> Applied {
        if let Some(snapshot) = data.snapshot() {
            let applied = self.replace(&snapshot);
            self.history = data.history.clone();
            return applied;
        }
        if data.resumed_from != Some(self.seq)
            || data.history != self.history
            || !self.own.is_empty()
        {
            // Not the replica the resume was asked for: only a snapshot can help.
            return self.gap();
        }
        for id in data.deleted.iter().flatten() {
            self.objects.remove(id.0.as_str());
        }
        for object in &data.objects {
            self.objects.insert(object.id.to_string(), object.clone());
        }
        if let Some(shared_state) = &data.shared_state {
            self.shared_state = shared_state.clone();
        }
        self.controllers = data.controllers.iter().cloned().collect();
        self.offline = data.offline;
        self.seq = data.seq;
        self.stale = false;
        Applied::Changed
    }

    fn replace(&mut self, snapshot: &Snapshot) -> Applied {
        let pilots = std::mem::take(&mut self.pilots);
        let history = self.history.take();
        *self = Replica {
            history,
            objects: snapshot
                .objects
                .iter()
                .map(|object| (object.id.to_string(), object.clone()))
                .collect(),
            shared_state: snapshot.shared_state.clone(),
            controllers: snapshot.controllers.iter().cloned().collect(),
            pilots,
            offline: snapshot.offline,
            seq: snapshot.seq,
            stale: false,
            own: VecDeque::new(),
        };
        Applied::Changed
    }

    /// Object changes sent at `timestamp` (a coalesced run's changes were made a little
    /// earlier; the next snapshot has their exact times).
    fn sequenced(
        &mut self,
        from: u64,
        to: u64,
        updates: &[ObjectUpdate],
        timestamp: i64,
    ) -> Applied {
        let touched: Vec<&str> = updates.iter().map(|u| u.object_id().0.as_str()).collect();
        self.in_order(from, to, &touched, |replica| {
            for update in updates {
                replica.apply_update(update, timestamp)
            }
        })
    }

    /// Applies a packet covering `from..=to`, touching `touched`, if it comes next (our own
    /// changes allowing).
    fn in_order(
        &mut self,
        from: u64,
        to: u64,
        touched: &[&str],
        apply: impl FnOnce(&mut Self),
    ) -> Applied {
        if self.stale || to <= self.seq {
            return Applied::Nothing;
        }
        let missing = from.saturating_sub(self.seq + 1);
        if from <= self.seq || missing > self.own.len() as u64 {
            // Straddling what we have, or more missing than we sent ourselves.
            return self.gap();
        }
        // The missing numbers were our oldest packets; the rest reach the server after this
        // one, so where it touches an object of theirs, ours is the later value: we cannot
        // tell what the server made of both without asking.
        self.own.drain(..missing as usize);
        let overlaps = self
            .own
            .iter()
            .any(|ours| ours.iter().any(|id| touched.contains(&id.as_str())));
        if overlaps {
            return self.gap();
        }
        apply(self);
        self.seq = to;
        Applied::Changed
    }

    fn gap(&mut self) -> Applied {
        self.stale = true;
        Applied::Gap
    }

    fn apply_update(&mut self, update: &ObjectUpdate, timestamp: i64) {
        match update {
            ObjectUpdate::State {
                object_id,
                state,
                controller_id,
            } => {
                let entry = ObjectEntry {
                    id: object_id.clone(),
                    state: state.clone(),
                    controller_id: controller_id.clone(),
                    timestamp,
                };
                self.objects.insert(object_id.to_string(), entry);
            }
            ObjectUpdate::Deleted { object_id, .. } => {
                self.objects.remove(object_id.0.as_str());
            }
        }
    }
}

/// RFC 7396 on a JSON object.
fn merge(target: &mut Map<String, Value>, patch: &Map<String, Value>) {
    let mut value = Value::Object(std::mem::take(target));
    json_patch::merge(&mut value, &Value::Object(patch.clone()));
    if let Value::Object(merged) = value {
        *target = merged;
    }
}
