//! What the Worker remembers of keys, per isolate, so that strangers stop at the Worker: a key
//! just refused as unknown is refused again here without asking an airport, and a key just
//! accepted is known to be someone's, so it does not wait for its address's turn
//! (`address_gate`). A flood of made-up keys fills this only up to its bound, oldest forgotten
//! first.

use super::bounded_map::BoundedMap;
use airport_protocol::connect::{HttpError, HttpErrorCode};

/// A key refused as unknown (401) is answered by the Worker alone for this long. Only unknown
/// keys: a ban lifted or a key made after a refusal must work at the next connection, and a
/// made-up key is never made valid later.
pub const REFUSED_FOR_MS: i64 = 10_000;
/// A key accepted skips its address's turns, and its address's limit, for this long.
pub const TRUSTED_FOR_MS: i64 = 600_000;
/// Keys remembered per isolate.
const REMEMBERED: usize = 10_000;

/// What is known of a key here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recall {
    /// Refused as unknown moments ago: refuse it again.
    Refused,
    /// Accepted recently: someone's key, asked without waiting for its address's turn.
    Trusted,
    /// Nothing known: asked in its address's turn.
    Stranger,
}

#[derive(Clone, Copy)]
enum Remembered {
    Refused { until: i64 },
    Trusted { until: i64 },
}

pub struct KeyMemory {
    keys: BoundedMap<String, Remembered>,
}

impl Default for KeyMemory {
    fn default() -> Self {
        KeyMemory {
            keys: BoundedMap::new(REMEMBERED),
        }
    }
}

impl KeyMemory {
    pub fn recall(&self, key_hash: &String, now: i64) -> Recall {
        match self.keys.get(key_hash) {
            Some(Remembered::Refused { until }) if now < *until => Recall::Refused,
            Some(Remembered::Trusted { until }) if now < *until => Recall::Trusted,
            _ => Recall::Stranger,
        }
    }

    /// The answer an airport (or the key check of `/state`) gave: accepted, refused as unknown,
    /// or anything else (a ban, a cap, a failure), which is not remembered.
    pub fn answered(&mut self, key_hash: &str, outcome: Outcome, now: i64) {
        let remembered = match outcome {
            Outcome::Accepted => Remembered::Trusted {
                until: now + TRUSTED_FOR_MS,
            },
            Outcome::Unknown => Remembered::Refused {
                until: now + REFUSED_FOR_MS,
            },
            Outcome::Banned | Outcome::Other => {
                self.keys.remove(&key_hash.to_owned());
                return;
            }
        };
        self.keys.insert(key_hash.to_owned(), remembered);
    }
}

/// How a key fared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Accepted,
    /// Refused as unknown or revoked (401 `INVALID_API_KEY`).
    Unknown,
    /// Refused for a ban (403 `BANNED`).
    Banned,
    /// Anything else: not on the network, a cap, a failure.
    Other,
}

impl Outcome {
    /// From a key check's verdict.
    pub fn of_check<T>(checked: &Result<T, HttpError>) -> Outcome {
        match checked {
            Ok(_) => Outcome::Accepted,
            Err(error) => Outcome::of_code(error.code()),
        }
    }

    /// From the airport's answer to an upgrade: its status, and the code of its error body
    /// where the status alone does not tell (a 403 is a ban or someone not on the network).
    pub fn of_answer(status: u16, code: Option<HttpErrorCode>) -> Outcome {
        match (status, code) {
            (101 | 200, _) => Outcome::Accepted,
            (401, _) => Outcome::Unknown,
            (_, Some(code)) => Outcome::of_code(code),
            _ => Outcome::Other,
        }
    }

    fn of_code(code: HttpErrorCode) -> Outcome {
        match code {
            HttpErrorCode::InvalidApiKey => Outcome::Unknown,
            HttpErrorCode::Banned => Outcome::Banned,
            _ => Outcome::Other,
        }
    }

    /// A refusal of the key itself, which counts against its address's limit.
    pub fn is_refusal(self) -> bool {
        matches!(self, Outcome::Unknown | Outcome::Banned)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_are_remembered_briefly_and_acceptances_longer() {
        let mut memory = KeyMemory::default();
        let (a, b) = ("a".to_owned(), "b".to_owned());
        assert_eq!(memory.recall(&a, 0), Recall::Stranger);
        memory.answered(&a, Outcome::of_answer(401, None), 0);
        memory.answered(&b, Outcome::of_answer(101, None), 0);
        assert_eq!(memory.recall(&a, REFUSED_FOR_MS - 1), Recall::Refused);
        assert_eq!(memory.recall(&a, REFUSED_FOR_MS), Recall::Stranger);
        assert_eq!(memory.recall(&b, TRUSTED_FOR_MS - 1), Recall::Trusted);
        assert_eq!(memory.recall(&b, TRUSTED_FOR_MS), Recall::Stranger);
    }

    #[test]
    fn anything_but_acceptance_or_an_unknown_key_forgets_the_key() {
        let mut memory = KeyMemory::default();
        let a = "a".to_owned();
        memory.answered(&a, Outcome::Accepted, 0);
        // Banned since: the next connection is asked again, and counted.
        let banned = Outcome::of_answer(403, Some(HttpErrorCode::Banned));
        memory.answered(&a, banned, 1);
        assert_eq!(memory.recall(&a, 2), Recall::Stranger);
        assert!(banned.is_refusal() && Outcome::Unknown.is_refusal());
        let not_connected = Outcome::of_answer(403, Some(HttpErrorCode::NotConnected));
        assert_eq!(not_connected, Outcome::Other);
        for status in [403, 429, 500, 503] {
            assert_eq!(Outcome::of_answer(status, None), Outcome::Other);
        }
        assert!(!Outcome::Other.is_refusal() && !Outcome::Accepted.is_refusal());
        assert_eq!(
            Outcome::of_check(&Ok::<_, HttpError>(())),
            Outcome::Accepted
        );
        let refused = |error| Outcome::of_check(&Err::<(), _>(error));
        assert_eq!(refused(HttpError::InvalidApiKey), Outcome::Unknown);
        assert_eq!(refused(HttpError::Banned { until: None }), Outcome::Banned);
        assert_eq!(refused(HttpError::NotConnected), Outcome::Other);
    }

    #[test]
    fn a_flood_of_refused_keys_stays_within_the_bound() {
        let mut memory = KeyMemory::default();
        let genuine = "genuine".to_owned();
        memory.answered(&genuine, Outcome::Accepted, 0);
        for i in 0..=REMEMBERED {
            memory.answered(&i.to_string(), Outcome::Unknown, 1);
        }
        // The oldest went first: a genuine key is then only counted once more, and asked.
        assert_eq!(memory.recall(&genuine, 2), Recall::Stranger);
        assert_eq!(memory.recall(&"1".to_owned(), 2), Recall::Refused);
        assert_eq!(memory.recall(&"0".to_owned(), 2), Recall::Stranger);
    }
}
