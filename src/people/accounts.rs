//! Accounts in D1, looked up by the hash of an API key: by an airport when a key connects to
//! it and when it checks live sessions again, and by the Worker for `GET /state` with a key.

use crate::log_event;
use crate::people::batch_lookup::BatchLookup;
use crate::people::lookup_cache::{LookupCache, Sharing};
use airport_protocol::Cid;
use airport_protocol::account::Account;
use airport_protocol::connect::HttpError;
use futures_util::FutureExt;
use futures_util::future::{Either, select};
use serde::Deserialize;
use std::collections::HashMap;
use std::pin::pin;
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
pub async fn hash_key(key: &str) -> Result<String> {
    sha256_hex(key)
        .await?
        .as_string()
        .ok_or_else(|| Error::from("the key's digest is not text"))
}

/// The account row as D1 returns it.
#[derive(Deserialize)]
struct AccountRow {
    key_hash: String,
    cid: String,
    role: String,
    banned: i64,
    banned_until: Option<i64>,
}

/// How long the Worker reuses an account it read for `GET /state`. Short enough that a ban or
/// a revocation applies at once for any practical purpose, long enough that a dashboard's
/// burst of polls with one key costs one D1 query.
const REUSE_MS: i64 = 1_000;
/// A request whose key is being looked up by another request looks for the answer after
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

/// Key → account, with the ban checked (`INVALID_API_KEY`, `BANNED`), for the Worker's
/// `GET /state`. The account is reused for [`REUSE_MS`].
pub async fn authenticate(env: &Env, key: &str) -> std::result::Result<Account, HttpError> {
    let db = env.d1("DB").map_err(HttpError::internal)?;
    let now = crate::now_ms();
    let key_hash = hash_key(key).await.map_err(HttpError::internal)?;
    checked(account_for_key_hash_reused(db, &key_hash, now).await, now)
}

/// A look-up's answer as a connection or request takes it: the account in good standing
/// (`INVALID_API_KEY` for no account, `BANNED`), or a 500 when the look-up failed.
fn checked(found: Option<Option<Account>>, now: i64) -> std::result::Result<Account, HttpError> {
    let account = found
        .ok_or_else(|| HttpError::internal("the account look-up failed"))?
        .ok_or(HttpError::InvalidApiKey)?;
    account.check_ban(now)?;
    Ok(account)
}

/// An airport's look-ups of the keys connecting to it: all those that arrive while one query
/// is under way go together in the next (`batch_lookup`), and nothing is reused, so a ban or
/// a revocation reaches the next connection.
pub fn connect_lookup(env: &Env) -> BatchLookup<String, Account> {
    let env = env.clone();
    BatchLookup::new(move |key_hashes| {
        let db = env.d1("DB");
        async move {
            let failed = |error: &dyn std::fmt::Display| {
                log_event::failure("account_lookup_failed", error);
            };
            let db = db.inspect_err(|error| failed(error)).ok()?;
            if key_hashes.len() > 1 {
                log_event::counts(
                    "keys_checked_together",
                    &[("keys", key_hashes.len() as u64)],
                );
            }
            // A stalled query would hold up every later batch of the airport's connects.
            let query = pin!(accounts_for_key_hashes(&db, key_hashes));
            match select(query, Delay::from(LOOKUP_TIMEOUT)).await {
                Either::Left((found, _)) => found.inspect_err(|error| failed(error)).ok(),
                Either::Right(_) => {
                    failed(&"timed out");
                    None
                }
            }
        }
        .boxed_local()
    })
}

/// A connect's look-up fails (500, retried by clients) rather than waiting longer.
const LOOKUP_TIMEOUT: Duration = Duration::from_secs(10);

/// A connecting key's account, with the ban checked (`INVALID_API_KEY`, `BANNED`).
pub async fn authenticate_connect(
    lookup: &BatchLookup<String, Account>,
    key_hash: &String,
    now: i64,
) -> std::result::Result<Account, HttpError> {
    checked(lookup.get(key_hash).await, now)
}

/// The account behind a key's hash (`Some(None)` for an unknown or revoked key, `None` when
/// the look-up failed); reused for [`REUSE_MS`].
async fn account_for_key_hash_reused(
    db: D1Database,
    hash: &str,
    now: i64,
) -> Option<Option<Account>> {
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
}

async fn account_for_key_hash(db: &D1Database, key_hash: &str) -> Result<Option<Account>> {
    let mut found = accounts_for_key_hashes(db, vec![key_hash.to_owned()]).await?;
    Ok(found.remove(key_hash))
}

/// Keys per query: one JSON parameter of about 33 KB. A burst larger than this (a flood of
/// made-up keys at one airport) takes several queries rather than one too large for D1.
const KEYS_PER_QUERY: usize = 500;

/// The accounts behind many keys' hashes, in one query per [`KEYS_PER_QUERY`]; an unknown or
/// revoked key is not in the answer, nor is a key whose stored account cannot be read (logged).
pub async fn accounts_for_key_hashes(
    db: &D1Database,
    key_hashes: Vec<String>,
) -> Result<HashMap<String, Account>> {
    let mut found = HashMap::new();
    for chunk in key_hashes.chunks(KEYS_PER_QUERY) {
        // One parameter for any number of keys: D1 binds at most 100.
        let hashes = serde_json::to_string(chunk)?;
        let rows: Vec<AccountRow> = db
            .prepare(
                "SELECT k.key_hash, a.cid, a.role, a.banned, a.banned_until FROM api_keys k \
                 JOIN accounts a ON a.cid = k.cid \
                 WHERE k.key_hash IN (SELECT value FROM json_each(?1)) AND k.revoked_at IS NULL",
            )
            .bind(&[hashes.into()])?
            .all()
            .await?
            .results()?;
        for row in rows {
            match account(&row) {
                Ok(account) => {
                    found.insert(row.key_hash, account);
                }
                Err(error) => log_event::failure("account_unreadable", error),
            }
        }
    }
    Ok(found)
}

fn account(row: &AccountRow) -> Result<Account> {
    Ok(Account {
        cid: Cid::parse(&row.cid).ok_or_else(|| Error::from("stored cid is not numeric"))?,
        role: row
            .role
            .parse()
            .map_err(|_| Error::from("stored role is unknown"))?,
        banned: row.banned != 0,
        banned_until: row.banned_until,
    })
}
