//! What a client does when a connection ends or is refused (docs/protocol.md §6): stop, or try
//! again after a back-off, sometimes with a floor on the wait.

use std::time::Duration;

/// What comes after a close or a refused connect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Try again after the back-off's delay, and at least this long.
    Retry { at_least: Duration },
    /// Do not try again: nothing would change by itself.
    Stop(Stop),
}

/// Why the client stopped for good.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// 1000: the client closed the socket or sent `CLOSE`.
    Closed,
    /// 4001, or a 401: the key is unknown, revoked or missing; a new key is needed.
    KeyRefused,
    /// 403 `BANNED` (also after the reconnect that follows a 4003).
    Banned,
    /// 400, 404, 405, 426: the request itself is wrong.
    BadRequest,
}

/// After 4008 (flooding), or a 429 `TOO_MANY_REQUESTS`: the server refuses the same person at
/// that airport for 10 s after a 4008 (docs/protocol.md §7).
const AFTER_FLOODING: Duration = Duration::from_secs(10);
/// After 403 `NOT_CONNECTED` (the person is not on the network yet) or a 403 without our
/// error body: ask again slowly.
const AFTER_NOT_CONNECTED: Duration = Duration::from_secs(30);

/// After a close with this code (`None`: the connection was lost without a close frame).
pub fn after_close(code: Option<u16>) -> Next {
    match code {
        Some(1000) => Next::Stop(Stop::Closed),
        Some(4001) => Next::Stop(Stop::KeyRefused),
        Some(4008) => retry_after(AFTER_FLOODING),
        // 4000 (idle), 4003 (reconnect once to learn the new role; a ban then shows as 403),
        // 1011, 1006 and anything else: a plain back-off.
        _ => retry_after(Duration::ZERO),
    }
}

/// After the server refused the upgrade with this status and error code.
pub fn after_rejection(status: u16, code: &str) -> Next {
    match (status, code) {
        (401, _) => Next::Stop(Stop::KeyRefused),
        (403, "BANNED") => Next::Stop(Stop::Banned),
        // NOT_CONNECTED, or a 403 of something in front of the service (a firewall's page).
        (403, _) => retry_after(AFTER_NOT_CONNECTED),
        (400 | 404 | 405 | 426, _) => Next::Stop(Stop::BadRequest),
        (429, "TOO_MANY_REQUESTS") => retry_after(AFTER_FLOODING),
        // 429 TOO_MANY_CONNECTIONS, 500, 503 and whatever a proxy in front may answer.
        _ => retry_after(Duration::ZERO),
    }
}

fn retry_after(at_least: Duration) -> Next {
    Next::Retry { at_least }
}

impl Stop {
    pub fn describe(self) -> &'static str {
        match self {
            Stop::Closed => "closed",
            Stop::KeyRefused => "the key was refused or revoked: a new key is needed",
            Stop::Banned => "the account is banned",
            Stop::BadRequest => "the request is malformed (airport code or URL)",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: Next = Next::Retry {
        at_least: Duration::ZERO,
    };

    #[test]
    fn close_codes_follow_the_protocol_table() {
        assert_eq!(after_close(Some(1000)), Next::Stop(Stop::Closed));
        assert_eq!(after_close(Some(4001)), Next::Stop(Stop::KeyRefused));
        assert_eq!(after_close(Some(4008)), retry_after(AFTER_FLOODING));
        for code in [
            Some(4000),
            Some(4003),
            Some(1011),
            Some(1009),
            Some(1006),
            None,
        ] {
            assert_eq!(after_close(code), NOW, "{code:?}");
        }
    }

    #[test]
    fn rejections_follow_the_protocol_table() {
        assert_eq!(
            after_rejection(401, "INVALID_API_KEY"),
            Next::Stop(Stop::KeyRefused)
        );
        assert_eq!(
            after_rejection(401, "MISSING_API_KEY"),
            Next::Stop(Stop::KeyRefused)
        );
        assert_eq!(after_rejection(403, "BANNED"), Next::Stop(Stop::Banned));
        for code in ["NOT_CONNECTED", ""] {
            assert_eq!(after_rejection(403, code), retry_after(AFTER_NOT_CONNECTED));
        }
        for status in [400, 404, 405, 426] {
            assert_eq!(after_rejection(status, ""), Next::Stop(Stop::BadRequest));
        }
        for status in [429, 500, 502, 503] {
            assert_eq!(after_rejection(status, ""), NOW, "{status}");
        }
        assert_eq!(
            after_rejection(429, "TOO_MANY_REQUESTS"),
            retry_after(AFTER_FLOODING)
        );
    }
}
