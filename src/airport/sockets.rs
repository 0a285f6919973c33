//! The airport's sockets as the runtime holds them: each one's attachment, the map from the
//! room's socket ids to WebSockets, and the room's send and close actions carried out on them
//! (a broadcast through the runtime's tags).

use crate::log_event;
use airport_protocol::effects::{Action, To};
use airport_protocol::session::Attachment;
use airport_protocol::{Role, SocketId};
use std::collections::HashMap;
use wasm_bindgen::prelude::*;
use worker::worker_sys::ext::WebSocketExt;
use worker::{Result, State, WebSocket};

pub fn new_socket_id() -> SocketId {
    (js_sys::Math::random() * 9_007_199_254_740_991.0) as SocketId
}

/// A socket's attachment. It is kept as JSON text: the runtime clones one string, where the
/// object `worker`'s (de)serializer builds took a call into JavaScript per field each way.
pub fn attachment(ws: &WebSocket) -> Option<Attachment> {
    let raw: &web_sys::WebSocket = ws.as_ref();
    let text = raw.deserialize_attachment().ok()?.as_string()?;
    serde_json::from_str(&text).ok()
}

pub fn save_attachment(ws: &WebSocket, attachment: &Attachment) -> Result<()> {
    let text = serde_json::to_string(attachment)?;
    let raw: &web_sys::WebSocket = ws.as_ref();
    Ok(raw.serialize_attachment(JsValue::from_str(&text))?)
}

/// Marks a socket as gone from the airport, so that a wake-up does not count it again.
pub fn mark_left(ws: &WebSocket, mut attachment: Attachment) {
    attachment.left = true;
    let _ = save_attachment(ws, &attachment);
}

/// Only OPEN sockets count and receive: a socket the server has closed is CLOSING at once.
fn is_open(ws: &WebSocket) -> bool {
    const OPEN: u16 = 1;
    AsRef::<web_sys::WebSocket>::as_ref(ws).ready_state() == OPEN
}

/// The airport's sockets by the room's ids, and the other way round: a frame's socket is found
/// by identity (a `WeakMap` lookup) rather than by reading its attachment. A socket that has
/// left (closed for flooding, say, with thousands of its frames still queued) is put in the set
/// of closed sockets that the Worker's entry (src/entry.mjs) checks: its frames never reach Wasm.
pub struct Sockets {
    by_id: HashMap<SocketId, WebSocket>,
    /// WebSocket → its id, while it is part of the airport.
    known: js_sys::WeakMap,
}

fn key(ws: &WebSocket) -> &js_sys::Object {
    AsRef::<web_sys::WebSocket>::as_ref(ws).unchecked_ref()
}

impl Sockets {
    /// The sockets still part of the airport after a wake-up (open, not yet left), with their
    /// attachments for the room.
    pub fn present(state: &State) -> (Sockets, Vec<Attachment>) {
        let mut sockets = Sockets {
            by_id: HashMap::new(),
            known: js_sys::WeakMap::new(),
        };
        let mut attachments = Vec::new();
        for ws in state.get_websockets() {
            match attachment(&ws).filter(|a| !a.left && is_open(&ws)) {
                Some(attachment) => {
                    sockets.insert(attachment.id, ws);
                    attachments.push(attachment);
                }
                None => sockets.forget(&ws),
            }
        }
        (sockets, attachments)
    }

    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    pub fn insert(&mut self, id: SocketId, ws: WebSocket) {
        self.known.set(key(&ws), &JsValue::from_f64(id as f64));
        self.by_id.insert(id, ws);
    }

    pub fn remove(&mut self, id: SocketId) {
        if let Some(ws) = self.by_id.remove(&id) {
            self.forget(&ws);
        }
    }

    /// Marks a socket as gone: its later frames are dropped unread.
    fn forget(&self, ws: &WebSocket) {
        self.known.delete(key(ws));
        mark_closed(key(ws));
    }

    /// The id of a frame's socket, if this wake-up has seen it.
    pub fn find(&self, ws: &WebSocket) -> Option<SocketId> {
        self.known.get(key(ws)).as_f64().map(|id| id as SocketId)
    }

    /// Stores the attachments the room changed.
    pub fn save(&self, attachments: &[Attachment]) {
        for attachment in attachments {
            if let Some(ws) = self.by_id.get(&attachment.id)
                && let Err(error) = save_attachment(ws, attachment)
            {
                log_event::failure("attachment_failed", error);
            }
        }
    }

    /// Sends and closes in order; returns the number of packets sent.
    pub fn perform(&mut self, state: &State, actions: &[Action]) -> u32 {
        let mut sends = 0;
        for action in actions {
            match action {
                Action::Send {
                    to: To::Socket(id),
                    packet,
                } => {
                    if let Some(ws) = self.by_id.get(id) {
                        sends += u32::from(ws.send_with_str(packet).is_ok());
                    }
                }
                Action::Send { to, packet } => {
                    let except = match to {
                        To::All { except } | To::Controllers { except } => *except,
                        To::Socket(_) | To::PilotsAndObservers => None,
                    };
                    let except = except.and_then(|id| self.by_id.get(&id));
                    sends += send_to_group(state, *to, except, packet);
                }
                Action::Close {
                    socket,
                    code,
                    reason,
                } => {
                    let Some(ws) = self.by_id.remove(socket) else {
                        continue;
                    };
                    self.forget(&ws);
                    if let Some(attachment) = attachment(&ws) {
                        mark_left(&ws, attachment);
                    }
                    let _ = ws.close(Some(code.code()), Some(reason));
                }
            }
        }
        sends
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
}
export function markClosed(ws) {
  (globalThis.airportClosedSockets ??= new WeakSet()).add(ws);
}")]
extern "C" {
    /// Puts a socket in the set whose frames src/entry.mjs drops before they reach Wasm.
    #[wasm_bindgen(js_name = markClosed)]
    fn mark_closed(ws: &js_sys::Object);

    /// The fan-out loop, in JavaScript: a broadcast crosses from Wasm once, with its text
    /// converted from UTF-8 once, rather than twice per recipient. A socket that is no longer
    /// OPEN refuses the send; its close event cleans it up. Returns the number of sends.
    #[wasm_bindgen(js_name = sendToSockets)]
    fn send_to_sockets(ctx: &JsValue, tag: Option<&str>, except: &JsValue, data: &str) -> u32;
}

/// Sends one serialized packet to a group of sockets (`except`: the socket `to` leaves out);
/// returns how many it reached.
fn send_to_group(state: &State, to: To, except: Option<&WebSocket>, packet: &str) -> u32 {
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
