//! Public `GET /state` (section 6 of the report): `airport=all` cold and warm, and one airport
//! polled 100 times a second.

use super::report::{heading, latency_cells, pct, table};
use super::{fresh_airport, progress};
use crate::Args;
use crate::client::{OTHER_KEYS, Opened, open, spawn_answerer};
use crate::meter::{CpuUse, CpuWindow, get, get_json, percentiles, settle};
use futures_util::StreamExt;
use std::fmt::Write as _;
use std::rc::Rc;
use std::time::{Duration, Instant};

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
pub(super) async fn section(args: &Args) -> Result<(), String> {
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
    let mut out = heading(format_args!(
        "6. Public GET /state on {} ({STATE_AIRPORTS} fresh airports with a pilot each; `airport=all` listed {listed} after {listed_after:.1} s)",
        t.name
    ));
    table(
        &mut out,
        &[
            "request",
            "answered",
            "p50 ms",
            "p99 ms",
            "max ms",
            "response bytes",
            "Durable Object reads (`state_read`) per request",
        ],
    );
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
            "| {what} | {}/{}{} | {} | {} | {:.2} |",
            p.n,
            p.n + r.failed,
            r.first_error
                .as_ref()
                .map_or(String::new(), |e| format!(" ({e})")),
            latency_cells(&p),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_the_states_of_all() {
        assert_eq!(count_states("{\"states\":[{\"airport\":\"A\"},{}]}"), 2);
        assert_eq!(count_states("{\"error\":{}}"), 0);
    }
}
