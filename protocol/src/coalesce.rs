//! Several accepted changes delivered to pilots and observers as one packet (PROTOCOL §7).
//!
//! A controller's runway profile change is thousands of `STATE_UPDATE`s back to back, and each
//! was one send per socket of the airport: at 500 sockets, a million sends. Frames handled
//! while a commit is prepared already share it (`write_batch`); their change broadcasts go to
//! controllers one by one, as accepted (the released EuroScope plugin reads only
//! `STATE_UPDATE`), and to pilots and observers as one `MULTI_STATE_UPDATE` whose `seq` is the
//! last change's and `seqFrom` the first's, so that no client sees a gap.

use super::outbound::{self, ChangeItems, Stamp};

/// A run of consecutive change broadcasts waiting for pilots and observers.
#[derive(Debug, Default)]
pub struct ChangeRun {
    /// The first change's own packet, sent as it is when the run has only it.
    first: Option<String>,
    items: String,
    seq_from: u64,
    seq: u64,
    changes: usize,
}

impl ChangeRun {
    /// Adds an accepted change: its packet and its items.
    pub fn push(&mut self, packet: &str, change: &ChangeItems) {
        if self.changes == 0 {
            self.first = Some(packet.to_owned());
            self.seq_from = change.seq;
        } else {
            self.items.push(',');
        }
        self.items.push_str(&change.items);
        self.seq = change.seq;
        self.changes += 1;
    }

    /// The packet for pilots and observers, if the run holds any change, and an empty run.
    pub fn take(&mut self, stamp: Stamp<'_>) -> Option<String> {
        let run = std::mem::take(self);
        match run.changes {
            0 => None,
            1 => run.first,
            _ => Some(outbound::coalesced_changes(
                stamp,
                &run.items,
                run.seq_from,
                run.seq,
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Cid;
    use serde_json::Value;
    use serde_json::value::RawValue;

    #[test]
    fn a_run_is_one_packet_with_every_change_in_order_and_no_seq_gap() {
        let stamp = Stamp {
            airport: "EGLL",
            now: 5,
        };
        let by = Cid::parse("1000001").unwrap();
        let on = RawValue::from_string("true".into()).unwrap();
        let broadcasts: Vec<_> = (0..3)
            .map(|i| {
                let id = format!("SB_{i}");
                outbound::object_changes(stamp, &[(&id, Some(&*on))], &by, 10 + i)
            })
            .collect();
        let mut run = ChangeRun::default();
        assert_eq!(run.take(stamp), None);

        run.push(&broadcasts[0].0, &broadcasts[0].1);
        assert_eq!(run.take(stamp).as_deref(), Some(broadcasts[0].0.as_str()));

        for (packet, items) in &broadcasts {
            run.push(packet, items);
        }
        let packet: Value = serde_json::from_str(&run.take(stamp).unwrap()).unwrap();
        assert_eq!(packet["type"], "MULTI_STATE_UPDATE");
        assert_eq!(
            (packet["seqFrom"].as_u64(), packet["seq"].as_u64()),
            (Some(10), Some(12))
        );
        let ids: Vec<_> = packet["data"]["updates"]
            .as_array()
            .unwrap()
            .iter()
            .map(|u| u["objectId"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(ids, ["SB_0", "SB_1", "SB_2"]);
        assert_eq!(run.take(stamp), None, "taking empties the run");
    }
}
