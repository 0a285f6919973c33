//! Events' effects waiting for one shared commit. Frames that arrive while a commit is being
//! prepared share it: one commit (an fsync locally, a replication round trip in production)
//! instead of one per frame, for the same durable result. Within the batch only the last write
//! of each row is kept; once it is durable, each entry's actions leave in order, and runs of
//! changes reach pilots and observers as one packet ([`ChangeRun`]).

use super::StoreOp;
use super::coalesce::ChangeRun;
use super::effects::{Action, Effects, To};
use super::error::PacketError;
use super::outbound::{self, Stamp};
use std::collections::HashSet;

/// Effects queued for the next commit, in arrival order.
#[derive(Debug, Default)]
pub struct Outbox {
    queued: Vec<Effects>,
    last_commit: Option<LastCommit>,
}

/// What the Durable Object does after queueing an event's effects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Commit and deliver everything queued now.
    Flush,
    /// Let the frames already waiting be handled first (one timer turn), then flush: a burst
    /// shares the commit.
    FlushSoon,
    /// A flush is already on its way and takes these effects too.
    Wait,
}

impl Outbox {
    /// Queues an event's effects. A write during a burst waits for more to share its commit;
    /// anything else goes at once, after what is queued (order is kept).
    pub fn push(&mut self, effects: Effects, now: i64) -> Next {
        let urgent = effects.closes().next().is_some()
            || (effects.persist.is_empty() && self.queued.is_empty());
        self.queued.push(effects);
        if urgent {
            Next::Flush
        } else if self.queued.len() > 1 {
            Next::Wait
        } else if wait_for_more(self.last_commit, now) {
            Next::FlushSoon
        } else {
            Next::Flush
        }
    }

    /// Everything queued, as one batch to commit: its writes, compacted, and the entries.
    pub fn take(&mut self) -> (Vec<StoreOp>, Batch) {
        let mut writes = Vec::new();
        let entries = std::mem::take(&mut self.queued)
            .into_iter()
            .map(|mut effects| {
                let wrote = !effects.persist.is_empty();
                writes.append(&mut effects.persist);
                (effects, wrote)
            })
            .collect();
        (compact(writes), Batch { entries })
    }

    /// A batch that wrote was committed at `at`, and `sends` packets followed it.
    pub fn committed(&mut self, at: i64, sends: u32) {
        self.last_commit = Some(LastCommit { at, sends });
    }
}

/// Queued effects taken for one commit (their writes taken out), each with whether it wrote.
#[derive(Debug)]
pub struct Batch {
    entries: Vec<(Effects, bool)>,
}

impl Batch {
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// What leaves once the commit is over. `saved` false: every entry that wrote tells its
    /// writer `ERROR INTERNAL` instead of its sends; the entries behind the first write were
    /// handled on memory holding what was lost, so nothing of theirs is sent either. Closes
    /// still happen, and entries before the first write go as they are: nothing a client
    /// receives was not durable, and a lost change's `seq` is never seen. With more than one
    /// entry, consecutive changes reach pilots and observers as one packet; controllers get
    /// each.
    pub fn deliver(self, saved: bool, stamp: Stamp<'_>) -> Vec<Action> {
        let coalesce = self.entries.len() > 1;
        let mut actions = Vec::new();
        let mut run = ChangeRun::default();
        let flush_run = |run: &mut ChangeRun, actions: &mut Vec<Action>| {
            if let Some(packet) = run.take(stamp) {
                actions.push(Action::Send {
                    to: To::PilotsAndObservers,
                    packet,
                });
            }
        };
        let mut lost = false;
        for (mut entry, wrote) in self.entries {
            lost |= !saved && wrote;
            if lost {
                flush_run(&mut run, &mut actions);
                if let Some(writer) = entry.writer.as_ref().filter(|_| wrote) {
                    let error =
                        PacketError::Internal("the change could not be saved; try again".into());
                    actions.push(Action::Send {
                        to: To::Socket(writer.socket),
                        packet: outbound::error(stamp, &error, writer.request_id.as_deref()),
                    });
                }
                actions.extend(
                    entry
                        .actions
                        .into_iter()
                        .filter(|a| matches!(a, Action::Close { .. })),
                );
                continue;
            }
            // What equivalent points made of the change, for its sender, right after it.
            let to_sender = entry.change.as_mut().and_then(|change| {
                let packet = change.to_sender.take()?;
                Some(Action::Send {
                    to: To::Socket(change.sender),
                    packet,
                })
            });
            match entry.change {
                Some(change) if coalesce && entry.actions.is_empty() => {
                    run.push(&change.packet, &change.items);
                    actions.push(Action::Send {
                        to: To::Controllers {
                            except: Some(change.sender),
                        },
                        packet: change.packet,
                    });
                }
                change => {
                    flush_run(&mut run, &mut actions);
                    actions.extend(entry.actions);
                    if let Some(change) = change {
                        actions.push(Action::Send {
                            to: To::All {
                                except: Some(change.sender),
                            },
                            packet: change.packet,
                        });
                    }
                }
            }
            actions.extend(to_sender);
        }
        flush_run(&mut run, &mut actions);
        actions
    }
}

/// How soon after the last commit's sends a frame counts as part of a burst. Such a frame waits
/// one timer turn before its commit, so that frames already queued behind it share that commit
/// (and their broadcasts to pilots and observers one packet). A frame after a quieter spell is
/// committed at once: nothing is likely to share its commit, and the wait would only delay its
/// broadcast.
pub const BURST_WINDOW_MS: i64 = 5;

/// What one send costs the object, about (32 µs each in the floor's 500-socket burst, locally).
/// The clock stands still while an event runs, so a commit's time is when its sends began; at
/// 500 sockets they take longer than the window, and every frame would look like the first
/// after a quiet spell. Their end is estimated from their count instead.
pub const SEND_COST_US: i64 = 50;

/// The last commit of changes: when it was made, and how many packets were sent after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LastCommit {
    pub at: i64,
    pub sends: u32,
}

/// Whether a change arriving at `now` should wait for others to share its commit, given the
/// last commit (`None`: none yet in this object's life).
pub fn wait_for_more(last: Option<LastCommit>, now: i64) -> bool {
    last.is_some_and(|last| {
        let sent_until = last
            .at
            .saturating_add(i64::from(last.sends) * SEND_COST_US / 1_000);
        now.saturating_sub(sent_until) < BURST_WINDOW_MS
    })
}

/// The row (or column) of the airport's storage an operation overwrites.
#[derive(PartialEq, Eq, Hash)]
enum Row<'a> {
    Object(&'a str),
    Shared(&'a str),
    Tombstone(&'a str),
    Seq,
    SharedSeq,
    OfflineSince,
    Schedule,
}

/// The operations with the same durable result as `ops` applied in order, less those that a
/// later operation overwrites: a put or delete of an object or shared member followed by
/// another of the same row or by a clear, an earlier clear, an earlier `seq` or offline time,
/// an earlier tombstone of the same id. Every resume floor is kept: each forgets the
/// tombstones below it as they are at that point.
pub fn compact(ops: Vec<StoreOp>) -> Vec<StoreOp> {
    let mut kept = vec![false; ops.len()];
    {
        let mut written: HashSet<Row<'_>> = HashSet::new();
        let mut cleared_later = false;
        for (i, op) in ops.iter().enumerate().rev() {
            kept[i] = match op {
                StoreOp::PutObject { id, .. } | StoreOp::DeleteObject { id } => {
                    !cleared_later && written.insert(Row::Object(id))
                }
                StoreOp::PutShared { key, .. } | StoreOp::DeleteShared { key } => {
                    !cleared_later && written.insert(Row::Shared(key))
                }
                StoreOp::ClearState => !std::mem::replace(&mut cleared_later, true),
                StoreOp::PutTombstone { id, .. } => written.insert(Row::Tombstone(id)),
                StoreOp::SetSeq(_) => written.insert(Row::Seq),
                StoreOp::SetSharedSeq(_) => written.insert(Row::SharedSeq),
                StoreOp::SetResumeFloor(_) => true,
                StoreOp::SetOfflineSince(_) => written.insert(Row::OfflineSince),
                StoreOp::SetSchedule(_) => written.insert(Row::Schedule),
            };
        }
    }
    ops.into_iter()
        .zip(kept)
        .filter_map(|(op, keep)| keep.then_some(op))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Cid;
    use crate::airport::ObjectRow;

    #[test]
    fn only_a_change_close_behind_the_last_commits_sends_waits() {
        let at = |at, sends| Some(LastCommit { at, sends });
        assert!(!wait_for_more(None, 1_000));
        assert!(wait_for_more(at(1_000, 1), 1_000));
        assert!(wait_for_more(at(1_000, 1), 1_000 + BURST_WINDOW_MS - 1));
        assert!(!wait_for_more(at(1_000, 1), 1_000 + BURST_WINDOW_MS));
        // 500 sends take about 25 ms: a frame 20 ms later is still in the burst.
        assert!(wait_for_more(at(1_000, 500), 1_020));
        assert!(!wait_for_more(at(1_000, 500), 1_000 + 25 + BURST_WINDOW_MS));
        assert!(!wait_for_more(at(i64::MIN, u32::MAX), i64::MAX));
    }

    fn put(id: &str, n: i64) -> StoreOp {
        StoreOp::PutObject {
            id: id.into(),
            row: ObjectRow {
                state_json: serde_json::value::RawValue::from_string(n.to_string()).unwrap(),
                controller_id: Cid::parse("1000001").unwrap(),
                updated_at: n,
                seq: n.unsigned_abs(),
            },
        }
    }

    #[test]
    fn frames_on_one_object_write_it_and_seq_once() {
        let ops = vec![
            put("a", 1),
            StoreOp::SetSeq(1),
            put("a", 2),
            StoreOp::SetSeq(2),
        ];
        assert_eq!(compact(ops), vec![put("a", 2), StoreOp::SetSeq(2)]);
    }

    #[test]
    fn different_rows_are_all_kept_in_order() {
        let ops = vec![put("a", 1), put("b", 2), StoreOp::SetSeq(2)];
        assert_eq!(compact(ops.clone()), ops);
    }

    #[test]
    fn a_clear_drops_earlier_rows_but_not_later_ones() {
        let ops = vec![
            put("a", 1),
            StoreOp::DeleteShared { key: "k".into() },
            StoreOp::ClearState,
            put("b", 2),
            StoreOp::ClearState,
            put("c", 3),
        ];
        assert_eq!(compact(ops), vec![StoreOp::ClearState, put("c", 3)]);
    }

    #[test]
    fn a_delete_after_a_put_is_what_remains() {
        let ops = vec![put("a", 1), StoreOp::DeleteObject { id: "a".into() }];
        assert_eq!(compact(ops), vec![StoreOp::DeleteObject { id: "a".into() }]);
    }
}
