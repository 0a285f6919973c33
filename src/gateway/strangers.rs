//! Strangers stop at the Worker. A key this isolate refused moments ago is refused again here
//! (`people::key_memory`), and a key it has not seen accepted lately counts against its
//! address's limit (Cloudflare's Rate Limiting binding, `ADDRESS_LIMIT` in wrangler.toml):
//! past it, `429 TOO_MANY_REQUESTS` with `Retry-After`, before any airport or database is
//! asked. People who reconnect with a key that worked are never counted; made-up keys are
//! always counted, whatever rate they are sent at.

use crate::log_event;
use crate::people::key_memory::{KeyMemory, Outcome, Recall};
use airport_protocol::connect::HttpError;
use std::cell::RefCell;
use worker::Env;

const LIMITER: &str = "ADDRESS_LIMIT";
/// The limiter's period: when an address over its limit may try again.
const RETRY_AFTER_S: u32 = 60;

thread_local! {
    static MEMORY: RefCell<KeyMemory> = RefCell::default();
}

/// The client's address as Cloudflare sets it (a client cannot forge it there).
pub fn address(headers: &web_sys::Headers) -> Option<String> {
    headers.get("CF-Connecting-IP").ok().flatten()
}

/// Before a key is asked of an airport or a database.
pub async fn admit(env: &Env, address: Option<&str>, key_hash: &String) -> Result<(), HttpError> {
    match MEMORY.with(|memory| memory.borrow().recall(key_hash, crate::now_ms())) {
        Recall::Refused => Err(HttpError::InvalidApiKey),
        Recall::Trusted => Ok(()),
        Recall::Stranger => {
            // Without the binding (or an address) there is no limit, as locally by default.
            let (Some(address), Ok(limiter)) = (address, env.rate_limiter(LIMITER)) else {
                return Ok(());
            };
            match limiter.limit(address.to_owned()).await {
                Ok(outcome) if !outcome.success => Err(HttpError::TooManyRequests {
                    retry_after_s: RETRY_AFTER_S,
                }),
                Ok(_) => Ok(()),
                // A limiter that fails locks nobody out.
                Err(error) => {
                    log_event::failure("address_limit_failed", error);
                    Ok(())
                }
            }
        }
    }
}

/// How the key fared, for the next request with it.
pub fn answered(key_hash: &str, outcome: Outcome) {
    MEMORY.with(|memory| {
        memory
            .borrow_mut()
            .answered(key_hash, outcome, crate::now_ms())
    });
}
