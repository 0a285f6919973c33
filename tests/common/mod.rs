//! What the native tests of the state machine share: an airport with its presence, each
// Each test crate that includes this module uses a different part of it.
#![allow(dead_code)]
//! sender's token bucket with the production limits of its role, and simulated time.

use airport_realtime::protocol::config::RateLimits;
use airport_realtime::protocol::machine::{Effects, on_frame};
use airport_realtime::protocol::packet::Frame;
use airport_realtime::protocol::rate_limit::TokenBucket;
use airport_realtime::protocol::{Airport, Cid, Icao, Presence, Role, Session};
use serde_json::Value;
use std::collections::HashMap;

pub struct Harness {
    pub airport: Airport,
    pub presence: Presence,
    pub limits: RateLimits,
    buckets: HashMap<(Cid, Role), TokenBucket>,
    pub now: i64,
    /// How far the clock moves before each frame; the default (1 s) stays within any limit.
    pub step_ms: i64,
}

pub fn who(role: Role, cid: &str) -> Session {
    Session {
        cid: Cid::parse(cid).unwrap(),
        role,
        callsign: None,
    }
}

impl Harness {
    pub fn new() -> Self {
        Harness {
            airport: Airport::new(Icao::parse("EGLL").unwrap()),
            presence: Presence::default(),
            limits: RateLimits::default(),
            buckets: HashMap::new(),
            now: 1_000,
            step_ms: 1_000,
        }
    }

    pub fn send(&mut self, from: &Session, packet: Value) -> Effects {
        self.send_text(from, &packet.to_string())
    }

    /// A frame exactly as written, for numbers whose spelling matters.
    pub fn send_text(&mut self, from: &Session, text: &str) -> Effects {
        self.send_frame(from, Frame::Text(text))
    }

    pub fn send_frame(&mut self, from: &Session, frame: Frame<'_>) -> Effects {
        self.now += self.step_ms;
        let limit = self.limits.for_role(from.role);
        let bucket = self
            .buckets
            .entry((from.cid.clone(), from.role))
            .or_insert_with(|| TokenBucket::full(limit, 0));
        on_frame(
            &mut self.airport,
            &self.presence,
            from,
            bucket,
            limit,
            frame,
            self.now,
        )
    }
}

pub fn parse(text: &str) -> Value {
    serde_json::from_str(text).unwrap()
}

pub fn error_code(effects: &Effects) -> Option<String> {
    let reply = parse(effects.reply.as_ref()?);
    (reply["type"] == "ERROR").then(|| reply["data"]["code"].as_str().unwrap().to_owned())
}

/// The broadcast's audience and packet, parsed.
pub fn broadcast(effects: &Effects) -> Option<(airport_realtime::protocol::Audience, Value)> {
    let (audience, text) = effects.broadcast.as_ref()?;
    Some((*audience, parse(text)))
}
