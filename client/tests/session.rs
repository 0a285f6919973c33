//! The session with simulated time: heartbeats, liveness, the replica by `seq`, resyncs after
//! gaps, a controller's own changes, and whatever the server might send.

use airport_client::Event;
use airport_client::Replica;
use airport_client::session::{Output, Session};
use airport_protocol::wire::client::{ChangeRequests, Envelope, WithData};
use airport_protocol::wire::{ChangeRequest, ClientPacket, ObjectState};
use proptest::prelude::*;
use serde_json::{Value, json};
use std::time::{Duration, Instant};

const INTERVAL_MS: u64 = 60_000;

fn initial(role: &str, seq: u64, objects: Value) -> String {
    initial_every(role, seq, objects, json!(INTERVAL_MS))
}

fn initial_every(role: &str, seq: u64, objects: Value, interval: Value) -> String {
    json!({"type":"INITIAL_STATE","airport":"EGLL","data":{"connectionType":role,"cid":"1000001",
        "objects":objects,"sharedState":{"atis":"A"},"controllers":["1000002"],"offline":false,
        "seq":seq,"heartbeatIntervalMs":interval,"idleTimeoutMs":70_000},"timestamp":1})
    .to_string()
}

fn update(object: &str, state: bool, seq: u64) -> String {
    json!({"type":"STATE_UPDATE","airport":"EGLL","data":{"objectId":object,"state":state,
        "controllerId":"1000002"},"timestamp":2,"seq":seq})
    .to_string()
}

fn snapshot(seq: u64, objects: Value, request_id: &str) -> String {
    json!({"type":"STATE_SNAPSHOT","airport":"EGLL","data":{"objects":objects,"sharedState":{},
        "controllers":["1000002"],"offline":false,"seq":seq},"timestamp":3,"requestId":request_id})
    .to_string()
}

fn object(id: &str, state: bool) -> Value {
    json!({"id":id,"state":state,"controllerId":"1000002","timestamp":1})
}

/// The frames among the outputs, as JSON.
fn sent(outputs: &[Output]) -> Vec<Value> {
    outputs
        .iter()
        .filter_map(|output| match output {
            Output::Send(text) => serde_json::from_str(text).ok(),
            _ => None,
        })
        .collect()
}

fn types(frames: &[Value]) -> Vec<&str> {
    frames.iter().filter_map(|f| f["type"].as_str()).collect()
}

fn events(outputs: &[Output]) -> Vec<&Event> {
    outputs
        .iter()
        .filter_map(|output| match output {
            Output::Event(event) => Some(event),
            _ => None,
        })
        .collect()
}

fn state(session: &Session, id: &str) -> Option<bool> {
    match session.replica().objects.get(id).map(|o| &o.state) {
        Some(ObjectState::Switch(on)) => Some(*on),
        _ => None,
    }
}

fn ready(role: &str, seq: u64, t0: Instant) -> Session {
    let mut session = Session::new(Replica::new(), t0);
    let out = session.handle_frame(&initial(role, seq, json!([object("SB_1", false)])), t0);
    assert!(matches!(events(&out)[0], Event::Ready { .. }));
    assert_eq!(types(&sent(&out)), ["GET_ONLINE_PILOTS"]);
    session
}

#[test]
fn heartbeats_every_half_interval_and_answers_the_servers() {
    let t0 = Instant::now();
    let mut session = ready("pilot", 0, t0);
    let half = Duration::from_millis(INTERVAL_MS / 2);
    assert_eq!(session.poll_timeout(), t0 + half);
    assert!(
        session
            .handle_timeout(t0 + half - Duration::from_millis(1))
            .is_empty()
    );
    let out = session.handle_timeout(t0 + half);
    let frames = sent(&out);
    assert_eq!(types(&frames), ["HEARTBEAT"]);
    let id = frames[0]["requestId"].as_str().unwrap().to_owned();
    let ack = json!({"type":"HEARTBEAT_ACK","airport":"EGLL","timestamp":5,"requestId":id});
    session.handle_frame(&ack.to_string(), t0 + half + Duration::from_secs(1));
    assert_eq!(session.poll_timeout(), t0 + half * 2);

    let out = session.handle_frame(
        r#"{"type":"HEARTBEAT","airport":"EGLL","timestamp":9}"#,
        t0 + half * 2,
    );
    assert_eq!(types(&sent(&out)), ["HEARTBEAT_ACK"]);
}

#[test]
fn a_silent_server_or_a_missing_ack_means_the_connection_is_dead() {
    let t0 = Instant::now();
    let mut session = ready("observer", 0, t0);
    let half = Duration::from_millis(INTERVAL_MS / 2);
    session.handle_timeout(t0 + half);
    // The ACK is due 10 s after the heartbeat.
    let dead = session.handle_timeout(t0 + half + Duration::from_secs(10));
    assert_eq!(dead, [Output::Dead("no HEARTBEAT_ACK in time")]);

    // A server that goes silent after answering is found out within half an interval and
    // the ack's 10 s, well before the idle close would tell us.
    let mut session = ready("observer", 0, t0);
    let mut answered = false;
    let dead_at = loop {
        let now = session.poll_timeout();
        let out = session.handle_timeout(now);
        if out.iter().any(|o| matches!(o, Output::Dead(_))) {
            break now;
        }
        if let (Some(hb), false) = (sent(&out).first(), answered) {
            let ack = json!({"type":"HEARTBEAT_ACK","airport":"EGLL","timestamp":5,"requestId":hb["requestId"]});
            session.handle_frame(&ack.to_string(), now);
            answered = true;
        }
    };
    assert_eq!(dead_at, t0 + half * 2 + Duration::from_secs(10));
}

#[test]
fn a_short_interval_still_waits_for_the_ack_without_piling_up_heartbeats() {
    let t0 = Instant::now();
    let mut session = Session::new(Replica::new(), t0);
    session.handle_frame(&initial_every("pilot", 0, json!([]), json!(2_000)), t0);
    let first = session.handle_timeout(t0 + Duration::from_secs(1));
    assert_eq!(types(&sent(&first)), ["HEARTBEAT"]);
    // No ack: no second heartbeat at 2 s, 3 s, …; dead 10 s after the first.
    let dead_at = loop {
        let now = session.poll_timeout();
        let out = session.handle_timeout(now);
        assert!(
            sent(&out).is_empty(),
            "no heartbeat while one waits for its ack"
        );
        if !out.is_empty() {
            assert_eq!(out, [Output::Dead("no HEARTBEAT_ACK in time")]);
            break now;
        }
    };
    assert_eq!(dead_at, t0 + Duration::from_secs(11));
}

#[test]
fn an_absurd_interval_is_kept_within_reason() {
    let t0 = Instant::now();
    for (interval, first_heartbeat) in [
        (json!(0), 500),
        (json!(-5), 500),
        (json!(i64::MAX), 1_800_000),
    ] {
        let mut session = Session::new(Replica::new(), t0);
        session.handle_frame(&initial_every("pilot", 0, json!([]), interval.clone()), t0);
        assert_eq!(
            session.poll_timeout(),
            t0 + Duration::from_millis(first_heartbeat),
            "{interval}"
        );
    }
}

#[test]
fn no_initial_state_in_time_is_dead() {
    let t0 = Instant::now();
    let mut session = Session::new(Replica::new(), t0);
    assert_eq!(session.poll_timeout(), t0 + Duration::from_secs(15));
    assert!(
        session
            .handle_timeout(t0 + Duration::from_secs(14))
            .is_empty()
    );
    assert_eq!(
        session.handle_timeout(t0 + Duration::from_secs(15)),
        [Output::Dead("no INITIAL_STATE in time")]
    );
}

#[test]
fn updates_in_order_apply_and_a_gap_resyncs_from_a_snapshot() {
    let t0 = Instant::now();
    let mut session = ready("pilot", 10, t0);
    session.handle_frame(&update("SB_1", true, 11), t0);
    assert_eq!(
        (state(&session, "SB_1"), session.replica().seq),
        (Some(true), 11)
    );
    // Already included: ignored.
    session.handle_frame(&update("SB_1", false, 11), t0);
    assert_eq!(state(&session, "SB_1"), Some(true));

    // 12 never came: a gap.
    let out = session.handle_frame(&update("SB_2", true, 13), t0);
    let frames = sent(&out);
    assert_eq!(types(&frames), ["GET_STATE"]);
    assert!(events(&out).contains(&&Event::Resyncing));
    assert!(session.replica().stale);
    // Until the snapshot, nothing sequenced applies.
    session.handle_frame(&update("SB_3", true, 14), t0);
    assert_eq!(state(&session, "SB_3"), None);
    let id = frames[0]["requestId"].as_str().unwrap();
    session.handle_frame(
        &snapshot(
            14,
            json!([
                object("SB_1", true),
                object("SB_2", true),
                object("SB_3", true)
            ]),
            id,
        ),
        t0,
    );
    assert!(!session.replica().stale);
    assert_eq!(session.replica().seq, 14);
    session.handle_frame(&update("SB_3", false, 15), t0);
    assert_eq!(state(&session, "SB_3"), Some(false));
}

#[test]
fn coalesced_runs_shared_state_and_presence_apply() {
    let t0 = Instant::now();
    let mut session = ready("observer", 5, t0);
    let run = json!({"type":"MULTI_STATE_UPDATE","airport":"EGLL","data":{"updates":[
        {"objectId":"SB_1","state":true,"controllerId":"1000002"},
        {"objectId":"SB_2","state":true,"controllerId":"1000002"},
        {"objectId":"SB_1","patch":null,"controllerId":"1000002"}]},"timestamp":2,"seq":8,"seqFrom":6});
    session.handle_frame(&run.to_string(), t0);
    assert_eq!(session.replica().seq, 8);
    assert_eq!(
        (state(&session, "SB_1"), state(&session, "SB_2")),
        (None, Some(true))
    );
    let shared = json!({"type":"SHARED_STATE_UPDATE","airport":"EGLL","data":{"sharedStatePatch":
        {"atis":null,"runways":{"27L":"arr"}},"controllerId":"1000002"},"timestamp":2,"seq":9});
    session.handle_frame(&shared.to_string(), t0);
    assert_eq!(
        Value::Object(session.replica().shared_state.clone()),
        json!({"runways":{"27L":"arr"}})
    );
    let gone = json!({"type":"CONTROLLER_DISCONNECT","airport":"EGLL","data":{"controllerId":"1000002"},"timestamp":3});
    session.handle_frame(&gone.to_string(), t0);
    assert!(session.replica().controllers.is_empty() && session.replica().offline);
}

fn own_set(id: &str, on: bool) -> ClientPacket {
    ClientPacket::StateUpdate(WithData {
        envelope: Envelope::default(),
        data: ChangeRequest::Set {
            object_id: id.into(),
            state: ObjectState::Switch(on),
        },
    })
}

#[test]
fn a_controllers_own_changes_apply_at_once_and_their_seq_is_no_gap() {
    let t0 = Instant::now();
    let mut session = ready("controller", 20, t0);
    let out = session.send(own_set("SB_1", true), 1_000);
    let frame: Value = match out {
        Output::Send(text) => serde_json::from_str(&text).unwrap(),
        other => panic!("{other:?}"),
    };
    assert_eq!(frame["type"], "STATE_UPDATE");
    assert!(
        frame["requestId"].is_string(),
        "own changes carry a requestId"
    );
    assert_eq!(state(&session, "SB_1"), Some(true));
    // Our change took 21; another controller's is 22.
    let out = session.handle_frame(&update("SB_2", true, 22), t0);
    assert!(sent(&out).is_empty(), "no resync: the missing seq was ours");
    assert_eq!(session.replica().seq, 22);
    // Two missing now, one of them ours at most: a gap.
    session.send(own_set("SB_3", true), 1_000);
    let out = session.handle_frame(&update("SB_2", false, 25), t0);
    assert_eq!(types(&sent(&out)), ["GET_STATE"]);
}

#[test]
fn an_own_batch_is_one_seq_however_many_items() {
    let t0 = Instant::now();
    let mut session = ready("controller", 30, t0);
    let batch = ClientPacket::MultiStateUpdate(WithData {
        envelope: Envelope::default(),
        data: ChangeRequests {
            updates: ["SB_1", "SB_2", "SB_3"]
                .map(|id| ChangeRequest::Set {
                    object_id: id.into(),
                    state: ObjectState::Switch(true),
                })
                .into(),
        },
    });
    session.send(batch, 1_000);
    assert_eq!(session.replica().objects.len(), 3);
    // The batch took 31; 33 after it means 32 was lost.
    let out = session.handle_frame(&update("SB_9", true, 33), t0);
    assert_eq!(types(&sent(&out)), ["GET_STATE"]);
}

#[test]
fn another_controllers_change_to_an_object_we_just_set_is_a_resync() {
    let t0 = Instant::now();
    let mut session = ready("controller", 40, t0);
    session.send(own_set("SB_1", true), 1_000);
    // Theirs (41) was sequenced before ours: the server holds ours, but applying theirs here
    // would show theirs. Only the server can say.
    let out = session.handle_frame(&update("SB_1", false, 41), t0);
    assert_eq!(types(&sent(&out)), ["GET_STATE"]);
    // Theirs after ours (ours took 41, theirs 42): theirs is the later value.
    let mut session = ready("controller", 40, t0);
    session.send(own_set("SB_1", true), 1_000);
    let out = session.handle_frame(&update("SB_1", false, 42), t0);
    assert!(sent(&out).is_empty());
    assert_eq!(state(&session, "SB_1"), Some(false));
}

#[test]
fn an_error_with_a_code_this_version_does_not_know_still_undoes_an_own_change() {
    let t0 = Instant::now();
    let mut session = ready("controller", 20, t0);
    let Output::Send(text) = session.send(own_set("SB_9", true), 1_000) else {
        panic!()
    };
    let id = serde_json::from_str::<Value>(&text).unwrap()["requestId"].clone();
    let error = json!({"type":"ERROR","airport":"EGLL","data":{"code":"SOMETHING_NEW",
        "message":"?"},"timestamp":4,"requestId":id});
    let out = session.handle_frame(&error.to_string(), t0);
    assert!(matches!(
        events(&out)[..],
        [Event::Resyncing, Event::Unknown(_)]
    ));
    assert_eq!(types(&sent(&out)), ["GET_STATE"]);
}

#[test]
fn an_error_for_an_own_change_puts_the_replica_right() {
    let t0 = Instant::now();
    let mut session = ready("controller", 20, t0);
    let Output::Send(text) = session.send(own_set("SB_9", true), 1_000) else {
        panic!()
    };
    let id = serde_json::from_str::<Value>(&text).unwrap()["requestId"].clone();
    let error = json!({"type":"ERROR","airport":"EGLL","data":{"code":"LIMIT_EXCEEDED",
        "message":"too many objects"},"timestamp":4,"requestId":id});
    let out = session.handle_frame(&error.to_string(), t0);
    let frames = sent(&out);
    assert_eq!(types(&frames), ["GET_STATE"]);
    assert!(session.replica().stale);
    let id = frames[0]["requestId"].as_str().unwrap();
    session.handle_frame(&snapshot(20, json!([object("SB_1", false)]), id), t0);
    assert_eq!(state(&session, "SB_9"), None, "the refused change is gone");
}

#[test]
fn a_reconnect_replaces_the_replica_and_keeps_showing_the_old_one_until_then() {
    let t0 = Instant::now();
    let mut session = ready("pilot", 3, t0);
    session.handle_frame(&update("SB_7", true, 4), t0);
    let carried = session.into_replica();
    let mut next = Session::new(carried, t0);
    assert!(next.replica().stale);
    assert_eq!(
        state(&next, "SB_7"),
        Some(true),
        "shown, stale, until INITIAL_STATE"
    );
    next.handle_frame(&initial("pilot", 2, json!([])), t0);
    assert_eq!(
        next.replica().seq,
        2,
        "replaced, even by a lower seq (a new airport)"
    );
    assert!(next.replica().objects.is_empty());
}

#[test]
fn unknown_and_unreadable_frames_pass_through() {
    let t0 = Instant::now();
    let mut session = ready("pilot", 0, t0);
    let out = session.handle_frame(r#"{"type":"RUNWAY_CHANGE","airport":"EGLL","data":{}}"#, t0);
    assert!(matches!(events(&out)[..], [Event::Unknown(_)]));
    let out = session.handle_frame("not json", t0);
    assert!(matches!(events(&out)[..], [Event::Unreadable(_)]));
    assert_eq!(session.replica().seq, 0);
}

proptest! {
    /// Whatever the server sends, the session neither panics nor stops answering heartbeats.
    #[test]
    fn any_frame_is_survived(
        frames in prop::collection::vec(any_frame(), 1..20),
        interval in prop_oneof![Just(json!(null)), Just(json!(-1)), Just(json!(0)), any::<i64>().prop_map(|n| json!(n)), Just(json!(1.5e300))],
    ) {
        let t0 = Instant::now();
        let mut session = ready("controller", 0, t0);
        let mut now = t0;
        session.handle_frame(&initial_every("controller", 0, json!([]), interval), now);
        for frame in &frames {
            session.handle_frame(frame, now);
            now = session.poll_timeout().max(now);
            session.handle_timeout(now);
        }
        let out = session.handle_frame(r#"{"type":"HEARTBEAT"}"#, t0);
        let frames = sent(&out);
        prop_assert_eq!(types(&frames), ["HEARTBEAT_ACK"]);
    }
}

/// Frames shaped like the server's, with their members shuffled among odd values.
fn any_frame() -> impl Strategy<Value = String> {
    let kinds = prop::sample::select(vec![
        "INITIAL_STATE",
        "STATE_SNAPSHOT",
        "STATE_UPDATE",
        "MULTI_STATE_UPDATE",
        "SHARED_STATE_UPDATE",
        "CONTROLLER_CONNECT",
        "ONLINE_PILOTS",
        "ERROR",
        "NEW_TYPE",
    ]);
    let odd = prop_oneof![
        Just(json!(null)),
        Just(json!(-1)),
        Just(json!(u64::MAX)),
        Just(json!("x")),
        Just(json!([])),
        Just(json!({})),
        Just(json!({"objectId":"A","state":true,"controllerId":"1"})),
        Just(json!({"updates":[{"objectId":"A","patch":null,"controllerId":"1"}]})),
        Just(json!({"objects":[],"sharedState":{},"controllers":[],"offline":true,"seq":3})),
    ];
    (kinds, odd.clone(), odd.clone(), prop::option::of(0u64..20), any::<bool>()).prop_map(
        |(kind, data, extra, seq, truncate)| {
            let mut text = json!({"type":kind,"airport":"EGLL","data":data,"timestamp":1,"seq":seq,"seqFrom":extra}).to_string();
            if truncate {
                text.truncate(text.len() / 2);
            }
            text
        },
    )
}

#[test]
fn a_reconnect_resumes_from_the_replicas_seq_when_it_can() {
    use airport_protocol::history::{HistoryId, ResumeRequest};
    let t0 = Instant::now();
    let history = "00000000000000aa";
    let mut first = Session::new(Replica::new(), t0);
    assert_eq!(
        first.replica().resume(),
        ResumeRequest::Fresh,
        "no replica yet"
    );
    let mut full: Value = serde_json::from_str(&initial(
        "pilot",
        5,
        json!([object("SB_1", true), object("SB_2", true)]),
    ))
    .unwrap();
    full["data"]["history"] = json!(history);
    first.handle_frame(&full.to_string(), t0);
    let carried = first.into_replica();
    let from = ResumeRequest::From {
        history: HistoryId::parse(history).unwrap(),
        seq: 5,
    };
    assert_eq!(carried.resume(), from);

    // The resume: SB_1 changed, SB_2 deleted, shared state unchanged (left out).
    let mut second = Session::new(carried.clone(), t0);
    let resume = json!({"type":"INITIAL_STATE","airport":"EGLL","data":{"connectionType":"pilot",
        "cid":"1000001","objects":[object("SB_1", false), object("SB_3", true)],"controllers":[],
        "offline":true,"seq":8,"heartbeatIntervalMs":INTERVAL_MS,"idleTimeoutMs":70_000,
        "history":history,"resumedFrom":5,"deleted":["SB_2"]},"timestamp":1});
    let out = second.handle_frame(&resume.to_string(), t0);
    assert!(events(&out).contains(&&Event::ReplicaChanged));
    let replica = second.replica();
    assert_eq!(
        (state(&second, "SB_1"), state(&second, "SB_2")),
        (Some(false), None)
    );
    assert_eq!(state(&second, "SB_3"), Some(true));
    assert_eq!(replica.shared_state["atis"], "A", "kept: it did not change");
    assert_eq!(
        (replica.seq, replica.offline, replica.stale),
        (8, true, false)
    );

    // A resume from another seq than the replica's cannot be applied: resync.
    let mut third = Session::new(carried, t0);
    let mut wrong = resume.clone();
    wrong["data"]["resumedFrom"] = json!(4);
    let out = third.handle_frame(&wrong.to_string(), t0);
    assert!(types(&sent(&out)).contains(&"GET_STATE"));
    assert!(third.replica().stale);
    assert_eq!(third.into_replica().resume(), ResumeRequest::Fresh);
}
