//! Connect cost (section 3 of the report): upgrade request → INITIAL_STATE, to fresh, loaded and
//! hibernated airports, and herds of 1,000 sockets at once.

use super::reconnect::{is_resumed, replica_missing_changes};
use super::report::{cpu_cells, heading, latency_cells, list, ms, ratio, table};
use super::runs::{alternating, medians};
use super::{Target, fresh_airport, open_controller, populate, progress};
use crate::Args;
use crate::client::{
    OTHER_KEYS, close_all, distinct_key, open, open_from, open_resuming, person_address,
    spawn_reader,
};
use crate::meter::{CpuUse, CpuWindow, Percentiles, get_json, percentiles, settle};
use std::collections::HashMap;
use std::fmt::Write as _;
use std::rc::Rc;
use std::time::{Duration, Instant};

struct Sample {
    lat: Vec<u32>,
    bytes: usize,
    constructions: Option<i64>,
}

/// One connect, resuming from `resume` if given (an error if it is not resumed).
async fn connect_once(
    t: &Target,
    airport: &str,
    resume: Option<&str>,
    lat: &mut Vec<u32>,
) -> Result<usize, String> {
    let (key, limit) = (OTHER_KEYS[2], Duration::from_secs(30));
    let o = match resume {
        Some(resume) => open_resuming(&t.url, airport, key, resume, limit).await?,
        None => open(&t.url, airport, key, limit).await?,
    };
    if resume.is_some() && !is_resumed(&o) {
        return Err(format!("not resumed: …{}", o.initial_tail));
    }
    lat.push(o.initial.as_micros() as u32);
    let bytes = o.initial_len;
    close_all(vec![o.sink], vec![]).await;
    tokio::time::sleep(Duration::from_millis(30)).await;
    Ok(bytes)
}

/// Constructions of Durable Objects so far, from the log lines serve.mjs counts: the service
/// logs `airport_loaded` and the floor `floor_constructed` once per construction.
pub(super) async fn loaded_count(t: &Target, stats: Option<&str>) -> Option<i64> {
    let v = get_json(stats?).await.ok()?;
    let key = if t.stateful.get() {
        "airport_loaded"
    } else {
        "floor_constructed"
    };
    Some(v["counts"][key].as_i64().unwrap_or(0))
}

/// `m` connects, each to a never-used airport (the object is created).
async fn connect_fresh(t: &Target, m: usize, stats: Option<&str>) -> Result<Sample, String> {
    settle(t.pid).await;
    let before = loaded_count(t, stats).await;
    let mut lat = Vec::new();
    let mut bytes = 0;
    for _ in 0..m {
        bytes = connect_once(t, &fresh_airport(), None, &mut lat).await?;
    }
    let after = loaded_count(t, stats).await;
    Ok(Sample {
        lat,
        bytes,
        constructions: after.zip(before).map(|(a, b)| a - b),
    })
}

/// How an airport's objects stand when connected to.
#[derive(Clone, Copy, PartialEq)]
enum Loaded {
    /// `m` connects in a row to one airport whose object is in memory.
    InMemory,
    /// One connect per airport after 15 s of silence, by when workerd has hibernated the object.
    Hibernated,
    /// The same, each connect resuming from a replica taken before `MISSED` changes (on the
    /// service; the floor keeps no state and connects as to a hibernated airport).
    HibernatedResumed,
}

/// `m` connects to airports with a controller connected (and, on the service with `populated`,
/// 10,000 objects), as `loaded` says.
async fn connect_loaded(
    t: &Target,
    m: usize,
    loaded: Loaded,
    populated: bool,
    stats: Option<&str>,
) -> Result<Sample, String> {
    let cold = loaded != Loaded::InMemory;
    let airports: Vec<String> = (0..if cold { m } else { 1 })
        .map(|_| fresh_airport())
        .collect();
    let mut controllers = Vec::new();
    let mut replicas = Vec::new();
    for a in &airports {
        let mut c = open_controller(t, a).await?;
        if populated && t.stateful.get() {
            populate(&mut c).await?;
        }
        if loaded == Loaded::HibernatedResumed && t.stateful.get() {
            replicas.push(replica_missing_changes(t, a, &mut c).await?);
        }
        controllers.push(c);
    }
    let mut lat = Vec::new();
    let mut bytes = 0;
    if cold {
        progress("  waiting 15 s for the objects to hibernate");
        tokio::time::sleep(Duration::from_secs(15)).await;
    } else {
        settle(t.pid).await;
    }
    let before = loaded_count(t, stats).await;
    for i in 0..m {
        let a = &airports[if cold { i } else { 0 }];
        bytes = connect_once(t, a, replicas.get(i).map(String::as_str), &mut lat).await?;
    }
    let after = loaded_count(t, stats).await;
    let (sinks, readers) = controllers
        .into_iter()
        .map(|c| (c.sink, spawn_reader(c.stream, Rc::default())))
        .unzip();
    close_all(sinks, readers).await;
    settle(t.pid).await;
    Ok(Sample {
        lat,
        bytes,
        constructions: after.zip(before).map(|(a, b)| a - b),
    })
}

struct Herd {
    total_ms: f64,
    p: Percentiles,
    failures: usize,
    first_error: Option<String>,
    cpu: CpuUse,
}

/// Whose keys a herd connects with.
#[derive(Clone, Copy)]
enum Keys {
    /// The three demo pilots' and observer's: most connects reuse a looked-up account.
    Demo,
    /// One key per socket, the same 1,000 in every herd: every connect looks its account up
    /// (each herd is at a new airport); from the second herd on, the Worker remembers the keys
    /// as accepted and lets them through without waiting for their addresses' turns.
    Distinct,
    /// One key per socket, 1,000 the Worker has not seen in every herd (the `n`th herd of a
    /// target uses the `n % 5`th set of serve.mjs's 5,000 further keys): every connect waits
    /// for its address's turn (a stranger's, `ADDRESS_LIMIT`) and looks its account up.
    Strangers(usize),
}

/// Herds of [`Keys::Strangers`] before their keys come round again.
const STRANGER_SETS: usize = 5;

impl Keys {
    fn key(self, i: usize) -> String {
        match self {
            Keys::Demo => OTHER_KEYS[i % 3].to_string(),
            Keys::Distinct => distinct_key(i),
            Keys::Strangers(herd) => distinct_key(1000 * (1 + herd % STRANGER_SETS) + i),
        }
    }

    fn name(self) -> &'static str {
        match self {
            Keys::Demo => "3 people (demo keys)",
            Keys::Distinct => "1,000 distinct people",
            Keys::Strangers(_) => "1,000 distinct people new to the Worker",
        }
    }
}

/// `n` sockets connect to one fresh airport all at once.
async fn herd(t: &Target, n: usize, keys: Keys) -> Result<Herd, String> {
    settle(t.pid).await;
    let airport = fresh_airport();
    // Each socket from its own address, a person's the same in every herd.
    let people: Vec<(String, String)> = (0..n).map(|i| (keys.key(i), person_address(i))).collect();
    let cpu = CpuWindow::start(t.pid);
    let t0 = Instant::now();
    let attempts = people
        .iter()
        .map(|(key, address)| open_from(&t.url, &airport, key, address, Duration::from_secs(60)));
    let results = futures_util::future::join_all(attempts).await;
    let total_ms = t0.elapsed().as_secs_f64() * 1000.0;
    let cpu = cpu.stop();
    let mut lat = Vec::new();
    let mut sinks = Vec::new();
    let mut failures = 0;
    let mut first_error = None;
    for r in results {
        match r {
            Ok(o) => {
                lat.push(o.initial.as_micros() as u32);
                sinks.push(o.sink);
            }
            Err(e) => {
                failures += 1;
                first_error.get_or_insert(e);
            }
        }
    }
    close_all(sinks, vec![]).await;
    settle(t.pid).await;
    Ok(Herd {
        total_ms,
        p: percentiles(&mut lat),
        failures,
        first_error,
        cpu,
    })
}

/// `herd_only`: only the 1,000 sockets at once.
pub(super) async fn section(args: &Args, herd_only: bool) -> Result<(), String> {
    let m = if args.quick { 5 } else { 20 };
    let cold_m = args.cold.unwrap_or(if args.quick { 2 } else { 5 });
    let herd_n = 1000;
    let stats = args.stats.as_deref();
    let mut cases: Vec<(&str, Vec<Sample>)> = vec![
        ("fresh airport (object created)", vec![]),
        ("10,000 objects, object in memory", vec![]),
        ("10,000 objects, object hibernated", vec![]),
        ("no objects, object hibernated", vec![]),
        ("10,000 objects, object hibernated, resumed", vec![]),
    ];
    for t in args.targets.iter().filter(|_| !herd_only) {
        let st = stats;
        progress(&format!("connect: {m} fresh airports on {}", t.name));
        cases[0].1.push(connect_fresh(t, m, st).await?);
        progress(&format!(
            "connect: {m} to a loaded airport in memory on {}",
            t.name
        ));
        cases[1]
            .1
            .push(connect_loaded(t, m, Loaded::InMemory, true, st).await?);
        progress(&format!(
            "connect: {cold_m} to hibernated loaded airports on {}",
            t.name
        ));
        cases[2]
            .1
            .push(connect_loaded(t, cold_m, Loaded::Hibernated, true, st).await?);
        progress(&format!(
            "connect: {cold_m} to hibernated airports without objects on {}",
            t.name
        ));
        cases[3]
            .1
            .push(connect_loaded(t, cold_m, Loaded::Hibernated, false, st).await?);
        progress(&format!(
            "connect: {cold_m} resuming at hibernated loaded airports on {}",
            t.name
        ));
        let resumed = Loaded::HibernatedResumed;
        cases[4]
            .1
            .push(connect_loaded(t, cold_m, resumed, true, st).await?);
    }
    // Each target's row is its median herd.
    let herd_repeats = if args.quick { 1 } else { args.repeats };
    let mut herd_runs = Vec::new();
    for keys in [Keys::Demo, Keys::Distinct, Keys::Strangers(0)] {
        // Each target's herds of strangers so far: each herd takes the next set of keys.
        let mut herds_so_far: HashMap<String, usize> = HashMap::new();
        let all = alternating(&args.targets, herd_repeats, async |t| {
            progress(&format!(
                "connect: {herd_n} sockets at once on {}, {}",
                t.name,
                keys.name()
            ));
            let so_far = herds_so_far.entry(t.name.clone()).or_default();
            let keys = match keys {
                Keys::Strangers(_) => Keys::Strangers(*so_far),
                other => other,
            };
            *so_far += 1;
            let h = herd(t, herd_n, keys).await?;
            progress(&format!(
                "  all in {} ms, {} failed",
                ms(h.total_ms),
                h.failures
            ));
            Ok(h)
        })
        .await?;
        herd_runs.push((keys, all));
    }
    let mut out = heading(format_args!(
        "3. Connect cost (upgrade request → INITIAL_STATE)"
    ));
    if !herd_only {
        let _ = writeln!(
            out,
            "The floor keeps no state, so its \"10,000 objects\" rows are an airport with one socket connected.\n"
        );
        table(
            &mut out,
            &[
                "case",
                "target",
                "connects",
                "p50 ms",
                "p99 ms",
                "max ms",
                "INITIAL bytes",
                "objects constructed",
            ],
        );
    }
    let mut pcts: Vec<Vec<Percentiles>> = Vec::new();
    for (case, samples) in cases.iter_mut().filter(|_| !herd_only) {
        let mut row = Vec::new();
        for (t, s) in args.targets.iter().zip(samples.iter_mut()) {
            let p = percentiles(&mut s.lat);
            let _ = writeln!(
                out,
                "| {case} | {} | {} | {} | {} | {} |",
                t.name,
                p.n,
                latency_cells(&p),
                s.bytes,
                s.constructions.map_or("–".into(), |c| c.to_string())
            );
            row.push(p);
        }
        pcts.push(row);
    }
    let _ = writeln!(
        out,
        "\n{herd_n} sockets connecting at once to one fresh airport (median of {herd_repeats} herds per target, alternating; the first of each is the first after start-up):\n"
    );
    table(
        &mut out,
        &[
            "keys",
            "target",
            "all connected after ms (median)",
            "every herd, ms",
            "per socket p50 ms",
            "p99 ms",
            "max ms",
            "failed",
            "generator CPU",
            "server CPU",
        ],
    );
    let herd_medians: Vec<_> = herd_runs
        .iter()
        .map(|(keys, all)| (*keys, medians(all, |h: &Herd| h.total_ms)))
        .collect();
    for (keys, (totals, herds)) in &herd_medians {
        for ((t, h), every) in args.targets.iter().zip(herds).zip(totals) {
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} | {}{} | {} |",
                keys.name(),
                t.name,
                ms(h.total_ms),
                list(every),
                latency_cells(&h.p),
                h.failures,
                h.first_error
                    .as_ref()
                    .map_or(String::new(), |e| format!(" ({e})")),
                cpu_cells(&h.cpu)
            );
        }
    }
    if args.targets.len() >= 2 {
        let (a, b) = (&args.targets[0].name, &args.targets[1].name);
        let _ = writeln!(out, "\nRatios {a} / {b}:\n");
        table(&mut out, &["case", "p50", "p99", "max"]);
        for ((case, _), row) in cases.iter().filter(|_| !herd_only).zip(&pcts) {
            let _ = writeln!(
                out,
                "| {case} | {} | {} | {} |",
                ratio(row[0].p50, row[1].p50),
                ratio(row[0].p99, row[1].p99),
                ratio(row[0].max, row[1].max)
            );
        }
        for (keys, (_, herds)) in &herd_medians {
            let r = herds[0].total_ms / herds[1].total_ms;
            let _ = writeln!(
                out,
                "| {herd_n} at once, {}: time until all connected | **{:.2}×** (target ≤ 1.5×){} | | |",
                keys.name(),
                r,
                if r <= 1.5 { " ✓" } else { " ✗" }
            );
        }
    }
    println!("{out}");
    Ok(())
}
