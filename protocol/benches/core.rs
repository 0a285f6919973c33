//! Per-packet cost of the pure core, natively: validate + apply + build the broadcast.
//!
//! - `cargo bench --bench core`: criterion timings.
//! - `bash bench/core-instructions.sh`: instructions per packet under valgrind, which do not move
//!   with the machine's load. It runs this binary with `CORE_BENCH_COUNT=N` and
//!   `CORE_BENCH_CASE=name`: one case, N times, and nothing else (`CORE_BENCH_CASE=list` prints
//!   the case names).
//!
//! Results in BENCHMARKS.md.

use airport_testkit::bench_cases::{Case, Fixture, cases};
use criterion::{Criterion, Throughput};
use std::hint::black_box;

fn criterion_benches(c: &mut Criterion) {
    let mut group = c.benchmark_group("on_frame");
    for case in cases() {
        let mut fixture = Fixture::of(&case);
        let Case { name, frame, .. } = case;
        group.throughput(Throughput::Bytes(frame.len() as u64));
        group.bench_function(name, |b| {
            b.iter(|| black_box(fixture.send(black_box(&frame), 1)))
        });
    }
    group.finish();
}

/// Runs one case `count` times after setting it up, so that a run with `count = 0` measures
/// the setup alone.
fn run_counted(count: usize, name: &str) {
    let cases = cases();
    if name == "list" {
        for case in &cases {
            println!("{}", case.name);
        }
        return;
    }
    let Some(case) = cases.iter().find(|case| case.name == name) else {
        panic!("no case named {name:?} (CORE_BENCH_CASE=list lists them)");
    };
    let mut fixture = Fixture::of(case);
    for _ in 0..count {
        black_box(fixture.send(black_box(&case.frame), 1));
    }
}

fn main() {
    if let Ok(count) = std::env::var("CORE_BENCH_COUNT") {
        let count = count.parse().expect("CORE_BENCH_COUNT is a number");
        let name = std::env::var("CORE_BENCH_CASE").unwrap_or_else(|_| "list".into());
        run_counted(count, &name);
        return;
    }
    let mut criterion = Criterion::default().configure_from_args();
    criterion_benches(&mut criterion);
    criterion.final_summary();
}
