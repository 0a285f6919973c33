//! What the protocol's native tests, the fuzzer and the benches share, so that they drive the
//! production [`Room`](airport_protocol::Room) the same way and check it against one model:
//!
//! * [`harness`]: a room in simulated time, each session on its own socket, and a frame's
//!   effects as its sender sees them;
//! * [`store`]: durable storage rebuilt from the `StoreOp`s alone, as a restart would read it;
//! * [`bench_cases`]: the packets the per-packet benchmarks send, natively and in Wasm.

pub mod bench_cases;
pub mod harness;
pub mod store;

use serde_json::{Map, Value};

/// A value as it comes back from its JSON text: what a client parses from a broadcast and what a
/// restart restores from storage.
pub fn reparsed<T: serde::Serialize + ?Sized, R: serde::de::DeserializeOwned>(value: &T) -> R {
    let text = serde_json::to_string(value).expect("a value serializes");
    serde_json::from_str(&text).expect("a serialized value parses")
}

/// Whether any object member (outside arrays) is null: a merge never leaves one behind.
pub fn has_null_member(map: &Map<String, Value>) -> bool {
    map.values().any(|v| match v {
        Value::Null => true,
        Value::Object(inner) => has_null_member(inner),
        _ => false,
    })
}
