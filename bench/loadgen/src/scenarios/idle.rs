//! Idle cost (section 4 of the report): what connected but silent clients cost, as workerd counts
//! it.

use super::report::{heading, table};
use super::{fresh_airport, progress};
use crate::Args;
use crate::client::{CONTROLLER_KEYS, OTHER_KEYS, open, spawn_answerer};
use crate::meter::{CpuWindow, get_json};
use std::cell::Cell;
use std::fmt::Write as _;
use std::rc::Rc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

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
    let hb: Vec<u64> = heartbeats.iter().map(|c| c.get()).collect();
    let (hb_min, hb_max) = (
        hb.iter().min().copied().unwrap_or(0),
        hb.iter().max().copied().unwrap_or(0),
    );
    let mut out = heading(format_args!(
        "4. Idle cost: 1 airport, {} connected sockets that only answer heartbeats, {secs:.0} s",
        args.sockets
    ));
    table(
        &mut out,
        &[
            "what (seen by workerd)",
            &format!("in {secs:.0} s"),
            "per hour",
        ],
    );
    let invocations = [
        (
            "object constructions (`airport_loaded`: woken from hibernation)",
            count("airport_loaded"),
        ),
        ("alarm invocations", count("tail_alarm")),
        (
            "WebSocket message invocations (the HEARTBEAT_ACKs)",
            count("tail_ws_message"),
        ),
        ("fetch invocations", count("tail_fetch")),
    ];
    for (what, n) in invocations {
        let _ = writeln!(out, "| {what} | {n} | {:.0} |", per_hour(n));
    }
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
