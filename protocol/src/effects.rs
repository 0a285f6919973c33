//! What handling one event asks the Durable Object to do, addressed by socket id. The object
//! makes `persist` durable first; only then do the actions leave, in order.

use super::airport::StoreOp;
use super::outbound::ChangeItems;
use super::session::Attachment;

/// A socket's id within its airport: random, below 2^53 so that it stays a JavaScript number.
pub type SocketId = u64;

/// Close codes of PROTOCOL §4.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseCode {
    /// The client sent `CLOSE`.
    Requested,
    /// No inbound frame within the idle timeout.
    Idle,
    /// The API key was revoked while connected.
    KeyRevoked,
    /// Banned, or the role changed.
    RoleChanged,
    /// Kept flooding past the rate limit.
    Flooding,
    /// The server failed.
    Internal,
}

impl CloseCode {
    pub const ALL: [CloseCode; 6] = [
        CloseCode::Requested,
        CloseCode::Idle,
        CloseCode::KeyRevoked,
        CloseCode::RoleChanged,
        CloseCode::Flooding,
        CloseCode::Internal,
    ];

    pub fn code(self) -> u16 {
        match self {
            CloseCode::Requested => 1000,
            CloseCode::Idle => 4000,
            CloseCode::KeyRevoked => 4001,
            CloseCode::RoleChanged => 4003,
            CloseCode::Flooding => 4008,
            CloseCode::Internal => 1011,
        }
    }

    pub fn reason(self) -> &'static str {
        match self {
            CloseCode::Requested => "closed at the client's request",
            CloseCode::Idle => "idle timeout: no inbound frame in time",
            CloseCode::KeyRevoked => "API key revoked",
            CloseCode::RoleChanged => "banned or role changed",
            CloseCode::Flooding => "closed for exceeding the packet rate",
            CloseCode::Internal => "internal error",
        }
    }
}

/// Who a packet goes to. Only open sockets that are part of the airport receive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum To {
    Socket(SocketId),
    /// Every socket but `except`.
    All {
        except: Option<SocketId>,
    },
    /// Every controller's socket but `except`.
    Controllers {
        except: Option<SocketId>,
    },
    /// Every pilot's and observer's socket.
    PilotsAndObservers,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    Send {
        to: To,
        packet: String,
    },
    /// The socket has left the airport: close it. The room has forgotten it already.
    Close {
        socket: SocketId,
        code: CloseCode,
        reason: String,
    },
}

/// An accepted change to objects, for every socket but its sender. Controllers get each change
/// as accepted; pilots and observers may get several as one packet (PROTOCOL §7).
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    pub sender: SocketId,
    pub packet: String,
    pub items: ChangeItems,
    /// For the sender: the writes of equivalent points it did not ask for, with the change's
    /// `seq`. `None` when there are none (always, for an airport without equivalents).
    pub to_sender: Option<String>,
}

/// The socket that caused a write, told `ERROR INTERNAL` (with its frame's `requestId`) if the
/// write fails.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Writer {
    pub socket: SocketId,
    pub request_id: Option<String>,
}

#[derive(Debug, Default, PartialEq)]
pub struct Effects {
    /// Storage writes, durable before any action leaves.
    pub persist: Vec<StoreOp>,
    /// Sends and closes, in order.
    pub actions: Vec<Action>,
    /// An accepted change, delivered after `actions`.
    pub change: Option<Change>,
    /// Socket attachments to store at once: they only have to survive hibernation.
    pub attachments: Vec<Attachment>,
    pub writer: Option<Writer>,
}

impl Effects {
    pub fn send(&mut self, to: To, packet: String) {
        self.actions.push(Action::Send { to, packet });
    }

    pub fn close(&mut self, socket: SocketId, code: CloseCode, reason: String) {
        self.actions.push(Action::Close {
            socket,
            code,
            reason,
        });
    }

    /// Appends a later event's effects (the caller keeps at most one change and one writer).
    pub fn extend(&mut self, later: Effects) {
        self.persist.extend(later.persist);
        self.actions.extend(later.actions);
        self.attachments.extend(later.attachments);
        self.change = self.change.take().or(later.change);
        self.writer = self.writer.take().or(later.writer);
    }

    pub fn closes(&self) -> impl Iterator<Item = SocketId> + '_ {
        self.actions.iter().filter_map(|action| match action {
            Action::Close { socket, .. } => Some(*socket),
            Action::Send { .. } => None,
        })
    }

    /// The packets sent to `to`, in order.
    pub fn sent_to(&self, to: To) -> impl Iterator<Item = &str> + '_ {
        self.actions.iter().filter_map(move |action| match action {
            Action::Send { to: t, packet } if *t == to => Some(packet.as_str()),
            _ => None,
        })
    }
}
