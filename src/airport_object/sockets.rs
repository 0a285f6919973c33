//! Sockets of one airport: their small typed attachment, the identity handed over by the
//! Worker, and sending to an audience.

use crate::protocol::account::hash_api_key;
use crate::protocol::connect::api_key;
use crate::protocol::machine::Audience;
use crate::protocol::{Cid, Icao, Role, Session};
use serde::{Deserialize, Serialize};
use wasm_bindgen::prelude::*;
use worker::{Headers, Request, Result, State, WebSocket};

/// Stored with each socket by the runtime; survives hibernation.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Attachment {
    /// Random id, unique within the airport (below 2^53 so that it stays a JS number).
    pub id: u64,
    pub session: Session,
    /// SHA-256 of the API key the socket connected with, to notice its revocation.
    pub key_hash: String,
    /// Time of the last inbound frame (epoch ms).
    pub last_seen: i64,
    /// The socket has left the airport: announced, and closed or closing.
    pub left: bool,
}

pub fn new_socket_id() -> u64 {
    (js_sys::Math::random() * 9_007_199_254_740_991.0) as u64
}

pub fn attachment(ws: &WebSocket) -> Option<Attachment> {
    ws.deserialize_attachment().ok().flatten()
}

/// The attachment of a socket that is still part of the airport: open and not yet left.
pub fn present(ws: &WebSocket) -> Option<Attachment> {
    attachment(ws).filter(|a| !a.left && is_open(ws))
}

pub fn save_attachment(ws: &WebSocket, attachment: &Attachment) -> Result<()> {
    ws.serialize_attachment(attachment)
}

/// Only OPEN sockets count and receive: a socket the server has closed is CLOSING at once.
pub fn is_open(ws: &WebSocket) -> bool {
    const OPEN: u16 = 1;
    AsRef::<web_sys::WebSocket>::as_ref(ws).ready_state() == OPEN
}

/// Who to send to, relative to the sender of the packet being handled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recipients {
    Others,
    Everyone,
    Controllers,
}

impl From<Audience> for Recipients {
    fn from(audience: Audience) -> Self {
        match audience {
            Audience::Others => Recipients::Others,
            Audience::Everyone => Recipients::Everyone,
            Audience::Controllers => Recipients::Controllers,
        }
    }
}

#[wasm_bindgen]
extern "C" {
    /// A WebSocket seen only for its `send`, which here takes a JS string that is already
    /// built: a broadcast converts its text from UTF-8 once rather than once per socket.
    #[wasm_bindgen(js_name = WebSocket)]
    type RawSocket;

    #[wasm_bindgen(method, catch, js_name = send)]
    fn send(this: &RawSocket, data: &JsValue) -> std::result::Result<(), JsValue>;
}

/// Sends one serialized packet to every socket of the audience. A socket that is no longer
/// OPEN refuses it; its close event cleans it up.
pub fn send_to(state: &State, to: Recipients, sender: Option<&WebSocket>, packet: &str) {
    let sockets = match to {
        Recipients::Controllers => state.get_websockets_with_tag(Role::Controller.as_str()),
        Recipients::Others | Recipients::Everyone => state.get_websockets(),
    };
    let packet = JsValue::from_str(packet);
    for ws in sockets {
        if to == Recipients::Others && sender == Some(&ws) {
            continue;
        }
        let raw: &web_sys::WebSocket = ws.as_ref();
        let _ = raw.unchecked_ref::<RawSocket>().send(&packet);
    }
}

const AIRPORT_HEADER: &str = "X-Airport";
const CID_HEADER: &str = "X-Airport-Cid";
const ROLE_HEADER: &str = "X-Airport-Role";

/// The identity the Worker resolved, as headers on the request to the Durable Object (which
/// only the Worker can reach).
pub fn identity_headers(airport: &Icao, session: &Session) -> Result<Headers> {
    let headers = Headers::new();
    headers.set(AIRPORT_HEADER, airport.as_str())?;
    headers.set(CID_HEADER, session.cid.as_str())?;
    headers.set(ROLE_HEADER, session.role.as_str())?;
    Ok(headers)
}

/// Who is connecting, as the Worker resolved it.
pub struct Identity {
    pub airport: Icao,
    /// The role here is the one stored with the key; a `vatsim` airport replaces it.
    pub session: Session,
    pub key_hash: String,
}

pub fn read_identity(req: &Request) -> Result<Identity> {
    let headers = req.headers();
    let header = |name| headers.get(name).ok().flatten();
    let airport = header(AIRPORT_HEADER)
        .and_then(|v| Icao::parse(&v))
        .ok_or("missing airport")?;
    let cid = header(CID_HEADER)
        .and_then(|v| Cid::parse(&v))
        .ok_or("missing cid")?;
    let role: Role = header(ROLE_HEADER)
        .and_then(|v| v.parse().ok())
        .ok_or("missing role")?;
    let key = header("Authorization")
        .and_then(|v| api_key(None, Some(&v)).map(str::to_owned))
        .ok_or("missing key")?;
    Ok(Identity {
        airport,
        session: Session {
            cid,
            role,
            callsign: None,
        },
        key_hash: hash_api_key(&key),
    })
}
