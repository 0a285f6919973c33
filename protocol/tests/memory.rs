//! An airport at `MAX_AIRPORT_STATE_CHARS`, in the shape that costs the most memory per
//! character (arrays of small numbers: 32 bytes a value for two characters), is loaded from its
//! rows as storage returns them, woken with sockets, and serves `INITIAL_STATE`, `GET_STATE` and
//! `/state`: the Wasm heap this takes at its peak stays within half of the platform's 128 MB,
//! which leaves the other half to the runtime and the JavaScript side of the same strings.
//! Its own test binary: the counting allocator sees every allocation of the process.

use airport_protocol::config::Config;
use airport_protocol::limits::{MAX_AIRPORT_STATE_CHARS, MAX_OBJECT_STATE_CHARS};
use airport_protocol::liveness::Schedule;
use airport_protocol::packet::Frame;
use airport_protocol::{Airport, Cid, Icao, ObjectRecord, Role, Room, Session};
use serde_json::{Map, Value};
use std::alloc::{GlobalAlloc, Layout, System};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};

/// The heap's size now and at its largest.
struct Counting;

static CURRENT: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

fn grew(bytes: usize) {
    let now = CURRENT.fetch_add(bytes, Ordering::Relaxed) + bytes;
    PEAK.fetch_max(now, Ordering::Relaxed);
}

// SAFETY: every call is passed on to the system allocator unchanged; only sizes are counted.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        grew(layout.size());
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        CURRENT.fetch_sub(layout.size(), Ordering::Relaxed);
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // Counted as a move: for a moment both blocks exist.
        grew(new_size);
        let moved = unsafe { System.realloc(ptr, layout, new_size) };
        CURRENT.fetch_sub(layout.size(), Ordering::Relaxed);
        moved
    }
}

#[global_allocator]
static HEAP: Counting = Counting;

const BUDGET_BYTES: usize = 64 * 1024 * 1024;

/// A JSON text of exactly `chars` characters: `{"n":[0,0,…,1…1]}`.
fn costly_json(chars: usize) -> String {
    let zeros = (chars - r#"{"n":[0]}"#.len()) / 2;
    let mut text = String::with_capacity(chars);
    text.push_str(r#"{"n":["#);
    for _ in 0..zeros {
        text.push_str("0,");
    }
    text.push('1');
    while text.len() + 2 < chars {
        text.push('1');
    }
    text.push_str("]}");
    text
}

#[test]
fn an_airport_at_its_state_bound_loads_snapshots_and_wakes_within_the_platforms_memory() {
    // The rows as storage returns them: the shared state's one member, then the objects, each
    // as large as an object may be, until the airport is at its bound.
    let shared_row = costly_json(1_000_000 - r#"{"g":}"#.len());
    let mut object_rows = Vec::new();
    let mut left = MAX_AIRPORT_STATE_CHARS - 1_000_000;
    while left > 0 {
        let chars = left.min(MAX_OBJECT_STATE_CHARS);
        object_rows.push((
            format!("OBJ_{:0>120}", object_rows.len()),
            costly_json(chars),
        ));
        left -= chars;
    }
    let baseline = CURRENT.load(Ordering::Relaxed);
    PEAK.store(baseline, Ordering::Relaxed);

    // Loading, as `storage::load` does: each row parsed into the airport's values.
    let mut objects = BTreeMap::new();
    for (id, state) in object_rows {
        let record = ObjectRecord {
            state: serde_json::from_str(&state).unwrap(),
            controller_id: Cid::parse("1000001").unwrap(),
            updated_at: 1,
            seq: 0,
        };
        objects.insert(id, record);
    }
    let mut shared = Map::new();
    shared.insert(
        "g".into(),
        serde_json::from_str::<Value>(&shared_row).unwrap(),
    );
    drop(shared_row);
    let airport = Airport::restore(Icao::parse("EGLL").unwrap(), objects, shared, 9, None);
    assert_eq!(airport.state_chars().unwrap(), MAX_AIRPORT_STATE_CHARS);

    // A wake-up with sockets, each served a snapshot, and the public state.
    let (mut room, _) = Room::restore(Config::default(), airport, Schedule::default(), [], 1_000);
    let mut sent = Vec::new();
    for (socket, cid) in [(1, "1000001"), (2, "1000002"), (3, "1000003")] {
        let session = Session {
            cid: Cid::parse(cid).unwrap(),
            role: Role::Observer,
            callsign: None,
        };
        sent.push(
            room.connect(socket, session, cid.into(), None, 2_000)
                .unwrap(),
        );
        sent.push(
            room.frame(socket, Frame::Text(r#"{"type":"GET_STATE"}"#), 2_001)
                .unwrap(),
        );
    }
    let public = room.public_state().unwrap();
    assert!(public.len() > MAX_AIRPORT_STATE_CHARS);

    let peak = PEAK.load(Ordering::Relaxed) - baseline;
    eprintln!("peak heap: {:.1} MB", peak as f64 / 1_048_576.0);
    assert!(
        peak < BUDGET_BYTES,
        "an airport at its bound took {peak} bytes at the peak"
    );
    drop((room, sent, public));
}
