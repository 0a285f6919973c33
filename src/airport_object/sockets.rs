//! Sockets of one airport: their small typed attachment and sending to an audience.

use crate::protocol::machine::Audience;
use crate::protocol::{Role, Session};
use serde::{Deserialize, Serialize};
use wasm_bindgen::prelude::*;
use worker::{Result, State, WebSocket};

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
    /// Controllers but the sender: they get each change as it was accepted.
    OtherControllers,
    /// Pilots and observers: they may get several changes as one packet (PROTOCOL §7).
    PilotsAndObservers,
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

#[wasm_bindgen(inline_js = "export function sendToSockets(ctx, tag, except, data) {
  const sockets = tag === undefined ? ctx.getWebSockets() : ctx.getWebSockets(tag);
  let sent = 0;
  for (const ws of sockets) {
    if (ws === except) continue;
    try { ws.send(data); sent++; } catch {}
  }
  return sent;
}")]
extern "C" {
    /// The fan-out loop, in JavaScript: a broadcast crosses from Wasm once, with its text
    /// converted from UTF-8 once, rather than twice per recipient. A socket that is no longer
    /// OPEN refuses the send; its close event cleans it up. Returns the number of sends.
    #[wasm_bindgen(js_name = sendToSockets)]
    fn send_to_sockets(ctx: &JsValue, tag: Option<&str>, except: &JsValue, data: &str) -> u32;
}

/// Sends one serialized packet to every socket of the audience; returns how many it reached.
pub fn send_to(state: &State, to: Recipients, sender: Option<&WebSocket>, packet: &str) -> u32 {
    let tags: &[Option<Role>] = match to {
        Recipients::Others | Recipients::Everyone => &[None],
        Recipients::Controllers | Recipients::OtherControllers => &[Some(Role::Controller)],
        Recipients::PilotsAndObservers => &[Some(Role::Pilot), Some(Role::Observer)],
    };
    let except = match (to, sender) {
        (Recipients::Others | Recipients::OtherControllers, Some(ws)) => {
            AsRef::<web_sys::WebSocket>::as_ref(ws).as_ref()
        }
        _ => &JsValue::UNDEFINED,
    };
    tags.iter()
        .map(|tag| {
            send_to_sockets(
                state.as_raw().as_ref(),
                tag.map(Role::as_str),
                except,
                packet,
            )
        })
        .sum()
}
