//! Snapshot polling: pilots connecting to a large airport, then polling GET_STATE.

use super::report::{heading, ms, table};
use super::runs::{alternating, medians};
use super::{Target, fresh_airport, open_controller, populate_with, progress};
use crate::Args;
use crate::client::{OTHER_KEYS, open_many};
use crate::meter::{CpuWindow, settle};
use futures_util::{SinkExt, StreamExt};
use std::cell::Cell;
use std::fmt::Write as _;
use std::rc::Rc;
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::Message;

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
    let mut controller = open_controller(t, &airport).await?;
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

pub(super) async fn section(args: &Args) -> Result<(), String> {
    let secs = if args.quick { 6.0 } else { 30.0 };
    let mut out = heading(format_args!(
        "Snapshots: 300 pilots connecting to an airport, then polling GET_STATE every 3 s for {secs} s (server CPU per answer)"
    ));
    table(
        &mut out,
        &[
            "objects",
            "target",
            "CPU ms per connect",
            "GET_STATE answered",
            "CPU ms per GET_STATE",
            "STATE_SNAPSHOT bytes",
        ],
    );
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
