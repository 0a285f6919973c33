//! Drives one airport through a `Scenario` and checks every invariant after every event.

use crate::input::{LimitMode, Prefill, RoleChoice, Scenario, Step, Who};
use crate::{
    Baseline, Outcome, check_frame, check_left, check_written, prefilled_airport, reparsed,
    server_packet, session,
};
use airport_protocol::airport::StoreOp;
use airport_protocol::config::Timings;
use airport_protocol::connect::HttpError;
use airport_protocol::effects::To;
use airport_protocol::liveness::restored_last_seen;
use airport_protocol::packet::Frame;
use airport_protocol::room::Answers;
use airport_protocol::room::FLOOD_COOLDOWN_MS;
use airport_protocol::{Airport, Cid, CloseCode, Effects, Presence, Role, Session, SocketId};
use airport_testkit::harness::{Audience, Harness, Sent};
use airport_testkit::store::Store;
use airport_testkit::store::objects_of;
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
    let limited = scenario.limit == LimitMode::Default;
    let mut h = crate::room(prefilled(scenario.prefill), limited);
    let timings = h.room.config().timings;
    let mut store = Store::of(h.airport());
    // Our own model of the open sockets, to predict announcements and idle closes.
    let mut model = Sockets::default();
    let mut tally = Tally::default();

    for step in &scenario.steps {
        if debug() && !matches!(step, Step::Frame { .. } | Step::Frame2 { .. }) {
            eprintln!("{step:?}");
        }
        let mut written: Vec<StoreOp> = Vec::new();
        // Near-limit airports are compared in full only after writes (see `Store::thorough`).
        store.thorough = objects_of(h.airport()).len() <= 1_000
            && h.airport().shared().serialized_chars() <= 100_000;
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
                h.now += i64::from(*dt);
                let session = who_session(who);
                if model.socket_of(&session).is_none() {
                    join(&mut h, &mut model, &mut store, &session, &mut written);
                }
                // Refused at the caps: the client has no socket to send on.
                let Some(socket) = model.socket_of(&session) else {
                    continue;
                };
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
                let sent = h.send_frame(&session, frame);
                let now = h.now;
                if let Some((_, heard)) = model.open.get_mut(&socket) {
                    *heard = now;
                }
                let outcome = check_frame(&store, h.airport(), &session, &bytes, &sent, now);
                check_reads(h.airport(), h.room.presence(), &session, &sent, now);
                tally.frames += 1;
                match outcome {
                    Outcome::Rejected(code) => *tally.rejections.entry(code).or_default() += 1,
                    Outcome::Accepted { changed } => tally.changes += usize::from(changed),
                }
                if !limited && let Some(reply) = &sent.reply {
                    let code = &server_packet(reply, now)["data"]["code"];
                    assert_ne!(code, "RATE_LIMITED", "rate limited without a limit");
                }
                if sent.close == Some(CloseCode::Flooding) {
                    (model.flooded).insert(session.cid.clone(), now + FLOOD_COOLDOWN_MS);
                }
                if sent.close.is_some() {
                    let leaving = model.leave(socket);
                    check_leave(
                        &store,
                        &model,
                        &leaving,
                        &sent.persist,
                        sent.broadcast.as_ref(),
                        now,
                    );
                }
                store.apply(&sent.persist);
                written.extend_from_slice(&sent.persist);
            }
            Step::Join { who } => {
                join(
                    &mut h,
                    &mut model,
                    &mut store,
                    &who_session(who),
                    &mut written,
                );
            }
            Step::Leave { who } => {
                let session = who_session(who);
                let Some(socket) = model.socket_of(&session) else {
                    continue;
                };
                let effects = h.leave(socket);
                let leaving = model.leave(socket);
                assert!(store.same_state(h.airport()), "leaving changed state");
                let broadcast = announced(&effects, socket);
                check_leave(
                    &store,
                    &model,
                    &leaving,
                    &effects.persist,
                    broadcast.as_ref(),
                    h.now,
                );
                assert!(effects.change.is_none() && effects.closes().next().is_none());
                store.apply(&effects.persist);
                written.extend_from_slice(&effects.persist);
            }
            Step::Wait { ms } => h.now += i64::from(*ms % 200_000),
            Step::Wake => {
                let effects = h.wake(store.restore(crate::icao()), store.schedule);
                model.flooded.clear();
                // The room now knows each socket only from its attachment: heard when that was
                // last saved, pushed forward (`liveness::restored_last_seen`).
                for (socket, (_, heard)) in model.open.iter_mut() {
                    let attachment = h.attachment(*socket).expect("an open socket's attachment");
                    *heard = restored_last_seen(attachment.last_seen);
                }
                let expected = if !model.has_controllers()
                    && store.has_state()
                    && store.offline_since.is_none()
                {
                    vec![StoreOp::SetOfflineSince(Some(h.now))]
                } else {
                    vec![]
                };
                assert_eq!(effects.persist, expected, "a wake-up's writes");
                assert!(effects.actions.is_empty() && effects.change.is_none());
                store.apply(&effects.persist);
                written.extend_from_slice(&effects.persist);
            }
            Step::Alarm => {
                let now = h.now;
                // An alarm that runs past its time does not count the delay as the sockets'
                // silence (`Room::alarm`): here the run, not the room, decides when it fires.
                let late = h.room.next_wake().map_or(0, |due| (now - due).max(0));
                let idle = model.idle(now - late, &timings);
                // Due before the alarm's idle closes: a grace period they start is not due yet.
                let due = store
                    .offline_since
                    .is_some_and(|since| since + timings.offline_grace_ms <= now);
                let effects = h.alarm(&Answers::default());
                let closed: Vec<SocketId> = effects.closes().collect();
                assert_eq!(closed, idle, "idle closes");
                let mut ops = effects.persist.clone();
                for socket in closed {
                    let leaving = model.leave(socket);
                    if leaving.grace_starts(&store, &model) {
                        assert_eq!(ops.first(), Some(&StoreOp::SetOfflineSince(Some(now))));
                        store.apply(&ops[..1]);
                        ops.remove(0);
                    }
                }
                ops.retain(|op| !matches!(op, StoreOp::SetSchedule(_)));
                if !due {
                    assert!(ops.is_empty(), "{ops:?}");
                } else if store.has_state() {
                    assert_eq!(
                        ops,
                        vec![
                            StoreOp::SetOfflineSince(None),
                            StoreOp::ClearState,
                            StoreOp::SetSeq(store.seq + 1),
                            StoreOp::SetResumeFloor(store.seq + 1)
                        ]
                    );
                    assert!(objects_of(h.airport()).is_empty() && h.airport().shared().is_empty());
                    assert_eq!(h.airport().seq(), store.seq + 1);
                    tally.clears += 1;
                } else {
                    assert_eq!(ops, vec![StoreOp::SetOfflineSince(None)]);
                    assert_eq!(h.airport().seq(), store.seq);
                }
                if due {
                    assert_eq!(h.airport().offline_since(), None);
                }
                store.apply(&effects.persist);
                written.extend_from_slice(&effects.persist);
            }
        }
        // After every event: replaying what was persisted rebuilds exactly the airport in
        // memory (so an event that persisted nothing changed nothing), the limits hold, and an
        // airport with a controller connected is not counting down to its clearing.
        let airport = h.airport();
        let wrote = written
            .iter()
            .any(|op| !matches!(op, StoreOp::SetSchedule(_)));
        if wrote || store.thorough {
            store.check(airport);
        } else {
            assert!(store.same(airport), "the airport changed without a write");
        }
        if wrote {
            check_written(airport, &written);
        }
        let presence = h.room.presence();
        assert_eq!(presence.total() as usize, model.open.len());
        if presence.has_controllers() {
            assert_eq!(airport.offline_since(), None);
        }
    }
    store.check(h.airport());
    crate::check_airport(h.airport());
    tally
}

/// The open sockets as the run predicts them: who is on each and when each was last heard; and
/// until when each person closed for flooding is refused (`room::FLOOD_COOLDOWN_MS`), which the
/// room forgets when it hibernates.
#[derive(Debug, Default)]
struct Sockets {
    open: BTreeMap<SocketId, (Session, i64)>,
    flooded: BTreeMap<Cid, i64>,
}

/// A socket that left: who, and whether it was their last in that role.
struct Leaving {
    session: Session,
    last: bool,
}

impl Leaving {
    /// Whether the offline grace period starts with this leave.
    fn grace_starts(&self, store: &Store, model: &Sockets) -> bool {
        self.last
            && self.session.role == Role::Controller
            && !model.has_controllers()
            && store.offline_since.is_none()
            && store.has_state()
    }
}

impl Sockets {
    fn socket_of(&self, session: &Session) -> Option<SocketId> {
        self.open
            .iter()
            .find(|(_, (s, _))| s == session)
            .map(|(id, _)| *id)
    }

    fn count(&self, cid: &Cid, role: Role) -> usize {
        self.open
            .values()
            .filter(|(s, _)| &s.cid == cid && s.role == role)
            .count()
    }

    fn has_controllers(&self) -> bool {
        self.open.values().any(|(s, _)| s.role == Role::Controller)
    }

    fn leave(&mut self, socket: SocketId) -> Leaving {
        let (session, _) = self.open.remove(&socket).expect("an open socket");
        let last = self.count(&session.cid, session.role) == 0;
        Leaving { session, last }
    }

    /// The sockets an alarm at `now` closes as idle, in id order.
    fn idle(&self, now: i64, timings: &Timings) -> Vec<SocketId> {
        self.open
            .iter()
            .filter(|(_, (_, heard))| heard + timings.idle_timeout_ms <= now)
            .map(|(id, _)| *id)
            .collect()
    }
}

/// A leave's writes and announcement, as the model predicts them.
fn check_leave(
    store: &Store,
    model: &Sockets,
    leaving: &Leaving,
    persist: &[StoreOp],
    broadcast: Option<&(Audience, String)>,
    now: i64,
) {
    check_left(&leaving.session, persist, broadcast, now);
    let announced = leaving.last && leaving.session.role == Role::Controller;
    assert_eq!(broadcast.is_some(), announced, "announced {broadcast:?}");
    let expected: Vec<StoreOp> = leaving
        .grace_starts(store, model)
        .then_some(StoreOp::SetOfflineSince(Some(now)))
        .into_iter()
        .collect();
    assert_eq!(persist, expected);
}

/// The announcement a leave sends to the others, if any.
fn announced(effects: &Effects, socket: SocketId) -> Option<(Audience, String)> {
    let mut sent = effects.sent_to(To::All {
        except: Some(socket),
    });
    let first = sent.next().map(|p| (Audience::Others, p.to_owned()));
    assert!(sent.next().is_none());
    first
}

/// A new socket for `session`: refused with nothing changed when the caps are reached (a
/// person's sockets in every role count against their key's), else admitted; it gets its
/// `INITIAL_STATE` first, and a controller's first socket is announced.
fn join(
    h: &mut Harness,
    model: &mut Sockets,
    store: &mut Store,
    session: &Session,
    written: &mut Vec<StoreOp>,
) {
    let first = model.count(&session.cid, session.role) == 0;
    let caps = h.room.config().caps;
    let of_key = model
        .open
        .values()
        .filter(|(s, _)| s.cid == session.cid)
        .count();
    let full = of_key >= caps.per_key as usize || model.open.len() >= caps.per_airport as usize;
    let cooling = (model.flooded.get(&session.cid)).and_then(|until| {
        let left = until - h.now;
        (left > 0).then(|| (left as u64).div_ceil(1000).max(1) as u32)
    });
    let (socket, joined) = match h.try_connect(session) {
        Ok(joined) => joined,
        Err(error) => {
            match cooling {
                Some(retry_after_s) => {
                    assert_eq!(error, HttpError::TooManyRequests { retry_after_s });
                }
                None => {
                    assert!(full, "refused below the caps: {error:?}");
                    assert!(matches!(error, HttpError::TooManyConnections { .. }));
                }
            }
            assert!(
                store.same_state(h.airport()),
                "a refused join changed state"
            );
            return;
        }
    };
    assert!(
        !full && cooling.is_none(),
        "admitted past the caps or a flood's cooldown"
    );
    model.open.insert(socket, (session.clone(), h.now));
    let now = h.now;
    let airport = h.airport();
    assert!(store.same_state(airport), "joining changed state");
    let persist: Vec<StoreOp> = joined
        .persist
        .iter()
        .filter(|op| !matches!(op, StoreOp::SetSchedule(_)))
        .cloned()
        .collect();
    if session.role == Role::Controller {
        assert_eq!(airport.offline_since(), None);
        let expected = match store.offline_since {
            Some(_) => vec![StoreOp::SetOfflineSince(None)],
            None => vec![],
        };
        assert_eq!(persist, expected);
    } else {
        assert!(persist.is_empty());
    }
    let initial = server_packet(
        joined
            .sent_to(To::Socket(socket))
            .next()
            .expect("INITIAL_STATE"),
        now,
    );
    assert_eq!(initial["type"], "INITIAL_STATE");
    assert!(initial.get("requestId").is_none());
    let data = &initial["data"];
    if !data.is_null() {
        check_initial_state(data, airport, h.room.presence(), session, model);
    }
    let announce = announced(&joined, socket);
    assert_eq!(
        announce.is_some(),
        first && session.role == Role::Controller,
        "announced {announce:?}"
    );
    if let Some((_, announce)) = &announce {
        let packet = server_packet(announce, now);
        assert_eq!(packet["type"], "CONTROLLER_CONNECT");
        assert_eq!(packet["data"]["controllerId"], json!(session.cid.as_str()));
    }
    store.apply(&joined.persist);
    written.extend_from_slice(&joined.persist);
}

fn check_initial_state(
    data: &Value,
    airport: &Airport,
    presence: &Presence,
    session: &Session,
    model: &Sockets,
) {
    assert_eq!(data["seq"], json!(airport.seq()));
    assert_eq!(data["cid"], json!(session.cid.as_str()));
    assert_eq!(data["connectionType"], json!(session.role.as_str()));
    assert_eq!(data["offline"], json!(!presence.has_controllers()));
    assert_eq!(
        data["objects"].as_array().map(Vec::len),
        Some(objects_of(airport).len())
    );
    check_controllers(&data["controllers"], model);
}

/// `controllers` lists each connected controller once.
fn check_controllers(listed: &Value, model: &Sockets) {
    let listed: Vec<&str> = listed
        .as_array()
        .expect("controllers")
        .iter()
        .map(|c| c.as_str().expect("a cid"))
        .collect();
    let expected: Vec<&str> = model
        .open
        .values()
        .filter(|(s, _)| s.role == Role::Controller)
        .map(|(s, _)| s.cid.as_str())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    assert_eq!(listed, expected);
}

/// Replies to reads say what the airport and presence hold; a crossing names its pilot.
fn check_reads(
    airport: &Airport,
    presence: &Presence,
    session: &Session,
    effects: &Sent,
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
                    Some(objects_of(airport).len())
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
