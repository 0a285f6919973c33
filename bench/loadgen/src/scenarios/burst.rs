//! Profile-change burst (section 5 of the report): thousands of STATE_UPDATEs back to back to N
//! watchers.

use super::report::{cpu_cells, heading, list, ms, ratio, table};
use super::runs::{alternating, medians};
use super::{Target, fresh_airport, open_controller, progress};
use crate::Args;
use crate::client::{
    CONTROLLER_KEYS, OTHER_KEYS, Opened, Shared, Sink, close_all, heartbeat_ack, is_heartbeat,
    open_many, spawn_reader,
};
use crate::meter::{CpuUse, CpuWindow, Percentiles, percentiles, settle};
use futures_util::{SinkExt, StreamExt};
use std::fmt::Write as _;
use std::rc::Rc;
use std::time::{Duration, Instant};
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message;

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
    let controller = open_controller(t, &airport).await?;
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

pub(super) async fn section(args: &Args) -> Result<(), String> {
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
    let mut out = heading(format_args!(
        "5. Profile-change burst (1 controller writes {BURST_FRAMES} STATE_UPDATEs back to back; N others watch, {BURST_CONTROLLERS} of them controllers; median of {repeats} runs per target, alternating)"
    ));
    table(
        &mut out,
        &[
            "N",
            "target",
            "every socket had the last change after ms (median)",
            "every run, ms",
            "per socket p50 ms",
            "p99 ms",
            "frames written after ms",
            "packets per socket",
            "changes at the socket with fewest",
            "failed runs",
            "ERRORs to the sender",
            "generator CPU",
            "server CPU",
        ],
    );
    let mut median_rows: Vec<(usize, Vec<&Burst>)> = Vec::new();
    for (n, all) in &rows {
        let (totals, row) = medians(all, |b: &Burst| b.total_ms);
        for ((t, runs), (b, totals)) in args.targets.iter().zip(all).zip(row.iter().zip(&totals)) {
            let failed: Vec<&String> = runs.iter().filter_map(|b| b.failure.as_ref()).collect();
            let _ = writeln!(
                out,
                "| {n} | {} | {} | {} | {} | {} | {} | {:.0} | {} | {}{} | {} | {} |",
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
                cpu_cells(&b.cpu)
            );
        }
        median_rows.push((*n, row));
    }
    if args.targets.len() >= 2 {
        let (a, b) = (&args.targets[0].name, &args.targets[1].name);
        let _ = writeln!(out, "\nRatios {a} / {b}:\n");
        table(
            &mut out,
            &[
                "N",
                "every socket had the last change (target ≤ 1.5×)",
                "per socket p50",
                "p99",
            ],
        );
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
