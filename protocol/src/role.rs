//! Roles and what each may send.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Controller,
    Pilot,
    Observer,
}

impl Role {
    pub const ALL: [Role; 3] = [Role::Controller, Role::Pilot, Role::Observer];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Controller => "controller",
            Role::Pilot => "pilot",
            Role::Observer => "observer",
        }
    }

    /// Controllers change state; pilots report crossings; observers only read.
    pub fn may_change_state(self) -> bool {
        self == Role::Controller
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = ();

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Role::ALL.into_iter().find(|r| r.as_str() == s).ok_or(())
    }
}
