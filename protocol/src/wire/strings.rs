//! Strings with a format of their own on the wire.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::ops::Deref;

/// An object's id: 1 to 128 of `[a-zA-Z0-9_-]`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ObjectId(pub String);

/// A client's label for a packet, echoed on the direct reply to it: at most 64 characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct RequestId(pub String);

macro_rules! string_type {
    ($name:ident) => {
        impl Deref for $name {
            type Target = str;

            fn deref(&self) -> &str {
                &self.0
            }
        }

        impl From<&str> for $name {
            fn from(text: &str) -> Self {
                $name(text.to_owned())
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

string_type!(ObjectId);
string_type!(RequestId);

#[cfg(feature = "schema")]
mod schema {
    use super::*;
    use crate::limits::{MAX_OBJECT_ID_CHARS, MAX_REQUEST_ID_CHARS};
    use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
    use std::borrow::Cow;

    impl JsonSchema for ObjectId {
        fn schema_name() -> Cow<'static, str> {
            "ObjectId".into()
        }

        fn json_schema(_: &mut SchemaGenerator) -> Schema {
            json_schema!({
                "description": "An object's id.",
                "type": "string",
                "pattern": format!("^[a-zA-Z0-9_-]{{1,{MAX_OBJECT_ID_CHARS}}}$"),
            })
        }
    }

    impl JsonSchema for RequestId {
        fn schema_name() -> Cow<'static, str> {
            "RequestId".into()
        }

        fn json_schema(_: &mut SchemaGenerator) -> Schema {
            json_schema!({
                "description": "A client's label for a packet, echoed on the direct reply to it.",
                "type": "string",
                "maxLength": MAX_REQUEST_ID_CHARS,
            })
        }
    }
}
