//! What one inbound frame does to an airport: (sender, packet, now) in, effects out. The room
//! ([`super::room::Room`]) calls it after the sender's rate limit passed.

use super::airport::{Airport, Applied, StoreOp};
use super::effects::{Change, CloseCode, Effects, SocketId, To, Writer};
use super::error::PacketError;
use super::ids::Cid;
use super::metrics::{FrameKind, Metrics};
use super::outbound::{self, SnapshotCache, Stamp};
use super::packet::{ChangeAt, Command, Frame, Rejection, decode, parse_command};
use super::presence::Presence;
use super::session::Session;

/// The socket a frame came from, and who is on it.
#[derive(Debug, Clone, Copy)]
pub struct Sender<'a> {
    pub socket: SocketId,
    pub session: &'a Session,
}

/// The airport and who is connected, as a frame sees them.
pub struct Scene<'a> {
    pub airport: &'a mut Airport,
    pub presence: &'a Presence,
    pub snapshots: &'a mut SnapshotCache,
    pub metrics: &'a mut Metrics,
}

/// One frame that passed the rate limit. A refused one gets its `ERROR` reply.
pub fn on_frame(scene: Scene<'_>, sender: Sender<'_>, frame: Frame<'_>, now: i64) -> Effects {
    let Scene {
        airport,
        presence,
        snapshots,
        metrics,
    } = scene;
    let mut kind = FrameKind::Unreadable;
    let handled = accept(airport, presence, snapshots, sender, frame, &mut kind, now);
    metrics.frame(kind, now);
    match handled {
        Ok(effects) => effects,
        Err(Rejection { request_id, error }) => {
            metrics.error(error.code(), now);
            reply(
                sender,
                outbound::error(Stamp::of(airport, now), &error, request_id.as_deref()),
            )
        }
    }
}

fn reply(sender: Sender<'_>, packet: String) -> Effects {
    let mut effects = Effects::default();
    effects.send(To::Socket(sender.socket), packet);
    effects
}

fn accept(
    airport: &mut Airport,
    presence: &Presence,
    snapshots: &mut SnapshotCache,
    sender: Sender<'_>,
    frame: Frame<'_>,
    kind: &mut FrameKind,
    now: i64,
) -> Result<Effects, Rejection> {
    let role = sender.session.role;
    let envelope = decode(frame, airport.icao(), role)?;
    *kind = FrameKind::Packet(envelope.kind);
    let request_id = envelope.request_id;
    let reject = |error| Rejection {
        request_id: request_id.clone(),
        error,
    };
    if !envelope.kind.allowed_for(role) {
        return Err(reject(PacketError::Forbidden {
            role,
            packet: envelope.kind.name(),
        }));
    }
    let command = parse_command(envelope.kind, envelope.data).map_err(reject)?;
    let by = &sender.session.cid;
    let stamp = Stamp::of(airport, now);
    Ok(match command {
        Command::Heartbeat => reply(
            sender,
            outbound::heartbeat_ack(stamp, request_id.as_deref()),
        ),
        Command::HeartbeatAck => Effects::default(),
        Command::GetState => reply(
            sender,
            outbound::state_snapshot(
                stamp,
                snapshots.parts(airport),
                presence,
                request_id.as_deref(),
            ),
        ),
        Command::GetOnlinePilots => reply(
            sender,
            outbound::online_pilots(stamp, presence, request_id.as_deref()),
        ),
        Command::Close => {
            let mut effects = Effects::default();
            let code = CloseCode::Requested;
            effects.close(sender.socket, code, code.reason().into());
            effects
        }
        Command::StateUpdate(change) => {
            let applied = airport
                .apply_changes(vec![change], |_| ChangeAt::Data.to_string(), by, now)
                .map_err(reject)?;
            changed_objects(airport, applied, sender, request_id, now)
        }
        Command::MultiStateUpdate(changes, form) => {
            let applied = airport
                .apply_changes(changes, |i| form.at(i).to_string(), by, now)
                .map_err(reject)?;
            changed_objects(airport, applied, sender, request_id, now)
        }
        Command::SharedStateUpdate(patch) => {
            let persist = airport.merge_shared(&patch).map_err(reject)?;
            let packet =
                outbound::shared_state_update(Stamp::of(airport, now), &patch, by, airport.seq());
            let mut effects = Effects {
                persist,
                writer: Some(Writer {
                    socket: sender.socket,
                    request_id,
                }),
                ..Effects::default()
            };
            effects.send(To::All { except: None }, packet);
            effects
        }
        Command::StopbarCrossing { object_id } => {
            let callsign = sender
                .session
                .callsign
                .as_deref()
                .or(presence.callsign_of(by));
            let packet = outbound::stopbar_crossing(stamp, &object_id, by, callsign);
            let mut effects = Effects::default();
            effects.send(To::Controllers { except: None }, packet);
            effects
        }
    })
}

/// The effects of accepted object changes: their writes, and their broadcast to every other
/// socket. A change to one object is broadcast as its `STATE_UPDATE` even when it came in a
/// batch: the released EuroScope plugin ignores `MULTI_STATE_UPDATE` (PROTOCOL §7). The sender
/// is sent, with the same `seq`, what equivalent points made of its change that it did not ask
/// for. Nothing changed (only deletions of missing objects), nothing is broadcast.
fn changed_objects(
    airport: &Airport,
    applied: Applied,
    sender: Sender<'_>,
    request_id: Option<String>,
    now: i64,
) -> Effects {
    let Applied {
        persist,
        for_sender,
    } = applied;
    let changes: Vec<_> = persist.iter().filter_map(StoreOp::object_write).collect();
    let change = (!changes.is_empty()).then(|| {
        let by: &Cid = &sender.session.cid;
        let (stamp, seq) = (Stamp::of(airport, now), airport.seq());
        let (packet, items) = outbound::object_changes(stamp, &changes, by, seq);
        let to_sender = (!for_sender.is_empty())
            .then(|| unasked_changes(stamp, &persist, &for_sender, by, seq));
        Change {
            sender: sender.socket,
            packet,
            items,
            to_sender,
        }
    });
    Effects {
        persist,
        change,
        writer: Some(Writer {
            socket: sender.socket,
            request_id,
        }),
        ..Effects::default()
    }
}

/// The packet telling a sender what equivalent points made of its change: the writes at
/// `indexes` of `persist`. Cold: only airports with equivalent points get here, and the common
/// broadcast keeps its serializer inlined.
#[cold]
fn unasked_changes(
    stamp: Stamp<'_>,
    persist: &[StoreOp],
    indexes: &[usize],
    by: &Cid,
    seq: u64,
) -> String {
    let unasked: Vec<_> = indexes
        .iter()
        .filter_map(|&index| persist.get(index).and_then(StoreOp::object_write))
        .collect();
    outbound::object_changes(stamp, &unasked, by, seq).0
}
