//! Live sessions checked again: is the key still valid, the account not banned, and the role
//! still the one the socket connected with? Pure: the caller fetches the facts.

use super::account::Account;
use super::config::RoleSource;
use super::connect::HttpError;
use super::effects::CloseCode;
use super::ids::Icao;
use super::role::Role;
use super::session::Session;
use super::vatsim::{ControllerScope, NetworkConnection, resolve};
use serde::{Deserialize, Serialize};

/// How long a re-check waits for its answers in all when no upstream timeout is longer: the
/// keys' query has no timeout of its own.
pub const ANSWERS_LIMIT_MS: i64 = 5_000;

/// How long a re-check waits for all its answers (asked together): [`ANSWERS_LIMIT_MS`], or the
/// upstream's timeout under `vatsim` if that is longer, so that a slow but answering network is
/// still heard. Nothing waits for them: the alarm has sent its heartbeats already.
pub fn answers_limit_ms(source: &RoleSource) -> i64 {
    match source {
        RoleSource::Vatsim(settings) => settings.timeout_ms.max(ANSWERS_LIMIT_MS),
        RoleSource::Static => ANSWERS_LIMIT_MS,
    }
}

/// What the database says about a socket's API key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyStanding {
    Valid(Account),
    /// Unknown or revoked.
    Revoked,
    /// The database could not be asked; the session is kept.
    Unknown,
}

/// What the network says about a person (`vatsim` source only).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum NetworkStanding {
    Connected(Vec<NetworkConnection>),
    NotConnected,
    /// The status service could not be reached; the session is kept.
    Unreachable,
}

/// Why the network gives a person no role at an airport.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OffNetwork {
    /// The status service could not be asked.
    Unreachable,
    /// Not connected, or with no connection that counts at this airport.
    NotConnected,
}

impl NetworkStanding {
    /// The role and callsign the network gives the person at `airport`: what a connect and a
    /// re-check both decide from.
    pub fn role_at(
        &self,
        airport: &Icao,
        scope: ControllerScope,
    ) -> Result<(Role, String), OffNetwork> {
        match self {
            NetworkStanding::Unreachable => Err(OffNetwork::Unreachable),
            NetworkStanding::NotConnected => Err(OffNetwork::NotConnected),
            NetworkStanding::Connected(connections) => {
                resolve(connections, airport, scope).ok_or(OffNetwork::NotConnected)
            }
        }
    }
}

/// The session a new socket at `airport` connects with: under `vatsim`, the network decides the
/// role (`network` is the person's standing; `None` under `static`). It needs no airport
/// loaded, so a connection refused here stores nothing.
pub fn session_at(
    source: &RoleSource,
    airport: &Icao,
    stored: Session,
    network: Option<NetworkStanding>,
) -> Result<Session, HttpError> {
    let (RoleSource::Vatsim(settings), Some(network)) = (source, network) else {
        return Ok(stored);
    };
    let (role, callsign) = network
        .role_at(airport, settings.scope)
        .map_err(|off| match off {
            OffNetwork::Unreachable => HttpError::UpstreamUnavailable,
            OffNetwork::NotConnected => HttpError::NotConnected,
        })?;
    Ok(Session {
        cid: stored.cid,
        role,
        callsign: Some(callsign),
    })
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Keep,
    /// Same role; the network reports another callsign.
    NewCallsign(String),
    /// Tell the client why (an `ERROR`), then close.
    Close {
        code: CloseCode,
        reason: String,
    },
}

fn close(code: CloseCode, reason: String) -> Verdict {
    Verdict::Close { code, reason }
}

/// The verdict for one live session. `network` is only consulted for the `vatsim` source.
pub fn verdict(
    session: &Session,
    key: &KeyStanding,
    network: &NetworkStanding,
    source: &RoleSource,
    airport: &Icao,
    now: i64,
) -> Verdict {
    let account = match key {
        KeyStanding::Revoked => {
            return close(CloseCode::KeyRevoked, "your API key was revoked".into());
        }
        KeyStanding::Unknown => return Verdict::Keep,
        KeyStanding::Valid(account) => account,
    };
    if account.check_ban(now).is_err() {
        return close(CloseCode::RoleChanged, "you are banned".into());
    }
    let (role, callsign) = match source {
        RoleSource::Static => (account.role, None),
        RoleSource::Vatsim(settings) => match network.role_at(airport, settings.scope) {
            Ok((role, callsign)) => (role, Some(callsign)),
            Err(OffNetwork::Unreachable) => return Verdict::Keep,
            Err(OffNetwork::NotConnected) => {
                return close(
                    CloseCode::RoleChanged,
                    "you are no longer connected to the network".into(),
                );
            }
        },
    };
    if role != session.role {
        return close(
            CloseCode::RoleChanged,
            format!("your role changed from {} to {}", session.role, role),
        );
    }
    match callsign {
        Some(callsign) if session.callsign.as_deref() != Some(callsign.as_str()) => {
            Verdict::NewCallsign(callsign)
        }
        _ => Verdict::Keep,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::VatsimSettings;
    use crate::vatsim::ConnectionType;
    use crate::{Cid, Role};

    fn pilot() -> Session {
        Session {
            cid: Cid::parse("1").unwrap(),
            role: Role::Pilot,
            callsign: Some("BAW1".into()),
        }
    }

    fn account(role: Role) -> KeyStanding {
        KeyStanding::Valid(Account {
            cid: Cid::parse("1").unwrap(),
            role,
            banned: false,
            banned_until: None,
        })
    }

    fn online(callsign: &str, kind: ConnectionType) -> NetworkStanding {
        NetworkStanding::Connected(vec![NetworkConnection {
            callsign: callsign.into(),
            kind,
        }])
    }

    fn code(v: Verdict) -> Option<u16> {
        match v {
            Verdict::Close { code, .. } => Some(code.code()),
            _ => None,
        }
    }

    #[test]
    fn the_answers_wait_for_the_longest_upstream_timeout_only() {
        assert_eq!(answers_limit_ms(&RoleSource::Static), ANSWERS_LIMIT_MS);
        let settings = |timeout_ms| {
            RoleSource::Vatsim(VatsimSettings {
                timeout_ms,
                ..VatsimSettings::default()
            })
        };
        assert_eq!(answers_limit_ms(&settings(800)), ANSWERS_LIMIT_MS);
        assert_eq!(answers_limit_ms(&settings(9_000)), 9_000);
    }

    #[test]
    fn static_sessions() {
        let egll = Icao::parse("EGLL").unwrap();
        let s = RoleSource::Static;
        let none = NetworkStanding::Unreachable;
        let mut session = pilot();
        session.callsign = None;
        assert_eq!(
            verdict(&session, &account(Role::Pilot), &none, &s, &egll, 0),
            Verdict::Keep
        );
        assert_eq!(
            code(verdict(
                &session,
                &KeyStanding::Revoked,
                &none,
                &s,
                &egll,
                0
            )),
            Some(4001)
        );
        assert_eq!(
            verdict(&session, &KeyStanding::Unknown, &none, &s, &egll, 0),
            Verdict::Keep
        );
        assert_eq!(
            code(verdict(
                &session,
                &account(Role::Observer),
                &none,
                &s,
                &egll,
                0
            )),
            Some(4003)
        );
        let mut banned = account(Role::Pilot);
        if let KeyStanding::Valid(a) = &mut banned {
            a.banned = true;
        }
        assert_eq!(
            code(verdict(&session, &banned, &none, &s, &egll, 0)),
            Some(4003)
        );
    }

    #[test]
    fn vatsim_sessions() {
        let egll = Icao::parse("EGLL").unwrap();
        let s = RoleSource::Vatsim(VatsimSettings::default());
        let key = account(Role::Observer); // the stored role does not matter here
        let p = pilot();
        assert_eq!(
            verdict(
                &p,
                &key,
                &online("BAW1", ConnectionType::Pilot),
                &s,
                &egll,
                0
            ),
            Verdict::Keep
        );
        assert_eq!(
            verdict(
                &p,
                &key,
                &online("BAW2", ConnectionType::Pilot),
                &s,
                &egll,
                0
            ),
            Verdict::NewCallsign("BAW2".into())
        );
        assert_eq!(
            verdict(&p, &key, &NetworkStanding::Unreachable, &s, &egll, 0),
            Verdict::Keep
        );
        let gone = verdict(&p, &key, &NetworkStanding::NotConnected, &s, &egll, 0);
        assert!(
            matches!(&gone, Verdict::Close { reason, .. } if reason.contains("no longer connected"))
        );
        let changed = verdict(
            &p,
            &key,
            &online("EGLL_TWR", ConnectionType::Atc),
            &s,
            &egll,
            0,
        );
        assert!(
            matches!(&changed, Verdict::Close { reason, .. } if reason.contains("from pilot to controller"))
        );
        assert_eq!(code(changed), Some(4003));
    }
}
