//! The state machine's semantics, natively: what each packet does to an airport and who hears.

use airport_protocol::config::Timings;
use airport_protocol::effects::To;
use airport_protocol::room::Answers;
use airport_protocol::{CloseCode, Role};
use airport_testkit::harness::{Audience, Harness, Sent, error_code, parse, who};
use airport_testkit::store::objects_of;
use serde_json::{Value, json};

#[test]
fn state_update_replaces_patches_and_deletes() {
    let mut h = Harness::new();
    let c = who(Role::Controller, "1000001");
    let e = h.send(
        &c,
        json!({"type": "STATE_UPDATE", "data": {"objectId": "SB_1", "state": true}}),
    );
    let (audience, packet) = e.broadcast.unwrap();
    assert_eq!(audience, Audience::Others);
    let packet = parse(&packet);
    assert_eq!(
        packet["data"],
        json!({"objectId": "SB_1", "state": true, "controllerId": "1000001"})
    );
    assert_eq!(packet["seq"], 1);

    // A patch on a boolean state starts from {}.
    let e = h.send(&c, json!({"type": "STATE_UPDATE", "data": {"objectId": "SB_1", "patch": {"a": {"b": 1}, "c": 2}}}));
    assert_eq!(
        parse(&e.broadcast.unwrap().1)["data"]["state"],
        json!({"a": {"b": 1}, "c": 2})
    );
    let e = h.send(
        &c,
        json!({"type": "STATE_UPDATE", "data": {"objectId": "SB_1", "patch": {"a": null}}}),
    );
    assert_eq!(
        parse(&e.broadcast.unwrap().1)["data"]["state"],
        json!({"c": 2})
    );

    let e = h.send(
        &c,
        json!({"type": "STATE_UPDATE", "data": {"objectId": "SB_1", "patch": null}}),
    );
    let packet = parse(&e.broadcast.unwrap().1);
    assert_eq!(
        packet["data"],
        json!({"objectId": "SB_1", "patch": null, "controllerId": "1000001"})
    );
    assert_eq!(packet["seq"], 4);
    assert!(objects_of(h.airport()).is_empty());

    // Deleting what does not exist changes nothing and is not broadcast.
    let e = h.send(
        &c,
        json!({"type": "STATE_UPDATE", "data": {"objectId": "SB_1", "patch": null}}),
    );
    assert!(e.broadcast.is_none() && e.reply.is_none() && e.persist.is_empty());
    assert_eq!(h.airport().seq(), 4);
}

#[test]
fn multi_state_update_is_all_or_nothing_and_names_the_bad_item() {
    let mut h = Harness::new();
    let c = who(Role::Controller, "1000001");
    let e = h.send(
        &c,
        json!({"type": "MULTI_STATE_UPDATE", "requestId": "m1", "data": {"updates": [
            {"objectId": "A", "state": true},
            {"objectId": "B", "state": true},
            {"objectId": "C", "state": 7},
        ]}}),
    );
    let reply = parse(e.reply.as_ref().unwrap());
    assert_eq!(reply["data"]["code"], "INVALID_PACKET");
    assert_eq!(reply["requestId"], "m1");
    assert!(
        reply["data"]["message"]
            .as_str()
            .unwrap()
            .contains("updates[2]")
    );
    assert!(objects_of(h.airport()).is_empty());
    assert_eq!(h.airport().seq(), 0);

    let e = h.send(
        &c,
        json!({"type": "MULTI_STATE_UPDATE", "data": {"updates": [
            {"objectId": "A", "state": true},
            {"objectId": "A", "patch": {"x": 1}},
            {"objectId": "Z", "patch": null},
        ]}}),
    );
    let packet = parse(&e.broadcast.unwrap().1);
    assert_eq!(packet["seq"], 1);
    assert_eq!(
        packet["data"]["updates"],
        json!([
            {"objectId": "A", "state": true, "controllerId": "1000001"},
            {"objectId": "A", "state": {"x": 1}, "controllerId": "1000001"},
        ])
    );
}

#[test]
fn a_batch_refused_after_some_items_were_applied_is_undone() {
    let mut h = Harness::new();
    let c = who(Role::Controller, "1000001");
    h.send(
        &c,
        json!({"type": "MULTI_STATE_UPDATE", "data": {"updates": [
            {"objectId": "A", "state": {"a": 1}},
            {"objectId": "B", "state": true},
            {"objectId": "C", "state": false},
        ]}}),
    );
    let before = h.airport().clone();
    // Every kind of write to existing and new objects, some twice, then an item that only the
    // size check after the merge refuses (4 characters each sent, 18 once serialized).
    let numbers = vec!["1e15"; 3_000].join(",");
    let packet = format!(
        r#"{{"type":"MULTI_STATE_UPDATE","data":{{"updates":[
            {{"objectId":"A","patch":{{"b":2}}}},
            {{"objectId":"B","patch":null}},
            {{"objectId":"D","state":true}},
            {{"objectId":"A","state":false}},
            {{"objectId":"B","state":{{"back":true}}}},
            {{"objectId":"D","patch":null}},
            {{"objectId":"C","patch":{{"n":[{numbers}]}}}}]}}}}"#
    );
    let e = h.send_text(&c, &packet);
    assert_eq!(error_code(&e).as_deref(), Some("LIMIT_EXCEEDED"));
    assert!(e.persist.is_empty() && e.broadcast.is_none());
    assert!(e.reply.unwrap().contains("updates[6]"));
    assert_eq!(h.airport(), &before);
}

#[test]
fn roles_are_enforced_and_audiences_are_right() {
    let mut h = Harness::new();
    let pilot = who(Role::Pilot, "1000011");
    let observer = who(Role::Observer, "1000021");
    for from in [&pilot, &observer] {
        for kind in ["STATE_UPDATE", "MULTI_STATE_UPDATE", "SHARED_STATE_UPDATE"] {
            let e = h.send(from, json!({"type": kind, "data": {}}));
            assert_eq!(error_code(&e).as_deref(), Some("FORBIDDEN"), "{kind}");
        }
    }
    let e = h.send(
        &observer,
        json!({"type": "STOPBAR_CROSSING", "data": {"objectId": "SB_1"}}),
    );
    assert_eq!(error_code(&e).as_deref(), Some("FORBIDDEN"));
    let e = h.send(
        &pilot,
        json!({"type": "STOPBAR_CROSSING", "data": {"objectId": "SB_1"}}),
    );
    let (audience, packet) = e.broadcast.unwrap();
    assert_eq!(audience, Audience::Controllers);
    assert_eq!(
        parse(&packet)["data"],
        json!({"objectId": "SB_1", "pilotId": "1000011", "controllerId": "1000011"})
    );

    let c = who(Role::Controller, "1000001");
    let e = h.send(
        &c,
        json!({"type": "SHARED_STATE_UPDATE", "data": {"sharedStatePatch": {"r": "27L"}}}),
    );
    assert_eq!(e.broadcast.unwrap().0, Audience::Everyone);
    let e = h.send(&c, json!({"type": "CLOSE"}));
    assert_eq!(e.close, Some(CloseCode::Requested));
}

#[test]
fn presence_is_per_person_and_offline_grace_is_tracked() {
    let mut h = Harness::new();
    let timings = Timings::default();
    let c = who(Role::Controller, "1000001");
    let (first, joined) = h.connect(&c);
    let announce = joined.sent_to(To::All {
        except: Some(first),
    });
    assert_eq!(announce.count(), 1);
    let initial = parse(joined.sent_to(To::Socket(first)).next().unwrap());
    assert_eq!(initial["data"]["controllers"], json!(["1000001"]));
    assert_eq!(initial["data"]["offline"], false);
    let (second, joined) = h.connect(&c);
    assert_eq!(
        joined
            .sent_to(To::All {
                except: Some(second)
            })
            .count(),
        0,
        "a second socket is not announced"
    );

    h.send(
        &c,
        json!({"type": "STATE_UPDATE", "data": {"objectId": "SB_1", "state": true}}),
    );
    h.now = 3_000;
    assert!(h.leave(second).actions.is_empty());
    h.now = 4_000;
    let last = h.leave(first);
    let packet = parse(
        last.sent_to(To::All {
            except: Some(first),
        })
        .next()
        .unwrap(),
    );
    assert_eq!(packet["type"], "CONTROLLER_DISCONNECT");
    assert_eq!(h.airport().offline_since(), Some(4_000));

    // The heartbeat started with the first socket is due first; with no socket left, the
    // alarm then stops it and waits for the end of the grace period.
    let heartbeat = 1_000 + timings.heartbeat_interval_ms;
    assert_eq!(h.room.next_wake(), Some(heartbeat));
    h.now = heartbeat;
    let quiet = h.alarm(&Answers::default());
    assert_eq!(quiet.actions, vec![]);
    assert_eq!(h.room.next_wake(), Some(4_000 + timings.offline_grace_ms));
    // Before the grace period ends nothing is cleared; after, everything is, and seq moves.
    h.now = 4_000 + timings.offline_grace_ms - 1;
    assert_eq!(h.alarm(&Answers::default()).persist, vec![]);
    let seq = h.airport().seq();
    h.now += 1;
    h.alarm(&Answers::default());
    assert!(objects_of(h.airport()).is_empty());
    assert_eq!(h.airport().seq(), seq + 1);
    assert_eq!(h.airport().offline_since(), None);
    assert_eq!(h.room.next_wake(), None);
}

#[test]
fn packet_size_counts_characters_not_bytes() {
    let mut h = Harness::new();
    let c = who(Role::Controller, "1000001");
    let padding = |n: usize| "é".repeat(n);
    let envelope = json!({"type": "HEARTBEAT", "pad": ""}).to_string();
    let base = envelope.chars().count();
    let fits = json!({"type": "HEARTBEAT", "pad": padding(50_000 - base)}).to_string();
    assert_eq!(fits.chars().count(), 50_000);
    assert_eq!(
        parse(h.send(&c, parse(&fits)).reply.as_ref().unwrap())["type"],
        "HEARTBEAT_ACK"
    );
    let over = json!({"type": "HEARTBEAT", "pad": padding(50_001 - base)});
    assert_eq!(
        error_code(&h.send(&c, over)).as_deref(),
        Some("PACKET_TOO_LARGE")
    );
}

#[test]
fn rate_limited_errors_echo_the_request_id_and_floods_close() {
    let mut h = Harness::new();
    let c = who(Role::Observer, "1000021");
    h.step_ms = 0;
    let mut last = Sent::default();
    for i in 0..200 {
        last = h.send(
            &c,
            json!({"type": "HEARTBEAT", "requestId": format!("q{i}")}),
        );
        if last.close.is_some() {
            break;
        }
        if i == 100 {
            let reply = parse(last.reply.as_ref().unwrap());
            assert_eq!(reply["data"]["code"], "RATE_LIMITED");
            assert_eq!(reply["requestId"], "q100");
        }
    }
    assert_eq!(last.close, Some(CloseCode::Flooding));
}

#[test]
fn a_replaced_state_is_held_to_the_object_size_limit() {
    let mut h = Harness::new();
    let c = who(Role::Controller, "1000001");
    // 4 characters each in the packet, 18 once serialized.
    let numbers = vec!["1e15"; 3_000].join(",");
    let packet = format!(
        r#"{{"type":"STATE_UPDATE","data":{{"objectId":"BIG","state":{{"n":[{numbers}]}}}}}}"#
    );
    let e = h.send_text(&c, &packet);
    assert_eq!(error_code(&e).as_deref(), Some("LIMIT_EXCEEDED"));
    assert!(objects_of(h.airport()).is_empty());
}

#[test]
fn numbers_are_kept_exactly() {
    let mut h = Harness::new();
    let c = who(Role::Controller, "1000001");
    let packet = r#"{"type":"SHARED_STATE_UPDATE","data":{"sharedStatePatch":{"v":6.394191070984525e+233}}}"#;
    let e = h.send_text(&c, packet);
    let broadcast = e.broadcast.unwrap().1;
    assert!(broadcast.contains("6.394191070984525e+233"), "{broadcast}");
    // What storage writes reads back to the same value.
    let stored = serde_json::to_string(&h.airport().shared().as_map()["v"]).unwrap();
    let reread: Value = serde_json::from_str(&stored).unwrap();
    assert_eq!(reread, h.airport().shared().as_map()["v"]);
}

#[test]
fn a_batch_stores_each_object_as_the_text_it_broadcasts() {
    use airport_protocol::StoreOp;
    use airport_protocol::outbox;
    let mut h = Harness::new();
    let c = who(Role::Controller, "1000001");
    h.send(
        &c,
        json!({"type": "STATE_UPDATE", "data": {"objectId": "B", "state": {"keep": 1, "drop": 2}}}),
    );
    // The same object twice in one batch: each item is broadcast with the state after it, each
    // write carries that text, and the commit keeps the last. `1e15` serializes longer than it
    // was sent.
    let packet = r#"{"type":"MULTI_STATE_UPDATE","data":{"updates":[
        {"objectId":"A","state":{"n":1e15}},
        {"objectId":"B","patch":{"drop":null,"add":[true]}},
        {"objectId":"A","patch":{"m":"é"}}]}}"#;
    let e = h.send_text(&c, packet);
    let (_, broadcast) = e.broadcast.unwrap();
    let items = parse(&broadcast)["data"]["updates"].clone();
    let states: Vec<String> = items
        .as_array()
        .unwrap()
        .iter()
        .map(|item| item["state"].to_string())
        .collect();
    assert_eq!(
        states,
        [
            r#"{"n":1000000000000000.0}"#,
            r#"{"add":[true],"keep":1}"#,
            r#"{"m":"é","n":1000000000000000.0}"#,
        ]
    );
    let rows: Vec<(&str, &str)> = e
        .persist
        .iter()
        .filter_map(|op| match op {
            StoreOp::PutObject { id, row } => Some((id.as_str(), row.state_json.get())),
            _ => None,
        })
        .collect();
    assert_eq!(
        rows,
        [
            ("A", states[0].as_str()),
            ("B", states[1].as_str()),
            ("A", states[2].as_str())
        ]
    );
    let committed = outbox::compact(e.persist.clone());
    let committed: Vec<&str> = committed
        .iter()
        .filter_map(|op| op.object_write().map(|(id, _)| id))
        .collect();
    assert_eq!(committed, ["B", "A"]);
    for (id, text) in &rows[1..] {
        assert!(broadcast.contains(text), "{text} is not in {broadcast}");
        let reread: Value = serde_json::from_str(text).unwrap();
        assert_eq!(reread, objects_of(h.airport())[*id].state);
    }
}

#[test]
fn the_object_limit_counts_the_items_before_each_creation() {
    use airport_protocol::limits::{MAX_MULTI_UPDATES, MAX_OBJECTS};
    let mut h = Harness::new();
    let c = who(Role::Controller, "1000001");
    for chunk in 0..MAX_OBJECTS / MAX_MULTI_UPDATES {
        let updates: Vec<_> = (0..MAX_MULTI_UPDATES)
            .map(|i| json!({"objectId": format!("O_{}", chunk * MAX_MULTI_UPDATES + i), "state": true}))
            .collect();
        h.send(
            &c,
            json!({"type": "MULTI_STATE_UPDATE", "data": {"updates": updates}}),
        );
    }
    assert_eq!(objects_of(h.airport()).len(), MAX_OBJECTS);
    let create_then_delete = json!({"type": "MULTI_STATE_UPDATE", "data": {"updates": [
        {"objectId": "NEW", "state": true},
        {"objectId": "O_0", "patch": null},
    ]}});
    let e = h.send(&c, create_then_delete);
    assert_eq!(error_code(&e).as_deref(), Some("LIMIT_EXCEEDED"));
    assert!(e.reply.unwrap().contains("updates[0]"));
    let delete_then_create = json!({"type": "MULTI_STATE_UPDATE", "data": {"updates": [
        {"objectId": "O_0", "patch": null},
        {"objectId": "NEW", "state": true},
    ]}});
    let e = h.send(&c, delete_then_create);
    assert_eq!(error_code(&e), None);
    assert!(
        objects_of(h.airport()).contains_key("NEW") && !objects_of(h.airport()).contains_key("O_0")
    );
    assert_eq!(objects_of(h.airport()).len(), MAX_OBJECTS);
}

/// Objects and shared state share one bound: up to it a change passes; past it a change that
/// grows the airport is refused whole, one that shrinks it still passes.
#[test]
fn the_airport_state_bound_refuses_growth_past_its_edge() {
    use airport_protocol::limits::MAX_AIRPORT_STATE_CHARS;
    use airport_protocol::{Airport, Cid, Icao, ObjectRecord};
    let big = |chars: usize| json!({"s": "x".repeat(chars - r#"{"s":""}"#.len())});
    let record = |state| ObjectRecord {
        state,
        controller_id: Cid::parse("1000001").unwrap(),
        updated_at: 0,
        seq: 0,
    };
    let shared: serde_json::Map<String, Value> =
        serde_json::from_value(json!({"graph": "x".repeat(999_000)})).unwrap();
    let shared_chars = 999_000 + r#"{"graph":""}"#.len();
    // Objects of 40,000 characters up to ten short of the bound.
    let mut left = MAX_AIRPORT_STATE_CHARS - shared_chars - 10;
    let mut objects = std::collections::BTreeMap::new();
    while left > 0 {
        let chars = left.min(40_000);
        objects.insert(format!("BIG_{}", objects.len()), record(big(chars)));
        left -= chars;
    }
    let airport = Airport::restore(Icao::parse("EGLL").unwrap(), objects, shared, 7, None);
    assert_eq!(airport.state_chars().unwrap(), MAX_AIRPORT_STATE_CHARS - 10);
    let mut h = Harness::with(Default::default(), airport);
    let c = who(Role::Controller, "1000001");
    let update = |id: &str, state: Value| json!({"type": "STATE_UPDATE", "data": {"objectId": id, "state": state}});
    // Exactly at the bound: accepted.
    let e = h.send(&c, update("EDGE", big(10)));
    assert_eq!(error_code(&e), None);
    assert_eq!(h.airport().state_chars().unwrap(), MAX_AIRPORT_STATE_CHARS);
    // One character more, as an object or as shared state: refused, nothing changes.
    for packet in [
        update("MORE", json!(true)),
        update("EDGE", big(11)),
        json!({"type": "SHARED_STATE_UPDATE", "data": {"sharedStatePatch": {"k": 1}}}),
    ] {
        let e = h.send(&c, packet);
        assert_eq!(error_code(&e).as_deref(), Some("LIMIT_EXCEEDED"));
        assert!(e.reply.unwrap().contains("the limit is 2000000"));
        assert!(e.persist.is_empty() && e.broadcast.is_none());
        assert_eq!(h.airport().state_chars().unwrap(), MAX_AIRPORT_STATE_CHARS);
        assert_eq!(h.airport().seq(), 8);
    }
    // Shrinking passes, and makes room again.
    let e = h.send(&c, update("BIG_0", json!(true)));
    assert_eq!(error_code(&e), None);
    assert_eq!(
        h.airport().state_chars().unwrap(),
        MAX_AIRPORT_STATE_CHARS - 40_000 + 4
    );
    let e = h.send(&c, update("MORE", json!(true)));
    assert_eq!(error_code(&e), None);
}

#[test]
fn a_change_keeps_its_request_id_for_the_error_a_failed_write_gets() {
    let mut h = Harness::new();
    let c = who(Role::Controller, "1000001");
    let changes = [
        json!({"type": "STATE_UPDATE", "requestId": "one", "data": {"objectId": "SB_1", "state": true}}),
        json!({"type": "MULTI_STATE_UPDATE", "requestId": "two", "data": {"updates": [{"objectId": "SB_2", "state": true}]}}),
        json!({"type": "SHARED_STATE_UPDATE", "requestId": "three", "data": {"sharedStatePatch": {"a": 1}}}),
    ];
    for (packet, id) in changes.into_iter().zip(["one", "two", "three"]) {
        let effects = h.send(&c, packet);
        assert!(!effects.persist.is_empty());
        assert_eq!(effects.request_id.as_deref(), Some(id));
        // A change has no reply of its own: the requestId is only for ERROR INTERNAL.
        assert_eq!(effects.reply, None);
    }
    let unnamed = h.send(
        &c,
        json!({"type": "STATE_UPDATE", "data": {"objectId": "SB_3", "state": true}}),
    );
    assert_eq!(unnamed.request_id, None);
}
