//! The hand-off between the Worker and an airport's Durable Object, which only the Worker can
//! reach: the identity it resolved, as request headers; the airport's answers; and the JSON
//! error responses both sides send.

use airport_protocol::config::{Config, ConfigError};
use airport_protocol::connect::HttpError;
use airport_protocol::{Cid, Icao, Role, Session};
use worker::{Env, Headers, Request, Response, Result};

const AIRPORT_HEADER: &str = "X-Airport";
const CID_HEADER: &str = "X-Airport-Cid";
const ROLE_HEADER: &str = "X-Airport-Role";
const KEY_HASH_HEADER: &str = "X-Airport-Key-Hash";
/// On the airport's `/state` answer: "1" when a controller or pilot is connected.
pub const LIVE_HEADER: &str = "X-Airport-Live";

/// The airport a request is for, as a header.
pub fn airport_headers(airport: &Icao) -> Result<Headers> {
    let headers = Headers::new();
    headers.set(AIRPORT_HEADER, airport.as_str())?;
    Ok(headers)
}

/// The identity the Worker resolved, as headers on the request to the Durable Object.
pub fn identity_headers(airport: &Icao, session: &Session, key_hash: &str) -> Result<Headers> {
    let headers = airport_headers(airport)?;
    headers.set(CID_HEADER, session.cid.as_str())?;
    headers.set(ROLE_HEADER, session.role.as_str())?;
    headers.set(KEY_HASH_HEADER, key_hash)?;
    Ok(headers)
}

/// Who is connecting, as the Worker resolved it.
pub struct Identity {
    pub airport: Icao,
    /// The role here is the one stored with the key; a `vatsim` airport replaces it.
    pub session: Session,
    pub key_hash: String,
}

fn header(req: &Request, name: &str) -> Option<String> {
    req.headers().get(name).ok().flatten()
}

pub fn read_airport(req: &Request) -> Result<Icao> {
    Ok(header(req, AIRPORT_HEADER)
        .and_then(|v| Icao::parse(&v))
        .ok_or("missing airport")?)
}

pub fn read_identity(req: &Request) -> Result<Identity> {
    let cid = header(req, CID_HEADER)
        .and_then(|v| Cid::parse(&v))
        .ok_or("missing cid")?;
    let role: Role = header(req, ROLE_HEADER)
        .and_then(|v| v.parse().ok())
        .ok_or("missing role")?;
    let key_hash = header(req, KEY_HASH_HEADER).ok_or("missing key hash")?;
    Ok(Identity {
        airport: read_airport(req)?,
        session: Session {
            cid,
            role,
            callsign: None,
        },
        key_hash,
    })
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

/// The JSON error body with its status.
pub fn error_response(error: &HttpError) -> Result<Response> {
    Ok(json_response(error.body())?.with_status(error.status()))
}

/// The deployment's settings, read from the Worker's `[vars]`.
pub fn read_config(env: &Env) -> std::result::Result<Config, ConfigError> {
    Config::from_vars(|name| env.var(name).ok().map(|v| v.to_string()))
}
