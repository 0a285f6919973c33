//! Sequences of events on one airport: frames from any role (structured packets of every client
//! type mixed with raw strings and bytes), sockets joining and leaving, time passing and the
//! offline-clearing alarm. After every event: no panic, a rejected packet changed nothing, `seq`
//! moved by exactly one per accepted change (and only for a controller's packet), the limits
//! hold, the tracked shared-state size is its serialized length, and replaying the persisted
//! `StoreOp`s rebuilds exactly the airport in memory. See `airport_fuzz::run`.
//!
//! An input starting with `#script` is a hand-written line script (`airport_fuzz::script`);
//! anything else is decoded as an `airport_fuzz::input::Scenario` with `arbitrary`.

#![no_main]

use airport_fuzz::input::Scenario;
use airport_fuzz::{run, script};
use arbitrary::{Arbitrary, Unstructured};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let scenario = match script::parse(data) {
        Some(scenario) => scenario,
        None => match Scenario::arbitrary_take_rest(Unstructured::new(data)) {
            Ok(scenario) => scenario,
            Err(_) => return,
        },
    };
    let tally = run::run(&scenario);
    if std::env::var_os("AIRPORT_FUZZ_STATS").is_some() {
        eprintln!("{tally:?}");
    }
});
