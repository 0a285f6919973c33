//! Idle cost (section 4 of the report): what connected but silent clients cost, as workerd counts
//! it; with `--busy`, what an airport whose clients behave as the deployed ones do costs (the
//! cost model's busy airport-hour).

use super::report::{heading, table};
use super::{fresh_airport, progress};
use crate::Args;
use crate::client::{CONTROLLER_KEYS, OTHER_KEYS, Opened, is_heartbeat, open, spawn_answerer};
use crate::meter::{CpuWindow, get_json};
use airport_protocol::metrics::AIRPORT_COLUMNS;
use futures_util::{SinkExt, StreamExt};
use std::cell::Cell;
use std::fmt::Write as _;
use std::rc::Rc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::time::sleep_until;
use tokio_tungstenite::tungstenite::Message;

/// Connected but silent clients: each only answers the server's HEARTBEAT with HEARTBEAT_ACK,
/// as a real client does (a socket that sends nothing is closed idle after 70 s). The counts come
/// from workerd itself: the tail worker sees every alarm and WebSocket event invocation, and the
/// service logs `airport_loaded` once per construction of the object. With `--busy`, socket 0 is
/// a vatSys controller and the others pilots, each sending what CLIENTS.md says it sends.
pub async fn idle(args: &Args) -> Result<(), String> {
    let t = &args.targets[0];
    let stats = args.stats.as_deref().ok_or("idle needs --stats")?;
    let secs = if args.quick { 40.0 } else { args.seconds };
    let airport = fresh_airport();
    let heartbeats: Vec<Rc<Cell<u64>>> = (0..args.sockets).map(|_| Rc::default()).collect();
    let sent: Rc<Cell<u64>> = Rc::default();
    let mut tasks = Vec::new();
    for (i, count) in heartbeats.iter().enumerate() {
        // Busy: pilots only (the first two of OTHER_KEYS); quiet: pilots and an observer.
        let key = match (i, args.busy) {
            (0, _) => CONTROLLER_KEYS[0],
            (_, true) => OTHER_KEYS[i % 2],
            (_, false) => OTHER_KEYS[i % 3],
        };
        let o = open(&t.url, &airport, key, Duration::from_secs(30)).await?;
        tasks.push(if !args.busy {
            spawn_answerer(o, count.clone())
        } else {
            // Spread over the period, as clients that connected at different times are.
            let offset = Duration::from_millis(30_000 * i as u64 / args.sockets as u64);
            let client = if i == 0 {
                Client::VatSys
            } else {
                Client::Pilot
            };
            spawn_client(o, client, &airport, offset, count.clone(), sent.clone())
        });
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    if args.busy {
        // The connects' window is written first (a busy airport's after a minute): the windows
        // written from here on counted only the run.
        let begin = Instant::now();
        while get_json(stats).await?["metrics"]
            .as_array()
            .is_none_or(Vec::is_empty)
        {
            if begin.elapsed() > Duration::from_secs(90) {
                return Err("no metrics window written in 90 s".into());
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
    let reset = get_json(&stats.replace("/stats", "/reset")).await?;
    let _ = reset;
    sent.set(0);
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
    let mut out = if args.busy {
        heading(format_args!(
            "4. Busy airport: 1 vatSys controller and {} pilots as CLIENTS.md describes them, {secs:.0} s",
            args.sockets - 1
        ))
    } else {
        heading(format_args!(
            "4. Idle cost: 1 airport, {} connected sockets that only answer heartbeats, {secs:.0} s",
            args.sockets
        ))
    };
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
        ("WebSocket message invocations", count("tail_ws_message")),
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
    if args.busy {
        let _ = writeln!(
            out,
            "| frames the clients sent | {} | {:.0} |",
            sent.get(),
            per_hour(sent.get() as f64)
        );
    }
    // The windows' sums (the `airport` points' doubles by position, in AIRPORT_COLUMNS' order).
    let metric = |name: &str| {
        AIRPORT_COLUMNS
            .iter()
            .position(|c| *c == name)
            .and_then(|i| v["metrics"][i].as_f64())
            .unwrap_or(0.0)
    };
    // Per hour by the run's length: the windows written during it hold its counts but for the
    // last, still open (the frames row checks them against what the clients sent).
    for (what, name) in [
        (
            "time awake, by the object's clock (`awake_ms`, ms)",
            "awake_ms",
        ),
        ("commits", "commits"),
        ("frames in, as the object counted them", "frames_in"),
    ] {
        let n = metric(name);
        let _ = writeln!(out, "| {what} | {n:.0} | {:.0} |", per_hour(n));
    }
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
                    "{n} WebSocket messages, the first at this time, all within the second{}",
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

/// A deployed client's behaviour (CLIENTS.md).
#[derive(Clone, Copy)]
enum Client {
    /// HEARTBEAT and GET_ONLINE_PILOTS every 30 s, and a stopbar toggle (the stopbar and its
    /// lead-on lights in one MULTI_STATE_UPDATE) every 30 s: a controller working traffic.
    VatSys,
    /// HEARTBEAT every 60 s, and GET_STATE when nothing arrived for 25 s.
    Pilot,
}

/// Runs `client` on the socket until it closes; counts the server's HEARTBEATs it saw and the
/// frames it sent.
fn spawn_client(
    o: Opened,
    client: Client,
    airport: &str,
    offset: Duration,
    heartbeats: Rc<Cell<u64>>,
    sent: Rc<Cell<u64>>,
) -> tokio::task::JoinHandle<crate::client::Sink> {
    let airport = airport.to_owned();
    tokio::task::spawn_local(async move {
        let (mut sink, mut stream) = (o.sink, o.stream);
        let start = tokio::time::Instant::now() + offset;
        let (mut next_heartbeat, mut next_toggle) = (start, start);
        let mut last_inbound = tokio::time::Instant::now();
        let mut toggles = 0u64;
        loop {
            let heartbeat_every = match client {
                Client::VatSys => Duration::from_secs(30),
                Client::Pilot => Duration::from_secs(60),
            };
            let poll_at = last_inbound + Duration::from_secs(25);
            let wake = match client {
                Client::VatSys => next_heartbeat.min(next_toggle),
                Client::Pilot => next_heartbeat.min(poll_at),
            };
            tokio::select! {
                inbound = stream.next() => match inbound {
                    Some(Ok(Message::Text(text))) => {
                        last_inbound = tokio::time::Instant::now();
                        if is_heartbeat(text.as_str()) {
                            heartbeats.set(heartbeats.get() + 1);
                        }
                    }
                    Some(Ok(_)) => last_inbound = tokio::time::Instant::now(),
                    _ => break,
                },
                _ = sleep_until(wake) => {
                    let now = tokio::time::Instant::now();
                    let mut frames = Vec::new();
                    if now >= next_heartbeat {
                        frames.push(r#"{"type":"HEARTBEAT"}"#.to_owned());
                        if let Client::VatSys = client {
                            frames.push(r#"{"type":"GET_ONLINE_PILOTS"}"#.to_owned());
                        }
                        next_heartbeat = now + heartbeat_every;
                    }
                    match client {
                        Client::VatSys if now >= next_toggle => {
                            toggles += 1;
                            let on = toggles.is_multiple_of(2);
                            frames.push(format!(
                                r#"{{"type":"MULTI_STATE_UPDATE","airport":"{airport}","data":[{{"objectId":"BARS_SB1","state":{on}}},{{"objectId":"BARS_LO1","state":{}}}]}}"#,
                                !on
                            ));
                            next_toggle = now + Duration::from_secs(30);
                        }
                        Client::Pilot if now >= poll_at => {
                            frames.push(format!(
                                r#"{{"type":"GET_STATE","airport":"{airport}","timestamp":1715000000000}}"#
                            ));
                            last_inbound = now;
                        }
                        _ => {}
                    }
                    for frame in frames {
                        if sink.send(Message::Text(frame.into())).await.is_err() {
                            return sink;
                        }
                        sent.set(sent.get() + 1);
                    }
                }
            }
        }
        sink
    })
}
