//! Accounts in D1, looked up by the hash of an API key. Used by the Worker on connect and by
//! the airports when they check live sessions again.

use crate::protocol::Cid;
use crate::protocol::account::{Account, hash_api_key};
use serde::Deserialize;
use worker::{D1Database, Error, Result};

/// The account row as D1 returns it.
#[derive(Deserialize)]
struct AccountRow {
    cid: String,
    role: String,
    banned: i64,
    banned_until: Option<i64>,
}

/// The account behind a key, or `None` for an unknown or revoked key.
pub async fn account_for_key(db: &D1Database, key: &str) -> Result<Option<Account>> {
    account_for_key_hash(db, &hash_api_key(key)).await
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
