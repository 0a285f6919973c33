//! Property tests of the pure protocol core: arbitrary input never panics, rejected packets
//! change nothing, accepted changes move `seq` by exactly one, limits always hold, and only
//! controllers change state.

use airport_protocol::airport::ObjectRecord;
use airport_protocol::airport::{ObjectRow, StoreOp};
use airport_protocol::json::serialized_chars;
use airport_protocol::limits::{MAX_OBJECTS, MAX_SHARED_STATE_CHARS};
use airport_protocol::liveness::Schedule;
use airport_protocol::outbox::compact;
use airport_protocol::packet::Frame;
use airport_protocol::shared_state::SharedState;
use airport_protocol::{Airport, Cid, Role, Session};
use airport_testkit::harness::{Audience, Harness};
use airport_testkit::has_null_member;
use airport_testkit::store::Store;
use airport_testkit::store::objects_of;
use proptest::prelude::*;
use serde_json::{Map, Value, json};

fn session(role: Role, cid: &str) -> Session {
    Session {
        cid: Cid::parse(cid).unwrap(),
        role,
        callsign: None,
    }
}

/// No rate limiting: these properties are about packets, not pacing.
fn unlimited() -> Harness {
    let mut h = Harness::unlimited();
    h.step_ms = 0;
    h
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i32>().prop_map(|n| json!(n)),
        "[a-z]{0,6}".prop_map(Value::String),
    ];
    leaf.prop_recursive(5, 32, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map("[a-c]{1,2}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn object_id() -> impl Strategy<Value = String> {
    prop_oneof![
        "[A-Z]{2}_[0-9]{1}".prop_map(|s| s),
        Just("bad id".to_string()),
        Just(String::new()),
    ]
}

fn change() -> impl Strategy<Value = Value> {
    (
        object_id(),
        prop_oneof![
            json_value().prop_map(|v| json!({ "state": v })),
            json_value().prop_map(|v| json!({ "patch": v })),
            Just(json!({ "patch": null })),
            Just(json!({})),
        ],
    )
        .prop_map(|(id, mut body)| {
            body["objectId"] = json!(id);
            body
        })
}

/// Mostly well-formed packets of every type, some malformed.
fn packet() -> impl Strategy<Value = String> {
    let typed = prop_oneof![
        Just(json!({"type": "HEARTBEAT"})),
        Just(json!({"type": "HEARTBEAT_ACK"})),
        Just(json!({"type": "GET_STATE", "requestId": "r"})),
        Just(json!({"type": "GET_ONLINE_PILOTS"})),
        Just(json!({"type": "INITIAL_STATE"})),
        change().prop_map(|d| json!({"type": "STATE_UPDATE", "data": d})),
        prop::collection::vec(change(), 0..5)
            .prop_map(|u| json!({"type": "MULTI_STATE_UPDATE", "data": {"updates": u}})),
        prop::collection::vec(change(), 0..5)
            .prop_map(|u| json!({"type": "MULTI_STATE_UPDATE", "data": u})),
        json_value()
            .prop_map(|p| json!({"type": "SHARED_STATE_UPDATE", "data": {"sharedStatePatch": p}})),
        object_id().prop_map(|id| json!({"type": "STOPBAR_CROSSING", "data": {"objectId": id}})),
        Just(
            json!({"type": "STATE_UPDATE", "airport": "EGKK", "data": {"objectId": "A", "state": true}})
        ),
        json_value().prop_map(|v| json!({"type": v})),
    ];
    prop_oneof![
        4 => typed.prop_map(|v| v.to_string()),
        1 => any::<String>(),
    ]
}

fn state_changed(before: &Airport, after: &Airport) -> bool {
    objects_of(before) != objects_of(after) || before.shared() != after.shared()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Any bytes, as a text or binary frame, from any role: no panic, and a rejected frame
    /// changes nothing.
    #[test]
    fn arbitrary_frames_never_panic_and_rejections_change_nothing(
        bytes in prop::collection::vec(any::<u8>(), 0..512),
        role in prop::sample::select(Role::ALL.to_vec()),
    ) {
        let mut h = unlimited();
        let who = session(role, "1");
        h.socket(&who);
        let before = h.clone();
        let effects = h.send_frame(&who, Frame::Binary(&bytes));
        if effects.persist.is_empty() {
            prop_assert_eq!(h.airport(), before.airport());
        }
        if let Ok(text) = std::str::from_utf8(&bytes) {
            let mut again = before.clone();
            again.send_frame(&who, Frame::Text(text));
            prop_assert_eq!(again.airport(), h.airport());
        }
    }

    /// Sequences of packets from any role: seq moves by exactly one per accepted change, only
    /// controllers change state, rejected packets change nothing, and the limits hold.
    #[test]
    fn packet_sequences_keep_the_invariants(
        steps in prop::collection::vec((prop::sample::select(Role::ALL.to_vec()), packet()), 1..40),
    ) {
        let mut h = unlimited();
        for (role, text) in &steps {
            let who = session(*role, "1000001");
            h.socket(&who);
            let before = h.airport().clone();
            let effects = h.send_text(&who, text);
            let airport = h.airport();
            let seq_ops: Vec<u64> = effects.persist.iter().filter_map(|op| match op {
                StoreOp::SetSeq(seq) => Some(*seq),
                _ => None,
            }).collect();
            let rejected = effects.reply.as_deref().is_some_and(|r| r.contains("\"type\":\"ERROR\""));
            if rejected {
                prop_assert_eq!(airport, &before, "a rejected packet changed state: {}", text);
                prop_assert!(effects.persist.is_empty());
                prop_assert!(effects.broadcast.is_none());
            }
            if seq_ops.is_empty() {
                prop_assert_eq!(airport.seq(), before.seq());
                prop_assert!(!state_changed(&before, airport));
            } else {
                prop_assert_eq!(seq_ops, vec![before.seq() + 1]);
                prop_assert_eq!(airport.seq(), before.seq() + 1);
                prop_assert_eq!(*role, Role::Controller, "a {} changed state", role);
                // Every accepted change is broadcast with its seq.
                let (audience, packet) = effects.broadcast.as_ref().expect("an accepted change is broadcast");
                prop_assert_ne!(*audience, Audience::Controllers);
                let seq_field = format!("\"seq\":{}", airport.seq());
                prop_assert!(packet.contains(&seq_field));
            }
            prop_assert!(objects_of(airport).len() <= MAX_OBJECTS);
            prop_assert!(airport.shared().serialized_chars() <= MAX_SHARED_STATE_CHARS);
            prop_assert_eq!(
                airport.shared().serialized_chars(),
                serialized_chars(airport.shared().as_map())
            );
        }
    }

    /// PROTOCOL §7: `data` as a bare array of items (the vatSys plugin's form) means exactly
    /// what `{updates: [...]}` does: the same changes, writes and broadcast, or the same error,
    /// whose message names `data[i]` where the other names `data.updates[i]`.
    #[test]
    fn a_bare_array_batch_is_the_updates_form(
        items in prop::collection::vec(change(), 0..6),
        existing in prop::collection::vec(change(), 0..3),
    ) {
        let who = session(Role::Controller, "1000001");
        let mut seeded = unlimited();
        for item in existing {
            seeded.send(&who, json!({"type": "STATE_UPDATE", "data": item}));
        }
        let (mut bare, mut wrapped) = (seeded.clone(), seeded);
        let bare_text = json!({"type": "MULTI_STATE_UPDATE", "data": items}).to_string();
        let wrapped_text =
            json!({"type": "MULTI_STATE_UPDATE", "data": {"updates": items}}).to_string();
        let mut from_bare = bare.send_text(&who, &bare_text);
        let mut from_wrapped = wrapped.send_text(&who, &wrapped_text);
        from_wrapped.reply = from_wrapped.reply.map(|reply| reply.replace("data.updates", "data"));
        from_bare.reply = from_bare.reply.map(|reply| reply.replace("data.updates", "data"));
        prop_assert_eq!(from_bare, from_wrapped);
        prop_assert_eq!(bare.airport(), wrapped.airport());
    }

    /// RFC 7396: applying the same patch twice is the same as once, and the tracked size of
    /// the shared state always equals its serialized length.
    #[test]
    fn merge_patch_is_idempotent_and_sizes_track(
        patches in prop::collection::vec(prop::collection::btree_map("[a-c]", json_value(), 0..4), 1..8),
    ) {
        let mut shared = SharedState::default();
        for patch in patches {
            let patch: Map<String, Value> = patch.into_iter().collect();
            shared.merge(&patch, 0).unwrap();
            let once = shared.clone();
            shared.merge(&patch, 0).unwrap();
            prop_assert_eq!(&shared, &once);
            prop_assert_eq!(shared.serialized_chars(), serialized_chars(shared.as_map()));
            // A merge leaves no null member behind (nulls inside arrays are data).
            prop_assert!(!has_null_member(shared.as_map()));
        }
    }
}

/// A storage write over a few rows, so that batches overwrite rows often.
fn store_op() -> impl Strategy<Value = StoreOp> {
    let row = prop::sample::select(vec!["a", "b", "c"]);
    prop_oneof![
        (row.clone(), any::<i8>()).prop_map(|(id, n)| StoreOp::PutObject {
            id: id.into(),
            row: ObjectRow {
                state_json: serde_json::value::RawValue::from_string(n.to_string()).unwrap(),
                controller_id: Cid::parse("1000001").unwrap(),
                updated_at: i64::from(n),
                seq: n.unsigned_abs().into(),
            },
        }),
        row.clone()
            .prop_map(|id| StoreOp::DeleteObject { id: id.into() }),
        (row.clone(), any::<i8>()).prop_map(|(key, n)| StoreOp::PutShared {
            key: key.into(),
            value: json!(n),
        }),
        row.clone()
            .prop_map(|key| StoreOp::DeleteShared { key: key.into() }),
        Just(StoreOp::ClearState),
        any::<u8>().prop_map(|n| StoreOp::SetSeq(u64::from(n))),
        (row.clone(), any::<u8>()).prop_map(|(id, n)| StoreOp::PutTombstone {
            id: id.into(),
            seq: u64::from(n),
        }),
        any::<u8>().prop_map(|n| StoreOp::SetSharedSeq(u64::from(n))),
        any::<u8>().prop_map(|n| StoreOp::SetResumeFloor(u64::from(n))),
        prop::option::of(any::<i16>()).prop_map(|t| StoreOp::SetOfflineSince(t.map(i64::from))),
        (
            prop::option::of(any::<i16>()),
            prop::option::of(any::<i16>())
        )
            .prop_map(|(h, r)| {
                StoreOp::SetSchedule(Schedule {
                    heartbeat: h.map(i64::from),
                    recheck: r.map(i64::from),
                })
            }),
    ]
}

/// Each row written at most once (resume floors aside), at most one clear, and nothing but the
/// airport's own columns and tombstones (`meta:`, which a clear leaves) before it.
fn is_minimal(ops: &[StoreOp]) -> bool {
    let mut rows = std::collections::HashSet::new();
    let mut cleared = false;
    ops.iter().all(|op| match op {
        StoreOp::PutObject { id, .. } | StoreOp::DeleteObject { id } => {
            rows.insert(format!("o:{id}"))
        }
        StoreOp::PutShared { key, .. } | StoreOp::DeleteShared { key } => {
            rows.insert(format!("s:{key}"))
        }
        StoreOp::ClearState => {
            !std::mem::replace(&mut cleared, true) && !rows.iter().any(|r| !r.starts_with("meta:"))
        }
        StoreOp::SetSeq(_) => rows.insert("meta:seq".into()),
        StoreOp::PutTombstone { id, .. } => rows.insert(format!("meta:tombstone:{id}")),
        StoreOp::SetSharedSeq(_) => rows.insert("meta:shared_seq".into()),
        StoreOp::SetResumeFloor(_) => true,
        StoreOp::SetOfflineSince(_) => rows.insert("meta:offline".into()),
        StoreOp::SetSchedule(_) => rows.insert("meta:schedule".into()),
    })
}

/// Storage in which every row holds what no `store_op` writes, so that a lost write shows.
fn untouched() -> Store {
    let record = ObjectRecord {
        state: json!("untouched"),
        controller_id: Cid::parse("1000009").unwrap(),
        updated_at: i64::MIN,
        seq: u64::MAX,
    };
    let rows = ["a", "b", "c"];
    Store {
        objects: rows.map(|id| (id.to_owned(), record.clone())).into(),
        shared: rows
            .map(|key| (key.to_owned(), json!("untouched")))
            .into_iter()
            .collect(),
        seq: u64::MAX,
        offline_since: Some(i64::MIN),
        schedule: Schedule {
            heartbeat: Some(i64::MIN),
            recheck: Some(i64::MIN),
        },
        shared_seq: u64::MAX,
        tombstones: rows.map(|id| (id.to_owned(), u64::MAX)).into(),
        ..Store::default()
    }
}

fn apply(ops: &[StoreOp]) -> Store {
    let mut store = untouched();
    store.apply(ops);
    store
}

proptest! {
    /// A batch of several events' writes, compacted, leaves the tables exactly as the writes
    /// one by one would, and never writes more.
    #[test]
    fn compacted_batches_store_the_same(
        initial in prop::collection::vec(store_op(), 0..6),
        batch in prop::collection::vec(store_op(), 0..40),
    ) {
        let compacted = compact(batch.clone());
        prop_assert!(is_minimal(&compacted), "a row is written twice: {:?}", compacted);
        let one_by_one = apply(&[initial.clone(), batch].concat());
        let together = apply(&[initial, compacted].concat());
        prop_assert_eq!(together, one_by_one);
    }
}
