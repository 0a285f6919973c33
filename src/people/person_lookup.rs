//! A person's standing on the network, looked up once for every airport they connect to. Under
//! the `vatsim` role source a controller's plugin connects to all its airports at once; each
//! airport asking the status service itself cost one upstream request per airport. A small
//! Durable Object per person (named by cid) asks instead: concurrent look-ups share one request
//! and the answer is reused for `VATSIM_CACHE_MS` (`standings::StatusClient`), for every airport.

use crate::people::standings::StatusClient;
use crate::subrequest;
use airport_protocol::Cid;
use airport_protocol::config::{Config, ConfigError, RoleSource};
use airport_protocol::recheck::NetworkStanding;
use worker::*;

const CID_HEADER: &str = "X-Person-Cid";

// Only `fetch`: the handlers a class does not use would still be exported and shipped.
#[durable_object(fetch)]
pub struct PersonLookup {
    config: std::result::Result<Config, ConfigError>,
    status: StatusClient,
}

impl DurableObject for PersonLookup {
    fn new(_state: State, env: Env) -> Self {
        PersonLookup {
            config: crate::handoff::read_config(&env),
            status: StatusClient::default(),
        }
    }

    async fn fetch(&self, req: Request) -> Result<Response> {
        let cid = req.headers().get(CID_HEADER)?.and_then(|c| Cid::parse(&c));
        let now = crate::now_ms();
        let standing = match (&self.config, cid) {
            (Ok(config), Some(cid)) => self.status.standing(&config.role_source, &cid, now).await,
            _ => None,
        };
        Response::from_json(&standing.unwrap_or(NetworkStanding::Unreachable))
    }
}

/// The person's standing on the network, from their look-up object; `None` when roles do not
/// come from the network. An object that cannot be asked counts as the upstream unreachable.
pub async fn network_standing(
    env: &Env,
    source: &RoleSource,
    cid: &Cid,
) -> Option<NetworkStanding> {
    match source {
        RoleSource::Vatsim(_) => Some(ask(env, cid).await.unwrap_or(NetworkStanding::Unreachable)),
        RoleSource::Static => None,
    }
}

async fn ask(env: &Env, cid: &Cid) -> Result<NetworkStanding> {
    let stub = env.durable_object("PEOPLE")?.get_by_name(cid.as_str())?;
    let headers = Headers::new();
    headers.set(CID_HEADER, cid.as_str())?;
    let response = subrequest::ask_object(stub, "standing", &headers).await?;
    Ok(serde_json::from_str(&subrequest::text(&response).await?)?)
}
