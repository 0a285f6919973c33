//! The `vatsim` role source, purely: parsing the status service's answer and mapping a
//! person's live connections to a role at an airport.

use super::ids::{Cid, Icao};
use super::role::Role;
use serde::{Deserialize, Serialize};
use std::str::FromStr;

/// Callsign suffixes (after the last `_`) of controlling positions.
pub const CONTROLLER_SUFFIXES: [&str; 11] = [
    "DEL", "RMP", "GND", "TWR", "DEP", "APP", "CTR", "FSS", "RDO", "TMU", "FMP",
];

/// Where a controller counts as a controller.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ControllerScope {
    /// At every airport (today's network practice).
    #[default]
    Any,
    /// Only at the airport whose ICAO is the callsign's first segment (`EGLL_TWR` → EGLL);
    /// elsewhere they connect as an observer.
    Prefix,
}

impl FromStr for ControllerScope {
    type Err = ();

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "any" => Ok(ControllerScope::Any),
            "prefix" => Ok(ControllerScope::Prefix),
            _ => Err(()),
        }
    }
}

/// How a connection is on the network.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ConnectionType {
    Atc,
    Pilot,
}

/// One live connection of a person, from one line of the status answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkConnection {
    pub callsign: String,
    pub kind: ConnectionType,
}

/// Parses the `text/plain` answer: one `cid,callsign,type[,…]` line per live connection.
/// Lines for another cid, with a non-numeric cid, an empty callsign or an unknown type are
/// skipped; fields are trimmed and the type is matched case-insensitively.
pub fn parse_status(body: &str, cid: &Cid) -> Vec<NetworkConnection> {
    body.lines()
        .filter_map(|line| {
            let mut fields = line.split(',').map(str::trim);
            let (line_cid, callsign, kind) = (fields.next()?, fields.next()?, fields.next()?);
            if Cid::parse(line_cid)?.as_str() != cid.as_str() || callsign.is_empty() {
                return None;
            }
            let kind = match kind.to_ascii_lowercase().as_str() {
                "atc" => ConnectionType::Atc,
                "pilot" => ConnectionType::Pilot,
                _ => return None,
            };
            Some(NetworkConnection {
                callsign: callsign.to_owned(),
                kind,
            })
        })
        .collect()
}

/// The role one connection gives at `airport`.
pub fn role_of(connection: &NetworkConnection, airport: &Icao, scope: ControllerScope) -> Role {
    match connection.kind {
        ConnectionType::Pilot => Role::Pilot,
        ConnectionType::Atc => {
            let callsign = connection.callsign.as_str();
            let suffix = callsign.rsplit('_').next().unwrap_or_default();
            let controls = callsign.contains('_')
                && CONTROLLER_SUFFIXES
                    .iter()
                    .any(|s| s.eq_ignore_ascii_case(suffix));
            let in_scope = match scope {
                ControllerScope::Any => true,
                ControllerScope::Prefix => callsign
                    .split('_')
                    .next()
                    .is_some_and(|prefix| airport.matches(prefix)),
            };
            if controls && in_scope {
                Role::Controller
            } else {
                Role::Observer
            }
        }
    }
}

/// The highest role among a person's connections (controller over pilot over observer), with
/// the callsign it comes from; `None` when the person is not connected.
pub fn resolve(
    connections: &[NetworkConnection],
    airport: &Icao,
    scope: ControllerScope,
) -> Option<(Role, String)> {
    let rank = |role: Role| match role {
        Role::Controller => 3,
        Role::Pilot => 2,
        Role::Observer => 1,
    };
    connections
        .iter()
        .map(|c| (role_of(c, airport, scope), c.callsign.clone()))
        .max_by_key(|(role, _)| rank(*role))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cid() -> Cid {
        Cid::parse("1234567").unwrap()
    }

    fn egll() -> Icao {
        Icao::parse("EGLL").unwrap()
    }

    fn conn(callsign: &str, kind: ConnectionType) -> NetworkConnection {
        NetworkConnection {
            callsign: callsign.into(),
            kind,
        }
    }

    #[test]
    fn parses_lines_fields_and_whitespace() {
        let body = "1234567,EGLL_TWR,atc,extra,fields\n \
                    1234567 , EGLL_ATIS , ATC \r\n\
                    \n\
                    1234567,BAW123,pilot\n\
                    7654321,OTHER_TWR,atc\n\
                    12a4567,BAD_TWR,atc\n\
                    1234567,,atc\n\
                    1234567,ONLY_TWO\n\
                    1234567,SUP,supervisor\n\
                    garbage";
        assert_eq!(
            parse_status(body, &cid()),
            vec![
                conn("EGLL_TWR", ConnectionType::Atc),
                conn("EGLL_ATIS", ConnectionType::Atc),
                conn("BAW123", ConnectionType::Pilot),
            ]
        );
        assert!(parse_status("", &cid()).is_empty());
    }

    #[test]
    fn callsigns_map_to_roles() {
        let any = ControllerScope::Any;
        for suffix in CONTROLLER_SUFFIXES {
            let c = conn(
                &format!("EGLL_{}", suffix.to_lowercase()),
                ConnectionType::Atc,
            );
            assert_eq!(role_of(&c, &egll(), any), Role::Controller, "{suffix}");
        }
        for observer in ["EGLL_ATIS", "EGLL_OBS", "TWR", "EGLL_TWR_X", "LON_S_CTRX"] {
            let c = conn(observer, ConnectionType::Atc);
            assert_eq!(role_of(&c, &egll(), any), Role::Observer, "{observer}");
        }
        assert_eq!(
            role_of(&conn("LON_S_CTR", ConnectionType::Atc), &egll(), any),
            Role::Controller
        );
        assert_eq!(
            role_of(&conn("BAW1", ConnectionType::Pilot), &egll(), any),
            Role::Pilot
        );
    }

    #[test]
    fn prefix_scope_limits_controllers_to_their_airport() {
        let prefix = ControllerScope::Prefix;
        let twr = conn("egll_1_TWR", ConnectionType::Atc);
        assert_eq!(role_of(&twr, &egll(), prefix), Role::Controller);
        assert_eq!(
            role_of(&twr, &Icao::parse("EGKK").unwrap(), prefix),
            Role::Observer
        );
        let ctr = conn("LON_CTR", ConnectionType::Atc);
        assert_eq!(role_of(&ctr, &egll(), prefix), Role::Observer);
        assert_eq!(
            role_of(&ctr, &egll(), ControllerScope::Any),
            Role::Controller
        );
    }

    #[test]
    fn the_highest_role_wins() {
        let both = [
            conn("EGLL_ATIS", ConnectionType::Atc),
            conn("EGLL_TWR", ConnectionType::Atc),
        ];
        assert_eq!(
            resolve(&both, &egll(), ControllerScope::Any),
            Some((Role::Controller, "EGLL_TWR".into()))
        );
        let pilot_and_obs = [
            conn("EGLL_OBS", ConnectionType::Atc),
            conn("BAW1", ConnectionType::Pilot),
        ];
        assert_eq!(
            resolve(&pilot_and_obs, &egll(), ControllerScope::Any),
            Some((Role::Pilot, "BAW1".into()))
        );
        assert_eq!(resolve(&[], &egll(), ControllerScope::Any), None);
    }
}
