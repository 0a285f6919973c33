//! Everything a client packet can be rejected for, mapped once to a wire code.

use super::limits::*;
use super::role::Role;
use super::wire_name::wire_name_enum;
use thiserror::Error;

wire_name_enum! {
    /// The `code` of an `ERROR` packet.
    pub enum ErrorCode {
        InvalidJson,
        PacketTooLarge,
        UnknownType,
        InvalidPacket,
        Forbidden,
        AirportMismatch,
        LimitExceeded,
        RateLimited,
        Internal,
    }
}

/// Why a client packet was rejected. The `Display` text is the `message` a client developer reads.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum PacketError {
    #[error("frame is not valid JSON: {0}")]
    InvalidJson(String),
    #[error("binary frame is not valid UTF-8 text")]
    NotUtf8,
    #[error(
        "packet is {chars} characters long; the limit is {MAX_PACKET_CHARS}, or {MAX_LIGHTING_PACKET_CHARS} for a controller's MULTI_STATE_UPDATE whose every item is exactly {{objectId, state: boolean}} or SHARED_STATE_UPDATE whose sharedStatePatch has only the members meta, profile, nodes and blocks"
    )]
    TooLarge { chars: usize },
    #[error("a packet must be a JSON object")]
    NotAnObject,
    #[error("{field}: {problem}")]
    Field { field: String, problem: String },
    #[error("unknown packet type {0:?}")]
    UnknownType(String),
    #[error("a {role} may not send {packet}")]
    Forbidden { role: Role, packet: &'static str },
    #[error("packet names airport {claimed:?} but this socket is connected to {connected}")]
    AirportMismatch { claimed: String, connected: String },
    #[error("{field}: the airport already holds the maximum of {MAX_OBJECTS} objects")]
    TooManyObjects { field: String },
    #[error(
        "{field}: the object state would be {chars} characters; the limit is {MAX_OBJECT_STATE_CHARS}"
    )]
    ObjectStateTooLarge { field: String, chars: usize },
    #[error(
        "data.sharedStatePatch is {chars} characters serialized; the limit is {limit}{}",
        if *limit == MAX_SHARED_PATCH_CHARS { " (a lighting graph of only meta, profile, nodes and blocks may have 1000000)" } else { "" }
    )]
    SharedPatchTooLarge { chars: usize, limit: usize },
    #[error(
        "the merged shared state would be {chars} characters serialized; the limit is {MAX_SHARED_STATE_CHARS}"
    )]
    SharedStateTooLarge { chars: usize },
    #[error(
        "{field}: the airport's objects and shared state would be {chars} characters serialized; the limit is {MAX_AIRPORT_STATE_CHARS}"
    )]
    AirportStateTooLarge { field: String, chars: usize },
    #[error("too many packets: {0}")]
    RateLimited(String),
    #[error("internal error: {0}")]
    Internal(String),
    /// A live session was ended by a re-check (revoked key, ban, role change).
    #[error("{0}")]
    SessionEnded(String),
}

impl PacketError {
    pub fn field(field: impl Into<String>, problem: impl Into<String>) -> Self {
        PacketError::Field {
            field: field.into(),
            problem: problem.into(),
        }
    }

    /// Whether refusing a frame for this spends the sender's refusal budget
    /// (`RateLimit::REFUSALS`): the frame is unreadable, unknown, malformed, forbidden to the
    /// sender or for another airport, which no deployed client sends in bursts. Not counted: a
    /// well-formed change the airport cannot hold (`LIMIT_EXCEEDED`: a controller plugin's
    /// profile change at a full airport is thousands of them in a row, each costing no more
    /// than an accepted change, which the role's bucket bounds), a drop already charged to the
    /// bucket that refused it, and the server's own failures.
    pub fn spends_refusals(&self) -> bool {
        match self.code() {
            ErrorCode::InvalidJson
            | ErrorCode::PacketTooLarge
            | ErrorCode::UnknownType
            | ErrorCode::InvalidPacket
            | ErrorCode::Forbidden
            | ErrorCode::AirportMismatch => true,
            ErrorCode::LimitExceeded | ErrorCode::RateLimited | ErrorCode::Internal => false,
        }
    }

    pub fn code(&self) -> ErrorCode {
        match self {
            PacketError::InvalidJson(_) | PacketError::NotUtf8 => ErrorCode::InvalidJson,
            PacketError::TooLarge { .. } => ErrorCode::PacketTooLarge,
            PacketError::NotAnObject | PacketError::Field { .. } => ErrorCode::InvalidPacket,
            PacketError::UnknownType(_) => ErrorCode::UnknownType,
            PacketError::Forbidden { .. } | PacketError::SessionEnded(_) => ErrorCode::Forbidden,
            PacketError::AirportMismatch { .. } => ErrorCode::AirportMismatch,
            PacketError::TooManyObjects { .. }
            | PacketError::ObjectStateTooLarge { .. }
            | PacketError::SharedPatchTooLarge { .. }
            | PacketError::SharedStateTooLarge { .. }
            | PacketError::AirportStateTooLarge { .. } => ErrorCode::LimitExceeded,
            PacketError::RateLimited(_) => ErrorCode::RateLimited,
            PacketError::Internal(_) => ErrorCode::Internal,
        }
    }
}
