//! Wake-up for a heartbeat: a socket at a hibernated airport sends HEARTBEAT; the time to its
//! HEARTBEAT_ACK and the server's CPU, at airports of 10,000 objects and at empty ones. Builds of
//! the service only: the floor keeps no state, so its wake-up is the same at every airport.

use super::report::{heading, ms, ratio, table};
use super::{Target, fresh_airport, open_controller, populate, progress};
use crate::Args;
use crate::client::Opened;
use crate::meter::{cpu_ns, get_json, percentiles, settle};
use futures_util::{SinkExt, StreamExt};
use std::fmt::Write as _;
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::Message;

/// Silence before the wake-ups: workerd hibernates an object about 10 s after its last event
/// (the metrics window's alarm, a few seconds after the last frame, is one).
const HIBERNATE_AFTER: Duration = Duration::from_secs(20);
/// How long after the acknowledgement the server's CPU is still counted: the event's work after
/// its sends (the directory, the alarm).
const TAIL: Duration = Duration::from_millis(100);

/// The airports of one kind, each with its controller's socket open.
struct Kind {
    name: &'static str,
    populated: bool,
    sockets: Vec<Opened>,
    lat: Vec<u32>,
    cpu_ms: Vec<f64>,
}

/// Sends HEARTBEAT on `socket` and waits for its HEARTBEAT_ACK: the round trip in µs and the
/// server's CPU ms until `TAIL` after it.
async fn wake(t: &Target, socket: &mut Opened) -> Result<(u32, f64), String> {
    let cpu = cpu_ns(t.pid);
    let t0 = Instant::now();
    let beat = "{\"type\":\"HEARTBEAT\",\"requestId\":\"wake\"}";
    (socket.sink.send(Message::Text(beat.into())).await).map_err(|e| e.to_string())?;
    let acked = async {
        while let Some(m) = socket.stream.next().await {
            match m.map_err(|e| format!("before HEARTBEAT_ACK: {e}"))? {
                Message::Text(text) if text.as_str().contains("\"requestId\":\"wake\"") => {
                    return Ok(t0.elapsed());
                }
                Message::Close(frame) => {
                    return Err(format!("closed before HEARTBEAT_ACK: {frame:?}"));
                }
                _ => {}
            }
        }
        Err("ended before HEARTBEAT_ACK".to_string())
    };
    let rtt = tokio::time::timeout(Duration::from_secs(30), acked)
        .await
        .map_err(|_| "HEARTBEAT_ACK timed out".to_string())??;
    tokio::time::sleep(TAIL).await;
    let cpu_ms = match (cpu, cpu_ns(t.pid)) {
        (Some(before), Some(after)) => after.saturating_sub(before) as f64 / 1e6,
        _ => f64::NAN,
    };
    Ok((rtt.as_micros() as u32, cpu_ms))
}

/// A counter of serve.mjs's log events.
async fn count(stats: Option<&str>, event: &str) -> Option<i64> {
    let v = get_json(stats?).await.ok()?;
    Some(v["counts"][event].as_i64().unwrap_or(0))
}

/// One target's wake-ups: its table rows and its ratios.
async fn run(t: &Target, n: usize, stats: Option<&str>) -> Result<String, String> {
    let mut kinds =
        [("10,000 objects", true), ("no objects", false)].map(|(name, populated)| Kind {
            name,
            populated,
            sockets: Vec::new(),
            lat: Vec::new(),
            cpu_ms: Vec::new(),
        });
    progress(&format!(
        "wake: {n} airports of 10,000 objects and {n} empty ones on {}",
        t.name
    ));
    for kind in &mut kinds {
        for _ in 0..n {
            let mut controller = open_controller(t, &fresh_airport()).await?;
            if kind.populated {
                populate(&mut controller).await?;
            }
            kind.sockets.push(controller);
        }
    }
    progress(&format!(
        "  waiting {} s for the objects to hibernate",
        HIBERNATE_AFTER.as_secs()
    ));
    tokio::time::sleep(HIBERNATE_AFTER).await;
    let loaded_before = count(stats, "airport_loaded").await;
    let read_before = count(stats, "objects_read").await;
    // Alternating between the kinds, one wake-up at a time.
    for i in 0..n {
        for kind in &mut kinds {
            settle(t.pid).await;
            let (lat, cpu_ms) = wake(t, &mut kind.sockets[i]).await?;
            kind.lat.push(lat);
            kind.cpu_ms.push(cpu_ms);
        }
    }
    let constructed = count(stats, "airport_loaded").await.zip(loaded_before);
    let read = count(stats, "objects_read").await.zip(read_before);
    let difference =
        |counts: Option<(i64, i64)>| counts.map_or("–".into(), |(a, b)| (a - b).to_string());
    let mut rows = String::new();
    let mut figures = Vec::new();
    for kind in &mut kinds {
        let p = percentiles(&mut kind.lat);
        let cpu = kind.cpu_ms.iter().sum::<f64>() / kind.cpu_ms.len().max(1) as f64;
        let _ = writeln!(
            rows,
            "| {} | {} | {} | {} | {} | {} |",
            t.name,
            kind.name,
            p.n,
            ms(p.p50),
            ms(p.max),
            ms(cpu)
        );
        figures.push((p.p50, cpu));
    }
    let (full, empty) = (figures[0], figures[1]);
    let _ = writeln!(
        rows,
        "| {} | 10,000 objects / none | objects constructed {}, objects' rows read {} | **{}** | | **{}** |",
        t.name,
        difference(constructed),
        difference(read),
        ratio(full.0, empty.0),
        ratio(full.1, empty.1)
    );
    for kind in kinds {
        for socket in kind.sockets {
            let mut sink = socket.sink;
            let _ = sink.close().await;
        }
    }
    settle(t.pid).await;
    Ok(rows)
}

/// Every target that is the service (or another build of it), one after the other.
pub(super) async fn section(args: &Args) -> Result<(), String> {
    let n = if args.quick { 2 } else { 12 };
    let stats = args.stats.as_deref();
    let mut rows = String::new();
    for t in args.targets.iter().filter(|t| t.stateful.get()) {
        rows.push_str(&run(t, n, stats).await?);
    }
    let mut out = heading(format_args!(
        "Wake-up for a heartbeat: a socket at a hibernated airport sends HEARTBEAT ({n} airports of each kind per target, alternating)"
    ));
    let _ = writeln!(
        out,
        "Server CPU is the workerd process's (its threads' schedstat) from the HEARTBEAT until {} ms after its HEARTBEAT_ACK, its mean over the wake-ups. The ratio rows (target ≤ 1.5×) also count the objects constructed and the reads of objects' rows (`objects_read`) during the wake-ups.\n",
        TAIL.as_millis(),
    );
    table(
        &mut out,
        &[
            "target",
            "airport",
            "wake-ups",
            "p50 ms",
            "max ms",
            "server CPU ms",
        ],
    );
    out.push_str(&rows);
    println!("{out}");
    Ok(())
}
