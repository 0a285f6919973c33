//! Realtime airport lighting service.
//!
//! * [`protocol`] is the pure core: packets, validation, limits, role rules, airport state
//!   semantics and liveness deadlines. It has no Workers types and is tested natively.
//! * [`lookup_cache`] reuses and shares look-ups of slow sources (D1, the status service).
//! * `gateway` (Wasm only) is the Worker: routing, API-key checks and the hand-off to the
//!   airport's Durable Object.
//! * `public_state` (Wasm only) answers the public `GET /state`, cached, from the directory of
//!   airports (`airport_directory`) or the airport's object.
//! * `airport_object` (Wasm only) is the hibernating Durable Object, one per airport: it turns
//!   the core's effects into socket sends, SQLite writes and alarms.
//! * `handoff` (Wasm only) is what the Worker and the airports' objects say to each other.

pub mod lookup_cache;
pub mod protocol;

#[cfg(target_arch = "wasm32")]
mod accounts;
#[cfg(target_arch = "wasm32")]
mod airport_directory;
#[cfg(target_arch = "wasm32")]
mod airport_object;
#[cfg(target_arch = "wasm32")]
mod gateway;
#[cfg(target_arch = "wasm32")]
mod handoff;
#[cfg(target_arch = "wasm32")]
mod public_state;
