//! Reading the members of a JSON object in one pass, straight into the fields a packet uses.
//!
//! A frame is not parsed into a `serde_json::Value` tree first: a 200-item batch would build
//! (and then take apart) a map per item and a string per member name. Only the values the
//! packet needs are kept. Everything else is read and dropped: it is checked exactly as a
//! parse into a `Value` would check it (syntax, numbers in range, no lone surrogates), so a
//! frame is valid JSON here exactly when it was before. As in a parsed object, the last of a
//! repeated member name wins.

use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer};
use std::fmt;
use std::marker::PhantomData;

/// These visitors never keep a scalar: every kind of scalar gives `$other`.
macro_rules! forward_scalars_to_other {
    ($other:expr) => {
        fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
            Ok($other)
        }
        fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
            Ok($other)
        }
        fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
            Ok($other)
        }
        fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
            Ok($other)
        }
        fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
            Ok($other)
        }
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok($other)
        }
    };
}

/// The fields an object's members are read into.
pub trait Members<'de>: Default {
    /// The member names read; any other member is skipped.
    const NAMES: &'static [&'static str];

    /// Reads the value of the member named `NAMES[name]`.
    fn read<A: MapAccess<'de>>(&mut self, name: usize, map: &mut A) -> Result<(), A::Error>;

    /// A member not in `NAMES` was read and dropped.
    fn skipped(&mut self) {}
}

/// A JSON value read into `T` when it is an object; any other value is checked and dropped.
#[derive(Debug)]
pub enum IfObject<T> {
    Object(T),
    Other,
}

impl<'de, T: Members<'de>> Deserialize<'de> for IfObject<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(ObjectVisitor(PhantomData))
    }
}

/// A JSON value read item by item when it is an array; any other value is checked and dropped.
#[derive(Debug)]
pub enum IfArray<T> {
    Array(Vec<IfObject<T>>),
    Other,
}

impl<'de, T: Members<'de>> Deserialize<'de> for IfArray<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(ArrayVisitor(PhantomData))
    }
}

/// A JSON value read into `T` when it is an object, item by item into `I` when it is an array;
/// any other value is checked and dropped.
#[derive(Debug)]
pub enum ObjectOrArray<T, I> {
    Object(T),
    Array(Vec<IfObject<I>>),
    Other,
}

impl<'de, T: Members<'de>, I: Members<'de>> Deserialize<'de> for ObjectOrArray<T, I> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(ObjectOrArrayVisitor(PhantomData))
    }
}

struct ObjectOrArrayVisitor<T, I>(PhantomData<(T, I)>);

impl<'de, T: Members<'de>, I: Members<'de>> Visitor<'de> for ObjectOrArrayVisitor<T, I> {
    type Value = ObjectOrArray<T, I>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        read_members(map).map(ObjectOrArray::Object)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
        read_items(seq).map(ObjectOrArray::Array)
    }

    forward_scalars_to_other!(ObjectOrArray::Other);
}

fn read_members<'de, T: Members<'de>, A: MapAccess<'de>>(mut map: A) -> Result<T, A::Error> {
    let mut members = T::default();
    while let Some(name) = map.next_key_seed(Name(T::NAMES))? {
        match name {
            Some(name) => members.read(name, &mut map)?,
            None => {
                map.next_value::<Skipped>()?;
                members.skipped();
            }
        }
    }
    Ok(members)
}

fn read_items<'de, T: Members<'de>, A: SeqAccess<'de>>(
    mut seq: A,
) -> Result<Vec<IfObject<T>>, A::Error> {
    let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0));
    while let Some(item) = seq.next_element()? {
        items.push(item);
    }
    Ok(items)
}

struct ObjectVisitor<T>(PhantomData<T>);

impl<'de, T: Members<'de>> Visitor<'de> for ObjectVisitor<T> {
    type Value = IfObject<T>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        read_members(map).map(IfObject::Object)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
        skip_seq(seq).map(|()| IfObject::Other)
    }

    forward_scalars_to_other!(IfObject::Other);
}

struct ArrayVisitor<T>(PhantomData<T>);

impl<'de, T: Members<'de>> Visitor<'de> for ArrayVisitor<T> {
    type Value = IfArray<T>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
        read_items(seq).map(IfArray::Array)
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        skip_map(map).map(|()| IfArray::Other)
    }

    forward_scalars_to_other!(IfArray::Other);
}

/// Any JSON value, read in full and dropped. Unlike `serde::de::IgnoredAny`, which only checks
/// syntax, it refuses what a parse into a `Value` refuses, such as `1e400`.
pub struct Skipped;

impl<'de> Deserialize<'de> for Skipped {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(SkipVisitor)
    }
}

struct SkipVisitor;

impl<'de> Visitor<'de> for SkipVisitor {
    type Value = Skipped;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Skipped, A::Error> {
        skip_map(map).map(|()| Skipped)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Skipped, A::Error> {
        skip_seq(seq).map(|()| Skipped)
    }

    forward_scalars_to_other!(Skipped);
}

fn skip_seq<'de, A: SeqAccess<'de>>(mut seq: A) -> Result<(), A::Error> {
    while seq.next_element::<Skipped>()?.is_some() {}
    Ok(())
}

fn skip_map<'de, A: MapAccess<'de>>(mut map: A) -> Result<(), A::Error> {
    while map.next_entry::<Skipped, Skipped>()?.is_some() {}
    Ok(())
}

/// A member name, as its index in a list of names (`None` for any other), compared without
/// allocating; escaped names are compared after unescaping, as a parsed object would.
struct Name(&'static [&'static str]);

impl<'de> DeserializeSeed<'de> for Name {
    type Value = Option<usize>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl Visitor<'_> for Name {
    type Value = Option<usize>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a member name")
    }

    fn visit_str<E: de::Error>(self, name: &str) -> Result<Self::Value, E> {
        Ok(self.0.iter().position(|known| *known == name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    #[derive(Default, Debug)]
    struct Pair {
        a: Option<Value>,
        b: Option<IfArray<Pair>>,
    }

    impl<'de> Members<'de> for Pair {
        const NAMES: &'static [&'static str] = &["a", "b"];

        fn read<A: MapAccess<'de>>(&mut self, name: usize, map: &mut A) -> Result<(), A::Error> {
            match name {
                0 => self.a = Some(map.next_value()?),
                _ => self.b = Some(map.next_value()?),
            }
            Ok(())
        }
    }

    fn read(text: &str) -> IfObject<Pair> {
        serde_json::from_str(text).unwrap()
    }

    #[test]
    fn reads_named_members_and_skips_the_rest() {
        let IfObject::Object(pair) = read(r#"{"x":[1,{"a":2}],"a":{"k":[true]},"y":null}"#) else {
            panic!("an object");
        };
        assert_eq!(pair.a, Some(serde_json::json!({"k": [true]})));
        assert!(pair.b.is_none());
    }

    #[test]
    fn the_last_repeated_member_wins_and_escaped_names_match() {
        let IfObject::Object(pair) = read(r#"{"a":1,"\u0061":2}"#) else {
            panic!("an object");
        };
        assert_eq!(pair.a, Some(Value::from(2)));
    }

    #[test]
    fn anything_but_an_object_is_other() {
        for text in ["[]", "[1,[2]]", "1", "-1", "1.5", "\"s\"", "true", "null"] {
            assert!(matches!(read(text), IfObject::Other), "{text}");
        }
        let IfObject::Object(pair) = read(r#"{"b":{"a":1}}"#) else {
            panic!("an object");
        };
        assert!(matches!(pair.b, Some(IfArray::Other)));
    }

    #[test]
    fn arrays_keep_each_item_in_order() {
        let IfObject::Object(pair) = read(r#"{"b":[{"a":1},2,{"a":3}]}"#) else {
            panic!("an object");
        };
        let Some(IfArray::Array(items)) = pair.b else {
            panic!("an array");
        };
        assert_eq!(items.len(), 3);
        assert!(matches!(&items[0], IfObject::Object(Pair { a: Some(a), .. }) if a == 1));
        assert!(matches!(items[1], IfObject::Other));
        assert!(matches!(&items[2], IfObject::Object(Pair { a: Some(a), .. }) if a == 3));
    }

    #[test]
    fn what_a_value_parse_refuses_is_refused_in_skipped_members_too() {
        for text in [
            r#"{"x":[1,}"#,
            r#"{"a":1"#,
            r#"{"a":1} x"#,
            r#"[{"a":tru}]"#,
            r#"{"x":1e400}"#,
            r#"{"x":{"y":[-1e400]}}"#,
            r#"{"x":"\ud800"}"#,
            r#"{"\udc00":1}"#,
            r#"[1e400]"#,
            r#"{"b":{"x":1e400}}"#,
        ] {
            assert!(serde_json::from_str::<Value>(text).is_err(), "{text}");
            assert!(
                serde_json::from_str::<IfObject<Pair>>(text).is_err(),
                "{text}"
            );
        }
    }
}
