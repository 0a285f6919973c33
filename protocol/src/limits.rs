//! The limits of PROTOCOL §3. "Characters" are Unicode scalar values throughout.

/// Largest accepted frame, in characters.
pub const MAX_PACKET_CHARS: usize = 50_000;
/// Items in one `MULTI_STATE_UPDATE` (at least one is required).
pub const MAX_MULTI_UPDATES: usize = 200;
/// Serialized size of one `sharedStatePatch`.
pub const MAX_SHARED_PATCH_CHARS: usize = 10_240;

/// PROTOCOL §7, the controller plugins' lighting packets: a frame holding a boolean-only batch
/// or a lighting-graph patch may be this large, in characters.
pub const MAX_LIGHTING_PACKET_CHARS: usize = 1_000_000;
/// Items in a boolean-only `MULTI_STATE_UPDATE` (every item exactly `{objectId, state: bool}`).
pub const MAX_LIGHTING_UPDATES: usize = MAX_OBJECTS;
/// Serialized size of a lighting-graph `sharedStatePatch`.
pub const MAX_LIGHTING_PATCH_CHARS: usize = 1_000_000;
/// The members a lighting-graph `sharedStatePatch` may have (the EuroScope plugin's graph).
pub const LIGHTING_GRAPH_MEMBERS: [&str; 4] = ["meta", "profile", "nodes", "blocks"];
/// Serialized size of the merged shared state of an airport.
pub const MAX_SHARED_STATE_CHARS: usize = 1_000_000;
/// Nesting depth of a `state`, `patch` or `sharedStatePatch` value (a scalar is 0).
pub const MAX_VALUE_DEPTH: usize = 16;
/// Objects one airport may hold.
pub const MAX_OBJECTS: usize = 10_000;
/// Serialized size of one object's state. Not in the contract: a single `state` can never exceed
/// it (it must fit in a packet), but repeated patches could grow an object without bound.
pub const MAX_OBJECT_STATE_CHARS: usize = MAX_PACKET_CHARS;
/// Serialized size of everything an airport holds: its objects' states and its shared state
/// together. Not in the contract: the biggest airports need a lighting graph (at most
/// `MAX_SHARED_STATE_CHARS`) and a boolean per lighting element, well under a tenth of the rest;
/// without it, `MAX_OBJECTS` states of `MAX_OBJECT_STATE_CHARS` would be 500 million characters,
/// held several times over by a wake-up, past the platform's 128 MB. An airport at this bound
/// loads, snapshots and wakes within 64 MB (`protocol/tests/memory.rs`).
pub const MAX_AIRPORT_STATE_CHARS: usize = 2_000_000;
/// Length of an `objectId`.
pub const MAX_OBJECT_ID_CHARS: usize = 128;
/// Length of a `requestId`.
pub const MAX_REQUEST_ID_CHARS: usize = 64;
