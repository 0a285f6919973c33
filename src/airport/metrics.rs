//! Writing an airport's metrics windows to Workers Analytics Engine (the `METRICS` binding).
//! A window is written at the end of an event once it is due; the room's `next_wake` includes
//! that time, so a quiet airport's alarm comes for it before the object hibernates. No timer of
//! its own: a pending timer would keep the object from hibernating, and bill it. The write is
//! fire-and-forget: `writeDataPoint` returns at once.

use crate::log_event;
use airport_protocol::metrics::DataPoint;
use worker::{AnalyticsEngineDataPointBuilder, Env};

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
