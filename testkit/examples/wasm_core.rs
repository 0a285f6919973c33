//! The per-packet cases of `bench_cases` compiled to Wasm with the Worker's release profile, for
//! `bench/wasm-core.sh`: the core's cost as workerd runs it (V8's Wasm tiers), which the native
//! bench cannot show, e.g. of one `opt-level` against another. No imports: the runner times the
//! calls from JavaScript.

use airport_testkit::bench_cases::{Fixture, cases};
use std::hint::black_box;

/// How many cases there are.
#[unsafe(no_mangle)]
pub extern "C" fn case_count() -> u32 {
    cases().len() as u32
}

/// Sets case `case` up (its airport, once) and sends its frame `count` times.
#[unsafe(no_mangle)]
pub extern "C" fn run(case: u32, count: u32) {
    let cases = cases();
    let Some(case) = cases.get(case as usize) else {
        return;
    };
    let mut fixture = Fixture::of(case);
    for _ in 0..count {
        black_box(fixture.send(black_box(&case.frame), 1));
    }
}

/// Case `case`'s name, as a pointer into memory ([`case_name_len`] bytes of UTF-8).
#[unsafe(no_mangle)]
pub extern "C" fn case_name(case: u32) -> *const u8 {
    cases()
        .get(case as usize)
        .map_or(std::ptr::null(), |c| c.name.as_ptr())
}

#[unsafe(no_mangle)]
pub extern "C" fn case_name_len(case: u32) -> u32 {
    cases()
        .get(case as usize)
        .map_or(0, |c| c.name.len() as u32)
}
