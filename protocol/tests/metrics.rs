//! The room's metrics in simulated time: what is counted, and when a window is written.

use airport_protocol::Role;
use airport_protocol::effects::{Action, CloseCode, To};
use airport_protocol::metrics::{
    AIRPORT_COLUMNS, AwakeClock, Commit, DataPoint, EARLY_MS, QUIET_MS, Tick, WINDOW_MS,
};
use airport_testkit::harness::{Harness, who};
use serde_json::json;

/// The `airport` point's column by name.
fn column(point: &DataPoint, name: &str) -> f64 {
    let at = AIRPORT_COLUMNS.iter().position(|c| *c == name).unwrap();
    point.doubles[at]
}

/// `(blob1, blob3) → count` of the breakdown points.
fn breakdown(points: &[DataPoint]) -> Vec<(String, String, f64)> {
    points[1..]
        .iter()
        .map(|p| (p.blobs[0].clone(), p.blobs[2].clone(), p.doubles[0]))
        .collect()
}

fn written(tick: Tick) -> Vec<DataPoint> {
    match tick {
        Tick::Write(points) => points,
        other => panic!("not written: {other:?}"),
    }
}

fn named(kind: &str, name: &str, count: f64) -> (String, String, f64) {
    (kind.to_string(), name.to_string(), count)
}

#[test]
fn a_window_counts_sockets_frames_errors_and_closes() {
    let mut h = Harness::new();
    let controller = who(Role::Controller, "1000001");
    let pilot = who(Role::Pilot, "1000011");
    h.connect(&controller);
    let (pilot_socket, _) = h.connect(&pilot);
    h.send(
        &controller,
        json!({"type": "STATE_UPDATE", "data": {"objectId": "A", "state": true}}),
    );
    h.send(
        &controller,
        json!({"type": "STATE_UPDATE", "data": {"objectId": "B", "state": 1}}),
    );
    h.send(
        &pilot,
        json!({"type": "STATE_UPDATE", "data": {"objectId": "A", "state": true}}),
    );
    h.send(&pilot, json!({"type": "GET_STATE"}));
    h.send_text(&pilot, "{not json");
    h.send(&pilot, json!({"type": "CLOSE"}));
    assert!(
        h.room.session(pilot_socket).is_none(),
        "CLOSE removed the pilot"
    );
    // What the Durable Object reports back: the delivery and its commit.
    let delivered = [
        Action::Send {
            to: To::All { except: None },
            packet: "{}".into(),
        },
        Action::Send {
            to: To::Socket(9),
            packet: "{}".into(),
        },
        Action::Close {
            socket: pilot_socket,
            code: CloseCode::Requested,
            reason: String::new(),
        },
    ];
    let now = h.now;
    let commit = |ms, saved| Some(Commit { ms, saved });
    h.room
        .metrics()
        .delivered(&delivered, 3, commit(4, true), now);
    h.room.metrics().delivered(&[], 0, commit(0, false), now);
    h.room.metrics().delivered(&[], 0, None, now);

    assert_eq!(
        h.room.metrics_tick(now + QUIET_MS - EARLY_MS - 1),
        Tick::Later(now + QUIET_MS)
    );
    // An alarm for the window that fires a little early writes it.
    let points = written(h.room.metrics_tick(now + QUIET_MS - EARLY_MS));
    let airport = &points[0];
    assert_eq!(airport.index, "EGLL");
    assert_eq!(airport.blobs, ["airport", "EGLL"]);
    assert_eq!(airport.doubles.len(), AIRPORT_COLUMNS.len());
    let expected = [
        ("controllers", 1.0),
        ("pilots", 0.0),
        ("observers", 0.0),
        ("connects", 2.0),
        ("disconnects", 1.0),
        ("frames_in", 6.0),
        ("broadcasts", 1.0),
        ("messages_out", 3.0),
        ("errors", 3.0),
        ("commits", 2.0),
        ("commit_ms", 4.0),
        ("storage_failures", 1.0),
    ];
    for (name, value) in expected {
        assert_eq!(column(airport, name), value, "{name}");
    }
    assert_eq!(
        column(airport, "window_ms"),
        (now + QUIET_MS - EARLY_MS - 1_000) as f64
    );
    assert_eq!(
        breakdown(&points),
        [
            named("frame", "GET_STATE", 1.0),
            named("frame", "STATE_UPDATE", 3.0),
            named("frame", "CLOSE", 1.0),
            named("frame", "UNREADABLE", 1.0),
            named("error", "INVALID_JSON", 1.0),
            named("error", "INVALID_PACKET", 1.0),
            named("error", "FORBIDDEN", 1.0),
            named("close", "1000", 1.0),
        ]
    );
    // The window was written: the next one starts empty.
    assert_eq!(h.room.metrics().due_at(), None);
    assert_eq!(h.room.metrics_tick(now + WINDOW_MS * 2), Tick::Idle);
    assert_eq!(h.room.end_metrics(now + WINDOW_MS * 2), []);
}

#[test]
fn a_busy_window_is_written_after_a_minute_and_a_quiet_one_after_a_few_seconds() {
    let mut h = Harness::new();
    let controller = who(Role::Controller, "1000001");
    h.connect(&controller);
    let start = h.now;
    assert_eq!(h.room.metrics().due_at(), Some(start + QUIET_MS));
    // A frame every second: never quiet, so the minute decides.
    while h.now < start + WINDOW_MS + 5_000 {
        let due = h.room.metrics().due_at().unwrap();
        assert_eq!(due, (start + WINDOW_MS).min(h.now + QUIET_MS));
        if h.now + 1_000 >= due {
            break;
        }
        assert_eq!(
            h.room.metrics_tick(h.now),
            Tick::Later(due),
            "not due at {}",
            h.now
        );
        h.send(&controller, json!({"type": "HEARTBEAT"}));
    }
    assert_eq!(h.room.metrics().due_at(), Some(start + WINDOW_MS));
    let points = written(h.room.metrics_tick(start + WINDOW_MS));
    assert_eq!(column(&points[0], "window_ms"), WINDOW_MS as f64);
    assert_eq!(column(&points[0], "frames_in"), 59.0);
    assert_eq!(
        breakdown(&points),
        [named("frame", "HEARTBEAT", 59.0)],
        "heartbeats counted; their acks are replies, not broadcasts"
    );
}

#[test]
fn frames_dropped_by_the_rate_limit_are_counted_with_their_error() {
    let mut h = Harness::new();
    let pilot = who(Role::Pilot, "1000011");
    h.step_ms = 0;
    let mut refused = 0.0;
    for _ in 0..200 {
        let sent = h.send(&pilot, json!({"type": "HEARTBEAT"}));
        if airport_testkit::harness::error_code(&sent).as_deref() == Some("RATE_LIMITED") {
            refused += 1.0;
        }
        if sent.close.is_some() {
            break;
        }
    }
    assert!(refused > 0.0, "the limit was reached");
    let points = h.room.end_metrics(h.now);
    let dropped = breakdown(&points)
        .into_iter()
        .filter(|(kind, name, _)| {
            (kind == "frame" && name == "DROPPED") || (kind == "error" && name == "RATE_LIMITED")
        })
        .map(|(_, _, n)| n)
        .collect::<Vec<_>>();
    assert_eq!(dropped, [refused, refused]);
}

#[test]
fn the_alarm_comes_for_a_quiet_window_before_the_object_can_hibernate() {
    // The object hibernates after about ten seconds without an event, and its window with it:
    // the alarm the room asks for comes for the window first, with no timer of its own.
    const HIBERNATES_AFTER_MS: i64 = 10_000;
    let mut h = Harness::new();
    let controller = who(Role::Controller, "1000001");
    h.connect(&controller);
    h.send(&controller, json!({"type": "HEARTBEAT"}));
    let last = h.now;
    // The liveness alarm is a minute away; the object's alarm is the window's.
    assert!(h.room.next_wake().unwrap() > last + HIBERNATES_AFTER_MS);
    let alarm = h.room.alarm_at().unwrap();
    assert_eq!(alarm, last + QUIET_MS);
    assert!(alarm < last + HIBERNATES_AFTER_MS);
    let points = written(h.room.metrics_tick(alarm));
    assert_eq!(column(&points[0], "frames_in"), 1.0);
    // Written, the window no longer holds the alarm early.
    assert_eq!(h.room.alarm_at(), h.room.next_wake());
}

#[test]
fn awake_time_counts_overlapping_work_once() {
    let mut clock = AwakeClock::default();
    clock.begin(1_000);
    clock.begin(1_002); // a second event while the first awaits its storage
    clock.end(1_005);
    assert_eq!(clock.take(), 0, "still awake: the first event is under way");
    clock.end(1_010);
    clock.begin(2_000); // background work started by an alarm
    clock.end(2_300);
    assert_eq!(clock.take(), 10 + 300);
    assert_eq!(clock.take(), 0);
    // An end without a begin (never expected) neither underflows nor counts.
    clock.end(3_000);
    assert_eq!(clock.take(), 0);
}

#[test]
fn awake_time_joins_the_next_window_and_starts_none() {
    let mut h = Harness::new();
    let now = 1_000;
    // An alarm that found nothing to do: awake, nothing counted.
    h.room.metrics().awake(7);
    assert_eq!(
        h.room.metrics().due_at(),
        None,
        "no window, so no alarm for one"
    );
    assert_eq!(h.room.metrics_tick(now + WINDOW_MS), Tick::Idle);
    h.room.metrics().connect(now);
    h.room.metrics().awake(5);
    let points = written(h.room.metrics_tick(now + QUIET_MS));
    assert_eq!(column(&points[0], "awake_ms"), 12.0);
    assert_eq!(h.room.metrics().due_at(), None);
}
