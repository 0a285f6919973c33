//! API keys and the accounts behind them. Keys are only ever stored and compared as hashes.

use super::connect::HttpError;
use super::ids::Cid;
use super::role::Role;
use super::session::Session;

/// An account as the database holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    pub cid: Cid,
    /// The role stored with the key, used by the `static` role source.
    pub role: Role,
    pub banned: bool,
    /// A ban with an end: it no longer applies from this time (epoch ms) on.
    pub banned_until: Option<i64>,
}

impl Account {
    /// The session the stored role gives; a `vatsim` airport replaces the role with the
    /// network's (`Room::session_for`).
    pub fn session(&self) -> Session {
        Session {
            cid: self.cid.clone(),
            role: self.role,
            callsign: None,
        }
    }

    pub fn check_ban(&self, now: i64) -> Result<(), HttpError> {
        match (self.banned, self.banned_until) {
            (true, None) => Err(HttpError::Banned { until: None }),
            (true, Some(until)) if until > now => Err(HttpError::Banned { until: Some(until) }),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bans() {
        let mut a = Account {
            cid: Cid::parse("1").unwrap(),
            role: Role::Pilot,
            banned: false,
            banned_until: None,
        };
        assert!(a.check_ban(0).is_ok());
        assert_eq!(a.session().role, Role::Pilot);
        a.banned = true;
        assert_eq!(a.check_ban(0), Err(HttpError::Banned { until: None }));
        a.banned_until = Some(100);
        assert_eq!(a.check_ban(99), Err(HttpError::Banned { until: Some(100) }));
        assert!(a.check_ban(100).is_ok());
    }
}
