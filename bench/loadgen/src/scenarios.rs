//! The scenarios of BENCHMARKS.md: fan-out latency, airport throughput, connect cost, idle cost,
//! profile-change burst, public /state.

use crate::Args;
use crate::client::{
    CONTROLLER_KEYS, Kind, OTHER_KEYS, Opened, Rec, Shared, Sink, check_loopback, close_all,
    distinct_key, heartbeat_ack, is_heartbeat, open, open_many, spawn_answerer, spawn_reader,
    spawn_sender,
};
use crate::meter::{CpuUse, CpuWindow, Percentiles, get, get_json, percentiles, settle};
use futures_util::{SinkExt, StreamExt};
use std::cell::Cell;
use std::fmt::Write as _;
use std::rc::Rc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message;

pub struct Target {
    pub name: String,
    pub url: String,
    pub pid: Option<u32>,
    /// The real service (its INITIAL_STATE has objects); the floor and the native server keep
    /// no state.
    pub stateful: Cell<bool>,
}

impl Target {
    /// `NAME=ws://127.0.0.1:PORT[@PID]`
    pub fn parse(spec: &str) -> Result<Target, String> {
        let (name, rest) = spec
            .split_once('=')
            .ok_or_else(|| format!("target {spec}: expected NAME=URL[@PID]"))?;
        let (url, pid) = match rest.rsplit_once('@') {
            Some((url, pid)) => (
                url,
                Some(pid.parse().map_err(|_| format!("bad pid {pid}"))?),
            ),
            None => (rest, None),
        };
        let url = url.trim_end_matches('/').to_owned();
        check_loopback(&url)?;
        Ok(Target {
            name: name.to_owned(),
            url,
            pid,
            stateful: Cell::new(false),
        })
    }
}

thread_local! {
    static AIRPORTS: Cell<u32> = const { Cell::new(0) };
}

/// A never-used airport: a letter picked by the clock (so reruns against the same server differ)
/// and a base-36 counter.
fn fresh_airport() -> String {
    const DIGITS: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ";
    let n = AIRPORTS.with(|c| {
        let n = c.get();
        c.set(n + 1);
        n
    });
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let mut code = String::new();
    code.push((b'A' + ((secs / 60) % 26) as u8) as char);
    let mut rest = n % (36 * 36 * 36);
    let mut tail = [b'0'; 3];
    for slot in tail.iter_mut().rev() {
        *slot = DIGITS[(rest % 36) as usize];
        rest /= 36;
    }
    code.push_str(std::str::from_utf8(&tail).unwrap_or("000"));
    code
}

fn ms(x: f64) -> String {
    if x.is_nan() {
        "–".into()
    } else if x < 10.0 {
        format!("{x:.2}")
    } else {
        format!("{x:.1}")
    }
}

fn ratio(a: f64, b: f64) -> String {
    if a.is_nan() || b.is_nan() || b == 0.0 {
        "–".into()
    } else {
        format!("{:.2}×", a / b)
    }
}

fn pct(x: Option<f64>) -> String {
    x.map_or("–".into(), |x| format!("{x:.0}%"))
}

/// Waits until `expected(rec)` receipts have arrived, or nothing arrived for 2 s (at most 15 s).
async fn drain(rec: &Shared, expected: impl Fn(&Rec) -> u64) {
    let begin = Instant::now();
    loop {
        tokio::time::sleep(Duration::from_millis(20)).await;
        let r = rec.borrow();
        if r.received >= expected(&r) {
            return;
        }
        let quiet = r.last_receipt.map_or(begin.elapsed(), |t| t.elapsed());
        if quiet > Duration::from_secs(2) || begin.elapsed() > Duration::from_secs(15) {
            return;
        }
    }
}

fn progress(line: &str) {
    eprintln!("[loadgen] {line}");
}

pub async fn bench(args: &Args) -> Result<(), String> {
    for t in &args.targets {
        let probe = open(
            &t.url,
            &fresh_airport(),
            OTHER_KEYS[2],
            Duration::from_secs(30),
        )
        .await
        .map_err(|e| format!("{}: {e}", t.name))?;
        t.stateful.set(probe.initial_len > 40);
        close_all(vec![probe.sink], vec![]).await;
    }
    let wants = |s: &str| args.only.is_empty() || args.only.iter().any(|o| o == s);
    let mut out = String::new();
    let _ = writeln!(
        out,
        "Targets: {}",
        args.targets
            .iter()
            .map(|t| format!("{} ({})", t.name, t.url))
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!("{out}");
    if wants("fanout") {
        fanout_section(args).await?;
    }
    if wants("throughput") || wants("throughput-single") {
        throughput_section(args, Kind::Single).await?;
    }
    if wants("throughput") || wants("throughput-multi") {
        throughput_section(args, Kind::Multi).await?;
    }
    if wants("connect") {
        connect_section(args, false).await?;
    } else if wants("herd") {
        connect_section(args, true).await?;
    }
    if wants("burst") {
        burst_section(args).await?;
    }
    if wants("state") {
        state_section(args).await?;
    }
    if wants("poll") {
        poll_section(args).await?;
    }
    Ok(())
}

// ---------------------------------------------------------------- 1. fan-out latency

struct Fanout {
    sent: u64,
    expected: u64,
    received: u64,
    rate: f64,
    p: Percentiles,
    cpu: CpuUse,
}

async fn fanout(t: &Target, n: usize, secs: f64) -> Result<Fanout, String> {
    let airport = fresh_airport();
    let rec: Shared = Rc::default();
    let opened = open_many(&t.url, &airport, n, 50, |i| OTHER_KEYS[i % 3]).await?;
    let (mut sinks, mut readers) = (Vec::new(), Vec::new());
    for o in opened {
        readers.push(spawn_reader(o.stream, rec.clone()));
        sinks.push(o.sink);
    }
    let controller = open(
        &t.url,
        &airport,
        CONTROLLER_KEYS[0],
        Duration::from_secs(30),
    )
    .await?;
    readers.push(spawn_reader(controller.stream, rec.clone()));
    tokio::time::sleep(Duration::from_millis(300)).await;
    settle(t.pid).await;
    let step = 1;
    rec.borrow_mut().begin(step);
    let cpu = CpuWindow::start(t.pid);
    let start = tokio::time::Instant::now() + Duration::from_millis(10);
    let end = start + Duration::from_secs_f64(secs);
    let (sink, sent) = spawn_sender(
        controller.sink,
        Kind::Single,
        step,
        Duration::from_millis(50),
        start,
        end,
    )
    .await
    .map_err(|e| e.to_string())?;
    sinks.push(sink);
    let expected = sent * n as u64;
    drain(&rec, |_| expected).await;
    let cpu = cpu.stop();
    let (mut lat, received, last) = {
        let mut r = rec.borrow_mut();
        (std::mem::take(&mut r.lat_us), r.received, r.last_receipt)
    };
    let window = last
        .map(|l| l.duration_since(start.into_std()).as_secs_f64())
        .unwrap_or(secs)
        .max(1e-3);
    close_all(sinks, readers).await;
    settle(t.pid).await;
    Ok(Fanout {
        sent,
        expected,
        received,
        rate: received as f64 / window,
        p: percentiles(&mut lat),
        cpu,
    })
}

async fn fanout_section(args: &Args) -> Result<(), String> {
    let secs = if args.quick { 3.0 } else { args.fanout_seconds };
    let mut rows: Vec<(usize, Vec<Fanout>)> = Vec::new();
    for &n in &args.fanout_n {
        let mut per = Vec::new();
        for t in &args.targets {
            progress(&format!("fan-out N={n} on {} for {secs} s", t.name));
            let f = fanout(t, n, secs).await?;
            progress(&format!(
                "  p50 {} p99 {} max {} ms, {}/{} received",
                ms(f.p.p50),
                ms(f.p.p99),
                ms(f.p.max),
                f.received,
                f.expected
            ));
            per.push(f);
        }
        rows.push((n, per));
    }
    let mut out = String::new();
    let _ = writeln!(
        out,
        "\n### 1. Fan-out latency (1 controller → N others, STATE_UPDATE at 20/s for {secs} s)\n"
    );
    let _ = writeln!(
        out,
        "| N | target | sent | received / expected | receive rate (/s) | p50 ms | p99 ms | max ms | generator CPU | server CPU |"
    );
    let _ = writeln!(out, "|---|---|---|---|---|---|---|---|---|---|");
    for (n, per) in &rows {
        for (t, f) in args.targets.iter().zip(per) {
            let _ = writeln!(
                out,
                "| {n} | {} | {} | {} / {} | {:.0} | {} | {} | {} | {} | {} |",
                t.name,
                f.sent,
                f.received,
                f.expected,
                f.rate,
                ms(f.p.p50),
                ms(f.p.p99),
                ms(f.p.max),
                pct(Some(f.cpu.generator)),
                pct(f.cpu.server)
            );
        }
    }
    if args.targets.len() >= 2 {
        let (a, b) = (&args.targets[0].name, &args.targets[1].name);
        let _ = writeln!(
            out,
            "\nRatios {a} / {b} (target: p99 at N = 500 within 1.25×)\n"
        );
        let _ = writeln!(out, "| N | p50 | p99 | max | receive rate |");
        let _ = writeln!(out, "|---|---|---|---|---|");
        for (n, per) in &rows {
            let (x, y) = (&per[0], &per[1]);
            let _ = writeln!(
                out,
                "| {n} | {} | {}{} | {} | {} |",
                ratio(x.p.p50, y.p.p50),
                ratio(x.p.p99, y.p.p99),
                if *n == 500 {
                    if x.p.p99 / y.p.p99 <= 1.25 {
                        " ✓"
                    } else {
                        " ✗"
                    }
                } else {
                    ""
                },
                ratio(x.p.max, y.p.max),
                ratio(x.rate, y.rate)
            );
        }
    }
    println!("{out}");
    Ok(())
}

// ---------------------------------------------------------------- 2. airport throughput

const TP_SOCKETS: usize = 100;
/// Per-socket rate the senders stay under: the service's bucket refills at 25/s.
const PER_SOCKET: f64 = 20.0;

struct Step {
    rate: f64,
    senders: usize,
    sent: u64,
    accepted: u64,
    received: u64,
    expected: u64,
    accepted_rate: f64,
    p: Percentiles,
    cpu: CpuUse,
    pass: bool,
    why: String,
}

async fn tp_step(t: &Target, kind: Kind, rate: f64, secs: f64, step: u64) -> Result<Step, String> {
    let airport = fresh_airport();
    let rec: Shared = Rc::default();
    let opened = open_many(&t.url, &airport, TP_SOCKETS, 25, |i| CONTROLLER_KEYS[i % 2]).await?;
    let (mut sinks, mut readers) = (Vec::new(), Vec::new());
    for o in opened {
        readers.push(spawn_reader(o.stream, rec.clone()));
        sinks.push(o.sink);
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    settle(t.pid).await;
    let senders = ((rate / PER_SOCKET).ceil() as usize).clamp(1, TP_SOCKETS);
    let period = Duration::from_secs_f64(senders as f64 / rate);
    rec.borrow_mut().begin(step);
    let cpu = CpuWindow::start(t.pid);
    let start = tokio::time::Instant::now() + Duration::from_millis(20);
    let end = start + Duration::from_secs_f64(secs);
    let sending: Vec<JoinHandle<_>> = sinks
        .drain(..senders)
        .enumerate()
        .map(|(j, sink)| {
            let offset = period.mul_f64(j as f64 / senders as f64);
            spawn_sender(sink, kind, step, period, start + offset, end)
        })
        .collect();
    let mut sent = 0;
    for s in sending {
        let (sink, n) = s.await.map_err(|e| e.to_string())?;
        sent += n;
        sinks.push(sink);
    }
    let others = (TP_SOCKETS - 1) as u64;
    drain(&rec, |r| sent.saturating_sub(r.errors) * others).await;
    let cpu = cpu.stop();
    let (mut lat, received, errors) = {
        let mut r = rec.borrow_mut();
        (std::mem::take(&mut r.lat_us), r.received, r.errors)
    };
    close_all(sinks, readers).await;
    let accepted = sent.saturating_sub(errors);
    let expected = accepted * others;
    let p = percentiles(&mut lat);
    let planned = rate * secs;
    let mut why = Vec::new();
    if (sent as f64) < 0.97 * planned {
        why.push(format!("generator sent only {sent} of {planned:.0}"));
    }
    if (accepted as f64) < 0.98 * sent as f64 {
        why.push(format!("{errors} rejected"));
    }
    if (received as f64) < 0.99 * expected as f64 {
        why.push(format!("{received}/{expected} delivered"));
    }
    // NaN (nothing delivered) fails too.
    if p.p99.is_nan() || p.p99 > 100.0 {
        why.push(format!("p99 {} ms", ms(p.p99)));
    }
    settle(t.pid).await;
    Ok(Step {
        rate,
        senders,
        sent,
        accepted,
        received,
        expected,
        accepted_rate: accepted as f64 / secs,
        p,
        cpu,
        pass: why.is_empty(),
        why: why.join(", "),
    })
}

struct Search {
    steps: Vec<Step>,
    best: Option<usize>,
    ceiling_reached: bool,
}

async fn throughput(
    t: &Target,
    kind: Kind,
    args: &Args,
    step_ids: &Cell<u64>,
) -> Result<Search, String> {
    let secs = if args.quick { 2.0 } else { args.step_seconds };
    let bisections = if args.quick { 1 } else { 3 };
    let (first, max, grain) = match kind {
        Kind::Single => (25.0, args.tp_max_single, 5.0),
        Kind::Multi => (5.0, args.tp_max_multi, 1.0),
    };
    let mut steps: Vec<Step> = Vec::new();
    let mut best: Option<usize> = None;
    let run = async |rate: f64, steps: &mut Vec<Step>| -> Result<bool, String> {
        let id = step_ids.get() + 1;
        step_ids.set(id);
        progress(&format!(
            "throughput {} on {} at {rate}/s",
            kind.label(),
            t.name
        ));
        let s = tp_step(t, kind, rate, secs, id).await?;
        progress(&format!(
            "  accepted {:.0}/s, p99 {} ms, server CPU {} → {}",
            s.accepted_rate,
            ms(s.p.p99),
            pct(s.cpu.server),
            if s.pass {
                "pass".to_string()
            } else {
                format!("FAIL ({})", s.why)
            }
        ));
        let pass = s.pass;
        steps.push(s);
        Ok(pass)
    };
    let mut rate = first;
    let mut failed: Option<f64> = None;
    // Doubling up to the first failure (bounded by `max`), then bisection.
    for _ in 0..16 {
        if run(rate, &mut steps).await? {
            best = Some(steps.len() - 1);
            if rate >= max {
                break;
            }
            rate = (rate * 2.0).min(max);
        } else {
            failed = Some(rate);
            break;
        }
    }
    if let Some(mut hi) = failed {
        let mut lo = best.map_or(0.0, |b| steps[b].rate);
        for _ in 0..bisections {
            let mid = (((lo + hi) / 2.0) / grain).round() * grain;
            if mid <= lo || mid >= hi {
                break;
            }
            if run(mid, &mut steps).await? {
                best = Some(steps.len() - 1);
                lo = mid;
            } else {
                hi = mid;
            }
        }
    }
    Ok(Search {
        ceiling_reached: failed.is_none(),
        steps,
        best,
    })
}

/// The index of the median of `values` (the lower one for an even count).
fn median_index(values: &[f64]) -> usize {
    let mut order: Vec<usize> = (0..values.len()).collect();
    order.sort_by(|&a, &b| values[a].total_cmp(&values[b]));
    order[(order.len() - 1) / 2]
}

/// `run` `repeats` times per target, alternating between the targets so that each sees the
/// machine in the same state. Returns each target's runs, in the targets' order.
async fn alternating<T>(
    targets: &[Target],
    repeats: usize,
    mut run: impl AsyncFnMut(&Target) -> Result<T, String>,
) -> Result<Vec<Vec<T>>, String> {
    let mut all: Vec<Vec<T>> = targets.iter().map(|_| Vec::new()).collect();
    for _ in 0..repeats {
        for (t, runs) in targets.iter().zip(all.iter_mut()) {
            runs.push(run(t).await?);
        }
    }
    Ok(all)
}

/// Each target's figures by `figure`, and its median run by that figure.
fn medians<T>(all: &[Vec<T>], figure: impl Fn(&T) -> f64) -> (Vec<Vec<f64>>, Vec<&T>) {
    let figures: Vec<Vec<f64>> = all
        .iter()
        .map(|runs| runs.iter().map(&figure).collect())
        .collect();
    let median = all
        .iter()
        .zip(&figures)
        .map(|(runs, f)| &runs[median_index(f)])
        .collect();
    (figures, median)
}

fn list(values: &[f64]) -> String {
    values
        .iter()
        .map(|v| format!("{v:.0}"))
        .collect::<Vec<_>>()
        .join(", ")
}

async fn throughput_section(args: &Args, kind: Kind) -> Result<(), String> {
    let step_ids = Cell::new(1000);
    let repeats = if args.quick { 1 } else { args.repeats };
    // Each target's figure is the median of its searches.
    let all = alternating(&args.targets, repeats, async |t| {
        throughput(t, kind, args, &step_ids).await
    })
    .await?;
    let best_rate = |s: &Search| s.best.map_or(f64::NAN, |b| s.steps[b].accepted_rate);
    let (bests, searches) = medians(&all, best_rate);
    let secs = if args.quick { 2.0 } else { args.step_seconds };
    let mut out = String::new();
    let _ = writeln!(
        out,
        "\n### 2. Airport throughput: {} ({TP_SOCKETS} sockets, each frame broadcast to the other {}; steps of {secs} s; median of {repeats} searches per target, alternating)\n",
        kind.label(),
        TP_SOCKETS - 1
    );
    let _ = writeln!(
        out,
        "| target | highest sustained accepted /s (median) | every search | p50 ms | p99 ms | max ms | deliveries /s | generator CPU | server CPU | first failing step |"
    );
    let _ = writeln!(out, "|---|---|---|---|---|---|---|---|---|---|");
    for ((t, s), every) in args.targets.iter().zip(&searches).zip(&bests) {
        let fail = s
            .steps
            .iter()
            .filter(|x| !x.pass)
            .min_by(|a, b| a.rate.total_cmp(&b.rate))
            .map_or(
                if s.ceiling_reached {
                    "none (search limit reached)".to_string()
                } else {
                    "–".into()
                },
                |x| format!("{}/s: {}", x.rate, x.why),
            );
        match s.best {
            Some(b) => {
                let x = &s.steps[b];
                let _ = writeln!(
                    out,
                    "| {} | {}{:.0} | {} | {} | {} | {} | {:.0} | {} | {} | {} |",
                    t.name,
                    if s.ceiling_reached { "≥ " } else { "" },
                    x.accepted_rate,
                    list(every),
                    ms(x.p.p50),
                    ms(x.p.p99),
                    ms(x.p.max),
                    x.received as f64 / secs,
                    pct(Some(x.cpu.generator)),
                    pct(x.cpu.server),
                    fail
                );
            }
            None => {
                let _ = writeln!(
                    out,
                    "| {} | none passed | {} | | | | | | | {} |",
                    t.name,
                    list(every),
                    fail
                );
            }
        }
    }
    if searches.len() >= 2 {
        let (a, b) = (best_rate(searches[0]), best_rate(searches[1]));
        let _ = writeln!(
            out,
            "\nRatio {} / {}: **{}** (target ≥ 0.9×){}",
            args.targets[0].name,
            args.targets[1].name,
            ratio(a, b),
            if a / b >= 0.9 { " ✓" } else { " ✗" }
        );
    }
    let _ = writeln!(out, "\nSteps:\n");
    let _ = writeln!(
        out,
        "| target | offered /s | senders | sent | accepted /s | delivered / expected | p50 ms | p99 ms | max ms | gen CPU | server CPU | result |"
    );
    let _ = writeln!(out, "|---|---|---|---|---|---|---|---|---|---|---|---|");
    for (t, s) in args
        .targets
        .iter()
        .zip(&all)
        .flat_map(|(t, all)| all.iter().map(move |s| (t, s)))
    {
        for x in &s.steps {
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {:.0} | {} / {} | {} | {} | {} | {} | {} | {} |",
                t.name,
                x.rate,
                x.senders,
                x.sent,
                x.accepted_rate,
                x.received,
                x.expected,
                ms(x.p.p50),
                ms(x.p.p99),
                ms(x.p.max),
                pct(Some(x.cpu.generator)),
                pct(x.cpu.server),
                if x.pass {
                    "pass".into()
                } else {
                    format!("fail: {}", x.why)
                }
            );
            let _ = x.accepted;
        }
    }
    println!("{out}");
    Ok(())
}

// ---------------------------------------------------------------- 3. connect cost

/// Puts 10,000 objects in the airport: 50 MULTI_STATE_UPDATEs of 200 new objects (within the
/// rate limiter's burst of 60), then a GET_STATE round trip proves they were all applied.
async fn populate(controller: &mut Opened) -> Result<(), String> {
    populate_with(controller, 10_000).await
}

/// Sets `objects` (a multiple of 200) objects from the controller, and waits until they are in.
async fn populate_with(controller: &mut Opened, objects: usize) -> Result<(), String> {
    for batch in 0..objects / 200 {
        let items: Vec<String> = (0..200)
            .map(|i| {
                format!(
                    "{{\"objectId\":\"OBJ_{batch}_{i}\",\"state\":{{\"on\":{}}}}}",
                    i % 2 == 0
                )
            })
            .collect();
        let frame = format!(
            "{{\"type\":\"MULTI_STATE_UPDATE\",\"data\":{{\"updates\":[{}]}}}}",
            items.join(",")
        );
        controller
            .sink
            .send(Message::Text(frame.into()))
            .await
            .map_err(|e| e.to_string())?;
    }
    controller
        .sink
        .send(Message::Text(
            "{\"type\":\"GET_STATE\",\"requestId\":\"populated\"}".into(),
        ))
        .await
        .map_err(|e| e.to_string())?;
    let wait = async {
        while let Some(m) = controller.stream.next().await {
            if let Ok(Message::Text(t)) = m {
                if t.as_str().starts_with("{\"type\":\"ERROR\"") {
                    return Err(format!("populating: {}", &t.as_str()[..t.len().min(200)]));
                }
                if t.as_str().contains("\"requestId\":\"populated\"") {
                    let count = t.as_str().matches("\"OBJ_").count();
                    return if count == objects {
                        Ok(())
                    } else {
                        Err(format!("populated {count} objects, not {objects}"))
                    };
                }
            }
        }
        Err("closed while populating".to_string())
    };
    tokio::time::timeout(Duration::from_secs(60), wait)
        .await
        .map_err(|_| "populating timed out".to_string())?
}

struct Sample {
    lat: Vec<u32>,
    bytes: usize,
    constructions: Option<i64>,
}

async fn connect_once(t: &Target, airport: &str, lat: &mut Vec<u32>) -> Result<usize, String> {
    let o = open(&t.url, airport, OTHER_KEYS[2], Duration::from_secs(30)).await?;
    lat.push(o.initial.as_micros() as u32);
    let bytes = o.initial_len;
    close_all(vec![o.sink], vec![]).await;
    tokio::time::sleep(Duration::from_millis(30)).await;
    Ok(bytes)
}

/// Constructions of Durable Objects so far, from the log lines serve.mjs counts: the service
/// logs `airport_loaded` and the floor `floor_constructed` once per construction.
async fn loaded_count(t: &Target, stats: Option<&str>) -> Option<i64> {
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
        bytes = connect_once(t, &fresh_airport(), &mut lat).await?;
    }
    let after = loaded_count(t, stats).await;
    Ok(Sample {
        lat,
        bytes,
        constructions: after.zip(before).map(|(a, b)| a - b),
    })
}

/// `m` connects to airports with a controller connected (and, on the service with `populated`,
/// 10,000 objects). `cold`: one connect per airport after 15 s of silence, by when workerd has
/// hibernated the object; otherwise `m` connects in a row to one airport whose object is in
/// memory.
async fn connect_loaded(
    t: &Target,
    m: usize,
    cold: bool,
    populated: bool,
    stats: Option<&str>,
) -> Result<Sample, String> {
    let airports: Vec<String> = (0..if cold { m } else { 1 })
        .map(|_| fresh_airport())
        .collect();
    let mut controllers = Vec::new();
    for a in &airports {
        let mut c = open(&t.url, a, CONTROLLER_KEYS[0], Duration::from_secs(30)).await?;
        if populated && t.stateful.get() {
            populate(&mut c).await?;
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
        bytes = connect_once(t, a, &mut lat).await?;
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
    /// One key per socket: every connect looks its account up.
    Distinct,
}

impl Keys {
    fn key(self, i: usize) -> String {
        match self {
            Keys::Demo => OTHER_KEYS[i % 3].to_string(),
            Keys::Distinct => distinct_key(i),
        }
    }

    fn name(self) -> &'static str {
        match self {
            Keys::Demo => "3 people (demo keys)",
            Keys::Distinct => "1,000 distinct people",
        }
    }
}

/// `n` sockets connect to one fresh airport all at once.
async fn herd(t: &Target, n: usize, keys: Keys) -> Result<Herd, String> {
    settle(t.pid).await;
    let airport = fresh_airport();
    let keys: Vec<String> = (0..n).map(|i| keys.key(i)).collect();
    let cpu = CpuWindow::start(t.pid);
    let t0 = Instant::now();
    let attempts = keys
        .iter()
        .map(|key| open(&t.url, &airport, key, Duration::from_secs(60)));
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
async fn connect_section(args: &Args, herd_only: bool) -> Result<(), String> {
    let m = if args.quick { 5 } else { 20 };
    let cold_m = if args.quick { 2 } else { 5 };
    let herd_n = 1000;
    let stats = args.stats.as_deref();
    let mut cases: Vec<(&str, Vec<Sample>)> = vec![
        ("fresh airport (object created)", vec![]),
        ("10,000 objects, object in memory", vec![]),
        ("10,000 objects, object hibernated", vec![]),
        ("no objects, object hibernated", vec![]),
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
            .push(connect_loaded(t, m, false, true, st).await?);
        progress(&format!(
            "connect: {cold_m} to hibernated loaded airports on {}",
            t.name
        ));
        cases[2]
            .1
            .push(connect_loaded(t, cold_m, true, true, st).await?);
        progress(&format!(
            "connect: {cold_m} to hibernated airports without objects on {}",
            t.name
        ));
        cases[3]
            .1
            .push(connect_loaded(t, cold_m, true, false, st).await?);
    }
    // Each target's row is its median herd.
    let herd_repeats = if args.quick { 1 } else { args.repeats };
    let mut herd_runs = Vec::new();
    for keys in [Keys::Demo, Keys::Distinct] {
        let all = alternating(&args.targets, herd_repeats, async |t| {
            progress(&format!(
                "connect: {herd_n} sockets at once on {}, {}",
                t.name,
                keys.name()
            ));
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
    let mut out = String::new();
    let _ = writeln!(
        out,
        "\n### 3. Connect cost (upgrade request → INITIAL_STATE)\n"
    );
    if !herd_only {
        let _ = writeln!(
            out,
            "The floor keeps no state, so its \"10,000 objects\" rows are an airport with one socket connected.\n"
        );
        let _ = writeln!(
            out,
            "| case | target | connects | p50 ms | p99 ms | max ms | INITIAL bytes | objects constructed |"
        );
        let _ = writeln!(out, "|---|---|---|---|---|---|---|---|");
    }
    let mut pcts: Vec<Vec<Percentiles>> = Vec::new();
    for (case, samples) in cases.iter_mut().filter(|_| !herd_only) {
        let mut row = Vec::new();
        for (t, s) in args.targets.iter().zip(samples.iter_mut()) {
            let p = percentiles(&mut s.lat);
            let _ = writeln!(
                out,
                "| {case} | {} | {} | {} | {} | {} | {} | {} |",
                t.name,
                p.n,
                ms(p.p50),
                ms(p.p99),
                ms(p.max),
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
    let _ = writeln!(
        out,
        "| keys | target | all connected after ms (median) | every herd, ms | per socket p50 ms | p99 ms | max ms | failed | generator CPU | server CPU |"
    );
    let _ = writeln!(out, "|---|---|---|---|---|---|---|---|---|---|");
    let herd_medians: Vec<_> = herd_runs
        .iter()
        .map(|(keys, all)| (*keys, medians(all, |h: &Herd| h.total_ms)))
        .collect();
    for (keys, (totals, herds)) in &herd_medians {
        for ((t, h), every) in args.targets.iter().zip(herds).zip(totals) {
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} | {} | {} | {}{} | {} | {} |",
                keys.name(),
                t.name,
                ms(h.total_ms),
                list(every),
                ms(h.p.p50),
                ms(h.p.p99),
                ms(h.p.max),
                h.failures,
                h.first_error
                    .as_ref()
                    .map_or(String::new(), |e| format!(" ({e})")),
                pct(Some(h.cpu.generator)),
                pct(h.cpu.server)
            );
        }
    }
    if args.targets.len() >= 2 {
        let (a, b) = (&args.targets[0].name, &args.targets[1].name);
        let _ = writeln!(out, "\nRatios {a} / {b}:\n");
        let _ = writeln!(out, "| case | p50 | p99 | max |");
        let _ = writeln!(out, "|---|---|---|---|");
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

// ---------------------------------------------------------------- 4. idle cost

/// Connected but silent clients: each only answers the server's HEARTBEAT with HEARTBEAT_ACK,
/// as a real client does (a socket that sends nothing is closed idle after 70 s). The counts come
/// from workerd itself: the tail worker sees every alarm and WebSocket event invocation, and the
/// service logs `airport_loaded` once per construction of the object.
pub async fn idle(args: &Args) -> Result<(), String> {
    let t = &args.targets[0];
    let stats = args.stats.as_deref().ok_or("idle needs --stats")?;
    let secs = if args.quick { 40.0 } else { args.seconds };
    let airport = fresh_airport();
    let heartbeats: Vec<Rc<Cell<u64>>> = (0..args.sockets).map(|_| Rc::default()).collect();
    let mut tasks = Vec::new();
    for (i, count) in heartbeats.iter().enumerate() {
        let key = if i == 0 {
            CONTROLLER_KEYS[0]
        } else {
            OTHER_KEYS[i % 3]
        };
        let o = open(&t.url, &airport, key, Duration::from_secs(30)).await?;
        tasks.push(spawn_answerer(o, count.clone()));
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let reset = get_json(&stats.replace("/stats", "/reset")).await?;
    let _ = reset;
    let t0 = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as f64)
        .unwrap_or(0.0);
    let cpu = CpuWindow::start(t.pid);
    progress(&format!(
        "idle: {} silent sockets at {airport} for {secs} s",
        args.sockets
    ));
    let begin = Instant::now();
    while begin.elapsed().as_secs_f64() < secs {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let s = begin.elapsed().as_secs();
        if s.is_multiple_of(30) {
            progress(&format!("  {s} s"));
        }
    }
    let cpu = cpu.stop();
    let v = get_json(stats).await?;
    for task in &tasks {
        task.abort();
    }
    let count = |k: &str| v["counts"][k].as_f64().unwrap_or(0.0);
    let per_hour = |x: f64| x * 3600.0 / secs;
    let loaded = count("airport_loaded");
    let alarms = count("tail_alarm");
    let messages = count("tail_ws_message");
    let fetches = count("tail_fetch");
    let hb: Vec<u64> = heartbeats.iter().map(|c| c.get()).collect();
    let (hb_min, hb_max) = (
        hb.iter().min().copied().unwrap_or(0),
        hb.iter().max().copied().unwrap_or(0),
    );
    let mut out = String::new();
    let _ = writeln!(
        out,
        "\n### 4. Idle cost: 1 airport, {} connected sockets that only answer heartbeats, {secs:.0} s\n",
        args.sockets
    );
    let _ = writeln!(
        out,
        "| what (seen by workerd) | in {secs:.0} s | per hour |"
    );
    let _ = writeln!(out, "|---|---|---|");
    let _ = writeln!(
        out,
        "| object constructions (`airport_loaded`: woken from hibernation) | {loaded} | {:.0} |",
        per_hour(loaded)
    );
    let _ = writeln!(
        out,
        "| alarm invocations | {alarms} | {:.0} |",
        per_hour(alarms)
    );
    let _ = writeln!(
        out,
        "| WebSocket message invocations (the HEARTBEAT_ACKs) | {messages} | {:.0} |",
        per_hour(messages)
    );
    let _ = writeln!(
        out,
        "| fetch invocations | {fetches} | {:.0} |",
        per_hour(fetches)
    );
    let _ = writeln!(
        out,
        "| HEARTBEATs received per socket | {hb_min}–{hb_max} | {:.0} |",
        per_hour(hb_max as f64)
    );
    let _ = writeln!(
        out,
        "| workerd CPU, average | {} | |",
        cpu.server
            .map_or("–".into(), |c| format!("{c:.2}% of a core"))
    );
    let _ = writeln!(
        out,
        "| of the constructions: woken by an alarm / by a WebSocket message | {} / {} | {:.0} / {:.0} |",
        count("tail_woke_by_alarm"),
        count("tail_woke_by_ws_message"),
        per_hour(count("tail_woke_by_alarm")),
        per_hour(count("tail_woke_by_ws_message"))
    );
    let outcomes: Vec<String> = v["counts"]
        .as_object()
        .map(|m| {
            m.iter()
                .filter(|(k, _)| k.contains("_outcome_"))
                .map(|(k, n)| format!("{} {}", k.trim_start_matches("tail_"), n))
                .collect()
        })
        .unwrap_or_default();
    let _ = writeln!(out, "\nInvocation outcomes: {}", outcomes.join(", "));
    let _ = writeln!(
        out,
        "\nTimeline (s since start, invocation start times as the tail worker reports them):\n"
    );
    let mut events: Vec<(f64, String)> = Vec::new();
    let woke: Vec<(f64, String)> = v["times"]["woke"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|w| Some((w["at"].as_f64()?, w["kind"].as_str()?.to_string())))
                .collect()
        })
        .unwrap_or_default();
    if let Some(times) = v["times"]["alarm"].as_array() {
        for x in times.iter().filter_map(|x| x.as_f64()) {
            let constructed = woke.iter().any(|(at, k)| *at == x && k == "alarm");
            events.push((
                (x - t0) / 1000.0,
                format!(
                    "alarm{}",
                    if constructed {
                        " (object constructed: it had hibernated)"
                    } else {
                        " (object still in memory)"
                    }
                ),
            ));
        }
    }
    if let Some(times) = v["times"]["ws_message"].as_array() {
        // Bursts of ACKs, one line per second.
        let secs_of: Vec<i64> = times
            .iter()
            .filter_map(|x| x.as_f64())
            .map(|ms| ((ms - t0) / 1000.0).floor() as i64)
            .collect();
        let mut seconds = secs_of.clone();
        seconds.dedup();
        for s in seconds {
            let n = secs_of.iter().filter(|x| **x == s).count();
            let first = times
                .iter()
                .filter_map(|x| x.as_f64())
                .map(|ms| (ms - t0) / 1000.0)
                .filter(|x| x.floor() as i64 == s)
                .fold(f64::INFINITY, f64::min);
            let woken = woke
                .iter()
                .filter(|(at, k)| k == "ws_message" && ((at - t0) / 1000.0).floor() as i64 == s)
                .count();
            events.push((
                first,
                format!(
                    "{n} WebSocket messages (HEARTBEAT_ACK), the first at this time, all within the second{}",
                    if woken > 0 {
                        format!(", {woken} of them constructed the object")
                    } else {
                        String::new()
                    }
                ),
            ));
        }
    }
    events.sort_by(|a, b| a.0.total_cmp(&b.0));
    for (at, what) in events {
        let _ = writeln!(out, "- {at:.1}: {what}");
    }
    println!("{out}");
    Ok(())
}

// ---------------------------------------------------------------- 5. profile-change burst

/// A runway profile change: one STATE_UPDATE per lighting element, back to back.
const BURST_FRAMES: usize = 2_000;
/// Watching controllers; the other watchers are pilots and observers, half each.
const BURST_CONTROLLERS: usize = 4;
/// A burst that has not reached every watcher by then is a failed run.
const BURST_LIMIT: Duration = Duration::from_secs(120);
/// Only the last change's packet holds this: the service's broadcast of it, the floor's copy.
const LAST_CHANGE: &str = "\"LIGHT_1999\"";
/// Once per change in a packet, whether it carries one (STATE_UPDATE, the floor's copy) or many
/// (the service's MULTI_STATE_UPDATE to pilots and observers).
const CHANGE: &str = "\"objectId\":\"LIGHT_";

fn burst_frames() -> Vec<String> {
    (0..BURST_FRAMES)
        .map(|i| {
            format!(
                "{{\"type\":\"STATE_UPDATE\",\"data\":{{\"objectId\":\"LIGHT_{i}\",\"state\":{}}}}}",
                i.is_multiple_of(2)
            )
        })
        .collect()
}

fn burst_key(i: usize) -> &'static str {
    if i < BURST_CONTROLLERS {
        CONTROLLER_KEYS[i % 2]
    } else if i.is_multiple_of(2) {
        OTHER_KEYS[0]
    } else {
        OTHER_KEYS[2]
    }
}

/// When the last change reached one watcher (`None`: it closed, or the deadline passed), and
/// how many packets and changes it read until then.
struct Watch {
    done: Option<Instant>,
    packets: u64,
    changes: u64,
}

/// Reads a socket until the last change arrives, answering HEARTBEATs. At N = 500 a burst is a
/// million packets for this one thread, so a packet costs substring searches and no parsing.
fn spawn_watcher(o: Opened, deadline: tokio::time::Instant) -> JoinHandle<(Watch, Sink)> {
    tokio::task::spawn_local(async move {
        let (mut sink, mut stream) = (o.sink, o.stream);
        let (mut packets, mut changes) = (0, 0);
        let watching = async {
            while let Some(Ok(m)) = stream.next().await {
                let Message::Text(text) = m else { continue };
                packets += 1;
                changes += text.as_str().matches(CHANGE).count() as u64;
                if text.as_str().contains(LAST_CHANGE) {
                    return Some(Instant::now());
                }
                if is_heartbeat(text.as_str()) && sink.send(heartbeat_ack()).await.is_err() {
                    return None;
                }
            }
            None
        };
        let done = tokio::time::timeout_at(deadline, watching)
            .await
            .ok()
            .flatten();
        (
            Watch {
                done,
                packets,
                changes,
            },
            sink,
        )
    })
}

/// Writes the frames as fast as the socket takes them: `feed` only buffers (the WebSocket writes
/// whenever its buffer fills), and one flush sends the rest.
async fn send_burst(sink: &mut Sink, frames: Vec<String>) -> Result<(), String> {
    for f in frames {
        sink.feed(Message::Text(f.into()))
            .await
            .map_err(|e| e.to_string())?;
    }
    sink.flush().await.map_err(|e| e.to_string())
}

struct Burst {
    /// First frame sent → the last change at every watcher; NaN when one never got it.
    total_ms: f64,
    /// First frame sent → the last one written.
    written_ms: f64,
    /// Per watcher: first frame sent → the last change there.
    p: Percentiles,
    packets: u64,
    /// Changes that reached the watcher that got fewest: every one of them should.
    fewest_changes: u64,
    /// ERRORs the sender got (a rate limit would show here).
    errors: u64,
    failure: Option<String>,
    cpu: CpuUse,
}

/// One controller sends the burst to a fresh airport where `n` other sockets watch.
async fn burst(t: &Target, n: usize) -> Result<Burst, String> {
    let airport = fresh_airport();
    let watchers = open_many(&t.url, &airport, n, 50, burst_key).await?;
    let controller = open(
        &t.url,
        &airport,
        CONTROLLER_KEYS[0],
        Duration::from_secs(30),
    )
    .await?;
    let mut sink = controller.sink;
    let rec: Shared = Rc::default();
    let reader = spawn_reader(controller.stream, rec.clone());
    tokio::time::sleep(Duration::from_millis(300)).await;
    settle(t.pid).await;
    let frames = burst_frames();
    let deadline = tokio::time::Instant::now() + BURST_LIMIT;
    let watching: Vec<_> = watchers
        .into_iter()
        .map(|o| spawn_watcher(o, deadline))
        .collect();
    let cpu = CpuWindow::start(t.pid);
    let t0 = Instant::now();
    let written = tokio::time::timeout_at(deadline, send_burst(&mut sink, frames)).await;
    let written_ms = t0.elapsed().as_secs_f64() * 1000.0;
    let watched = futures_util::future::join_all(watching).await;
    let cpu = cpu.stop();
    let (mut lat, mut sinks, mut packets) = (Vec::new(), vec![sink], 0);
    let mut fewest_changes = u64::MAX;
    for w in watched {
        let (w, s) = w.map_err(|e| e.to_string())?;
        packets += w.packets;
        fewest_changes = fewest_changes.min(w.changes);
        if let Some(done) = w.done {
            lat.push(done.duration_since(t0).as_micros() as u32);
        }
        sinks.push(s);
    }
    let reached = lat.len();
    let p = percentiles(&mut lat);
    let failure = match written {
        Err(_) => Some(format!("frames not written within {BURST_LIMIT:?}")),
        Ok(Err(e)) => Some(format!("sending: {e}")),
        Ok(Ok(())) if reached < n => Some(format!(
            "{reached}/{n} sockets got the last change within {BURST_LIMIT:?}"
        )),
        Ok(Ok(())) if fewest_changes < BURST_FRAMES as u64 => Some(format!(
            "a socket got only {fewest_changes} of {BURST_FRAMES} changes"
        )),
        Ok(Ok(())) => None,
    };
    let errors = rec.borrow().errors;
    close_all(sinks, vec![reader]).await;
    settle(t.pid).await;
    Ok(Burst {
        total_ms: if failure.is_none() { p.max } else { f64::NAN },
        written_ms,
        p,
        packets,
        fewest_changes,
        errors,
        failure,
        cpu,
    })
}

async fn burst_section(args: &Args) -> Result<(), String> {
    let ns: &[usize] = if args.quick { &[100] } else { &[100, 500] };
    let repeats = if args.quick {
        args.repeats.min(2)
    } else {
        args.repeats
    };
    // Each target's row is its median run.
    let mut rows: Vec<(usize, Vec<Vec<Burst>>)> = Vec::new();
    for &n in ns {
        let all = alternating(&args.targets, repeats, async |t| {
            progress(&format!(
                "burst: {BURST_FRAMES} STATE_UPDATEs to {n} sockets on {}",
                t.name
            ));
            let b = burst(t, n).await?;
            progress(&format!(
                "  every socket had the last change after {} ms{}",
                ms(b.total_ms),
                b.failure
                    .as_ref()
                    .map_or(String::new(), |f| format!(" (FAILED: {f})"))
            ));
            Ok(b)
        })
        .await?;
        rows.push((n, all));
    }
    let mut out = String::new();
    let _ = writeln!(
        out,
        "\n### 5. Profile-change burst (1 controller writes {BURST_FRAMES} STATE_UPDATEs back to back; N others watch, {BURST_CONTROLLERS} of them controllers; median of {repeats} runs per target, alternating)\n"
    );
    let _ = writeln!(
        out,
        "| N | target | every socket had the last change after ms (median) | every run, ms | per socket p50 ms | p99 ms | frames written after ms | packets per socket | changes at the socket with fewest | failed runs | ERRORs to the sender | generator CPU | server CPU |"
    );
    let _ = writeln!(out, "|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    let mut median_rows: Vec<(usize, Vec<&Burst>)> = Vec::new();
    for (n, all) in &rows {
        let (totals, row) = medians(all, |b: &Burst| b.total_ms);
        for ((t, runs), (b, totals)) in args.targets.iter().zip(all).zip(row.iter().zip(&totals)) {
            let failed: Vec<&String> = runs.iter().filter_map(|b| b.failure.as_ref()).collect();
            let _ = writeln!(
                out,
                "| {n} | {} | {} | {} | {} | {} | {} | {:.0} | {} | {}{} | {} | {} | {} |",
                t.name,
                ms(b.total_ms),
                list(totals),
                ms(b.p.p50),
                ms(b.p.p99),
                ms(b.written_ms),
                b.packets as f64 / *n as f64,
                b.fewest_changes,
                failed.len(),
                failed.first().map_or(String::new(), |f| format!(" ({f})")),
                b.errors,
                pct(Some(b.cpu.generator)),
                pct(b.cpu.server)
            );
        }
        median_rows.push((*n, row));
    }
    if args.targets.len() >= 2 {
        let (a, b) = (&args.targets[0].name, &args.targets[1].name);
        let _ = writeln!(out, "\nRatios {a} / {b}:\n");
        let _ = writeln!(
            out,
            "| N | every socket had the last change (target ≤ 1.5×) | per socket p50 | p99 |"
        );
        let _ = writeln!(out, "|---|---|---|---|");
        for (n, row) in &median_rows {
            let (x, y) = (row[0], row[1]);
            let r = x.total_ms / y.total_ms;
            let _ = writeln!(
                out,
                "| {n} | **{}**{} | {} | {} |",
                ratio(x.total_ms, y.total_ms),
                if r <= 1.5 { " ✓" } else { " ✗" },
                ratio(x.p.p50, y.p.p50),
                ratio(x.p.p99, y.p.p99)
            );
        }
    }
    println!("{out}");
    Ok(())
}

// ---------------------------------------------------------------- 6. public /state

/// Live airports (one pilot each) that `/state?airport=all` gathers.
const STATE_AIRPORTS: usize = 200;
/// The service reuses an answer for 1 s in the isolate and the Cache API keeps it for 2 s, so an
/// airport's object is read at most once per 2 s however often it is polled.
const CACHE_PERIOD: Duration = Duration::from_secs(2);
/// Longer than both reuses: a request after this gap reads the objects again.
const COLD_GAP: Duration = Duration::from_millis(3_500);
/// Back-to-back `airport=all` requests, well within the cache period.
const WARM_REQUESTS: usize = 100;
/// One airport polled every 10 ms for this long: five cache periods.
const POLL_SECONDS: f64 = 10.0;
/// serve.mjs counts a log line a little after workerd writes it.
const LOG_LAG: Duration = Duration::from_millis(500);

/// The answers to a series of GETs, and the objects' `state_read` events meanwhile.
#[derive(Default)]
struct Requests {
    lat: Vec<u32>,
    bytes: usize,
    failed: usize,
    first_error: Option<String>,
    reads: i64,
}

impl Requests {
    /// One answer: latency (µs), status and body length.
    fn add(&mut self, got: Result<(u32, u16, usize), String>) {
        let error = match got {
            Ok((lat, 200, bytes)) => {
                self.lat.push(lat);
                self.bytes = bytes;
                return;
            }
            Ok((_, status, _)) => format!("status {status}"),
            Err(e) => e,
        };
        self.failed += 1;
        self.first_error.get_or_insert(error);
    }
}

async fn timed_get(url: &str) -> Result<(u32, u16, usize), String> {
    let t0 = Instant::now();
    let (status, body) = get(url).await?;
    Ok((t0.elapsed().as_micros() as u32, status, body.len()))
}

/// `state_read` events so far (serve.mjs also counts them per airport), once the log lines of
/// the requests already answered have arrived.
async fn state_reads(stats: &str, airport: Option<&str>) -> Result<i64, String> {
    tokio::time::sleep(LOG_LAG).await;
    let v = get_json(stats).await?;
    let count = match airport {
        Some(a) => &v["airports"]["state_read"][a],
        None => &v["counts"]["state_read"],
    };
    Ok(count.as_i64().unwrap_or(0))
}

fn count_states(body: &str) -> usize {
    serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v["states"].as_array().map(Vec::len))
        .unwrap_or(0)
}

/// Polls `/state?airport=all` every 500 ms (at most 30 s) until it lists `want` states, as the
/// directory learns of the airports in the background; returns how many it listed last.
async fn wait_listed(all: &str, want: usize) -> Result<usize, String> {
    let begin = Instant::now();
    loop {
        let listed = count_states(&get(all).await?.1);
        if listed >= want || begin.elapsed() > Duration::from_secs(30) {
            return Ok(listed);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// `count` GETs one after another, each `gap` after the previous answer. `reads`: the
/// `state_read` count before them, then after them (so that the next series can start at once,
/// while the answer is still cached).
async fn get_in_turn(
    url: &str,
    count: usize,
    gap: Duration,
    stats: &str,
    reads: &mut i64,
) -> Result<Requests, String> {
    let mut r = Requests::default();
    for _ in 0..count {
        tokio::time::sleep(gap).await;
        r.add(timed_get(url).await);
    }
    let after = state_reads(stats, None).await?;
    r.reads = after - std::mem::replace(reads, after);
    Ok(r)
}

/// Anonymous polls of one airport, one every 10 ms for `secs`, each its own request (as from
/// many browsers), and that airport's `state_read` events meanwhile.
async fn poll_paced(
    url: &str,
    secs: f64,
    stats: &str,
    airport: &str,
    pid: Option<u32>,
) -> Result<(Requests, CpuUse), String> {
    let before = state_reads(stats, Some(airport)).await?;
    let cpu = CpuWindow::start(pid);
    let start = tokio::time::Instant::now();
    let end = start + Duration::from_secs_f64(secs);
    let mut polls = Vec::new();
    let mut next = start;
    // Bounded: one request per 10 ms between start and end, each with its own timeout.
    while next < end {
        tokio::time::sleep_until(next).await;
        let url = url.to_owned();
        polls.push(tokio::task::spawn_local(
            async move { timed_get(&url).await },
        ));
        next += Duration::from_millis(10);
    }
    let mut r = Requests::default();
    for poll in futures_util::future::join_all(polls).await {
        r.add(poll.map_err(|e| e.to_string())?);
    }
    let cpu = cpu.stop();
    r.reads = state_reads(stats, Some(airport)).await? - before;
    Ok((r, cpu))
}

/// Public `GET /state` on the service (the floor has none): `airport=all` over
/// `STATE_AIRPORTS` live airports, cold and warm, and one airport polled 100 times a second.
async fn state_section(args: &Args) -> Result<(), String> {
    let Some(t) = args.targets.iter().find(|t| t.stateful.get()) else {
        println!("\n### 6. Public GET /state: skipped, no target is the service\n");
        return Ok(());
    };
    let stats = args.stats.as_deref().ok_or("state needs --stats")?;
    let cold_n = if args.quick { 4 } else { 10 };
    let (warm_n, poll_secs) = (WARM_REQUESTS, POLL_SECONDS);
    let base = t.url.replacen("ws://", "http://", 1);
    let all = format!("{base}/state?airport=all");
    progress(&format!(
        "state: a pilot at each of {STATE_AIRPORTS} fresh airports on {}",
        t.name
    ));
    let airports: Vec<String> = (0..STATE_AIRPORTS).map(|_| fresh_airport()).collect();
    let opened: Vec<Result<Opened, String>> = futures_util::stream::iter(&airports)
        .map(|a| open(&t.url, a, OTHER_KEYS[0], Duration::from_secs(30)))
        .buffered(25)
        .collect()
        .await;
    // The pilots answer heartbeats: one that sends nothing is closed idle after 70 s, and this
    // section can last longer.
    let mut pilots = Vec::new();
    for o in opened {
        pilots.push(spawn_answerer(o?, Rc::default()));
    }
    let begin = Instant::now();
    let listed = wait_listed(&all, STATE_AIRPORTS).await?;
    let listed_after = begin.elapsed().as_secs_f64();
    progress(&format!(
        "  /state?airport=all lists {listed} after {listed_after:.1} s; {cold_n} cold requests"
    ));
    let mut reads = state_reads(stats, None).await?;
    let cold = get_in_turn(&all, cold_n, COLD_GAP, stats, &mut reads).await?;
    progress(&format!("  {warm_n} warm requests"));
    let warm = get_in_turn(&all, warm_n, Duration::ZERO, stats, &mut reads).await?;
    // Nothing has asked for this airport alone yet: its first poll reads the object.
    let one = &airports[0];
    progress(&format!(
        "  {one} polled 100 times a second for {poll_secs} s"
    ));
    let (polls, cpu) = poll_paced(
        &format!("{base}/state?airport={one}"),
        poll_secs,
        stats,
        one,
        t.pid,
    )
    .await?;
    let poll_reads = polls.reads;
    for pilot in &pilots {
        pilot.abort();
    }
    settle(t.pid).await;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "\n### 6. Public GET /state on {} ({STATE_AIRPORTS} fresh airports with a pilot each; `airport=all` listed {listed} after {listed_after:.1} s)\n",
        t.name
    );
    let _ = writeln!(
        out,
        "| request | answered | p50 ms | p99 ms | max ms | response bytes | Durable Object reads (`state_read`) per request |"
    );
    let _ = writeln!(out, "|---|---|---|---|---|---|---|");
    let rows = [
        (
            format!(
                "`airport=all`, cold ({:.1} s apart)",
                COLD_GAP.as_secs_f64()
            ),
            cold,
        ),
        ("`airport=all`, warm (back to back)".to_string(), warm),
        (
            format!("`airport={one}`, one every 10 ms for {poll_secs} s"),
            polls,
        ),
    ];
    for (what, mut r) in rows {
        let p = percentiles(&mut r.lat);
        let _ = writeln!(
            out,
            "| {what} | {}/{}{} | {} | {} | {} | {} | {:.2} |",
            p.n,
            p.n + r.failed,
            r.first_error
                .as_ref()
                .map_or(String::new(), |e| format!(" ({e})")),
            ms(p.p50),
            ms(p.p99),
            ms(p.max),
            r.bytes,
            r.reads as f64 / (p.n + r.failed).max(1) as f64
        );
    }
    let per_period = poll_reads as f64 / (poll_secs / CACHE_PERIOD.as_secs_f64());
    let _ = writeln!(
        out,
        "\nPolling {one}: {poll_reads} `state_read` events for it in {poll_secs} s = **{per_period:.2} per {} s cache period** (target ≤ 1){}; server CPU {}",
        CACHE_PERIOD.as_secs(),
        if per_period <= 1.0 { " ✓" } else { " ✗" },
        pct(cpu.server)
    );
    println!("{out}");
    Ok(())
}

// ---------------------------------------------------------------- snapshot polling

/// What 300 pilots cost at an airport of `objects` objects: connecting (each gets the whole
/// airport in its INITIAL_STATE) and polling `GET_STATE` between changes, as the pilot client
/// does every 30 s on a quiet airport; here every 3 s, so that the CPU time is large enough to
/// read. The server's CPU time over each phase, divided by what it served.
struct Poll {
    connect_ms: f64,
    polls: u64,
    poll_ms: f64,
    snapshot_bytes: usize,
}

async fn poll_once(t: &Target, objects: usize, secs: f64) -> Result<Poll, String> {
    const PILOTS: usize = 300;
    let airport = fresh_airport();
    let mut controller = open(
        &t.url,
        &airport,
        CONTROLLER_KEYS[0],
        Duration::from_secs(30),
    )
    .await?;
    populate_with(&mut controller, objects).await?;
    settle(t.pid).await;
    let cpu = CpuWindow::start(t.pid);
    let t0 = Instant::now();
    let pilots = open_many(&t.url, &airport, PILOTS, 50, |i| OTHER_KEYS[i % 3]).await?;
    let connect_cpu_s = cpu.stop().server.unwrap_or(f64::NAN) / 100.0 * t0.elapsed().as_secs_f64();
    settle(t.pid).await;
    let answered = Rc::new(Cell::new(0u64));
    let bytes = Rc::new(Cell::new(0usize));
    let cpu = CpuWindow::start(t.pid);
    let t0 = Instant::now();
    let mut tasks = Vec::new();
    for (i, pilot) in pilots.into_iter().enumerate() {
        let (mut sink, mut stream) = (pilot.sink, pilot.stream);
        let (answered, bytes) = (Rc::clone(&answered), Rc::clone(&bytes));
        tasks.push(tokio::task::spawn_local(async move {
            while let Some(Ok(m)) = stream.next().await {
                if let Message::Text(text) = m
                    && text.as_str().starts_with("{\"type\":\"STATE_SNAPSHOT\"")
                {
                    answered.set(answered.get() + 1);
                    bytes.set(text.len());
                }
            }
        }));
        tasks.push(tokio::task::spawn_local(async move {
            // Spread over the 3 s period.
            tokio::time::sleep(Duration::from_millis((i as u64 * 10) % 3000)).await;
            let end = Instant::now() + Duration::from_secs_f64(secs);
            while Instant::now() < end {
                let get = Message::Text("{\"type\":\"GET_STATE\"}".into());
                if sink.send(get).await.is_err() {
                    break;
                }
                tokio::time::sleep(Duration::from_secs(3)).await;
            }
            let _ = sink.close().await;
        }));
    }
    // The senders stop after `secs`; the readers end with their sockets.
    for task in tasks {
        let _ = task.await;
    }
    let poll_cpu_s = cpu.stop().server.unwrap_or(f64::NAN) / 100.0 * t0.elapsed().as_secs_f64();
    let _ = controller.sink.close().await;
    settle(t.pid).await;
    Ok(Poll {
        connect_ms: connect_cpu_s * 1000.0 / PILOTS as f64,
        polls: answered.get(),
        poll_ms: poll_cpu_s * 1000.0 / answered.get().max(1) as f64,
        snapshot_bytes: bytes.get(),
    })
}

async fn poll_section(args: &Args) -> Result<(), String> {
    let secs = if args.quick { 6.0 } else { 30.0 };
    let mut out = String::new();
    let _ = writeln!(
        out,
        "\n### Snapshots: 300 pilots connecting to an airport, then polling GET_STATE every 3 s for {secs} s (server CPU per answer)\n"
    );
    let _ = writeln!(
        out,
        "| objects | target | CPU ms per connect | GET_STATE answered | CPU ms per GET_STATE | STATE_SNAPSHOT bytes |"
    );
    let _ = writeln!(out, "|---|---|---|---|---|---|");
    for objects in [1_000, 10_000] {
        let all = alternating(&args.targets, args.repeats.min(3), async |t| {
            progress(&format!("poll: {objects} objects on {}", t.name));
            poll_once(t, objects, secs).await
        })
        .await?;
        let (_, medians) = medians(&all, |p: &Poll| p.poll_ms);
        for (t, p) in args.targets.iter().zip(medians) {
            let _ = writeln!(
                out,
                "| {objects} | {} | {} | {} | {} | {} |",
                t.name,
                ms(p.connect_ms),
                p.polls,
                ms(p.poll_ms),
                p.snapshot_bytes
            );
        }
    }
    println!("{out}");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_last_frame_of_a_burst_is_the_last_change() {
        let frames = burst_frames();
        assert_eq!(frames.len(), BURST_FRAMES);
        let last: Vec<usize> = (0..BURST_FRAMES)
            .filter(|&i| frames[i].contains(LAST_CHANGE))
            .collect();
        assert_eq!(last, vec![BURST_FRAMES - 1]);
        assert!(frames.iter().all(|f| f.matches(CHANGE).count() == 1));
        let coalesced = "{\"type\":\"MULTI_STATE_UPDATE\",\"airport\":\"A000\",\"data\":{\"updates\":[{\"objectId\":\"LIGHT_1998\",\"state\":true,\"controllerId\":\"1\"},{\"objectId\":\"LIGHT_1999\",\"state\":false,\"controllerId\":\"1\"}]},\"timestamp\":1,\"seq\":2000,\"seqFrom\":1999}";
        assert_eq!(coalesced.matches(CHANGE).count(), 2);
        assert!(coalesced.contains(LAST_CHANGE));
        let v: serde_json::Value = serde_json::from_str(&frames[1]).unwrap();
        assert_eq!(v["data"]["state"], serde_json::Value::Bool(false));
    }

    #[test]
    fn counts_the_states_of_all() {
        assert_eq!(count_states("{\"states\":[{\"airport\":\"A\"},{}]}"), 2);
        assert_eq!(count_states("{\"error\":{}}"), 0);
    }

    #[test]
    fn burst_watchers_are_a_few_controllers_then_pilots_and_observers() {
        let keys: Vec<&str> = (0..8).map(burst_key).collect();
        assert_eq!(
            keys,
            [
                "dev-controller-1",
                "dev-controller-2",
                "dev-controller-1",
                "dev-controller-2",
                "dev-pilot-1",
                "dev-observer-1",
                "dev-pilot-1",
                "dev-observer-1"
            ]
        );
    }
}
