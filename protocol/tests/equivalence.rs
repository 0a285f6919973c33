//! Equivalent points in the room: a change of one is one `seq` for the whole group, stored and
//! broadcast together; its sender is told what the group made of it that it did not ask for;
//! snapshots show a group alike; a failed commit changes none of it.

use airport_protocol::StoreOp;
use airport_protocol::effects::{Action, To};
use airport_protocol::equivalence::Equivalence;
use airport_protocol::limits::MAX_OBJECTS;
use airport_protocol::outbound::Stamp;
use airport_protocol::outbox::Outbox;
use airport_protocol::packet::Frame;
use airport_protocol::{Airport, Role, Room};
use airport_testkit::harness::{Audience, Harness, Sent, broadcast, error_code, parse, who};
use airport_testkit::store::Store;
use airport_testkit::store::objects_of;
use serde_json::{Value, json};

fn grouped(groups: &[&[&str]]) -> Equivalence {
    Equivalence::from_groups(
        groups
            .iter()
            .map(|ids| ids.iter().map(|id| id.to_string()).collect())
            .collect(),
    )
}

/// A room whose stopbar `SB_A` is also `SB_B` (the same light drawn twice).
fn duplicated() -> Harness {
    let mut h = Harness::new();
    h.room.set_equivalence(grouped(&[&["SB_A", "SB_B"]]));
    h
}

fn update(id: &str, state: Value) -> Value {
    json!({"type": "STATE_UPDATE", "data": {"objectId": id, "state": state}})
}

/// `(objectId, state)` of a change packet's items (`null` for a deletion).
fn items(packet: &Value) -> Vec<(String, Value)> {
    let items = match packet["type"].as_str() {
        Some("STATE_UPDATE") => vec![packet["data"].clone()],
        _ => packet["data"]["updates"].as_array().unwrap().clone(),
    };
    items
        .iter()
        .map(|item| {
            let id = item["objectId"].as_str().unwrap().to_owned();
            (id, item.get("state").cloned().unwrap_or(Value::Null))
        })
        .collect()
}

fn pairs(expected: &[(&str, Value)]) -> Vec<(String, Value)> {
    expected
        .iter()
        .map(|(id, state)| (id.to_string(), state.clone()))
        .collect()
}

fn state_of(h: &Harness, id: &str) -> Option<Value> {
    objects_of(h.airport()).get(id).map(|r| r.state.clone())
}

fn reply(sent: &Sent) -> Value {
    parse(sent.reply.as_ref().expect("a reply to the sender"))
}

#[test]
fn one_change_of_a_point_is_one_seq_for_its_whole_group() {
    let mut h = duplicated();
    let c = who(Role::Controller, "1000001");
    let sent = h.send(&c, update("SB_A", json!(true)));
    let writes: Vec<&str> = sent
        .persist
        .iter()
        .filter_map(|op| op.object_write().map(|(id, _)| id))
        .collect();
    assert_eq!(writes, ["SB_A", "SB_B"], "both stored, the named one first");
    assert_eq!(sent.persist.last(), Some(&StoreOp::SetSeq(1)));
    let (audience, packet) = broadcast(&sent).unwrap();
    assert_eq!(audience, Audience::Others);
    assert_eq!(packet["type"], "MULTI_STATE_UPDATE");
    assert_eq!(packet["seq"], 1);
    assert_eq!(
        items(&packet),
        pairs(&[("SB_A", json!(true)), ("SB_B", json!(true))])
    );
    // The sender applied SB_A itself; it is told of SB_B, with the same seq.
    let echo = reply(&sent);
    assert_eq!(echo["type"], "STATE_UPDATE");
    assert_eq!(echo["seq"], 1);
    assert_eq!(echo["data"]["controllerId"], "1000001");
    assert_eq!(items(&echo), pairs(&[("SB_B", json!(true))]));
    assert_eq!(h.airport().seq(), 1);

    // A point without equivalents changes as it always did: alone, nothing back.
    let sent = h.send(&c, update("SB_LONE", json!(true)));
    assert_eq!(sent.reply, None);
    assert_eq!(broadcast(&sent).unwrap().1["type"], "STATE_UPDATE");
    assert_eq!(h.airport().seq(), 2);
}

#[test]
fn a_batch_naming_both_equivalents_ends_as_its_last_item_says_and_the_sender_hears_the_rest() {
    let mut h = duplicated();
    let c = who(Role::Controller, "1000001");
    // vatSys's bare array: the stopbar on, then its duplicate off.
    let sent = h.send(
        &c,
        json!({"type": "MULTI_STATE_UPDATE", "data": [
            {"objectId": "SB_A", "state": true},
            {"objectId": "SB_B", "state": false},
            {"objectId": "LO_1", "state": true},
        ]}),
    );
    assert_eq!(h.airport().seq(), 1, "one seq for the batch and its groups");
    assert_eq!(state_of(&h, "SB_A"), Some(json!(false)));
    assert_eq!(state_of(&h, "SB_B"), Some(json!(false)));
    let (_, packet) = broadcast(&sent).unwrap();
    assert_eq!(
        items(&packet),
        pairs(&[
            ("SB_A", json!(true)),
            ("SB_B", json!(true)),
            ("SB_B", json!(false)),
            ("SB_A", json!(false)),
            ("LO_1", json!(true)),
        ])
    );
    // It asked SB_A on, but its own later item turned it off through SB_B; both were reached
    // by an equivalent, so it is told where both ended.
    assert_eq!(
        items(&reply(&sent)),
        pairs(&[("SB_B", json!(false)), ("SB_A", json!(false))])
    );
    // Only the last write of each object is stored.
    let mut store = Store::default();
    store.apply(&airport_protocol::outbox::compact(sent.persist));
    store.check(h.airport());
}

#[test]
fn a_patch_applies_to_the_groups_most_recent_state_and_a_deletion_to_every_member() {
    let mut h = Harness::new();
    let c = who(Role::Controller, "1000001");
    // Set before they were grouped: SB_B changed last.
    h.send(&c, update("SB_A", json!({"on": true, "level": 1})));
    h.send(&c, update("SB_B", json!({"on": false})));
    h.room
        .set_equivalence(grouped(&[&["SB_A", "SB_B", "SB_C"]]));
    let sent = h.send(
        &c,
        json!({"type": "STATE_UPDATE", "data": {"objectId": "SB_A", "patch": {"level": 2}}}),
    );
    let merged = json!({"on": false, "level": 2});
    for id in ["SB_A", "SB_B", "SB_C"] {
        assert_eq!(state_of(&h, id), Some(merged.clone()), "{id}");
    }
    assert_eq!(
        items(&reply(&sent)),
        pairs(&[("SB_B", merged.clone()), ("SB_C", merged)])
    );

    let sent = h.send(
        &c,
        json!({"type": "STATE_UPDATE", "data": {"objectId": "SB_C", "patch": null}}),
    );
    assert!(objects_of(h.airport()).is_empty());
    assert_eq!(h.airport().seq(), 4);
    assert_eq!(
        items(&broadcast(&sent).unwrap().1),
        pairs(&[
            ("SB_C", Value::Null),
            ("SB_A", Value::Null),
            ("SB_B", Value::Null)
        ])
    );
    // Deleting a group with nothing left does nothing, as for any missing object.
    let sent = h.send(
        &c,
        json!({"type": "STATE_UPDATE", "data": {"objectId": "SB_A", "patch": null}}),
    );
    assert_eq!((sent.broadcast, sent.reply), (None, None));
    assert_eq!(h.airport().seq(), 4);
}

#[test]
fn snapshots_show_a_group_alike_as_soon_as_it_is_grouped() {
    let mut h = Harness::new();
    let c = who(Role::Controller, "1000001");
    let p = who(Role::Pilot, "1000011");
    h.send(&c, update("SB_A", json!(true)));
    h.send(&c, update("SB_B", json!(false)));
    let objects = |h: &mut Harness| {
        let sent = h.send(&p, json!({"type": "GET_STATE"}));
        let snapshot = reply(&sent)["data"]["objects"].clone();
        snapshot
            .as_array()
            .unwrap()
            .iter()
            .map(|o| (o["id"].as_str().unwrap().to_owned(), o["state"].clone()))
            .collect::<Vec<_>>()
    };
    let before = objects(&mut h);
    assert_eq!(
        before,
        pairs(&[("SB_A", json!(true)), ("SB_B", json!(false))])
    );
    // The points table now says SB_A, SB_B and SB_C are one light: SB_B changed last.
    h.room
        .set_equivalence(grouped(&[&["SB_A", "SB_B", "SB_C"]]));
    let off = pairs(&[
        ("SB_A", json!(false)),
        ("SB_B", json!(false)),
        ("SB_C", json!(false)),
    ]);
    assert_eq!(
        objects(&mut h),
        off,
        "no seq moved, yet the snapshot follows"
    );
    let (socket, joined) = h.connect(&p);
    let initial = parse(joined.sent_to(To::Socket(socket)).next().unwrap());
    assert_eq!(initial["data"]["objects"].as_array().unwrap().len(), 3);
    assert_eq!(initial["data"]["seq"], 2);
    let public = parse(&h.public_state());
    assert!(
        public["objects"]
            .as_array()
            .unwrap()
            .iter()
            .all(|o| o["state"] == false)
    );
    // Ungrouped again: each shows its own state.
    h.room.set_equivalence(Equivalence::default());
    assert_eq!(objects(&mut h), before);
}

#[test]
fn a_group_change_beyond_the_object_limit_is_refused_whole() {
    let mut objects = std::collections::BTreeMap::new();
    for i in 0..MAX_OBJECTS - 1 {
        let record = airport_protocol::ObjectRecord {
            state: json!(true),
            controller_id: airport_protocol::Cid::parse("1000001").unwrap(),
            updated_at: 1,
            seq: 0,
        };
        objects.insert(format!("OBJ_{i}"), record);
    }
    let airport = Airport::restore(
        airport_protocol::Icao::parse("EGLL").unwrap(),
        objects,
        serde_json::Map::new(),
        7,
        None,
    );
    let mut h = Harness::with(Default::default(), airport);
    h.room.set_equivalence(grouped(&[&["SB_A", "SB_B"]]));
    let c = who(Role::Controller, "1000001");
    h.socket(&c);
    let before = h.airport().clone();
    let sent = h.send(&c, update("SB_A", json!(true)));
    assert_eq!(error_code(&sent).as_deref(), Some("LIMIT_EXCEEDED"));
    assert!(h.airport() == &before, "neither point was added");
    assert_eq!(objects_of(h.airport()).len(), MAX_OBJECTS - 1);
}

/// A restart while a group change is being committed: the commit is one transaction, so what
/// a restart restores holds every member changed or none.
#[test]
fn a_group_change_is_committed_whole_or_not_at_all() {
    let mut h = duplicated();
    let c = who(Role::Controller, "1000001");
    let p = who(Role::Pilot, "1000011");
    h.socket(&p);
    let socket = h.socket(&c);
    let mut store = Store::of(h.airport());
    let frame =
        r#"{"type":"STATE_UPDATE","requestId":"r1","data":{"objectId":"SB_A","state":true}}"#;
    let stamp = Stamp {
        airport: "EGLL",
        now: h.now,
    };

    // The commit fails (the object restarts before it is durable): nobody hears of the change,
    // the sender gets ERROR INTERNAL, and the restarted airport has neither point changed.
    let mut outbox = Outbox::default();
    outbox.push(h.frame(socket, Frame::Text(frame), h.now), h.now);
    let (_, batch) = outbox.take();
    let actions = batch.deliver(false, stamp);
    let [Action::Send { to, packet }] = &actions[..] else {
        panic!("only an error, got {actions:?}");
    };
    assert_eq!(*to, To::Socket(socket));
    assert_eq!(parse(packet)["data"]["code"], "INTERNAL");
    let restart = |store: &Store, h: &Harness| {
        let airport = Airport::restore(
            h.airport().icao().clone(),
            store.objects.clone(),
            store.shared.clone(),
            store.seq,
            store.offline_since,
        );
        let (mut room, _) =
            Room::restore(h.room.config().clone(), airport, store.schedule, [], h.now);
        room.set_equivalence(h.airport().equivalence().clone());
        room
    };
    let room = restart(&store, &h);
    assert!(objects_of(room.airport()).is_empty());
    assert_eq!(room.airport().seq(), 0);

    // The same change committed: one write holds both points and the seq.
    let mut h = duplicated();
    let socket = h.socket(&c);
    h.socket(&p);
    let mut outbox = Outbox::default();
    outbox.push(h.frame(socket, Frame::Text(frame), h.now), h.now);
    let (writes, batch) = outbox.take();
    store.apply(&writes);
    let room = restart(&store, &h);
    assert_eq!(objects_of(room.airport()), objects_of(h.airport()));
    assert_eq!(objects_of(room.airport()).len(), 2);
    assert_eq!(room.airport().seq(), 1);
    let actions = batch.deliver(true, stamp);
    let to: Vec<To> = actions
        .iter()
        .map(|a| match a {
            Action::Send { to, .. } => *to,
            Action::Close { .. } => panic!("no close"),
        })
        .collect();
    assert_eq!(
        to,
        [
            To::All {
                except: Some(socket)
            },
            To::Socket(socket)
        ]
    );
}

/// Frames sharing a commit: pilots get the group changes as one packet whose `seqFrom`..`seq`
/// has no gap; controllers each change; its sender each echo right after its change.
#[test]
fn coalesced_group_changes_keep_seq_without_gaps() {
    let mut h = duplicated();
    let c = who(Role::Controller, "1000001");
    let socket = h.socket(&c);
    let mut outbox = Outbox::default();
    for state in [true, false] {
        h.now += 1;
        let text = update("SB_A", json!(state)).to_string();
        outbox.push(h.frame(socket, Frame::Text(&text), h.now), h.now);
    }
    let (_, batch) = outbox.take();
    let stamp = Stamp {
        airport: "EGLL",
        now: h.now,
    };
    let sends: Vec<(To, Value)> = batch
        .deliver(true, stamp)
        .into_iter()
        .map(|a| match a {
            Action::Send { to, packet } => (to, parse(&packet)),
            Action::Close { .. } => panic!("no close"),
        })
        .collect();
    let controllers = To::Controllers {
        except: Some(socket),
    };
    let summary: Vec<(To, Value, Value)> = sends
        .iter()
        .map(|(to, p)| (*to, p["seq"].clone(), p["seqFrom"].clone()))
        .collect();
    assert_eq!(
        summary,
        [
            (controllers, json!(1), Value::Null),
            (To::Socket(socket), json!(1), Value::Null),
            (controllers, json!(2), Value::Null),
            (To::Socket(socket), json!(2), Value::Null),
            (To::PilotsAndObservers, json!(2), json!(1)),
        ]
    );
    assert_eq!(
        items(&sends[4].1),
        pairs(&[
            ("SB_A", json!(true)),
            ("SB_B", json!(true)),
            ("SB_A", json!(false)),
            ("SB_B", json!(false)),
        ])
    );
}

mod properties {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    /// One item: an object of `A`..`E` (`A`, `B`, `C` one light, `D`, `E` another), and a
    /// state, a patch or a deletion.
    fn item() -> impl Strategy<Value = Value> {
        let id = prop::sample::select(vec!["A", "B", "C", "D", "E"]);
        let op = prop_oneof![
            any::<bool>().prop_map(|on| json!({"state": on})),
            (0..3i32).prop_map(|level| json!({"state": {"level": level}})),
            (0..3i32).prop_map(|level| json!({"patch": {"level": level, "on": null}})),
            Just(json!({"patch": null})),
        ];
        (id, op).prop_map(|(id, mut op)| {
            op["objectId"] = json!(id);
            op
        })
    }

    proptest! {
        /// Whatever a controller sends, every group's members stay alike (the same record, or
        /// all absent), each accepted packet is one `seq`, what is stored is what is held, and
        /// the sender's replica (its items, then what it is told) ends as the airport.
        #[test]
        fn groups_stay_alike_and_the_sender_ends_where_the_airport_is(
            packets in prop::collection::vec(prop::collection::vec(item(), 1..4), 1..12)
        ) {
            let mut h = Harness::new();
            h.room.set_equivalence(grouped(&[&["A", "B", "C"], &["D", "E"]]));
            let c = who(Role::Controller, "1000001");
            let mut store = Store::default();
            for updates in packets {
                let seq = h.airport().seq();
                let before: BTreeMap<String, Value> = objects_of(h.airport())
                    .iter()
                    .map(|(id, r)| (id.clone(), r.state.clone()))
                    .collect();
                let packet = json!({"type": "MULTI_STATE_UPDATE", "data": {"updates": updates}});
                let sent = h.send(&c, packet);
                store.apply(&sent.persist);
                store.check(h.airport());
                let changed = sent.broadcast.is_some();
                prop_assert_eq!(h.airport().seq(), seq + u64::from(changed));
                let objects = objects_of(h.airport());
                for group in h.airport().equivalence().groups() {
                    let first = objects.get(&group[0]);
                    for id in group {
                        prop_assert_eq!(objects.get(id), first, "{} differs in {:?}", id, group);
                    }
                }
                // The sender's copy: what it asked, applied by itself in order, then what it
                // was told, ends where the airport is.
                let mut replica = before;
                for update in &updates {
                    let id = update["objectId"].as_str().unwrap().to_owned();
                    match (update.get("state"), update.get("patch")) {
                        (Some(state), _) => {
                            replica.insert(id, state.clone());
                        }
                        (_, Some(Value::Null)) => {
                            replica.remove(&id);
                        }
                        (_, Some(patch)) => {
                            let mut state = match replica.get(&id) {
                                Some(Value::Object(state)) => Value::Object(state.clone()),
                                _ => json!({}),
                            };
                            json_patch::merge(&mut state, patch);
                            replica.insert(id, state);
                        }
                        _ => unreachable!(),
                    }
                }
                if let Some(reply) = &sent.reply {
                    let told = parse(reply);
                    prop_assert_eq!(told["seq"].as_u64(), Some(seq + 1));
                    for (id, state) in items(&told) {
                        match state {
                            Value::Null => replica.remove(&id),
                            state => replica.insert(id, state),
                        };
                    }
                }
                let stored: BTreeMap<String, Value> =
                    objects.iter().map(|(id, r)| (id.clone(), r.state.clone())).collect();
                prop_assert_eq!(replica, stored);
            }
        }
    }
}
