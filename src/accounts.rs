//! Accounts in D1, looked up by the hash of an API key. Used by the Worker on connect and by
//! the airports when they check live sessions again.

use crate::protocol::Cid;
use crate::protocol::account::{Account, hash_api_key};
use serde::Deserialize;
use std::cell::RefCell;
use std::collections::HashMap;
use worker::{D1Database, Error, Result};

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
/// Entries kept at most; the cache starts over when it is full.
const MAX_ENTRIES: usize = 10_000;

thread_local! {
    /// Per isolate: key hash → (read at, account). Plain data only, so sharing it between
    /// requests is allowed.
    static RECENT: RefCell<HashMap<String, (i64, Option<Account>)>> = RefCell::new(HashMap::new());
}

/// The account behind a key, or `None` for an unknown or revoked key.
pub async fn account_for_key(db: &D1Database, key: &str, now: i64) -> Result<Option<Account>> {
    let hash = hash_api_key(key);
    let recent = RECENT.with(|recent| {
        recent
            .borrow()
            .get(&hash)
            .filter(|(at, _)| now - at < REUSE_MS)
            .map(|(_, account)| account.clone())
    });
    if let Some(account) = recent {
        return Ok(account);
    }
    let account = account_for_key_hash(db, &hash).await?;
    RECENT.with(|recent| {
        let mut recent = recent.borrow_mut();
        if recent.len() >= MAX_ENTRIES {
            recent.clear();
        }
        recent.insert(hash, (now, account.clone()));
    });
    Ok(account)
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
