//! What the network's deployed clients need of the state machine (PROTOCOL §7), natively: the
//! legacy batch form, single-item batches, legacy names, controller bursts and the large
//! lighting packets, with the strict limits kept for everything else.

use airport_protocol::config::{RateLimit, RateLimits};
use airport_protocol::limits::{
    MAX_LIGHTING_PACKET_CHARS, MAX_LIGHTING_UPDATES, MAX_MULTI_UPDATES, MAX_OBJECTS,
    MAX_SHARED_PATCH_CHARS,
};
use airport_protocol::packet::Frame;
use airport_protocol::{CloseCode, Role, Session};
use airport_testkit::harness::{Audience, Harness, broadcast, error_code, parse, who};
use airport_testkit::store::objects_of;
use serde_json::{Value, json};

fn controller() -> Session {
    who(Role::Controller, "1000001")
}

fn boolean_items(n: usize, prefix: &str) -> Vec<Value> {
    (0..n)
        .map(|i| json!({"objectId": format!("{prefix}{i}"), "state": i % 2 == 0}))
        .collect()
}

#[test]
fn vatsys_bare_array_batch_is_applied_like_updates() {
    let mut bare = Harness::new();
    let mut wrapped = Harness::new();
    let c = controller();
    let items = json!([{"objectId": "BARS_7K2QH", "state": true}, {"objectId": "BARS_8R1LP", "state": false}]);
    let e = bare.send(
        &c,
        json!({"type": "MULTI_STATE_UPDATE", "airport": "EGLL", "data": items}),
    );
    let w = wrapped.send(
        &c,
        json!({"type": "MULTI_STATE_UPDATE", "airport": "EGLL", "data": {"updates": items}}),
    );
    assert_eq!(e, w);
    let (audience, packet) = broadcast(&e).unwrap();
    assert_eq!(audience, Audience::Others);
    assert_eq!(packet["type"], "MULTI_STATE_UPDATE");
    assert_eq!(packet["seq"], 1);
    assert_eq!(bare.airport(), wrapped.airport());
}

#[test]
fn a_bare_array_names_the_bad_item_by_its_index_and_applies_nothing() {
    let mut h = Harness::new();
    let e = h.send(
        &controller(),
        json!({"type": "MULTI_STATE_UPDATE", "requestId": "v1", "data": [
            {"objectId": "A", "state": true}, {"objectId": "bad id", "state": true}]}),
    );
    let reply = parse(e.reply.as_ref().unwrap());
    assert_eq!(reply["data"]["code"], "INVALID_PACKET");
    assert_eq!(reply["requestId"], "v1");
    assert!(
        reply["data"]["message"]
            .as_str()
            .unwrap()
            .starts_with("data[1].objectId"),
        "{reply}"
    );
    assert!(objects_of(h.airport()).is_empty());
    for data in [json!([]), json!([1]), json!("x")] {
        let e = h.send(
            &controller(),
            json!({"type": "MULTI_STATE_UPDATE", "data": data}),
        );
        assert_eq!(error_code(&e).as_deref(), Some("INVALID_PACKET"), "{data}");
    }
}

#[test]
fn a_batch_that_changes_one_object_is_broadcast_as_its_state_update() {
    let mut h = Harness::new();
    let c = controller();
    // One item, and two items of which one is a no-op: both change one object.
    for (n, data) in [
        json!({"updates": [{"objectId": "SB_1", "state": true}]}),
        json!([{"objectId": "SB_2", "state": false}, {"objectId": "NONE", "patch": null}]),
    ]
    .into_iter()
    .enumerate()
    {
        let e = h.send(&c, json!({"type": "MULTI_STATE_UPDATE", "data": data}));
        let (audience, packet) = broadcast(&e).unwrap();
        assert_eq!(audience, Audience::Others);
        assert_eq!(packet["type"], "STATE_UPDATE");
        assert_eq!(packet["seq"], n as u64 + 1);
        assert!(packet["data"]["controllerId"].is_string());
        assert!(packet["data"]["state"].is_boolean());
    }
}

#[test]
fn stopbar_crossing_and_online_pilots_carry_the_legacy_names() {
    let mut h = Harness::new();
    let pilot = who(Role::Pilot, "1000011");
    h.connect(&pilot);
    h.connect(&Session {
        callsign: Some("DLH4AB".into()),
        ..who(Role::Pilot, "1000012")
    });
    let e = h.send(
        &pilot,
        json!({"type": "STOPBAR_CROSSING", "data": {"objectId": "BARS_7K2QH"}}),
    );
    let (audience, packet) = broadcast(&e).unwrap();
    assert_eq!(audience, Audience::Controllers);
    assert_eq!(
        packet["data"],
        json!({"objectId": "BARS_7K2QH", "pilotId": "1000011", "controllerId": "1000011"})
    );
    let e = h.send(&pilot, json!({"type": "GET_ONLINE_PILOTS"}));
    assert_eq!(
        parse(e.reply.as_ref().unwrap())["data"]["pilots"],
        json!([
            {"pilotId": "1000011", "cid": "1000011", "callsign": "1000011"},
            {"pilotId": "1000012", "cid": "1000012", "callsign": "DLH4AB"},
        ])
    );
}

#[test]
fn a_controllers_profile_burst_of_ten_thousand_frames_passes_at_once() {
    let mut h = Harness::new();
    h.step_ms = 0;
    let c = controller();
    for i in 0..MAX_OBJECTS {
        let e = h.send(
            &c,
            json!({"type": "STATE_UPDATE", "data": {"objectId": format!("L{i}"), "state": true}}),
        );
        assert_eq!(error_code(&e), None, "frame {i}");
        assert!(e.close.is_none());
    }
    // And the same again straight away: a profile changed and changed back.
    for i in 0..MAX_OBJECTS {
        let e = h.send(
            &c,
            json!({"type": "STATE_UPDATE", "data": {"objectId": format!("L{i}"), "state": false}}),
        );
        assert_eq!(error_code(&e), None, "frame {i} of the second burst");
    }
    assert_eq!(h.airport().seq(), 2 * MAX_OBJECTS as u64);
}

#[test]
fn a_controller_sustains_two_hundred_frames_a_second_and_more() {
    let mut h = Harness::new();
    let c = controller();
    // A minute at 400 changes a second (2.5 ms apart), after a burst that emptied the bucket.
    h.step_ms = 0;
    let change = |i: usize| {
        format!(
            r#"{{"type":"STATE_UPDATE","data":{{"objectId":"SB_{}","state":{}}}}}"#,
            i % 50,
            i.is_multiple_of(2)
        )
    };
    for i in 0..h.room.config().rate_limits.controller.burst as usize {
        h.send_text(&c, &change(i));
    }
    h.step_ms = 5;
    for i in 0..24_000 {
        let e = h.send_text(&c, &change(i));
        assert_eq!(error_code(&e), None, "frame {i}");
        if i % 2 == 0 {
            h.now -= 5; // two frames per 5 ms
        }
    }
}

#[test]
fn a_controller_that_keeps_flooding_is_closed_but_pilots_keep_the_strict_limit() {
    let mut h = Harness::new();
    h.step_ms = 0;
    let c = controller();
    let mut first_drop = None;
    let mut closed_at = None;
    for i in 0..30_000_usize {
        let update = format!(
            r#"{{"type":"STATE_UPDATE","data":{{"objectId":"SB_1","state":{}}}}}"#,
            i.is_multiple_of(2)
        );
        let e = h.send_text(&c, &update);
        if first_drop.is_none() && error_code(&e).as_deref() == Some("RATE_LIMITED") {
            first_drop = Some(i);
        }
        if e.close == Some(CloseCode::Flooding) {
            closed_at = Some(i);
            break;
        }
    }
    let limit = h.room.config().rate_limits.controller;
    assert_eq!(first_drop, Some(limit.burst as usize));
    assert_eq!(
        closed_at,
        Some(limit.burst as usize + limit.flood_drops as usize)
    );

    let pilot = who(Role::Pilot, "1000011");
    let passed = (0..100)
        .map(|i| {
            h.send_text(
                &pilot,
                &format!(r#"{{"type":"STOPBAR_CROSSING","data":{{"objectId":"SB_{i}"}}}}"#),
            )
        })
        .filter(|e| error_code(e).is_none())
        .count();
    let limits = h.room.config().rate_limits;
    assert_eq!(passed, limits.pilot_or_observer.burst as usize);
}

#[test]
fn questions_have_a_budget_of_their_own_whatever_the_role() {
    // A controller's bucket holds 20,000 frames; a flood of questions is still closed after the
    // ask budget and its flood allowance.
    let mut h = Harness::new();
    h.step_ms = 0;
    let limits = h.room.config().rate_limits;
    let asks = limits.asks;
    // The controller is closed by its questions' flood; the observer's own, smaller bucket
    // floods first, once the questions it let through were refused by their budget.
    let controller_closed = asks.burst + asks.flood_drops;
    let observer_closed = limits.pilot_or_observer.burst + limits.pilot_or_observer.flood_drops;
    for (role, cid, closed) in [
        (Role::Controller, "1000001", controller_closed),
        (Role::Observer, "1000021", observer_closed),
    ] {
        let who = who(role, cid);
        let mut answered = 0;
        let mut closed_at = None;
        for i in 0..1_000 {
            let e = h.send_text(
                &who,
                &format!(r#"{{"type":"HEARTBEAT","requestId":"h{i}"}}"#),
            );
            match error_code(&e).as_deref() {
                None => answered += 1,
                Some(code) => assert_eq!(code, "RATE_LIMITED", "{role} frame {i}"),
            }
            if e.close == Some(CloseCode::Flooding) {
                closed_at = Some(i);
                break;
            }
        }
        assert_eq!(answered, asks.burst as usize, "{role}");
        assert_eq!(closed_at, Some(closed as usize), "{role}");
    }
}

/// Frames refused for each reason that spends the refusal budget, as a controller sends them.
const COUNTED_REFUSALS: [(&str, &str); 6] = [
    ("{", "INVALID_JSON"),
    (r#"{"type":"PING"}"#, "UNKNOWN_TYPE"),
    (
        r#"{"type":"STATE_UPDATE","data":{"objectId":"bad id","state":true}}"#,
        "INVALID_PACKET",
    ),
    (
        r#"{"type":"STOPBAR_CROSSING","data":{"objectId":"SB_1"}}"#,
        "FORBIDDEN",
    ),
    (
        r#"{"type":"HEARTBEAT_ACK","airport":"LFPG"}"#,
        "AIRPORT_MISMATCH",
    ),
    ("[1]", "INVALID_PACKET"),
];

/// Sends `frames` frames from `who`, the `i`th being `nth(i)`'s frame and refused with its
/// code; the index of the one that closed the socket, if one did.
fn refuse_until_closed<'a>(
    h: &mut Harness,
    who: &Session,
    frames: usize,
    nth: impl Fn(usize) -> (&'a str, &'a str),
) -> Option<usize> {
    (0..frames).find(|&i| {
        let (frame, code) = nth(i);
        let e = h.send_text(who, frame);
        assert_eq!(error_code(&e).as_deref(), Some(code), "frame {i}");
        e.close == Some(CloseCode::Flooding)
    })
}

/// `frames` counted refusals of every kind in turn.
fn refuse(h: &mut Harness, who: &Session, frames: usize) -> Option<usize> {
    refuse_until_closed(h, who, frames, |i| {
        COUNTED_REFUSALS[i % COUNTED_REFUSALS.len()]
    })
}

#[test]
fn refused_frames_have_a_budget_of_their_own_that_closes_a_controllers_junk_early() {
    // A controller's bucket holds 20,000 frames; refused ones are cut off after their budget.
    let mut h = Harness::new();
    h.step_ms = 0;
    let refusals = h.room.config().rate_limits.refusals;
    let burst = refusals.burst as usize;
    let c = controller();
    // The burst passes, each frame answered with its error; the next one is answered, then
    // the socket is closed, and the person may not come back for a while.
    assert_eq!(refuse(&mut h, &c, burst + 1), Some(burst));
    assert!(h.try_connect(&c).is_err());

    // The budget refills: a second's worth more passes after a second, and not one more.
    let c2 = who(Role::Controller, "1000002");
    assert_eq!(refuse(&mut h, &c2, burst), None);
    h.now += 1_000;
    let refill = refusals.per_second as usize;
    assert_eq!(refuse(&mut h, &c2, refill), None);
    assert_eq!(refuse(&mut h, &c2, 1), Some(0));
}

/// A frame too large for anything but a lighting packet, which it does not claim to be.
fn oversize_junk() -> String {
    format!("{{{}", " ".repeat(MAX_LIGHTING_PACKET_CHARS - 1))
}

#[test]
fn a_refused_frame_costs_what_it_weighs() {
    let mut h = Harness::new();
    h.step_ms = 0;
    let frame = oversize_junk();
    let cost = RateLimit::cost(frame.len());
    assert!(cost > 1.0);
    let burst = h.room.config().rate_limits.refusals.burst;
    let too_large = |_| (frame.as_str(), "PACKET_TOO_LARGE");
    let closed_at = refuse_until_closed(&mut h, &controller(), 1_000, too_large);
    assert_eq!(closed_at, Some((burst / cost) as usize));
}

#[test]
fn a_client_whose_every_frame_is_refused_at_a_deployed_clients_pace_stays() {
    // The busiest deployed client, the EuroScope rewrite, sends 4 frames a second, two of them
    // batches that may be large. Even if every one were refused, for three minutes (far more
    // than the burst), it is never closed; a socket refused faster than the refill is, once its
    // burst is spent.
    let refill = RateLimits::default().refusals.per_second as i64;
    let (small, large) = ("{".to_owned(), oversize_junk());
    for (frame, code, per_second, closed) in [
        (&small, "INVALID_JSON", 4, false),
        (&large, "PACKET_TOO_LARGE", 2, false),
        (&small, "INVALID_JSON", refill + 5, true),
    ] {
        let mut h = Harness::new();
        h.step_ms = 1_000 / per_second;
        let frames = 3 * 60 * per_second as usize;
        let closed_at = refuse_until_closed(&mut h, &controller(), frames, |_| (frame, code));
        assert_eq!(closed_at.is_some(), closed, "{code} at {per_second}/s");
    }
}

#[test]
fn refusals_a_real_plugin_can_meet_in_bursts_do_not_spend_the_budget() {
    let mut h = Harness::new();
    h.step_ms = 0;
    let c = controller();
    let e = h.send_text(&c, &lighting_batch(MAX_OBJECTS, "L"));
    assert_eq!(error_code(&e), None);
    // A profile change of new elements at a full airport: thousands of LIMIT_EXCEEDED in a
    // row, each no costlier than an accepted change, which the role's bucket bounds.
    let burst = h.room.config().rate_limits.refusals.burst as usize;
    for i in 0..4 * burst {
        let e = h.send(
            &c,
            json!({"type": "STATE_UPDATE", "data": {"objectId": format!("NEW_{i}"), "state": true}}),
        );
        assert_eq!(
            error_code(&e).as_deref(),
            Some("LIMIT_EXCEEDED"),
            "frame {i}"
        );
        assert!(e.close.is_none(), "frame {i}");
    }
    // The budget is untouched: a burst of junk still gets its full allowance.
    assert_eq!(refuse(&mut h, &c, burst + 1), Some(burst));
}

#[test]
fn a_snapshot_costs_what_it_weighs_of_the_question_budget() {
    let mut h = Harness::new();
    let c = controller();
    // 2,000 objects of about 200 bytes each: a snapshot of some 400 KB, 5 tokens.
    h.step_ms = 0;
    let pad = "x".repeat(150);
    for i in 0..2_000 {
        h.send(&c, json!({"type": "STATE_UPDATE", "data": {"objectId": format!("OBJ_{i:05}"), "state": {"pad": pad}}}));
    }
    let observer = who(Role::Observer, "1000021");
    let answered = (0..50)
        .map(|_| h.send_text(&observer, r#"{"type":"GET_STATE"}"#))
        .filter(|e| error_code(e).is_none())
        .count();
    let asks = h.room.config().rate_limits.asks;
    let bytes = 2_000 * (150 + 40);
    let cost = 1 + bytes / airport_protocol::config::RateLimit::ANSWER_BYTES_PER_TOKEN;
    assert!(
        answered <= asks.burst as usize / cost + 1,
        "{answered} snapshots of ~{bytes} bytes"
    );
    assert!(answered >= asks.burst as usize / (cost + 1), "{answered}");
    // Small questions are still answered once the budget refills.
    h.now += 10_000;
    let e = h.send_text(&observer, r#"{"type":"HEARTBEAT"}"#);
    assert_eq!(parse(e.reply.as_ref().unwrap())["type"], "HEARTBEAT_ACK");
}

#[test]
fn a_large_frame_costs_what_it_weighs() {
    // A smaller bucket than production's, so that it empties after a few frames.
    let mut limits = RateLimits::default();
    limits.controller.burst = 100.0;
    let mut h = Harness::with_limits(limits);
    h.step_ms = 0;
    let c = controller();
    // A million bytes costs 5 tokens: a frame, and 4 more for its 4 further blocks of 200,000.
    let frame = "x".repeat(MAX_LIGHTING_PACKET_CHARS);
    let handled = (0..22)
        .map(|_| h.send_text(&c, &frame))
        .take_while(|e| error_code(e).as_deref() == Some("PACKET_TOO_LARGE"))
        .count();
    assert_eq!(handled, 20);

    // A packet within the normal limit costs one, however many bytes its characters take: a
    // pilot's burst of 60 frames of 50,000 four-byte characters all pass the bucket.
    let pilot = who(Role::Pilot, "1000011");
    let wide = "\u{1D11E}".repeat(50_000);
    assert_eq!(wide.len(), 200_000);
    for i in 0..h.room.config().rate_limits.pilot_or_observer.burst as usize {
        let e = h.send_text(&pilot, &wide);
        assert_eq!(error_code(&e).as_deref(), Some("INVALID_JSON"), "frame {i}");
    }
    let e = h.send_text(&pilot, &wide);
    assert_eq!(error_code(&e).as_deref(), Some("RATE_LIMITED"));
}

/// A boolean-only batch of `n` items, as the EuroScope plugin's rewrite sends a whole airport.
fn lighting_batch(n: usize, prefix: &str) -> String {
    json!({"type": "MULTI_STATE_UPDATE", "data": {"updates": boolean_items(n, prefix)}}).to_string()
}

#[test]
fn boolean_only_batches_may_hold_the_object_limit_in_a_large_frame() {
    let mut h = Harness::new();
    let c = controller();
    let frame = lighting_batch(MAX_LIGHTING_UPDATES, "LIGHT_ELEMENT_");
    assert!(frame.len() > 50_000 && frame.len() <= MAX_LIGHTING_PACKET_CHARS);
    let e = h.send_text(&c, &frame);
    assert_eq!(error_code(&e), None);
    let (_, packet) = broadcast(&e).unwrap();
    assert_eq!(
        packet["data"]["updates"].as_array().unwrap().len(),
        MAX_LIGHTING_UPDATES
    );
    assert_eq!(objects_of(h.airport()).len(), MAX_LIGHTING_UPDATES);

    // 201 boolean items fit a normal frame and pass; 201 object states do not.
    let mut h = Harness::new();
    let e = h.send_text(&c, &lighting_batch(MAX_MULTI_UPDATES + 1, "B"));
    assert_eq!(error_code(&e), None);
    let objects: Vec<Value> = (0..=MAX_MULTI_UPDATES)
        .map(|i| json!({"objectId": format!("O{i}"), "state": {"on": true}}))
        .collect();
    let e = h.send(
        &c,
        json!({"type": "MULTI_STATE_UPDATE", "data": {"updates": objects}}),
    );
    assert_eq!(error_code(&e).as_deref(), Some("INVALID_PACKET"));
}

#[test]
fn a_large_frame_that_does_not_qualify_is_too_large() {
    let c = controller();
    let items = boolean_items(MAX_LIGHTING_UPDATES, "Q");
    let cases: Vec<(String, &str)> = vec![
        // One item with an object state, one with a patch, one with an extra member.
        {
            let mut items = items.clone();
            items[9_999] = json!({"objectId": "X", "state": {"on": true}});
            (
                json!({"type": "MULTI_STATE_UPDATE", "data": {"updates": items}}).to_string(),
                "object state",
            )
        },
        {
            let mut items = items.clone();
            items[5] = json!({"objectId": "X", "patch": {"on": true}});
            (
                json!({"type": "MULTI_STATE_UPDATE", "data": items}).to_string(),
                "patch",
            )
        },
        {
            let mut items = items.clone();
            items[0] = json!({"objectId": "X", "state": true, "note": 1});
            (
                json!({"type": "MULTI_STATE_UPDATE", "data": items}).to_string(),
                "extra member",
            )
        },
        // The right items under another type.
        (
            json!({"type": "STATE_UPDATE", "data": {"updates": items.clone()}}).to_string(),
            "type",
        ),
        // A graph patch with one other member.
        (
            json!({"type": "SHARED_STATE_UPDATE", "data": {"sharedStatePatch": {
                "nodes": {"N": "x".repeat(60_000)}, "weather": 1}}})
            .to_string(),
            "graph with another member",
        ),
        // Over the larger limit.
        (
            json!({"type": "SHARED_STATE_UPDATE", "data": {"sharedStatePatch": {
                "nodes": {"N": "x".repeat(MAX_LIGHTING_PACKET_CHARS)}}}})
            .to_string(),
            "over a million",
        ),
    ];
    for (frame, what) in cases {
        let mut h = Harness::new();
        assert!(frame.len() > 50_000, "{what}");
        let e = h.send_text(&c, &frame);
        assert_eq!(
            error_code(&e).as_deref(),
            Some("PACKET_TOO_LARGE"),
            "{what}"
        );
        assert_eq!(h.airport().seq(), 0, "{what}");
    }
    // One item over the object limit: the frame qualifies, the count does not.
    let mut h = Harness::new();
    let mut more = items;
    more.push(json!({"objectId": "ONE_MORE", "state": true}));
    let e = h.send(&c, json!({"type": "MULTI_STATE_UPDATE", "data": more}));
    let reply = parse(e.reply.as_ref().unwrap());
    assert_eq!(reply["data"]["code"], "INVALID_PACKET");
    assert!(
        reply["data"]["message"]
            .as_str()
            .unwrap()
            .contains("10001 items"),
        "{reply}"
    );

    // A pilot's or an observer's large frame is too large however it is shaped.
    let frame = lighting_batch(MAX_LIGHTING_UPDATES, "P");
    for role in [Role::Pilot, Role::Observer] {
        let mut h = Harness::new();
        let e = h.send_frame(&who(role, "1000011"), Frame::Binary(frame.as_bytes()));
        assert_eq!(
            error_code(&e).as_deref(),
            Some("PACKET_TOO_LARGE"),
            "{role}"
        );
    }
}

#[test]
fn a_lighting_graph_patch_may_be_large_and_anything_else_keeps_the_strict_limit() {
    let mut h = Harness::new();
    let c = controller();
    let nodes: serde_json::Map<String, Value> = (0..40_000)
        .map(|i| (format!("N{i}"), Value::Bool(i % 3 == 0)))
        .collect();
    let patch = json!({"meta": {"client": 123456789, "serial": 7}, "profile": "default",
        "nodes": nodes, "blocks": {"B1": {"route": ["N1", "N2"]}, "B2": "clear"}});
    let frame =
        json!({"type": "SHARED_STATE_UPDATE", "data": {"sharedStatePatch": patch}}).to_string();
    assert!(frame.len() > 500_000 && frame.len() < MAX_LIGHTING_PACKET_CHARS);
    let e = h.send_text(&c, &frame);
    assert_eq!(error_code(&e), None);
    let (audience, packet) = broadcast(&e).unwrap();
    assert_eq!(audience, Audience::Everyone);
    assert_eq!(packet["data"]["controllerId"], "1000001");
    assert_eq!(
        h.airport().shared().as_map()["nodes"]
            .as_object()
            .unwrap()
            .len(),
        40_000
    );

    // A graph patch over 10,240 in a normal frame passes; any other member keeps the limit.
    let graph = json!({"nodes": {"N": "x".repeat(MAX_SHARED_PATCH_CHARS)}});
    let e = h.send(
        &c,
        json!({"type": "SHARED_STATE_UPDATE", "data": {"sharedStatePatch": graph}}),
    );
    assert_eq!(error_code(&e), None);
    let other = json!({"runway": "x".repeat(MAX_SHARED_PATCH_CHARS)});
    let e = h.send(
        &c,
        json!({"type": "SHARED_STATE_UPDATE", "data": {"sharedStatePatch": other}}),
    );
    assert_eq!(error_code(&e).as_deref(), Some("LIMIT_EXCEEDED"));
}

#[test]
fn euroscope_frames_exactly_as_sent_are_accepted() {
    let mut h = Harness::new();
    let c = controller();
    for frame in [
        r#"{"type":"STATE_UPDATE","data":{"objectId":"BARS_7K2QH","state":true}}"#,
        r#"{"type":"SHARED_STATE_UPDATE","data":{"sharedStatePatch":{"profile":"default","nodes":{"N1":true},"blocks":{"B2":"clear","B1":{"route":["N1","N2"]}}}}}"#,
        r#"{"type":"SHARED_STATE_UPDATE","data":{"sharedStatePatch":{"profile":null,"nodes":{},"blocks":{}}}}"#,
        r#"{"type":"SHARED_STATE_UPDATE","data":{"sharedStatePatch":{"meta":{"client":123456789,"serial":7},"nodes":{"N1":true},"blocks":{"B2":"Clear","B1":{"Route":["N1","N2"]}}}}}"#,
        r#"{"type":"HEARTBEAT_ACK"}"#,
        r#"{"type":"HEARTBEAT"}"#,
        r#"{"type":"GET_ONLINE_PILOTS"}"#,
    ] {
        let e = h.send_text(&c, frame);
        assert_eq!(error_code(&e), None, "{frame}");
    }
    assert_eq!(h.airport().seq(), 4);
}
