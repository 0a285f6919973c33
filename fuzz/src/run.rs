//! Drives one airport through a `Scenario` and checks every invariant after every event.

use crate::input::{LimitMode, Prefill, RoleChoice, Scenario, Step, Who};
use crate::{
    Baseline, Outcome, Store, T0, check_frame, check_written, prefilled_airport, reparsed,
    server_packet, session, unlimited,
};
use airport_realtime::protocol::airport::StoreOp;
use airport_realtime::protocol::config::{RateLimits, Timings};
use airport_realtime::protocol::machine::{Audience, Effects, on_frame, on_join, on_leave};
use airport_realtime::protocol::packet::Frame;
use airport_realtime::protocol::rate_limit::TokenBucket;
use airport_realtime::protocol::{Airport, Cid, Presence, Role, Session};
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;
use std::sync::OnceLock;

/// Prefilled airports are built once per process and cloned per run.
fn prefilled(prefill: Prefill) -> Airport {
    static CACHE: [OnceLock<Airport>; 5] = [const { OnceLock::new() }; 5];
    let slot = match prefill {
        Prefill::Empty => 0,
        Prefill::Some => 1,
        Prefill::NearObjectLimit => 2,
        Prefill::AtObjectLimit => 3,
        Prefill::NearSharedLimit => 4,
    };
    CACHE[slot]
        .get_or_init(|| {
            let (objects, shared) = prefill.sizes();
            if slot == 0 {
                Airport::new(crate::icao())
            } else {
                prefilled_airport(objects, shared)
            }
        })
        .clone()
}

fn who_session(who: &Who) -> Session {
    let role = match who.role {
        RoleChoice::Controller | RoleChoice::Controller2 => Role::Controller,
        RoleChoice::Pilot => Role::Pilot,
        RoleChoice::Observer => Role::Observer,
    };
    session(role, who.person, who.callsign)
}

/// What every run counts, for the statistics printed by `AIRPORT_FUZZ_STATS`.
#[derive(Debug, Default, Clone)]
pub struct Tally {
    pub frames: usize,
    pub changes: usize,
    pub rejections: BTreeMap<String, usize>,
    pub clears: usize,
}

/// `AIRPORT_FUZZ_DEBUG=1`: print every event and frame of a run (to read a reproducer).
fn debug() -> bool {
    static DEBUG: OnceLock<bool> = OnceLock::new();
    *DEBUG.get_or_init(|| std::env::var_os("AIRPORT_FUZZ_DEBUG").is_some_and(|v| v != "0"))
}

pub fn run(scenario: &Scenario) -> Tally {
    if debug() {
        eprintln!("limit {:?}, prefill {:?}", scenario.limit, scenario.prefill);
    }
    // Production's bucket for each role, or none.
    let limit_of = |role| match scenario.limit {
        LimitMode::Default => *RateLimits::default().for_role(role),
        _ => unlimited(),
    };
    let timings = Timings::default();
    let mut airport = prefilled(scenario.prefill);
    let mut store = Store::of(&airport);
    let mut presence = Presence::default();
    // Our own count of open sockets per person and role, to predict announcements.
    let mut sockets: BTreeMap<(Cid, Role), u32> = BTreeMap::new();
    let mut buckets: BTreeMap<(Cid, Role), TokenBucket> = BTreeMap::new();
    let mut tally = Tally::default();
    let mut now = T0;

    for step in &scenario.steps {
        if debug() && !matches!(step, Step::Frame { .. } | Step::Frame2 { .. }) {
            eprintln!("{step:?}");
        }
        let mut written: Vec<StoreOp> = Vec::new();
        // Near-limit airports are compared in full only after writes (see `Store::thorough`).
        store.thorough =
            airport.objects().len() <= 1_000 && airport.shared().serialized_chars() <= 100_000;
        match step {
            Step::Frame {
                who,
                dt,
                binary,
                packet,
            }
            | Step::Frame2 {
                who,
                dt,
                binary,
                packet,
            } => {
                now += i64::from(*dt);
                let session = who_session(who);
                let bytes = packet.render();
                if debug() {
                    eprintln!(
                        "frame from {:?} {}: {}",
                        session.role,
                        session.cid,
                        crate::Clip(&String::from_utf8_lossy(&bytes))
                    );
                }
                let frame = match (binary, std::str::from_utf8(&bytes)) {
                    (false, Ok(text)) => Frame::Text(text),
                    _ => Frame::Binary(&bytes),
                };
                let limit = limit_of(session.role);
                let bucket = buckets
                    .entry((session.cid.clone(), session.role))
                    .or_insert_with(|| TokenBucket::full(&limit, now));
                let effects = on_frame(
                    &mut airport,
                    &presence,
                    &session,
                    bucket,
                    &limit,
                    frame,
                    now,
                );
                let outcome = check_frame(&store, &airport, &session, &bytes, &effects, now);
                check_reads(&airport, &presence, &session, &effects, now);
                tally.frames += 1;
                match outcome {
                    Outcome::Rejected(code) => *tally.rejections.entry(code).or_default() += 1,
                    Outcome::Accepted { changed } => tally.changes += usize::from(changed),
                }
                if limit == unlimited()
                    && let Some(reply) = &effects.reply
                {
                    let code = &server_packet(reply, now)["data"]["code"];
                    assert_ne!(code, "RATE_LIMITED", "rate limited without a limit");
                }
                store.apply(&effects.persist);
                written.extend_from_slice(&effects.persist);
            }
            Step::Join { who } => {
                let session = who_session(who);
                let key = (session.cid.clone(), session.role);
                let first = !sockets.contains_key(&key);
                let joined = on_join(&mut airport, &mut presence, &session, &timings, now);
                *sockets.entry(key).or_default() += 1;
                assert!(store.same_state(&airport), "joining changed state");
                if session.role == Role::Controller {
                    assert_eq!(airport.offline_since(), None);
                    let expected = match store.offline_since {
                        Some(_) => vec![StoreOp::SetOfflineSince(None)],
                        None => vec![],
                    };
                    assert_eq!(joined.persist, expected);
                } else {
                    assert!(store.same(&airport));
                    assert!(joined.persist.is_empty());
                }
                let initial = server_packet(&joined.initial_state, now);
                assert_eq!(initial["type"], "INITIAL_STATE");
                assert!(initial.get("requestId").is_none());
                let data = &initial["data"];
                if !data.is_null() {
                    check_initial_state(data, &airport, &presence, &session, &sockets);
                }
                assert_eq!(
                    joined.announce.is_some(),
                    first && session.role == Role::Controller,
                    "announced {:?}",
                    joined.announce
                );
                if let Some(announce) = &joined.announce {
                    let packet = server_packet(announce, now);
                    assert_eq!(packet["type"], "CONTROLLER_CONNECT");
                    assert_eq!(packet["data"]["controllerId"], json!(session.cid.as_str()));
                }
                store.apply(&joined.persist);
                written.extend_from_slice(&joined.persist);
            }
            Step::Leave { who } => {
                let session = who_session(who);
                let key = (session.cid.clone(), session.role);
                let open = sockets.get(&key).copied().unwrap_or(0);
                let effects = on_leave(&mut airport, &mut presence, &session, now);
                match open {
                    0 => {}
                    1 => {
                        sockets.remove(&key);
                    }
                    _ => *sockets.get_mut(&key).expect("open") -= 1,
                }
                assert!(store.same_state(&airport), "leaving changed state");
                if open == 1 && session.role == Role::Controller {
                    let (audience, text) = effects.broadcast.as_ref().expect("a disconnect");
                    assert_eq!(*audience, Audience::Others);
                    let packet = server_packet(text, now);
                    assert_eq!(packet["type"], "CONTROLLER_DISCONNECT");
                    assert_eq!(packet["data"]["controllerId"], json!(session.cid.as_str()));
                    let grace_starts = !presence.has_controllers()
                        && store.offline_since.is_none()
                        && store.has_state();
                    let expected = if grace_starts {
                        vec![StoreOp::SetOfflineSince(Some(now))]
                    } else {
                        vec![]
                    };
                    assert_eq!(effects.persist, expected);
                    assert!(effects.reply.is_none() && effects.close.is_none());
                } else {
                    assert_eq!(effects, Effects::default());
                    assert!(store.same(&airport));
                }
                store.apply(&effects.persist);
                written.extend_from_slice(&effects.persist);
            }
            Step::Wait { ms } => now += i64::from(*ms % 200_000),
            Step::Alarm => {
                let ops = airport.clear_if_due(now, timings.offline_grace_ms);
                let due = store
                    .offline_since
                    .is_some_and(|since| since + timings.offline_grace_ms <= now);
                if !due {
                    assert!(ops.is_empty());
                    assert!(store.same(&airport));
                } else if store.has_state() {
                    assert_eq!(
                        ops,
                        vec![
                            StoreOp::SetOfflineSince(None),
                            StoreOp::ClearState,
                            StoreOp::SetSeq(store.seq + 1)
                        ]
                    );
                    assert!(airport.objects().is_empty() && airport.shared().is_empty());
                    assert_eq!(airport.seq(), store.seq + 1);
                    tally.clears += 1;
                } else {
                    assert_eq!(ops, vec![StoreOp::SetOfflineSince(None)]);
                    assert_eq!(airport.seq(), store.seq);
                }
                if due {
                    assert_eq!(airport.offline_since(), None);
                }
                store.apply(&ops);
                written.extend_from_slice(&ops);
            }
        }
        // After every event: replaying what was persisted rebuilds exactly the airport in
        // memory (so an event that persisted nothing changed nothing), the limits hold, and an
        // airport with a controller connected is not counting down to its clearing.
        let wrote = !written.is_empty();
        if wrote || store.thorough {
            store.check(&airport);
        } else {
            assert!(store.same(&airport), "the airport changed without a write");
        }
        if wrote {
            check_written(&airport, &written);
        }
        assert_eq!(presence.total(), sockets.values().sum::<u32>());
        if presence.has_controllers() {
            assert_eq!(airport.offline_since(), None);
        }
    }
    store.check(&airport);
    tally
}

fn check_initial_state(
    data: &Value,
    airport: &Airport,
    presence: &Presence,
    session: &Session,
    sockets: &BTreeMap<(Cid, Role), u32>,
) {
    assert_eq!(data["seq"], json!(airport.seq()));
    assert_eq!(data["cid"], json!(session.cid.as_str()));
    assert_eq!(data["connectionType"], json!(session.role.as_str()));
    assert_eq!(data["offline"], json!(!presence.has_controllers()));
    assert_eq!(
        data["objects"].as_array().map(Vec::len),
        Some(airport.objects().len())
    );
    check_controllers(&data["controllers"], sockets);
}

/// `controllers` lists each connected controller once.
fn check_controllers(listed: &Value, sockets: &BTreeMap<(Cid, Role), u32>) {
    let listed: Vec<&str> = listed
        .as_array()
        .expect("controllers")
        .iter()
        .map(|c| c.as_str().expect("a cid"))
        .collect();
    let expected: Vec<&str> = sockets
        .keys()
        .filter(|(_, role)| *role == Role::Controller)
        .map(|(cid, _)| cid.as_str())
        .collect();
    assert_eq!(listed, expected);
}

/// Replies to reads say what the airport and presence hold; a crossing names its pilot.
fn check_reads(
    airport: &Airport,
    presence: &Presence,
    session: &Session,
    effects: &Effects,
    now: i64,
) {
    if let Some(reply) = &effects.reply {
        let packet = server_packet(reply, now);
        let data = &packet["data"];
        match packet["type"].as_str() {
            Some("STATE_SNAPSHOT") if data.is_null() => {}
            Some("STATE_SNAPSHOT") => {
                assert_eq!(data["seq"], json!(airport.seq()));
                assert_eq!(
                    data["objects"].as_array().map(Vec::len),
                    Some(airport.objects().len())
                );
                assert_eq!(
                    data["sharedState"].as_object(),
                    Some(&reparsed::<_, Map<String, Value>>(
                        airport.shared().as_map()
                    ))
                );
                assert_eq!(data["offline"], json!(!presence.has_controllers()));
            }
            Some("ONLINE_PILOTS") => {
                assert_eq!(
                    data["pilots"].as_array().map(Vec::len),
                    Some(presence.pilots().count())
                );
            }
            Some("HEARTBEAT_ACK" | "ERROR") => {}
            other => panic!("unexpected reply {other:?}: {reply}"),
        }
    }
    if let Some((Audience::Controllers, text)) = &effects.broadcast {
        let packet = server_packet(text, now);
        assert_eq!(packet["type"], "STOPBAR_CROSSING");
        assert_eq!(packet["data"]["pilotId"], json!(session.cid.as_str()));
        let callsign = session
            .callsign
            .as_deref()
            .or(presence.callsign_of(&session.cid));
        assert_eq!(
            packet["data"].get("callsign").and_then(Value::as_str),
            callsign
        );
    }
}
