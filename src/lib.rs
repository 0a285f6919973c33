//! Realtime airport lighting service: the Worker crate. The protocol itself is its own crate,
//! `airport-protocol` (`protocol/`): packets, validation, limits, roles, liveness and the
//! airport's `Room` state machine, with no Workers types, tested natively. This crate carries
//! the room's effects out on the platform, in three parts:
//!
//! * [`gateway`] (Wasm only): the Worker's `fetch`. Routing, the public `GET /state`, the
//!   dashboard's pages; it reaches an airport only through its Durable Object's stub.
//! * [`airport`] (Wasm only): the hibernating Durable Object, one per airport, and its
//!   adapters (sockets, SQLite storage, metrics).
//! * [`people`]: who is connecting. Keys and bans in D1, the network's status service, and
//!   the two look-up helpers they share (tested natively).
//!
//! Beside them, what more than one part uses: [`directory`] (the D1 list of airports, written
//! by airports and read by the gateway), `handoff` (what the gateway and an airport say to
//! each other), `subrequest` and `log_event`.

pub mod people;

#[cfg(target_arch = "wasm32")]
mod airport;
#[cfg(target_arch = "wasm32")]
mod directory;
#[cfg(target_arch = "wasm32")]
mod gateway;
#[cfg(target_arch = "wasm32")]
mod handoff;
#[cfg(target_arch = "wasm32")]
mod log_event;
#[cfg(target_arch = "wasm32")]
mod subrequest;

/// The runtime's clock in epoch milliseconds, the time every event of the core takes. In
/// production it moves only across I/O, not while code runs. `Date.now()`, not a `Date`: a
/// connect reads the clock about 18 times, and each `Date` was two calls into JavaScript and
/// an object to collect.
#[cfg(target_arch = "wasm32")]
fn now_ms() -> i64 {
    js_sys::Date::now() as i64
}
