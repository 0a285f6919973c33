//! A [`Room`] driven in simulated time, each session on its own socket (connected on first
//! use), and a frame's effects as its sender sees them.

use airport_protocol::airport::{ObjectRecord, StoreOp};
use airport_protocol::config::{Config, RateLimit, RateLimits};
use airport_protocol::connect::HttpError;
use airport_protocol::effects::{Action, To};
use airport_protocol::history::ResumeRequest;
use airport_protocol::liveness::Schedule;
use airport_protocol::packet::Frame;
use airport_protocol::session::Attachment;
use airport_protocol::{Airport, Cid, CloseCode, Effects, Icao, Role, Room, RowsToRead, Session};
use airport_protocol::{SocketId, room::Answers};
use serde_json::Value;
use std::collections::BTreeMap;

/// Rate limits that never limit, so that pacing never masks a packet.
pub fn unlimited_rates() -> RateLimits {
    let limit = RateLimit {
        burst: 1e12,
        per_second: 1e12,
        flood_drops: 1e12,
    };
    RateLimits {
        controller: limit,
        pilot_or_observer: limit,
        asks: limit,
        refusals: limit,
    }
}

#[derive(Clone)]
pub struct Harness {
    pub room: Room,
    sockets: Vec<(Session, SocketId)>,
    next_socket: SocketId,
    pub now: i64,
    /// How far the clock moves before each frame; the default (1 s) stays within any limit.
    pub step_ms: i64,
    /// The objects' rows in storage while the room has not read them ([`Harness::unread`]).
    stored_objects: Option<BTreeMap<String, ObjectRecord>>,
    /// How many times the room was handed its objects' rows.
    pub objects_reads: usize,
    /// The `seq` after which a resuming connect was handed the rows changed, each time.
    pub changed_reads: Vec<u64>,
    /// Each socket's attachment as last saved: what a wake-up restores it from.
    saved: BTreeMap<SocketId, Attachment>,
}

/// The airport as a wake-up restores it, its objects left unread, and the rows it leaves in
/// storage.
pub fn unread(airport: &Airport) -> (Airport, BTreeMap<String, ObjectRecord>) {
    let objects = airport
        .objects()
        .expect("the airport's objects are read")
        .clone();
    let mut unread = Airport::restore_unread(
        airport.icao().clone(),
        objects.len(),
        airport.shared().as_map().clone(),
        airport.seq(),
        airport.offline_since(),
    )
    .with_history(airport.history().clone());
    unread.set_equivalence(airport.equivalence().clone());
    (unread, objects)
}

pub fn who(role: Role, cid: &str) -> Session {
    Session {
        cid: Cid::parse(cid).unwrap(),
        role,
        callsign: None,
    }
}

/// The hash of the key each person connects with.
pub fn key_of(cid: &Cid) -> String {
    format!("key-{cid}")
}

pub fn egll() -> Airport {
    Airport::new(Icao::parse("EGLL").unwrap())
}

/// Who a frame's packet reaches besides its sender.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Audience {
    /// Every socket but the sender's.
    Others,
    /// Every socket, the sender's included.
    Everyone,
    /// The controllers' sockets.
    Controllers,
}

/// A frame's effects as its sender sees them.
#[derive(Debug, Default, PartialEq)]
pub struct Sent {
    pub persist: Vec<StoreOp>,
    /// The packet sent back to the sender.
    pub reply: Option<String>,
    /// The packet for others: an accepted change, or a group send.
    pub broadcast: Option<(Audience, String)>,
    /// The sender's socket was closed.
    pub close: Option<CloseCode>,
    /// The `requestId` of the `ERROR INTERNAL` the sender gets if the write fails.
    pub request_id: Option<String>,
}

impl Sent {
    fn of(sender: SocketId, effects: Effects) -> Sent {
        let mut sent = Sent {
            persist: effects.persist,
            request_id: effects.writer.and_then(|w| w.request_id),
            ..Sent::default()
        };
        for action in effects.actions {
            match action {
                Action::Send {
                    to: To::Socket(id),
                    packet,
                } if id == sender => sent.reply = Some(packet),
                Action::Send { to, packet } => {
                    let audience = match to {
                        To::All { except: Some(id) } if id == sender => Audience::Others,
                        To::All { except: None } => Audience::Everyone,
                        To::Controllers { except: None } => Audience::Controllers,
                        other => panic!("unexpected audience {other:?}"),
                    };
                    sent.broadcast = Some((audience, packet));
                }
                Action::Close { socket, code, .. } if socket == sender => sent.close = Some(code),
                Action::Close { .. } => panic!("a frame closed another socket"),
            }
        }
        if let Some(change) = effects.change {
            assert_eq!(change.sender, sender);
            sent.broadcast = Some((Audience::Others, change.packet));
            if let Some(packet) = change.to_sender {
                assert_eq!(sent.reply, None, "a change has no other reply");
                sent.reply = Some(packet);
            }
        }
        sent
    }
}

impl Default for Harness {
    fn default() -> Self {
        Harness::with(Config::default(), egll())
    }
}

impl Harness {
    pub fn new() -> Self {
        Harness::default()
    }

    /// No rate limit at all: for tests about packets, not pacing.
    pub fn unlimited() -> Self {
        Harness::with_limits(unlimited_rates())
    }

    pub fn with_limits(rate_limits: RateLimits) -> Self {
        Harness::with(
            Config {
                rate_limits,
                ..Config::default()
            },
            egll(),
        )
    }

    pub fn with(config: Config, airport: Airport) -> Self {
        Harness::woken(config, airport, &[], true).0
    }

    /// The room after a wake-up: `airport` as stored, and `sessions` on the sockets that stayed
    /// open (ids 1, 2, …). Its objects are read at once (`read`), or when an event needs them,
    /// as the Durable Object reads them. With the restore's effects.
    pub fn woken(
        config: Config,
        airport: Airport,
        sessions: &[Session],
        read: bool,
    ) -> (Self, Effects) {
        let now = 1_000;
        let (airport, stored_objects) = match read {
            true => (airport, None),
            false => {
                let (airport, objects) = unread(&airport);
                (airport, Some(objects))
            }
        };
        let sockets: Vec<(Session, SocketId)> = sessions.iter().cloned().zip(1..).collect();
        let attachments = sockets.iter().map(|(session, id)| Attachment {
            id: *id,
            session: session.clone(),
            key_hash: key_of(&session.cid),
            last_seen: now,
            left: false,
        });
        let saved = attachments.clone().map(|a| (a.id, a)).collect();
        let (room, effects) = Room::restore(config, airport, Schedule::default(), attachments, now);
        let harness = Harness {
            room,
            next_socket: sockets.len() as SocketId + 1,
            sockets,
            now,
            step_ms: 1_000,
            stored_objects,
            objects_reads: 0,
            changed_reads: Vec::new(),
            saved,
        };
        (harness, effects)
    }

    /// The object hibernated and was built again: `airport` and `schedule` as storage holds
    /// them (its objects read), and the sockets still open restored from the attachments last
    /// saved for them, as the runtime keeps them. Socket ids go on where they were.
    pub fn wake(&mut self, airport: Airport, schedule: Schedule) -> Effects {
        let open = (self.sockets.iter()).filter(|(_, id)| self.room.session(*id).is_some());
        let attachments: Vec<Attachment> = open
            .filter_map(|(_, id)| self.saved.get(id).cloned())
            .collect();
        let config = self.room.config().clone();
        let (room, effects) = Room::restore(config, airport, schedule, attachments, self.now);
        self.room = room;
        self.stored_objects = None;
        self.keep(effects)
    }

    /// The attachment last saved for `socket`.
    pub fn attachment(&self, socket: SocketId) -> Option<&Attachment> {
        self.saved.get(&socket)
    }

    /// Saves the attachments an event's effects carry, as the Durable Object does.
    fn keep(&mut self, effects: Effects) -> Effects {
        for attachment in &effects.attachments {
            self.saved.insert(attachment.id, attachment.clone());
        }
        effects
    }

    /// Hands the room its objects' rows if it has not read them (nor cleared them).
    fn read_objects(&mut self) {
        if self.room.airport().objects_read() {
            return;
        }
        if let Some(objects) = self.stored_objects.take() {
            self.room.read_objects(objects);
            self.objects_reads += 1;
        }
    }

    /// A frame on `socket`, as the Durable Object hands it in: again after reading the
    /// objects if the room needs them.
    pub fn frame(&mut self, socket: SocketId, frame: Frame<'_>, now: i64) -> Effects {
        if let Ok(effects) = self.room.frame(socket, frame, now) {
            return self.keep(effects);
        }
        self.read_objects();
        let effects = (self.room.frame(socket, frame, now)).expect("the objects are read");
        self.keep(effects)
    }

    /// The body of `GET /state`, its objects read first.
    pub fn public_state(&mut self) -> String {
        self.read_objects();
        self.room.public_state().expect("the objects are read")
    }

    pub fn airport(&self) -> &Airport {
        self.room.airport()
    }

    /// A new socket for `who`, connected now with the person's key ([`key_of`]).
    pub fn connect(&mut self, who: &Session) -> (SocketId, Effects) {
        self.try_connect(who).expect("admitted")
    }

    /// The same, refused when the caps are reached.
    pub fn try_connect(&mut self, who: &Session) -> Result<(SocketId, Effects), HttpError> {
        self.connect_resuming(who, None)
    }

    /// A new socket for `who`, connected now with a `resume` parameter (`None`: without one).
    pub fn connect_resuming(
        &mut self,
        who: &Session,
        resume: Option<&ResumeRequest>,
    ) -> Result<(SocketId, Effects), HttpError> {
        let id = self.next_socket;
        let key = key_of(&who.cid);
        match self.room.rows_for_connect(resume) {
            Some(RowsToRead::All) => self.read_objects(),
            Some(RowsToRead::ChangedSince(since)) => {
                let stored = self
                    .stored_objects
                    .as_ref()
                    .expect("unread rows are stored");
                let changed = (stored.iter())
                    .filter(|(_, record)| record.seq > since)
                    .map(|(id, record)| (id.clone(), record.clone()))
                    .collect();
                self.room.read_changed_objects(since, changed);
                self.changed_reads.push(since);
            }
            None => {}
        }
        let effects = self.room.connect(id, who.clone(), key, resume, self.now)?;
        self.next_socket += 1;
        self.sockets.push((who.clone(), id));
        Ok((id, self.keep(effects)))
    }

    /// The socket `who` sends on: its first open one, connected if there is none.
    pub fn socket(&mut self, who: &Session) -> SocketId {
        let open = self
            .sockets
            .iter()
            .find(|(s, id)| s == who && self.room.session(*id).is_some());
        match open {
            Some((_, id)) => *id,
            None => self.connect(who).0,
        }
    }

    pub fn send(&mut self, from: &Session, packet: Value) -> Sent {
        self.send_text(from, &packet.to_string())
    }

    /// A frame exactly as written, for numbers whose spelling matters.
    pub fn send_text(&mut self, from: &Session, text: &str) -> Sent {
        self.send_frame(from, Frame::Text(text))
    }

    pub fn send_frame(&mut self, from: &Session, frame: Frame<'_>) -> Sent {
        let socket = self.socket(from);
        self.now += self.step_ms;
        let now = self.now;
        Sent::of(socket, self.frame(socket, frame, now))
    }

    pub fn leave(&mut self, socket: SocketId) -> Effects {
        let effects = self.room.leave(socket, self.now);
        self.keep(effects)
    }

    /// The alarm at `now`, then `answers` to a re-check if one is due, as they would arrive.
    pub fn alarm(&mut self, answers: &Answers) -> Effects {
        let (mut effects, recheck) = self.room.alarm(self.now);
        if recheck.is_some() {
            effects.extend(self.room.rechecked(answers, self.now));
        }
        self.keep(effects)
    }
}

pub fn parse(text: &str) -> Value {
    serde_json::from_str(text).unwrap()
}

pub fn error_code(sent: &Sent) -> Option<String> {
    let reply = parse(sent.reply.as_ref()?);
    (reply["type"] == "ERROR").then(|| reply["data"]["code"].as_str().unwrap().to_owned())
}

/// The broadcast's audience and packet, parsed.
pub fn broadcast(sent: &Sent) -> Option<(Audience, Value)> {
    let (audience, text) = sent.broadcast.as_ref()?;
    Some((*audience, parse(text)))
}
