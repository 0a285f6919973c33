//! One connection's life as a state machine with no I/O (quinn-proto's model): frames and the
//! time go in; frames to send, events for the application and "this connection is dead" come
//! out. It owns its timers: [`Session::poll_timeout`] says when [`Session::handle_timeout`] is
//! due. Heartbeats and liveness follow docs/protocol.md §9, the replica §8.

use crate::replica::{Applied, Replica};
use airport_protocol::wire::client::{Envelope, WithData};
use airport_protocol::wire::server::ServerPacket;
use airport_protocol::wire::{ClientPacket, RequestId};
use airport_protocol::{Cid, Role};
use serde::Deserialize;
use serde_json::Value;
use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// How long to wait for `INITIAL_STATE` after the upgrade.
const FIRST_FRAME_WITHIN: Duration = Duration::from_secs(15);
/// Silence tolerated beyond the server's heartbeat interval.
const SILENCE_MARGIN: Duration = Duration::from_secs(15);
/// Our `HEARTBEAT` must be answered within this.
const ACK_WITHIN: Duration = Duration::from_secs(10);
/// Own changes remembered by `requestId`, to notice an `ERROR` for one.
const OWN_REQUESTS_KEPT: usize = 256;

/// What the session asks of its driver.
#[derive(Debug, Clone, PartialEq)]
pub enum Output {
    /// A text frame to send.
    Send(String),
    Event(Event),
    /// Nothing came in time: close the socket and reconnect.
    Dead(&'static str),
}

/// What the application hears.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// `INITIAL_STATE` came: who we are here.
    Ready { role: Role, cid: Cid },
    /// Every packet the server sent that this version knows.
    Packet(Box<ServerPacket>),
    /// A packet this version does not know (a new type, or a shape it cannot read): passed
    /// through as it came, never fatal.
    Unknown(Value),
    /// A frame that is not JSON.
    Unreadable(String),
    /// The replica changed.
    ReplicaChanged,
    /// Changes went missing: `GET_STATE` was sent and the replica is stale until it comes.
    Resyncing,
}

pub struct Session {
    replica: Replica,
    me: Option<(Role, Cid)>,
    last_inbound: Instant,
    /// `None` until `INITIAL_STATE` gives the server's interval.
    heartbeats: Option<Heartbeats>,
    requests: u64,
    own_requests: VecDeque<RequestId>,
}

struct Heartbeats {
    every: Duration,
    silence_limit: Duration,
    next: Instant,
    ack: Option<(RequestId, Instant)>,
}

impl Heartbeats {
    /// For the server's interval, kept within reason whatever it says.
    fn new(interval_ms: i64, now: Instant) -> Self {
        let interval = Duration::from_millis(interval_ms.clamp(1_000, 3_600_000) as u64);
        Heartbeats {
            every: interval / 2,
            silence_limit: interval + SILENCE_MARGIN,
            next: now + interval / 2,
            ack: None,
        }
    }
}

impl Session {
    /// A session for a socket that has just opened, carrying on from `replica` (shown, stale,
    /// until the new `INITIAL_STATE` replaces it).
    pub fn new(mut replica: Replica, now: Instant) -> Self {
        replica.stale = true;
        Session {
            replica,
            me: None,
            last_inbound: now,
            heartbeats: None,
            requests: 0,
            own_requests: VecDeque::new(),
        }
    }

    pub fn replica(&self) -> &Replica {
        &self.replica
    }

    /// The replica, for the next connection.
    pub fn into_replica(self) -> Replica {
        self.replica
    }

    pub fn handle_frame(&mut self, text: &str, now: Instant) -> Vec<Output> {
        self.last_inbound = now;
        let value: Value = match serde_json::from_str(text) {
            Ok(value) => value,
            Err(error) => return vec![Output::Event(Event::Unreadable(error.to_string()))],
        };
        let mut out = Vec::new();
        // Liveness and our own changes' refusals are read from `type` and `requestId` alone,
        // so that a packet this version cannot read in full (a new error code) still counts.
        let request_id = value.get("requestId").and_then(Value::as_str);
        match value.get("type").and_then(Value::as_str) {
            Some("HEARTBEAT") => out.push(frame(ClientPacket::HeartbeatAck(Envelope::default()))),
            Some("HEARTBEAT_ACK") => self.acknowledged(request_id),
            Some("ERROR") if request_id.is_some_and(|id| self.is_own(id)) => {
                self.replica.own_change_refused();
                out.extend(self.resync());
            }
            _ => {}
        }
        let packet = match ServerPacket::deserialize(&value) {
            Ok(packet) => packet,
            Err(_) => {
                out.push(Output::Event(Event::Unknown(value)));
                return out;
            }
        };
        let applied = self.replica.apply(&packet);
        if let ServerPacket::InitialState(initial) = &packet {
            let data = &initial.data;
            self.me = Some((data.connection_type, data.cid.clone()));
            self.heartbeats = Some(Heartbeats::new(data.heartbeat_interval_ms, now));
            // After the replica is replaced, so that it is there to read.
            out.push(Output::Event(Event::Ready {
                role: data.connection_type,
                cid: data.cid.clone(),
            }));
            // Pilots are only ever known by asking.
            let ask = self.request();
            out.push(frame(ClientPacket::GetOnlinePilots(ask)));
        }
        out.push(Output::Event(Event::Packet(Box::new(packet))));
        match applied {
            Applied::Changed => out.push(Output::Event(Event::ReplicaChanged)),
            Applied::Gap => out.extend(self.resync()),
            Applied::Nothing => {}
        }
        out
    }

    fn acknowledged(&mut self, request_id: Option<&str>) {
        if let Some(heartbeats) = &mut self.heartbeats
            && heartbeats.ack.as_ref().map(|(id, _)| id.0.as_str()) == request_id
        {
            heartbeats.ack = None;
        }
    }

    fn is_own(&self, request_id: &str) -> bool {
        self.own_requests.iter().any(|id| id.0 == request_id)
    }

    /// Sends a packet of the application's. A controller's own object changes are applied to
    /// the replica at once (the server does not echo them) and remembered by `requestId`, so
    /// that an `ERROR` for one puts the replica right.
    pub fn send(&mut self, mut packet: ClientPacket, now_ms: i64) -> Output {
        let changes = match &mut packet {
            ClientPacket::StateUpdate(WithData { envelope, data }) => {
                Some((envelope, std::slice::from_ref(data)))
            }
            ClientPacket::MultiStateUpdate(WithData { envelope, data }) => {
                Some((envelope, data.updates.as_slice()))
            }
            _ => None,
        };
        if let (Some((envelope, changes)), Some((Role::Controller, cid))) = (changes, &self.me) {
            let id = envelope
                .request_id
                .get_or_insert_with(|| next_request_id(&mut self.requests))
                .clone();
            self.replica.apply_own(changes, cid, now_ms);
            if self.own_requests.len() == OWN_REQUESTS_KEPT {
                self.own_requests.pop_front();
            }
            self.own_requests.push_back(id);
        }
        frame(packet)
    }

    /// When `handle_timeout` is due next.
    pub fn poll_timeout(&self) -> Instant {
        match &self.heartbeats {
            None => self.last_inbound + FIRST_FRAME_WITHIN,
            Some(heartbeats) => {
                let silence = self.last_inbound + heartbeats.silence_limit;
                // While our heartbeat waits for its ack, that deadline stands and no other
                // heartbeat is sent (a new one must not push it back).
                let next = heartbeats
                    .ack
                    .as_ref()
                    .map_or(heartbeats.next, |(_, due)| *due);
                silence.min(next)
            }
        }
    }

    pub fn handle_timeout(&mut self, now: Instant) -> Vec<Output> {
        let Some(heartbeats) = &self.heartbeats else {
            return match now >= self.last_inbound + FIRST_FRAME_WITHIN {
                true => vec![Output::Dead("no INITIAL_STATE in time")],
                false => Vec::new(),
            };
        };
        if now >= self.last_inbound + heartbeats.silence_limit {
            return vec![Output::Dead("nothing received in time")];
        }
        match &heartbeats.ack {
            Some((_, due)) if now >= *due => return vec![Output::Dead("no HEARTBEAT_ACK in time")],
            Some(_) => return Vec::new(),
            None if now < heartbeats.next => return Vec::new(),
            None => {}
        }
        let id = next_request_id(&mut self.requests);
        if let Some(heartbeats) = &mut self.heartbeats {
            heartbeats.next = now + heartbeats.every;
            heartbeats.ack = Some((id.clone(), now + ACK_WITHIN));
        }
        vec![frame(ClientPacket::Heartbeat(Envelope {
            airport: None,
            request_id: Some(id),
        }))]
    }

    fn resync(&mut self) -> Vec<Output> {
        let request = frame(ClientPacket::GetState(self.request()));
        vec![request, Output::Event(Event::Resyncing)]
    }

    /// An envelope with a new `requestId`.
    fn request(&mut self) -> Envelope {
        Envelope {
            airport: None,
            request_id: Some(next_request_id(&mut self.requests)),
        }
    }
}

/// Our `requestId`s: `r-1`, `r-2`, … on this connection.
fn next_request_id(requests: &mut u64) -> RequestId {
    *requests += 1;
    RequestId(format!("r-{requests}"))
}

fn frame(packet: ClientPacket) -> Output {
    // Our own packet types always serialize.
    Output::Send(serde_json::to_string(&packet).unwrap_or_default())
}
