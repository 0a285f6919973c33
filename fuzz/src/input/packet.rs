//! Frames: a client packet (envelope and body), or text and bytes that are not one.

use super::change::{Change, Key, ObjId, key_text, render_change, render_obj_id};
use super::json::{J, json, quoted, string};
use airport_protocol::limits::MAX_PACKET_CHARS;
use airport_protocol::packet::PacketKind;
use arbitrary::Arbitrary;

#[derive(Arbitrary, Debug, Clone)]
pub enum Packet {
    Typed {
        envelope: Envelope,
        body: Body,
    },
    Typed2 {
        envelope: Envelope,
        body: Body,
    },
    Typed3 {
        envelope: Envelope,
        body: Body,
    },
    Typed4 {
        envelope: Envelope,
        body: Body,
    },
    Raw(String),
    Bytes(Vec<u8>),
    /// `insert` spliced into `base` at byte `at` (modulo its length).
    Spliced {
        base: Box<Packet>,
        at: u16,
        insert: String,
    },
    /// `base` cut at byte `at` (modulo its length; may split a character).
    Truncated {
        base: Box<Packet>,
        at: u16,
    },
    /// `base` followed by spaces up to a size around the packet limit.
    Padded {
        base: Box<Packet>,
        pad: Pad,
    },
}

#[derive(Arbitrary, Debug, Clone, Copy)]
pub enum Pad {
    JustUnder,
    Exactly,
    JustOver,
    WayOver,
}

#[derive(Arbitrary, Debug, Clone)]
pub struct Envelope {
    pub request_id: Option<RequestId>,
    pub airport: Option<AirportField>,
    pub timestamp: Option<i64>,
    pub extra: Option<(Key, J)>,
    /// `type` written after `data` instead of first.
    pub type_last: bool,
}

#[derive(Arbitrary, Debug, Clone)]
pub enum RequestId {
    Short,
    /// 64 characters: the longest allowed.
    Max,
    /// 65 characters.
    TooLong,
    /// 64 two-byte characters (128 bytes): allowed.
    MaxMultibyte,
    Number,
    Null,
    Empty,
    Custom(String),
}

#[derive(Arbitrary, Debug, Clone)]
pub enum AirportField {
    Same,
    Lower,
    Other,
    Number,
    Empty,
    Custom(String),
}

#[derive(Arbitrary, Debug, Clone)]
pub enum Body {
    Heartbeat,
    HeartbeatAck,
    GetState,
    GetOnlinePilots,
    Close,
    StateUpdate(Change),
    StateUpdate2(Change),
    Multi(Vec<Change>),
    /// `count` copies (0..=255, so 200 and 201 are reachable).
    MultiRepeat {
        change: Change,
        count: u8,
    },
    /// `count` replacements of fresh objects `n<start>…`.
    MultiBulk {
        start: u16,
        count: u8,
        state: bool,
    },
    Shared(Vec<(Key, J)>),
    Shared2(Vec<(Key, J)>),
    /// `{key: "xxx…"}` with `chars` characters: near the 10,240 patch limit.
    SharedBig {
        key: Key,
        chars: u16,
    },
    /// `sharedStatePatch` that may be anything.
    SharedAny(J),
    Stopbar(ObjId),
    /// Any client type with any `data` (or none).
    Kind {
        kind: AnyKind,
        data: Option<J>,
    },
    /// Unknown, server-only or non-string types.
    Named {
        name: TypeName,
        data: Option<J>,
    },
    /// No `type` at all.
    Untyped(Option<J>),
}

/// Any client packet type, picked the way `derive(Arbitrary)` picks an enum variant (a `u32`
/// scaled to the count), so that saved inputs keep their meaning.
#[derive(Debug, Clone, Copy)]
pub struct AnyKind(pub PacketKind);

impl<'a> Arbitrary<'a> for AnyKind {
    fn arbitrary(u: &mut arbitrary::Unstructured<'a>) -> arbitrary::Result<Self> {
        let all = PacketKind::ALL;
        let index = (u64::from(u32::arbitrary(u)?) * all.len() as u64) >> 32;
        Ok(AnyKind(all[index as usize]))
    }

    fn size_hint(depth: usize) -> (usize, Option<usize>) {
        u32::size_hint(depth)
    }
}

#[derive(Arbitrary, Debug, Clone)]
pub enum TypeName {
    InitialState,
    StateSnapshot,
    Error,
    ControllerConnect,
    Lowercase,
    Padded,
    Empty,
    Number,
    Null,
    Array,
    Custom(String),
}

impl Packet {
    /// The frame's bytes.
    pub fn render(&self) -> Vec<u8> {
        match self {
            Packet::Typed { envelope, body }
            | Packet::Typed2 { envelope, body }
            | Packet::Typed3 { envelope, body }
            | Packet::Typed4 { envelope, body } => {
                let mut out = String::new();
                render_typed(&mut out, envelope, body);
                out.into_bytes()
            }
            Packet::Raw(text) => text.clone().into_bytes(),
            Packet::Bytes(bytes) => bytes.clone(),
            Packet::Spliced { base, at, insert } => {
                let mut bytes = base.render();
                let at = usize::from(*at) % (bytes.len() + 1);
                bytes.splice(at..at, insert.bytes());
                bytes
            }
            Packet::Truncated { base, at } => {
                let mut bytes = base.render();
                let at = usize::from(*at) % (bytes.len() + 1);
                bytes.truncate(at);
                bytes
            }
            Packet::Padded { base, pad } => {
                let mut bytes = base.render();
                let chars = match std::str::from_utf8(&bytes) {
                    Ok(text) => text.chars().count(),
                    Err(_) => bytes.len(),
                };
                let target = match pad {
                    Pad::JustUnder => MAX_PACKET_CHARS - 1,
                    Pad::Exactly => MAX_PACKET_CHARS,
                    Pad::JustOver => MAX_PACKET_CHARS + 1,
                    Pad::WayOver => MAX_PACKET_CHARS + 5_000,
                };
                bytes.resize(bytes.len() + target.saturating_sub(chars), b' ');
                bytes
            }
        }
    }
}

fn render_typed(out: &mut String, envelope: &Envelope, body: &Body) {
    let mut fields: Vec<String> = Vec::new();
    let mut field = |name: &str, value: String| {
        let mut f = String::new();
        string(&mut f, name);
        f.push(':');
        f.push_str(&value);
        fields.push(f);
    };
    let (type_token, data) = body_parts(body);
    let type_field = type_token.map(|t| ("type", t));
    if !envelope.type_last
        && let Some((name, t)) = &type_field
    {
        field(name, t.clone());
    }
    if let Some(data) = data {
        field("data", data);
    }
    if envelope.type_last
        && let Some((name, t)) = &type_field
    {
        field(name, t.clone());
    }
    if let Some(id) = &envelope.request_id {
        field("requestId", render_request_id(id));
    }
    if let Some(airport) = &envelope.airport {
        field("airport", render_airport(airport));
    }
    if let Some(ts) = envelope.timestamp {
        field("timestamp", ts.to_string());
    }
    if let Some((key, value)) = &envelope.extra {
        field(key_text(key), json(value));
    }
    out.push('{');
    out.push_str(&fields.join(","));
    out.push('}');
}

fn render_request_id(id: &RequestId) -> String {
    match id {
        RequestId::Short => quoted("r-17"),
        RequestId::Max => quoted(&"r".repeat(64)),
        RequestId::TooLong => quoted(&"r".repeat(65)),
        RequestId::MaxMultibyte => quoted(&"é".repeat(64)),
        RequestId::Number => "17".into(),
        RequestId::Null => "null".into(),
        RequestId::Empty => quoted(""),
        RequestId::Custom(s) => quoted(s),
    }
}

fn render_airport(airport: &AirportField) -> String {
    match airport {
        AirportField::Same => quoted(crate::AIRPORT),
        AirportField::Lower => quoted(&crate::AIRPORT.to_ascii_lowercase()),
        AirportField::Other => quoted("EGKK"),
        AirportField::Number => "1234".into(),
        AirportField::Empty => quoted(""),
        AirportField::Custom(s) => quoted(s),
    }
}

/// (`type` token, `data` text)
fn body_parts(body: &Body) -> (Option<String>, Option<String>) {
    let t = |kind: PacketKind| Some(quoted(kind.name()));
    match body {
        Body::Heartbeat => (t(PacketKind::Heartbeat), None),
        Body::HeartbeatAck => (t(PacketKind::HeartbeatAck), None),
        Body::GetState => (t(PacketKind::GetState), None),
        Body::GetOnlinePilots => (t(PacketKind::GetOnlinePilots), None),
        Body::Close => (t(PacketKind::Close), None),
        Body::StateUpdate(change) | Body::StateUpdate2(change) => {
            (t(PacketKind::StateUpdate), Some(render_change(change)))
        }
        Body::Multi(changes) => {
            let items: Vec<String> = changes.iter().map(render_change).collect();
            (t(PacketKind::MultiStateUpdate), Some(updates(&items)))
        }
        Body::MultiRepeat { change, count } => {
            let item = render_change(change);
            // Not much past the packet limit: 200 and 201 copies of small items stay reachable.
            let fit = (2 * MAX_PACKET_CHARS / (item.len() + 1)).max(1);
            let items = vec![item; usize::from(*count).min(fit)];
            (t(PacketKind::MultiStateUpdate), Some(updates(&items)))
        }
        Body::MultiBulk {
            start,
            count,
            state,
        } => {
            let items: Vec<String> = (0..usize::from(*count))
                .map(|i| {
                    format!(
                        "{{\"objectId\":\"n{}\",\"state\":{state}}}",
                        usize::from(*start) + i
                    )
                })
                .collect();
            (t(PacketKind::MultiStateUpdate), Some(updates(&items)))
        }
        Body::Shared(members) | Body::Shared2(members) => {
            let patch = json(&J::Obj(members.clone()));
            (
                t(PacketKind::SharedStateUpdate),
                Some(format!("{{\"sharedStatePatch\":{patch}}}")),
            )
        }
        Body::SharedBig { key, chars } => {
            let patch = format!(
                "{{{}:{}}}",
                quoted(key_text(key)),
                quoted(&"x".repeat(usize::from(*chars)))
            );
            (
                t(PacketKind::SharedStateUpdate),
                Some(format!("{{\"sharedStatePatch\":{patch}}}")),
            )
        }
        Body::SharedAny(patch) => (
            t(PacketKind::SharedStateUpdate),
            Some(format!("{{\"sharedStatePatch\":{}}}", json(patch))),
        ),
        Body::Stopbar(id) => {
            let mut data = String::from("{");
            if let Some(id) = render_obj_id(id) {
                data.push_str("\"objectId\":");
                data.push_str(&id);
            }
            data.push('}');
            (t(PacketKind::StopbarCrossing), Some(data))
        }
        Body::Kind { kind, data } => (t(kind.0), data.as_ref().map(json)),
        Body::Named { name, data } => {
            let token = match name {
                TypeName::InitialState => quoted("INITIAL_STATE"),
                TypeName::StateSnapshot => quoted("STATE_SNAPSHOT"),
                TypeName::Error => quoted("ERROR"),
                TypeName::ControllerConnect => quoted("CONTROLLER_CONNECT"),
                TypeName::Lowercase => quoted("heartbeat"),
                TypeName::Padded => quoted(" HEARTBEAT"),
                TypeName::Empty => quoted(""),
                TypeName::Number => "7".into(),
                TypeName::Null => "null".into(),
                TypeName::Array => "[\"HEARTBEAT\"]".into(),
                TypeName::Custom(s) => quoted(s),
            };
            (Some(token), data.as_ref().map(json))
        }
        Body::Untyped(data) => (None, data.as_ref().map(json)),
    }
}

fn updates(items: &[String]) -> String {
    format!("{{\"updates\":[{}]}}", items.join(","))
}
