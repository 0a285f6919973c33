//! Airport throughput (section 2 of the report): the highest rate of changes one airport sustains,
//! found by doubling then bisection.

use super::report::{cpu_cells, heading, latency_cells, list, ms, pct, ratio, table};
use super::runs::{alternating, medians};
use super::{Target, drain, fresh_airport, progress};
use crate::Args;
use crate::client::{
    CONTROLLER_KEYS, Kind, Shared, close_all, open_many, spawn_reader, spawn_sender,
};
use crate::meter::{CpuUse, CpuWindow, Percentiles, percentiles, settle};
use std::cell::Cell;
use std::fmt::Write as _;
use std::rc::Rc;
use std::time::Duration;
use tokio::task::JoinHandle;

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

pub(super) async fn section(args: &Args, kind: Kind) -> Result<(), String> {
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
    let mut out = heading(format_args!(
        "2. Airport throughput: {} ({TP_SOCKETS} sockets, each frame broadcast to the other {}; steps of {secs} s; median of {repeats} searches per target, alternating)",
        kind.label(),
        TP_SOCKETS - 1
    ));
    table(
        &mut out,
        &[
            "target",
            "highest sustained accepted /s (median)",
            "every search",
            "p50 ms",
            "p99 ms",
            "max ms",
            "deliveries /s",
            "generator CPU",
            "server CPU",
            "first failing step",
        ],
    );
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
                    "| {} | {}{:.0} | {} | {} | {:.0} | {} | {} |",
                    t.name,
                    if s.ceiling_reached { "≥ " } else { "" },
                    x.accepted_rate,
                    list(every),
                    latency_cells(&x.p),
                    x.received as f64 / secs,
                    cpu_cells(&x.cpu),
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
    table(
        &mut out,
        &[
            "target",
            "offered /s",
            "senders",
            "sent",
            "accepted /s",
            "delivered / expected",
            "p50 ms",
            "p99 ms",
            "max ms",
            "gen CPU",
            "server CPU",
            "result",
        ],
    );
    for (t, s) in args
        .targets
        .iter()
        .zip(&all)
        .flat_map(|(t, all)| all.iter().map(move |s| (t, s)))
    {
        for x in &s.steps {
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {:.0} | {} / {} | {} | {} | {} |",
                t.name,
                x.rate,
                x.senders,
                x.sent,
                x.accepted_rate,
                x.received,
                x.expected,
                latency_cells(&x.p),
                cpu_cells(&x.cpu),
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
