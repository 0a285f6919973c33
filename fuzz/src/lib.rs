//! What the fuzz targets share: the fixed airport, the checks of server packets and of an
//! airport's invariants, a model of durable storage rebuilt from the `StoreOp`s alone, and the
//! structured inputs (`arbitrary`) of the `state_machine` target.
//!
//! Everything here asserts: a failed check is a panic, which libFuzzer reports as a crash.

pub mod decode;
pub mod input;
pub mod run;
pub mod script;

use airport_protocol::airport::{ObjectRecord, StoreOp};
use airport_protocol::config::Config;
use airport_protocol::ids::is_valid_object_id;
use airport_protocol::json::{depth, object_depth, serialized_chars};
use airport_protocol::limits::*;
use airport_protocol::outbox;
use airport_protocol::{Airport, Cid, CloseCode, Icao, Role, Session};
use airport_testkit::harness::{Audience, Harness, Sent, unlimited_rates};
use airport_testkit::has_null_member;
pub use airport_testkit::reparsed;
use airport_testkit::store::{Store, objects_of};
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;

/// A packet's text in a failure message: the first 600 characters.
pub struct Clip<'a>(pub &'a str);

impl std::fmt::Display for Clip<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0.char_indices().nth(600) {
            None => f.write_str(self.0),
            Some((end, _)) => write!(f, "{}… ({} bytes)", &self.0[..end], self.0.len()),
        }
    }
}

/// The airport every target is connected to.
pub const AIRPORT: &str = "EGLL";
/// The longest `ERROR` packet: its message quotes at most 64 characters of the client's.
pub const MAX_ERROR_CHARS: usize = 1_024;
/// Server packets longer than this are checked without building their `data`.
pub const FULL_PARSE_CHARS: usize = 100_000;
/// A plausible epoch-ms clock start.
pub const T0: i64 = 1_763_800_000_000;

pub fn icao() -> Icao {
    Icao::parse(AIRPORT).expect("a valid ICAO")
}

/// A room holding `airport`, with production's rate limits or none, at `T0`; each frame one
/// millisecond after the previous event unless the caller moves the clock.
pub fn room(airport: Airport, limited: bool) -> Harness {
    let mut config = Config::default();
    if !limited {
        config.rate_limits = unlimited_rates();
    }
    let mut h = Harness::with(config, airport);
    h.now = T0;
    h.step_ms = 0;
    h
}

pub fn session(role: Role, person: u8, callsign: bool) -> Session {
    Session {
        cid: Cid::parse(&format!("100000{}", person % 4)).expect("a valid cid"),
        role,
        callsign: (callsign && role == Role::Pilot).then(|| format!("BAW{}", person % 4)),
    }
}

/// Prefilled objects are named `p0`, `p1`, …; their states are small objects.
pub fn prefilled_object(i: usize) -> (String, ObjectRecord) {
    (
        format!("p{i}"),
        ObjectRecord {
            // Mostly booleans: a near-limit airport is cloned and compared often.
            state: if i.is_multiple_of(100) {
                json!({"on": i.is_multiple_of(200), "n": i})
            } else {
                json!(i.is_multiple_of(2))
            },
            controller_id: Cid::parse("1000009").expect("a valid cid"),
            updated_at: T0 - 1,
            seq: 0,
        },
    )
}

/// An airport restored from storage with `objects` prefilled objects and shared state of about
/// `shared_chars` serialized characters (in members of at most 9,000 characters).
pub fn prefilled_airport(objects: usize, shared_chars: usize) -> Airport {
    let objects: BTreeMap<_, _> = (0..objects).map(prefilled_object).collect();
    let mut shared = Map::new();
    shared.insert("a".into(), json!({"b": 1, "c": [1, 2, {"d": null}]}));
    let mut total = serialized_chars(&shared);
    let mut i = 0;
    // Each member `,"sN":"xxx…"` adds its key, the string and 6 characters of punctuation.
    while total + 64 < shared_chars {
        let key = format!("s{i}");
        let len = (shared_chars - total).min(9_000) - 6 - key.len();
        total += 6 + key.len() + len;
        shared.insert(key, Value::String("x".repeat(len)));
        i += 1;
    }
    debug_assert_eq!(total, serialized_chars(&shared));
    let airport = Airport::restore(icao(), objects, shared, 41, None);
    check_airport(&airport);
    airport
}

/// What an airport held before an event: a copy of it, or the storage model that equals it
/// (comparing against the model spares cloning a near-limit airport for every event).
pub trait Baseline {
    fn seq(&self) -> u64;
    fn offline_since(&self) -> Option<i64>;
    fn has_state(&self) -> bool;
    /// The same objects, shared state and `seq` (`offline_since` is not "state").
    fn same_state(&self, airport: &Airport) -> bool;
    /// The same in every respect.
    fn same(&self, airport: &Airport) -> bool {
        self.same_state(airport) && self.offline_since() == airport.offline_since()
    }
}

impl Baseline for Airport {
    fn seq(&self) -> u64 {
        Airport::seq(self)
    }
    fn offline_since(&self) -> Option<i64> {
        Airport::offline_since(self)
    }
    fn has_state(&self) -> bool {
        !objects_of(self).is_empty() || !self.shared().is_empty()
    }
    fn same_state(&self, airport: &Airport) -> bool {
        objects_of(self) == objects_of(airport)
            && self.shared() == airport.shared()
            && Airport::seq(self) == airport.seq()
    }
    fn same(&self, airport: &Airport) -> bool {
        self == airport
    }
}

impl Baseline for Store {
    fn seq(&self) -> u64 {
        self.seq
    }
    fn offline_since(&self) -> Option<i64> {
        self.offline_since
    }
    fn has_state(&self) -> bool {
        Store::has_state(self)
    }
    fn same_state(&self, airport: &Airport) -> bool {
        Store::same_state(self, airport)
    }
}

/// The limits and shapes that must hold at every moment (PROTOCOL §3), for the whole airport.
pub fn check_airport(airport: &Airport) {
    check_count(airport);
    for (id, record) in objects_of(airport) {
        check_object(id, record);
    }
    check_shared(airport);
    let objects: usize = objects_of(airport)
        .values()
        .map(|record| serialized_chars(&record.state))
        .sum();
    assert_eq!(
        airport.state_chars().expect("the objects are read"),
        objects + airport.shared().serialized_chars(),
        "tracked airport state size differs from its serialized length"
    );
}

/// The same after a change, for what `ops` wrote: the rest was checked before and did not
/// change (which the storage model checks). Checking all of a near-limit airport after every
/// write would cost most of a run. A change writes each object it touches in turn; the last
/// write of each is what a commit keeps and what the airport holds.
pub fn check_written(airport: &Airport, ops: &[StoreOp]) {
    check_count(airport);
    let mut shared = false;
    for op in &outbox::compact(ops.to_vec()) {
        match op {
            StoreOp::PutObject { id, .. } => {
                let record = objects_of(airport)
                    .get(id)
                    .unwrap_or_else(|| panic!("object {id} was written but is not held"));
                check_object(id, record);
            }
            StoreOp::PutShared { .. } | StoreOp::DeleteShared { .. } => shared = true,
            _ => {}
        }
    }
    if shared {
        check_shared(airport);
    }
}

fn check_count(airport: &Airport) {
    assert!(
        objects_of(airport).len() <= MAX_OBJECTS,
        "{} objects",
        objects_of(airport).len()
    );
    assert!(
        airport.state_chars().expect("the objects are read") <= MAX_AIRPORT_STATE_CHARS,
        "the airport holds {} characters",
        airport.state_chars().expect("the objects are read")
    );
}

fn check_object(id: &str, record: &ObjectRecord) {
    assert!(is_valid_object_id(id), "stored object id {id:?}");
    assert!(
        matches!(record.state, Value::Bool(_) | Value::Object(_)),
        "object {id} has state {}",
        record.state
    );
    assert!(
        depth(&record.state) <= MAX_VALUE_DEPTH,
        "object {id} is nested {} deep",
        depth(&record.state)
    );
    // Findings 1 and 2 of FUZZING.md (fixed in 221ba90).
    assert_eq!(
        reparsed::<_, Value>(&record.state),
        record.state,
        "the state of object {id} does not survive a JSON round trip (storage, restart)"
    );
    let chars = serialized_chars(&record.state);
    assert!(
        chars <= MAX_OBJECT_STATE_CHARS,
        "object {id} holds a state of {chars} serialized characters (MAX_OBJECT_STATE_CHARS is {MAX_OBJECT_STATE_CHARS})"
    );
}

fn check_shared(airport: &Airport) {
    let shared = airport.shared();
    let chars = shared.serialized_chars();
    assert!(
        chars <= MAX_SHARED_STATE_CHARS,
        "shared state is {chars} characters"
    );
    assert_eq!(
        chars,
        serialized_chars(shared.as_map()),
        "tracked shared-state size differs from its serialized length"
    );
    assert!(object_depth(shared.as_map()) <= MAX_VALUE_DEPTH);
    assert_eq!(
        &reparsed::<_, Map<String, Value>>(shared.as_map()),
        shared.as_map(),
        "the shared state does not survive a JSON round trip (storage, restart)"
    );
    assert!(
        !has_null_member(shared.as_map()),
        "a merge left a null member in the shared state"
    );
}

/// A server packet as sent: one JSON object with its `type`, `airport` and `timestamp` filled.
/// Returned as a `Value`, whose indexing yields `null` for a missing member. A packet longer than
/// `FULL_PARSE_CHARS` is still checked to be valid JSON, but when it is a snapshot (of a
/// near-limit airport) its `data` is skipped and returned as `null`, to keep those runs fast.
pub fn server_packet(text: &str, now: i64) -> Value {
    let snapshot = ["INITIAL_STATE", "STATE_SNAPSHOT"]
        .iter()
        .find(|kind| text.starts_with(&format!("{{\"type\":\"{kind}\",")));
    let value: Value = if text.len() > FULL_PARSE_CHARS
        && let Some(kind) = snapshot
    {
        // A snapshot of a near-limit airport: `{"type","airport","data":{…},"timestamp",…}`.
        // Check the envelope around `data` (which serde_json wrote from a Value) without
        // scanning it.
        let head = format!("{{\"type\":\"{kind}\",\"airport\":\"{AIRPORT}\",\"data\":{{");
        assert!(text.starts_with(&head), "{}", Clip(text));
        let tail = &text[text.rfind("},\"timestamp\":").expect("a timestamp") + 1..];
        let mut packet: Value = serde_json::from_str(&format!("{{{}", &tail[1..]))
            .unwrap_or_else(|e| panic!("server packet tail is not JSON ({e}): {}", Clip(tail)));
        packet["type"] = json!(kind);
        packet["airport"] = json!(AIRPORT);
        packet
    } else if text.len() > FULL_PARSE_CHARS {
        #[derive(serde::Deserialize)]
        struct Header<'a> {
            #[serde(rename = "type")]
            kind: String,
            airport: Value,
            timestamp: Value,
            #[serde(default)]
            seq: Option<Value>,
            #[serde(rename = "requestId", default)]
            request_id: Option<Value>,
            #[serde(borrow, default)]
            data: Option<&'a serde_json::value::RawValue>,
        }
        let header: Header = serde_json::from_str(text)
            .unwrap_or_else(|e| panic!("server packet is not JSON ({e}): {}", Clip(text)));
        let mut packet = json!({
            "type": header.kind,
            "airport": header.airport,
            "timestamp": header.timestamp,
        });
        if let Some(seq) = header.seq {
            packet["seq"] = seq;
        }
        if let Some(id) = header.request_id {
            packet["requestId"] = id;
        }
        // Snapshots of near-limit airports are what makes packets this long: skip their data.
        if let Some(data) = header.data
            && !matches!(header.kind.as_str(), "INITIAL_STATE" | "STATE_SNAPSHOT")
        {
            packet["data"] = serde_json::from_str(data.get()).expect("data is JSON");
        }
        packet
    } else {
        serde_json::from_str(text)
            .unwrap_or_else(|e| panic!("server packet is not JSON ({e}): {}", Clip(text)))
    };
    let text = Clip(text);
    let Value::Object(packet) = &value else {
        panic!("server packet is not an object: {text}");
    };
    assert!(
        matches!(packet.get("type"), Some(Value::String(_))),
        "server packet without a type: {text}"
    );
    assert_eq!(packet.get("airport"), Some(&json!(AIRPORT)), "{text}");
    assert_eq!(packet.get("timestamp"), Some(&json!(now)), "{text}");
    value
}

fn type_of(packet: &Value) -> &str {
    packet["type"].as_str().unwrap_or_default()
}

/// The `requestId` a client packet carries, as the contract reads it: a string of at most 64
/// characters in a JSON object. `None` for anything else.
pub fn request_id_of(frame: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(frame).ok()?;
    // A controller's lighting packet may be this large; anything larger is never read.
    if text.chars().count() > MAX_LIGHTING_PACKET_CHARS {
        return None;
    }
    let value: Value = serde_json::from_str(text).ok()?;
    match value.as_object()?.get("requestId")? {
        Value::String(id) if id.chars().count() <= MAX_REQUEST_ID_CHARS => Some(id.clone()),
        _ => None,
    }
}

/// How one frame was handled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// An `ERROR` reply with this code.
    Rejected(String),
    /// Handled; `changed` when it was an accepted change (`seq` + 1).
    Accepted { changed: bool },
}

/// Checks the effects of `on_frame` for one frame against the airport before and after.
/// `before` must already satisfy `check_airport`.
pub fn check_frame(
    before: &impl Baseline,
    after: &Airport,
    session: &Session,
    frame: &[u8],
    effects: &Sent,
    now: i64,
) -> Outcome {
    // A frame that closes its socket (`CLOSE`, or flooding) also has the socket leave; what
    // leaving writes and announces is checked apart (`check_left`), and is all it writes.
    let closing;
    let effects = match effects.close {
        Some(_) => {
            check_left(session, &effects.persist, effects.broadcast.as_ref(), now);
            closing = Sent {
                reply: effects.reply.clone(),
                close: effects.close,
                request_id: effects.request_id.clone(),
                ..Sent::default()
            };
            &closing
        }
        None => effects,
    };
    let unchanged = match effects.close {
        Some(_) => before.same_state(after),
        None => before.same(after),
    };
    let reply = effects.reply.as_deref().map(|r| (r, server_packet(r, now)));
    let error = reply.as_ref().and_then(|(text, packet)| {
        let chars = text.chars().count();
        let text = Clip(text);
        (type_of(packet) == "ERROR").then(|| {
            // Client strings are echoed cut short: an error is never much larger than a
            // normal packet (the observation of FUZZING.md, fixed in 221ba90).
            assert!(
                chars <= MAX_ERROR_CHARS,
                "an ERROR of {chars} characters: {text}"
            );
            let data = packet["data"]
                .as_object()
                .unwrap_or_else(|| panic!("ERROR without data: {text}"));
            let message = data["message"].as_str().unwrap_or_default();
            assert!(!message.is_empty(), "ERROR without a message: {text}");
            data["code"]
                .as_str()
                .unwrap_or_else(|| panic!("ERROR without a code: {text}"))
                .to_owned()
        })
    });
    let seq_ops: Vec<u64> = effects
        .persist
        .iter()
        .filter_map(|op| match op {
            StoreOp::SetSeq(seq) => Some(*seq),
            _ => None,
        })
        .collect();

    // A rejected packet changes nothing and goes nowhere.
    if let Some(code) = &error {
        assert!(unchanged, "a rejected packet ({code}) changed the airport");
        assert!(
            effects.persist.is_empty(),
            "a rejected packet ({code}) persisted"
        );
        assert!(
            effects.broadcast.is_none(),
            "a rejected packet ({code}) was broadcast"
        );
        match effects.close {
            None => {}
            // Past the packet rate (`RATE_LIMITED`), or the last straw of a flood of questions
            // or refused frames, each answered with its own error (`RateLimits::asks`,
            // `RateLimits::refusals`).
            Some(CloseCode::Flooding) => {}
            Some(other) => panic!("a rejected packet ({code}) closed the socket with {other:?}"),
        }
    }

    // Only controllers change state; anything else leaves the airport exactly as it was.
    if session.role != Role::Controller {
        assert!(unchanged, "a {} changed the airport", session.role);
    }

    // `seq` moves by exactly one per accepted change, and only then is anything written.
    if seq_ops.is_empty() {
        assert!(unchanged, "the airport changed without a new seq");
        assert!(
            effects.persist.is_empty(),
            "persisted without a new seq: {:?}",
            effects.persist
        );
    } else {
        assert_eq!(
            seq_ops,
            vec![before.seq() + 1],
            "seq went from {} via {seq_ops:?}",
            before.seq()
        );
        assert_eq!(after.seq(), before.seq() + 1);
        check_written(after, &effects.persist);
        assert_eq!(
            session.role,
            Role::Controller,
            "a {} changed state",
            session.role
        );
        assert!(error.is_none());
        let (audience, text) = effects
            .broadcast
            .as_ref()
            .expect("an accepted change is broadcast");
        assert_ne!(*audience, Audience::Controllers);
        let packet = server_packet(text, now);
        assert_eq!(
            packet.get("seq"),
            Some(&json!(after.seq())),
            "{}",
            Clip(text)
        );
        check_change_broadcast(&packet, after, session, text);
    }
    if seq_ops.is_empty() && error.is_none() {
        // Accepted but no change: a read, a heartbeat, a crossing or deleting a missing object.
        if let Some((audience, text)) = &effects.broadcast {
            let packet = server_packet(text, now);
            assert_eq!(type_of(&packet), "STOPBAR_CROSSING", "{}", Clip(text));
            assert_eq!(*audience, Audience::Controllers);
            assert_eq!(session.role, Role::Pilot);
            assert!(packet.get("seq").is_none());
        }
    }
    if let Some((_, text)) = &effects.broadcast {
        let packet = server_packet(text, now);
        assert!(
            packet.get("requestId").is_none(),
            "a broadcast carries a requestId: {}",
            Clip(text)
        );
    }
    if let Some(close) = effects.close {
        assert!(
            matches!(close, CloseCode::Requested | CloseCode::Flooding),
            "{close:?}"
        );
        if close == CloseCode::Requested {
            assert!(effects.reply.is_none() && effects.broadcast.is_none());
        }
    }

    // The direct reply echoes the packet's requestId.
    if let Some((text, packet)) = &reply {
        let echoed = packet.get("requestId");
        if let Some(echoed) = echoed {
            let echoed = echoed.as_str().expect("requestId is a string");
            assert!(echoed.chars().count() <= MAX_REQUEST_ID_CHARS);
        }
        let expected = request_id_of(frame);
        let code = error.as_deref();
        let parsed_before_rejection = !matches!(
            code,
            Some("INVALID_JSON" | "PACKET_TOO_LARGE" | "RATE_LIMITED")
        ) && !text.contains("\"packet: nested deeper");
        let text = Clip(text);
        if parsed_before_rejection {
            assert_eq!(
                echoed.and_then(Value::as_str),
                expected.as_deref(),
                "reply does not echo the requestId: {text}"
            );
        } else if echoed.is_some() {
            // Finding 3 of FUZZING.md (fixed in 221ba90): a rate-limited frame may lose its
            // echo (when it is nested too deep), but never echoes what it does not carry.
            assert_eq!(
                echoed.and_then(Value::as_str),
                expected.as_deref(),
                "the reply echoes a requestId the packet does not carry: {text}"
            );
        }
    }

    match error {
        Some(code) => Outcome::Rejected(code),
        None => Outcome::Accepted {
            changed: !seq_ops.is_empty(),
        },
    }
}

/// A socket of `session` left: at most the start of the offline grace period is written, and
/// at most a controller's disconnection is announced to the others.
pub fn check_left(
    session: &Session,
    persist: &[StoreOp],
    broadcast: Option<&(Audience, String)>,
    now: i64,
) {
    assert!(
        persist.is_empty() || persist == [StoreOp::SetOfflineSince(Some(now))],
        "leaving wrote {persist:?}"
    );
    if let Some((audience, text)) = broadcast {
        assert_eq!(*audience, Audience::Others);
        let packet = server_packet(text, now);
        assert_eq!(type_of(&packet), "CONTROLLER_DISCONNECT", "{}", Clip(text));
        assert_eq!(packet["data"]["controllerId"], json!(session.cid.as_str()));
        assert_eq!(session.role, Role::Controller);
    } else {
        assert!(persist.is_empty(), "the grace period started unannounced");
    }
}

/// The broadcast of an accepted change says what the airport now holds.
fn check_change_broadcast(packet: &Value, after: &Airport, by: &Session, text: &str) {
    let text = Clip(text);
    let Some(data) = packet["data"].as_object() else {
        panic!("a change without data: {text}");
    };
    let by = json!(by.cid.as_str());
    let check_item = |item: &Map<String, Value>| {
        assert_eq!(item.get("controllerId"), Some(&by), "{text}");
        let id = item["objectId"].as_str().expect("objectId");
        match (item.get("state"), item.get("patch")) {
            (Some(state), None) => assert_eq!(
                objects_of(after)
                    .get(id)
                    .map(|r| reparsed::<_, Value>(&r.state))
                    .as_ref(),
                Some(state),
                "{text}"
            ),
            (None, Some(Value::Null)) => {
                assert!(!objects_of(after).contains_key(id), "{text}")
            }
            _ => panic!("a change item is neither a state nor a deletion: {text}"),
        }
    };
    match type_of(packet) {
        "STATE_UPDATE" => check_item(data),
        "MULTI_STATE_UPDATE" => {
            let updates = data["updates"].as_array().expect("updates");
            assert!(!updates.is_empty() && updates.len() <= MAX_LIGHTING_UPDATES);
            // Only the last item of each object says what it holds now.
            let mut last = BTreeMap::new();
            for item in updates {
                let item = item.as_object().expect("an update item");
                last.insert(item["objectId"].as_str().expect("objectId"), item);
            }
            last.into_values().for_each(check_item);
        }
        "SHARED_STATE_UPDATE" => {
            assert_eq!(data.get("controllerId"), Some(&by), "{text}");
            assert!(data["sharedStatePatch"].is_object(), "{text}");
        }
        other => panic!("an accepted change was broadcast as {other}: {text}"),
    }
}
