//! One airport as a sans-IO state machine, after quinn-proto's `Connection`: it owns the
//! airport, who is connected, each socket's session, last-heard time and token bucket, and the
//! periodic schedule. Every event (restore, connect, frame, leave, alarm, re-check answers)
//! takes the time and returns [`Effects`] addressed by socket id; [`Room::next_wake`] says when
//! the alarm is next needed. The Durable Object only carries the effects out.

use super::airport::{Airport, NeedsObjects, ObjectRecord, RowsToRead, StoreOp};
use super::config::{Config, RoleSource};
use super::connect::HttpError;
use super::directory::Listing;
use super::effects::{CloseCode, Effects, SocketId, To};
use super::equivalence::Equivalence;
use super::error::PacketError;
use super::history::ResumeRequest;
use super::ids::{Cid, Icao};
use super::liveness::{
    Clock, Schedule, is_idle, next_alarm, periodic_plan, restored_last_seen, should_store_last_seen,
};
use super::machine::{self, Budget, Context, Sender};
use super::metrics::{DataPoint, FrameKind, Metrics, Tick};
use super::outbound::{self, Since, SnapshotCache, Stamp};
use super::packet::{Frame, peek_request_id, reads_objects};
use super::presence::{CapExceeded, Presence};
use super::rate_limit::{TokenBucket, Verdict, rate_limited};
use super::recheck::{self, KeyStanding, NetworkStanding};
use super::role::Role;
use super::session::{Attachment, Session};
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// An open socket of the airport.
#[derive(Debug, Clone)]
struct Member {
    /// As last given to the Durable Object to store with the socket.
    attachment: Attachment,
    /// The role's budget for every frame.
    bucket: TokenBucket,
    /// The budget for questions and the bytes of their answers (`RateLimit::ASKS`).
    asks: TokenBucket,
    /// The budget for refused frames (`RateLimit::REFUSALS`).
    refusals: TokenBucket,
}

#[derive(Debug, Clone)]
pub struct Room {
    config: Config,
    airport: Airport,
    presence: Presence,
    members: HashMap<SocketId, Member>,
    /// When each socket was last heard from; exact while in memory.
    clock: Clock,
    schedule: Schedule,
    /// The schedule as last persisted.
    stored_schedule: Schedule,
    snapshots: SnapshotCache,
    metrics: Metrics,
    /// People closed for flooding, until when they may not connect again. Kept in memory only:
    /// an airport that hibernates (after ten quiet seconds) has let them cool down anyway.
    flooded: HashMap<Cid, i64>,
}

/// How long someone closed for flooding (4008) is refused at the airport: `429
/// TOO_MANY_REQUESTS` with `Retry-After`.
pub const FLOOD_COOLDOWN_MS: i64 = 10_000;

/// What a re-check needs to know: each key's standing and, under `vatsim`, each person's.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Recheck {
    pub key_hashes: Vec<String>,
    pub people: Vec<Cid>,
}

/// The answers to a [`Recheck`]. What is missing counts as not known: the session is kept.
#[derive(Debug, Clone, Default)]
pub struct Answers {
    pub keys: HashMap<String, KeyStanding>,
    pub network: HashMap<Cid, NetworkStanding>,
}

impl Room {
    /// The airport as stored, and the sockets still open (their attachments). State left with
    /// no controller (every socket dropped in a restart) starts its grace period now.
    pub fn restore(
        config: Config,
        airport: Airport,
        schedule: Schedule,
        sockets: impl IntoIterator<Item = Attachment>,
        now: i64,
    ) -> (Room, Effects) {
        let mut room = Room {
            airport,
            presence: Presence::default(),
            members: HashMap::new(),
            clock: Clock::default(),
            schedule,
            stored_schedule: schedule,
            snapshots: SnapshotCache::default(),
            metrics: Metrics::default(),
            flooded: HashMap::new(),
            config,
        };
        for attachment in sockets.into_iter().filter(|a| !a.left) {
            room.presence.join(&attachment.session);
            room.clock
                .heard(attachment.id, restored_last_seen(attachment.last_seen));
            room.add(attachment, now);
        }
        let mut effects = Effects::default();
        if !room.presence.has_controllers() {
            effects.persist = room.airport.controllers_absent(now);
        }
        (room, effects)
    }

    fn add(&mut self, attachment: Attachment, now: i64) {
        let limits = &self.config.rate_limits;
        let member = Member {
            bucket: TokenBucket::full(limits.for_role(attachment.session.role), now),
            asks: TokenBucket::full(&limits.asks, now),
            refusals: TokenBucket::full(&limits.refusals, now),
            attachment,
        };
        self.members.insert(member.attachment.id, member);
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    pub fn airport(&self) -> &Airport {
        &self.airport
    }

    /// The objects' rows, read from storage for the event that needed them
    /// ([`NeedsObjects`]), once per wake-up. A room restored with its objects keeps them.
    pub fn read_objects(&mut self, objects: BTreeMap<String, ObjectRecord>) {
        self.airport.read_objects(objects);
    }

    /// Which of the objects' rows a connect with `resume` needs read first, if any: a
    /// resume the log can serve at an airport whose objects are unread needs only the rows
    /// changed after its `seq`, and they stay unread.
    pub fn rows_for_connect(&self, resume: Option<&ResumeRequest>) -> Option<RowsToRead> {
        self.airport.rows_for_connect(resume)
    }

    /// The rows changed after `since`, read for a resuming connect
    /// ([`RowsToRead::ChangedSince`]).
    pub fn read_changed_objects(&mut self, since: u64, objects: BTreeMap<String, ObjectRecord>) {
        self.airport.read_changed_objects(since, objects);
    }

    /// The grouping of equivalent points stored with the airport, at a wake-up: the one its
    /// objects were written under.
    pub fn set_equivalence(&mut self, equivalence: Equivalence) {
        if self.airport.set_equivalence(equivalence) {
            self.snapshots.forget();
        }
    }

    /// A new grouping of equivalent points, read from the points table: later changes follow
    /// it, snapshots show its groups alike, and no replica up to now can resume.
    pub fn regroup(&mut self, equivalence: Equivalence) {
        if self.airport.regroup(equivalence) {
            self.snapshots.forget();
        }
    }

    pub fn presence(&self) -> &Presence {
        &self.presence
    }

    pub fn icao(&self) -> &Icao {
        self.airport.icao()
    }

    pub fn listing(&self) -> Listing {
        Listing::of(&self.airport, &self.presence)
    }

    /// The body of the public `GET /state` (PROTOCOL §6); it needs the objects.
    pub fn public_state(&mut self) -> Result<String, NeedsObjects> {
        let parts = self.snapshots.parts(&self.airport)?;
        Ok(outbound::public_state(&self.airport, parts, &self.presence))
    }

    /// The session on an open socket of the airport.
    /// The counts of the window being measured; the Durable Object adds what it delivered.
    pub fn metrics(&mut self) -> &mut Metrics {
        &mut self.metrics
    }

    /// The metrics window's data points if it is due, or when to look again.
    pub fn metrics_tick(&mut self, now: i64) -> Tick {
        self.metrics.tick(self.airport.icao(), &self.presence, now)
    }

    /// The metrics window's data points, due or not: the airport is about to be forgotten.
    pub fn end_metrics(&mut self, now: i64) -> Vec<DataPoint> {
        self.metrics.take(self.airport.icao(), &self.presence, now)
    }

    pub fn session(&self, socket: SocketId) -> Option<&Session> {
        self.members.get(&socket).map(|m| &m.attachment.session)
    }

    /// When the alarm is next needed for the airport's liveness: the earliest of the periodic
    /// work, the longest-silent socket's idle deadline and the offline clearing.
    pub fn next_wake(&self) -> Option<i64> {
        let timings = &self.config.timings;
        next_alarm(
            self.schedule,
            self.clock.oldest(),
            self.airport.offline_clear_due(timings.offline_grace_ms),
            timings,
        )
    }

    /// When the object's alarm is next needed: [`Room::next_wake`], or the metrics window's
    /// due time if earlier (the window is written at the end of the event that finds it due,
    /// the alarm if nothing else comes first).
    pub fn alarm_at(&self) -> Option<i64> {
        [self.next_wake(), self.metrics.due_at()]
            .into_iter()
            .flatten()
            .min()
    }

    /// A new socket, admitted if the caps allow: `INITIAL_STATE` is the first packet on it,
    /// and a controller's first socket is announced to the others. A client that asked to
    /// `resume` gets only what changed since its `seq` when the log still holds it. It needs the
    /// rows [`Room::rows_for_connect`] names: the Durable Object reads them first.
    pub fn connect(
        &mut self,
        socket: SocketId,
        session: Session,
        key_hash: String,
        resume: Option<&ResumeRequest>,
        now: i64,
    ) -> Result<Effects, HttpError> {
        // Before anything changes: the socket is refused as a whole.
        if self.airport.rows_for_connect(resume).is_some() {
            return Err(HttpError::internal(NeedsObjects));
        }
        self.flooded.retain(|_, until| *until > now);
        if let Some(until) = self.flooded.get(&session.cid) {
            // At most FLOOD_COOLDOWN_MS away: a few seconds, rounded up.
            let retry_after_s = ((until - now) as u64).div_ceil(1000).max(1) as u32;
            return Err(HttpError::TooManyRequests { retry_after_s });
        }
        self.presence
            .admit(&session.cid, &self.config.caps)
            .map_err(|exceeded| match exceeded {
                CapExceeded::PerKey(limit) => HttpError::TooManyConnections {
                    scope: "sockets per API key at this airport",
                    limit,
                },
                CapExceeded::PerAirport(limit) => HttpError::TooManyConnections {
                    scope: "sockets at this airport",
                    limit,
                },
            })?;
        let first = self.presence.join(&session);
        let is_controller = session.role == Role::Controller;
        let mut effects = Effects::default();
        if is_controller {
            effects.persist = self.airport.controller_present();
        }
        let timings = self.config.timings;
        let stamp = Stamp::of(&self.airport, now);
        let since = match resume {
            None => Since::Unasked,
            Some(ResumeRequest::From { history, seq }) => {
                match self.airport.changes_since(history, *seq) {
                    Ok(Some(changes)) => Since::Resumed(changes),
                    Ok(None) => Since::Full,
                    Err(needs) => return Err(HttpError::internal(needs)),
                }
            }
            Some(ResumeRequest::Fresh) => Since::Full,
        };
        let initial = outbound::initial_state(
            stamp,
            (&self.airport, &mut self.snapshots),
            since,
            &self.presence,
            &session,
            (timings.heartbeat_interval_ms, timings.idle_timeout_ms),
        )
        .map_err(HttpError::internal)?;
        effects.send(To::Socket(socket), initial);
        if first && is_controller {
            effects.send(
                To::All {
                    except: Some(socket),
                },
                outbound::controller_presence(stamp, true, &session.cid),
            );
        }
        let attachment = Attachment {
            id: socket,
            session,
            key_hash,
            last_seen: now,
            left: false,
        };
        effects.attachments.push(attachment.clone());
        self.clock.heard(socket, now);
        self.add(attachment, now);
        self.metrics.connect(now);
        self.schedule.start(now, &timings, self.config.recheck_ms);
        self.persist_schedule(&mut effects);
        Ok(effects)
    }

    /// An inbound frame: rate limited per socket, then handled. A frame from a socket the room
    /// does not know closes it. A frame that reads the objects while they are not read is
    /// [`NeedsObjects`], with nothing changed: handed in again once they are.
    pub fn frame(
        &mut self,
        socket: SocketId,
        frame: Frame<'_>,
        now: i64,
    ) -> Result<Effects, NeedsObjects> {
        let Some(member) = self.members.get_mut(&socket) else {
            let mut effects = Effects::default();
            effects.close(socket, CloseCode::Internal, "unknown socket".into());
            return Ok(effects);
        };
        let role = member.attachment.session.role;
        if !self.airport.objects_read() && reads_objects(frame, role) {
            return Err(NeedsObjects);
        }
        self.clock.heard(socket, now);
        let mut effects = Effects::default();
        // The attachment's copy only has to survive hibernation: refresh it now and then.
        if should_store_last_seen(member.attachment.last_seen, now) {
            member.attachment.last_seen = now;
            effects.attachments.push(member.attachment.clone());
        }
        let limit = self.config.rate_limits.for_role(role);
        let verdict = member
            .bucket
            .take(limit, now, super::config::RateLimit::cost(frame.bytes()));
        if verdict != Verdict::Pass {
            self.metrics.frame(FrameKind::Dropped, now);
            let per = format!(
                "packets; a packet costs one more per {} bytes",
                super::config::RateLimit::BYTES_PER_TOKEN
            );
            let error = rate_limited(limit, &per);
            self.metrics.error(error.code(), now);
            let request_id = peek_request_id(frame, role);
            let packet =
                outbound::error(Stamp::of(&self.airport, now), &error, request_id.as_deref());
            effects.send(To::Socket(socket), packet);
            if verdict == Verdict::Flood {
                let code = CloseCode::Flooding;
                effects.extend(self.close(socket, code, code.reason().into(), now));
            }
            return Ok(effects);
        }
        let cx = Context {
            airport: &mut self.airport,
            presence: &self.presence,
            snapshots: &mut self.snapshots,
            metrics: &mut self.metrics,
            sender: Sender {
                socket,
                session: &member.attachment.session,
            },
            asks: Budget {
                bucket: &mut member.asks,
                limit: &self.config.rate_limits.asks,
            },
            refusals: Budget {
                bucket: &mut member.refusals,
                limit: &self.config.rate_limits.refusals,
            },
            now,
        };
        let handled = machine::on_frame(cx, frame);
        let requested_close = handled.closes().next().is_some();
        effects.extend(handled);
        if requested_close {
            // The client asked (`CLOSE`); the close action is in the frame's effects already.
            effects.extend(self.remove(socket, now));
        } else if (self.members.get(&socket)).is_some_and(|member| {
            let limits = &self.config.rate_limits;
            member.asks.flooding(&limits.asks) || member.refusals.flooding(&limits.refusals)
        }) {
            // Its questions refused one by one, or its refused frames, have become a flood.
            let code = CloseCode::Flooding;
            effects.extend(self.close(socket, code, code.reason().into(), now));
        }
        Ok(effects)
    }

    /// The socket closed or failed on the client's side.
    pub fn leave(&mut self, socket: SocketId, now: i64) -> Effects {
        self.remove(socket, now)
    }

    /// The server closes a socket: it leaves the airport, then is closed with `code`.
    fn close(&mut self, socket: SocketId, code: CloseCode, reason: String, now: i64) -> Effects {
        if code == CloseCode::Flooding
            && let Some(member) = self.members.get(&socket)
        {
            let cid = member.attachment.session.cid.clone();
            self.flooded.insert(cid, now + FLOOD_COOLDOWN_MS);
        }
        let mut effects = Effects::default();
        effects.close(socket, code, reason);
        effects.extend(self.remove(socket, now));
        effects
    }

    /// A socket leaves: a controller's last socket is announced, and the offline grace period
    /// starts when no controller is left.
    fn remove(&mut self, socket: SocketId, now: i64) -> Effects {
        let mut effects = Effects::default();
        let Some(member) = self.members.remove(&socket) else {
            return effects;
        };
        self.clock.forget(socket);
        self.metrics.disconnect(now);
        let session = &member.attachment.session;
        let last = self.presence.leave(session);
        if last && session.role == Role::Controller {
            if !self.presence.has_controllers() {
                effects.persist = self.airport.controllers_absent(now);
            }
            let stamp = Stamp::of(&self.airport, now);
            effects.send(
                To::All {
                    except: Some(socket),
                },
                outbound::controller_presence(stamp, false, &session.cid),
            );
        }
        effects
    }

    /// The alarm: idle sockets are closed, the others get their heartbeat, and the offline
    /// state is cleared when due; none of it waits for anything. A re-check due now is
    /// returned as its questions: their answers come back later, as [`Room::rechecked`].
    pub fn alarm(&mut self, now: i64) -> (Effects, Option<Recheck>) {
        let mut effects = Effects::default();
        let timings = self.config.timings;
        // An alarm runs late when the airport was busy (it waits behind queued frames, a
        // flood's, say): that time is not the sockets' silence, and their heartbeat is late
        // too. Only silence besides it makes a socket idle.
        let late = self.next_wake().map_or(0, |due| (now - due).max(0));
        let mut idle: Vec<SocketId> = self
            .members
            .keys()
            .copied()
            .filter(|id| {
                self.clock
                    .last_heard(*id)
                    .is_some_and(|seen| is_idle(seen.saturating_add(late), now, &timings))
            })
            .collect();
        idle.sort_unstable();
        for socket in idle {
            let code = CloseCode::Idle;
            effects.extend(self.close(socket, code, code.reason().into(), now));
        }
        let open = !self.members.is_empty();
        let interval = timings.heartbeat_interval_ms;
        let (send, next) = periodic_plan(self.schedule.heartbeat, open, now, interval);
        self.schedule.heartbeat = next;
        if send {
            let packet = outbound::heartbeat(Stamp::of(&self.airport, now));
            effects.send(To::All { except: None }, packet);
        }
        if !self.presence.has_controllers() {
            let grace = timings.offline_grace_ms;
            effects
                .persist
                .extend(self.airport.clear_if_due(now, grace));
        }
        let (due, next) = periodic_plan(self.schedule.recheck, open, now, self.config.recheck_ms);
        self.schedule.recheck = next;
        self.persist_schedule(&mut effects);
        let recheck = due.then(|| self.recheck_questions());
        (effects, recheck)
    }

    fn recheck_questions(&self) -> Recheck {
        let attachments = self.members.values().map(|m| &m.attachment);
        let key_hashes: BTreeSet<&String> = attachments.clone().map(|a| &a.key_hash).collect();
        let people: BTreeSet<&Cid> = match self.config.role_source {
            RoleSource::Vatsim(_) => attachments.map(|a| &a.session.cid).collect(),
            RoleSource::Static => BTreeSet::new(),
        };
        Recheck {
            key_hashes: key_hashes.into_iter().cloned().collect(),
            people: people.into_iter().cloned().collect(),
        }
    }

    /// A re-check's answers, whenever they arrive: key revoked 4001; banned or role changed
    /// 4003; a pilot's new callsign. What is not answered keeps its session, and so does a
    /// socket that connected after the questions were asked.
    pub fn rechecked(&mut self, answers: &Answers, now: i64) -> Effects {
        let mut effects = Effects::default();
        let mut ids: Vec<SocketId> = self.members.keys().copied().collect();
        ids.sort_unstable();
        for socket in ids {
            let Some(member) = self.members.get(&socket) else {
                continue;
            };
            let session = &member.attachment.session;
            let key = answers
                .keys
                .get(&member.attachment.key_hash)
                .unwrap_or(&KeyStanding::Unknown);
            let network = answers
                .network
                .get(&session.cid)
                .unwrap_or(&NetworkStanding::Unreachable);
            let verdict = recheck::verdict(
                session,
                key,
                network,
                &self.config.role_source,
                self.airport.icao(),
                now,
            );
            match verdict {
                recheck::Verdict::Keep => {}
                recheck::Verdict::NewCallsign(callsign) => {
                    let Some(member) = self.members.get_mut(&socket) else {
                        continue;
                    };
                    let session = &mut member.attachment.session;
                    self.presence.leave(session);
                    session.callsign = Some(callsign);
                    self.presence.join(session);
                    effects.attachments.push(member.attachment.clone());
                }
                recheck::Verdict::Close { code, reason } => {
                    let error = PacketError::SessionEnded(reason.clone());
                    let stamp = Stamp::of(&self.airport, now);
                    effects.send(To::Socket(socket), outbound::error(stamp, &error, None));
                    effects.extend(self.close(socket, code, reason, now));
                }
            }
        }
        effects
    }

    fn persist_schedule(&mut self, effects: &mut Effects) {
        if self.schedule != self.stored_schedule {
            effects.persist.push(StoreOp::SetSchedule(self.schedule));
            self.stored_schedule = self.schedule;
        }
    }
}
