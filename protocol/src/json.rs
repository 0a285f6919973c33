//! Measurements of JSON values used by the limits.

use serde::Serialize;
use serde_json::{Map, Value};
use std::io;

/// Depth of a JSON value: a scalar is 0, an object or array is 1 + its deepest member.
pub fn depth(value: &Value) -> usize {
    match value {
        Value::Array(items) => 1 + items.iter().map(depth).max().unwrap_or(0),
        Value::Object(members) => object_depth(members),
        _ => 0,
    }
}

/// Depth of a JSON object given as its members.
pub fn object_depth(members: &Map<String, Value>) -> usize {
    1 + members.values().map(depth).max().unwrap_or(0)
}

/// Length in characters (Unicode scalar values) of the value's compact JSON serialization,
/// counted without building the string.
pub fn serialized_chars<T: Serialize + ?Sized>(value: &T) -> usize {
    let mut counter = CharCounter(0);
    // Writing to a counter cannot fail, and a `Value` always serializes.
    let _ = serde_json::to_writer(&mut counter, value);
    counter.0
}

/// Counts scalar values in UTF-8 output: every byte that is not a continuation byte starts one.
struct CharCounter(usize);

impl io::Write for CharCounter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0 += buf.iter().filter(|&&b| (b & 0xC0) != 0x80).count();
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn depth_follows_the_contract() {
        assert_eq!(depth(&json!(true)), 0);
        assert_eq!(depth(&json!({})), 1);
        assert_eq!(depth(&json!({"a": true})), 1);
        assert_eq!(depth(&json!({"a": {"b": [1]}})), 3);
        assert_eq!(depth(&json!([[], [[]]])), 3);
    }

    #[test]
    fn serialized_chars_counts_scalar_values() {
        let v = json!({"a": "é😀"});
        let s = serde_json::to_string(&v).unwrap();
        assert_eq!(serialized_chars(&v), s.chars().count());
        assert_eq!(serialized_chars(&v), 10);
        assert_eq!(
            serialized_chars(&json!({"k": "\u{1}"})),
            "{\"k\":\"\\u0001\"}".len()
        );
    }
}
