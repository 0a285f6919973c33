//! Identifiers that travel on the wire: airport codes, network ids and object ids.

use super::limits::MAX_OBJECT_ID_CHARS;
use serde::{Deserialize, Serialize};
use std::fmt;

/// A canonical (upper-case) ICAO code: exactly four `[A-Z0-9]`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Icao(String);

impl Icao {
    /// Accepts four ASCII letters or digits in any case and canonicalises to upper case.
    pub fn parse(raw: &str) -> Option<Icao> {
        (raw.len() == 4 && raw.bytes().all(|b| b.is_ascii_alphanumeric()))
            .then(|| Icao(raw.to_ascii_uppercase()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether a packet's `airport` field names this airport (case-insensitive).
    pub fn matches(&self, claimed: &str) -> bool {
        self.0.eq_ignore_ascii_case(claimed)
    }
}

impl fmt::Display for Icao {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A network account id. Always a string of ASCII digits on the wire.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Cid(String);

impl Cid {
    /// Up to 20 digits (any `u64`); anything else is not an account id.
    pub fn parse(raw: &str) -> Option<Cid> {
        (!raw.is_empty() && raw.len() <= 20 && raw.bytes().all(|b| b.is_ascii_digit()))
            .then(|| Cid(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Cid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(feature = "schema")]
mod schema {
    use super::*;
    use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
    use std::borrow::Cow;

    impl JsonSchema for Icao {
        fn schema_name() -> Cow<'static, str> {
            "Icao".into()
        }

        fn json_schema(_: &mut SchemaGenerator) -> Schema {
            json_schema!({
                "description": "An airport's ICAO code, upper case.",
                "type": "string",
                "pattern": "^[A-Z0-9]{4}$",
            })
        }
    }

    impl JsonSchema for Cid {
        fn schema_name() -> Cow<'static, str> {
            "Cid".into()
        }

        fn json_schema(_: &mut SchemaGenerator) -> Schema {
            json_schema!({
                "description": "A network account id: a string of digits.",
                "type": "string",
                "pattern": "^[0-9]{1,20}$",
            })
        }
    }
}

/// `^[a-zA-Z0-9_-]+$`, 1 to 128 characters.
pub fn is_valid_object_id(id: &str) -> bool {
    (1..=MAX_OBJECT_ID_CHARS).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn icao_is_canonicalised_and_strict() {
        assert_eq!(Icao::parse("egll").unwrap().as_str(), "EGLL");
        assert_eq!(Icao::parse("K1A2").unwrap().as_str(), "K1A2");
        for bad in ["", "EGL", "EGLLX", "EG-L", "EGL ", "ÉGLL"] {
            assert!(Icao::parse(bad).is_none(), "{bad:?} accepted");
        }
        assert!(Icao::parse("EGLL").unwrap().matches("eGlL"));
        assert!(!Icao::parse("EGLL").unwrap().matches("EGKK"));
    }

    #[test]
    fn object_ids() {
        assert!(is_valid_object_id("SB_27L_A1"));
        assert!(is_valid_object_id("a-b"));
        assert!(is_valid_object_id(&"x".repeat(128)));
        assert!(!is_valid_object_id(&"x".repeat(129)));
        assert!(!is_valid_object_id(""));
        assert!(!is_valid_object_id("a b"));
        assert!(!is_valid_object_id("a.b"));
        assert!(!is_valid_object_id("é"));
    }

    #[test]
    fn cids() {
        assert_eq!(Cid::parse("1000001").unwrap().as_str(), "1000001");
        assert!(Cid::parse("").is_none());
        assert!(Cid::parse("12a").is_none());
        assert!(Cid::parse("-1").is_none());
    }
}
