//! The directory of airports (PROTOCOL §6): how each airport stands, kept by its Durable Object
//! in D1, so that `GET /state` answers an airport with nothing in it without waking (or
//! creating) its object, and `GET /state?airport=all` reads only the airports live now.

use super::airport::Airport;
use super::ids::Icao;
use super::outbound;
use super::presence::Presence;

/// How an airport stands in the directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listing {
    /// A controller or a pilot is connected: listed by `/state?airport=all`.
    Live,
    /// State is kept through the offline grace period, with no controller or pilot connected.
    Awake,
    /// No controller or pilot and no state: `/state` is answered from the directory. Observers
    /// may be connected: `/state` does not show them, so its answer is the same.
    Dormant,
}

impl Listing {
    /// What `/state` of the airport would show decides: observers change nothing in it, so a
    /// dashboard watching a quiet airport costs no directory write.
    pub fn of(airport: &Airport, presence: &Presence) -> Listing {
        if presence.is_live() {
            Listing::Live
        } else if airport.has_state() {
            Listing::Awake
        } else {
            Listing::Dormant
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Listing::Live => "live",
            Listing::Awake => "awake",
            Listing::Dormant => "dormant",
        }
    }

    pub fn parse(text: &str) -> Option<Listing> {
        [Listing::Live, Listing::Awake, Listing::Dormant]
            .into_iter()
            .find(|listing| listing.as_str() == text)
    }
}

/// The `/state` body of an airport that is dormant (or was never used): nothing connected,
/// nothing kept, and the `seq` it stopped at.
pub fn dormant_state(icao: Icao, seq: u64) -> String {
    let airport = Airport::restore(icao, Default::default(), Default::default(), seq, None);
    let parts = outbound::SnapshotParts::without_objects(&airport);
    outbound::public_state(&airport, &parts, &Presence::default())
}

/// `GET /state?airport=all` lists at most this many airports, the first in ICAO order. It
/// costs one subrequest per airport, and a Worker's request may make 1,000; the network's
/// busiest hours see a few hundred airports live.
pub const ALL_STATES_MAX_AIRPORTS: usize = 500;
/// …and at most this many bytes of airports' states (each airport's state is itself bounded:
/// `limits::MAX_OBJECTS` and the total state bound). An airport that would pass it is left out.
pub const ALL_STATES_MAX_BYTES: usize = 8 << 20;

/// The body of `GET /state?airport=all` from the live airports' `/state` bodies in ICAO order,
/// within both bounds; `"truncated": true` when an airport was left out (`listed_more`: the
/// directory had more live airports than were asked).
pub fn all_states_body<'a>(states: impl IntoIterator<Item = &'a str>, listed_more: bool) -> String {
    let mut body = String::from("{\"states\":[");
    let (mut taken, mut truncated) = (0, listed_more);
    for state in states {
        if taken == ALL_STATES_MAX_AIRPORTS || body.len() + state.len() > ALL_STATES_MAX_BYTES {
            truncated = true;
            continue;
        }
        if taken > 0 {
            body.push(',');
        }
        body.push_str(state);
        taken += 1;
    }
    body.push(']');
    if truncated {
        body.push_str(",\"truncated\":true");
    }
    body.push('}');
    body
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Cid, Role, Session};
    use serde_json::{Value, json};

    fn session(cid: &str, role: Role) -> Session {
        Session {
            cid: Cid::parse(cid).unwrap(),
            role,
            callsign: None,
        }
    }

    #[test]
    fn an_airport_is_live_with_a_controller_or_pilot_and_dormant_with_nothing_shown() {
        let icao = Icao::parse("EGLL").unwrap();
        let mut airport = Airport::new(icao.clone());
        let mut presence = Presence::default();
        assert_eq!(Listing::of(&airport, &presence), Listing::Dormant);
        presence.join(&session("3", Role::Observer));
        assert_eq!(Listing::of(&airport, &presence), Listing::Dormant);
        // …because the directory's answer is the airport's own.
        let parts = outbound::SnapshotParts::without_objects(&airport);
        let own = outbound::public_state(&airport, &parts, &presence);
        assert_eq!(own, dormant_state(icao.clone(), airport.seq()));
        for role in [Role::Pilot, Role::Controller] {
            let person = session("1", role);
            presence.join(&person);
            assert_eq!(Listing::of(&airport, &presence), Listing::Live);
            presence.leave(&person);
        }
        presence.leave(&session("3", Role::Observer));
        let change = crate::packet::ObjectChange {
            object_id: "SB_1".into(),
            op: crate::packet::ChangeOp::Replace(Value::Bool(true)),
        };
        let by = Cid::parse("1").unwrap();
        airport
            .apply_changes(vec![change], |_| "data".into(), &by, 5)
            .unwrap();
        assert_eq!(Listing::of(&airport, &presence), Listing::Awake);
        for listing in [Listing::Live, Listing::Awake, Listing::Dormant] {
            assert_eq!(Listing::parse(listing.as_str()), Some(listing));
        }
    }

    #[test]
    fn all_states_stay_within_their_bounds() {
        let state = dormant_state(Icao::parse("KJFK").unwrap(), 1);
        let parse = |body: &str| serde_json::from_str::<Value>(body).unwrap();
        let two = parse(&all_states_body([state.as_str(), state.as_str()], false));
        assert_eq!(two["states"].as_array().unwrap().len(), 2);
        assert_eq!(two.get("truncated"), None);
        assert_eq!(parse(&all_states_body([], false)), json!({"states": []}));
        assert_eq!(
            parse(&all_states_body([], true)),
            json!({"states": [], "truncated": true})
        );
        let many = vec![state.as_str(); ALL_STATES_MAX_AIRPORTS + 1];
        let body = parse(&all_states_body(many, false));
        assert_eq!(
            body["states"].as_array().unwrap().len(),
            ALL_STATES_MAX_AIRPORTS
        );
        assert_eq!(body["truncated"], true);
        // A state past the byte budget is left out; smaller ones after it still fit.
        let huge = format!(
            "{{\"airport\":\"EGLL\",\"pad\":\"{}\"}}",
            "x".repeat(ALL_STATES_MAX_BYTES)
        );
        let body = all_states_body([state.as_str(), huge.as_str(), state.as_str()], false);
        assert!(body.len() <= ALL_STATES_MAX_BYTES + 64);
        let body = parse(&body);
        assert_eq!(body["states"].as_array().unwrap().len(), 2);
        assert_eq!(body["truncated"], true);
    }

    #[test]
    fn a_dormant_airport_reads_as_empty_at_its_seq() {
        let body: Value =
            serde_json::from_str(&dormant_state(Icao::parse("KJFK").unwrap(), 41)).unwrap();
        assert_eq!(
            body,
            json!({
                "airport": "KJFK", "objects": [], "sharedState": {}, "controllers": [],
                "pilots": [], "offline": true, "seq": 41,
                "connections": {"controllers": 0, "pilots": 0},
            })
        );
    }
}
