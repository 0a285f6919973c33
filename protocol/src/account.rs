//! API keys and the accounts behind them. Keys are only ever stored and compared as hashes.

use super::connect::HttpError;
use super::ids::Cid;
use super::role::Role;
use super::session::Session;
use sha2::{Digest, Sha256};

/// The lowercase hex SHA-256 of an API key: what our accounts store (`scripts/keys.mjs` hashes
/// the same way), and what a socket is known by.
pub fn key_hash(key: &str) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let digest = Sha256::digest(key.as_bytes());
    let mut hex = String::with_capacity(2 * digest.len());
    for byte in digest {
        hex.push(char::from(HEX[usize::from(byte >> 4)]));
        hex.push(char::from(HEX[usize::from(byte & 0xf)]));
    }
    hex
}

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
    /// A person of the running service (`users` and `bans` in its database). The role is never
    /// read: that source needs `ROLE_SOURCE = vatsim` (`config::KeySource::Network`), whose
    /// role comes from the network at every connect and re-check.
    pub fn network(cid: Cid, banned: bool, banned_until: Option<i64>) -> Account {
        Account {
            cid,
            role: Role::Observer,
            banned,
            banned_until,
        }
    }

    /// The session the stored role gives; a `vatsim` airport replaces the role with the
    /// network's (`recheck::session_at`).
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

/// Whether `key` could have been issued by the running service: `BARS_` and 64 hex digits.
/// Only such keys are asked of its database, so a made-up key of another shape costs no query.
pub fn is_network_key(key: &str) -> bool {
    key.strip_prefix("BARS_")
        .is_some_and(|hex| hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn network_keys() {
        let hex = "0123456789abcdef".repeat(4);
        assert!(is_network_key(&format!("BARS_{hex}")));
        assert!(is_network_key(&format!("BARS_{}", hex.to_uppercase())));
        for bad in [
            String::new(),
            hex.clone(),
            format!("bars_{hex}"),
            format!("BARS_{}", &hex[1..]),
            format!("BARS_{hex}0"),
            format!("BARS_{}g", &hex[1..]),
            "BARS_".to_owned() + &"é".repeat(32),
            "dev-controller-1".to_owned(),
        ] {
            assert!(!is_network_key(&bad), "{bad}");
        }
    }

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

    #[test]
    fn key_hash_is_lowercase_hex_sha256() {
        // FIPS 180-2's test vectors.
        assert_eq!(
            key_hash("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(
            key_hash(""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        // Keys are hashed as UTF-8, as WebCrypto and node's crypto hash a string.
        assert_eq!(
            key_hash("é"),
            "4a99557e4033c3539de2eb65472017cad5f9557f7a0625a09f1c3f6e2ba69c4c"
        );
    }
}
