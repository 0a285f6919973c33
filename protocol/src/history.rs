//! What lets a reconnecting client resume from its `seq` instead of reading the whole airport
//! again (docs/protocol.md §8): each object's last-change `seq` (on its record), the `seq` of
//! the last change to shared state, a bounded log of deletions (tombstones), and a floor below
//! which no resume is exact any more (the offline clearing, an evicted tombstone, a new grouping
//! of points). A resume from `X` is then the objects changed after `X`, the objects deleted
//! after `X` and the shared state if it changed after `X`; valid when `X` is at least the floor.
//!
//! A `seq` means nothing outside its airport's storage: each storage has a random id made when
//! it is created ([`HistoryId`]), which the client repeats with its `seq`.

use super::airport::StoreOp;

/// At most this many deletions are remembered. An airport deletes few objects (lights are
/// switched, not removed), so this covers hours; past it, a full state costs about what a long
/// list of deletions would.
pub const MAX_TOMBSTONES: usize = 1_000;
/// And at most this many bytes of their ids (an id may be 128 characters): the log is held in
/// memory and read at every wake-up.
pub const MAX_TOMBSTONE_BYTES: usize = 32 * 1024;

/// The id of one airport's stored history: 16 lowercase hexadecimal digits (64 random bits),
/// made when its storage is created.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct HistoryId(String);

impl HistoryId {
    pub const LEN: usize = 16;

    pub fn parse(text: &str) -> Option<HistoryId> {
        let valid = text.len() == Self::LEN
            && text
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        valid.then(|| HistoryId(text.to_owned()))
    }

    /// The id of 64 bits (random ones, for a new history).
    pub fn from_bits(bits: u64) -> HistoryId {
        HistoryId(format!("{bits:016x}"))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Default for HistoryId {
    /// The history of an airport made in memory (tests, the dormant `/state`); storage always
    /// gives its own.
    fn default() -> Self {
        HistoryId::from_bits(0)
    }
}

/// The `resume` parameter of `/connect`: `<history>.<seq>` from a client that holds a replica,
/// anything else (empty, say) from one that has none yet but wants to resume next time. Both
/// get the history id in `INITIAL_STATE`; a client that sends no `resume` sees no change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResumeRequest {
    /// No usable replica: the full state, with the history id.
    Fresh,
    From {
        history: HistoryId,
        seq: u64,
    },
}

impl ResumeRequest {
    /// The query parameter's name.
    pub const PARAM: &'static str = "resume";
    /// The longest valid value: the id, a dot and a `u64`.
    const MAX_LEN: usize = HistoryId::LEN + 1 + 20;

    /// Reads the parameter strictly: a malformed value is [`ResumeRequest::Fresh`], never an
    /// error (the full state is always right).
    pub fn parse(value: &str) -> ResumeRequest {
        if value.len() > Self::MAX_LEN {
            return ResumeRequest::Fresh;
        }
        let parsed = value.split_once('.').and_then(|(history, seq)| {
            let digits = !seq.is_empty() && seq.bytes().all(|b| b.is_ascii_digit());
            Some(ResumeRequest::From {
                history: HistoryId::parse(history)?,
                seq: digits.then(|| seq.parse().ok()).flatten()?,
            })
        });
        parsed.unwrap_or(ResumeRequest::Fresh)
    }

    /// The parameter's value, as [`ResumeRequest::parse`] reads it.
    pub fn to_param(&self) -> String {
        match self {
            ResumeRequest::Fresh => String::new(),
            ResumeRequest::From { history, seq } => format!("{}.{seq}", history.as_str()),
        }
    }
}

/// An object deleted by the change `seq`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tombstone {
    pub id: String,
    pub seq: u64,
}

/// The log beside the objects' own `seq`s: see the module's documentation.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct History {
    id: HistoryId,
    /// The `seq` of the last change to shared state.
    shared_seq: u64,
    /// No resume from below it.
    floor: u64,
    /// One per deleted id (its last deletion), oldest first. Forgetting the oldest, the only
    /// removal from the front, is rare.
    tombstones: Vec<Tombstone>,
    tombstone_bytes: usize,
}

impl History {
    /// Rebuilds the log from storage, its tombstones in `seq` order (out of order, eviction
    /// would forget a newer one first: resumes the log could serve would get a full state, never
    /// a wrong one); tombstones at or below the floor are dropped.
    pub fn restore(
        id: HistoryId,
        shared_seq: u64,
        floor: u64,
        tombstones: impl IntoIterator<Item = Tombstone>,
    ) -> History {
        let mut history = History {
            id,
            shared_seq,
            floor,
            ..History::default()
        };
        for tombstone in tombstones.into_iter().filter(|t| t.seq > floor) {
            history.tombstone_bytes += tombstone.id.len();
            history.tombstones.push(tombstone);
        }
        history
    }

    pub fn id(&self) -> &HistoryId {
        &self.id
    }

    pub fn shared_seq(&self) -> u64 {
        self.shared_seq
    }

    pub fn floor(&self) -> u64 {
        self.floor
    }

    pub fn tombstones(&self) -> impl Iterator<Item = &Tombstone> {
        self.tombstones.iter()
    }

    /// Whether a replica at `seq` of history `id` can be brought up to `current` from the log.
    pub fn can_resume(&self, id: &HistoryId, seq: u64, current: u64) -> bool {
        *id == self.id && self.floor <= seq && seq <= current
    }

    pub fn shared_changed(&mut self, seq: u64) -> StoreOp {
        self.shared_seq = seq;
        StoreOp::SetSharedSeq(seq)
    }

    /// Remembers that the change `seq` deleted `id`, forgetting the oldest deletions beyond
    /// the bounds (the floor rises to the last one forgotten). A deletion at or below the floor
    /// (just after a regrouping) is no resume's business: no replica before it may resume.
    pub fn deleted(&mut self, id: &str, seq: u64, ops: &mut Vec<StoreOp>) {
        if seq <= self.floor {
            return;
        }
        if let Some(index) = self.tombstones.iter().position(|t| t.id == id) {
            self.tombstones.remove(index);
            self.tombstone_bytes -= id.len();
        }
        self.tombstones.push(Tombstone {
            id: id.to_owned(),
            seq,
        });
        self.tombstone_bytes += id.len();
        ops.push(StoreOp::PutTombstone {
            id: id.to_owned(),
            seq,
        });
        let (mut floor, mut kept, mut bytes) =
            (self.floor, self.tombstones.len(), self.tombstone_bytes);
        for oldest in &self.tombstones {
            if kept <= MAX_TOMBSTONES && bytes <= MAX_TOMBSTONE_BYTES {
                break;
            }
            kept -= 1;
            bytes -= oldest.id.len();
            floor = floor.max(oldest.seq);
        }
        if let Some(op) = self.raise_floor(floor) {
            ops.push(op);
        }
    }

    /// No resume from below `floor` any more (what happened before it is not in the log).
    pub fn raise_floor(&mut self, floor: u64) -> Option<StoreOp> {
        if floor <= self.floor {
            return None;
        }
        self.floor = floor;
        let below = self.tombstones.iter().take_while(|t| t.seq <= floor);
        let (count, bytes) = below.fold((0, 0), |(n, b), t| (n + 1, b + t.id.len()));
        self.tombstones.drain(..count);
        self.tombstone_bytes -= bytes;
        Some(StoreOp::SetResumeFloor(floor))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id() -> HistoryId {
        HistoryId::parse("00ff00ff00ff00ff").unwrap()
    }

    #[test]
    fn resume_parameters_are_read_strictly() {
        let from = |seq| ResumeRequest::From { history: id(), seq };
        assert_eq!(ResumeRequest::parse("00ff00ff00ff00ff.42"), from(42));
        assert_eq!(ResumeRequest::parse("00ff00ff00ff00ff.0"), from(0));
        let max = format!("00ff00ff00ff00ff.{}", u64::MAX);
        assert_eq!(ResumeRequest::parse(&max), from(u64::MAX));
        assert_eq!(ResumeRequest::parse(&from(7).to_param()), from(7));
        for malformed in [
            "",
            "00ff00ff00ff00ff",
            "00ff00ff00ff00ff.",
            "00FF00FF00FF00FF.1",
            "00ff00ff00ff00f.1",
            "00ff00ff00ff00ff.+1",
            "00ff00ff00ff00ff.-1",
            "00ff00ff00ff00ff.1.2",
            "00ff00ff00ff00ff.18446744073709551616",
            "00ff00ff00ff00ff.000000000000000000000001",
        ] {
            assert_eq!(
                ResumeRequest::parse(malformed),
                ResumeRequest::Fresh,
                "{malformed}"
            );
        }
        assert_eq!(
            ResumeRequest::parse(&"9".repeat(1 << 20)),
            ResumeRequest::Fresh
        );
        assert_eq!(HistoryId::from_bits(0xabc).as_str(), "0000000000000abc");
    }

    #[test]
    fn the_log_is_bounded_by_count_and_the_floor_follows_evictions() {
        let mut history = History::restore(id(), 0, 0, []);
        let mut ops = Vec::new();
        for seq in 1..=MAX_TOMBSTONES as u64 {
            history.deleted(&format!("O{seq}"), seq, &mut ops);
        }
        assert_eq!(history.floor(), 0);
        assert!(history.can_resume(&id(), 0, MAX_TOMBSTONES as u64));
        // Deleting an id again keeps one tombstone, at its last deletion.
        history.deleted("O1", 1_001, &mut ops);
        assert_eq!(history.tombstones().count(), MAX_TOMBSTONES);
        assert_eq!(history.floor(), 0);
        ops.clear();
        history.deleted("NEW", 1_002, &mut ops);
        assert_eq!(history.tombstones().count(), MAX_TOMBSTONES);
        assert_eq!(history.floor(), 2, "O2 was forgotten");
        assert_eq!(
            ops,
            [
                StoreOp::PutTombstone {
                    id: "NEW".into(),
                    seq: 1_002
                },
                StoreOp::SetResumeFloor(2)
            ]
        );
        assert!(!history.can_resume(&id(), 1, 1_002));
        assert!(history.can_resume(&id(), 2, 1_002));
        assert!(!history.can_resume(&id(), 1_003, 1_002), "a future seq");
        let other = HistoryId::from_bits(1);
        assert!(
            !history.can_resume(&other, 1_002, 1_002),
            "a foreign history"
        );
    }

    #[test]
    fn the_log_is_bounded_by_bytes() {
        let mut history = History::default();
        let long = |n: u64| format!("{n:0>128}");
        let mut ops = Vec::new();
        let fits = MAX_TOMBSTONE_BYTES / 128;
        for seq in 1..=fits as u64 + 1 {
            history.deleted(&long(seq), seq, &mut ops);
        }
        assert_eq!(history.tombstones().count(), fits);
        assert_eq!(history.floor(), 1);
        assert!(history.tombstone_bytes <= MAX_TOMBSTONE_BYTES);
    }

    #[test]
    fn a_restored_log_drops_what_the_floor_covers() {
        let stones =
            [("A", 3), ("C", 5), ("B", 9)].map(|(id, seq)| Tombstone { id: id.into(), seq });
        let history = History::restore(id(), 4, 3, stones);
        let kept: Vec<_> = history.tombstones().map(|t| t.id.as_str()).collect();
        assert_eq!(kept, ["C", "B"]);
        assert_eq!(history.tombstone_bytes, 2);
        let mut raised = history.clone();
        assert_eq!(raised.raise_floor(5), Some(StoreOp::SetResumeFloor(5)));
        assert_eq!(raised.raise_floor(4), None, "a floor never goes down");
        assert_eq!(raised.tombstones().count(), 1);
    }
}
