//! Enums whose variants travel as fixed strings, such as error codes: the enum, `ALL`, `as_str`
//! and serde (and, with the `schema` feature, the JSON Schema) from one list of variants. A
//! variant's wire name is its name in SCREAMING_SNAKE_CASE (`InvalidJson` is `INVALID_JSON`).

macro_rules! wire_name_enum {
    (
        $(#[$meta:meta])*
        pub enum $name:ident { $($variant:ident,)+ }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, strum::IntoStaticStr, strum::VariantNames)]
        #[strum(serialize_all = "SCREAMING_SNAKE_CASE")]
        pub enum $name { $($variant,)+ }

        impl $name {
            pub const ALL: [$name; [$(stringify!($variant)),+].len()] = [$($name::$variant),+];

            /// The wire name.
            pub fn as_str(self) -> &'static str {
                self.into()
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(self.as_str())
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let name = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
                $name::ALL
                    .into_iter()
                    .find(|variant| variant.as_str() == name)
                    .ok_or_else(|| {
                        serde::de::Error::unknown_variant(&name, <$name as strum::VariantNames>::VARIANTS)
                    })
            }
        }

        #[cfg(feature = "schema")]
        impl schemars::JsonSchema for $name {
            fn schema_name() -> std::borrow::Cow<'static, str> {
                stringify!($name).into()
            }

            fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
                schemars::json_schema!({
                    "type": "string",
                    "enum": <$name as strum::VariantNames>::VARIANTS,
                })
            }
        }
    };
}

pub(crate) use wire_name_enum;
