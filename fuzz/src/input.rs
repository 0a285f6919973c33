//! Structured inputs for the `state_machine` target. Packets are built from the client packet
//! list of PROTOCOL §3 and rendered to text by hand (not through `serde_json`), so that they can
//! carry what a `Value` cannot: duplicate keys, number spellings such as `1e15` or `-0`, escapes,
//! lone surrogates, truncation, padding to the size limit, raw strings and raw bytes.

use arbitrary::Arbitrary;
use std::fmt::Write as _;

use airport_protocol::limits::MAX_PACKET_CHARS;
use airport_protocol::packet::PacketKind;

/// A whole run: how packets are paced, what the airport starts with, and what happens.
#[derive(Arbitrary, Debug, Clone)]
pub struct Scenario {
    pub limit: LimitMode,
    pub prefill: Prefill,
    pub steps: Vec<Step>,
}

#[derive(Arbitrary, Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitMode {
    /// No rate limiting (mostly: three variants of four).
    Unlimited,
    Unlimited2,
    Unlimited3,
    /// Production's limits for each role (`RateLimits::default()`), paced by the steps' `dt`.
    Default,
}

/// What storage holds when the airport is restored, so that the limits are reachable quickly.
/// Near-limit airports are costly to copy and compare, so `arbitrary` picks them for one run in
/// about eleven (see the `Arbitrary` impl below).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Prefill {
    Empty,
    /// Three objects and a little shared state.
    Some,
    /// 9,995 objects: a few more reach `MAX_OBJECTS`.
    NearObjectLimit,
    /// `MAX_OBJECTS` objects.
    AtObjectLimit,
    /// About 995,000 characters of shared state.
    NearSharedLimit,
}

impl<'a> Arbitrary<'a> for Prefill {
    fn arbitrary(u: &mut arbitrary::Unstructured<'a>) -> arbitrary::Result<Self> {
        Ok(match u8::arbitrary(u)? % 32 {
            0 => Prefill::NearObjectLimit,
            1 => Prefill::AtObjectLimit,
            2 => Prefill::NearSharedLimit,
            3..=15 => Prefill::Some,
            _ => Prefill::Empty,
        })
    }

    fn size_hint(_depth: usize) -> (usize, Option<usize>) {
        (1, Some(1))
    }
}

impl Prefill {
    /// (objects, shared characters)
    pub fn sizes(self) -> (usize, usize) {
        match self {
            Prefill::Empty => (0, 0),
            Prefill::Some => (3, 0),
            Prefill::NearObjectLimit => (9_995, 0),
            Prefill::AtObjectLimit => (10_000, 0),
            Prefill::NearSharedLimit => (3, 995_000),
        }
    }
}

#[derive(Arbitrary, Debug, Clone)]
pub enum Step {
    /// One inbound frame from `who`, `dt` ms after the previous event.
    Frame {
        who: Who,
        dt: u8,
        binary: bool,
        packet: Packet,
    },
    Frame2 {
        who: Who,
        dt: u8,
        binary: bool,
        packet: Packet,
    },
    /// A socket of `who` was accepted.
    Join { who: Who },
    /// A socket of `who` closed.
    Leave { who: Who },
    /// Time passes (taken modulo 200 s).
    Wait { ms: u32 },
    /// The Durable Object's alarm: the offline clearing when it is due.
    Alarm,
}

#[derive(Arbitrary, Debug, Clone, Copy, PartialEq, Eq)]
pub struct Who {
    pub role: RoleChoice,
    /// One of four people (taken modulo 4).
    pub person: u8,
    /// Pilots only: whether the role source knows a callsign.
    pub callsign: bool,
}

#[derive(Arbitrary, Debug, Clone, Copy, PartialEq, Eq)]
pub enum RoleChoice {
    Controller,
    Controller2,
    Pilot,
    Observer,
}

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

/// A small JSON tree.
#[derive(Arbitrary, Debug, Clone)]
pub enum J {
    Null,
    Bool(bool),
    Int(i32),
    Num(NumTok),
    Float(f64),
    Str(Str),
    Arr(Vec<J>),
    Obj(Vec<(Key, J)>),
    /// `depth` (modulo 20) levels of `{"n": …}` or `[…]` around `leaf`.
    Nest {
        depth: u8,
        array: bool,
        leaf: Box<J>,
    },
}

#[derive(Arbitrary, Debug, Clone, Copy)]
pub enum NumTok {
    Exp15,
    NegZero,
    ExpPlus,
    Tiny,
    Huge,
    U64Max,
    I64Min,
    OutOfRange,
    LeadingZero,
    TrailingDot,
    Minus,
}

impl NumTok {
    pub fn spelling(self) -> &'static str {
        match self {
            NumTok::Exp15 => "1e15",
            NumTok::NegZero => "-0",
            NumTok::ExpPlus => "1E+2",
            NumTok::Tiny => "1e-7",
            NumTok::Huge => "123456789012345678901234567890",
            NumTok::U64Max => "18446744073709551615",
            NumTok::I64Min => "-9223372036854775808",
            NumTok::OutOfRange => "1e400",
            NumTok::LeadingZero => "01",
            NumTok::TrailingDot => "1.",
            NumTok::Minus => "-",
        }
    }
}

#[derive(Arbitrary, Debug, Clone)]
pub enum Str {
    Word(Word),
    Text(String),
    /// Every character written as `\uXXXX` (surrogate pairs beyond the BMP).
    Escaped(String),
    Repeat {
        ch: char,
        count: u16,
    },
    LoneSurrogate,
    BadEscape,
}

#[derive(Arbitrary, Debug, Clone, Copy)]
pub enum Word {
    Empty,
    On,
    Red,
    Unicode,
    Control,
    Quote,
}

// ---------------------------------------------------------------------------------------------
// Rendering

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

fn string(out: &mut String, s: &str) {
    out.push_str(&serde_json::to_string(s).expect("a string serializes"));
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
        let mut v = String::new();
        render_j(&mut v, value);
        field(key_text(key), v);
    }
    out.push('{');
    out.push_str(&fields.join(","));
    out.push('}');
}

fn quoted(s: &str) -> String {
    let mut out = String::new();
    string(&mut out, s);
    out
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
    let j = |value: &J| {
        let mut out = String::new();
        render_j(&mut out, value);
        out
    };
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
            let mut patch = String::new();
            render_j(&mut patch, &J::Obj(members.clone()));
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
            Some(format!("{{\"sharedStatePatch\":{}}}", j(patch))),
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
        Body::Kind { kind, data } => (t(kind.0), data.as_ref().map(j)),
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
            (Some(token), data.as_ref().map(j))
        }
        Body::Untyped(data) => (None, data.as_ref().map(j)),
    }
}

fn updates(items: &[String]) -> String {
    format!("{{\"updates\":[{}]}}", items.join(","))
}

fn render_obj_id(id: &ObjId) -> Option<String> {
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

fn render_change(change: &Change) -> String {
    let mut fields = Vec::new();
    if let Some(id) = render_obj_id(&change.id) {
        fields.push(format!("\"objectId\":{id}"));
    }
    let j = |value: &J| {
        let mut out = String::new();
        render_j(&mut out, value);
        out
    };
    match &change.op {
        Op::StateObj(members) => fields.push(format!("\"state\":{}", j(&J::Obj(members.clone())))),
        Op::PatchObj(members) | Op::PatchObj2(members) => {
            fields.push(format!("\"patch\":{}", j(&J::Obj(members.clone()))))
        }
        Op::State(v) => fields.push(format!("\"state\":{}", j(v))),
        Op::Patch(v) => fields.push(format!("\"patch\":{}", j(v))),
        Op::Delete => fields.push("\"patch\":null".into()),
        Op::StateBool(b) => fields.push(format!("\"state\":{b}")),
        Op::Both(s, p) => {
            fields.push(format!("\"state\":{}", j(s)));
            fields.push(format!("\"patch\":{}", j(p)));
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

fn key_text(key: &Key) -> &str {
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

pub fn render_j(out: &mut String, value: &J) {
    match value {
        J::Null => out.push_str("null"),
        J::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        J::Int(n) => {
            let _ = write!(out, "{n}");
        }
        J::Num(tok) => out.push_str(tok.spelling()),
        J::Float(f) => match serde_json::Number::from_f64(*f) {
            Some(n) => out.push_str(&n.to_string()),
            None => out.push_str("1.5"),
        },
        J::Str(s) => render_str(out, s),
        J::Arr(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                render_j(out, item);
            }
            out.push(']');
        }
        J::Obj(members) => {
            out.push('{');
            for (i, (key, item)) in members.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                string(out, key_text(key));
                out.push(':');
                render_j(out, item);
            }
            out.push('}');
        }
        J::Nest { depth, array, leaf } => {
            let depth = usize::from(*depth % 20);
            for _ in 0..depth {
                out.push_str(if *array { "[" } else { "{\"n\":" });
            }
            render_j(out, leaf);
            for _ in 0..depth {
                out.push(if *array { ']' } else { '}' });
            }
        }
    }
}

fn render_str(out: &mut String, s: &Str) {
    match s {
        Str::Word(word) => string(
            out,
            match word {
                Word::Empty => "",
                Word::On => "on",
                Word::Red => "red",
                Word::Unicode => "é😀",
                Word::Control => "\u{1}\n",
                Word::Quote => "\"\\",
            },
        ),
        Str::Text(text) => string(out, text),
        Str::Escaped(text) => {
            out.push('"');
            for unit in text.encode_utf16() {
                let _ = write!(out, "\\u{unit:04x}");
            }
            out.push('"');
        }
        // At most 12,000: enough to cross the 10,240-character patch limit; longer strings
        // only slow the runs down (the packet limit is reached with `Padded` or `Big`).
        Str::Repeat { ch, count } => {
            string(out, &ch.to_string().repeat(usize::from(*count) % 12_001))
        }
        Str::LoneSurrogate => out.push_str("\"\\ud800\""),
        Str::BadEscape => out.push_str("\"\\x41\""),
    }
}
