//! Accounts behind API keys, looked up by an airport when a key connects to it and when it
//! checks live sessions again, and by the Worker for `GET /state` with a key. Two sources
//! (`KEY_SOURCE`, `config::KeySource`): this service's own accounts in `DB`, stored by the
//! key's hash; and, with `network`, the running service's `users` and `bans` in `NETWORK_DB`,
//! which stores keys in plain text and is only ever read. A key both know is our own account.

use crate::log_event;
use crate::people::batch_lookup::{BatchLookup, Unanswered};
use crate::people::lookup_cache::{LookupCache, Sharing};
use airport_protocol::Cid;
use airport_protocol::account::{Account, is_network_key, key_hash};
use airport_protocol::config::KeySource;
use airport_protocol::connect::HttpError;
use futures_util::FutureExt;
use futures_util::future::{Either, join, join_all, select};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::pin::pin;
use std::rc::Rc;
use std::time::Duration;
use worker::{D1Database, Delay, Env, Error, Result};

/// The binding of the running service's database.
pub const NETWORK_BINDING: &str = "NETWORK_DB";

/// A key as a connection presents it: always its hash (what our own accounts store, and what
/// a socket is known by); the key itself only where the running service's people are a
/// source, since they are looked up by it. It never reaches a log line.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct PresentedKey {
    pub hash: String,
    pub plain: Option<String>,
}

/// The databases keys are looked up in.
pub struct KeyDatabases {
    own: D1Database,
    network: Option<D1Database>,
}

impl KeyDatabases {
    /// The source's databases. A missing `NETWORK_DB` is caught with the settings
    /// (`handoff::read_config`), before anything is looked up.
    pub fn open(env: &Env, source: KeySource) -> Result<KeyDatabases> {
        let network = match source {
            KeySource::Own => None,
            KeySource::Network => Some(env.d1(NETWORK_BINDING)?),
        };
        Ok(KeyDatabases {
            own: env.d1("DB")?,
            network,
        })
    }

    /// The accounts behind presented keys, in one query per source (the two at once); a key
    /// that neither knows is not in the answer.
    pub async fn accounts(&self, keys: &[PresentedKey]) -> Result<HashMap<PresentedKey, Account>> {
        let hashes: Vec<String> = keys.iter().map(|key| key.hash.clone()).collect();
        let plain: Vec<&str> = keys
            .iter()
            .filter_map(|key| key.plain.as_deref())
            .filter(|plain| is_network_key(plain))
            .collect();
        let network = async {
            match &self.network {
                Some(db) if !plain.is_empty() => network_accounts_by_key(db, &plain).await,
                _ => Ok(HashMap::new()),
            }
        };
        let (own, network) = join(accounts_for_key_hashes(&self.own, &hashes), network).await;
        let (mut own, mut network) = (own?, network?);
        let mut found = HashMap::new();
        for key in keys {
            let account = own.remove(&key.hash).or_else(|| {
                let plain = key.plain.as_deref()?;
                network.remove(plain)
            });
            if let Some(account) = account {
                found.insert(key.clone(), account);
            }
        }
        Ok(found)
    }

    /// The accounts behind live sockets' key hashes, for a re-check: our own by hash; the
    /// running service's by the people's cids, each current key hashed here and compared, so
    /// that a regenerated key reads as revoked.
    pub async fn rechecked(
        &self,
        key_hashes: &[String],
        people: &[Cid],
    ) -> Result<HashMap<String, Account>> {
        let network = async {
            match &self.network {
                Some(db) if !people.is_empty() => network_accounts_by_cid(db, people).await,
                _ => Ok(HashMap::new()),
            }
        };
        let own = accounts_for_key_hashes(&self.own, key_hashes);
        let (own, network) = join(own, network).await;
        let (mut found, network) = (own?, network?);
        for (hash, account) in network {
            if key_hashes.contains(&hash) {
                found.entry(hash).or_insert(account);
            }
        }
        Ok(found)
    }
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
pub async fn authenticate(
    env: &Env,
    source: KeySource,
    key: PresentedKey,
) -> std::result::Result<Account, HttpError> {
    let databases = KeyDatabases::open(env, source).map_err(HttpError::internal)?;
    let now = crate::now_ms();
    let found = account_reused(databases, key, now).await;
    checked(found.ok_or(Unanswered::Failed), now)
}

/// A key as the source looks it up: its hash, and itself when the running service's people
/// are asked too.
pub fn presented(source: KeySource, key: &str) -> PresentedKey {
    PresentedKey {
        hash: key_hash(key),
        plain: source.reads_network().then(|| key.to_owned()),
    }
}

/// A look-up's answer as a connection or request takes it: the account in good standing
/// (`INVALID_API_KEY` for no account, `BANNED`), a 500 when the look-up failed, or a 429 when
/// too many keys were waiting for one.
fn checked(
    found: std::result::Result<Option<Account>, Unanswered>,
    now: i64,
) -> std::result::Result<Account, HttpError> {
    let account = found
        .map_err(|unanswered| match unanswered {
            Unanswered::Failed => HttpError::internal("the account look-up failed"),
            Unanswered::Busy => HttpError::TooManyRequests {
                retry_after_s: BUSY_RETRY_AFTER_S,
            },
        })?
        .ok_or(HttpError::InvalidApiKey)?;
    account.check_ban(now)?;
    Ok(account)
}

/// Keys that may wait at one airport for the next query: 10 queries' worth, far above the
/// 1,000 people of a reconnect storm. A flood past it is answered 429 at once rather than
/// growing the list (made-up keys are already limited per address by the Worker).
const MAX_WAITING_KEYS: usize = 10 * KEYS_PER_QUERY;
/// When a connection refused for a full list may try again.
const BUSY_RETRY_AFTER_S: u32 = 5;

/// An airport's look-ups of the keys connecting to it: all those that arrive while one query
/// is under way go together in the next (`batch_lookup`), and nothing is reused, so a ban or
/// a revocation reaches the next connection.
pub fn connect_lookup(env: &Env, source: KeySource) -> BatchLookup<PresentedKey, Account> {
    let env = env.clone();
    BatchLookup::new(MAX_WAITING_KEYS, move |keys| {
        let databases = KeyDatabases::open(&env, source);
        async move {
            let failed = |error: &dyn std::fmt::Display| {
                log_event::failure("account_lookup_failed", error);
            };
            let databases = databases.inspect_err(|error| failed(error)).ok()?;
            if keys.len() > 1 {
                log_event::counts("keys_checked_together", &[("keys", keys.len() as u64)]);
            }
            // A stalled query would hold up every later batch of the airport's connects.
            let query = pin!(databases.accounts(&keys));
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
    lookup: &BatchLookup<PresentedKey, Account>,
    key: &PresentedKey,
    now: i64,
) -> std::result::Result<Account, HttpError> {
    checked(lookup.get(key).await, now)
}

/// The account behind a key (`Some(None)` for an unknown or revoked key, `None` when the
/// look-up failed); reused for [`REUSE_MS`].
async fn account_reused(
    databases: KeyDatabases,
    key: PresentedKey,
    now: i64,
) -> Option<Option<Account>> {
    let cache = RECENT.with(Rc::clone);
    cache
        .get(&key.hash.clone(), now, REUSE_MS, || async move {
            let mut found = databases
                .accounts(std::slice::from_ref(&key))
                .await
                .inspect_err(|error| log_event::failure("account_lookup_failed", error))
                .ok()?;
            Some(found.remove(&key))
        })
        .await
}

/// Keys per query: one JSON parameter of about 33 KB. A burst larger than this (a flood of
/// made-up keys at one airport) takes several queries rather than one too large for D1.
const KEYS_PER_QUERY: usize = 500;

/// The accounts behind many keys' hashes, in one query per [`KEYS_PER_QUERY`]; an unknown or
/// revoked key is not in the answer, nor is a key whose stored account cannot be read (logged).
async fn accounts_for_key_hashes(
    db: &D1Database,
    key_hashes: &[String],
) -> Result<HashMap<String, Account>> {
    let query = "SELECT k.key_hash, a.cid, a.role, a.banned, a.banned_until FROM api_keys k \
                 JOIN accounts a ON a.cid = k.cid \
                 WHERE k.key_hash IN (SELECT value FROM json_each(?1)) AND k.revoked_at IS NULL";
    let mut found = HashMap::new();
    for row in rows_for::<AccountRow, _>(db, query, key_hashes).await? {
        match account(&row) {
            Ok(account) => {
                found.insert(row.key_hash, account);
            }
            Err(error) => log_event::failure("account_unreadable", error),
        }
    }
    Ok(found)
}

fn account(row: &AccountRow) -> Result<Account> {
    Ok(Account {
        cid: stored_cid(&row.cid)?,
        role: row
            .role
            .parse()
            .map_err(|_| Error::from("stored role is unknown"))?,
        banned: row.banned != 0,
        banned_until: row.banned_until,
    })
}

fn stored_cid(cid: &str) -> Result<Cid> {
    Cid::parse(cid).ok_or_else(|| Error::from("stored cid is not numeric"))
}

/// A person of the running service as its database answers: their current key, and their ban.
#[derive(Deserialize)]
struct NetworkRow {
    api_key: String,
    vatsim_id: String,
    banned: i64,
    banned_until: Option<i64>,
}

/// The running service's people and bans (RUNNING_SERVICE.md). A ban is in force while
/// `expires_at` is NULL or not earlier than now: `banned_until` is the millisecond after it.
/// An `expires_at` SQLite cannot read counts as a ban without end (refusing is the safe
/// side).
const NETWORK_PEOPLE: &str = "SELECT u.api_key, u.vatsim_id, b.vatsim_id IS NOT NULL AS banned, \
     unixepoch(b.expires_at) * 1000 + 1 AS banned_until \
     FROM users u LEFT JOIN bans b ON b.vatsim_id = u.vatsim_id";

/// The running service's people behind plain keys, by key.
async fn network_accounts_by_key(
    db: &D1Database,
    keys: &[&str],
) -> Result<HashMap<String, Account>> {
    let query = format!("{NETWORK_PEOPLE} WHERE u.api_key IN (SELECT value FROM json_each(?1))");
    let mut found = HashMap::new();
    for row in rows_for::<NetworkRow, _>(db, &query, keys).await? {
        if let Some(account) = network_account(&row) {
            found.insert(row.api_key, account);
        }
    }
    Ok(found)
}

/// The running service's people with these cids, by the hash of their current key.
async fn network_accounts_by_cid(
    db: &D1Database,
    people: &[Cid],
) -> Result<HashMap<String, Account>> {
    let query = format!("{NETWORK_PEOPLE} WHERE u.vatsim_id IN (SELECT value FROM json_each(?1))");
    let cids: Vec<&str> = people.iter().map(Cid::as_str).collect();
    let mut found = HashMap::new();
    for row in rows_for::<NetworkRow, _>(db, &query, &cids).await? {
        if let Some(account) = network_account(&row) {
            found.insert(key_hash(&row.api_key), account);
        }
    }
    Ok(found)
}

/// The rows `query` finds for `values`, given as its one JSON parameter (D1 binds at most 100
/// parameters), in one query per [`KEYS_PER_QUERY`], all at once: the queries of a large batch
/// do not run one after another under its time limit.
async fn rows_for<T: DeserializeOwned, V: Serialize>(
    db: &D1Database,
    query: &str,
    values: &[V],
) -> Result<Vec<T>> {
    let queries = values.chunks(KEYS_PER_QUERY).map(|chunk| async move {
        db.prepare(query)
            .bind(&[serde_json::to_string(chunk)?.into()])?
            .all()
            .await?
            .results::<T>()
    });
    let rows = join_all(queries)
        .await
        .into_iter()
        .collect::<Result<Vec<_>>>()?;
    Ok(rows.into_iter().flatten().collect())
}

/// A row whose cid is not numeric is logged and skipped: its key is refused.
fn network_account(row: &NetworkRow) -> Option<Account> {
    let cid = stored_cid(&row.vatsim_id)
        .inspect_err(|error| log_event::failure("account_unreadable", error))
        .ok()?;
    let banned_until = row.banned_until.filter(|_| row.banned != 0);
    Some(Account::network(cid, row.banned != 0, banned_until))
}
