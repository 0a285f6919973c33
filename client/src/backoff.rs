//! When to try again: exponential back-off with full jitter. The n-th retry waits a random
//! time between zero and `min(max, initial × factor^n)`, so that the sockets a deploy dropped
//! all at once come back spread out; after a connection has stayed up for `stable_after`, the
//! count starts over.

use std::time::Duration;

#[derive(Debug, Clone, PartialEq)]
pub struct Backoff {
    pub initial: Duration,
    pub factor: f64,
    pub max: Duration,
    /// A connection that lasted this long resets the count.
    pub stable_after: Duration,
    /// Retries since the last stable connection.
    attempt: u32,
}

impl Default for Backoff {
    /// 1 s × 1.5ⁿ up to 30 s, reset after a minute: docs/protocol.md §9.
    fn default() -> Self {
        Backoff {
            initial: Duration::from_secs(1),
            factor: 1.5,
            max: Duration::from_secs(30),
            stable_after: Duration::from_secs(60),
            attempt: 0,
        }
    }
}

impl Backoff {
    /// The wait before the next attempt, with `random` uniform in [0, 1), never shorter than
    /// `at_least` (what the close or rejection asks for).
    pub fn next_delay(&mut self, random: f64, at_least: Duration) -> Duration {
        let ceiling = self.ceiling();
        self.attempt = self.attempt.saturating_add(1);
        ceiling.mul_f64(random.clamp(0.0, 1.0)).max(at_least)
    }

    /// The upper bound of the next wait.
    pub fn ceiling(&self) -> Duration {
        let grown = self.initial.as_secs_f64() * self.factor.powi(self.attempt.min(64) as i32);
        Duration::from_secs_f64(grown.min(self.max.as_secs_f64()))
    }

    /// A connection ended after being up for `up`: long enough, and the count starts over.
    pub fn connection_lasted(&mut self, up: Duration) {
        if up >= self.stable_after {
            self.attempt = 0;
        }
    }

    pub fn attempt(&self) -> u32 {
        self.attempt
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NONE: Duration = Duration::ZERO;

    #[test]
    fn ceilings_grow_by_the_factor_up_to_the_max() {
        let mut backoff = Backoff::default();
        let ceilings: Vec<u64> = (0..12)
            .map(|_| {
                let ceiling = backoff.ceiling().as_millis() as u64;
                backoff.next_delay(0.5, NONE);
                ceiling
            })
            .collect();
        assert_eq!(
            ceilings,
            [
                1000, 1500, 2250, 3375, 5062, 7593, 11390, 17085, 25628, 30000, 30000, 30000
            ]
        );
    }

    #[test]
    fn full_jitter_spans_zero_to_the_ceiling() {
        let mut low = Backoff::default();
        let mut high = Backoff::default();
        for _ in 0..3 {
            low.next_delay(0.0, NONE);
            high.next_delay(0.0, NONE);
        }
        assert_eq!(low.next_delay(0.0, NONE), Duration::ZERO);
        let top = high.next_delay(0.999_999, NONE);
        assert!(top > Duration::from_millis(3374) && top <= Duration::from_millis(3375));
    }

    #[test]
    fn a_floor_from_the_close_wins_over_a_short_jitter() {
        let mut backoff = Backoff::default();
        assert_eq!(
            backoff.next_delay(0.1, Duration::from_secs(5)),
            Duration::from_secs(5)
        );
    }

    #[test]
    fn a_stable_connection_starts_the_count_over_a_short_one_does_not() {
        let mut backoff = Backoff::default();
        for _ in 0..5 {
            backoff.next_delay(0.5, NONE);
        }
        backoff.connection_lasted(Duration::from_secs(59));
        assert_eq!(backoff.attempt(), 5);
        backoff.connection_lasted(Duration::from_secs(60));
        assert_eq!(backoff.attempt(), 0);
        assert_eq!(backoff.ceiling(), Duration::from_secs(1));
    }

    #[test]
    fn a_long_outage_never_overflows() {
        let mut backoff = Backoff::default();
        for _ in 0..10_000 {
            assert!(backoff.next_delay(0.999, NONE) <= Duration::from_secs(30));
        }
    }
}
