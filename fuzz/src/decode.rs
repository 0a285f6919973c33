//! The `decode_packet` target: arbitrary bytes as one inbound frame, binary and (when UTF-8) text:
//! - `packet::decode` then `parse_command` never panic, and text and binary frames decode alike;
//! - a frame on a `Room` from every role (a controller's as text and binary) never panics, agrees with what `decode` and
//!   `parse_command` decided, and a rejected frame (an `ERROR` reply) leaves the airport
//!   unchanged; every server packet is a JSON object that echoes the `requestId`;
//! - for a quarter of the inputs, padding a pilot's frame with trailing spaces to exactly
//!   `MAX_PACKET_CHARS` changes nothing, and to one character more makes it `PACKET_TOO_LARGE`;
//! - for one in 32, the same frame from a controller on an airport one object short of
//!   `MAX_OBJECTS` with about 995,000 characters of shared state.

use crate::{Outcome, T0, check_frame, icao, prefilled_airport, prefilled_object, room, session};
use airport_protocol::airport::ObjectRecord;
use airport_protocol::error::PacketError;
use airport_protocol::limits::{MAX_PACKET_CHARS, MAX_REQUEST_ID_CHARS};
use airport_protocol::packet::{
    Command, Envelope, Frame, PacketKind, Rejection, decode, parse_command, peek_request_id,
};
use airport_protocol::{Airport, Cid, Role, Session};
use airport_testkit::harness::{Harness, Sent};
use airport_testkit::store::objects_of;
use serde_json::{Value, json};
use std::sync::OnceLock;

/// Rooms with a socket of each session, cloned for every frame.
struct Fixture {
    /// A few objects (`A`, `SB_27L_A1`, `p0`–`p2`) and a little shared state.
    small: Harness,
    /// 9,999 objects and about 995,000 characters of shared state.
    big: Harness,
    sessions: Vec<Session>,
}

fn with_named_objects(base: Airport) -> Airport {
    let mut objects = objects_of(&base).clone();
    let record = |state: Value| ObjectRecord {
        state,
        controller_id: Cid::parse("1000009").expect("cid"),
        updated_at: T0 - 1,
        seq: 0,
    };
    objects.insert("A".into(), record(json!(true)));
    objects.insert(
        "SB_27L_A1".into(),
        record(json!({"on": true, "color": {"r": 1, "g": 0}, "list": [1, {"x": null}]})),
    );
    Airport::restore(
        icao(),
        objects,
        base.shared().as_map().clone(),
        base.seq(),
        base.offline_since(),
    )
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let sessions = vec![
            session(Role::Controller, 1, false),
            session(Role::Pilot, 2, true),
            session(Role::Observer, 3, false),
        ];
        let connected = |airport| {
            let mut h = room(airport, false);
            for s in &sessions {
                h.socket(s);
            }
            h
        };
        let big = with_named_objects(prefilled_airport(9_997, 995_000));
        assert_eq!(objects_of(&big).len(), 9_999);
        assert!(objects_of(&big).contains_key(&prefilled_object(9_996).0));
        Fixture {
            small: connected(with_named_objects(prefilled_airport(3, 0))),
            big: connected(big),
            sessions,
        }
    })
}

type Decoded = Result<(Option<String>, PacketKind, Result<Command, PacketError>), Rejection>;

fn decoded(result: Result<Envelope, Rejection>) -> Decoded {
    result.map(|envelope| {
        let command = parse_command(envelope.kind, envelope.data);
        (envelope.request_id, envelope.kind, command)
    })
}

fn code(error: &PacketError) -> String {
    serde_json::to_value(error.code())
        .expect("a code")
        .as_str()
        .expect("a string")
        .to_owned()
}

/// Runs one frame from `session` on a copy of `room` and checks the effects.
fn handle(
    room: &Harness,
    session: &Session,
    frame: Frame<'_>,
    bytes: &[u8],
) -> (Harness, Outcome, Sent) {
    let mut after = room.clone();
    let sent = after.send_frame(session, frame);
    let outcome = check_frame(room.airport(), after.airport(), session, bytes, &sent, T0);
    (after, outcome, sent)
}

/// Checks one input (see the module documentation); panics on a failed check.
pub fn check(data: &[u8]) {
    let fx = fixture();
    let airport_code = fx.small.airport().icao();
    let text = std::str::from_utf8(data).ok();

    // Decoding: never panics, and a text frame decodes exactly like the same bytes in binary.
    let decode_as = |frame, role| decoded(decode(frame, airport_code, role));
    let binary = decode_as(Frame::Binary(data), Role::Controller);
    match text {
        Some(text) => assert_eq!(decode_as(Frame::Text(text), Role::Controller), binary),
        None => match &binary {
            Err(Rejection {
                request_id: None,
                error,
            }) => assert!(
                matches!(error, PacketError::NotUtf8 | PacketError::TooLarge { .. }),
                "{error:?}"
            ),
            other => panic!("bytes that are not UTF-8 decoded as {other:?}"),
        },
    }
    let peeked = peek_request_id(Frame::Binary(data), Role::Controller);
    if let Some(id) = &peeked {
        assert!(id.chars().count() <= MAX_REQUEST_ID_CHARS);
    }
    if let Some(text) = text {
        assert_eq!(peek_request_id(Frame::Text(text), Role::Controller), peeked);
    }

    // Handling: from every role, agreeing with the decoder; a rejection changes nothing.
    for session in &fx.sessions {
        let (after, outcome, effects) = handle(&fx.small, session, Frame::Binary(data), data);
        let expected = match &decode_as(Frame::Binary(data), session.role) {
            Err(rejection) => Some(code(&rejection.error)),
            Ok((_, kind, _)) if !kind.allowed_for(session.role) => Some("FORBIDDEN".into()),
            Ok((_, _, Err(error))) => Some(code(error)),
            Ok((_, _, Ok(_))) => None,
        };
        match (&expected, &outcome) {
            (Some(expected), Outcome::Rejected(code)) => assert_eq!(expected, code),
            (Some(expected), Outcome::Accepted { .. }) => {
                panic!("the decoder rejects ({expected}) but the room accepted")
            }
            (None, Outcome::Rejected(code)) => assert_eq!(
                code, "LIMIT_EXCEEDED",
                "a valid command was rejected with {code}"
            ),
            (None, Outcome::Accepted { .. }) => {}
        }
        if session.role == Role::Controller
            && let Some(text) = text
        {
            let (again, _, effects_text) = handle(&fx.small, session, Frame::Text(text), data);
            assert_eq!(
                effects_text, effects,
                "text and binary frames were handled differently"
            );
            assert_eq!(again.airport(), after.airport());
        }
    }

    let controller = &fx.sessions[0];
    // Trailing whitespace up to the limit changes nothing; one character more is too large. A
    // pilot's: a controller's frame may be a larger lighting packet.
    let pilot = &fx.sessions[1];
    if data.len().is_multiple_of(4)
        && let Some(text) = text
    {
        let chars = text.chars().count();
        if chars <= MAX_PACKET_CHARS {
            let (_, outcome, effects) = handle(&fx.small, pilot, Frame::Text(text), data);
            let mut padded = String::with_capacity(text.len() + MAX_PACKET_CHARS + 1 - chars);
            padded.push_str(text);
            padded.extend(std::iter::repeat_n(' ', MAX_PACKET_CHARS - chars));
            let (_, padded_outcome, padded_effects) =
                handle(&fx.small, pilot, Frame::Text(&padded), padded.as_bytes());
            assert_eq!(
                padded_outcome, outcome,
                "padding to the limit changed the outcome"
            );
            if matches!(outcome, Outcome::Accepted { .. }) {
                assert_eq!(padded_effects, effects);
            }
            padded.push(' ');
            let (_, over, _) = handle(&fx.small, pilot, Frame::Text(&padded), padded.as_bytes());
            assert_eq!(over, Outcome::Rejected("PACKET_TOO_LARGE".into()));
        }
    }
    // Near the object and shared-state limits.
    if data.len() % 32 == 1 {
        handle(&fx.big, controller, Frame::Binary(data), data);
    }
}
