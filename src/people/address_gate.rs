//! Turns for strangers' keys, per client address and per isolate. A key the Worker has not
//! seen accepted lately is asked of an airport without being counted, but only
//! [`ASKING_AT_ONCE`] of one address's strangers are asked at a time; more wait their turn in a
//! short queue, and past it are answered 429 at once. The gateway counts every refusal with the
//! address limiter (`gateway::strangers`) before the refused request gives up its turn; once the
//! limiter says the address is over its limit, the address is answered 429 here for the
//! limiter's period, before anything is asked. So per address and per isolate at most the
//! limit + [`ASKING_AT_ONCE`] made-up keys reach airports in a period (the refusal that finds
//! the limit used up and those under way beside it were already asked), while people whose
//! keys are accepted are never counted.

use super::bounded_map::BoundedMap;

/// One address's strangers asked of airports at once.
pub const ASKING_AT_ONCE: usize = 4;
/// One address's strangers waiting for a turn; past them, 429 at once.
pub const WAITING: usize = 64;
/// A stranger that has not had its turn within this is answered 429. Generous: while airports
/// are slow (a flood from many addresses), many people behind one address take a while.
pub const WAIT_AT_MOST_MS: i64 = 20_000;
/// A turn held longer was abandoned (a request the runtime cancelled never gives it back);
/// above the airport's key look-up timeout (10 s).
const TURN_LASTS_AT_MOST_MS: i64 = 30_000;
/// How long an address over the limit is refused: the limiter's period (`ADDRESS_LIMIT`'s
/// `period` in wrangler.toml).
pub const LIMITED_FOR_MS: i64 = 60_000;
/// When a stranger turned away for a full queue, or a wait too long, may try again.
pub const BUSY_RETRY_AFTER_S: u32 = 1;
/// Addresses remembered per isolate (those with strangers under way or over the limit).
const ADDRESSES: usize = 10_000;

/// A stranger's place at its address: waiting, then asking.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ticket(u64);

/// What a stranger may do now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Turn {
    /// Ask about the key now, then give the ticket back with [`AddressGate::done`].
    Ask(Ticket),
    /// Wait a moment and ask for the turn again with this ticket.
    Wait(Ticket),
    /// Answer 429 with this `Retry-After`.
    Refused { retry_after_s: u32 },
}

#[derive(Default)]
struct Address {
    /// Tickets asking now, with when each began.
    asking: Vec<(Ticket, i64)>,
    /// Tickets waiting, first come first, with when each began to wait.
    waiting: Vec<(Ticket, i64)>,
    /// Refused until then (epoch ms).
    limited_until: i64,
}

impl Address {
    fn is_idle(&self, now: i64) -> bool {
        self.asking.is_empty() && self.waiting.is_empty() && self.limited_until <= now
    }
}

pub struct AddressGate {
    addresses: BoundedMap<String, Address>,
    issued: u64,
}

impl Default for AddressGate {
    fn default() -> Self {
        AddressGate {
            addresses: BoundedMap::new(ADDRESSES),
            issued: 0,
        }
    }
}

impl AddressGate {
    /// A stranger from `address` asks for its turn: first without a ticket, then with the one
    /// it was given to wait with.
    pub fn turn(&mut self, address: &str, ticket: Option<Ticket>, now: i64) -> Turn {
        self.issued += 1;
        let new_ticket = Ticket(self.issued);
        let entry = self
            .addresses
            .get_or_insert_with(address.to_owned(), Address::default);
        entry
            .asking
            .retain(|(_, since)| now - since < TURN_LASTS_AT_MOST_MS);
        entry
            .waiting
            .retain(|(_, since)| now - since < WAIT_AT_MOST_MS);
        if entry.limited_until > now {
            entry.waiting.retain(|(held, _)| Some(*held) != ticket);
            // Positive here, and at most the period.
            let retry_after_ms = (entry.limited_until - now) as u64;
            return Turn::Refused {
                retry_after_s: retry_after_ms.div_ceil(1_000) as u32,
            };
        }
        let free = ASKING_AT_ONCE.saturating_sub(entry.asking.len());
        match ticket {
            Some(ticket) => match entry.waiting.iter().position(|(held, _)| *held == ticket) {
                Some(place) if place < free => {
                    entry.waiting.remove(place);
                    entry.asking.push((ticket, now));
                    Turn::Ask(ticket)
                }
                Some(_) => Turn::Wait(ticket),
                // It waited too long.
                None => Turn::Refused {
                    retry_after_s: BUSY_RETRY_AFTER_S,
                },
            },
            None if entry.waiting.is_empty() && free > 0 => {
                entry.asking.push((new_ticket, now));
                Turn::Ask(new_ticket)
            }
            None if entry.waiting.len() < WAITING => {
                entry.waiting.push((new_ticket, now));
                Turn::Wait(new_ticket)
            }
            None => Turn::Refused {
                retry_after_s: BUSY_RETRY_AFTER_S,
            },
        }
    }

    /// The ticket's request is over (answered and its refusal counted, or abandoned).
    pub fn done(&mut self, address: &str, ticket: Ticket, now: i64) {
        let address = address.to_owned();
        let Some(entry) = self.addresses.get_mut(&address) else {
            return;
        };
        entry.asking.retain(|(held, _)| *held != ticket);
        entry.waiting.retain(|(held, _)| *held != ticket);
        if entry.is_idle(now) {
            self.addresses.remove(&address);
        }
    }

    /// The limiter refused a count for `address`: its strangers are refused for its period.
    pub fn limit_reached(&mut self, address: &str, now: i64) {
        self.addresses
            .get_or_insert_with(address.to_owned(), Address::default)
            .limited_until = now + LIMITED_FOR_MS;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "203.0.113.1";

    fn ask(gate: &mut AddressGate, at: &str, now: i64) -> Ticket {
        match gate.turn(at, None, now) {
            Turn::Ask(ticket) => ticket,
            other => panic!("expected a turn, got {other:?}"),
        }
    }

    fn wait(gate: &mut AddressGate, now: i64) -> Ticket {
        match gate.turn(A, None, now) {
            Turn::Wait(ticket) => ticket,
            other => panic!("expected to wait, got {other:?}"),
        }
    }

    #[test]
    fn a_few_strangers_of_one_address_ask_at_once_and_the_next_waits_its_turn() {
        let mut gate = AddressGate::default();
        let asking: Vec<Ticket> = (0..ASKING_AT_ONCE).map(|_| ask(&mut gate, A, 0)).collect();
        let first = wait(&mut gate, 0);
        let second = wait(&mut gate, 0);
        // Another address is not held up.
        ask(&mut gate, "203.0.113.2", 0);
        assert_eq!(gate.turn(A, Some(first), 1), Turn::Wait(first));
        gate.done(A, asking[0], 2);
        // One turn is free: it goes to the first in the queue, not to the second.
        assert_eq!(gate.turn(A, Some(second), 3), Turn::Wait(second));
        assert_eq!(gate.turn(A, Some(first), 3), Turn::Ask(first));
        assert_eq!(gate.turn(A, Some(second), 4), Turn::Wait(second));
        gate.done(A, asking[1], 5);
        assert_eq!(gate.turn(A, Some(second), 6), Turn::Ask(second));
    }

    #[test]
    fn a_full_queue_and_a_long_wait_are_refused_for_a_moment() {
        let mut gate = AddressGate::default();
        for _ in 0..ASKING_AT_ONCE {
            ask(&mut gate, A, 0);
        }
        let first = wait(&mut gate, 0);
        for _ in 1..WAITING {
            wait(&mut gate, 0);
        }
        let busy = Turn::Refused {
            retry_after_s: BUSY_RETRY_AFTER_S,
        };
        assert_eq!(gate.turn(A, None, 0), busy);
        assert_eq!(
            gate.turn(A, Some(first), WAIT_AT_MOST_MS - 1),
            Turn::Wait(first)
        );
        assert_eq!(gate.turn(A, Some(first), WAIT_AT_MOST_MS), busy);
        // The waiters who waited too long left the queue.
        assert!(matches!(gate.turn(A, None, WAIT_AT_MOST_MS), Turn::Wait(_)));
    }

    #[test]
    fn an_address_over_the_limit_is_refused_for_the_period_waiters_included() {
        let mut gate = AddressGate::default();
        let asking: Vec<Ticket> = (0..ASKING_AT_ONCE).map(|_| ask(&mut gate, A, 0)).collect();
        let waiting = wait(&mut gate, 0);
        gate.limit_reached(A, 1_000);
        gate.done(A, asking[0], 1_000);
        let limited = |retry_after_s| Turn::Refused { retry_after_s };
        assert_eq!(gate.turn(A, Some(waiting), 1_001), limited(60));
        assert_eq!(gate.turn(A, None, 30_500), limited(31));
        // The others under way finish; the address is still refused until the period ends.
        for ticket in &asking[1..] {
            gate.done(A, *ticket, 2_000);
        }
        assert_eq!(gate.turn(A, None, 60_999), limited(1));
        ask(&mut gate, A, 61_000);
    }

    #[test]
    fn an_abandoned_turn_is_taken_back() {
        let mut gate = AddressGate::default();
        for _ in 0..ASKING_AT_ONCE {
            ask(&mut gate, A, 0);
        }
        let waiting = wait(&mut gate, TURN_LASTS_AT_MOST_MS - 1);
        let late = TURN_LASTS_AT_MOST_MS;
        assert_eq!(gate.turn(A, Some(waiting), late), Turn::Ask(waiting));
    }

    #[test]
    fn idle_addresses_are_forgotten() {
        let mut gate = AddressGate::default();
        let ticket = ask(&mut gate, A, 0);
        gate.done(A, ticket, 1);
        gate.limit_reached("203.0.113.2", 1);
        assert!(gate.addresses.get(&A.to_owned()).is_none());
        assert!(gate.addresses.get(&"203.0.113.2".to_owned()).is_some());
    }
}
