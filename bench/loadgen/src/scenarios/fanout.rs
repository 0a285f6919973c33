//! Fan-out latency (section 1 of the report): one controller sends STATE_UPDATEs at 20/s, N others
//! receive them.

use super::report::{cpu_cells, heading, latency_cells, ms, ratio, table};
use super::runs::alternating;
use super::{Target, drain, fresh_airport, open_controller, progress};
use crate::Args;
use crate::client::{Kind, OTHER_KEYS, Shared, close_all, open_many, spawn_reader, spawn_sender};
use crate::meter::{CpuUse, CpuWindow, Percentiles, percentiles, settle};
use std::fmt::Write as _;
use std::rc::Rc;
use std::time::Duration;

pub(super) struct Fanout {
    pub(super) sent: u64,
    pub(super) expected: u64,
    pub(super) received: u64,
    rate: f64,
    pub(super) p: Percentiles,
    pub(super) cpu: CpuUse,
}

async fn fanout(t: &Target, n: usize, secs: f64) -> Result<Fanout, String> {
    let (f, ()) = fanout_during(t, n, secs, async |_, _, _| ()).await?;
    Ok(f)
}

/// A fan-out to `n` others at a fresh airport while `during(airport, start, end)` runs beside
/// the controller's changes (another load at the same airport): the fan-out and what `during`
/// returned.
pub(super) async fn fanout_during<T>(
    t: &Target,
    n: usize,
    secs: f64,
    during: impl AsyncFnOnce(&str, tokio::time::Instant, tokio::time::Instant) -> T,
) -> Result<(Fanout, T), String> {
    let airport = fresh_airport();
    let rec: Shared = Rc::default();
    let opened = open_many(&t.url, &airport, n, 50, |i| OTHER_KEYS[i % 3]).await?;
    let (mut sinks, mut readers) = (Vec::new(), Vec::new());
    for o in opened {
        readers.push(spawn_reader(o.stream, rec.clone()));
        sinks.push(o.sink);
    }
    let controller = open_controller(t, &airport).await?;
    readers.push(spawn_reader(controller.stream, rec.clone()));
    tokio::time::sleep(Duration::from_millis(300)).await;
    settle(t.pid).await;
    let step = 1;
    rec.borrow_mut().begin(step);
    let cpu = CpuWindow::start(t.pid);
    let start = tokio::time::Instant::now() + Duration::from_millis(10);
    let end = start + Duration::from_secs_f64(secs);
    let sender = spawn_sender(
        controller.sink,
        Kind::Single,
        step,
        Duration::from_millis(50),
        start,
        end,
    );
    let (sender, beside) = tokio::join!(sender, during(&airport, start, end));
    let (sink, sent) = sender.map_err(|e| e.to_string())?;
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
    let f = Fanout {
        sent,
        expected,
        received,
        rate: received as f64 / window,
        p: percentiles(&mut lat),
        cpu,
    };
    Ok((f, beside))
}

pub(super) async fn section(args: &Args) -> Result<(), String> {
    let secs = if args.quick { 3.0 } else { args.fanout_seconds };
    let mut rows: Vec<(usize, Vec<Fanout>)> = Vec::new();
    for &n in &args.fanout_n {
        // One run per target, in the targets' order.
        let per = alternating(&args.targets, 1, async |t| {
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
            Ok(f)
        })
        .await?;
        rows.push((n, per.into_iter().flatten().collect()));
    }
    let mut out = heading(format_args!(
        "1. Fan-out latency (1 controller → N others, STATE_UPDATE at 20/s for {secs} s)"
    ));
    table(
        &mut out,
        &[
            "N",
            "target",
            "sent",
            "received / expected",
            "receive rate (/s)",
            "p50 ms",
            "p99 ms",
            "max ms",
            "generator CPU",
            "server CPU",
        ],
    );
    for (n, per) in &rows {
        for (t, f) in args.targets.iter().zip(per) {
            let _ = writeln!(
                out,
                "| {n} | {} | {} | {} / {} | {:.0} | {} | {} |",
                t.name,
                f.sent,
                f.received,
                f.expected,
                f.rate,
                latency_cells(&f.p),
                cpu_cells(&f.cpu)
            );
        }
    }
    if args.targets.len() >= 2 {
        let (a, b) = (&args.targets[0].name, &args.targets[1].name);
        let _ = writeln!(
            out,
            "\nRatios {a} / {b} (target: p99 at N = 500 within 1.25×)\n"
        );
        table(&mut out, &["N", "p50", "p99", "max", "receive rate"]);
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
