//! Who is connecting: the accounts behind API keys and their bans in D1 (`accounts`), and
//! under the `vatsim` role source their connections on the network (`standings`, asked through
//! `person_lookup`, a small Durable Object per person). The gateway and the airports call in
//! here; the two look-up helpers below are plain Rust, tested natively.

pub mod address_gate;
pub mod batch_lookup;
pub mod bounded_map;
pub mod key_memory;
pub mod lookup_cache;

#[cfg(target_arch = "wasm32")]
pub mod accounts;
#[cfg(target_arch = "wasm32")]
pub mod person_lookup;
#[cfg(target_arch = "wasm32")]
pub mod standings;
