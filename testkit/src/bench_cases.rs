//! The packets the per-packet benchmarks measure, and an airport to send them to: shared by the
//! native bench (`protocol/benches/core.rs`, criterion and valgrind) and the Wasm one
//! (`examples/wasm_core.rs`, the same code as the Worker runs it).

use airport_protocol::config::Config;
use airport_protocol::equivalence::{Equivalence, PointRow};
use airport_protocol::liveness::Schedule;
use airport_protocol::packet::Frame;
use airport_protocol::{Airport, Cid, Effects, Icao, Role, Room, Session, SocketId};
use serde_json::json;

/// One packet measured: its name, how many objects the airport holds first, its points table,
/// the frame.
pub struct Case {
    pub name: &'static str,
    pub objects: usize,
    pub points: Points,
    pub frame: String,
}

/// The airport's points table: none (no NETWORK_DB), or one point per object `OBJ_i`, each a
/// light of its own or in pairs (`OBJ_0` and `OBJ_1` the same light, …).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Points {
    None,
    Distinct,
    Paired,
}

impl Points {
    /// The grouping read from such a table of `count` points.
    pub fn grouping(self, count: usize) -> Equivalence {
        let light = |i: usize| match self {
            Points::Paired => i / 2,
            _ => i,
        };
        let rows = (0..count).map(|i| PointRow {
            id: format!("OBJ_{i}"),
            airport_id: "EGLL".into(),
            kind: "stopbar".into(),
            coordinates: Some(format!(
                r#"[{{"lat":51.{:04},"lng":-0.4614}},{{"lat":51.4776,"lng":-0.4612}}]"#,
                light(i)
            )),
            directionality: Some("uni-directional".into()),
            color: None,
            elevated: false,
            ihp: false,
        });
        match self {
            Points::None => Equivalence::default(),
            Points::Distinct | Points::Paired => Equivalence::of(rows),
        }
    }
}

pub fn cases() -> Vec<Case> {
    let case = |name, objects, frame: serde_json::Value| Case {
        name,
        objects,
        points: Points::None,
        frame: frame.to_string(),
    };
    let with_points = |name, points, frame: serde_json::Value| Case {
        name,
        objects: 1_000,
        points,
        frame: frame.to_string(),
    };
    let point_updates: Vec<_> = (0..200)
        .map(|i| json!({"objectId": format!("OBJ_{i}"), "state": i % 2 == 0}))
        .collect();
    let point_batch = json!({"type": "MULTI_STATE_UPDATE", "data": {"updates": point_updates}});
    let point_update =
        json!({"type": "STATE_UPDATE", "data": {"objectId": "OBJ_7", "state": true}});
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
            points: Points::None,
            frame: format!(
                "{{\"type\":\"HEARTBEAT\",\"pad\":\"{}\"}}",
                "x".repeat(49_972)
            ),
        },
        // Rejected after parsing: 50,000 characters of valid JSON with an unknown type.
        Case {
            name: "rejected_50000_chars_unknown_type",
            objects: 0,
            points: Points::None,
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
        // Equivalent points: no points table, or 1,000 points of which none, or every one, has
        // a duplicate; the same frames.
        with_points(
            "state_update_no_points_table",
            Points::None,
            point_update.clone(),
        ),
        with_points(
            "state_update_1000_points",
            Points::Distinct,
            point_update.clone(),
        ),
        with_points(
            "state_update_1000_points_duplicated",
            Points::Paired,
            point_update,
        ),
        with_points(
            "multi_state_update_200_no_points_table",
            Points::None,
            point_batch.clone(),
        ),
        with_points(
            "multi_state_update_200_of_1000_points",
            Points::Distinct,
            point_batch.clone(),
        ),
        with_points(
            "multi_state_update_200_of_1000_points_duplicated",
            Points::Paired,
            point_batch,
        ),
        // The cheapest question, asked by every client every minute or so; a flood of them is
        // what a question's own budget cuts off (docs/protocol.md §7).
        case("heartbeat", 1_000, json!({"type": "HEARTBEAT"})),
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
    /// The airport of `case`: its objects, and the grouping of its points.
    pub fn of(case: &Case) -> Self {
        let mut fixture = Fixture::new(case.objects);
        fixture
            .room
            .set_equivalence(case.points.grouping(case.objects));
        fixture
    }

    /// Seeded with `objects` objects, so that look-ups and inserts work on a realistic map.
    fn new(objects: usize) -> Self {
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
        room.connect(1, controller, "key".into(), None, 0)
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
        (self.room.frame(self.controller, Frame::Text(frame), now))
            .expect("a fixture's objects are read")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_points_cases_group_as_named() {
        assert!(Points::None.grouping(1_000).is_empty());
        assert!(Points::Distinct.grouping(1_000).is_empty());
        let paired = Points::Paired.grouping(1_000);
        assert_eq!(paired.groups().len(), 500);
        assert_eq!(
            paired.group_of("OBJ_7"),
            Some(&["OBJ_6".to_owned(), "OBJ_7".to_owned()][..])
        );
        // A grouped point's change writes both, and its sender hears of the other.
        let case = cases()
            .into_iter()
            .find(|c| c.name == "state_update_1000_points_duplicated")
            .unwrap();
        let mut fixture = Fixture::of(&case);
        let effects = fixture.send(&case.frame, 1);
        assert_eq!(effects.persist.len(), 3, "two objects and the seq");
        assert!(effects.change.unwrap().to_sender.is_some());
    }
}
