//! A person's standing on the network, looked up once for every airport they connect to. Under
//! the `vatsim` role source a controller's plugin connects to all its airports at once; each
//! airport asking the status service itself cost one upstream request per airport. A small
//! Durable Object per person (named by cid) asks instead: concurrent look-ups share one request
//! and the answer is reused for `VATSIM_CACHE_MS` (`standings::StatusClient`), for every airport.
//!
//! Airports call its `standing` method over Durable Object RPC, not `fetch`: no `Request`,
//! `Headers` or `Response` is built on either side, only the cid and the answer cross. A herd of
//! people new to the service constructs one object each, so the constructor does no more than
//! it must: the settings are read once per isolate (`handoff::config`).

use crate::people::standings::StatusClient;
use airport_protocol::Cid;
use airport_protocol::config::{Config, RoleSource};
use airport_protocol::recheck::NetworkStanding;
use std::rc::Rc;
use wasm_bindgen::prelude::*;
use worker::js_sys::futures::JsFuture;
use worker::*;

// `fetch` is the least the macro exports; the class answers only its `standing` method.
#[durable_object(fetch)]
pub struct PersonLookup {
    /// `None` when the settings are bad: the airport refuses such a connection before it asks.
    config: Option<Rc<Config>>,
    status: StatusClient,
}

impl DurableObject for PersonLookup {
    fn new(_state: State, env: Env) -> Self {
        PersonLookup {
            config: crate::handoff::config(&env).ok(),
            status: StatusClient::default(),
        }
    }

    async fn fetch(&self, _req: Request) -> Result<Response> {
        Response::error("Not Found", 404)
    }
}

#[wasm_bindgen]
impl PersonLookup {
    /// RPC: the standing of the person `cid` names, as JSON (`NetworkStanding`).
    pub async fn standing(&self, cid: String) -> std::result::Result<String, JsError> {
        let now = crate::now_ms();
        let standing = match (&self.config, Cid::parse(&cid)) {
            (Some(config), Some(cid)) => self.status.standing(&config.role_source, &cid, now).await,
            _ => None,
        };
        Ok(serde_json::to_string(
            &standing.unwrap_or(NetworkStanding::Unreachable),
        )?)
    }
}

#[wasm_bindgen]
extern "C" {
    /// A person's look-up object as its stub's RPC methods reach it.
    #[wasm_bindgen(extends = js_sys::Object)]
    type PersonLookupStub;

    #[wasm_bindgen(method, catch)]
    fn standing(
        this: &PersonLookupStub,
        cid: &str,
    ) -> std::result::Result<js_sys::Promise, JsValue>;
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
    let stub: PersonLookupStub = env
        .durable_object("PEOPLE")?
        .get_by_name(cid.as_str())?
        .into_rpc();
    let answer = JsFuture::from(stub.standing(cid.as_str())?).await?;
    let json = answer
        .as_string()
        .ok_or_else(|| Error::from("the look-up object's answer is not text"))?;
    Ok(serde_json::from_str(&json)?)
}
