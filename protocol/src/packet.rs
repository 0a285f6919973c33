//! Decoding and validating client frames into commands. Nothing here touches airport state.

use super::error::PacketError;
use super::ids::{Icao, is_valid_object_id};
use super::json::{depth, object_depth, serialized_chars};
use super::limits::*;
use super::members::{IfArray, IfObject, Members, ObjectOrArray};
use super::role::Role;
use serde::Deserialize;
use serde::de::MapAccess;
use serde_json::{Map, Value};
use std::fmt;

/// One inbound WebSocket message as the runtime hands it over.
#[derive(Debug, Clone, Copy)]
pub enum Frame<'a> {
    Text(&'a str),
    Binary(&'a [u8]),
}

impl Frame<'_> {
    /// Its length in bytes, which is what its budgets charge.
    pub fn bytes(self) -> usize {
        match self {
            Frame::Text(text) => text.len(),
            Frame::Binary(bytes) => bytes.len(),
        }
    }
}

/// The client packet types of PROTOCOL §3.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PacketKind {
    Heartbeat,
    HeartbeatAck,
    GetState,
    GetOnlinePilots,
    StateUpdate,
    MultiStateUpdate,
    SharedStateUpdate,
    StopbarCrossing,
    Close,
}

impl PacketKind {
    pub const ALL: [PacketKind; 9] = [
        PacketKind::Heartbeat,
        PacketKind::HeartbeatAck,
        PacketKind::GetState,
        PacketKind::GetOnlinePilots,
        PacketKind::StateUpdate,
        PacketKind::MultiStateUpdate,
        PacketKind::SharedStateUpdate,
        PacketKind::StopbarCrossing,
        PacketKind::Close,
    ];

    pub fn name(self) -> &'static str {
        match self {
            PacketKind::Heartbeat => "HEARTBEAT",
            PacketKind::HeartbeatAck => "HEARTBEAT_ACK",
            PacketKind::GetState => "GET_STATE",
            PacketKind::GetOnlinePilots => "GET_ONLINE_PILOTS",
            PacketKind::StateUpdate => "STATE_UPDATE",
            PacketKind::MultiStateUpdate => "MULTI_STATE_UPDATE",
            PacketKind::SharedStateUpdate => "SHARED_STATE_UPDATE",
            PacketKind::StopbarCrossing => "STOPBAR_CROSSING",
            PacketKind::Close => "CLOSE",
        }
    }

    /// Case-sensitive; server-only types are not client types.
    pub fn from_name(name: &str) -> Option<PacketKind> {
        PacketKind::ALL.into_iter().find(|k| k.name() == name)
    }

    /// Whether handling it reads the airport's objects: a snapshot, or a change (a shared-state
    /// change is bounded by the objects' size too).
    pub fn reads_objects(self) -> bool {
        matches!(
            self,
            PacketKind::GetState
                | PacketKind::StateUpdate
                | PacketKind::MultiStateUpdate
                | PacketKind::SharedStateUpdate
        )
    }

    pub fn allowed_for(self, role: Role) -> bool {
        match self {
            PacketKind::StateUpdate
            | PacketKind::MultiStateUpdate
            | PacketKind::SharedStateUpdate => role == Role::Controller,
            PacketKind::StopbarCrossing => role == Role::Pilot,
            _ => true,
        }
    }
}

/// A decoded packet: its type, its (still unvalidated) `data`, and the `requestId` to echo.
#[derive(Debug)]
pub struct Envelope {
    pub request_id: Option<String>,
    pub kind: PacketKind,
    pub data: Data,
}

/// A packet's `data` as read from the frame, before [`parse_command`] validates it for the
/// packet's type: an object, or a bare array of batch items (the vatSys plugin's
/// `MULTI_STATE_UPDATE`, PROTOCOL §7).
#[derive(Debug)]
pub struct Data(Option<ObjectOrArray<DataMembers, ChangeMembers>>);

impl Data {
    /// A batch's items and how they were sent: `data.updates`, or `data` itself an array.
    fn batch(self) -> Option<(Vec<IfObject<ChangeMembers>>, BatchForm)> {
        match self.0? {
            ObjectOrArray::Object(DataMembers {
                updates: Some(IfArray::Array(items)),
                ..
            }) => Some((items, BatchForm::Updates)),
            ObjectOrArray::Array(items) => Some((items, BatchForm::Bare)),
            _ => None,
        }
    }

    /// Whether this is one of the controller plugins' lighting packets that PROTOCOL §7 lets
    /// be large: a batch whose every item is exactly `{objectId, state: <boolean>}`, or a
    /// `sharedStatePatch` of only the lighting graph's members.
    fn is_lighting(&self, kind: PacketKind) -> bool {
        let boolean_only = |items: &[IfObject<ChangeMembers>]| {
            !items.is_empty()
                && items.iter().all(|item| match item {
                    IfObject::Object(change) => change.is_boolean_only(),
                    IfObject::Other => false,
                })
        };
        match (kind, &self.0) {
            (PacketKind::MultiStateUpdate, Some(ObjectOrArray::Array(items))) => {
                boolean_only(items)
            }
            (PacketKind::MultiStateUpdate, Some(ObjectOrArray::Object(data))) => {
                matches!(&data.updates, Some(IfArray::Array(items)) if boolean_only(items))
            }
            (PacketKind::SharedStateUpdate, Some(ObjectOrArray::Object(data))) => {
                matches!(&data.shared_state_patch, Some(Value::Object(patch))
                    if patch.keys().all(|key| LIGHTING_GRAPH_MEMBERS.contains(&key.as_str())))
            }
            _ => false,
        }
    }

    fn object(self) -> Result<DataMembers, PacketError> {
        match self.0 {
            Some(ObjectOrArray::Object(members)) => Ok(members),
            _ => Err(PacketError::field("data", "a JSON object is required")),
        }
    }
}

/// How a batch's items were sent, which is how error messages name them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BatchForm {
    /// `data: {updates: [...]}`.
    Updates,
    /// `data: [...]`, the vatSys plugin's form.
    Bare,
}

impl BatchForm {
    pub fn at(self, index: usize) -> ChangeAt {
        match self {
            BatchForm::Updates => ChangeAt::Item(index),
            BatchForm::Bare => ChangeAt::BareItem(index),
        }
    }

    fn field(self) -> &'static str {
        match self {
            BatchForm::Updates => "data.updates",
            BatchForm::Bare => "data",
        }
    }
}

/// The envelope's members.
#[derive(Default)]
struct EnvelopeMembers {
    request_id: Option<Value>,
    kind: Option<Value>,
    airport: Option<Value>,
    data: Option<ObjectOrArray<DataMembers, ChangeMembers>>,
}

impl<'a> Members<'a> for EnvelopeMembers {
    const NAMES: &'static [&'static str] = &["requestId", "type", "airport", "data"];

    fn read<A: MapAccess<'a>>(&mut self, name: usize, map: &mut A) -> Result<(), A::Error> {
        match name {
            0 => self.request_id = Some(map.next_value()?),
            1 => self.kind = Some(map.next_value()?),
            2 => self.airport = Some(map.next_value()?),
            _ => self.data = Some(map.next_value()?),
        }
        Ok(())
    }
}

impl EnvelopeMembers {
    /// The `requestId`, if it is one that may be echoed.
    fn take_request_id(&mut self) -> Result<Option<String>, PacketError> {
        match self.request_id.take() {
            None => Ok(None),
            Some(Value::String(id)) if id.chars().count() <= MAX_REQUEST_ID_CHARS => Ok(Some(id)),
            Some(_) => Err(PacketError::field(
                "requestId",
                format!("must be a string of at most {MAX_REQUEST_ID_CHARS} characters"),
            )),
        }
    }
}

/// The members of a change: a `STATE_UPDATE`'s `data` or a batch item.
#[derive(Default, Debug)]
pub struct ChangeMembers {
    object_id: Option<Value>,
    state: Option<Value>,
    /// `Some(Value::Null)` is `patch: null`, told apart from no `patch`.
    patch: Option<Value>,
    /// It had members besides these.
    extra: bool,
}

impl ChangeMembers {
    /// Exactly `{objectId: <string>, state: <boolean>}`.
    fn is_boolean_only(&self) -> bool {
        !self.extra
            && self.patch.is_none()
            && matches!(self.state, Some(Value::Bool(_)))
            && matches!(self.object_id, Some(Value::String(_)))
    }
}

impl<'a> Members<'a> for ChangeMembers {
    const NAMES: &'static [&'static str] = &["objectId", "state", "patch"];

    fn read<A: MapAccess<'a>>(&mut self, name: usize, map: &mut A) -> Result<(), A::Error> {
        let value = Some(map.next_value()?);
        match name {
            0 => self.object_id = value,
            1 => self.state = value,
            _ => self.patch = value,
        }
        Ok(())
    }

    fn skipped(&mut self) {
        self.extra = true;
    }
}

/// The members any packet type reads from `data`, read in the same pass as the envelope,
/// before the type is known (`type` may come after `data`).
#[derive(Default, Debug)]
pub struct DataMembers {
    /// `STATE_UPDATE`'s change; `STOPBAR_CROSSING` reads its `objectId`.
    change: ChangeMembers,
    updates: Option<IfArray<ChangeMembers>>,
    shared_state_patch: Option<Value>,
}

impl<'a> Members<'a> for DataMembers {
    const NAMES: &'static [&'static str] =
        &["objectId", "state", "patch", "updates", "sharedStatePatch"];

    fn read<A: MapAccess<'a>>(&mut self, name: usize, map: &mut A) -> Result<(), A::Error> {
        match name {
            0..=2 => self.change.read(name, map)?,
            3 => self.updates = Some(map.next_value()?),
            _ => self.shared_state_patch = Some(map.next_value()?),
        }
        Ok(())
    }
}

/// A rejected frame, with the `requestId` to echo when the frame had a valid one.
#[derive(Debug, PartialEq, Eq)]
pub struct Rejection {
    pub request_id: Option<String>,
    pub error: PacketError,
}

impl From<PacketError> for Rejection {
    fn from(error: PacketError) -> Self {
        Rejection {
            request_id: None,
            error,
        }
    }
}

/// How deep a frame may nest before it is refused unparsed. A valid packet nests at most
/// 4 + 16 (envelope, `data`, `updates`, item, value); the headroom lets a value that is a little
/// too deep reach the per-field check, which names the field (and the item's index), while
/// staying far below the parser's own recursion limit.
const MAX_PACKET_DEPTH: usize = 64;

/// Frame → envelope: size, UTF-8, JSON, object shape, `requestId`, `type`, `airport`. The
/// frame is read in one pass, which finds every JSON error before anything else is checked.
/// `role` is the sender's: only a controller's frame may be a large lighting packet.
pub fn decode(frame: Frame<'_>, airport: &Icao, role: Role) -> Result<Envelope, Rejection> {
    let (mut packet, large) = read_frame(frame, role)?;
    let request_id = packet.take_request_id()?;
    let reject = |error| Rejection {
        request_id: request_id.clone(),
        error,
    };
    let kind = match &packet.kind {
        Some(Value::String(name)) => PacketKind::from_name(name),
        _ => None,
    };
    let data = Data(packet.data);
    if let Some(chars) = large
        && !kind.is_some_and(|kind| data.is_lighting(kind))
    {
        return Err(reject(PacketError::TooLarge { chars }));
    }
    let kind = match (&packet.kind, kind) {
        (_, Some(kind)) => kind,
        (Some(Value::String(name)), None) => {
            return Err(reject(PacketError::UnknownType(echo(name))));
        }
        _ => return Err(reject(PacketError::field("type", "a string is required"))),
    };
    match &packet.airport {
        None => {}
        Some(Value::String(claimed)) if airport.matches(claimed) => {}
        Some(Value::String(claimed)) => {
            return Err(reject(PacketError::AirportMismatch {
                claimed: echo(claimed),
                connected: airport.to_string(),
            }));
        }
        Some(_) => return Err(reject(PacketError::field("airport", "must be a string"))),
    }
    Ok(Envelope {
        request_id,
        kind,
        data,
    })
}

/// The `requestId` of a frame that will not be handled (it was rate limited), so that the error
/// can still echo it. Frames that fail the size, UTF-8, depth or JSON checks have none.
pub fn peek_request_id(frame: Frame<'_>, role: Role) -> Option<String> {
    // Its `requestId` counts only when decode would accept it.
    read_frame(frame, role).ok()?.0.take_request_id().ok()?
}

/// Whether `decode` reads the frame as a packet that reads the airport's objects and `role` may
/// send ([`PacketKind::reads_objects`]). Read as `decode` reads it, so that a frame it says
/// no to never gets to the objects.
pub fn reads_objects(frame: Frame<'_>, role: Role) -> bool {
    let Ok((packet, _)) = read_frame(frame, role) else {
        return false;
    };
    match &packet.kind {
        Some(Value::String(name)) => PacketKind::from_name(name)
            .is_some_and(|kind| kind.reads_objects() && kind.allowed_for(role)),
        _ => false,
    }
}

/// The envelope's members, after the size, UTF-8, depth and JSON checks and the check that the
/// frame is a JSON object; with the frame's length in characters when it is over the normal
/// limit but may be a lighting packet (which `decode` then checks).
fn read_frame(
    frame: Frame<'_>,
    role: Role,
) -> Result<(EnvelopeMembers, Option<usize>), PacketError> {
    let (text, large) = frame_text(frame, role)?;
    if bracket_depth(text) > MAX_PACKET_DEPTH {
        return Err(PacketError::field(
            "packet",
            format!(
                "nested deeper than {MAX_PACKET_DEPTH} levels (state, patch and sharedStatePatch values may nest {MAX_VALUE_DEPTH})"
            ),
        ));
    }
    match read_json::<IfObject<EnvelopeMembers>>(text)? {
        IfObject::Object(packet) => Ok((packet, large)),
        IfObject::Other => Err(PacketError::NotAnObject),
    }
}

/// Parses JSON text; a syntax error is `INVALID_JSON`.
fn read_json<'a, T: Deserialize<'a>>(text: &'a str) -> Result<T, PacketError> {
    serde_json::from_str(text).map_err(|e| PacketError::InvalidJson(e.to_string()))
}

/// A client's string quoted back in an error message, cut short so that an error can never be
/// much larger than a normal packet.
fn echo(value: &str) -> String {
    const MAX_ECHO_CHARS: usize = 64;
    match value.char_indices().nth(MAX_ECHO_CHARS) {
        Some((end, _)) => format!("{}…", &value[..end]),
        None => value.to_owned(),
    }
}

/// The frame's text after the size and UTF-8 checks, with its length in characters when it is
/// over the normal limit. Such a frame is read only when it may be a lighting packet: it is a
/// controller's, within the larger limit, and names one of the two packet types (a cheap
/// substring search, so most oversize frames are refused without being parsed).
fn frame_text(frame: Frame<'_>, role: Role) -> Result<(&str, Option<usize>), PacketError> {
    let bytes = match frame {
        Frame::Text(text) => text.as_bytes(),
        Frame::Binary(bytes) => bytes,
    };
    // A frame of at most MAX bytes has at most MAX characters: only count when it could matter.
    let mut large = None;
    if bytes.len() > MAX_PACKET_CHARS {
        let chars = match frame {
            Frame::Text(text) => text.chars().count(),
            // Not yet known to be UTF-8: count the bytes that start a character.
            Frame::Binary(bytes) => bytes.iter().filter(|&&b| (b & 0xC0) != 0x80).count(),
        };
        if chars > MAX_PACKET_CHARS {
            if role != Role::Controller || chars > MAX_LIGHTING_PACKET_CHARS {
                return Err(PacketError::TooLarge { chars });
            }
            large = Some(chars);
        }
    }
    let text = match frame {
        Frame::Text(text) => text,
        Frame::Binary(bytes) => std::str::from_utf8(bytes).map_err(|_| PacketError::NotUtf8)?,
    };
    if let Some(chars) = large
        && !LIGHTING_PACKET_TYPES
            .iter()
            .any(|kind| text.contains(&format!("\"{}\"", kind.name())))
    {
        return Err(PacketError::TooLarge { chars });
    }
    Ok((text, large))
}

/// The packet types that may be large lighting packets.
const LIGHTING_PACKET_TYPES: [PacketKind; 2] =
    [PacketKind::MultiStateUpdate, PacketKind::SharedStateUpdate];

/// The deepest bracket nesting outside strings. Checked before parsing so that no input can
/// drive the parser's recursion anywhere near its limit.
fn bracket_depth(text: &str) -> usize {
    let bytes = text.as_bytes();
    let (mut depth, mut max, mut at, mut in_string) = (0usize, 0usize, 0usize, false);
    while let Some(&byte) = bytes.get(at) {
        at += 1;
        if in_string {
            match byte {
                b'\\' => at += 1,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match byte {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                max = max.max(depth);
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    max
}

/// What a validated packet asks for.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    Heartbeat,
    HeartbeatAck,
    GetState,
    GetOnlinePilots,
    StateUpdate(ObjectChange),
    MultiStateUpdate(Vec<ObjectChange>, BatchForm),
    SharedStateUpdate(Map<String, Value>),
    StopbarCrossing { object_id: String },
    Close,
}

/// One object change: `{objectId, state}` or `{objectId, patch}`.
#[derive(Debug, Clone, PartialEq)]
pub struct ObjectChange {
    pub object_id: String,
    pub op: ChangeOp,
}

/// Where a change sits in its packet, as error messages name it. Formatted only when a
/// message needs it, not once per item of every batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeAt {
    /// A `STATE_UPDATE`'s `data`.
    Data,
    /// Item `i` of a `MULTI_STATE_UPDATE`.
    Item(usize),
    /// Item `i` of a `MULTI_STATE_UPDATE` whose `data` is a bare array.
    BareItem(usize),
}

impl fmt::Display for ChangeAt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ChangeAt::Data => f.write_str("data"),
            ChangeAt::Item(index) => write!(f, "data.updates[{index}]"),
            ChangeAt::BareItem(index) => write!(f, "data[{index}]"),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum ChangeOp {
    /// Replace the state with a boolean or an object.
    Replace(Value),
    /// RFC 7396 merge patch onto the current state.
    Patch(Map<String, Value>),
    /// `patch: null`: delete the object.
    Delete,
}

/// Validates `data` for a packet kind. Nothing is applied here.
pub fn parse_command(kind: PacketKind, data: Data) -> Result<Command, PacketError> {
    Ok(match kind {
        PacketKind::Heartbeat => Command::Heartbeat,
        PacketKind::HeartbeatAck => Command::HeartbeatAck,
        PacketKind::GetState => Command::GetState,
        PacketKind::GetOnlinePilots => Command::GetOnlinePilots,
        PacketKind::Close => Command::Close,
        PacketKind::StateUpdate => {
            Command::StateUpdate(parse_change(data.object()?.change, ChangeAt::Data)?)
        }
        PacketKind::MultiStateUpdate => {
            let max = if data.is_lighting(kind) {
                MAX_LIGHTING_UPDATES
            } else {
                MAX_MULTI_UPDATES
            };
            let Some((items, form)) = data.batch() else {
                return Err(PacketError::field(
                    "data.updates",
                    "an array is required (or `data` itself an array of updates)",
                ));
            };
            if items.is_empty() || items.len() > max {
                return Err(PacketError::field(
                    form.field(),
                    format!(
                        "has {} items; between 1 and {MAX_MULTI_UPDATES} are allowed, or {MAX_LIGHTING_UPDATES} when every item is exactly {{objectId, state: boolean}}",
                        items.len()
                    ),
                ));
            }
            let changes = items
                .into_iter()
                .enumerate()
                .map(|(index, item)| match item {
                    IfObject::Object(item) => parse_change(item, form.at(index)),
                    IfObject::Other => Err(PacketError::field(
                        form.at(index).to_string(),
                        "must be an object",
                    )),
                })
                .collect::<Result<_, _>>()?;
            Command::MultiStateUpdate(changes, form)
        }
        PacketKind::SharedStateUpdate => {
            let limit = if data.is_lighting(kind) {
                MAX_LIGHTING_PATCH_CHARS
            } else {
                MAX_SHARED_PATCH_CHARS
            };
            let Some(Value::Object(patch)) = data.object()?.shared_state_patch else {
                return Err(PacketError::field(
                    "data.sharedStatePatch",
                    "a JSON object is required",
                ));
            };
            check_depth(object_depth(&patch), "data.sharedStatePatch")?;
            let chars = serialized_chars(&patch);
            if chars > limit {
                return Err(PacketError::SharedPatchTooLarge { chars, limit });
            }
            Command::SharedStateUpdate(patch)
        }
        PacketKind::StopbarCrossing => Command::StopbarCrossing {
            object_id: parse_object_id(data.object()?.change.object_id, ChangeAt::Data)?,
        },
    })
}

fn parse_object_id(id: Option<Value>, path: ChangeAt) -> Result<String, PacketError> {
    match id {
        Some(Value::String(id)) if is_valid_object_id(&id) => Ok(id),
        _ => Err(PacketError::field(
            format!("{path}.objectId"),
            format!(
                "a string of 1 to {MAX_OBJECT_ID_CHARS} characters from [a-zA-Z0-9_-] is required"
            ),
        )),
    }
}

fn parse_change(members: ChangeMembers, path: ChangeAt) -> Result<ObjectChange, PacketError> {
    let object_id = parse_object_id(members.object_id, path)?;
    let op = match (members.state, members.patch) {
        (Some(state @ (Value::Bool(_) | Value::Object(_))), None) => {
            check_depth(depth(&state), format_args!("{path}.state"))?;
            ChangeOp::Replace(state)
        }
        (Some(_), None) => {
            return Err(PacketError::field(
                format!("{path}.state"),
                "must be a boolean or a JSON object",
            ));
        }
        (None, Some(Value::Null)) => ChangeOp::Delete,
        (None, Some(Value::Object(patch))) => {
            check_depth(object_depth(&patch), format_args!("{path}.patch"))?;
            ChangeOp::Patch(patch)
        }
        (None, Some(_)) => {
            return Err(PacketError::field(
                format!("{path}.patch"),
                "must be a JSON object (a merge patch) or null (delete the object)",
            ));
        }
        _ => {
            return Err(PacketError::field(
                path.to_string(),
                "exactly one of `state` and `patch` is required",
            ));
        }
    };
    Ok(ObjectChange { object_id, op })
}

/// `field` is formatted only for the error.
fn check_depth(found: usize, field: impl fmt::Display) -> Result<(), PacketError> {
    if found > MAX_VALUE_DEPTH {
        return Err(PacketError::field(
            field.to_string(),
            format!("nested {found} levels deep; the limit is {MAX_VALUE_DEPTH}"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_an_object_packet_lends_its_request_id() {
        let peek = |text: &str| peek_request_id(Frame::Text(text), Role::Pilot);
        assert_eq!(
            peek(r#"{"type":"X","requestId":"r-1"}"#).as_deref(),
            Some("r-1")
        );
        assert_eq!(peek(r#"["r-1"]"#), None);
        assert_eq!(peek(r#"{"requestId":5}"#), None);
        assert_eq!(
            peek(&format!(r#"{{"requestId":"{}"}}"#, "x".repeat(65))),
            None
        );
    }

    /// The nesting counted byte by byte, as simply as it can be said.
    fn bracket_depth_by_bytes(text: &str) -> usize {
        let (mut depth, mut max, mut in_string, mut escaped) = (0usize, 0usize, false, false);
        for b in text.bytes() {
            match (in_string, b) {
                (true, _) if escaped => escaped = false,
                (true, b'\\') => escaped = true,
                (true, b'"') => in_string = false,
                (true, _) => {}
                (false, b'"') => in_string = true,
                (false, b'[' | b'{') => {
                    depth += 1;
                    max = max.max(depth);
                }
                (false, b']' | b'}') => depth = depth.saturating_sub(1),
                (false, _) => {}
            }
        }
        max
    }

    proptest::proptest! {
        #[test]
        fn bracket_depth_skips_strings_like_a_byte_scan(
            text in r#"[\[\]{}"\\ax]{0,40}"#,
        ) {
            proptest::prop_assert_eq!(bracket_depth(&text), bracket_depth_by_bytes(&text));
        }
    }

    #[test]
    fn bracket_depth_counts_only_outside_strings() {
        assert_eq!(bracket_depth(r#"{"a":[{"b":"[[[{"}]}"#), 3);
        assert_eq!(bracket_depth(r#"{"a\"[":[]}"#), 2);
        assert_eq!(bracket_depth(r#"["\\",[[]]]"#), 3);
        assert_eq!(bracket_depth(r#"[["unterminated [[[["#), 2);
        assert_eq!(bracket_depth(r#"["ends in a backslash\"#), 1);
    }

    #[test]
    fn echoed_client_strings_are_cut_short() {
        let icao = Icao::parse("EGLL").unwrap();
        let long = "\u{3A3A3}".repeat(10_000);
        let packet = serde_json::json!({"type": long}).to_string();
        let rejection = decode(Frame::Text(&packet), &icao, Role::Controller).unwrap_err();
        assert!(rejection.error.to_string().chars().count() < 1_000);
    }
}
