//! One socket floods its airport: a controller sends 10,000 or 30,000 frames back to back,
//! HEARTBEATs (questions) or unreadable `{` (refused frames), each of which has its own budget
//! in the service, while another controller changes an object every 10 ms and an observer at
//! the same airport times each change's arrival: what a bystander sees of someone else's flood.
//! The floor has no limits: it forwards every frame of the flood to the other two sockets.

use super::report::{cpu_cells, heading, latency_cells, list, ms, ratio, table};
use super::runs::{alternating, medians};
use super::{Target, drain, fresh_airport, open_controller, progress};
use crate::Args;
use crate::client::{
    CONTROLLER_KEYS, Kind, OTHER_KEYS, Shared, close_all, open, spawn_reader, spawn_sender,
};
use crate::meter::{CpuUse, CpuWindow, Percentiles, percentiles, settle};
use futures_util::{SinkExt, StreamExt};
use std::fmt::Write as _;
use std::rc::Rc;
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::Message;

/// The bystander's changes: one every 10 ms for this long from the flood's start.
const WINDOW_S: f64 = 5.0;
const CHANGE_EVERY: Duration = Duration::from_millis(10);

#[derive(Clone, Copy)]
enum Frames {
    Heartbeats,
    Unreadable,
}

impl Frames {
    fn text(self) -> &'static str {
        match self {
            Frames::Heartbeats => "{\"type\":\"HEARTBEAT\"}",
            Frames::Unreadable => "{",
        }
    }

    fn name(self) -> &'static str {
        match self {
            Frames::Heartbeats => "HEARTBEAT",
            Frames::Unreadable => "`{`",
        }
    }
}

struct Flood {
    /// The bystander's changes: sent, and arrived at the observer.
    changes: u64,
    received: u64,
    p: Percentiles,
    /// Flood frames written before the socket was closed (or all of them).
    written: u64,
    /// The flooder's close code and when it came, from the flood's start.
    close: Option<(u16, f64)>,
    /// Flood frames forwarded to the observer (the floor forwards them).
    forwarded: u64,
    /// The observer and the writer: sockets closed during the run.
    others_closed: u64,
    /// ERROR packets the writer got (changes refused) and the observer got.
    errors: (u64, u64),
    cpu: CpuUse,
}

/// Reads the flooder's socket until it closes: its close code and when, from `t0`.
fn spawn_close_watch(
    mut stream: crate::client::Stream,
    t0: Rc<std::cell::Cell<Option<Instant>>>,
) -> tokio::task::JoinHandle<Option<(u16, f64)>> {
    tokio::task::spawn_local(async move {
        while let Some(message) = stream.next().await {
            match message {
                Ok(Message::Close(frame)) => {
                    let since = t0
                        .get()
                        .map_or(f64::NAN, |t| t.elapsed().as_secs_f64() * 1e3);
                    return frame.map(|f| (u16::from(f.code), since));
                }
                Err(_) => return None,
                Ok(_) => {}
            }
        }
        None
    })
}

async fn flood(t: &Target, frames: Frames, count: usize, secs: f64) -> Result<Flood, String> {
    let airport = fresh_airport();
    let limit = Duration::from_secs(30);
    let observed: Shared = Rc::default();
    let writers: Shared = Rc::default();
    let observer = open(&t.url, &airport, OTHER_KEYS[2], limit).await?;
    let observer_reader = spawn_reader(observer.stream, observed.clone());
    let writer = open(&t.url, &airport, CONTROLLER_KEYS[1], limit).await?;
    let writer_reader = spawn_reader(writer.stream, writers.clone());
    let flooder = open_controller(t, &airport).await?;
    let flood_start = Rc::new(std::cell::Cell::new(None));
    let watch = spawn_close_watch(flooder.stream, flood_start.clone());
    tokio::time::sleep(Duration::from_millis(300)).await;
    settle(t.pid).await;
    let step = 1;
    observed.borrow_mut().begin(step);
    writers.borrow_mut().begin(step);
    let cpu = CpuWindow::start(t.pid);
    let start = tokio::time::Instant::now() + Duration::from_millis(10);
    let end = start + Duration::from_secs_f64(secs);
    let changes = spawn_sender(writer.sink, Kind::Single, step, CHANGE_EVERY, start, end);
    tokio::time::sleep_until(start).await;
    flood_start.set(Some(Instant::now()));
    let text = frames.text();
    let mut sink = flooder.sink;
    let flooding = tokio::task::spawn_local(async move {
        let mut written = 0u64;
        // Bounded: `count` frames, flushed every 256.
        for _ in 0..count {
            if sink.feed(Message::Text(text.into())).await.is_err() {
                break;
            }
            written += 1;
            if written.is_multiple_of(256) && sink.flush().await.is_err() {
                break;
            }
        }
        let _ = sink.flush().await;
        (sink, written)
    });
    let (writer_sink, sent) = changes.await.map_err(|e| e.to_string())?;
    drain(&observed, |_| sent).await;
    let cpu = cpu.stop();
    let (flooder_sink, written) = tokio::time::timeout(Duration::from_secs(30), flooding)
        .await
        .map_err(|_| "the flood did not end within 30 s".to_string())?
        .map_err(|e| e.to_string())?;
    let close = if watch.is_finished() {
        watch.await.ok().flatten()
    } else {
        watch.abort();
        None
    };
    let (mut lat, received, forwarded, closed) = {
        let mut r = observed.borrow_mut();
        (
            std::mem::take(&mut r.lat_us),
            r.received,
            r.heartbeats + r.other,
            r.closed,
        )
    };
    let others_closed = closed + writers.borrow().closed;
    let errors = (writers.borrow().errors, observed.borrow().errors);
    close_all(
        vec![writer_sink, flooder_sink],
        vec![observer_reader, writer_reader],
    )
    .await;
    settle(t.pid).await;
    Ok(Flood {
        changes: sent,
        received,
        p: percentiles(&mut lat),
        written,
        close,
        forwarded,
        others_closed,
        errors,
        cpu,
    })
}

pub(super) async fn section(args: &Args) -> Result<(), String> {
    let secs = if args.quick { 2.0 } else { WINDOW_S };
    let repeats = if args.quick { 1 } else { args.repeats };
    let counts: &[usize] = if args.quick {
        &[10_000]
    } else {
        &[10_000, 30_000]
    };
    let mut rows = Vec::new();
    for frames in [Frames::Heartbeats, Frames::Unreadable] {
        for &count in counts {
            let all = alternating(&args.targets, repeats, async |t| {
                progress(&format!(
                    "flood: {count} {} on {}, a change every 10 ms for {secs} s",
                    frames.name(),
                    t.name
                ));
                let f = flood(t, frames, count, secs).await?;
                progress(&format!(
                    "  p50 {} p99 {} max {} ms, {}/{} changes, flooder {:?}, ERRORs to the writer and the observer {:?}",
                    ms(f.p.p50),
                    ms(f.p.p99),
                    ms(f.p.max),
                    f.received,
                    f.changes,
                    f.close,
                    f.errors
                ));
                Ok(f)
            })
            .await?;
            rows.push((frames, count, all));
        }
    }
    let mut out = heading(format_args!(
        "Flood: one controller sends N frames back to back; another changes an object every 10 ms for {secs} s and an observer times each change"
    ));
    let _ = writeln!(
        out,
        "Median of {repeats} runs per row by p99, alternating between targets. The floor has no limits: it forwards every flood frame to the two others.\n"
    );
    table(
        &mut out,
        &[
            "flood",
            "target",
            "changes received / sent",
            "p50 ms",
            "p99 ms",
            "max ms",
            "every p99, ms",
            "flood frames written",
            "flooder closed (code, after ms)",
            "flood frames reaching the observer",
            "others closed",
            "generator CPU",
            "server CPU",
        ],
    );
    let mut ratios = Vec::new();
    for (frames, count, all) in &rows {
        let (every, median) = medians(all, |f: &Flood| f.p.p99);
        for ((t, f), every) in args.targets.iter().zip(&median).zip(&every) {
            let _ = writeln!(
                out,
                "| {count} {} | {} | {} / {} | {} | {} | {} | {} | {} | {} | {} |",
                frames.name(),
                t.name,
                f.received,
                f.changes,
                latency_cells(&f.p),
                list(every),
                f.written,
                f.close
                    .map_or("no".into(), |(code, at)| format!("{code}, {}", ms(at))),
                f.forwarded,
                f.others_closed,
                cpu_cells(&f.cpu)
            );
        }
        if median.len() >= 2 {
            ratios.push((
                format!("{count} {}", frames.name()),
                median[0].p.p99,
                median[1].p.p99,
            ));
        }
    }
    if !ratios.is_empty() {
        let (a, b) = (&args.targets[0].name, &args.targets[1].name);
        let _ = writeln!(out, "\nThe bystander's p99 (target ≤ 250 ms):\n");
        table(&mut out, &["flood", a, b, &format!("{a} / {b}")]);
        for (case, x, y) in &ratios {
            let _ = writeln!(
                out,
                "| {case} | {}{} | {} | {} |",
                ms(*x),
                if *x <= 250.0 { " ✓" } else { " ✗" },
                ms(*y),
                ratio(*x, *y)
            );
        }
    }
    println!("{out}");
    Ok(())
}
