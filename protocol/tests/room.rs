//! The room's own decisions in simulated time: admission, heartbeats, idle closes, re-check
//! verdicts, offline clearing, the alarm time, restoring after hibernation, and the outbox
//! that commits and delivers.

use airport_protocol::account::Account;
use airport_protocol::config::{Caps, Config, RoleSource, VatsimSettings};
use airport_protocol::connect::HttpError;
use airport_protocol::effects::{Action, To};
use airport_protocol::liveness::{STORE_LAST_SEEN_EVERY_MS, Schedule};
use airport_protocol::outbound::Stamp;
use airport_protocol::outbox::{Next, Outbox};
use airport_protocol::packet::Frame;
use airport_protocol::recheck::{KeyStanding, NetworkStanding, session_at};
use airport_protocol::room::Answers;
use airport_protocol::session::Attachment;
use airport_protocol::vatsim::{ConnectionType, NetworkConnection};
use airport_protocol::{CloseCode, Effects, Role, Room, Session, StoreOp};
use airport_testkit::harness::{Harness, egll, key_of, parse, who};
use airport_testkit::store::objects_of;
use serde_json::json;

fn types(effects: &Effects, to: To) -> Vec<String> {
    effects
        .sent_to(to)
        .map(|p| parse(p)["type"].as_str().unwrap().to_owned())
        .collect()
}

fn closed(effects: &Effects) -> Vec<(u64, u16)> {
    effects
        .actions
        .iter()
        .filter_map(|a| match a {
            Action::Close { socket, code, .. } => Some((*socket, code.code())),
            Action::Send { .. } => None,
        })
        .collect()
}

const EVERYONE: To = To::All { except: None };

#[test]
fn heartbeats_follow_the_interval_and_the_schedule_is_persisted() {
    let mut h = Harness::new();
    let t = h.room.config().timings;
    let (_, joined) = h.connect(&who(Role::Observer, "1000021"));
    let start = h.now;
    let recheck_ms = h.room.config().recheck_ms;
    assert!(joined.persist.contains(&StoreOp::SetSchedule(Schedule {
        heartbeat: Some(start + t.heartbeat_interval_ms),
        recheck: Some(start + recheck_ms),
    })));
    for beat in 1..=5 {
        let due = start + beat * t.heartbeat_interval_ms;
        assert!(h.room.next_wake().is_some_and(|at| at <= due));
        // The observer answers each heartbeat, so it is never idle.
        h.now = due - 1;
        h.send(
            &who(Role::Observer, "1000021"),
            json!({"type": "HEARTBEAT_ACK"}),
        );
        while h.room.next_wake().is_some_and(|at| at < due) {
            h.now = h.room.next_wake().unwrap();
            h.alarm(&Answers::default());
        }
        h.now = due;
        let alarm = h.alarm(&Answers::default());
        assert_eq!(types(&alarm, EVERYONE), ["HEARTBEAT"], "beat {beat}");
        assert!(closed(&alarm).is_empty());
    }
}

#[test]
fn a_silent_socket_is_closed_at_its_idle_deadline_without_a_heartbeat() {
    let mut h = Harness::new();
    let t = h.room.config().timings;
    let pilot = who(Role::Pilot, "1000011");
    let (quiet, _) = h.connect(&pilot);
    let start = h.now;
    assert_eq!(h.room.next_wake(), Some(start + t.heartbeat_interval_ms));
    h.now = start + t.heartbeat_interval_ms;
    assert_eq!(
        types(&h.alarm(&Answers::default()), EVERYONE),
        ["HEARTBEAT"]
    );
    // The idle deadline comes before the next heartbeat.
    assert_eq!(h.room.next_wake(), Some(start + t.idle_timeout_ms));
    h.now = start + t.idle_timeout_ms - 1;
    assert!(closed(&h.alarm(&Answers::default())).is_empty());
    h.now += 1;
    let alarm = h.alarm(&Answers::default());
    assert_eq!(closed(&alarm), [(quiet, CloseCode::Idle.code())]);
    assert!(types(&alarm, EVERYONE).is_empty());
    assert_eq!(h.room.session(quiet), None);
    assert_eq!(h.room.presence().total(), 0);
}

#[test]
fn a_frame_moves_its_sockets_idle_deadline_and_refreshes_the_attachment_now_and_then() {
    let mut h = Harness::new();
    let t = h.room.config().timings;
    let pilot = who(Role::Pilot, "1000011");
    let (socket, _) = h.connect(&pilot);
    h.step_ms = STORE_LAST_SEEN_EVERY_MS / 2;
    let first = h.frame(socket, Frame::Text(r#"{"type":"HEARTBEAT"}"#), h.now + 1);
    assert!(
        first.attachments.is_empty(),
        "stored less than a second ago"
    );
    h.now += STORE_LAST_SEEN_EVERY_MS;
    let later = h.frame(socket, Frame::Text(r#"{"type":"HEARTBEAT"}"#), h.now);
    assert_eq!(later.attachments.len(), 1);
    assert_eq!(later.attachments[0].last_seen, h.now);
    // With heartbeats far apart, the idle deadline is the next wake-up and follows the frame.
    let mut config = Config::default();
    config.timings.heartbeat_interval_ms = 10 * t.idle_timeout_ms;
    config.timings.idle_timeout_ms = t.idle_timeout_ms;
    let mut h = Harness::with(config, egll());
    let (socket, _) = h.connect(&pilot);
    assert_eq!(h.room.next_wake(), Some(h.now + t.idle_timeout_ms));
    h.now += 5_000;
    h.frame(socket, Frame::Text(r#"{"type":"HEARTBEAT"}"#), h.now);
    assert_eq!(h.room.next_wake(), Some(h.now + t.idle_timeout_ms));
}

/// The EuroScope plugin only answers heartbeats: over an hour of the room's own alarms it is
/// never closed, and every alarm comes at the room's `next_wake`.
#[test]
fn a_client_that_only_acknowledges_heartbeats_stays_connected() {
    let mut h = Harness::new();
    let controller = who(Role::Controller, "1000001");
    let (socket, _) = h.connect(&controller);
    let end = h.now + 3_600_000;
    let mut heartbeats = 0;
    while let Some(at) = h.room.next_wake().filter(|at| *at <= end) {
        h.now = at;
        let mut answers = Answers::default();
        answers.keys.insert(
            key_of(&controller.cid),
            KeyStanding::Valid(account(Role::Controller)),
        );
        let alarm = h.alarm(&answers);
        assert!(closed(&alarm).is_empty(), "closed at {at}");
        if types(&alarm, EVERYONE) == ["HEARTBEAT"] {
            heartbeats += 1;
            h.now += 40; // the plugin's answer
            h.frame(socket, Frame::Text(r#"{"type":"HEARTBEAT_ACK"}"#), h.now);
        }
    }
    assert_eq!(heartbeats, 60);
}

fn account(role: Role) -> Account {
    Account {
        cid: who(role, "1000001").cid,
        role,
        banned: false,
        banned_until: None,
    }
}

/// Sockets that stay open past a re-check without a frame.
fn patient(role_source: RoleSource) -> Harness {
    let mut config = Config {
        role_source,
        ..Config::default()
    };
    config.timings.idle_timeout_ms = 10 * config.recheck_ms;
    Harness::with(config, egll())
}

#[test]
fn a_recheck_closes_revoked_banned_and_changed_sessions_and_keeps_the_unknown() {
    let mut h = patient(RoleSource::Static);
    let recheck_ms = h.room.config().recheck_ms;
    let people = [
        who(Role::Controller, "1000001"),
        who(Role::Controller, "1000002"),
        who(Role::Pilot, "1000003"),
        who(Role::Observer, "1000004"),
        who(Role::Pilot, "1000005"),
    ];
    let sockets: Vec<u64> = people.iter().map(|p| h.connect(p).0).collect();
    let start = h.now;
    let mut answers = Answers::default();
    let banned = Account {
        banned: true,
        ..account(Role::Controller)
    };
    let standings = [
        KeyStanding::Valid(account(Role::Controller)),
        KeyStanding::Revoked,
        KeyStanding::Valid(account(Role::Observer)),
        KeyStanding::Valid(banned),
    ];
    for (person, standing) in people.iter().zip(standings) {
        answers.keys.insert(key_of(&person.cid), standing);
    }
    // Every alarm before the re-check is due (the heartbeats) asks nothing.
    while let Some(at) = h.room.next_wake().filter(|at| *at < start + recheck_ms) {
        h.now = at;
        let (effects, questions) = h.room.alarm(h.now);
        assert!(questions.is_none() && closed(&effects).is_empty());
    }
    assert_eq!(h.room.next_wake(), Some(start + recheck_ms));
    h.now = start + recheck_ms;
    let (_, questions) = h.room.alarm(h.now);
    let questions = questions.expect("a re-check is due");
    assert_eq!(questions.key_hashes.len(), 5);
    assert!(questions.people.is_empty(), "no network under `static`");
    let effects = h.room.rechecked(&answers, h.now);
    assert_eq!(
        closed(&effects),
        [
            (sockets[1], CloseCode::KeyRevoked.code()),
            (sockets[2], CloseCode::RoleChanged.code()),
            (sockets[3], CloseCode::RoleChanged.code()),
        ]
    );
    for socket in &sockets[1..4] {
        let error = parse(effects.sent_to(To::Socket(*socket)).next().unwrap());
        assert_eq!(error["data"]["code"], "FORBIDDEN");
    }
    // Kept: the valid controller, and the pilot whose key could not be looked up.
    assert!(h.room.session(sockets[0]).is_some() && h.room.session(sockets[4]).is_some());
    assert_eq!(h.room.presence().total(), 2);
    let next = start + 2 * recheck_ms;
    assert!(h.room.next_wake().is_some_and(|at| at <= next));
}

#[test]
fn under_vatsim_a_recheck_asks_each_person_once_and_follows_a_new_callsign() {
    let mut h = patient(RoleSource::Vatsim(VatsimSettings::default()));
    let pilot = Session {
        callsign: Some("BAW1".into()),
        ..who(Role::Pilot, "1000011")
    };
    let (one, _) = h.connect(&pilot);
    let (two, _) = h.connect(&pilot);
    h.now += h.room.config().recheck_ms;
    let (_, questions) = h.room.alarm(h.now);
    let questions = questions.unwrap();
    assert_eq!(questions.people, std::slice::from_ref(&pilot.cid));
    assert_eq!(questions.key_hashes, [key_of(&pilot.cid)]);
    let mut answers = Answers::default();
    answers
        .keys
        .insert(key_of(&pilot.cid), KeyStanding::Valid(account(Role::Pilot)));
    answers.network.insert(
        pilot.cid.clone(),
        NetworkStanding::Connected(vec![NetworkConnection {
            callsign: "BAW2".into(),
            kind: ConnectionType::Pilot,
        }]),
    );
    let effects = h.room.rechecked(&answers, h.now);
    assert!(closed(&effects).is_empty());
    let renamed: Vec<&Attachment> = effects.attachments.iter().collect();
    assert_eq!(renamed.len(), 2);
    assert!(
        renamed
            .iter()
            .all(|a| a.session.callsign.as_deref() == Some("BAW2"))
    );
    assert_eq!(h.room.presence().callsign_of(&pilot.cid), Some("BAW2"));
    assert_eq!(h.room.session(one), h.room.session(two));
}

#[test]
fn connect_resolves_the_role_from_the_network_under_vatsim() {
    let vatsim = RoleSource::Vatsim(VatsimSettings::default());
    let stored = || who(Role::Observer, "1000001");
    let icao = egll().icao().clone();
    let at_egll = |source, network| session_at(source, &icao, stored(), network);
    let atc = NetworkStanding::Connected(vec![NetworkConnection {
        callsign: "EGLL_TWR".into(),
        kind: ConnectionType::Atc,
    }]);
    let session = at_egll(&vatsim, Some(atc)).unwrap();
    assert_eq!(session.role, Role::Controller);
    assert_eq!(session.callsign.as_deref(), Some("EGLL_TWR"));
    assert_eq!(
        at_egll(&vatsim, Some(NetworkStanding::NotConnected)),
        Err(HttpError::NotConnected)
    );
    assert_eq!(
        at_egll(&vatsim, Some(NetworkStanding::Unreachable)),
        Err(HttpError::UpstreamUnavailable)
    );
    // Under `static` the stored role stands.
    assert_eq!(at_egll(&RoleSource::Static, None), Ok(stored()));
}

#[test]
fn connections_beyond_the_caps_are_refused_before_anything_changes() {
    let config = Config {
        caps: Caps {
            per_key: 2,
            per_airport: 3,
        },
        ..Config::default()
    };
    let mut h = Harness::with(config, egll());
    let pilot = who(Role::Pilot, "1000011");
    h.connect(&pilot);
    h.connect(&pilot);
    let refused = h
        .room
        .connect(99, pilot.clone(), key_of(&pilot.cid), None, h.now);
    assert!(matches!(
        refused,
        Err(HttpError::TooManyConnections { limit: 2, .. })
    ));
    h.connect(&who(Role::Observer, "1000021"));
    let observer = who(Role::Observer, "1000022");
    let refused = h
        .room
        .connect(98, observer.clone(), key_of(&observer.cid), None, h.now);
    assert!(matches!(
        refused,
        Err(HttpError::TooManyConnections { limit: 3, .. })
    ));
    assert_eq!(h.room.presence().total(), 3);
    assert_eq!(h.room.session(98), None);
}

#[test]
fn offline_state_is_cleared_only_when_no_controller_came_back() {
    let mut h = Harness::new();
    let grace = h.room.config().timings.offline_grace_ms;
    let c = who(Role::Controller, "1000001");
    h.send(
        &c,
        json!({"type": "STATE_UPDATE", "data": {"objectId": "SB_1", "state": true}}),
    );
    let first = h.socket(&c);
    h.leave(first);
    let left_at = h.now;
    // The controller is back before the end of the grace period: nothing is cleared then.
    h.now += grace / 2;
    let (back, joined) = h.connect(&c);
    assert!(joined.persist.contains(&StoreOp::SetOfflineSince(None)));
    h.now = left_at + grace;
    h.frame(back, Frame::Text(r#"{"type":"HEARTBEAT_ACK"}"#), h.now);
    let alarm = h.alarm(&Answers::default());
    assert!(!alarm.persist.contains(&StoreOp::ClearState));
    assert_eq!(objects_of(h.airport()).len(), 1);
}

#[test]
fn a_restored_room_rebuilds_its_sockets_and_starts_the_grace_period_without_controllers() {
    let mut h = Harness::new();
    let c = who(Role::Controller, "1000001");
    h.send(
        &c,
        json!({"type": "SHARED_STATE_UPDATE", "data": {"sharedStatePatch": {"rwy": "27L"}}}),
    );
    let attachment = |id, session: Session, left| Attachment {
        id,
        session,
        key_hash: "k".into(),
        last_seen: 5_000,
        left,
    };
    let sockets = [
        attachment(1, who(Role::Pilot, "1000011"), false),
        attachment(2, c.clone(), true),
    ];
    let (room, effects) = Room::restore(
        Config::default(),
        h.airport().clone(),
        Schedule::default(),
        sockets,
        9_000,
    );
    assert_eq!(effects.persist, [StoreOp::SetOfflineSince(Some(9_000))]);
    assert_eq!(
        room.presence().total(),
        1,
        "a socket that left is not restored"
    );
    assert!(room.session(2).is_none());
    // The stored last-heard time is read as up to a second later, never earlier.
    let idle = Config::default().timings.idle_timeout_ms;
    assert_eq!(
        room.next_wake(),
        Some(5_000 + STORE_LAST_SEEN_EVERY_MS + idle)
    );
}

#[test]
fn a_frame_from_a_socket_the_room_does_not_know_closes_it() {
    let mut h = Harness::new();
    let effects = h.frame(42, Frame::Text(r#"{"type":"HEARTBEAT"}"#), h.now);
    assert_eq!(closed(&effects), [(42, CloseCode::Internal.code())]);
}

/// Three controllers' changes sharing a commit: controllers get each, pilots and observers one
/// packet; if the commit fails, each writer gets `ERROR INTERNAL` with its `requestId` instead.
#[test]
fn the_outbox_coalesces_a_committed_run_and_answers_a_failed_one_with_errors() {
    let mut h = Harness::new();
    let c = who(Role::Controller, "1000001");
    let socket = h.socket(&c);
    let mut outbox = Outbox::default();
    let mut pushed = Vec::new();
    for i in 0..3 {
        h.now += 1;
        let text = json!({"type": "STATE_UPDATE", "requestId": format!("r{i}"),
            "data": {"objectId": format!("SB_{i}"), "state": true}})
        .to_string();
        pushed.push(outbox.push(h.frame(socket, Frame::Text(&text), h.now), h.now));
    }
    assert_eq!(pushed, [Next::Flush, Next::Wait, Next::Wait]);
    let stamp = Stamp {
        airport: "EGLL",
        now: h.now,
    };
    let (writes, batch) = outbox.take();
    assert_eq!(
        writes
            .iter()
            .filter(|op| op.object_write().is_some())
            .count(),
        3
    );
    assert_eq!(writes.last(), Some(&StoreOp::SetSeq(3)), "seq written once");
    let actions = batch.deliver(true, stamp);
    let to_controllers = To::Controllers {
        except: Some(socket),
    };
    let sends: Vec<(To, String)> = actions
        .iter()
        .map(|a| match a {
            Action::Send { to, packet } => (*to, parse(packet)["type"].to_string()),
            Action::Close { .. } => panic!("no close"),
        })
        .collect();
    let update = "\"STATE_UPDATE\"".to_string();
    assert_eq!(
        sends,
        [
            (to_controllers, update.clone()),
            (to_controllers, update.clone()),
            (to_controllers, update),
            (To::PilotsAndObservers, "\"MULTI_STATE_UPDATE\"".into()),
        ]
    );
    // Right after that commit, the next change waits for others to share its commit.
    outbox.committed(h.now, 4);
    h.now += 1;
    let text = r#"{"type":"STATE_UPDATE","requestId":"late","data":{"objectId":"X","state":true}}"#;
    let late = h.frame(socket, Frame::Text(text), h.now);
    assert_eq!(outbox.push(late, h.now), Next::FlushSoon);
    let (_, batch) = outbox.take();
    let actions = batch.deliver(false, stamp);
    let [Action::Send { to, packet }] = &actions[..] else {
        panic!("one error, got {actions:?}");
    };
    assert_eq!(*to, To::Socket(socket));
    let error = parse(packet);
    assert_eq!(error["data"]["code"], "INTERNAL");
    assert_eq!(error["requestId"], "late");
}

/// A commit that fails loses its change, and so must every packet built on it: a
/// `STATE_SNAPSHOT` asked for behind the change in the same batch (it holds the lost object and
/// its `seq`) is not sent; only the writer hears, and a request from before the write is
/// answered as usual. The reloaded airport gives the next change that `seq`: no client saw it
/// twice.
#[test]
fn a_failed_commit_sends_nothing_built_on_what_it_lost() {
    let mut h = Harness::new();
    let controller = h.socket(&who(Role::Controller, "1000001"));
    let observer = h.socket(&who(Role::Observer, "1000002"));
    let durable = h.room.airport().clone();
    let mut outbox = Outbox::default();
    let get_state = r#"{"type":"GET_STATE","requestId":"before"}"#;
    outbox.push(h.frame(observer, Frame::Text(get_state), h.now), h.now);
    let change =
        r#"{"type":"STATE_UPDATE","requestId":"lost","data":{"objectId":"SB_LOST","state":true}}"#;
    outbox.push(h.frame(controller, Frame::Text(change), h.now), h.now);
    let get_state = r#"{"type":"GET_STATE","requestId":"after"}"#;
    outbox.push(h.frame(observer, Frame::Text(get_state), h.now), h.now);
    let (_, batch) = outbox.take();
    let stamp = Stamp {
        airport: "EGLL",
        now: h.now,
    };
    let sent: Vec<(To, serde_json::Value)> = batch
        .deliver(false, stamp)
        .into_iter()
        .map(|action| match action {
            Action::Send { to, packet } => (to, parse(&packet)),
            Action::Close { .. } => panic!("no close"),
        })
        .collect();
    let [(first_to, first), (error_to, error)] = &sent[..] else {
        panic!("one snapshot and one error, got {sent:?}");
    };
    assert_eq!(*first_to, To::Socket(observer));
    assert_eq!(first["requestId"], "before");
    assert_eq!(first["data"]["seq"], 0);
    assert_eq!(*error_to, To::Socket(controller));
    assert_eq!(error["data"]["code"], "INTERNAL");
    assert!(
        sent.iter().all(|(_, p)| !p.to_string().contains("SB_LOST")),
        "the lost change reached a client: {sent:?}"
    );
    // Reloaded from what is durable: the next change is seq 1, and so is what the observer sees.
    let mut h = Harness::with(h.room.config().clone(), durable);
    h.socket(&who(Role::Observer, "1000002"));
    let sent = h.send(
        &who(Role::Controller, "1000001"),
        json!({"type": "STATE_UPDATE", "data": {"objectId": "SB_KEPT", "state": true}}),
    );
    let (_, packet) = airport_testkit::harness::broadcast(&sent).unwrap();
    assert_eq!(packet["seq"], 1);
    assert_eq!(packet["data"]["objectId"], "SB_KEPT");
}

/// A snapshot's objects and shared state are serialized once per `seq`: every `GET_STATE`,
/// `INITIAL_STATE` and `/state` between two changes says the same, and each change (an update,
/// a shared-state patch, the offline clearing) shows in the next one.
#[test]
fn snapshots_follow_every_change() {
    let mut h = Harness::new();
    let grace = h.room.config().timings.offline_grace_ms;
    let c = who(Role::Controller, "1000001");
    let p = who(Role::Pilot, "1000011");
    let snapshot = |h: &mut Harness| {
        let sent = h.send(&p, json!({"type": "GET_STATE"}));
        parse(sent.reply.as_ref().unwrap())["data"].clone()
    };
    h.send(
        &c,
        json!({"type": "STATE_UPDATE", "data": {"objectId": "SB_1", "state": true}}),
    );
    let first = snapshot(&mut h);
    assert_eq!(first["objects"][0]["state"], true);
    assert_eq!(snapshot(&mut h), first, "the same between two changes");
    let (socket, joined) = h.connect(&p);
    let initial = parse(joined.sent_to(To::Socket(socket)).next().unwrap());
    assert_eq!(initial["data"]["objects"], first["objects"]);

    h.send(
        &c,
        json!({"type": "STATE_UPDATE", "data": {"objectId": "SB_1", "state": false}}),
    );
    let second = snapshot(&mut h);
    assert_eq!(second["objects"][0]["state"], false);
    assert_eq!(second["seq"], 2);
    h.send(
        &c,
        json!({"type": "SHARED_STATE_UPDATE", "data": {"sharedStatePatch": {"rwy": "27L"}}}),
    );
    assert_eq!(snapshot(&mut h)["sharedState"], json!({"rwy": "27L"}));
    assert_eq!(
        parse(&h.public_state())["sharedState"],
        json!({"rwy": "27L"})
    );

    let controller = h.socket(&c);
    h.leave(controller);
    h.now += grace;
    h.alarm(&Answers::default());
    let cleared = snapshot(&mut h);
    assert_eq!(cleared["objects"], json!([]));
    assert_eq!(cleared["sharedState"], json!({}));
    assert_eq!(cleared["seq"], 4);
}
