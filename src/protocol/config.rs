//! Deployment settings read from the Worker's `[vars]`, with the contract's defaults.

use thiserror::Error;

/// The three liveness durations of PROTOCOL §4.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timings {
    pub heartbeat_interval_ms: i64,
    pub idle_timeout_ms: i64,
    pub offline_grace_ms: i64,
}

impl Default for Timings {
    fn default() -> Self {
        Timings {
            heartbeat_interval_ms: 60_000,
            idle_timeout_ms: 70_000,
            offline_grace_ms: 120_000,
        }
    }
}

/// Connection caps, checked before the upgrade (429 `TOO_MANY_CONNECTIONS`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Caps {
    /// Open sockets of one account (one API key) at one airport.
    pub per_key: u32,
    /// Open sockets at one airport.
    pub per_airport: u32,
}

impl Default for Caps {
    fn default() -> Self {
        Caps {
            per_key: 8,
            per_airport: 2_000,
        }
    }
}

/// The per-socket token bucket. The contract asks that 20 packets/s sustained with bursts of
/// 50 always pass; these numbers leave headroom for network jitter.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateLimit {
    /// Bucket size: packets that may arrive at once.
    pub burst: f64,
    /// Refill rate, packets per second.
    pub per_second: f64,
    /// Dropped packets (forgiven at `per_second`) after which the socket is closed with 4008.
    pub flood_drops: f64,
}

impl Default for RateLimit {
    fn default() -> Self {
        RateLimit {
            burst: 60.0,
            per_second: 25.0,
            flood_drops: 100.0,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Config {
    pub timings: Timings,
    pub caps: Caps,
    pub rate_limit: RateLimit,
}

#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("configuration variable {name} must be a whole number from 1 to {max}, got {value:?}")]
pub struct ConfigError {
    pub name: &'static str,
    pub value: String,
    pub max: i64,
}

/// Upper bound for durations: about 24 days, well inside alarm and timer ranges.
const MAX_DURATION_MS: i64 = i32::MAX as i64;

impl Config {
    /// Reads the variables through `var`; a variable that is unset keeps its default.
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        let mut config = Config::default();
        let timings = &mut config.timings;
        read(
            &var,
            "HEARTBEAT_INTERVAL_MS",
            MAX_DURATION_MS,
            &mut timings.heartbeat_interval_ms,
        )?;
        read(
            &var,
            "IDLE_TIMEOUT_MS",
            MAX_DURATION_MS,
            &mut timings.idle_timeout_ms,
        )?;
        read(
            &var,
            "OFFLINE_GRACE_MS",
            MAX_DURATION_MS,
            &mut timings.offline_grace_ms,
        )?;
        let mut per_key = i64::from(config.caps.per_key);
        let mut per_airport = i64::from(config.caps.per_airport);
        // Workers allow 32,768 hibernatable sockets per Durable Object.
        read(&var, "MAX_SOCKETS_PER_KEY", 32_768, &mut per_key)?;
        read(&var, "MAX_SOCKETS_PER_AIRPORT", 32_768, &mut per_airport)?;
        config.caps = Caps {
            per_key: per_key as u32,
            per_airport: per_airport as u32,
        };
        Ok(config)
    }
}

fn read(
    var: &impl Fn(&str) -> Option<String>,
    name: &'static str,
    max: i64,
    into: &mut i64,
) -> Result<(), ConfigError> {
    let Some(value) = var(name) else {
        return Ok(());
    };
    match value.trim().parse::<i64>() {
        Ok(parsed) if (1..=max).contains(&parsed) => {
            *into = parsed;
            Ok(())
        }
        _ => Err(ConfigError { name, value, max }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_overrides() {
        assert_eq!(Config::from_vars(|_| None).unwrap(), Config::default());
        let c = Config::from_vars(|name| match name {
            "IDLE_TIMEOUT_MS" => Some("3000".into()),
            "MAX_SOCKETS_PER_KEY" => Some(" 2 ".into()),
            _ => None,
        })
        .unwrap();
        assert_eq!(c.timings.idle_timeout_ms, 3000);
        assert_eq!(c.timings.heartbeat_interval_ms, 60_000);
        assert_eq!(c.caps.per_key, 2);
    }

    #[test]
    fn bad_values_are_refused() {
        for bad in ["0", "-5", "abc", "", "99999999999"] {
            let err = Config::from_vars(|n| (n == "OFFLINE_GRACE_MS").then(|| bad.to_owned()));
            assert_eq!(err.unwrap_err().name, "OFFLINE_GRACE_MS");
        }
    }
}
