//! The HTTP side of connecting: request checks in the order of PROTOCOL §2 and the rejection
//! table, each error mapped once to its status and code.

use super::ids::Icao;
use serde::Serialize;
use thiserror::Error;

/// Every HTTP rejection, in the order the checks run.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum HttpError {
    #[error("only GET is allowed here")]
    MethodNotAllowed,
    #[error("this endpoint needs a WebSocket upgrade (Upgrade: websocket)")]
    UpgradeRequired,
    #[error("`airport` must be a 4-character ICAO code of letters and digits")]
    InvalidAirport,
    #[error("an API key is required: `key` query parameter or `Authorization: Bearer <key>`")]
    MissingApiKey,
    #[error("the API key is not valid")]
    InvalidApiKey,
    #[error("this account is banned{}", until.map(|t| format!(" until {t} (epoch ms)")).unwrap_or_default())]
    Banned { until: Option<i64> },
    #[error("you are not connected to the network")]
    NotConnected,
    #[error("the network status service is unreachable; try again shortly")]
    UpstreamUnavailable,
    #[error("too many connections: at most {limit} {scope}")]
    TooManyConnections { scope: &'static str, limit: u32 },
    #[error("no such endpoint")]
    NotFound,
    #[error("internal error: {0}")]
    Internal(String),
}

impl HttpError {
    pub fn status(&self) -> u16 {
        match self {
            HttpError::MethodNotAllowed => 405,
            HttpError::UpgradeRequired => 426,
            HttpError::InvalidAirport => 400,
            HttpError::MissingApiKey | HttpError::InvalidApiKey => 401,
            HttpError::Banned { .. } | HttpError::NotConnected => 403,
            HttpError::UpstreamUnavailable => 503,
            HttpError::TooManyConnections { .. } => 429,
            HttpError::NotFound => 404,
            HttpError::Internal(_) => 500,
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            HttpError::MethodNotAllowed => "METHOD_NOT_ALLOWED",
            HttpError::UpgradeRequired => "UPGRADE_REQUIRED",
            HttpError::InvalidAirport => "INVALID_AIRPORT",
            HttpError::MissingApiKey => "MISSING_API_KEY",
            HttpError::InvalidApiKey => "INVALID_API_KEY",
            HttpError::Banned { .. } => "BANNED",
            HttpError::NotConnected => "NOT_CONNECTED",
            HttpError::UpstreamUnavailable => "UPSTREAM_UNAVAILABLE",
            HttpError::TooManyConnections { .. } => "TOO_MANY_CONNECTIONS",
            HttpError::NotFound => "NOT_FOUND",
            HttpError::Internal(_) => "INTERNAL",
        }
    }

    /// `{"error":{"code":"…","message":"…"}}`
    pub fn body(&self) -> String {
        #[derive(Serialize)]
        struct Body<'a> {
            error: Inner<'a>,
        }
        #[derive(Serialize)]
        struct Inner<'a> {
            code: &'a str,
            message: String,
        }
        let body = Body {
            error: Inner {
                code: self.code(),
                message: self.to_string(),
            },
        };
        serde_json::to_string(&body).unwrap_or_default()
    }
}

/// What the Worker reads off a request before any look-up.
#[derive(Debug, Clone, Copy, Default)]
pub struct RequestParts<'a> {
    pub method: &'a str,
    pub upgrade: Option<&'a str>,
    pub airport: Option<&'a str>,
    pub key_param: Option<&'a str>,
    pub authorization: Option<&'a str>,
}

/// What `GET /state` reads: one airport, or every live one (`airport=all`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum StateTarget {
    Airport(Icao),
    All,
}

/// `/connect`'s checks that need no look-up, in contract order. Returns the airport and the
/// API key.
pub fn check_connect<'a>(parts: &RequestParts<'a>) -> Result<(Icao, &'a str), HttpError> {
    if parts.method != "GET" {
        return Err(HttpError::MethodNotAllowed);
    }
    if !parts
        .upgrade
        .is_some_and(|u| u.trim().eq_ignore_ascii_case("websocket"))
    {
        return Err(HttpError::UpgradeRequired);
    }
    let airport = parts
        .airport
        .and_then(Icao::parse)
        .ok_or(HttpError::InvalidAirport)?;
    let key = api_key(parts.key_param, parts.authorization).ok_or(HttpError::MissingApiKey)?;
    Ok((airport, key))
}

/// `/state`'s checks (PROTOCOL §6): the method and the airport, or `all` (any case). The key
/// is optional; one that is given is checked by the caller.
pub fn check_state<'a>(
    parts: &RequestParts<'a>,
) -> Result<(StateTarget, Option<&'a str>), HttpError> {
    if parts.method != "GET" {
        return Err(HttpError::MethodNotAllowed);
    }
    let target = match parts.airport {
        Some(all) if all.eq_ignore_ascii_case("all") => StateTarget::All,
        airport => StateTarget::Airport(
            airport
                .and_then(Icao::parse)
                .ok_or(HttpError::InvalidAirport)?,
        ),
    };
    Ok((target, api_key(parts.key_param, parts.authorization)))
}

/// The key from `?key=` or, failing that, `Authorization: Bearer <key>`.
pub fn api_key<'a>(param: Option<&'a str>, authorization: Option<&'a str>) -> Option<&'a str> {
    let from_header = || {
        let header = authorization?.trim();
        let (scheme, token) = header.split_once(' ')?;
        scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
    };
    param
        .filter(|k| !k.is_empty())
        .or_else(from_header)
        .filter(|k| !k.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts<'a>() -> RequestParts<'a> {
        RequestParts {
            method: "GET",
            upgrade: Some("websocket"),
            airport: Some("egll"),
            key_param: Some("k"),
            authorization: None,
        }
    }

    #[test]
    fn checks_run_in_contract_order() {
        let all_wrong = RequestParts {
            method: "POST",
            upgrade: None,
            airport: Some("x"),
            key_param: None,
            authorization: None,
        };
        assert_eq!(check_connect(&all_wrong), Err(HttpError::MethodNotAllowed));
        assert_eq!(check_state(&all_wrong), Err(HttpError::MethodNotAllowed));
        let p = RequestParts {
            method: "GET",
            ..all_wrong
        };
        assert_eq!(check_connect(&p), Err(HttpError::UpgradeRequired));
        assert_eq!(check_state(&p), Err(HttpError::InvalidAirport));
        let p = RequestParts {
            upgrade: Some("WebSocket"),
            ..p
        };
        assert_eq!(check_connect(&p), Err(HttpError::InvalidAirport));
        let p = RequestParts {
            airport: Some("eGkK"),
            ..p
        };
        assert_eq!(check_connect(&p), Err(HttpError::MissingApiKey));
        let (icao, key) = check_connect(&parts()).unwrap();
        assert_eq!((icao.as_str(), key), ("EGLL", "k"));
    }

    #[test]
    fn state_needs_no_key_and_reads_all() {
        let anonymous = RequestParts {
            upgrade: None,
            key_param: None,
            ..parts()
        };
        let egll = StateTarget::Airport(Icao::parse("EGLL").unwrap());
        assert_eq!(check_state(&anonymous), Ok((egll.clone(), None)));
        assert_eq!(check_state(&parts()), Ok((egll, Some("k"))));
        for all in ["all", "ALL", "All"] {
            let p = RequestParts {
                airport: Some(all),
                ..anonymous
            };
            assert_eq!(check_state(&p), Ok((StateTarget::All, None)));
        }
        let p = RequestParts {
            airport: Some("alll"),
            ..anonymous
        };
        assert!(matches!(
            check_state(&p),
            Ok((StateTarget::Airport(_), None))
        ));
        let p = RequestParts {
            airport: None,
            ..anonymous
        };
        assert_eq!(check_state(&p), Err(HttpError::InvalidAirport));
    }

    #[test]
    fn key_sources() {
        assert_eq!(api_key(Some("a"), Some("Bearer b")), Some("a"));
        assert_eq!(api_key(None, Some("Bearer b")), Some("b"));
        assert_eq!(api_key(Some(""), Some("bearer  b ")), Some("b"));
        assert_eq!(api_key(None, Some("Basic b")), None);
        assert_eq!(api_key(None, Some("Bearer ")), None);
        assert_eq!(api_key(None, None), None);
    }

    #[test]
    fn error_bodies() {
        let e = HttpError::TooManyConnections {
            scope: "per key at this airport",
            limit: 8,
        };
        assert_eq!(e.status(), 429);
        let v: serde_json::Value = serde_json::from_str(&e.body()).unwrap();
        assert_eq!(v["error"]["code"], "TOO_MANY_CONNECTIONS");
        assert!(v["error"]["message"].as_str().unwrap().contains('8'));
    }
}
