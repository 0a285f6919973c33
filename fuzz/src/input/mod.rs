//! Structured inputs for the `state_machine` target, one file per family: the run here (pacing,
//! prefill, steps, who), the packets (`packet.rs`: envelope and body of every client type, and
//! frames that are not packets), the changes they carry (`change.rs`: object ids, states and
//! patches) and the JSON inside them (`json.rs`). Packets are built from the client packet list
//! of PROTOCOL §3 and rendered to text by hand (not through `serde_json`), so that they can carry
//! what a `Value` cannot: duplicate keys, number spellings such as `1e15` or `-0`, escapes, lone
//! surrogates, truncation, padding to the size limit, raw strings and raw bytes.
//!
//! The order of variants and fields is what saved inputs mean: `arbitrary` reads them in order.

mod change;
mod json;
mod packet;

pub use change::{Change, Key, ObjId, Op};
pub use json::{J, NumTok, Str, Word};
pub use packet::{AirportField, AnyKind, Body, Envelope, Packet, Pad, RequestId, TypeName};

use arbitrary::Arbitrary;

/// A whole run: how packets are paced, what the airport starts with, and what happens.
#[derive(Arbitrary, Debug, Clone)]
pub struct Scenario {
    pub limit: LimitMode,
    pub prefill: Prefill,
    pub steps: Vec<Step>,
}

#[derive(Arbitrary, Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitMode {
    /// No rate limiting (mostly: three variants of four).
    Unlimited,
    Unlimited2,
    Unlimited3,
    /// Production's limits for each role (`RateLimits::default()`), paced by the steps' `dt`.
    Default,
}

/// What storage holds when the airport is restored, so that the limits are reachable quickly.
/// Near-limit airports are costly to copy and compare, so `arbitrary` picks them for one run in
/// about eleven (see the `Arbitrary` impl below).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Prefill {
    Empty,
    /// Three objects and a little shared state.
    Some,
    /// 9,995 objects: a few more reach `MAX_OBJECTS`.
    NearObjectLimit,
    /// `MAX_OBJECTS` objects.
    AtObjectLimit,
    /// About 995,000 characters of shared state.
    NearSharedLimit,
}

impl<'a> Arbitrary<'a> for Prefill {
    fn arbitrary(u: &mut arbitrary::Unstructured<'a>) -> arbitrary::Result<Self> {
        Ok(match u8::arbitrary(u)? % 32 {
            0 => Prefill::NearObjectLimit,
            1 => Prefill::AtObjectLimit,
            2 => Prefill::NearSharedLimit,
            3..=15 => Prefill::Some,
            _ => Prefill::Empty,
        })
    }

    fn size_hint(_depth: usize) -> (usize, Option<usize>) {
        (1, Some(1))
    }
}

impl Prefill {
    /// (objects, shared characters)
    pub fn sizes(self) -> (usize, usize) {
        match self {
            Prefill::Empty => (0, 0),
            Prefill::Some => (3, 0),
            Prefill::NearObjectLimit => (9_995, 0),
            Prefill::AtObjectLimit => (10_000, 0),
            Prefill::NearSharedLimit => (3, 995_000),
        }
    }
}

#[derive(Arbitrary, Debug, Clone)]
pub enum Step {
    /// One inbound frame from `who`, `dt` ms after the previous event.
    Frame {
        who: Who,
        dt: u8,
        binary: bool,
        packet: Packet,
    },
    Frame2 {
        who: Who,
        dt: u8,
        binary: bool,
        packet: Packet,
    },
    /// A socket of `who` was accepted.
    Join { who: Who },
    /// A socket of `who` closed.
    Leave { who: Who },
    /// Time passes (taken modulo 200 s).
    Wait { ms: u32 },
    /// The Durable Object's alarm: the offline clearing when it is due.
    Alarm,
    /// The object hibernated: a new one is built from storage and the open sockets'
    /// attachments.
    Wake,
}

#[derive(Arbitrary, Debug, Clone, Copy, PartialEq, Eq)]
pub struct Who {
    pub role: RoleChoice,
    /// One of four people (taken modulo 4).
    pub person: u8,
    /// Pilots only: whether the role source knows a callsign.
    pub callsign: bool,
}

#[derive(Arbitrary, Debug, Clone, Copy, PartialEq, Eq)]
pub enum RoleChoice {
    Controller,
    Controller2,
    Pilot,
    Observer,
}
