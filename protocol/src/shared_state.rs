//! The airport's shared state: one JSON object merged by RFC 7396, whose serialized size is
//! tracked member by member so that a patch never re-serializes the whole (up to 1 MB) object.

use super::error::PacketError;
use super::json::serialized_chars;
use super::limits::{MAX_AIRPORT_STATE_CHARS, MAX_SHARED_STATE_CHARS};
use serde_json::{Map, Value};

#[derive(Debug, Clone, Default, PartialEq)]
pub struct SharedState {
    members: Map<String, Value>,
    /// Sum over members of `"key":value` lengths; the object adds braces and commas.
    member_chars: usize,
}

/// A top-level member that a merge changed: its new value, or `None` when it was removed.
pub type MemberChange = (String, Option<Value>);

impl SharedState {
    /// Rebuilds the state from stored members.
    pub fn from_members(members: Map<String, Value>) -> Self {
        let member_chars = members.iter().map(|(k, v)| member_chars(k, v)).sum();
        SharedState {
            members,
            member_chars,
        }
    }

    pub fn as_map(&self) -> &Map<String, Value> {
        &self.members
    }

    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// Characters of the compact serialization of the whole object.
    pub fn serialized_chars(&self) -> usize {
        object_chars(self.members.len(), self.member_chars)
    }

    /// Applies an RFC 7396 merge patch, all or nothing: when the result would exceed the size
    /// limit, or grow the airport's state (`others` characters besides this) past its own,
    /// nothing changes. Returns the top-level members that changed.
    pub fn merge(
        &mut self,
        patch: &Map<String, Value>,
        others: usize,
    ) -> Result<Vec<MemberChange>, PacketError> {
        let mut changes = Vec::with_capacity(patch.len());
        let (mut count, mut chars) = (self.members.len(), self.member_chars);
        for (key, patch_value) in patch {
            let old = self.members.get(key);
            if let Some(old) = old {
                count -= 1;
                chars -= member_chars(key, old);
            }
            let new = (!patch_value.is_null()).then(|| {
                let mut merged = old.cloned().unwrap_or(Value::Null);
                json_patch::merge(&mut merged, patch_value);
                merged
            });
            if let Some(new) = &new {
                count += 1;
                chars += member_chars(key, new);
            }
            changes.push((key.clone(), new));
        }
        let total = object_chars(count, chars);
        if total > MAX_SHARED_STATE_CHARS {
            return Err(PacketError::SharedStateTooLarge { chars: total });
        }
        let airport_total = others.saturating_add(total);
        if airport_total > MAX_AIRPORT_STATE_CHARS && total > self.serialized_chars() {
            return Err(PacketError::AirportStateTooLarge {
                field: "data.sharedStatePatch".into(),
                chars: airport_total,
            });
        }
        for (key, new) in &changes {
            match new {
                Some(value) => self.members.insert(key.clone(), value.clone()),
                None => self.members.remove(key),
            };
        }
        self.member_chars = chars;
        Ok(changes)
    }

    pub fn clear(&mut self) {
        *self = SharedState::default();
    }
}

fn member_chars(key: &str, value: &Value) -> usize {
    serialized_chars(key) + 1 + serialized_chars(value)
}

fn object_chars(count: usize, member_chars: usize) -> usize {
    2 + member_chars + count.saturating_sub(1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn map(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn merge_follows_rfc7396_and_tracks_size() {
        let mut s = SharedState::default();
        assert_eq!(s.serialized_chars(), 2);
        s.merge(&map(json!({"a": {"b": 1, "c": [1, 2]}, "d": "x"})), 0)
            .unwrap();
        s.merge(&map(json!({"a": {"b": null, "e": true}, "d": null})), 0)
            .unwrap();
        assert_eq!(
            Value::Object(s.as_map().clone()),
            json!({"a": {"c": [1, 2], "e": true}})
        );
        assert_eq!(
            s.serialized_chars(),
            serde_json::to_string(s.as_map()).unwrap().chars().count()
        );
    }

    #[test]
    fn oversize_merge_changes_nothing() {
        let mut s = SharedState::default();
        let big = "x".repeat(9_000);
        for i in 0..200 {
            let r = s.merge(&map(json!({ format!("k{i}"): big })), 0);
            if r.is_err() {
                let before = s.clone();
                assert_eq!(
                    s.merge(&map(json!({ format!("k{i}"): big })), 0),
                    Err(PacketError::SharedStateTooLarge {
                        chars: s.serialized_chars()
                            + 1
                            + format!("\"k{i}\":").len()
                            + big.len()
                            + 2
                    })
                );
                assert_eq!(s, before);
                assert!(s.serialized_chars() <= MAX_SHARED_STATE_CHARS);
                return;
            }
        }
        panic!("the limit was never reached");
    }
}
