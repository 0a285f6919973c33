//! The hand-off between the Worker and an airport's Durable Object, which only the Worker can
//! reach: the airport and a connecting key's hash, as request headers; the airport's answers;
//! and the JSON error responses both sides send.

use crate::people::accounts::{NETWORK_BINDING, PresentedKey};
use airport_protocol::Icao;
use airport_protocol::config::{Config, ConfigError};
use airport_protocol::connect::HttpError;
use airport_protocol::history::ResumeRequest;
use std::cell::OnceCell;
use std::rc::Rc;
use worker::{Env, Headers, Request, Response, Result, WebSocket};

const AIRPORT_HEADER: &str = "X-Airport";
const KEY_HASH_HEADER: &str = "X-Airport-Key-Hash";
/// The key itself, only when the running service's people are a source (they are looked up by
/// it): between the Worker and the object, never logged.
const KEY_HEADER: &str = "X-Airport-Key";
/// Where a resuming client's replica is ([`ResumeRequest`]), as the Worker read it: present
/// only if the client sent `resume`.
const RESUME_HEADER: &str = "X-Airport-Resume";
/// On the airport's `/state` answer: "1" when a controller or pilot is connected.
pub const LIVE_HEADER: &str = "X-Airport-Live";

/// The airport a request is for, as a header.
pub fn airport_headers(airport: &Icao) -> Result<Headers> {
    let headers = Headers::new();
    headers.set(AIRPORT_HEADER, airport.as_str())?;
    Ok(headers)
}

/// The WebSocket subprotocol the airport answers the upgrade with (`connect::Connect`).
const PROTOCOL_HEADER: &str = "Sec-WebSocket-Protocol";

/// A connection for the airport to authenticate, as headers on the request to the Durable
/// Object: the key's hash, the key itself only where a source needs it, and the subprotocol to
/// answer with.
pub fn connect_headers(
    airport: &Icao,
    key: &PresentedKey,
    protocol: Option<&str>,
    resume: Option<&ResumeRequest>,
) -> Result<Headers> {
    let headers = airport_headers(airport)?;
    if let Some(resume) = resume {
        headers.set(RESUME_HEADER, &resume.to_param())?;
    }
    headers.set(KEY_HASH_HEADER, &key.hash)?;
    if let Some(plain) = &key.plain {
        headers.set(KEY_HEADER, plain)?;
    }
    if let Some(protocol) = protocol {
        headers.set(PROTOCOL_HEADER, protocol)?;
    }
    Ok(headers)
}

/// A connection the Worker hands to an airport.
pub struct Connecting {
    pub airport: Icao,
    pub key: PresentedKey,
    pub protocol: Option<String>,
    pub resume: Option<ResumeRequest>,
}

fn header(req: &Request, name: &str) -> Option<String> {
    req.headers().get(name).ok().flatten()
}

pub fn read_airport(req: &Request) -> Result<Icao> {
    Ok(header(req, AIRPORT_HEADER)
        .and_then(|v| Icao::parse(&v))
        .ok_or("missing airport")?)
}

pub fn read_connecting(req: &Request) -> Result<Connecting> {
    Ok(Connecting {
        airport: read_airport(req)?,
        key: PresentedKey {
            hash: header(req, KEY_HASH_HEADER).ok_or("missing key hash")?,
            plain: header(req, KEY_HEADER),
        },
        protocol: header(req, PROTOCOL_HEADER),
        resume: header(req, RESUME_HEADER).map(|value| ResumeRequest::parse(&value)),
    })
}

/// The upgrade's answer: the client's end of the socket, with the subprotocol it offered.
pub fn upgrade_response(client: WebSocket, protocol: Option<&str>) -> Result<Response> {
    let response = Response::from_websocket(client)?;
    if let Some(protocol) = protocol {
        response.headers().set(PROTOCOL_HEADER, protocol)?;
    }
    Ok(response)
}

/// A JSON response.
pub fn json_response(body: String) -> Result<Response> {
    let headers = Headers::new();
    headers.set("Content-Type", "application/json")?;
    Ok(Response::ok(body)?.with_headers(headers))
}

/// The airport's answer to the Worker's `/state`: the public state, and whether it is live.
pub fn state_response(body: String, live: bool) -> Result<Response> {
    let response = json_response(body)?;
    response
        .headers()
        .set(LIVE_HEADER, if live { "1" } else { "0" })?;
    Ok(response)
}

/// The JSON error body with its status (and `Retry-After` where the error says when).
pub fn error_response(error: &HttpError) -> Result<Response> {
    let response = json_response(error.body())?.with_status(error.status());
    if let Some(seconds) = error.retry_after_s() {
        response
            .headers()
            .set("Retry-After", &seconds.to_string())?;
    }
    Ok(response)
}

thread_local! {
    /// The settings, read once per isolate: a deployment's variables and bindings are fixed
    /// for an isolate's life, and every object constructed (each wake-up) would read them again.
    static CONFIG: OnceCell<std::result::Result<Rc<Config>, ConfigError>> =
        const { OnceCell::new() };
}

/// The deployment's settings ([`read_config`]), read once per isolate.
pub fn config(env: &Env) -> std::result::Result<Rc<Config>, ConfigError> {
    CONFIG.with(|cell| cell.get_or_init(|| read_config(env).map(Rc::new)).clone())
}

/// The deployment's settings, read from the Worker's `[vars]`, and the bindings they need.
fn read_config(env: &Env) -> std::result::Result<Config, ConfigError> {
    let config = Config::from_vars(|name| env.var(name).ok().map(|v| v.to_string()))?;
    if config.key_source.reads_network() && env.d1(NETWORK_BINDING).is_err() {
        return Err(ConfigError {
            name: NETWORK_BINDING,
            value: "unbound".into(),
            expected: "a D1 binding to the running service's database, which KEY_SOURCE = \
                       `network` reads (docs/operations.md)"
                .into(),
        });
    }
    Ok(config)
}
