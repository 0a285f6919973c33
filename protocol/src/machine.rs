//! What one inbound frame does to an airport: the room's [`Context`] and the frame in, effects
//! out. The room ([`super::room::Room`]) calls it after the sender's rate limit passed.

use super::airport::{Airport, Applied, StoreOp};
use super::config::RateLimit;
use super::effects::{Change, CloseCode, Effects, SocketId, To, Writer};
use super::error::PacketError;
use super::ids::Cid;
use super::metrics::{FrameKind, Metrics};
use super::outbound::{self, SnapshotCache, Stamp};
use super::packet::{ChangeAt, Command, Frame, Rejection, decode, parse_command};
use super::presence::Presence;
use super::rate_limit::{TokenBucket, Verdict, rate_limited};
use super::session::Session;

/// The socket a frame came from, and who is on it.
#[derive(Debug, Clone, Copy)]
pub struct Sender<'a> {
    pub socket: SocketId,
    pub session: &'a Session,
}

/// What a frame is handled in, as the room hands it over: the airport, who is connected, the
/// caches and counters a frame touches, who sent it, their budgets for questions and refusals,
/// and when.
pub struct Context<'a> {
    pub airport: &'a mut Airport,
    pub presence: &'a Presence,
    pub snapshots: &'a mut SnapshotCache,
    pub metrics: &'a mut Metrics,
    pub sender: Sender<'a>,
    pub asks: Budget<'a>,
    pub refusals: Budget<'a>,
    pub now: i64,
}

/// One of the sender's budgets besides its role's bucket. For questions (`RateLimit::ASKS`), a
/// question costs a token and its answer one more per `RateLimit::ANSWER_BYTES_PER_TOKEN`; for
/// refusals (`RateLimit::REFUSALS`), a refused frame that counts costs what it weighs. The room
/// closes a socket whose budget is flooding.
pub struct Budget<'a> {
    pub bucket: &'a mut TokenBucket,
    pub limit: &'a RateLimit,
}

impl Budget<'_> {
    /// Charges a refused frame what it weighs, as the role's bucket does: its parse is what
    /// the airport spent. Past the budget the bucket is flooding, and the room closes the
    /// socket after this frame's reply.
    fn charge_refusal(&mut self, frame: Frame<'_>, now: i64) {
        self.bucket
            .take(self.limit, now, RateLimit::cost(frame.bytes()));
    }

    /// Spends what a question with an answer of `bytes` costs; a refused one is `DROPPED`.
    fn spend(&mut self, bytes: usize, now: i64, kind: &mut FrameKind) -> Result<(), PacketError> {
        let cost = RateLimit::answer_cost(bytes);
        if self.bucket.take(self.limit, now, cost) == Verdict::Pass {
            return Ok(());
        }
        *kind = FrameKind::Dropped;
        let per = format!(
            "questions; an answer costs one more per {} bytes",
            RateLimit::ANSWER_BYTES_PER_TOKEN
        );
        Err(rate_limited(self.limit, &per))
    }
}

/// One frame that passed the rate limit. A refused one gets its `ERROR` reply.
pub fn on_frame(mut cx: Context<'_>, frame: Frame<'_>) -> Effects {
    let mut kind = FrameKind::Unreadable;
    let handled = accept(&mut cx, frame, &mut kind);
    cx.metrics.frame(kind, cx.now);
    match handled {
        Ok(effects) => effects,
        Err(Rejection { request_id, error }) => {
            cx.metrics.error(error.code(), cx.now);
            if error.spends_refusals() {
                cx.refusals.charge_refusal(frame, cx.now);
            }
            reply(
                cx.sender,
                outbound::error(Stamp::of(cx.airport, cx.now), &error, request_id.as_deref()),
            )
        }
    }
}

fn reply(sender: Sender<'_>, packet: String) -> Effects {
    let mut effects = Effects::default();
    effects.send(To::Socket(sender.socket), packet);
    effects
}

/// The frame's effects, or why it is refused. `kind` is what it was read as, refused or not.
fn accept(
    cx: &mut Context<'_>,
    frame: Frame<'_>,
    kind: &mut FrameKind,
) -> Result<Effects, Rejection> {
    let (airport, snapshots) = (&mut *cx.airport, &mut *cx.snapshots);
    let (presence, sender, now) = (cx.presence, cx.sender, cx.now);
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
        Command::Heartbeat => {
            cx.asks.spend(0, now, kind).map_err(reject)?;
            reply(
                sender,
                outbound::heartbeat_ack(stamp, request_id.as_deref()),
            )
        }
        Command::HeartbeatAck => Effects::default(),
        Command::GetState => {
            // What the answer weighs is known before it is built: a refused question costs
            // no snapshot.
            let parts = (snapshots.parts(airport)).map_err(|needs| reject(needs.into()))?;
            cx.asks.spend(parts.bytes(), now, kind).map_err(reject)?;
            let snapshot = outbound::state_snapshot(stamp, parts, presence, request_id.as_deref());
            reply(sender, snapshot)
        }
        Command::GetOnlinePilots => {
            let list = outbound::online_pilots(stamp, presence, request_id.as_deref());
            cx.asks.spend(list.len(), now, kind).map_err(reject)?;
            reply(sender, list)
        }
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
