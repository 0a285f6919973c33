//! Accounts in D1, looked up by the hash of an API key. Used by the Worker on connect and by
//! the airports when they check live sessions again.

use crate::log_event;
use crate::lookup_cache::{LookupCache, Sharing};
use airport_protocol::Cid;
use airport_protocol::account::Account;
use airport_protocol::connect::HttpError;
use futures_util::FutureExt;
use serde::Deserialize;
use std::rc::Rc;
use std::time::Duration;
use wasm_bindgen::prelude::*;
use worker::{D1Database, Delay, Env, Error, Result};

#[wasm_bindgen(inline_js = "export async function sha256Hex(text) {
  const digest = await crypto.subtle.digest('SHA-256', new TextEncoder().encode(text));
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, '0')).join('');
}")]
extern "C" {
    /// The lowercase hex SHA-256 of a key, by the runtime's WebCrypto: a SHA-256 in Rust
    /// would add about 8 KB to the Wasm.
    #[wasm_bindgen(catch, js_name = sha256Hex)]
    async fn sha256_hex(text: &str) -> std::result::Result<JsValue, JsValue>;
}

/// The lowercase hex SHA-256 of an API key: what the database stores.
async fn hash_key(key: &str) -> Result<String> {
    sha256_hex(key)
        .await?
        .as_string()
        .ok_or_else(|| Error::from("the key's digest is not text"))
}

/// The account row as D1 returns it.
#[derive(Deserialize)]
struct AccountRow {
    cid: String,
    role: String,
    banned: i64,
    banned_until: Option<i64>,
}

/// How long the Worker reuses an account it read. Short enough that a ban or a revocation
/// reaches new connections at once for any practical purpose, long enough that a burst of
/// connections with one key (a client reconnecting many sockets) costs one D1 query.
const REUSE_MS: i64 = 1_000;
/// A connection whose key is being looked up by another request looks for the answer after
/// 2, 4, 8, … ms, then every 128 ms, for about 0.9 s in all, before it queries D1 itself. Under
/// a reconnect storm the first query can take that long, and a storm of second queries would
/// only make it longer; the backoff keeps the waiters' own timers few.
const WAIT_FOR_OTHER_REQUESTS: Sharing = Sharing::Polled {
    wait: |attempt| Delay::from(Duration::from_millis(2 << attempt.min(6))).boxed_local(),
    polls: 12,
};
/// Keys remembered at most per isolate.
const MAX_ENTRIES: usize = 10_000;

thread_local! {
    /// Per isolate: key hash → account (`None`: unknown or revoked). Plain data only, so
    /// sharing it between requests is allowed.
    static RECENT: Rc<LookupCache<String, Option<Account>>> = Rc::new(LookupCache::new(MAX_ENTRIES, WAIT_FOR_OTHER_REQUESTS));
}

/// A key that names an account in good standing.
pub struct Authenticated {
    pub account: Account,
    /// What the airport keeps to check the key again; the key itself goes no further.
    pub key_hash: String,
}

/// Key → account, with the ban checked (`INVALID_API_KEY`, `BANNED`). The role is settled by
/// the airport's role source.
pub async fn authenticate(env: &Env, key: &str) -> std::result::Result<Authenticated, HttpError> {
    let internal = |error: Error| HttpError::Internal(error.to_string());
    let db = env.d1("DB").map_err(internal)?;
    let now = crate::now_ms();
    let key_hash = hash_key(key).await.map_err(internal)?;
    let account = account_for_key_hash_reused(db, &key_hash, now)
        .await
        .map_err(internal)?
        .ok_or(HttpError::InvalidApiKey)?;
    account.check_ban(now)?;
    Ok(Authenticated { account, key_hash })
}

/// The account behind a key's hash, or `None` for an unknown or revoked key; reused for
/// [`REUSE_MS`].
async fn account_for_key_hash_reused(
    db: D1Database,
    hash: &str,
    now: i64,
) -> Result<Option<Account>> {
    let hash = hash.to_owned();
    let cache = RECENT.with(Rc::clone);
    cache
        .get(&hash, now, REUSE_MS, || {
            // Only a look-up that queries needs its own copy of the hash.
            let query_hash = hash.clone();
            async move {
                account_for_key_hash(&db, &query_hash)
                    .await
                    .inspect_err(|error| log_event::failure("account_lookup_failed", error))
                    .ok()
            }
        })
        .await
        .ok_or_else(|| Error::from("the account look-up failed"))
}

pub async fn account_for_key_hash(db: &D1Database, key_hash: &str) -> Result<Option<Account>> {
    let row: Option<AccountRow> = db
        .prepare(
            "SELECT a.cid, a.role, a.banned, a.banned_until FROM api_keys k \
             JOIN accounts a ON a.cid = k.cid WHERE k.key_hash = ?1 AND k.revoked_at IS NULL",
        )
        .bind(&[key_hash.into()])?
        .first(None)
        .await?;
    let Some(row) = row else {
        return Ok(None);
    };
    Ok(Some(Account {
        cid: Cid::parse(&row.cid).ok_or_else(|| Error::from("stored cid is not numeric"))?,
        role: row
            .role
            .parse()
            .map_err(|_| Error::from("stored role is unknown"))?,
        banned: row.banned != 0,
        banned_until: row.banned_until,
    }))
}
