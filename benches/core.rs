//! Per-packet cost of the pure core, natively: validate + apply + build the broadcast.
//! `cargo bench --bench core`; results in BENCHMARKS.md.

use airport_realtime::protocol::config::RateLimit;
use airport_realtime::protocol::machine::on_frame;
use airport_realtime::protocol::packet::Frame;
use airport_realtime::protocol::rate_limit::TokenBucket;
use airport_realtime::protocol::{Airport, Cid, Icao, Presence, Role, Session};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use serde_json::json;
use std::hint::black_box;

fn unlimited() -> RateLimit {
    RateLimit {
        burst: f64::MAX,
        per_second: f64::MAX,
        flood_drops: f64::MAX,
    }
}

/// Runs one frame through the state machine against an airport holding `objects` objects.
fn bench_frame(c: &mut Criterion, name: &str, objects: usize, frame: String) {
    let controller = Session {
        cid: Cid::parse("1000001").unwrap(),
        role: Role::Controller,
        callsign: None,
    };
    let mut airport = Airport::new(Icao::parse("EGLL").unwrap());
    let presence = Presence::default();
    let limit = unlimited();
    let mut bucket = TokenBucket::full(&limit, 0);
    // Seed the airport so that look-ups and inserts work on a realistic map.
    for chunk in 0..objects.div_ceil(200) {
        let updates: Vec<_> = (chunk * 200..((chunk + 1) * 200).min(objects))
            .map(|i| json!({"objectId": format!("OBJ_{i}"), "state": {"on": true}}))
            .collect();
        let seed = json!({"type": "MULTI_STATE_UPDATE", "data": {"updates": updates}}).to_string();
        on_frame(
            &mut airport,
            &presence,
            &controller,
            &mut bucket,
            &limit,
            Frame::Text(&seed),
            0,
        );
    }
    let mut group = c.benchmark_group("on_frame");
    group.throughput(Throughput::Bytes(frame.len() as u64));
    group.bench_function(name, |b| {
        b.iter(|| {
            let effects = on_frame(
                &mut airport,
                &presence,
                &controller,
                &mut bucket,
                &limit,
                Frame::Text(black_box(&frame)),
                1,
            );
            black_box(effects)
        })
    });
    group.finish();
}

fn core(c: &mut Criterion) {
    let state_update = json!({
        "type": "STATE_UPDATE",
        "data": {"objectId": "SB_27L_A1", "state": true},
        "requestId": "r-1"
    });
    bench_frame(c, "state_update", 1_000, state_update.to_string());

    let patch = json!({
        "type": "STATE_UPDATE",
        "data": {"objectId": "OBJ_7", "patch": {"on": false, "color": "red", "level": 3}}
    });
    bench_frame(c, "state_update_patch", 1_000, patch.to_string());

    let updates: Vec<_> = (0..200)
        .map(|i| json!({"objectId": format!("SB_{i}"), "state": {"on": i % 2 == 0, "level": i}}))
        .collect();
    let multi = json!({"type": "MULTI_STATE_UPDATE", "data": {"updates": updates}});
    bench_frame(c, "multi_state_update_200", 1_000, multi.to_string());

    // A patch of just under 10,240 serialized characters.
    let members: serde_json::Map<String, serde_json::Value> = (0..100)
        .map(|i| (format!("stand_{i:03}"), json!({"status": "x".repeat(70)})))
        .collect();
    let shared = json!({"type": "SHARED_STATE_UPDATE", "data": {"sharedStatePatch": members}});
    assert!(shared.to_string().len() > 9_000);
    bench_frame(c, "shared_state_update_10kb", 0, shared.to_string());

    // Rejected unparsed: 50,001 characters.
    let oversize = format!(
        "{{\"type\":\"HEARTBEAT\",\"pad\":\"{}\"}}",
        "x".repeat(49_972)
    );
    assert_eq!(oversize.chars().count(), 50_001);
    bench_frame(c, "rejected_50001_chars_too_large", 0, oversize);

    // Rejected after parsing: 50,000 characters of valid JSON with an unknown type.
    let unknown = format!("{{\"type\":\"NOPE\",\"pad\":\"{}\"}}", "x".repeat(49_976));
    assert_eq!(unknown.chars().count(), 50_000);
    bench_frame(c, "rejected_50000_chars_unknown_type", 0, unknown);
}

criterion_group!(benches, core);
criterion_main!(benches);
