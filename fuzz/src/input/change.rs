//! What one state change carries: an object id, and a state, a patch, both or neither.

use super::json::{J, NumTok, json, quoted};
use arbitrary::Arbitrary;

#[derive(Arbitrary, Debug, Clone)]
pub struct Change {
    pub id: ObjId,
    pub op: Op,
}

#[derive(Arbitrary, Debug, Clone)]
pub enum Op {
    /// `state` that is an object.
    StateObj(Vec<(Key, J)>),
    StateBool(bool),
    /// `patch` that is an object.
    PatchObj(Vec<(Key, J)>),
    PatchObj2(Vec<(Key, J)>),
    /// `patch: null`.
    Delete,
    /// `state` or `patch` that may be anything.
    State(J),
    Patch(J),
    Both(J, J),
    Neither,
    /// A `state` or `patch` nested exactly `depth` (modulo 20) levels: 16 passes, 17 does not.
    Deep {
        depth: u8,
        patch: bool,
        array_inside: bool,
    },
    /// `{key: "xxx…"}` of `chars` characters, as a state or a patch: patches grow an object
    /// towards the object-state limit.
    Big {
        key: Key,
        chars: u16,
        patch: bool,
    },
    /// `state` made of numbers whose serialization is longer than their spelling.
    Numbers {
        spelling: NumTok,
        count: u16,
        patch: bool,
    },
}

#[derive(Arbitrary, Debug, Clone)]
pub enum ObjId {
    A,
    Stopbar,
    Dash,
    /// `o0` … `o31`.
    Gen(u8),
    Gen2(u8),
    /// `p0` … `p9999`: the prefilled objects.
    Prefilled(u16),
    /// 128 characters: the longest allowed.
    Max,
    /// 129 characters.
    TooLong,
    Empty,
    Space,
    Dot,
    Unicode,
    Number,
    Null,
    Missing,
    Custom(String),
}

#[derive(Arbitrary, Debug, Clone)]
pub enum Key {
    A,
    B,
    C,
    On,
    State,
    Patch,
    ObjectId,
    Type,
    Empty,
    Unicode,
    Custom(String),
}

pub(super) fn render_obj_id(id: &ObjId) -> Option<String> {
    Some(match id {
        ObjId::A => quoted("A"),
        ObjId::Stopbar => quoted("SB_27L_A1"),
        ObjId::Dash => quoted("lead-on-2"),
        ObjId::Gen(n) | ObjId::Gen2(n) => quoted(&format!("o{}", n % 32)),
        ObjId::Prefilled(n) => quoted(&format!("p{}", n % 10_000)),
        ObjId::Max => quoted(&"m".repeat(128)),
        ObjId::TooLong => quoted(&"m".repeat(129)),
        ObjId::Empty => quoted(""),
        ObjId::Space => quoted("SB 27L"),
        ObjId::Dot => quoted("SB.27L"),
        ObjId::Unicode => quoted("SBé"),
        ObjId::Number => "27".into(),
        ObjId::Null => "null".into(),
        ObjId::Missing => return None,
        ObjId::Custom(s) => quoted(s),
    })
}

pub(super) fn render_change(change: &Change) -> String {
    let mut fields = Vec::new();
    if let Some(id) = render_obj_id(&change.id) {
        fields.push(format!("\"objectId\":{id}"));
    }
    match &change.op {
        Op::StateObj(members) => {
            fields.push(format!("\"state\":{}", json(&J::Obj(members.clone()))))
        }
        Op::PatchObj(members) | Op::PatchObj2(members) => {
            fields.push(format!("\"patch\":{}", json(&J::Obj(members.clone()))))
        }
        Op::State(v) => fields.push(format!("\"state\":{}", json(v))),
        Op::Patch(v) => fields.push(format!("\"patch\":{}", json(v))),
        Op::Delete => fields.push("\"patch\":null".into()),
        Op::StateBool(b) => fields.push(format!("\"state\":{b}")),
        Op::Both(s, p) => {
            fields.push(format!("\"state\":{}", json(s)));
            fields.push(format!("\"patch\":{}", json(p)));
        }
        Op::Neither => {}
        Op::Deep {
            depth,
            patch,
            array_inside,
        } => {
            let depth = usize::from(*depth % 20).max(1);
            // An object at the top (a patch must be one), then objects or arrays inside.
            let mut value = String::from("{\"n\":");
            for _ in 1..depth {
                value.push_str(if *array_inside { "[" } else { "{\"n\":" });
            }
            value.push_str("true");
            for _ in 1..depth {
                value.push(if *array_inside { ']' } else { '}' });
            }
            value.push('}');
            let name = if *patch { "patch" } else { "state" };
            fields.push(format!("\"{name}\":{value}"));
        }
        Op::Big { key, chars, patch } => {
            let name = if *patch { "patch" } else { "state" };
            fields.push(format!(
                "\"{name}\":{{{}:{}}}",
                quoted(key_text(key)),
                quoted(&"x".repeat(usize::from(*chars)))
            ));
        }
        Op::Numbers {
            spelling,
            count,
            patch,
        } => {
            let name = if *patch { "patch" } else { "state" };
            let items = vec![spelling.spelling(); usize::from(*count)];
            fields.push(format!("\"{name}\":{{\"v\":[{}]}}", items.join(",")));
        }
    }
    format!("{{{}}}", fields.join(","))
}

pub(super) fn key_text(key: &Key) -> &str {
    match key {
        Key::A => "a",
        Key::B => "b",
        Key::C => "c",
        Key::On => "on",
        Key::State => "state",
        Key::Patch => "patch",
        Key::ObjectId => "objectId",
        Key::Type => "type",
        Key::Empty => "",
        Key::Unicode => "clé😀",
        Key::Custom(s) => s,
    }
}
