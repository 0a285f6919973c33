//! Realtime airport lighting service.
//!
//! * The protocol core is its own crate, `airport-protocol` (`protocol/`): packets, validation,
//!   limits, roles, liveness and the airport's `Room` state machine, tested natively.
//! * [`lookup_cache`] reuses and shares look-ups of slow sources (D1, the status service);
//!   [`batch_lookup`] gathers concurrent look-ups of many keys into one query.
//! * `gateway` (Wasm only) is the Worker: routing, hashing the API key and the hand-off to
//!   the airport's Durable Object, which checks the key.
//! * `public_state` (Wasm only) answers the public `GET /state`, cached, from the directory of
//!   airports (`airport_directory`) or the airport's object.
//! * `airport_object` (Wasm only) is the hibernating Durable Object, one per airport: it
//!   carries out its `Room`'s effects as socket sends (`airport_sockets`), SQLite writes
//!   (`airport_storage`) and alarms.
//! * `standings` (Wasm only) looks people up: their key's account in D1 and, under the
//!   `vatsim` role source, their connections on the network.
//! * `person_lookup` (Wasm only) is a small Durable Object per person: one network look-up
//!   shared by every airport they connect to.
//! * `handoff` (Wasm only) is what the Worker and the airports' objects say to each other.

pub mod batch_lookup;
pub mod lookup_cache;

#[cfg(target_arch = "wasm32")]
mod accounts;
#[cfg(target_arch = "wasm32")]
mod airport_directory;
#[cfg(target_arch = "wasm32")]
mod airport_metrics;
#[cfg(target_arch = "wasm32")]
mod airport_object;
#[cfg(target_arch = "wasm32")]
mod airport_sockets;
#[cfg(target_arch = "wasm32")]
mod airport_storage;
#[cfg(target_arch = "wasm32")]
mod gateway;
#[cfg(target_arch = "wasm32")]
mod handoff;
#[cfg(target_arch = "wasm32")]
mod log_event;
#[cfg(target_arch = "wasm32")]
mod person_lookup;
#[cfg(target_arch = "wasm32")]
mod public_state;
#[cfg(target_arch = "wasm32")]
mod standings;
#[cfg(target_arch = "wasm32")]
mod subrequest;

/// The runtime's clock in epoch milliseconds, the time every event of the core takes. In
/// production it moves only across I/O, not while code runs.
#[cfg(target_arch = "wasm32")]
fn now_ms() -> i64 {
    worker::Date::now().as_millis() as i64
}
