//! The airport's sockets as the runtime holds them: their attachment, and sending to an
//! audience through the runtime's tags.

use airport_protocol::effects::To;
use airport_protocol::session::Attachment;
use airport_protocol::{Role, SocketId};
use wasm_bindgen::prelude::*;
use worker::{Result, State, WebSocket};

pub fn new_socket_id() -> SocketId {
    (js_sys::Math::random() * 9_007_199_254_740_991.0) as SocketId
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
fn is_open(ws: &WebSocket) -> bool {
    const OPEN: u16 = 1;
    AsRef::<web_sys::WebSocket>::as_ref(ws).ready_state() == OPEN
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

/// Sends one serialized packet to a group of sockets (`except`: the socket `to` leaves out);
/// returns how many it reached.
pub fn send_to_group(state: &State, to: To, except: Option<&WebSocket>, packet: &str) -> u32 {
    let tags: &[Option<Role>] = match to {
        To::Socket(_) => &[],
        To::All { .. } => &[None],
        To::Controllers { .. } => &[Some(Role::Controller)],
        To::PilotsAndObservers => &[Some(Role::Pilot), Some(Role::Observer)],
    };
    let none = JsValue::UNDEFINED;
    let except = except.map_or(&none, |ws| AsRef::<web_sys::WebSocket>::as_ref(ws).as_ref());
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
