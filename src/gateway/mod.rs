//! The Worker's `fetch`, the only entry point from the internet: routing, the public
//! `GET /state` (`public_state`) and the dashboard's pages. It hands connections to the
//! airport's Durable Object and reaches an airport only through its stub. A
//! malformed request is rejected here without waking an airport; a connection's key is checked
//! by its airport (one D1 query for every connection that arrives while another is under way),
//! still before any upgrade.
//!
//! It works on the runtime's own `Request` and `Response` objects rather than `worker`'s
//! wrappers: a wrapper copies the method, URL and headers and reads `request.cf` (which the
//! runtime builds from JSON on first use) whether or not they are needed, on the way in, on the
//! request to the airport and on its response. Those copies were about 10% of the CPU time of
//! a burst of connections (BENCHMARKS.md).

mod public_state;
mod strangers;

use crate::handoff::{config, connect_headers, error_response, json_response};
use crate::log_event;
use crate::people::accounts::presented;
use crate::people::key_memory::Outcome;
use crate::subrequest;
use airport_protocol::Icao;
use airport_protocol::config::KeySource;
use airport_protocol::connect::{
    HttpError, HttpErrorCode, RequestParts, RequestUrl, check_connect,
};
use airport_protocol::history::ResumeRequest;
use worker::*;

/// Reported by `GET /health`; `build.rs` records the git revision.
const VERSION: &str = env!("CARGO_PKG_VERSION");
const REVISION: &str = env!("BUILD_GIT_REVISION");

#[event(fetch)]
async fn fetch(req: web_sys::Request, env: Env, _ctx: Context) -> Result<web_sys::Response> {
    console_error_panic_hook::set_once();
    match route(&req, &env).await {
        Ok(response) => Ok(response),
        Err(error) => error_response(&error).map(Into::into),
    }
}

/// Logs an internal error once, where it is turned into a response.
pub fn log_internal(error: &HttpError) {
    match error {
        HttpError::Internal(detail) => log_event::failure("internal_error", detail),
        HttpError::Misconfigured(error) => log_event::failure("misconfigured", error),
        _ => {}
    }
}

/// Where keys are looked up; bad settings are a 500 naming the setting.
pub fn key_source(env: &Env) -> std::result::Result<KeySource, HttpError> {
    config(env)
        .map(|config| config.key_source)
        .map_err(HttpError::Misconfigured)
}

async fn route(
    req: &web_sys::Request,
    env: &Env,
) -> std::result::Result<web_sys::Response, HttpError> {
    let href = req.url();
    let url = RequestUrl::parse(&href)
        .ok_or_else(|| HttpError::Internal(format!("unreadable request URL {href:?}")))?;
    let method = req.method();
    let (airport_param, key_param) = (url.param("airport"), url.param("key"));
    let resume_param = url.param(ResumeRequest::PARAM);
    let headers = req.headers();
    let header = |name| headers.get(name).ok().flatten();
    let (upgrade, authorization, accept) =
        (header("Upgrade"), header("Authorization"), header("Accept"));
    let protocols = header("Sec-WebSocket-Protocol");
    let address = strangers::address(&headers);
    let parts = RequestParts {
        method: &method,
        upgrade: upgrade.as_deref(),
        airport: airport_param.as_deref(),
        key_param: key_param.as_deref(),
        authorization: authorization.as_deref(),
        protocols: protocols.as_deref(),
        resume: resume_param.as_deref(),
    };
    let result = match url.path {
        "/connect" => connect(env, &parts, address.as_deref()).await,
        "/state" => public_state::serve(env, &url, &parts, address.as_deref()).await,
        "/health" => health(&method).map(Into::into),
        path if is_dashboard_page(path, &method, accept.as_deref()) => {
            dashboard_page(env, req).await
        }
        _ => Err(HttpError::NotFound),
    };
    result.inspect_err(log_internal)
}

async fn connect(
    env: &Env,
    parts: &RequestParts<'_>,
    address: Option<&str>,
) -> std::result::Result<web_sys::Response, HttpError> {
    let request = check_connect(parts)?;
    let source = key_source(env)?;
    // The airport looks the key up: there, a burst of connections shares its queries.
    let key = presented(source, request.key);
    let admitted = strangers::admit(env, address, &key.hash).await?;
    let resume = request.resume.as_ref();
    let headers = connect_headers(&request.airport, &key, request.protocol, resume)
        .map_err(HttpError::internal)?;
    headers
        .set("Upgrade", "websocket")
        .map_err(HttpError::internal)?;
    let answer = ask_airport(env, &request.airport, "connect", &headers).await?;
    admitted.answered(airport_outcome(&answer).await).await;
    Ok(answer)
}

/// How the key fared at its airport. A 403's body says whether it was a ban (a refusal of the
/// key) or someone not on the network; the answer goes on to the client as it is.
async fn airport_outcome(answer: &web_sys::Response) -> Outcome {
    let status = answer.status();
    let code = if status == 403 {
        error_code(answer).await
    } else {
        None
    };
    Outcome::of_answer(status, code)
}

/// The `code` of an error body (`{"error":{"code":…}}`), read from a copy as a plain JSON
/// value: a parser the Worker already holds, where the body's own type would bring its own.
async fn error_code(response: &web_sys::Response) -> Option<HttpErrorCode> {
    let copy = response.clone().ok()?;
    let body = subrequest::text(&copy).await.ok()?;
    let body: serde_json::Value = serde_json::from_str(&body).ok()?;
    let code = body["error"]["code"].as_str()?;
    HttpErrorCode::ALL
        .into_iter()
        .find(|known| known.as_str() == code)
}

fn health(method: &str) -> std::result::Result<Response, HttpError> {
    if method != "GET" {
        return Err(HttpError::MethodNotAllowed);
    }
    let body = serde_json::json!({ "status": "ok", "version": VERSION, "revision": REVISION });
    json_response(body.to_string()).map_err(HttpError::internal)
}

/// The dashboard's pages, `/` and `/airport/ICAO`, for a browser (a GET or HEAD that accepts
/// HTML); anyone else still gets the 404 of an unknown path.
fn is_dashboard_page(path: &str, method: &str, accept: Option<&str>) -> bool {
    (path == "/" || path.starts_with("/airport/"))
        && matches!(method, "GET" | "HEAD")
        && accept.is_some_and(|accept| accept.contains("text/html"))
}

/// Every dashboard page is the one `index.html` of the static assets (`[assets]` in
/// wrangler.toml, which serves their scripts and styles itself), with its request's method and
/// headers so that conditional requests work.
async fn dashboard_page(
    env: &Env,
    req: &web_sys::Request,
) -> std::result::Result<web_sys::Response, HttpError> {
    let assets = env.assets("ASSETS").map_err(HttpError::internal)?;
    subrequest::ask_assets(assets, "index.html", req)
        .await
        .map_err(HttpError::internal)
}

/// Sends a request to the airport's Durable Object and returns its response (the WebSocket,
/// or the state) as it is. The key does not travel: only its hash.
pub async fn ask_airport(
    env: &Env,
    airport: &Icao,
    path: &str,
    headers: &Headers,
) -> std::result::Result<web_sys::Response, HttpError> {
    let stub = env
        .durable_object("AIRPORT")
        .and_then(|namespace| namespace.get_by_name(airport.as_str()))
        .map_err(HttpError::internal)?;
    subrequest::ask_object(stub, path, headers)
        .await
        .map_err(HttpError::internal)
}
