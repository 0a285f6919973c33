//! The public `GET /state` (PROTOCOL §6), which the network's website and plugins poll with no
//! key from browsers on other origins. Answers are reused for a short time, in this isolate
//! (where concurrent polls of one airport share one read) and in the data centre's cache, so
//! that anonymous polling cannot multiply work. An airport the directory lists as dormant (or
//! never saw) is answered from the directory without waking or creating its Durable Object;
//! `airport=all` reads only the airports listed live.

use crate::directory;
use crate::gateway::{ask_airport, key_source, log_internal, strangers};
use crate::handoff::{LIVE_HEADER, airport_headers, error_response, json_response};
use crate::log_event;
use crate::people::accounts::{authenticate, presented};
use crate::people::key_memory::Outcome;
use crate::people::lookup_cache::{LookupCache, Sharing};
use crate::subrequest;
use airport_protocol::Icao;
use airport_protocol::connect::{HttpError, RequestParts, RequestUrl, StateTarget, check_state};
use airport_protocol::directory::{
    ALL_STATES_MAX_AIRPORTS, Listing, all_states_body, dormant_state,
};
use futures_util::FutureExt;
use futures_util::future::join_all;
use std::rc::Rc;
use std::time::Duration;
use wasm_bindgen::JsValue;
use worker::{Cache, Delay, Env, Headers, Response};

/// How long this isolate reuses an answer.
const ISOLATE_REUSE_MS: i64 = 1_000;
/// How long the data centre's cache keeps one, in seconds. An answer is at most
/// `ISOLATE_REUSE_MS` + this old (3 s; the contract allows 5).
const EDGE_MAX_AGE_S: u32 = 2;
/// Polls that arrive while another request reads the same airport wait for its answer.
const WAIT_FOR_OTHER_REQUESTS: Sharing = Sharing::Polled {
    wait: |attempt| Delay::from(Duration::from_millis(2 << attempt.min(6))).boxed_local(),
    polls: 12,
};

thread_local! {
    static RECENT: Rc<LookupCache<StateTarget, Rc<String>>> =
        Rc::new(LookupCache::new(1_000, WAIT_FOR_OTHER_REQUESTS));
}

/// Every `/state` response, an error included, is readable from any origin.
pub async fn serve(
    env: &Env,
    url: &RequestUrl<'_>,
    parts: &RequestParts<'_>,
    address: Option<&str>,
) -> Result<web_sys::Response, HttpError> {
    let response = if parts.method == "OPTIONS" {
        preflight()
    } else {
        match answer(env, url, parts, address).await {
            Ok(body) => json_response(body.as_ref().clone()).and_then(|response| {
                response.headers().set(
                    "Cache-Control",
                    &format!("public, max-age={EDGE_MAX_AGE_S}"),
                )?;
                Ok(response)
            }),
            Err(error) => {
                log_internal(&error);
                error_response(&error)
            }
        }
    }
    .map_err(HttpError::internal)?;
    response
        .headers()
        .set("Access-Control-Allow-Origin", "*")
        .map_err(HttpError::internal)?;
    Ok(response.into())
}

/// The answer to a CORS preflight: GET with an `Authorization` header may follow.
fn preflight() -> worker::Result<Response> {
    let headers = Headers::new();
    headers.set("Access-Control-Allow-Methods", "GET, OPTIONS")?;
    headers.set("Access-Control-Allow-Headers", "Authorization")?;
    headers.set("Access-Control-Max-Age", "86400")?;
    Ok(Response::empty()?.with_status(204).with_headers(headers))
}

async fn answer(
    env: &Env,
    url: &RequestUrl<'_>,
    parts: &RequestParts<'_>,
    address: Option<&str>,
) -> Result<Rc<String>, HttpError> {
    let (target, key) = check_state(parts)?;
    if let Some(key) = key {
        let source = key_source(env)?;
        let key = presented(source, key);
        let admitted = strangers::admit(env, address, &key.hash).await?;
        let checked = authenticate(env, source, key).await;
        admitted.answered(Outcome::of_check(&checked)).await;
        checked?;
    }
    let edge_key = format!(
        "{}/state?airport={}",
        url.origin,
        match &target {
            StateTarget::Airport(icao) => icao.as_str(),
            StateTarget::All => "all",
        }
    );
    let now = crate::now_ms();
    let cache = RECENT.with(Rc::clone);
    let env = env.clone();
    let read_target = target.clone();
    cache
        .get(&target, now, ISOLATE_REUSE_MS, move || async move {
            read_through_edge(&env, &read_target, &edge_key)
                .await
                .inspect_err(|error| log_event::failure("state_read_failed", error))
                .ok()
                .map(Rc::new)
        })
        .await
        .ok_or_else(|| HttpError::Internal("the state could not be read; try again".into()))
}

/// The data centre's cached answer, or a fresh one that is then cached.
async fn read_through_edge(
    env: &Env,
    target: &StateTarget,
    edge_key: &str,
) -> Result<String, HttpError> {
    let edge = edge_cache();
    if let Some(edge) = &edge
        && let Ok(Some(mut hit)) = edge.get(edge_key, false).await
        && let Ok(body) = hit.text().await
    {
        return Ok(body);
    }
    let body = match target {
        StateTarget::Airport(icao) => airport_state(env, icao).await?,
        StateTarget::All => all_live(env).await?,
    };
    if let Some(edge) = &edge {
        let response = Response::ok(body.clone()).map_err(HttpError::internal)?;
        response
            .headers()
            .set("Cache-Control", &format!("max-age={EDGE_MAX_AGE_S}"))
            .map_err(HttpError::internal)?;
        // A failed put only means the next poll reads again.
        let _ = edge.put(edge_key, response).await;
    }
    Ok(body)
}

/// `caches.default`, when the runtime has one.
fn edge_cache() -> Option<Cache> {
    let global = worker::js_sys::global();
    worker::js_sys::Reflect::has(&global, &JsValue::from_str("caches"))
        .unwrap_or(false)
        .then(Cache::default)
}

async fn airport_state(env: &Env, icao: &Icao) -> Result<String, HttpError> {
    let db = env.d1("DB").map_err(HttpError::internal)?;
    match directory::read(&db, icao)
        .await
        .map_err(HttpError::internal)?
    {
        None => Ok(dormant_state(icao.clone(), 0)),
        Some((Listing::Dormant, seq)) => Ok(dormant_state(icao.clone(), seq)),
        Some(_) => Ok(ask_for_state(env, icao).await?.0),
    }
}

/// The airport's own answer, and whether a controller or pilot is connected.
async fn ask_for_state(env: &Env, icao: &Icao) -> Result<(String, bool), HttpError> {
    let headers = airport_headers(icao).map_err(HttpError::internal)?;
    let response = ask_airport(env, icao, "state", &headers).await?;
    let live = response
        .headers()
        .get(LIVE_HEADER)
        .ok()
        .flatten()
        .as_deref()
        == Some("1");
    if !response.ok() {
        return Err(HttpError::Internal(format!(
            "airport {icao} answered {}",
            response.status()
        )));
    }
    let text = subrequest::text(&response)
        .await
        .map_err(HttpError::internal)?;
    Ok((text, live))
}

/// `{"states":[…]}` for the airports listed live that still are, within the bounds of
/// `directory::all_states_body`: each is asked, and an airport whose last controller and pilot
/// just left (its listing not yet rewritten) is left out.
async fn all_live(env: &Env) -> Result<String, HttpError> {
    let db = env.d1("DB").map_err(HttpError::internal)?;
    let mut listed = directory::live(&db, ALL_STATES_MAX_AIRPORTS + 1)
        .await
        .map_err(HttpError::internal)?;
    let listed_more = listed.len() > ALL_STATES_MAX_AIRPORTS;
    listed.truncate(ALL_STATES_MAX_AIRPORTS);
    let answers = join_all(listed.iter().map(|icao| ask_for_state(env, icao))).await;
    let live = answers.into_iter().filter_map(|answer| match answer {
        Ok((state, true)) => Some(state),
        Ok((_, false)) => None,
        // One airport that cannot answer does not hide the others.
        Err(error) => {
            log_internal(&error);
            None
        }
    });
    let live: Vec<String> = live.collect();
    Ok(all_states_body(
        live.iter().map(String::as_str),
        listed_more,
    ))
}
