//! Deployment settings read from the Worker's `[vars]`, with the contract's defaults.

use super::vatsim::ControllerScope;
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

/// A per-socket token bucket. A frame costs one token, plus one per full
/// [`RateLimit::BYTES_PER_TOKEN`] of its length, so that large lighting packets cost what
/// they weigh.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateLimit {
    /// Bucket size: tokens that may be spent at once.
    pub burst: f64,
    /// Refill rate, tokens per second.
    pub per_second: f64,
    /// Dropped packets (forgiven at `per_second`) after which the socket is closed with 4008.
    pub flood_drops: f64,
}

impl RateLimit {
    /// Every started block of this many bytes past the first costs one more token: the most
    /// bytes a packet within §3's limits can take (50,000 characters of 4 bytes), so every such
    /// packet costs exactly one, whatever its characters.
    pub const BYTES_PER_TOKEN: usize = 4 * super::limits::MAX_PACKET_CHARS;

    /// Pilots and observers (PROTOCOL §3): 20 packets/s sustained with bursts of 50 must
    /// always pass; these numbers leave headroom for network jitter.
    pub const PILOT_OR_OBSERVER: RateLimit = RateLimit {
        burst: 60.0,
        per_second: 25.0,
        flood_drops: 100.0,
    };

    /// Controllers (PROTOCOL §7): a runway profile change is one `STATE_UPDATE` per lighting
    /// element, up to the 10,000-object limit, back to back; twice that (a change and its
    /// reversal) passes at once. A full airport's burst is refilled in 20 s, and 500 packets/s
    /// pass sustained (the contract asks for 200). A socket that keeps sending faster is cut
    /// after 2,000 dropped packets, 4 s of the refill rate.
    pub const CONTROLLER: RateLimit = RateLimit {
        burst: 20_000.0,
        per_second: 500.0,
        flood_drops: 2_000.0,
    };

    /// What a frame of `bytes` bytes costs.
    pub fn cost(bytes: usize) -> f64 {
        (1 + bytes.saturating_sub(1) / Self::BYTES_PER_TOKEN) as f64
    }

    /// What a socket may ask of the airport (`HEARTBEAT`, `GET_STATE`, `GET_ONLINE_PILOTS`),
    /// whatever its role, on top of its role's bucket: no deployed client asks more than a few
    /// times a minute (CLIENTS.md), so a flood of questions, even from a controller whose
    /// bucket for changes holds 20,000, is cut off with 4008 after about 150 frames instead of
    /// holding the airport's one thread for seconds. Bursts of 50 pass, as §3 asks.
    pub const ASKS: RateLimit = RateLimit {
        burst: 50.0,
        per_second: 2.0,
        flood_drops: 100.0,
    };

    /// Refused frames (an `ERROR` reply each) a socket may cause, whatever its role, on top of
    /// its role's bucket; the one past it closes the socket with 4008. A refused frame costs
    /// what it weighs ([`RateLimit::cost`]). Each refusal costs the airport a parse and a reply,
    /// and a controller's bucket holds 20,000: without this, a controller's burst of unreadable
    /// frames held the airport's one thread for a second (some 45 µs each, parse and reply);
    /// 100 at once hold it for some 5 ms. No deployed client gets more than a few counted
    /// refusals a minute (CLIENTS.md; which refusals count: [`PacketError::spends_refusals`]),
    /// and even one whose every frame were refused would not run dry at 20 a second: the
    /// busiest, the EuroScope rewrite, sends two frames every 500 ms, and two refused
    /// 1,000,000-character batches a second cost 10.
    ///
    /// [`PacketError::spends_refusals`]: super::error::PacketError::spends_refusals
    pub const REFUSALS: RateLimit = RateLimit {
        burst: 100.0,
        per_second: 20.0,
        flood_drops: 0.0,
    };

    /// An answer costs one more token of [`RateLimit::ASKS`] per started block of this many
    /// bytes past the first: a snapshot of 10,000 objects (about 900 KB) costs 10, so a socket
    /// pulls at most about 200 KB of snapshots a second however often it asks.
    pub const ANSWER_BYTES_PER_TOKEN: usize = 100_000;

    /// What an answer of `bytes` bytes costs of the ask budget.
    pub fn answer_cost(bytes: usize) -> f64 {
        (1 + bytes.saturating_sub(1) / Self::ANSWER_BYTES_PER_TOKEN) as f64
    }
}

impl Default for RateLimit {
    fn default() -> Self {
        RateLimit::PILOT_OR_OBSERVER
    }
}

/// The bucket each role's sockets get, and every socket's budgets for questions and refusals.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateLimits {
    pub controller: RateLimit,
    pub pilot_or_observer: RateLimit,
    pub asks: RateLimit,
    pub refusals: RateLimit,
}

impl RateLimits {
    pub fn for_role(&self, role: super::role::Role) -> &RateLimit {
        match role {
            super::role::Role::Controller => &self.controller,
            _ => &self.pilot_or_observer,
        }
    }
}

impl Default for RateLimits {
    fn default() -> Self {
        RateLimits {
            controller: RateLimit::CONTROLLER,
            pilot_or_observer: RateLimit::PILOT_OR_OBSERVER,
            asks: RateLimit::ASKS,
            refusals: RateLimit::REFUSALS,
        }
    }
}

/// Where roles come from (PROTOCOL §1).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum RoleSource {
    /// The role stored with the key in the database.
    #[default]
    Static,
    /// The person's live connection on the VATSIM network.
    Vatsim(VatsimSettings),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VatsimSettings {
    /// Base URL; the look-up is `GET {status_url}/users/info?cid={cid}`.
    pub status_url: String,
    pub scope: ControllerScope,
    /// How long a look-up result is reused.
    pub cache_ms: i64,
    /// Upstream timeout.
    pub timeout_ms: i64,
}

impl Default for VatsimSettings {
    fn default() -> Self {
        VatsimSettings {
            status_url: "https://api.vatsim.net/v2".into(),
            scope: ControllerScope::Any,
            cache_ms: 15_000,
            timeout_ms: 5_000,
        }
    }
}

/// Where API keys and bans are looked up (`KEY_SOURCE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum KeySource {
    /// Only this service's own accounts (`accounts`, `api_keys` in `DB`): keys made by
    /// `scripts/keys.mjs`, stored hashed.
    #[default]
    Own,
    /// The running service's people too (`users`, `bans` in the `NETWORK_DB` binding), read
    /// where they are. A key both know is this service's own account: an operator made it on
    /// purpose. Those people have no stored role, so this needs `ROLE_SOURCE = vatsim`.
    Network,
}

impl KeySource {
    pub fn reads_network(self) -> bool {
        self == KeySource::Network
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub timings: Timings,
    pub caps: Caps,
    pub rate_limits: RateLimits,
    pub role_source: RoleSource,
    pub key_source: KeySource,
    /// How often live sessions are checked again: key revoked, banned, role changed.
    pub recheck_ms: i64,
    /// How old the airport's grouping of equivalent points may get before an event reads the
    /// points table again (when there is one).
    pub points_refresh_ms: i64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            timings: Timings::default(),
            caps: Caps::default(),
            rate_limits: RateLimits::default(),
            role_source: RoleSource::default(),
            key_source: KeySource::default(),
            recheck_ms: 120_000,
            points_refresh_ms: 60_000,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("configuration variable {name} must be {expected}, got {value:?}")]
pub struct ConfigError {
    pub name: &'static str,
    pub value: String,
    pub expected: String,
}

/// Upper bound for durations: about 24 days, well inside alarm and timer ranges.
const MAX_DURATION_MS: i64 = i32::MAX as i64;

impl Config {
    /// Reads the variables through `var`; a variable that is unset keeps its default.
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        let mut config = Config::default();
        let number = |name, max, into: &mut i64| read_number(&var, name, max, into);
        let timings = &mut config.timings;
        number(
            "HEARTBEAT_INTERVAL_MS",
            MAX_DURATION_MS,
            &mut timings.heartbeat_interval_ms,
        )?;
        number(
            "IDLE_TIMEOUT_MS",
            MAX_DURATION_MS,
            &mut timings.idle_timeout_ms,
        )?;
        number(
            "OFFLINE_GRACE_MS",
            MAX_DURATION_MS,
            &mut timings.offline_grace_ms,
        )?;
        // A client that only answers the server's heartbeats (the EuroScope plugin) is heard
        // from once per interval, so it must be allowed longer than that to stay.
        if timings.idle_timeout_ms <= timings.heartbeat_interval_ms {
            return Err(invalid(
                "IDLE_TIMEOUT_MS",
                &timings.idle_timeout_ms.to_string(),
                &format!(
                    "longer than HEARTBEAT_INTERVAL_MS ({}), or clients that only answer heartbeats are closed",
                    timings.heartbeat_interval_ms
                ),
            ));
        }
        number("VATSIM_RECHECK_MS", MAX_DURATION_MS, &mut config.recheck_ms)?;
        number(
            "POINTS_REFRESH_MS",
            MAX_DURATION_MS,
            &mut config.points_refresh_ms,
        )?;
        let mut per_key = i64::from(config.caps.per_key);
        let mut per_airport = i64::from(config.caps.per_airport);
        // Workers allow 32,768 hibernatable sockets per Durable Object.
        number("MAX_SOCKETS_PER_KEY", 32_768, &mut per_key)?;
        number("MAX_SOCKETS_PER_AIRPORT", 32_768, &mut per_airport)?;
        config.caps = Caps {
            per_key: per_key as u32,
            per_airport: per_airport as u32,
        };
        config.role_source = match var("ROLE_SOURCE").as_deref().map(str::trim) {
            None | Some("static") => RoleSource::Static,
            Some("vatsim") => {
                let mut vatsim = VatsimSettings::default();
                if let Some(url) = var("VATSIM_STATUS_URL") {
                    let url = url.trim().trim_end_matches('/');
                    if !(url.starts_with("https://") || url.starts_with("http://")) {
                        return Err(invalid("VATSIM_STATUS_URL", url, "an http(s) URL"));
                    }
                    vatsim.status_url = url.to_owned();
                }
                if let Some(scope) = var("CONTROLLER_SCOPE") {
                    vatsim.scope = scope
                        .trim()
                        .parse()
                        .map_err(|_| invalid("CONTROLLER_SCOPE", &scope, "`any` or `prefix`"))?;
                }
                number("VATSIM_CACHE_MS", MAX_DURATION_MS, &mut vatsim.cache_ms)?;
                number("VATSIM_TIMEOUT_MS", MAX_DURATION_MS, &mut vatsim.timeout_ms)?;
                RoleSource::Vatsim(vatsim)
            }
            Some(other) => return Err(invalid("ROLE_SOURCE", other, "`static` or `vatsim`")),
        };
        config.key_source = match var("KEY_SOURCE").as_deref().map(str::trim) {
            None | Some("own") => KeySource::Own,
            Some("network") if matches!(config.role_source, RoleSource::Vatsim(_)) => {
                KeySource::Network
            }
            Some("network") => {
                return Err(invalid(
                    "KEY_SOURCE",
                    "network",
                    "`own` while ROLE_SOURCE is `static`: the running service's people have \
                     no stored role, so `network` needs ROLE_SOURCE = `vatsim`",
                ));
            }
            Some(other) => return Err(invalid("KEY_SOURCE", other, "`own` or `network`")),
        };
        Ok(config)
    }
}

fn invalid(name: &'static str, value: &str, expected: &str) -> ConfigError {
    ConfigError {
        name,
        value: value.to_owned(),
        expected: expected.to_owned(),
    }
}

fn read_number(
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
        _ => Err(invalid(
            name,
            &value,
            &format!("a whole number from 1 to {max}"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_overrides() {
        assert_eq!(Config::from_vars(|_| None).unwrap(), Config::default());
        let c = Config::from_vars(|name| match name {
            "HEARTBEAT_INTERVAL_MS" => Some("1000".into()),
            "IDLE_TIMEOUT_MS" => Some("3000".into()),
            "MAX_SOCKETS_PER_KEY" => Some(" 2 ".into()),
            "POINTS_REFRESH_MS" => Some("500".into()),
            _ => None,
        })
        .unwrap();
        assert_eq!(c.points_refresh_ms, 500);
        assert_eq!(c.timings.idle_timeout_ms, 3000);
        assert_eq!(c.timings.heartbeat_interval_ms, 1000);
        assert_eq!(c.caps.per_key, 2);
    }

    #[test]
    fn the_idle_timeout_must_outlast_the_heartbeat_interval() {
        for idle in ["3000", "60000"] {
            let err = Config::from_vars(|n| (n == "IDLE_TIMEOUT_MS").then(|| idle.to_owned()));
            assert_eq!(err.unwrap_err().name, "IDLE_TIMEOUT_MS", "{idle}");
        }
        assert!(Config::from_vars(|n| (n == "IDLE_TIMEOUT_MS").then(|| "60001".into())).is_ok());
    }

    #[test]
    fn role_sources() {
        let vars = |pairs: &'static [(&'static str, &'static str)]| {
            move |name: &str| {
                pairs
                    .iter()
                    .find(|(n, _)| *n == name)
                    .map(|(_, v)| v.to_string())
            }
        };
        assert_eq!(
            Config::from_vars(vars(&[("ROLE_SOURCE", "static")]))
                .unwrap()
                .role_source,
            RoleSource::Static
        );
        let c = Config::from_vars(vars(&[
            ("ROLE_SOURCE", "vatsim"),
            ("VATSIM_STATUS_URL", "http://127.0.0.1:9/"),
            ("CONTROLLER_SCOPE", "prefix"),
            ("VATSIM_CACHE_MS", "10"),
        ]))
        .unwrap();
        assert_eq!(
            c.role_source,
            RoleSource::Vatsim(VatsimSettings {
                status_url: "http://127.0.0.1:9".into(),
                scope: ControllerScope::Prefix,
                cache_ms: 10,
                timeout_ms: 5_000,
            })
        );
        for bad in [
            &[("ROLE_SOURCE", "ldap")][..],
            &[("ROLE_SOURCE", "vatsim"), ("CONTROLLER_SCOPE", "some")][..],
            &[("ROLE_SOURCE", "vatsim"), ("VATSIM_STATUS_URL", "ftp://x")][..],
        ] {
            assert!(Config::from_vars(vars(bad)).is_err());
        }
    }

    #[test]
    fn key_sources() {
        let read = |key: &'static str, role: &'static str| {
            Config::from_vars(move |name| match name {
                "KEY_SOURCE" => Some(key.into()),
                "ROLE_SOURCE" => Some(role.into()),
                _ => None,
            })
        };
        assert_eq!(Config::default().key_source, KeySource::Own);
        assert_eq!(read("own", "static").unwrap().key_source, KeySource::Own);
        assert_eq!(read("own", "vatsim").unwrap().key_source, KeySource::Own);
        assert_eq!(
            read(" network ", "vatsim").unwrap().key_source,
            KeySource::Network
        );
        // Roles must come from the network when the people do.
        let err = read("network", "static").unwrap_err();
        assert_eq!(err.name, "KEY_SOURCE");
        assert!(err.to_string().contains("ROLE_SOURCE"), "{err}");
        assert_eq!(read("both", "vatsim").unwrap_err().name, "KEY_SOURCE");
    }

    #[test]
    fn bad_values_are_refused() {
        for bad in ["0", "-5", "abc", "", "99999999999"] {
            let err = Config::from_vars(|n| (n == "OFFLINE_GRACE_MS").then(|| bad.to_owned()));
            assert_eq!(err.unwrap_err().name, "OFFLINE_GRACE_MS");
        }
    }
}
