//! The airport's Durable Object (`object`), one per airport, and the adapters it delegates to:
//! `sockets` (the room's socket ids ↔ the runtime's WebSockets, sends and closes), `storage`
//! (SQLite rows and migrations), `metrics` (the metrics window's writes), `awake` (how long
//! the object is awake, for those windows) and `points` (the
//! grouping of equivalent points, read from the running service's database). Only the runtime
//! calls in here, through the `AIRPORT` binding; the gateway reaches it by its stub.

pub mod awake;
mod metrics;
mod object;
mod points;
mod sockets;
pub mod storage;
