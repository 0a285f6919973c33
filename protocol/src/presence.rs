//! Who is connected to an airport right now, counted per person so that a person with several
//! sockets is announced once and leaves once.

use super::config::Caps;
use super::ids::Cid;
use super::role::Role;
use super::session::Session;
use std::collections::BTreeMap;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Presence {
    /// Open sockets per person and role.
    sockets: BTreeMap<(Cid, Role), u32>,
    /// The callsign each connected pilot last connected with.
    callsigns: BTreeMap<Cid, String>,
    total: u32,
}

/// Why a new socket is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CapExceeded {
    PerKey(u32),
    PerAirport(u32),
}

impl Presence {
    /// Adds a socket. Returns true when it is this person's first socket in this role.
    pub fn join(&mut self, session: &Session) -> bool {
        self.total += 1;
        if session.role == Role::Pilot {
            match &session.callsign {
                Some(callsign) => self.callsigns.insert(session.cid.clone(), callsign.clone()),
                None => self.callsigns.remove(&session.cid),
            };
        }
        let count = self
            .sockets
            .entry((session.cid.clone(), session.role))
            .or_default();
        *count += 1;
        *count == 1
    }

    /// Removes a socket. Returns true when it was this person's last socket in this role.
    pub fn leave(&mut self, session: &Session) -> bool {
        let key = (session.cid.clone(), session.role);
        let Some(count) = self.sockets.get_mut(&key) else {
            return false;
        };
        self.total -= 1;
        *count -= 1;
        if *count > 0 {
            return false;
        }
        self.sockets.remove(&key);
        if session.role == Role::Pilot {
            self.callsigns.remove(&session.cid);
        }
        true
    }

    fn people(&self, role: Role) -> impl Iterator<Item = &Cid> {
        self.sockets
            .keys()
            .filter(move |(_, r)| *r == role)
            .map(|(cid, _)| cid)
    }

    /// Connected controllers, each once.
    pub fn controllers(&self) -> impl Iterator<Item = &Cid> {
        self.people(Role::Controller)
    }

    pub fn has_controllers(&self) -> bool {
        self.controllers().next().is_some()
    }

    /// Connected pilots, each once, with their callsign when known.
    pub fn pilots(&self) -> impl Iterator<Item = (&Cid, Option<&str>)> {
        self.people(Role::Pilot)
            .map(|cid| (cid, self.callsigns.get(cid).map(String::as_str)))
    }

    pub fn callsign_of(&self, cid: &Cid) -> Option<&str> {
        self.callsigns.get(cid).map(String::as_str)
    }

    /// Open sockets of one role.
    pub fn sockets_of(&self, role: Role) -> u32 {
        self.sockets
            .iter()
            .filter(|((_, r), _)| *r == role)
            .map(|(_, count)| count)
            .sum()
    }

    /// Whether a controller or a pilot is connected: the airport is live on the network.
    pub fn is_live(&self) -> bool {
        self.sockets
            .keys()
            .any(|(_, role)| matches!(role, Role::Controller | Role::Pilot))
    }

    /// Open sockets in all.
    pub fn total(&self) -> u32 {
        self.total
    }

    /// Checks the connection caps before a new socket of `cid` is accepted.
    pub fn admit(&self, cid: &Cid, caps: &Caps) -> Result<(), CapExceeded> {
        let of_key: u32 = Role::ALL
            .iter()
            .filter_map(|role| self.sockets.get(&(cid.clone(), *role)))
            .sum();
        if of_key >= caps.per_key {
            return Err(CapExceeded::PerKey(caps.per_key));
        }
        if self.total >= caps.per_airport {
            return Err(CapExceeded::PerAirport(caps.per_airport));
        }
        Ok(())
    }
}
