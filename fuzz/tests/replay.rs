//! The committed seed corpora and regression inputs, replayed once natively (no libFuzzer), so
//! that `cargo test` runs both targets' checks on the production room after every change.

use airport_fuzz::input::Scenario;
use airport_fuzz::{decode, run, script};
use arbitrary::{Arbitrary, Unstructured};
use std::path::Path;

fn inputs(target: &str) -> Vec<(String, Vec<u8>)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut inputs = Vec::new();
    for dir in ["corpus", "regressions"] {
        let dir = root.join(dir).join(target);
        for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
            let path = entry.expect("a directory entry").path();
            let bytes = std::fs::read(&path).expect("a readable input");
            inputs.push((path.display().to_string(), bytes));
        }
    }
    assert!(!inputs.is_empty(), "no inputs for {target}");
    inputs
}

#[test]
fn decode_packet_inputs_pass_their_checks() {
    for (name, bytes) in inputs("decode_packet") {
        eprintln!("{name}");
        decode::check(&bytes);
    }
}

#[test]
fn state_machine_inputs_pass_their_checks() {
    let mut ran = 0;
    for (name, bytes) in inputs("state_machine") {
        eprintln!("{name}");
        let scenario = match script::parse(&bytes) {
            Some(scenario) => scenario,
            None => match Scenario::arbitrary_take_rest(Unstructured::new(&bytes)) {
                Ok(scenario) => scenario,
                Err(_) => continue,
            },
        };
        run::run(&scenario);
        ran += 1;
    }
    assert!(ran > 0);
}
