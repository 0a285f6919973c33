//! The floor of `bench/floor/floor.mjs`, in Rust compiled to Wasm with workers-rs, the
//! toolchain the service is built with: the Worker hands each request to the airport's object
//! unchanged, the object accepts the WebSocket with the hibernation API, sends one INITIAL-like
//! packet and forwards each frame to every other socket. No keys, state, storage or limits.
//! What it costs over the JavaScript floor is what Rust → Wasm itself costs (BENCHMARKS.md §3).
//! It takes the runtime's own `Request` and `Response`, as the service's Worker does.
#![cfg(target_arch = "wasm32")]

use wasm_bindgen::JsCast;
use worker::js_sys::futures::JsFuture;
use worker::*;

#[event(fetch)]
async fn fetch(req: web_sys::Request, env: Env, _ctx: Context) -> Result<web_sys::Response> {
    let href = req.url();
    let airport = href
        .split_once('?')
        .map(|(_, query)| query)
        .unwrap_or_default()
        .split('&')
        .find_map(|pair| pair.strip_prefix("airport="))
        .unwrap_or_default()
        .to_ascii_uppercase();
    let stub: worker_sys::DurableObject = env
        .durable_object("FLOOR")?
        .get_by_name(&airport)?
        .into_rpc();
    let answer = JsFuture::from(stub.fetch_with_request(&req)?).await?;
    Ok(answer.unchecked_into())
}

#[durable_object]
pub struct FloorObject {
    state: State,
}

impl DurableObject for FloorObject {
    fn new(state: State, _env: Env) -> Self {
        // One line per construction, so the benchmark can tell that the object hibernated.
        console_log!(r#"{{"event":"floor_constructed"}}"#);
        FloorObject { state }
    }

    async fn fetch(&self, _req: Request) -> Result<Response> {
        let pair = WebSocketPair::new()?;
        self.state.accept_web_socket(&pair.server);
        pair.server
            .send_with_str(r#"{"type":"INITIAL_STATE","data":{}}"#)?;
        Response::from_websocket(pair.client)
    }

    async fn websocket_message(
        &self,
        ws: WebSocket,
        message: WebSocketIncomingMessage,
    ) -> Result<()> {
        for other in self.state.get_websockets() {
            if other != ws {
                match &message {
                    WebSocketIncomingMessage::String(text) => other.send_with_str(text)?,
                    WebSocketIncomingMessage::Binary(bytes) => other.send_with_bytes(bytes)?,
                }
            }
        }
        Ok(())
    }

    async fn websocket_close(
        &self,
        ws: WebSocket,
        _code: usize,
        _reason: String,
        _was_clean: bool,
    ) -> Result<()> {
        ws.close(None::<u16>, None::<&str>)
    }
}
