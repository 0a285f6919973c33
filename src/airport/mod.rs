//! The airport's Durable Object (`object`), one per airport, and the adapters it delegates to:
//! `sockets` (the room's socket ids ↔ the runtime's WebSockets, sends and closes), `storage`
//! (SQLite rows and migrations) and `metrics` (the metrics window's writes). Only the runtime
//! calls in here, through the `AIRPORT` binding; the gateway reaches it by its stub.

mod metrics;
mod object;
mod sockets;
pub mod storage;
