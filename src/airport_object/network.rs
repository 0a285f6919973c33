//! The network status service, as the `vatsim` role source asks it: one upstream request per
//! person at a time (concurrent look-ups share it), results reused for `VATSIM_CACHE_MS`, and
//! a timeout after which the upstream counts as unreachable.

use crate::lookup_cache::{LookupCache, Sharing};
use crate::protocol::Cid;
use crate::protocol::config::VatsimSettings;
use crate::protocol::recheck::NetworkStanding;
use crate::protocol::vatsim::{NetworkConnection, parse_status};
use futures_util::future::{Either, select};
use std::pin::pin;
use std::time::Duration;
use worker::{AbortController, Delay, Fetch, Url};

/// What the upstream said; `None` stands for "unreachable" and is never cached.
type Answer = Option<Vec<NetworkConnection>>;

/// People remembered at most per airport.
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
    pub async fn lookup(&self, settings: &VatsimSettings, cid: &Cid, now: i64) -> NetworkStanding {
        let answer = self
            .recent
            .get(cid, now, settings.cache_ms, || {
                fetch_status(settings.clone(), cid.clone())
            })
            .await;
        standing(answer)
    }
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
    let url = Url::parse(&format!("{}/users/info", settings.status_url)).ok()?;
    let mut url = url;
    url.query_pairs_mut().append_pair("cid", cid.as_str());
    let controller = AbortController::default();
    let signal = controller.signal();
    let request = async {
        let mut response = Fetch::Url(url).send_with_signal(&signal).await.ok()?;
        if !(200..300).contains(&response.status_code()) {
            return None;
        }
        response.text().await.ok()
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
