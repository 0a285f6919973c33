//! Forged keys: the fan-out at an airport of 100 (1 controller, STATE_UPDATE at 20/s) while
//! connects with made-up keys arrive at that airport, 500 a second, from a handful of addresses
//! (`CF-Connecting-IP`). The service counts a key it has not seen accepted against its address
//! (`ADDRESS_LIMIT`, served by serve.mjs at wrangler.toml's 30 a minute); past the limit the
//! Worker answers 429 and asks no airport. Airports check keys, so a 401 for a key never seen
//! before is an airport's answer: the 401s count the requests the forgeries caused in airport
//! objects. The floor checks no keys: each forged connect is a socket there (closed at once).

use super::fanout::{Fanout, fanout_during};
use super::report::{cpu_cells, heading, latency_cells, list, ms, ratio, table};
use super::runs::medians;
use super::{Target, progress};
use crate::Args;
use crate::client::knock;
use crate::meter::get_json;
use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::rc::Rc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const RECEIVERS: usize = 100;
const FORGED_PER_SECOND: f64 = 500.0;
/// The addresses the forgeries come from, in turn.
const ADDRESSES: usize = 5;
/// Forged connects awaiting their answer at most; past it one is skipped (and counted).
const IN_FLIGHT: usize = 400;

thread_local! {
    /// Forged loads so far: each takes new addresses, so each starts with the limiter's whole
    /// allowance, as a new attacker would.
    static LOADS: Cell<usize> = const { Cell::new(0) };
}

#[derive(Default)]
struct Knocks {
    by_status: BTreeMap<u16, u64>,
    failed: u64,
    skipped: u64,
    first_error: Option<String>,
}

impl Knocks {
    fn sent(&self) -> u64 {
        self.by_status.values().sum::<u64>() + self.failed
    }

    fn status(&self, code: u16) -> u64 {
        self.by_status.get(&code).copied().unwrap_or(0)
    }

    /// Answers other than 101, 401 and 429, as `status×count`.
    fn others(&self) -> String {
        let rest: Vec<String> = self
            .by_status
            .iter()
            .filter(|(code, _)| ![101, 401, 429].contains(*code))
            .map(|(code, n)| format!("{code}×{n}"))
            .collect();
        if rest.is_empty() && self.failed == 0 {
            "0".into()
        } else {
            let failed = self
                .first_error
                .as_ref()
                .map_or(String::new(), |e| format!(" failed×{} ({e})", self.failed));
            format!("{}{failed}", rest.join(" "))
        }
    }
}

/// A key nobody has: `BARS_` and 64 hex digits, unique to this load and connect.
fn forged_key(load: usize, i: usize) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!("BARS_{nanos:032x}{:016x}{i:016x}", load)
}

/// Forged connects to `airport` at [`FORGED_PER_SECOND`] from `start` until `end`, and their
/// answers.
async fn forge(
    base: &str,
    airport: &str,
    start: tokio::time::Instant,
    end: tokio::time::Instant,
) -> Knocks {
    let load = LOADS.with(|c| {
        let n = c.get();
        c.set(n + 1);
        n
    });
    let knocks: Rc<RefCell<Knocks>> = Rc::default();
    let in_flight = Rc::new(Cell::new(0usize));
    let period = Duration::from_secs_f64(1.0 / FORGED_PER_SECOND);
    let mut handles = Vec::new();
    let mut next = start;
    let mut i = 0usize;
    // Bounded: one attempt per period between start and end.
    while next < end {
        tokio::time::sleep_until(next).await;
        next += period;
        if in_flight.get() >= IN_FLIGHT {
            knocks.borrow_mut().skipped += 1;
            continue;
        }
        let address = format!("198.51.{}.{}", load % 250, 1 + i % ADDRESSES);
        let key = forged_key(load, i);
        i += 1;
        let (base, airport) = (base.to_owned(), airport.to_owned());
        let (knocks, in_flight) = (knocks.clone(), in_flight.clone());
        handles.push(tokio::task::spawn_local(async move {
            in_flight.set(in_flight.get() + 1);
            let answer = knock(&base, &airport, &key, &address, Duration::from_secs(10)).await;
            in_flight.set(in_flight.get() - 1);
            let mut k = knocks.borrow_mut();
            match answer {
                Ok(status) => *k.by_status.entry(status).or_default() += 1,
                Err(e) => {
                    k.failed += 1;
                    k.first_error.get_or_insert(e);
                }
            }
        }));
    }
    for handle in handles {
        let _ = handle.await;
    }
    std::mem::take(&mut *knocks.borrow_mut())
}

struct Run {
    fanout: Fanout,
    /// None: no forged load.
    knocks: Option<Knocks>,
    /// Key checks batched into one D1 query in airports during the run (the service's
    /// `keys_checked_together` log events), when the stats endpoint is given.
    key_batches: Option<i64>,
}

async fn key_batches(stats: Option<&str>) -> Option<i64> {
    let v = get_json(stats?).await.ok()?;
    Some(v["counts"]["keys_checked_together"].as_i64().unwrap_or(0))
}

async fn run(t: &Target, secs: f64, forged: bool, stats: Option<&str>) -> Result<Run, String> {
    let stats = stats.filter(|_| t.stateful.get());
    let before = key_batches(stats).await;
    let (fanout, knocks) = fanout_during(t, RECEIVERS, secs, async |airport, start, end| {
        if forged {
            Some(forge(&t.url, airport, start, end).await)
        } else {
            None
        }
    })
    .await?;
    let after = key_batches(stats).await;
    Ok(Run {
        fanout,
        knocks,
        key_batches: after.zip(before).map(|(a, b)| a - b),
    })
}

pub(super) async fn section(args: &Args) -> Result<(), String> {
    let secs = if args.quick { 3.0 } else { 10.0 };
    let repeats = if args.quick { 1 } else { args.repeats };
    // Per target, the quiet runs and the forged ones, alternating.
    let mut all: Vec<[Vec<Run>; 2]> = args.targets.iter().map(|_| [vec![], vec![]]).collect();
    for _ in 0..repeats {
        for (t, runs) in args.targets.iter().zip(all.iter_mut()) {
            for (forged, into) in [false, true].into_iter().zip(runs.iter_mut()) {
                progress(&format!(
                    "forged: fan-out to {RECEIVERS} on {} for {secs} s, {}",
                    t.name,
                    if forged {
                        "with forged connects"
                    } else {
                        "quiet"
                    }
                ));
                let r = run(t, secs, forged, args.stats.as_deref()).await?;
                progress(&format!(
                    "  p99 {} ms, {}/{} received{}",
                    ms(r.fanout.p.p99),
                    r.fanout.received,
                    r.fanout.expected,
                    r.knocks.as_ref().map_or(String::new(), |k| format!(
                        ", forged {}: 401×{} 429×{} 101×{} other {}",
                        k.sent(),
                        k.status(401),
                        k.status(429),
                        k.status(101),
                        k.others()
                    ))
                ));
                into.push(r);
            }
        }
    }
    let mut out = heading(format_args!(
        "Forged keys: fan-out to {RECEIVERS} (STATE_UPDATE at 20/s for {secs} s) while made-up keys connect to the same airport at {FORGED_PER_SECOND:.0}/s from {ADDRESSES} addresses"
    ));
    let _ = writeln!(
        out,
        "Median of {repeats} runs per row by p99 (quiet and forged alternating). A 401 is an airport's answer (airports check keys), a 429 the Worker's address limit; the floor checks no keys (101: a socket, closed at once).\n"
    );
    table(
        &mut out,
        &[
            "target",
            "forged connects",
            "received / expected",
            "p50 ms",
            "p99 ms",
            "max ms",
            "every p99, ms",
            "forged sent (skipped)",
            "401 (asked an airport)",
            "429 (the Worker)",
            "101",
            "other",
            "key batches in airports",
            "generator CPU",
            "server CPU",
        ],
    );
    let mut p99s = Vec::new();
    for (t, runs) in args.targets.iter().zip(&all) {
        let mut row = Vec::new();
        for (forged, runs) in ["none", "500/s"].into_iter().zip(runs) {
            let (every, median) = medians(std::slice::from_ref(runs), |r: &Run| r.fanout.p.p99);
            let r = median[0];
            let f = &r.fanout;
            let knocks = r
                .knocks
                .as_ref()
                .map_or("– | – | – | – | –".to_string(), |k| {
                    format!(
                        "{} ({}) | {} | {} | {} | {}",
                        k.sent(),
                        k.skipped,
                        k.status(401),
                        k.status(429),
                        k.status(101),
                        k.others()
                    )
                });
            let _ = writeln!(
                out,
                "| {} | {forged} | {} / {} | {} | {} | {knocks} | {} | {} |",
                t.name,
                f.received,
                f.expected,
                latency_cells(&f.p),
                list(&every[0]),
                r.key_batches.map_or("–".into(), |b| b.to_string()),
                cpu_cells(&f.cpu)
            );
            row.push(f.p.p99);
        }
        p99s.push(row);
    }
    if args.targets.len() >= 2 {
        let (a, b) = (&args.targets[0].name, &args.targets[1].name);
        let _ = writeln!(out, "\nRatios of the median p99s:\n");
        table(&mut out, &["", "p99"]);
        let _ = writeln!(
            out,
            "| {a} with forged connects / {a} quiet | {} |\n| {a} with forged connects / {b} quiet | {} |\n| {a} quiet / {b} quiet | {} |",
            ratio(p99s[0][1], p99s[0][0]),
            ratio(p99s[0][1], p99s[1][0]),
            ratio(p99s[0][0], p99s[1][0])
        );
    }
    println!("{out}");
    Ok(())
}
