//! Per-socket packet rate limiting: a token bucket, plus a decaying count of dropped packets
//! that decides when a socket is flooding and must be closed.

use super::config::RateLimit;
use super::error::PacketError;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TokenBucket {
    tokens: f64,
    dropped: f64,
    updated_at: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Within the rate: handle the packet.
    Pass,
    /// Over the rate: answer `RATE_LIMITED` and drop the packet.
    Drop,
    /// Dropped too many: close the socket with 4008.
    Flood,
}

/// The `RATE_LIMITED` error of a packet dropped by `limit`; `per` says what costs more.
pub fn rate_limited(limit: &RateLimit, per: &str) -> PacketError {
    PacketError::RateLimited(format!(
        "at most {} at once and {} per second ({per}); this packet was dropped",
        limit.burst, limit.per_second
    ))
}

impl TokenBucket {
    pub fn full(limit: &RateLimit, now: i64) -> Self {
        TokenBucket {
            tokens: limit.burst,
            dropped: 0.0,
            updated_at: now,
        }
    }

    /// Whether the packets dropped lately make a flood (the last `take` said `Flood`).
    pub fn flooding(&self, limit: &RateLimit) -> bool {
        self.dropped > limit.flood_drops
    }

    /// Spends `cost` tokens (see [`RateLimit::cost`]) on a frame.
    pub fn take(&mut self, limit: &RateLimit, now: i64, cost: f64) -> Verdict {
        // A clock that goes backwards refills nothing.
        let elapsed_s = (now - self.updated_at).max(0) as f64 / 1000.0;
        self.updated_at = self.updated_at.max(now);
        let refill = elapsed_s * limit.per_second;
        self.tokens = (self.tokens + refill).min(limit.burst);
        self.dropped = (self.dropped - refill).max(0.0);
        if self.tokens >= cost {
            self.tokens -= cost;
            return Verdict::Pass;
        }
        self.dropped += 1.0;
        if self.dropped > limit.flood_drops {
            Verdict::Flood
        } else {
            Verdict::Drop
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sustained_rate_and_bursts_pass() {
        let limit = RateLimit::default();
        let mut bucket = TokenBucket::full(&limit, 0);
        // A burst of 50 at one instant.
        for _ in 0..50 {
            assert_eq!(bucket.take(&limit, 0, 1.0), Verdict::Pass);
        }
        // Then 20 packets a second for ten minutes.
        for i in 1..=12_000 {
            assert_eq!(bucket.take(&limit, 1_000 + i * 50, 1.0), Verdict::Pass);
        }
    }

    #[test]
    fn a_flood_is_dropped_then_closed() {
        let limit = RateLimit::default();
        let mut bucket = TokenBucket::full(&limit, 0);
        let verdicts: Vec<_> = (0..400).map(|_| bucket.take(&limit, 0, 1.0)).collect();
        let passed = verdicts.iter().filter(|v| **v == Verdict::Pass).count();
        assert_eq!(passed, limit.burst as usize);
        let first_flood = verdicts.iter().position(|v| *v == Verdict::Flood).unwrap();
        assert_eq!(
            first_flood,
            limit.burst as usize + limit.flood_drops as usize
        );
        assert!(
            verdicts[passed..first_flood]
                .iter()
                .all(|v| *v == Verdict::Drop)
        );
    }

    #[test]
    fn dropped_packets_are_forgiven_over_time() {
        let limit = RateLimit::default();
        let mut bucket = TokenBucket::full(&limit, 0);
        for _ in 0..(limit.burst as usize + 90) {
            bucket.take(&limit, 0, 1.0);
        }
        // Ten quiet seconds later the socket starts afresh.
        for _ in 0..limit.burst as usize {
            assert_eq!(bucket.take(&limit, 10_000, 1.0), Verdict::Pass);
        }
        assert_eq!(bucket.take(&limit, 10_000, 1.0), Verdict::Drop);
    }
}
