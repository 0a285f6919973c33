//! Resume by `seq` (docs/protocol.md §8): a replica taken at some `seq`, brought up to date by
//! a resuming `INITIAL_STATE`, equals the full state, for random histories of changes,
//! deletions, shared state, equivalent points and their regrouping, offline clearings and
//! restarts from what storage holds.

use airport_protocol::config::Config;
use airport_protocol::effects::{Action, Effects};
use airport_protocol::equivalence::Equivalence;
use airport_protocol::history::{History, HistoryId, ResumeRequest};
use airport_protocol::room::Answers;
use airport_protocol::wire::ServerPacket;
use airport_protocol::wire::server::InitialStateData;
use airport_protocol::{Icao, Role, Room, Session};
use airport_testkit::harness::{Harness, unlimited_rates, who};
use airport_testkit::store::Store;
use proptest::prelude::*;
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;

/// A client's copy of the airport: objects (state, writer, time) by id, shared state, `seq`.
#[derive(Debug, Clone, PartialEq)]
struct Replica {
    objects: BTreeMap<String, Value>,
    shared: Map<String, Value>,
    seq: u64,
    history: Option<String>,
}

impl Replica {
    fn of(data: &InitialStateData) -> Replica {
        assert_eq!(data.resumed_from, None, "a full state");
        let mut replica = Replica {
            objects: BTreeMap::new(),
            shared: Map::new(),
            seq: 0,
            history: None,
        };
        replica.apply(data);
        replica
    }

    /// Applies an `INITIAL_STATE` as a resuming client does: a full state replaces, a resume
    /// deletes, then writes what changed.
    fn apply(&mut self, data: &InitialStateData) {
        match data.resumed_from {
            None => {
                self.objects.clear();
                self.shared = data.shared_state.clone().expect("a full state has it");
            }
            Some(from) => {
                assert_eq!(from, self.seq, "resumed from the replica's seq");
                for id in data.deleted.iter().flatten() {
                    self.objects.remove(&id.0);
                }
                if let Some(shared) = &data.shared_state {
                    self.shared = shared.clone();
                }
            }
        }
        for entry in &data.objects {
            let value = serde_json::to_value(entry).unwrap();
            self.objects.insert(entry.id.0.clone(), value);
        }
        self.seq = data.seq;
        self.history = data.history.clone();
    }
}

fn initial_state(effects: &Effects) -> InitialStateData {
    let packet = effects
        .actions
        .iter()
        .find_map(|action| match action {
            Action::Send { packet, .. } if packet.contains("\"INITIAL_STATE\"") => Some(packet),
            _ => None,
        })
        .expect("an INITIAL_STATE");
    match serde_json::from_str(packet).unwrap() {
        ServerPacket::InitialState(initial) => initial.data,
        other => panic!("not an INITIAL_STATE: {other:?}"),
    }
}

/// One step of an airport's history.
#[derive(Debug, Clone)]
enum Step {
    /// A batch of object changes: (id, None) deletes, (id, Some(n)) sets or patches.
    Objects(Vec<(usize, Option<i8>, bool)>),
    Shared(usize, Option<i8>),
    /// The controller leaves until the state is cleared, then comes back.
    Clear,
    /// The Durable Object restarts from storage.
    Restart,
    /// The points are grouped anew.
    Regroup(Vec<usize>),
    /// A client takes a replica now.
    Take,
}

const IDS: [&str; 6] = ["A", "B", "C", "D", "E", "F"];

fn step() -> impl Strategy<Value = Step> {
    let change = (
        0..IDS.len(),
        prop::option::weighted(0.7, any::<i8>()),
        any::<bool>(),
    );
    prop_oneof![
        4 => prop::collection::vec(change, 1..4).prop_map(Step::Objects),
        2 => (0..3usize, prop::option::of(any::<i8>())).prop_map(|(k, v)| Step::Shared(k, v)),
        1 => Just(Step::Clear),
        1 => Just(Step::Restart),
        1 => prop::collection::vec(0..3usize, IDS.len()).prop_map(Step::Regroup),
        3 => Just(Step::Take),
    ]
}

/// Points with the same label are one light (label 0: not grouped).
fn grouping(labels: &[usize]) -> Equivalence {
    let groups = (1..3)
        .map(|label| {
            let ids = labels.iter().zip(IDS).filter(|(l, _)| **l == label);
            ids.map(|(_, id)| id.to_owned()).collect::<Vec<_>>()
        })
        .filter(|ids| ids.len() > 1)
        .collect();
    Equivalence::from_groups(groups)
}

struct World {
    h: Harness,
    store: Store,
    grouping: Equivalence,
    controller: Session,
    observer: Session,
}

impl World {
    fn new(history: HistoryId) -> World {
        let store = Store {
            history,
            ..Store::default()
        };
        let config = Config {
            rate_limits: unlimited_rates(),
            ..Config::default()
        };
        let h = Harness::with(config, store.restore(icao()));
        World {
            h,
            store,
            grouping: Equivalence::default(),
            controller: who(Role::Controller, "1000001"),
            observer: who(Role::Observer, "1000021"),
        }
    }

    fn persist(&mut self, effects_persist: &[airport_protocol::StoreOp]) {
        self.store.apply(effects_persist);
    }

    fn connect(&mut self, resume: Option<&ResumeRequest>) -> InitialStateData {
        let observer = self.observer.clone();
        let (socket, effects) = self.h.connect_resuming(&observer, resume).unwrap();
        self.persist(&effects.persist);
        let data = initial_state(&effects);
        let left = self.h.leave(socket);
        self.persist(&left.persist);
        data
    }

    fn send(&mut self, packet: Value) {
        let controller = self.controller.clone();
        if !self.h.room.presence().has_controllers() {
            let (_, joined) = self.h.connect_resuming(&controller, None).unwrap();
            self.persist(&joined.persist);
        }
        let sent = self.h.send(&controller, packet);
        self.persist(&sent.persist);
    }

    fn run(&mut self, step: &Step) -> Option<Replica> {
        match step {
            Step::Objects(changes) => {
                let updates: Vec<Value> = changes
                    .iter()
                    .map(|&(id, value, patch)| match (value, patch) {
                        (None, _) => json!({"objectId": IDS[id], "patch": null}),
                        (Some(n), true) => json!({"objectId": IDS[id], "patch": {"n": n}}),
                        (Some(n), false) => json!({"objectId": IDS[id], "state": n > 0}),
                    })
                    .collect();
                self.send(json!({"type": "MULTI_STATE_UPDATE", "data": {"updates": updates}}));
            }
            Step::Shared(key, value) => {
                let patch = json!({ format!("k{key}"): value });
                self.send(
                    json!({"type": "SHARED_STATE_UPDATE", "data": {"sharedStatePatch": patch}}),
                );
            }
            Step::Clear => {
                let controller = self.controller.clone();
                let socket = self.h.socket(&controller);
                let left = self.h.leave(socket);
                self.persist(&left.persist);
                self.h.now += Config::default().timings.offline_grace_ms + 1;
                let alarm = self.h.alarm(&Answers::default());
                self.persist(&alarm.persist);
            }
            Step::Restart => {
                let (config, now) = (self.h.room.config().clone(), self.h.now);
                let airport = self.store.restore(icao());
                let (mut room, effects) =
                    Room::restore(config, airport, self.store.schedule, [], now);
                room.set_equivalence(self.grouping.clone());
                self.h.room = room;
                self.persist(&effects.persist);
            }
            Step::Regroup(labels) => {
                let grouping = grouping(labels);
                self.h.room.regroup(grouping.clone());
                // What storage::set_points does with the floor, by the same rule.
                if grouping != self.grouping {
                    let floor = self.store.seq + 1;
                    self.store.resume_floor = self.store.resume_floor.max(floor);
                    self.store.tombstones.retain(|_, seq| *seq > floor);
                }
                self.grouping = grouping;
            }
            Step::Take => return Some(Replica::of(&self.connect(Some(&ResumeRequest::Fresh)))),
        }
        None
    }
}

fn icao() -> Icao {
    Icao::parse("EGLL").unwrap()
}

fn id() -> HistoryId {
    HistoryId::parse("0123456789abcdef").unwrap()
}

/// Brings `replica` up to date by a resume and checks it against the full state; returns
/// whether the server resumed.
fn check(world: &mut World, replica: &Replica) -> Result<bool, TestCaseError> {
    let history = HistoryId::parse(replica.history.as_deref().unwrap()).unwrap();
    let resume = ResumeRequest::From {
        history,
        seq: replica.seq,
    };
    let data = world.connect(Some(&resume));
    let full = Replica::of(&world.connect(Some(&ResumeRequest::Fresh)));
    let resumable = world.h.airport().history().floor() <= replica.seq;
    prop_assert_eq!(data.resumed_from.is_some(), resumable);
    let mut resumed = replica.clone();
    resumed.apply(&data);
    prop_assert_eq!(&resumed, &full);
    Ok(data.resumed_from.is_some())
}

/// Connects resuming `replica`, and the same from another history and from the future, at the
/// airport woken from storage without reading its objects: the same effects as at one that
/// read them (and the same snapshot after), from only the rows changed after the replica's
/// `seq` when the log can serve it, the objects left unread.
fn check_unread(world: &World, replica: &Replica) -> Result<(), TestCaseError> {
    let mut airport = world.store.restore(icao());
    airport.set_equivalence(world.grouping.clone());
    let history = HistoryId::parse(replica.history.as_deref().unwrap()).unwrap();
    let seq = world.store.seq;
    for (history, from) in [
        (history, replica.seq),
        (HistoryId::from_bits(7), replica.seq),
        (id(), seq + 1),
    ] {
        let config = world.h.room.config().clone();
        let (mut read, _) = Harness::woken(config.clone(), airport.clone(), &[], true);
        let (mut unread, _) = Harness::woken(config, airport.clone(), &[], false);
        let resumable = airport.history().can_resume(&history, from, seq);
        let resume = ResumeRequest::From { history, seq: from };
        // Twice: the second resume from the same `seq` reads nothing more.
        let mut connected = Vec::new();
        for _ in 0..2 {
            let at_read = read.connect_resuming(&world.observer, Some(&resume));
            let at_unread = unread.connect_resuming(&world.observer, Some(&resume));
            prop_assert_eq!(&at_read, &at_unread);
            connected.push(at_read);
        }
        let count = airport.object_count();
        if resumable && count > 0 {
            prop_assert_eq!(&unread.changed_reads, &vec![from]);
            prop_assert_eq!(unread.objects_reads, 0);
            prop_assert!(!unread.airport().objects_read());
            prop_assert_eq!(unread.airport().object_count(), count);
        } else {
            prop_assert!(unread.changed_reads.is_empty());
            prop_assert_eq!(unread.objects_reads, usize::from(count > 0));
        }
        let (socket, _) = connected.remove(0).unwrap();
        let get_state = airport_protocol::packet::Frame::Text(r#"{"type":"GET_STATE"}"#);
        let now = read.now;
        prop_assert_eq!(
            read.frame(socket, get_state, now),
            unread.frame(socket, get_state, now)
        );
        prop_assert_eq!(read.airport(), unread.airport());
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn a_replica_and_its_resume_are_the_full_state(
        steps in prop::collection::vec(step(), 1..40),
    ) {
        let mut world = World::new(id());
        let mut replicas = vec![Replica::of(&world.connect(Some(&ResumeRequest::Fresh)))];
        for step in &steps {
            replicas.extend(world.run(step));
            world.store.check(world.h.airport());
        }
        for replica in &replicas {
            check(&mut world, replica)?;
            check_unread(&world, replica)?;
        }
        // And after a restart, from what storage holds.
        world.run(&Step::Restart);
        for replica in &replicas {
            check(&mut world, replica)?;
        }
        // A replica of another history, or from the future, gets the full state.
        let last = replicas.last().unwrap().clone();
        for (history, seq) in [(HistoryId::from_bits(7), last.seq), (id(), world.h.airport().seq() + 1)] {
            let data = world.connect(Some(&ResumeRequest::From { history, seq }));
            prop_assert_eq!(data.resumed_from, None);
            prop_assert_eq!(Replica::of(&data), Replica::of(&world.connect(None)).with_history(&data));
        }
    }
}

impl Replica {
    fn with_history(self, data: &InitialStateData) -> Replica {
        Replica {
            history: data.history.clone(),
            ..self
        }
    }
}

#[test]
fn a_fresh_seq_resumes_empty_and_deployed_clients_see_no_change() {
    let mut world = World::new(id());
    world.send(json!({"type": "STATE_UPDATE", "data": {"objectId": "A", "state": true}}));
    world.send(json!({"type": "SHARED_STATE_UPDATE", "data": {"sharedStatePatch": {"k": 1}}}));
    let taken = Replica::of(&world.connect(Some(&ResumeRequest::Fresh)));
    assert_eq!(taken.history.as_deref(), Some(id().as_str()));
    let resume = ResumeRequest::From {
        history: id(),
        seq: taken.seq,
    };
    let data = world.connect(Some(&resume));
    assert_eq!(data.resumed_from, Some(taken.seq));
    assert!(data.objects.is_empty());
    assert_eq!(data.shared_state, None, "unchanged, so left out");
    assert_eq!(data.deleted, Some(vec![]));
    // Without `resume`, the packet has none of the new members.
    let observer = world.observer.clone();
    let (_, effects) = world.h.connect_resuming(&observer, None).unwrap();
    let text = match &effects.actions[0] {
        Action::Send { packet, .. } => packet.clone(),
        other => panic!("{other:?}"),
    };
    for member in ["history", "resumedFrom", "deleted"] {
        assert!(!text.contains(member), "{text}");
    }
    assert!(text.contains(r#""sharedState":{"k":1}"#));
}

#[test]
fn a_deletion_and_a_change_after_the_replica_are_resumed() {
    let mut world = World::new(id());
    let set = |id: &str| json!({"type": "STATE_UPDATE", "data": {"objectId": id, "state": true}});
    world.send(set("A"));
    world.send(set("B"));
    let taken = Replica::of(&world.connect(Some(&ResumeRequest::Fresh)));
    world.send(json!({"type": "STATE_UPDATE", "data": {"objectId": "A", "patch": null}}));
    world.send(set("C"));
    let resume = ResumeRequest::From {
        history: id(),
        seq: taken.seq,
    };
    let data = world.connect(Some(&resume));
    let ids: Vec<&str> = data.objects.iter().map(|o| o.id.0.as_str()).collect();
    assert_eq!(ids, ["C"]);
    assert_eq!(data.deleted.as_ref().unwrap()[0].0, "A");
    let mut resumed = taken;
    resumed.apply(&data);
    assert_eq!(
        resumed,
        Replica::of(&world.connect(Some(&ResumeRequest::Fresh)))
    );
}

#[test]
fn a_restored_history_resumes_across_a_restart() {
    let mut world = World::new(id());
    world.send(json!({"type": "STATE_UPDATE", "data": {"objectId": "A", "state": true}}));
    let taken = Replica::of(&world.connect(Some(&ResumeRequest::Fresh)));
    world.send(json!({"type": "STATE_UPDATE", "data": {"objectId": "A", "patch": null}}));
    world.run(&Step::Restart);
    let history: &History = world.h.airport().history();
    assert_eq!(history.tombstones().count(), 1, "the deletion survived");
    assert!(
        check(&mut world, &taken).unwrap(),
        "resumed, not a full state"
    );
}
