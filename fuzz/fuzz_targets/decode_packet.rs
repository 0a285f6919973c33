//! Arbitrary bytes as one inbound frame, decoded and handled by a room from every role: see
//! `airport_fuzz::decode`.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| airport_fuzz::decode::check(data));
