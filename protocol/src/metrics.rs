//! What an airport counts for its operators, a window at a time: sockets by role, frames in by
//! type, broadcasts and messages out, errors by code, closes by code, commits and storage
//! failures. Counting is a few additions on the hot path; a window becomes a handful of data
//! points (Workers Analytics Engine) once, when it is a minute old or the airport has been
//! quiet for two seconds (before it could hibernate and lose the counts).

use super::effects::{Action, CloseCode, To};
use super::error::ErrorCode;
use super::ids::Icao;
use super::packet::PacketKind;
use super::presence::Presence;
use super::role::Role;

/// A window is written once it is this old...
pub const WINDOW_MS: i64 = 60_000;
/// ...or once nothing was counted for this long: the object hibernates after about ten idle
/// seconds, and what it held in memory is gone then. `Room::next_wake` includes the time, so
/// the alarm (which, unlike a timer, does not keep the object awake) comes for it first. A busy
/// airport's alarm then comes about this often, only to find its window not yet due.
pub const QUIET_MS: i64 = 5_000;
/// An alarm may fire a little before its time by the clock the object reads: a window due
/// within this long is written then, rather than put off by another alarm a moment later.
pub const EARLY_MS: i64 = 100;

/// What a frame was counted as: its packet type, or why it was not read as one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameKind {
    Packet(PacketKind),
    /// Not a packet of a known type (bad JSON, too large, no or unknown `type`).
    Unreadable,
    /// Dropped by the rate limit before it was read.
    Dropped,
}

const FRAME_SLOTS: usize = PacketKind::ALL.len() + 2;
const ERROR_SLOTS: usize = ErrorCode::ALL.len();
const CLOSE_SLOTS: usize = CloseCode::ALL.len();

impl FrameKind {
    fn slot(self) -> usize {
        match self {
            FrameKind::Packet(kind) => kind as usize,
            FrameKind::Unreadable => FRAME_SLOTS - 2,
            FrameKind::Dropped => FRAME_SLOTS - 1,
        }
    }

    fn name(slot: usize) -> &'static str {
        match PacketKind::ALL.get(slot) {
            Some(kind) => kind.name(),
            None if slot == FRAME_SLOTS - 2 => "UNREADABLE",
            None => "DROPPED",
        }
    }
}

/// A commit as the Durable Object made it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Commit {
    pub ms: i64,
    pub saved: bool,
}

/// The counts of one window.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counts {
    pub connects: u32,
    pub disconnects: u32,
    pub frames: [u32; FRAME_SLOTS],
    pub errors: [u32; ERROR_SLOTS],
    pub closes: [u32; CLOSE_SLOTS],
    /// Packets addressed to a group of sockets (each sent once to every member).
    pub broadcasts: u32,
    /// Packets sent, one per recipient.
    pub messages_out: u32,
    pub commits: u32,
    /// Time spent committing, by the runtime's clock (which in production moves only on I/O).
    pub commit_ms: u32,
    pub storage_failures: u32,
    /// Time the object had an event or its background work under way, by the runtime's clock:
    /// what keeps it from hibernating, and what a hibernating object is billed for.
    pub awake_ms: u32,
}

/// The window being counted.
#[derive(Debug, Clone, Default)]
pub struct Metrics {
    counts: Counts,
    /// When the first count of this window was made, and the latest; `None` while empty.
    span: Option<(i64, i64)>,
}

impl Metrics {
    fn touch(&mut self, now: i64) -> &mut Counts {
        let start = self.span.map_or(now, |(start, _)| start);
        self.span = Some((start, now.max(start)));
        &mut self.counts
    }

    pub fn frame(&mut self, kind: FrameKind, now: i64) {
        self.touch(now).frames[kind.slot()] += 1;
    }

    pub fn error(&mut self, code: ErrorCode, now: i64) {
        self.touch(now).errors[code as usize] += 1;
    }

    pub fn connect(&mut self, now: i64) {
        self.touch(now).connects += 1;
    }

    pub fn disconnect(&mut self, now: i64) {
        self.touch(now).disconnects += 1;
    }

    /// The object was awake for `ms` (an event and what it started, until none was under way).
    /// Added without starting a window: a wake-up that counted nothing (an alarm that found
    /// nothing due) must not make a window due, and so another alarm, and so on. It goes in
    /// the next window written; the last one before hibernation is lost with the memory.
    pub fn awake(&mut self, ms: i64) {
        let counts = &mut self.counts;
        counts.awake_ms = counts
            .awake_ms
            .saturating_add(ms.clamp(0, i64::from(u32::MAX)) as u32);
    }

    /// A delivery as the Durable Object carried it out: its actions (closes by code, packets
    /// sent to a group), the `messages` that left, and its commit if it wrote (the time it
    /// took by the clock, and whether it held).
    pub fn delivered(
        &mut self,
        actions: &[Action],
        messages: u32,
        commit: Option<Commit>,
        now: i64,
    ) {
        if actions.is_empty() && commit.is_none() {
            return;
        }
        let counts = self.touch(now);
        for action in actions {
            match action {
                Action::Close { code, .. } => counts.closes[*code as usize] += 1,
                Action::Send {
                    to: To::Socket(_), ..
                } => {}
                Action::Send { .. } => counts.broadcasts += 1,
            }
        }
        counts.messages_out += messages;
        if let Some(Commit { ms, saved }) = commit {
            counts.commits += 1;
            counts.commit_ms += ms.clamp(0, i64::from(u32::MAX)) as u32;
            counts.storage_failures += u32::from(!saved);
        }
    }

    /// When the window should be written: a minute after it began, or once it has been quiet
    /// for [`QUIET_MS`]; `None` while nothing was counted.
    pub fn due_at(&self) -> Option<i64> {
        self.span
            .map(|(start, last)| (start + WINDOW_MS).min(last + QUIET_MS))
    }

    /// The window's data points if it is due (and a new window), or when to look again.
    pub fn tick(&mut self, icao: &Icao, presence: &Presence, now: i64) -> Tick {
        match self.due_at() {
            None => Tick::Idle,
            Some(due) if now + EARLY_MS < due => Tick::Later(due),
            Some(_) => Tick::Write(self.take(icao, presence, now)),
        }
    }

    /// The window's data points whether it is due or not (none if nothing was counted), and a
    /// new window: for an airport about to be forgotten.
    pub fn take(&mut self, icao: &Icao, presence: &Presence, now: i64) -> Vec<DataPoint> {
        let Some((start, _)) = self.span.take() else {
            return Vec::new();
        };
        let counts = std::mem::take(&mut self.counts);
        data_points(icao, presence, &counts, now - start)
    }
}

/// How long an object is awake: from the start of an event until no event, and no background
/// work one started, is under way. Overlapping events count once. A hibernatable Durable
/// Object is billed for this time, not for the idle seconds before it hibernates.
#[derive(Debug, Default)]
pub struct AwakeClock {
    under_way: u32,
    since: i64,
    finished_ms: i64,
}

impl AwakeClock {
    /// An event or a background task starts.
    pub fn begin(&mut self, now: i64) {
        if self.under_way == 0 {
            self.since = now;
        }
        self.under_way += 1;
    }

    /// One ends; the object is idle again once the last one has.
    pub fn end(&mut self, now: i64) {
        if self.under_way == 0 {
            return;
        }
        self.under_way -= 1;
        if self.under_way == 0 {
            self.finished_ms += (now - self.since).max(0);
        }
    }

    /// The awake time finished since the last take.
    pub fn take(&mut self) -> i64 {
        std::mem::take(&mut self.finished_ms)
    }
}

/// What a look at the window finds.
#[derive(Debug, PartialEq)]
pub enum Tick {
    /// The window is due: write these points.
    Write(Vec<DataPoint>),
    /// Look again then.
    Later(i64),
    /// Nothing was counted.
    Idle,
}

/// One Workers Analytics Engine data point: the airport is the index (so sampling keeps an
/// airport's points together), `blob1` says what the point counts.
#[derive(Debug, Clone, PartialEq)]
pub struct DataPoint {
    pub index: String,
    pub blobs: Vec<String>,
    pub doubles: Vec<f64>,
}

/// The column order of the `airport` point, as the README's queries read it. The integration
/// test (`tests/integration/metrics.test.mjs`) keeps its own copy on purpose, to catch a change.
pub const AIRPORT_COLUMNS: [&str; 14] = [
    "controllers",
    "pilots",
    "observers",
    "connects",
    "disconnects",
    "frames_in",
    "broadcasts",
    "messages_out",
    "errors",
    "commits",
    "commit_ms",
    "storage_failures",
    "window_ms",
    "awake_ms",
];

/// A window as data points: one `airport` point (`blob2` the airport, the doubles in the order
/// of [`AIRPORT_COLUMNS`]), then one point per type, code or close code counted, `blob1`
/// `frame`, `error` or `close`, `blob2` the airport, `blob3` the name and `double1` the count.
fn data_points(
    icao: &Icao,
    presence: &Presence,
    counts: &Counts,
    window_ms: i64,
) -> Vec<DataPoint> {
    let airport = icao.as_str();
    let point = |kind: &str, name: Option<String>, doubles: Vec<f64>| DataPoint {
        index: airport.to_string(),
        blobs: [Some(kind.to_string()), Some(airport.to_string()), name]
            .into_iter()
            .flatten()
            .collect(),
        doubles,
    };
    let sum = |slots: &[u32]| slots.iter().map(|n| f64::from(*n)).sum::<f64>();
    let mut points = vec![point(
        "airport",
        None,
        vec![
            f64::from(presence.sockets_of(Role::Controller)),
            f64::from(presence.sockets_of(Role::Pilot)),
            f64::from(presence.sockets_of(Role::Observer)),
            f64::from(counts.connects),
            f64::from(counts.disconnects),
            sum(&counts.frames),
            f64::from(counts.broadcasts),
            f64::from(counts.messages_out),
            sum(&counts.errors),
            f64::from(counts.commits),
            f64::from(counts.commit_ms),
            f64::from(counts.storage_failures),
            window_ms as f64,
            f64::from(counts.awake_ms),
        ],
    )];
    // A close is named by its code, as the client sees it.
    let named = [
        (
            "frame",
            &counts.frames[..],
            (|slot| FrameKind::name(slot).to_string()) as fn(usize) -> String,
        ),
        ("error", &counts.errors[..], |slot| {
            ErrorCode::ALL[slot].as_str().to_string()
        }),
        ("close", &counts.closes[..], |slot| {
            CloseCode::ALL[slot].code().to_string()
        }),
    ];
    for (kind, slots, name) in named {
        for (slot, count) in slots.iter().enumerate().filter(|(_, n)| **n > 0) {
            points.push(point(kind, Some(name(slot)), vec![f64::from(*count)]));
        }
    }
    points
}
