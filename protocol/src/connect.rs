//! The HTTP side of connecting: request checks in the order of PROTOCOL §2 and the rejection
//! table, each error mapped once to its status and code.

use super::config::ConfigError;
use super::history::ResumeRequest;
use super::ids::Icao;
use super::wire::http::{ErrorBody, ErrorDetail};
use super::wire_name::wire_name_enum;
use thiserror::Error;

wire_name_enum! {
    /// The `code` of an HTTP error body.
    pub enum HttpErrorCode {
        MethodNotAllowed,
        UpgradeRequired,
        InvalidAirport,
        MissingApiKey,
        InvalidApiKey,
        Banned,
        NotConnected,
        UpstreamUnavailable,
        TooManyConnections,
        TooManyRequests,
        NotFound,
        Internal,
    }
}

impl HttpErrorCode {
    pub fn status(self) -> u16 {
        match self {
            HttpErrorCode::MethodNotAllowed => 405,
            HttpErrorCode::UpgradeRequired => 426,
            HttpErrorCode::InvalidAirport => 400,
            HttpErrorCode::MissingApiKey | HttpErrorCode::InvalidApiKey => 401,
            HttpErrorCode::Banned | HttpErrorCode::NotConnected => 403,
            HttpErrorCode::UpstreamUnavailable => 503,
            HttpErrorCode::TooManyConnections | HttpErrorCode::TooManyRequests => 429,
            HttpErrorCode::NotFound => 404,
            HttpErrorCode::Internal => 500,
        }
    }
}

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
    /// Too many keys refused from one address, or too many new ones from it at once (or a
    /// reconnect too soon after a close for flooding); `Retry-After` says when to try again.
    #[error("too many requests; try again in {retry_after_s} s")]
    TooManyRequests { retry_after_s: u32 },
    #[error("no such endpoint")]
    NotFound,
    /// The deployment's settings are wrong: the operator's to fix, so the message names the
    /// setting (nothing secret: a variable's name and what it must be).
    #[error("the service is misconfigured: {0}")]
    Misconfigured(ConfigError),
    /// What went wrong is for the log only: the client reads the code and this message.
    #[error("internal error; try again")]
    Internal(String),
}

impl HttpError {
    /// A failure of ours, with what went wrong for the log (never for the client).
    pub fn internal(error: impl ToString) -> Self {
        HttpError::Internal(error.to_string())
    }

    pub fn status(&self) -> u16 {
        self.code().status()
    }

    /// The `Retry-After` header's seconds, for the errors that say when to try again.
    pub fn retry_after_s(&self) -> Option<u32> {
        match self {
            HttpError::TooManyRequests { retry_after_s } => Some(*retry_after_s),
            _ => None,
        }
    }

    pub fn code(&self) -> HttpErrorCode {
        match self {
            HttpError::MethodNotAllowed => HttpErrorCode::MethodNotAllowed,
            HttpError::UpgradeRequired => HttpErrorCode::UpgradeRequired,
            HttpError::InvalidAirport => HttpErrorCode::InvalidAirport,
            HttpError::MissingApiKey => HttpErrorCode::MissingApiKey,
            HttpError::InvalidApiKey => HttpErrorCode::InvalidApiKey,
            HttpError::Banned { .. } => HttpErrorCode::Banned,
            HttpError::NotConnected => HttpErrorCode::NotConnected,
            HttpError::UpstreamUnavailable => HttpErrorCode::UpstreamUnavailable,
            HttpError::TooManyConnections { .. } => HttpErrorCode::TooManyConnections,
            HttpError::TooManyRequests { .. } => HttpErrorCode::TooManyRequests,
            HttpError::NotFound => HttpErrorCode::NotFound,
            HttpError::Misconfigured(_) | HttpError::Internal(_) => HttpErrorCode::Internal,
        }
    }

    /// `{"error":{"code":"…","message":"…"}}`
    pub fn body(&self) -> String {
        let body = ErrorBody {
            error: ErrorDetail {
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
    /// `Sec-WebSocket-Protocol`: the subprotocols a client offers (a browser's way to send a
    /// key without a URL, [`KEY_PROTOCOL_PREFIX`]).
    pub protocols: Option<&'a str>,
    /// The `resume` query parameter ([`ResumeRequest`]).
    pub resume: Option<&'a str>,
}

/// The subprotocol the service speaks; a browser offers it beside its key's, and it is the one
/// the server answers with.
pub const PROTOCOL: &str = "airport-realtime";
/// A subprotocol `airport-key.<KEY>` carries the API key: browsers cannot set headers on a
/// WebSocket, and a key in the URL lands in history, proxies and request logs.
pub const KEY_PROTOCOL_PREFIX: &str = "airport-key.";

/// What `/connect`'s checks read off a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connect<'a> {
    pub airport: Icao,
    pub key: &'a str,
    /// The subprotocol to answer with (RFC 6455: one of those offered), if any was offered
    /// that the service speaks: [`PROTOCOL`], or else the key's own.
    pub protocol: Option<&'a str>,
    /// Whether and from where the client asked to resume; a malformed value asks for the full
    /// state (never an error: the full state is always right).
    pub resume: Option<ResumeRequest>,
}

/// What `GET /state` reads: one airport, or every live one (`airport=all`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum StateTarget {
    Airport(Icao),
    All,
}

/// `/connect`'s checks that need no look-up, in contract order. Returns the airport, the API
/// key and the subprotocol to answer with.
pub fn check_connect<'a>(parts: &RequestParts<'a>) -> Result<Connect<'a>, HttpError> {
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
    let offered = || parts.protocols.into_iter().flat_map(|list| list.split(','));
    let offered = move || offered().map(str::trim);
    let key_protocol = offered().find(|p| p.starts_with(KEY_PROTOCOL_PREFIX));
    let key = api_key(parts.key_param, parts.authorization)
        .or_else(|| key_protocol?.strip_prefix(KEY_PROTOCOL_PREFIX))
        .filter(|key| !key.is_empty())
        .ok_or(HttpError::MissingApiKey)?;
    let protocol = offered().find(|p| *p == PROTOCOL).or(key_protocol);
    Ok(Connect {
        airport,
        key,
        protocol,
        resume: parts.resume.map(ResumeRequest::parse),
    })
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

/// A request's URL as the runtime hands it over (absolute, already normalized): its origin,
/// path and query, read without a URL library. The `url` crate, with the Unicode tables of its
/// host parsing, was about a sixth of the Worker's Wasm, for three fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestUrl<'a> {
    /// `scheme://host[:port]`.
    pub origin: &'a str,
    /// Still percent-encoded, `/` at least.
    pub path: &'a str,
    query: &'a str,
}

impl<'a> RequestUrl<'a> {
    pub fn parse(url: &'a str) -> Option<Self> {
        let authority = url.find("://")? + 3;
        let end = url[authority..]
            .find(['/', '?', '#'])
            .map_or(url.len(), |i| authority + i);
        let rest = &url[end..];
        let rest = rest.split_once('#').map_or(rest, |(before, _)| before);
        let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
        Some(RequestUrl {
            origin: &url[..end],
            path: if path.is_empty() { "/" } else { path },
            query,
        })
    }

    /// The first value of the query parameter `name`, decoded as a form is
    /// (`application/x-www-form-urlencoded`: `+` is a space, `%XX` a byte, invalid UTF-8
    /// replaced).
    pub fn param(&self, name: &str) -> Option<String> {
        self.query
            .split('&')
            .filter(|pair| !pair.is_empty())
            .map(|pair| pair.split_once('=').unwrap_or((pair, "")))
            .find(|(key, _)| form_decode(key) == name)
            .map(|(_, value)| form_decode(value))
    }
}

fn form_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |at: usize| bytes.get(at).and_then(|b| (*b as char).to_digit(16));
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if let (Some(high), Some(low)) = (hex(i + 1), hex(i + 2)) => {
                out.push((high * 16 + low) as u8);
                i += 2;
            }
            byte => out.push(byte),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
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
            protocols: None,
            resume: None,
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
            protocols: None,
            resume: None,
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
        let connect = check_connect(&parts()).unwrap();
        assert_eq!((connect.airport.as_str(), connect.key), ("EGLL", "k"));
        assert_eq!(connect.protocol, None);
        assert_eq!(connect.resume, None, "no parameter: a deployed client");
    }

    #[test]
    fn a_resume_parameter_is_read_and_a_malformed_one_asks_for_the_full_state() {
        let with = |resume| RequestParts {
            resume: Some(resume),
            ..parts()
        };
        let connect = check_connect(&with("00000000000000ff.12")).unwrap();
        let history = crate::history::HistoryId::from_bits(255);
        let from = ResumeRequest::From { history, seq: 12 };
        assert_eq!(connect.resume, Some(from));
        for fresh in ["", "12", "x.12", "00000000000000ff.-1"] {
            let connect = check_connect(&with(fresh)).unwrap();
            assert_eq!(connect.resume, Some(ResumeRequest::Fresh), "{fresh}");
        }
    }

    #[test]
    fn a_browser_offers_its_key_as_a_subprotocol() {
        let offered = |protocols| RequestParts {
            key_param: None,
            protocols: Some(protocols),
            ..parts()
        };
        let read = |protocols| {
            check_connect(&offered(protocols)).map(|connect| (connect.key, connect.protocol))
        };
        assert_eq!(
            read("airport-realtime, airport-key.BARS_k1"),
            Ok(("BARS_k1", Some(PROTOCOL)))
        );
        assert_eq!(
            read("airport-key.BARS_k1,airport-realtime"),
            Ok(("BARS_k1", Some(PROTOCOL)))
        );
        // Offered alone, the key's protocol is the one answered.
        assert_eq!(read("airport-key.k2"), Ok(("k2", Some("airport-key.k2"))));
        assert_eq!(
            read("chat, airport-realtime"),
            Err(HttpError::MissingApiKey)
        );
        assert_eq!(read("airport-key."), Err(HttpError::MissingApiKey));
        // The query and a Bearer header keep working, and win.
        let both = RequestParts {
            protocols: Some("airport-realtime, airport-key.k3"),
            ..parts()
        };
        let connect = check_connect(&both).unwrap();
        assert_eq!((connect.key, connect.protocol), ("k", Some(PROTOCOL)));
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
        let internal = HttpError::internal("D1_ERROR: no such table: accounts");
        let v: serde_json::Value = serde_json::from_str(&internal.body()).unwrap();
        assert_eq!(v["error"]["code"], "INTERNAL");
        assert_eq!(v["error"]["message"], "internal error; try again");
    }

    #[test]
    fn request_urls_are_read_like_the_url_standard_reads_them() {
        let url = RequestUrl::parse(
            "https://bars.example:8443/connect?airport=egll&key=BARS_a%2Bb+c&key=x#f",
        )
        .unwrap();
        assert_eq!(url.origin, "https://bars.example:8443");
        assert_eq!(url.path, "/connect");
        assert_eq!(url.param("airport").as_deref(), Some("egll"));
        assert_eq!(
            url.param("key").as_deref(),
            Some("BARS_a+b c"),
            "the first, decoded"
        );
        assert_eq!(url.param("nope"), None);
        let bare = RequestUrl::parse("http://127.0.0.1:8787?airport").unwrap();
        assert_eq!((bare.origin, bare.path), ("http://127.0.0.1:8787", "/"));
        assert_eq!(bare.param("airport").as_deref(), Some(""));
        let odd = RequestUrl::parse("http://h/a%3Fb?k=%zz%4&%6B=%E2%82%AC%FF").unwrap();
        assert_eq!(odd.path, "/a%3Fb");
        assert_eq!(
            odd.param("k").as_deref(),
            Some("%zz%4"),
            "broken escapes stay as they are"
        );
        assert_eq!(RequestUrl::parse("/no/scheme"), None);
        let encoded_name = RequestUrl::parse("http://h/?%6Bey=v").unwrap();
        assert_eq!(encoded_name.param("key").as_deref(), Some("v"));
        let lossy = RequestUrl::parse("http://h/?e=%E2%82%AC%FF").unwrap();
        assert_eq!(lossy.param("e").as_deref(), Some("€\u{FFFD}"));
    }
}
