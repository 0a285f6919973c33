//! Writing an airport's metrics windows to Workers Analytics Engine (the `METRICS` binding).
//! A window is written by a timer rather than an alarm: no storage call, and the timer fires
//! before the object can hibernate (`QUIET_MS` is below the ten idle seconds it waits). The
//! write itself is fire-and-forget: `writeDataPoint` returns at once.

use crate::log_event;
use crate::now_ms as now;
use airport_protocol::metrics::{DataPoint, Tick};
use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::Duration;
use worker::{AnalyticsEngineDataPointBuilder, Delay, Env};

const BINDING: &str = "METRICS";

/// Writes the points; without a `METRICS` binding (a local run without one) nothing is written.
pub fn write(env: &Env, points: &[DataPoint]) {
    let Ok(dataset) = env.analytics_engine(BINDING) else {
        return;
    };
    for point in points {
        let written = AnalyticsEngineDataPointBuilder::new()
            .indexes([point.index.as_str()])
            .blobs(point.blobs.iter().map(String::as_str))
            .doubles(point.doubles.iter().copied())
            .write_to(&dataset);
        if let Err(error) = written {
            log_event::failure("metrics_failed", error);
            return;
        }
    }
}

/// The one pending metrics timer of an airport.
#[derive(Default)]
pub struct MetricsTimer {
    pending: Rc<Cell<bool>>,
}

impl MetricsTimer {
    /// Looks at the window of what `cell` holds (`tick`): writes it if it is due, or else
    /// waits for it unless a timer is waiting already.
    pub fn arm<T: 'static>(
        &self,
        env: &Env,
        cell: &Rc<RefCell<Option<T>>>,
        tick: fn(&mut T, i64) -> Tick,
    ) {
        // Most events find a timer waiting: it will look when it fires.
        if self.pending.get() {
            return;
        }
        let look = {
            let (env, cell) = (env.clone(), Rc::clone(cell));
            move || match cell.borrow_mut().as_mut().map(|held| tick(held, now())) {
                Some(Tick::Write(points)) => {
                    write(&env, &points);
                    None
                }
                Some(Tick::Later(due)) => Some(due),
                Some(Tick::Idle) | None => None,
            }
        };
        let Some(mut due) = look() else {
            return;
        };
        self.pending.set(true);
        let pending = Rc::clone(&self.pending);
        wasm_bindgen_futures::spawn_local(async move {
            loop {
                Delay::from(Duration::from_millis((due - now()).max(0) as u64)).await;
                match look() {
                    Some(later) => due = later,
                    None => break,
                }
            }
            pending.set(false);
        });
    }
}
