//! A room woken without reading its objects (a hibernated airport woken for a heartbeat, an
//! alarm or a close) does what a room that read them does, and reads them once, at the first
//! event that needs them.

use airport_protocol::airport::ObjectRecord;
use airport_protocol::config::Config;
use airport_protocol::room::Answers;
use airport_protocol::{Airport, Cid, Effects, Icao, NeedsObjects, Role, Session, SocketId};
use airport_testkit::harness::{Harness, unlimited_rates, who};
use airport_testkit::store::objects_of;
use proptest::prelude::*;
use serde_json::{Map, json};
use std::collections::BTreeMap;

fn people() -> [Session; 3] {
    [
        who(Role::Controller, "1000001"),
        who(Role::Pilot, "1000002"),
        who(Role::Observer, "1000003"),
    ]
}

/// An airport with `objects` objects and a little shared state, as storage holds it.
fn stored(objects: usize, offline_since: Option<i64>) -> Airport {
    let records: BTreeMap<String, ObjectRecord> = (0..objects)
        .map(|i| {
            let record = ObjectRecord {
                state: json!({"on": i % 2 == 0}),
                controller_id: Cid::parse("1000001").unwrap(),
                updated_at: 500,
                seq: i as u64 + 1,
            };
            (format!("SB_{i}"), record)
        })
        .collect();
    let mut shared = Map::new();
    shared.insert("runway".into(), json!("27L"));
    let seq = objects as u64 + 1;
    Airport::restore(
        Icao::parse("EGLL").unwrap(),
        records,
        shared,
        seq,
        offline_since,
    )
}

fn config() -> Config {
    Config {
        rate_limits: unlimited_rates(),
        ..Config::default()
    }
}

/// The same airport and sockets woken twice: objects read at once, and left unread.
fn both(airport: Airport, sessions: &[Session]) -> (Harness, Harness) {
    let (read, restored) = Harness::woken(config(), airport.clone(), sessions, true);
    let (unread, restored_unread) = Harness::woken(config(), airport, sessions, false);
    assert_eq!(restored, restored_unread);
    // An airport without objects has none to read.
    assert_eq!(
        unread.airport().objects_read(),
        objects_of(read.airport()).is_empty()
    );
    (read, unread)
}

#[test]
fn heartbeats_alarms_and_leaves_read_no_objects() {
    let sessions = people();
    let (mut read, mut unread) = both(stored(3, None), &sessions);
    let mut effects: [Vec<Effects>; 2] = Default::default();
    for (h, effects) in [&mut read, &mut unread].into_iter().zip(&mut effects) {
        for (socket, text) in [
            (2, r#"{"type":"HEARTBEAT","requestId":"h1"}"#),
            (1, r#"{"type":"HEARTBEAT_ACK"}"#),
            (3, r#"{"type":"GET_ONLINE_PILOTS"}"#),
            // A pilot may not change objects: refused without them.
            (
                2,
                r#"{"type":"STATE_UPDATE","data":{"objectId":"SB_0","state":true}}"#,
            ),
            (2, "not json"),
        ] {
            let now = h.now;
            effects.push(h.frame(socket, airport_protocol::packet::Frame::Text(text), now));
        }
        h.now += 61_000;
        effects.push(h.alarm(&Answers::default()));
        effects.push(h.leave(1));
    }
    assert_eq!(effects[0], effects[1]);
    assert!(
        effects[1][0].actions.len() == 1,
        "the heartbeat is acknowledged"
    );
    assert_eq!(unread.objects_reads, 0);
    assert!(!unread.airport().objects_read());
    // The controller left: the grace period starts, from the count of objects alone.
    assert_eq!(unread.airport().offline_since(), Some(unread.now));
    assert_eq!(unread.airport().object_count(), 3);
}

#[test]
fn the_first_event_needing_objects_reads_them_once() {
    let sessions = people();
    let objects = objects_of(&stored(3, None)).clone();
    for text in [
        r#"{"type":"GET_STATE"}"#,
        r#"{"type":"STATE_UPDATE","data":{"objectId":"SB_9","state":true}}"#,
        r#"{"type":"MULTI_STATE_UPDATE","data":{"updates":[{"objectId":"SB_0","patch":null}]}}"#,
        r#"{"type":"SHARED_STATE_UPDATE","data":{"sharedStatePatch":{"atis":"K"}}}"#,
    ] {
        let (mut read, mut unread) = both(stored(3, None), &sessions);
        // Handed in without its objects, the frame changes nothing.
        let frame = airport_protocol::packet::Frame::Text(text);
        let before = format!("{:?}", unread.room);
        assert_eq!(unread.room.frame(1, frame, unread.now), Err(NeedsObjects));
        assert_eq!(format!("{:?}", unread.room), before, "{text}");

        let now = read.now;
        assert_eq!(
            read.frame(1, frame, now),
            unread.frame(1, frame, now),
            "{text}"
        );
        assert_eq!(unread.objects_reads, 1);
        assert_eq!(read.airport(), unread.airport(), "{text}");
        let get_state = airport_protocol::packet::Frame::Text(r#"{"type":"GET_STATE"}"#);
        assert_eq!(
            read.frame(2, get_state, now),
            unread.frame(2, get_state, now)
        );
        assert_eq!(unread.objects_reads, 1, "read once");
    }
    // A connect and `/state` read them too.
    let (_, mut unread) = both(stored(3, None), &sessions);
    unread.connect(&who(Role::Pilot, "1000004"));
    assert_eq!(objects_of(unread.airport()), &objects);
    let (_, mut unread) = both(stored(3, None), &sessions);
    assert_eq!(unread.room.public_state(), Err(NeedsObjects));
    unread.public_state();
    assert_eq!(unread.objects_reads, 1);
}

#[test]
fn offline_clearing_needs_no_objects() {
    let (mut read, mut unread) = both(stored(5, Some(0)), &[]);
    let grace = Config::default().timings.offline_grace_ms;
    read.now = grace + 1;
    unread.now = grace + 1;
    let cleared = read.alarm(&Answers::default());
    assert_eq!(cleared, unread.alarm(&Answers::default()));
    assert!(cleared.persist.len() > 1, "the state is cleared");
    assert_eq!(unread.objects_reads, 0);
    // Nothing is left to read: the room holds what storage holds.
    assert_eq!(read.airport(), unread.airport());
    assert!(unread.airport().objects_read());
}

/// What happens next at the woken airport.
#[derive(Debug, Clone)]
enum Event {
    /// A frame on a person's open socket (connected first if they have none).
    Frame(usize, &'static str),
    Connect(usize),
    /// Their first open socket closes.
    Leave(usize),
    /// The clock moves on and the alarm rings.
    Alarm(i64),
}

const FRAMES: [&str; 10] = [
    r#"{"type":"HEARTBEAT","requestId":"r"}"#,
    r#"{"type":"HEARTBEAT_ACK"}"#,
    r#"{"type":"GET_ONLINE_PILOTS"}"#,
    r#"{"type":"GET_STATE","requestId":"s"}"#,
    r#"{"type":"STATE_UPDATE","data":{"objectId":"SB_1","patch":{"on":true}}}"#,
    r#"{"type":"MULTI_STATE_UPDATE","data":{"updates":[{"objectId":"SB_0","patch":null},{"objectId":"NEW","state":1}]}}"#,
    r#"{"type":"SHARED_STATE_UPDATE","data":{"sharedStatePatch":{"runway":null}}}"#,
    r#"{"type":"STOPBAR_CROSSING","data":{"objectId":"SB_1"}}"#,
    r#"{"type":"NOPE"}"#,
    "{",
];

fn event() -> impl Strategy<Value = Event> {
    prop_oneof![
        6 => (0..3usize, prop::sample::select(FRAMES.to_vec()))
            .prop_map(|(who, text)| Event::Frame(who, text)),
        1 => (0..3usize).prop_map(Event::Connect),
        1 => (0..3usize).prop_map(Event::Leave),
        2 => prop_oneof![Just(1_000i64), Just(61_000), Just(125_000)].prop_map(Event::Alarm),
    ]
}

/// Whether the event needs the objects: a snapshot, a change, or a new socket (its
/// `INITIAL_STATE`). `open` is the socket a frame is sent on, if its sender has one.
fn needs_objects(event: &Event, open: Option<SocketId>) -> bool {
    match event {
        Event::Connect(_) => true,
        Event::Frame(who, text) => {
            let reads = match people()[*who].role {
                Role::Controller => ["GET_STATE", "STATE_UPDATE", "SHARED_STATE"]
                    .iter()
                    .any(|kind| text.contains(kind)),
                _ => text.contains("GET_STATE"),
            };
            open.is_none() || reads
        }
        Event::Leave(_) | Event::Alarm(_) => false,
    }
}

/// The person's first socket still open.
fn open_socket(h: &Harness, sockets: &[(usize, SocketId)], who: usize) -> Option<SocketId> {
    (sockets.iter())
        .find(|(person, id)| *person == who && h.room.session(*id).is_some())
        .map(|(_, id)| *id)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    /// Any sequence of events has the same effects at a room woken without its objects as
    /// at one that read them, and the objects are read exactly when the first event needs them.
    #[test]
    fn an_unread_room_does_what_a_read_one_does(
        objects in 0..4usize,
        offline in any::<bool>(),
        connected in prop::sample::subsequence(vec![0usize, 1, 2], 0..=3),
        events in prop::collection::vec(event(), 1..24),
    ) {
        let people = people();
        let sessions: Vec<Session> = connected.iter().map(|&i| people[i].clone()).collect();
        let offline_since = (offline && !connected.contains(&0)).then_some(0);
        let (mut read, mut unread) = both(stored(objects, offline_since), &sessions);
        let mut sockets: Vec<(usize, SocketId)> = connected.iter().copied().zip(1..).collect();
        // Both rooms number new sockets alike, after the restored ones.
        let mut next_socket = sockets.len() as SocketId + 1;
        // Whether an event needed the objects before they were read (or cleared).
        let mut needed = false;
        for event in events {
            let open = match &event {
                Event::Frame(who, _) | Event::Leave(who) => open_socket(&unread, &sockets, *who),
                _ => None,
            };
            needed |= !unread.airport().objects_read() && needs_objects(&event, open);
            let [a, b] = [&mut read, &mut unread].map(|h| match &event {
                Event::Frame(who, text) => {
                    let socket = match open {
                        Some(socket) => socket,
                        None => h.connect(&people[*who]).0,
                    };
                    let now = h.now;
                    h.frame(socket, airport_protocol::packet::Frame::Text(text), now)
                }
                Event::Connect(who) => h.connect(&people[*who]).1,
                Event::Leave(_) => open.map(|socket| h.leave(socket)).unwrap_or_default(),
                Event::Alarm(after) => {
                    h.now += after;
                    h.alarm(&Answers::default())
                }
            });
            prop_assert_eq!(a, b, "{:?}", event);
            if let Event::Frame(who, _) | Event::Connect(who) = event
                && open.is_none()
            {
                sockets.push((who, next_socket));
                next_socket += 1;
            }
            prop_assert_eq!(unread.objects_reads, usize::from(needed), "{:?}", event);
            if unread.airport().objects_read() {
                prop_assert_eq!(read.airport(), unread.airport());
            } else {
                prop_assert_eq!(read.airport().object_count(), unread.airport().object_count());
                prop_assert_eq!(read.airport().seq(), unread.airport().seq());
                prop_assert_eq!(read.airport().has_state(), unread.airport().has_state());
                prop_assert_eq!(read.airport().offline_since(), unread.airport().offline_since());
                prop_assert_eq!(read.room.listing(), unread.room.listing());
            }
        }
    }
}
