//! Strangers stop at the Worker, for `/connect` and keyed `/state` alike. A key this isolate
//! refused moments ago is refused again here (`people::key_memory`). A key it has not seen
//! accepted lately is asked of an airport without being counted, but in its address's turn
//! (`people::address_gate`: a few at once per address, a short queue, then 429). Every refusal
//! of a key (401, 403 `BANNED`) is counted against its address with Cloudflare's Rate Limiting
//! binding (`ADDRESS_LIMIT` in wrangler.toml) before its turn ends; once the limiter says no,
//! the address's strangers are answered `429 TOO_MANY_REQUESTS` with `Retry-After` for the
//! limiter's period, before any airport or database is asked. So per address and per isolate
//! at most the limit + `ASKING_AT_ONCE` made-up keys reach airports a period, whatever rate
//! they are sent at, and people whose keys are accepted, however many share an address, are
//! never counted.

use crate::log_event;
use crate::people::address_gate::{AddressGate, Ticket, Turn};
use crate::people::key_memory::{KeyMemory, Outcome, Recall};
use airport_protocol::connect::HttpError;
use std::cell::RefCell;
use std::time::Duration;
use worker::{Delay, Env, RateLimiter};

const LIMITER: &str = "ADDRESS_LIMIT";

thread_local! {
    static MEMORY: RefCell<KeyMemory> = RefCell::default();
    static GATE: RefCell<AddressGate> = RefCell::default();
}

/// The client's address as Cloudflare sets it (a client cannot forge it there).
pub fn address(headers: &web_sys::Headers) -> Option<String> {
    headers.get("CF-Connecting-IP").ok().flatten()
}

/// A key let through to be asked of an airport or a database: tell [`Admitted::answered`] the
/// answer.
pub struct Admitted {
    key_hash: String,
    /// Where its refusal is counted: without the binding (or an address) there is no limit, as
    /// locally by default.
    counted: Option<(String, RateLimiter)>,
    /// A stranger's turn at its address, given back when this is dropped.
    _turn: Option<HeldTurn>,
}

/// Before a key is asked of an airport or a database.
pub async fn admit(
    env: &Env,
    address: Option<&str>,
    key_hash: &String,
) -> Result<Admitted, HttpError> {
    let recall = MEMORY.with(|memory| memory.borrow().recall(key_hash, crate::now_ms()));
    if recall == Recall::Refused {
        return Err(HttpError::InvalidApiKey);
    }
    let counted = address.zip(env.rate_limiter(LIMITER).ok());
    let turn = match counted {
        Some((address, _)) if recall == Recall::Stranger => Some(wait_for_turn(address).await?),
        _ => None,
    };
    Ok(Admitted {
        key_hash: key_hash.clone(),
        counted: counted.map(|(address, limiter)| (address.to_owned(), limiter)),
        _turn: turn,
    })
}

impl Admitted {
    /// How the key fared: remembered for the next request with it, and a refusal counted
    /// against its address before the turn is given back.
    pub async fn answered(self, outcome: Outcome) {
        MEMORY.with(|memory| {
            memory
                .borrow_mut()
                .answered(&self.key_hash, outcome, crate::now_ms())
        });
        let Some((address, limiter)) = self.counted.as_ref().filter(|_| outcome.is_refusal())
        else {
            return;
        };
        match limiter.limit(address.clone()).await {
            Ok(verdict) if !verdict.success => {
                GATE.with(|gate| gate.borrow_mut().limit_reached(address, crate::now_ms()))
            }
            Ok(_) => {}
            // A limiter that fails locks nobody out.
            Err(error) => log_event::failure("address_limit_failed", error),
        }
    }
}

/// A stranger's place at its address, waiting or asking.
struct HeldTurn {
    address: String,
    ticket: Ticket,
}

impl Drop for HeldTurn {
    fn drop(&mut self) {
        GATE.with(|gate| {
            gate.borrow_mut()
                .done(&self.address, self.ticket, crate::now_ms())
        });
    }
}

/// A Worker request may not be woken by another request's I/O (workerd cancels it as hung), so
/// a stranger waits on its own timer and looks again, sooner at first (the gate ends the
/// wait after `WAIT_AT_MOST_MS`).
async fn wait_for_turn(address: &str) -> Result<HeldTurn, HttpError> {
    let mut held: Option<HeldTurn> = None;
    let mut pause_ms = 2;
    loop {
        let ticket = held.as_ref().map(|turn| turn.ticket);
        match GATE.with(|gate| gate.borrow_mut().turn(address, ticket, crate::now_ms())) {
            Turn::Ask(ticket) => {
                return Ok(held.unwrap_or_else(|| HeldTurn {
                    address: address.to_owned(),
                    ticket,
                }));
            }
            Turn::Wait(ticket) => {
                held.get_or_insert_with(|| HeldTurn {
                    address: address.to_owned(),
                    ticket,
                });
                Delay::from(Duration::from_millis(pause_ms)).await;
                pause_ms = (2 * pause_ms).min(64);
            }
            Turn::Refused { retry_after_s } => {
                return Err(HttpError::TooManyRequests { retry_after_s });
            }
        }
    }
}
