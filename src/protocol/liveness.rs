//! Liveness deadlines: heartbeats, idle closes and the offline clearing all run from one alarm,
//! set to whichever is due first.

use super::config::Timings;

/// When a socket last heard from at `last_seen` is to be closed as idle.
pub fn idle_deadline(last_seen: i64, timings: &Timings) -> i64 {
    last_seen.saturating_add(timings.idle_timeout_ms)
}

pub fn is_idle(last_seen: i64, now: i64, timings: &Timings) -> bool {
    idle_deadline(last_seen, timings) <= now
}

/// The airport-wide heartbeat schedule after an alarm at `now`: whether heartbeats go out now,
/// and when the next ones are due. Without sockets there is nothing to schedule.
pub fn heartbeat_plan(
    next_heartbeat: Option<i64>,
    has_sockets: bool,
    now: i64,
    timings: &Timings,
) -> (bool, Option<i64>) {
    if !has_sockets {
        return (false, None);
    }
    match next_heartbeat {
        Some(due) if due > now => (false, Some(due)),
        Some(_) => (true, Some(now + timings.heartbeat_interval_ms)),
        None => (false, Some(now + timings.heartbeat_interval_ms)),
    }
}

/// The one alarm time: the earliest of the next heartbeat, the earliest idle deadline and the
/// offline clearing.
pub fn next_alarm(
    next_heartbeat: Option<i64>,
    oldest_last_seen: Option<i64>,
    offline_clear_due: Option<i64>,
    timings: &Timings,
) -> Option<i64> {
    [
        next_heartbeat,
        oldest_last_seen.map(|seen| idle_deadline(seen, timings)),
        offline_clear_due,
    ]
    .into_iter()
    .flatten()
    .min()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_alarm_is_the_earliest_deadline() {
        let t = Timings::default();
        assert_eq!(next_alarm(None, None, None, &t), None);
        assert_eq!(next_alarm(Some(60_000), Some(0), None, &t), Some(60_000));
        assert_eq!(
            next_alarm(Some(60_000), Some(-20_000), None, &t),
            Some(50_000)
        );
        assert_eq!(next_alarm(None, None, Some(5), &t), Some(5));
    }

    #[test]
    fn heartbeats_follow_their_interval() {
        let t = Timings::default();
        assert_eq!(heartbeat_plan(None, false, 0, &t), (false, None));
        assert_eq!(heartbeat_plan(Some(10), false, 20, &t), (false, None));
        assert_eq!(heartbeat_plan(None, true, 5, &t), (false, Some(60_005)));
        assert_eq!(heartbeat_plan(Some(100), true, 50, &t), (false, Some(100)));
        assert_eq!(
            heartbeat_plan(Some(100), true, 100, &t),
            (true, Some(60_100))
        );
    }

    #[test]
    fn idleness() {
        let t = Timings::default();
        assert!(!is_idle(0, 69_999, &t));
        assert!(is_idle(0, 70_000, &t));
    }
}
