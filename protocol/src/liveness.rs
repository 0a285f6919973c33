//! Liveness deadlines: heartbeats, idle closes, re-checks of live sessions and the offline
//! clearing all run from one alarm, set to whichever is due first.

use super::config::Timings;
use std::collections::{BTreeSet, HashMap};

/// A socket's stored "last heard" time is refreshed at most this often, to spare a write per
/// packet. Read back after a wake-up it may be this much behind; treating it as this much later
/// means a socket is never closed early, at worst this much late.
pub const STORE_LAST_SEEN_EVERY_MS: i64 = 1_000;

/// After an alarm that failed (its writes did not hold), the next one: the deadlines it was
/// for are recomputed from what is durable.
pub const ALARM_RETRY_MS: i64 = 1_000;

/// Whether a socket's stored last-heard time is stale enough to be written again.
pub fn should_store_last_seen(stored: i64, now: i64) -> bool {
    now - stored >= STORE_LAST_SEEN_EVERY_MS
}

/// The last-heard time to assume for a socket known only from storage.
pub fn restored_last_seen(stored: i64) -> i64 {
    stored.saturating_add(STORE_LAST_SEEN_EVERY_MS)
}

/// When each open socket was last heard from, exactly, while the object is in memory; ordered
/// so that the oldest is found at once.
#[derive(Debug, Clone, Default)]
pub struct Clock {
    by_socket: HashMap<u64, i64>,
    order: BTreeSet<(i64, u64)>,
}

impl Clock {
    pub fn heard(&mut self, socket: u64, at: i64) {
        if let Some(previous) = self.by_socket.insert(socket, at) {
            self.order.remove(&(previous, socket));
        }
        self.order.insert((at, socket));
    }

    pub fn forget(&mut self, socket: u64) {
        if let Some(previous) = self.by_socket.remove(&socket) {
            self.order.remove(&(previous, socket));
        }
    }

    pub fn last_heard(&self, socket: u64) -> Option<i64> {
        self.by_socket.get(&socket).copied()
    }

    /// The longest-silent socket's last-heard time.
    pub fn oldest(&self) -> Option<i64> {
        self.order.first().map(|(at, _)| *at)
    }
}

/// When the airport-wide periodic work is next due. Both are `None` while no socket is open.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Schedule {
    pub heartbeat: Option<i64>,
    pub recheck: Option<i64>,
}

impl Schedule {
    /// A socket opened: start whatever is not running yet. Returns whether anything changed.
    pub fn start(&mut self, now: i64, timings: &Timings, recheck_ms: i64) -> bool {
        let before = *self;
        self.heartbeat
            .get_or_insert(now + timings.heartbeat_interval_ms);
        self.recheck.get_or_insert(now + recheck_ms);
        *self != before
    }
}

/// When a socket last heard from at `last_seen` is to be closed as idle.
pub fn idle_deadline(last_seen: i64, timings: &Timings) -> i64 {
    last_seen.saturating_add(timings.idle_timeout_ms)
}

pub fn is_idle(last_seen: i64, now: i64, timings: &Timings) -> bool {
    idle_deadline(last_seen, timings) <= now
}

/// Periodic work after an alarm at `now`: whether it runs now, and when it is next due.
/// Without sockets there is nothing to schedule.
pub fn periodic_plan(
    next: Option<i64>,
    has_sockets: bool,
    now: i64,
    interval_ms: i64,
) -> (bool, Option<i64>) {
    if !has_sockets {
        return (false, None);
    }
    match next {
        Some(due) if due > now => (false, Some(due)),
        Some(_) => (true, Some(now + interval_ms)),
        None => (false, Some(now + interval_ms)),
    }
}

/// The one alarm time: the earliest of the periodic work, the earliest idle deadline and the
/// offline clearing.
pub fn next_alarm(
    schedule: Schedule,
    oldest_last_seen: Option<i64>,
    offline_clear_due: Option<i64>,
    timings: &Timings,
) -> Option<i64> {
    [
        schedule.heartbeat,
        schedule.recheck,
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

    fn at(heartbeat: Option<i64>, recheck: Option<i64>) -> Schedule {
        Schedule { heartbeat, recheck }
    }

    #[test]
    fn the_alarm_is_the_earliest_deadline() {
        let t = Timings::default();
        assert_eq!(next_alarm(at(None, None), None, None, &t), None);
        assert_eq!(
            next_alarm(at(Some(60_000), None), Some(0), None, &t),
            Some(60_000)
        );
        assert_eq!(
            next_alarm(at(Some(60_000), Some(200)), Some(0), None, &t),
            Some(200)
        );
        assert_eq!(
            next_alarm(at(Some(60_000), None), Some(-20_000), None, &t),
            Some(50_000)
        );
        assert_eq!(next_alarm(at(None, None), None, Some(5), &t), Some(5));
    }

    #[test]
    fn periodic_work_follows_its_interval() {
        assert_eq!(periodic_plan(None, false, 0, 60), (false, None));
        assert_eq!(periodic_plan(Some(10), false, 20, 60), (false, None));
        assert_eq!(periodic_plan(None, true, 5, 60), (false, Some(65)));
        assert_eq!(periodic_plan(Some(100), true, 50, 60), (false, Some(100)));
        assert_eq!(periodic_plan(Some(100), true, 100, 60), (true, Some(160)));
    }

    #[test]
    fn starting_a_schedule_keeps_what_runs() {
        let t = Timings::default();
        let mut s = Schedule::default();
        assert!(s.start(0, &t, 120_000));
        assert_eq!(s, at(Some(60_000), Some(120_000)));
        assert!(!s.start(10, &t, 120_000));
    }

    #[test]
    fn the_clock_tracks_the_oldest_socket() {
        let mut clock = Clock::default();
        assert_eq!(clock.oldest(), None);
        clock.heard(1, 10);
        clock.heard(2, 5);
        clock.heard(3, 7);
        assert_eq!(clock.oldest(), Some(5));
        clock.heard(2, 20);
        assert_eq!(clock.oldest(), Some(7));
        clock.forget(3);
        assert_eq!(clock.oldest(), Some(10));
        assert_eq!(clock.last_heard(2), Some(20));
        clock.forget(1);
        clock.forget(2);
        assert_eq!(clock.oldest(), None);
    }

    #[test]
    fn stored_times_are_never_read_as_earlier_than_they_were() {
        assert!(!should_store_last_seen(1_000, 1_999));
        assert!(should_store_last_seen(1_000, 2_000));
        // Heard at 1,999 but stored 1,000: read back as 2,000, never before the truth.
        assert!(restored_last_seen(1_000) >= 1_999);
    }

    /// The EuroScope plugin sends nothing but a `HEARTBEAT_ACK` to each server `HEARTBEAT`:
    /// simulated over an hour of alarms, it is never found idle, whenever it joined and
    /// however slowly it answers within the slack between the two durations.
    #[test]
    fn a_client_that_only_answers_heartbeats_is_never_idle() {
        for (interval, idle) in [(60_000, 70_000), (1_000, 3_000), (1_000, 1_501)] {
            let t = Timings {
                heartbeat_interval_ms: interval,
                idle_timeout_ms: idle,
                ..Timings::default()
            };
            let join = 12_345;
            for first_tick in [join + 1, join + interval / 2, join + interval] {
                for answer_ms in [0, 40, idle - interval - 1] {
                    let mut schedule = at(Some(first_tick), None);
                    // Answers on their way, oldest first: one may take longer than an interval.
                    let (mut last_seen, mut acks) = (join, std::collections::VecDeque::new());
                    let mut now = join;
                    while now < join + 3_600_000 {
                        let alarm = next_alarm(schedule, Some(last_seen), None, &t).unwrap();
                        if let Some(heard) = acks.pop_front_if(|heard: &mut i64| *heard <= alarm) {
                            last_seen = heard;
                            continue;
                        }
                        now = alarm;
                        assert!(
                            !is_idle(last_seen, now, &t),
                            "idle at {now} ({interval}/{idle}, tick {first_tick}, answer {answer_ms})"
                        );
                        let (send, next) = periodic_plan(schedule.heartbeat, true, now, interval);
                        schedule.heartbeat = next;
                        if send {
                            acks.push_back(now + answer_ms);
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn idleness() {
        let t = Timings::default();
        assert!(!is_idle(0, 69_999, &t));
        assert!(is_idle(0, 70_000, &t));
    }
}
