//! The packets the per-packet benchmarks measure, and an airport to send them to: shared by the
//! native bench (`protocol/benches/core.rs`, criterion and valgrind) and the Wasm one
//! (`examples/wasm_core.rs`, the same code as the Worker runs it).

use airport_protocol::config::Config;
use airport_protocol::liveness::Schedule;
use airport_protocol::packet::Frame;
use airport_protocol::{Airport, Cid, Effects, Icao, Role, Room, Session, SocketId};
use serde_json::json;

/// One packet measured: its name, how many objects the airport holds first, the frame.
pub struct Case {
    pub name: &'static str,
    pub objects: usize,
    pub frame: String,
}

pub fn cases() -> Vec<Case> {
    let case = |name, objects, frame: serde_json::Value| Case {
        name,
        objects,
        frame: frame.to_string(),
    };
    let updates: Vec<_> = (0..200)
        .map(|i| json!({"objectId": format!("SB_{i}"), "state": {"on": i % 2 == 0, "level": i}}))
        .collect();
    // A patch of just under 10,240 serialized characters.
    let members: serde_json::Map<String, serde_json::Value> = (0..100)
        .map(|i| (format!("stand_{i:03}"), json!({"status": "x".repeat(70)})))
        .collect();
    let cases = vec![
        case(
            "state_update",
            1_000,
            json!({
                "type": "STATE_UPDATE",
                "data": {"objectId": "SB_27L_A1", "state": true},
                "requestId": "r-1"
            }),
        ),
        case(
            "state_update_patch",
            1_000,
            json!({
                "type": "STATE_UPDATE",
                "data": {"objectId": "OBJ_7", "patch": {"on": false, "color": "red", "level": 3}}
            }),
        ),
        case(
            "multi_state_update_200",
            1_000,
            json!({"type": "MULTI_STATE_UPDATE", "data": {"updates": updates}}),
        ),
        case(
            "shared_state_update_10kb",
            0,
            json!({"type": "SHARED_STATE_UPDATE", "data": {"sharedStatePatch": members}}),
        ),
        // Rejected unparsed: 50,001 characters.
        Case {
            name: "rejected_50001_chars_too_large",
            objects: 0,
            frame: format!(
                "{{\"type\":\"HEARTBEAT\",\"pad\":\"{}\"}}",
                "x".repeat(49_972)
            ),
        },
        // Rejected after parsing: 50,000 characters of valid JSON with an unknown type.
        Case {
            name: "rejected_50000_chars_unknown_type",
            objects: 0,
            frame: format!("{{\"type\":\"NOPE\",\"pad\":\"{}\"}}", "x".repeat(49_976)),
        },
        // A snapshot between two changes, as a quiet airport's pilots ask every 30 s.
        case(
            "get_state_1000_objects",
            1_000,
            json!({"type": "GET_STATE"}),
        ),
        case(
            "get_state_10000_objects",
            10_000,
            json!({"type": "GET_STATE"}),
        ),
    ];
    assert!(cases[3].frame.len() > 9_000);
    assert_eq!(cases[4].frame.chars().count(), 50_001);
    assert_eq!(cases[5].frame.chars().count(), 50_000);
    cases
}

/// An airport with a controller's socket to send frames, and no rate limit in the way.
pub struct Fixture {
    pub room: Room,
    pub controller: SocketId,
}

impl Fixture {
    /// Seeded with `objects` objects, so that look-ups and inserts work on a realistic map.
    pub fn new(objects: usize) -> Self {
        let config = Config {
            rate_limits: crate::harness::unlimited_rates(),
            ..Config::default()
        };
        let airport = Airport::new(Icao::parse("EGLL").unwrap());
        let (mut room, _) = Room::restore(config, airport, Schedule::default(), [], 0);
        let controller = Session {
            cid: Cid::parse("1000001").unwrap(),
            role: Role::Controller,
            callsign: None,
        };
        room.connect(1, controller, "key".into(), 0)
            .expect("admitted");
        let mut fixture = Fixture {
            room,
            controller: 1,
        };
        for chunk in 0..objects.div_ceil(200) {
            let updates: Vec<_> = (chunk * 200..((chunk + 1) * 200).min(objects))
                .map(|i| json!({"objectId": format!("OBJ_{i}"), "state": {"on": true}}))
                .collect();
            let seed =
                json!({"type": "MULTI_STATE_UPDATE", "data": {"updates": updates}}).to_string();
            fixture.send(&seed, 0);
        }
        fixture
    }

    pub fn send(&mut self, frame: &str, now: i64) -> Effects {
        self.room.frame(self.controller, Frame::Text(frame), now)
    }
}
