//! The packets and bodies the server builds by hand (`outbound.rs`, `connect.rs`) read back into
//! the wire types unchanged: every member is modelled, with its type. The integration tests then
//! check the frames of the running service against the schemas generated from these types.

use airport_protocol::connect::HttpError;
use airport_protocol::directory::dormant_state;
use airport_protocol::effects::{Action, Effects};
use airport_protocol::history::ResumeRequest;
use airport_protocol::outbound::{self, Stamp};
use airport_protocol::packet::Frame;
use airport_protocol::room::Answers;
use airport_protocol::wire::ServerPacket;
use airport_protocol::wire::http::{ErrorBody, PublicState, PublicStates};
use airport_protocol::{Cid, Icao, Role, Session};
use airport_testkit::harness::{Harness, who};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::value::RawValue;
use serde_json::{Value, json};
use std::collections::BTreeSet;

/// `text` read into `T` and written again is the same JSON.
fn reads_back_unchanged<T: DeserializeOwned + Serialize>(text: &str) -> T {
    let value: Value = serde_json::from_str(text).unwrap();
    let typed: T = serde_json::from_value(value.clone())
        .unwrap_or_else(|error| panic!("{text} does not read into the wire types: {error}"));
    assert_eq!(
        serde_json::to_value(&typed).unwrap(),
        value,
        "{text} changed on its way through the wire types"
    );
    typed
}

/// Every packet an event sends, its accepted change included.
fn packets(effects: &Effects) -> Vec<String> {
    let mut packets: Vec<String> = effects
        .actions
        .iter()
        .filter_map(|action| match action {
            Action::Send { packet, .. } => Some(packet.clone()),
            Action::Close { .. } => None,
        })
        .collect();
    packets.extend(effects.change.iter().map(|change| change.packet.clone()));
    packets
}

#[test]
fn every_server_packet_reads_back_into_the_wire_types() {
    let mut h = Harness::new();
    let controller = who(Role::Controller, "1000001");
    let other_controller = who(Role::Controller, "1000002");
    let pilot = Session {
        callsign: Some("BAW123".into()),
        ..who(Role::Pilot, "1000011")
    };
    let observer = who(Role::Observer, "1000021");
    let mut sent = Vec::new();
    for person in [&controller, &pilot, &observer] {
        sent.extend(packets(&h.connect(person).1));
    }
    let (second, joined) = h.connect(&other_controller);
    sent.extend(packets(&joined));
    let frames = [
        (
            &controller,
            json!({"type": "STATE_UPDATE", "data": {"objectId": "SB_1", "state": true}}),
        ),
        (
            &controller,
            json!({"type": "STATE_UPDATE", "data": {"objectId": "LO_1", "patch": {"level": 3, "colour": "green"}}}),
        ),
        (
            &controller,
            json!({"type": "MULTI_STATE_UPDATE", "data": {"updates": [
            {"objectId": "SB_2", "state": false}, {"objectId": "LO_1", "patch": null}]}}),
        ),
        (
            &controller,
            json!({"type": "SHARED_STATE_UPDATE", "data": {"sharedStatePatch": {"runways": {"27L": "arr", "09R": null}}}}),
        ),
        (
            &controller,
            json!({"type": "HEARTBEAT", "requestId": "hb-1"}),
        ),
        (&controller, json!({"type": "HEARTBEAT"})),
        (
            &controller,
            json!({"type": "GET_STATE", "requestId": "s-1"}),
        ),
        (&controller, json!({"type": "GET_ONLINE_PILOTS"})),
        (
            &pilot,
            json!({"type": "STOPBAR_CROSSING", "data": {"objectId": "SB_1"}}),
        ),
        (
            &pilot,
            json!({"type": "STATE_UPDATE", "requestId": "u-1", "data": {"objectId": "SB_1", "state": true}}),
        ),
        (&observer, json!({"type": "NOT_A_TYPE"})),
    ];
    for (person, frame) in frames {
        let socket = h.socket(person);
        h.now += 1_000;
        let effects = h.frame(socket, Frame::Text(&frame.to_string()), h.now);
        sent.extend(packets(&effects));
    }
    // INITIAL_STATE for a client that asked to resume: the full state with the history id, and
    // a resume with a deletion and the shared state that changed since.
    let fresh = h.connect_resuming(&observer, Some(&ResumeRequest::Fresh));
    sent.extend(packets(&fresh.unwrap().1));
    let history = h.airport().history().id().clone();
    let resume = ResumeRequest::From { history, seq: 2 };
    sent.extend(packets(
        &h.connect_resuming(&observer, Some(&resume)).unwrap().1,
    ));
    h.now += h.room.config().timings.heartbeat_interval_ms;
    sent.extend(packets(&h.alarm(&Answers::default())));
    sent.extend(packets(&h.leave(second)));

    let stamp = Stamp {
        airport: "EGLL",
        now: h.now,
    };
    let by = Cid::parse("1000001").unwrap();
    let on = RawValue::from_string("true".into()).unwrap();
    let (_, first) = outbound::object_changes(stamp, &[("SB_1", Some(&*on))], &by, 7);
    let (_, second) = outbound::object_changes(stamp, &[("SB_2", None)], &by, 8);
    let items = format!("{},{}", first.items, second.items);
    sent.push(outbound::coalesced_changes(stamp, &items, 7, 8));

    let resumed = sent
        .iter()
        .filter(|p| p.contains("\"resumedFrom\":2"))
        .count();
    assert_eq!(resumed, 1, "the resume is among the packets");
    let mut kinds = BTreeSet::new();
    for packet in &sent {
        let typed: ServerPacket = reads_back_unchanged(packet);
        let value = serde_json::to_value(&typed).unwrap();
        kinds.insert(value["type"].as_str().unwrap().to_owned());
    }
    let every_kind: BTreeSet<String> = [
        "INITIAL_STATE",
        "STATE_SNAPSHOT",
        "ONLINE_PILOTS",
        "STATE_UPDATE",
        "MULTI_STATE_UPDATE",
        "SHARED_STATE_UPDATE",
        "STOPBAR_CROSSING",
        "CONTROLLER_CONNECT",
        "CONTROLLER_DISCONNECT",
        "HEARTBEAT",
        "HEARTBEAT_ACK",
        "ERROR",
    ]
    .into_iter()
    .map(String::from)
    .collect();
    assert_eq!(kinds, every_kind, "the scenario sends every server packet");
    assert!(sent.iter().any(|p| p.contains("\"seqFrom\"")));
    assert!(sent.iter().any(|p| p.contains("\"callsign\":\"BAW123\"")));

    let state = h.public_state();
    let one: PublicState = reads_back_unchanged(&state);
    assert_eq!(one.pilots, [Cid::parse("1000011").unwrap()]);
    reads_back_unchanged::<PublicStates>(&format!("{{\"states\":[{state}]}}"));
    reads_back_unchanged::<PublicState>(&dormant_state(Icao::parse("KJFK").unwrap(), 3));
}

#[test]
fn every_http_error_body_reads_back_into_the_wire_types() {
    let errors = [
        HttpError::MethodNotAllowed,
        HttpError::UpgradeRequired,
        HttpError::InvalidAirport,
        HttpError::MissingApiKey,
        HttpError::InvalidApiKey,
        HttpError::Banned { until: Some(1) },
        HttpError::NotConnected,
        HttpError::UpstreamUnavailable,
        HttpError::TooManyConnections {
            scope: "per API key",
            limit: 8,
        },
        HttpError::NotFound,
        HttpError::Internal("x".into()),
    ];
    for error in errors {
        let body: ErrorBody = reads_back_unchanged(&error.body());
        assert_eq!(body.error.code, error.code());
    }
}
