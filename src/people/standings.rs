//! What an airport asks about the people it serves: their key's account in D1, and under the
//! `vatsim` role source their connections on the network (through the person's look-up object,
//! `person_lookup`, which runs the `StatusClient` here). The status service is asked once per
//! person at a time (concurrent look-ups share it), its answers reused for `VATSIM_CACHE_MS`,
//! and it counts as unreachable after a timeout.

use crate::log_event;
use crate::people::accounts::KeyDatabases;
use crate::people::lookup_cache::{LookupCache, Sharing};
use crate::people::person_lookup::network_standing;
use crate::subrequest;
use airport_protocol::Cid;
use airport_protocol::config::{Config, RoleSource, VatsimSettings};
use airport_protocol::recheck::{KeyStanding, NetworkStanding};
use airport_protocol::room::{Answers, Recheck};
use airport_protocol::vatsim::{NetworkConnection, parse_status};
use futures_util::future::{Either, join, join_all, select};
use std::cell::RefCell;
use std::pin::pin;
use std::time::Duration;
use worker::{AbortController, Delay, Env};

/// What the upstream said; `None` stands for "unreachable" and is never cached.
type Answer = Option<Vec<NetworkConnection>>;

/// People remembered at most per object (a person's look-up object asks for its own only).
const MAX_ENTRIES: usize = 10_000;

pub struct StatusClient {
    recent: LookupCache<Cid, Vec<NetworkConnection>>,
}

impl Default for StatusClient {
    fn default() -> Self {
        StatusClient {
            recent: LookupCache::new(MAX_ENTRIES, Sharing::Shared),
        }
    }
}

impl StatusClient {
    /// The person's standing on the network; `None` when roles do not come from it.
    pub async fn standing(
        &self,
        source: &RoleSource,
        cid: &Cid,
        now: i64,
    ) -> Option<NetworkStanding> {
        match source {
            RoleSource::Vatsim(settings) => Some(self.lookup(settings, cid, now).await),
            RoleSource::Static => None,
        }
    }

    async fn lookup(&self, settings: &VatsimSettings, cid: &Cid, now: i64) -> NetworkStanding {
        let answer = self
            .recent
            .get(cid, now, settings.cache_ms, || {
                fetch_status(settings.clone(), cid.clone())
            })
            .await;
        standing(answer)
    }
}

/// The answers to a re-check: the keys (one query per key database) and each person's
/// standing, asked all at once and waited for at most `limit_ms` in all. What has not come back
/// by then stays unknown, and its sessions are kept.
pub async fn answers(env: &Env, config: &Config, questions: &Recheck, limit_ms: i64) -> Answers {
    let answers = RefCell::new(Answers::default());
    {
        let keys = async {
            let Ok(databases) = KeyDatabases::open(env, config.key_source)
                .inspect_err(|error| log_event::failure("account_lookup_failed", error))
            else {
                return;
            };
            let mut found = databases
                .rechecked(&questions.key_hashes, &questions.people)
                .await
                .inspect_err(|error| log_event::failure("account_lookup_failed", error));
            let mut answers = answers.borrow_mut();
            for key_hash in &questions.key_hashes {
                let standing = match &mut found {
                    Ok(found) => match found.remove(key_hash) {
                        Some(account) => KeyStanding::Valid(account),
                        None => KeyStanding::Revoked,
                    },
                    Err(_) => KeyStanding::Unknown,
                };
                answers.keys.insert(key_hash.clone(), standing);
            }
        };
        let people = join_all(questions.people.iter().map(|cid| async {
            if let Some(standing) = network_standing(env, &config.role_source, cid).await {
                answers.borrow_mut().network.insert(cid.clone(), standing);
            }
        }));
        let limit = Delay::from(Duration::from_millis(limit_ms.max(0) as u64));
        select(pin!(join(keys, people)), pin!(limit)).await;
    }
    answers.into_inner()
}

fn standing(answer: Answer) -> NetworkStanding {
    match answer {
        None => NetworkStanding::Unreachable,
        Some(connections) if connections.is_empty() => NetworkStanding::NotConnected,
        Some(connections) => NetworkStanding::Connected(connections),
    }
}

/// `GET {url}/users/info?cid={cid}`. A timeout, a failed connection or any non-2xx answer is
/// "unreachable"; an empty 2xx body means "not connected".
async fn fetch_status(settings: VatsimSettings, cid: Cid) -> Answer {
    // A cid is digits only: nothing in it needs escaping.
    let url = format!("{}/users/info?cid={}", settings.status_url, cid.as_str());
    let controller = AbortController::default();
    let signal = controller.signal();
    let request = async {
        let response = subrequest::get(&url, &signal).await.ok()?;
        if !response.ok() {
            return None;
        }
        subrequest::text(&response).await.ok()
    };
    let timeout = Delay::from(Duration::from_millis(settings.timeout_ms.max(0) as u64));
    match select(pin!(request), pin!(timeout)).await {
        Either::Left((body, _)) => Some(parse_status(&body?, &cid)),
        Either::Right(_) => {
            controller.abort();
            None
        }
    }
}
