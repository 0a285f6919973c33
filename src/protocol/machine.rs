//! The airport state machine: (connection, packet, now) in, effects out. The Durable Object
//! carries the effects out in order: persist, reply, broadcast, close.

use super::airport::{Airport, StoreOp};
use super::config::{RateLimit, Timings};
use super::error::PacketError;
use super::ids::Cid;
use super::outbound::{self, ChangeItems, Stamp};
use super::packet::{ChangeAt, Command, Frame, Rejection, decode, parse_command, peek_request_id};
use super::presence::Presence;
use super::rate_limit::{TokenBucket, Verdict};
use super::role::Role;
pub use super::session::Session;

/// Who a broadcast goes to. The sender is the socket whose packet caused it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Audience {
    /// Every open socket of the airport except the sender.
    Others,
    /// Every open socket of the airport, the sender included.
    Everyone,
    /// The airport's controllers' sockets.
    Controllers,
}

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

/// What handling one event asks the Durable Object to do, in this order.
#[derive(Debug, Default, PartialEq)]
pub struct Effects {
    /// Storage writes, made durable before anything below leaves.
    pub persist: Vec<StoreOp>,
    /// A direct reply to the sender.
    pub reply: Option<String>,
    /// A packet for other sockets of the airport.
    pub broadcast: Option<(Audience, String)>,
    /// When `broadcast` is an accepted change to objects: its items and `seq`, so that several
    /// changes may reach pilots and observers as one packet (PROTOCOL §7).
    pub changes: Option<ChangeItems>,
    /// Close the sender's socket.
    pub close: Option<CloseCode>,
    /// The frame's `requestId`, for the `ERROR INTERNAL` its sender gets if `persist` fails.
    pub request_id: Option<String>,
}

impl Effects {
    fn reply(text: String) -> Self {
        Effects {
            reply: Some(text),
            ..Effects::default()
        }
    }
}

/// One inbound frame from `session`'s socket.
pub fn on_frame(
    airport: &mut Airport,
    presence: &Presence,
    session: &Session,
    bucket: &mut TokenBucket,
    limit: &RateLimit,
    frame: Frame<'_>,
    now: i64,
) -> Effects {
    let bytes = match frame {
        Frame::Text(text) => text.len(),
        Frame::Binary(bytes) => bytes.len(),
    };
    let verdict = bucket.take(limit, now, RateLimit::cost(bytes));
    if verdict != Verdict::Pass {
        let error = PacketError::RateLimited(format!(
            "at most {} packets at once and {} per second (a packet costs one more per {} bytes); this packet was dropped",
            limit.burst,
            limit.per_second,
            RateLimit::BYTES_PER_TOKEN
        ));
        let request_id = peek_request_id(frame, session.role);
        let mut effects = Effects::reply(outbound::error(
            Stamp::of(airport, now),
            &error,
            request_id.as_deref(),
        ));
        if verdict == Verdict::Flood {
            effects.close = Some(CloseCode::Flooding);
        }
        return effects;
    }
    match accept(airport, presence, session, frame, now) {
        Ok(effects) => effects,
        Err(Rejection { request_id, error }) => Effects::reply(outbound::error(
            Stamp::of(airport, now),
            &error,
            request_id.as_deref(),
        )),
    }
}

fn accept(
    airport: &mut Airport,
    presence: &Presence,
    session: &Session,
    frame: Frame<'_>,
    now: i64,
) -> Result<Effects, Rejection> {
    let envelope = decode(frame, airport.icao(), session.role)?;
    let request_id = envelope.request_id;
    let reject = |error| Rejection {
        request_id: request_id.clone(),
        error,
    };
    if !envelope.kind.allowed_for(session.role) {
        return Err(reject(PacketError::Forbidden {
            role: session.role,
            packet: envelope.kind.name(),
        }));
    }
    let command = parse_command(envelope.kind, envelope.data).map_err(reject)?;
    let by = &session.cid;
    Ok(match command {
        Command::Heartbeat => Effects::reply(outbound::heartbeat_ack(
            Stamp::of(airport, now),
            request_id.as_deref(),
        )),
        Command::HeartbeatAck => Effects::default(),
        Command::GetState => Effects::reply(outbound::state_snapshot(
            Stamp::of(airport, now),
            airport,
            presence,
            request_id.as_deref(),
        )),
        Command::GetOnlinePilots => Effects::reply(outbound::online_pilots(
            Stamp::of(airport, now),
            presence,
            request_id.as_deref(),
        )),
        Command::Close => Effects {
            close: Some(CloseCode::Requested),
            ..Effects::default()
        },
        Command::StateUpdate(change) => {
            let persist = airport
                .apply_changes(vec![change], |_| ChangeAt::Data.to_string(), by, now)
                .map_err(reject)?;
            changed_objects(airport, persist, by, request_id, now)
        }
        Command::MultiStateUpdate(changes, form) => {
            let persist = airport
                .apply_changes(changes, |i| form.at(i).to_string(), by, now)
                .map_err(reject)?;
            changed_objects(airport, persist, by, request_id, now)
        }
        Command::SharedStateUpdate(patch) => {
            let persist = airport.merge_shared(&patch).map_err(reject)?;
            let packet =
                outbound::shared_state_update(Stamp::of(airport, now), &patch, by, airport.seq());
            Effects {
                persist,
                broadcast: Some((Audience::Everyone, packet)),
                request_id,
                ..Effects::default()
            }
        }
        Command::StopbarCrossing { object_id } => {
            let callsign = session.callsign.as_deref().or(presence.callsign_of(by));
            let packet =
                outbound::stopbar_crossing(Stamp::of(airport, now), &object_id, by, callsign);
            Effects {
                broadcast: Some((Audience::Controllers, packet)),
                ..Effects::default()
            }
        }
    })
}

/// The effects of accepted object changes: their writes, and their broadcast to every other
/// socket. A change to one object is broadcast as its `STATE_UPDATE` even when it came in a
/// batch: the released EuroScope plugin ignores `MULTI_STATE_UPDATE` (PROTOCOL §7). Nothing
/// changed (only deletions of missing objects), nothing is broadcast.
fn changed_objects(
    airport: &Airport,
    persist: Vec<StoreOp>,
    by: &Cid,
    request_id: Option<String>,
    now: i64,
) -> Effects {
    let changes: Vec<_> = persist.iter().filter_map(StoreOp::object_write).collect();
    let (broadcast, changes) = if changes.is_empty() {
        (None, None)
    } else {
        let (packet, items) =
            outbound::object_changes(Stamp::of(airport, now), &changes, by, airport.seq());
        (Some((Audience::Others, packet)), Some(items))
    };
    Effects {
        persist,
        broadcast,
        changes,
        request_id,
        ..Effects::default()
    }
}

/// What a new socket gets, and what the others hear about it.
#[derive(Debug, PartialEq)]
pub struct Joined {
    pub persist: Vec<StoreOp>,
    /// `INITIAL_STATE`, the first packet on the new socket.
    pub initial_state: String,
    /// `CONTROLLER_CONNECT` for every other socket, on a controller's first socket.
    pub announce: Option<String>,
}

/// A socket was accepted (the caps were checked before).
pub fn on_join(
    airport: &mut Airport,
    presence: &mut Presence,
    session: &Session,
    timings: &Timings,
    now: i64,
) -> Joined {
    let first = presence.join(session);
    let is_controller = session.role == Role::Controller;
    let persist = if is_controller {
        airport.controller_present()
    } else {
        vec![]
    };
    let stamp = Stamp::of(airport, now);
    Joined {
        persist,
        initial_state: outbound::initial_state(
            stamp,
            airport,
            presence,
            session,
            timings.heartbeat_interval_ms,
            timings.idle_timeout_ms,
        ),
        announce: (first && is_controller)
            .then(|| outbound::controller_presence(stamp, true, &session.cid)),
    }
}

/// A socket closed, by either side. Announces a controller's last socket leaving and starts the
/// offline grace period when no controller is left.
pub fn on_leave(
    airport: &mut Airport,
    presence: &mut Presence,
    session: &Session,
    now: i64,
) -> Effects {
    let last = presence.leave(session);
    if !(last && session.role == Role::Controller) {
        return Effects::default();
    }
    let persist = if presence.has_controllers() {
        vec![]
    } else {
        airport.controllers_absent(now)
    };
    let packet = outbound::controller_presence(Stamp::of(airport, now), false, &session.cid);
    Effects {
        persist,
        broadcast: Some((Audience::Others, packet)),
        ..Effects::default()
    }
}
