//! A native fan-out server (tokio + tungstenite) that behaves like the floor: INITIAL-like first
//! packet, then every frame forwarded unchanged to every other socket of the same airport. It is
//! not a comparison point for the service; it exists to show the generator's own ceiling, far
//! above what workerd reaches (bench/run.sh runs it on the server core).

use futures_util::{SinkExt, StreamExt};
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::mpsc::{UnboundedSender, unbounded_channel};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};

type Rooms = Rc<RefCell<HashMap<String, HashMap<u64, UnboundedSender<Message>>>>>;

pub async fn serve(port: u16, max_seconds: u64) -> Result<(), String> {
    let listener = TcpListener::bind(("127.0.0.1", port))
        .await
        .map_err(|e| e.to_string())?;
    eprintln!("native fan-out server on ws://127.0.0.1:{port}");
    let rooms: Rooms = Rc::default();
    let ids = Rc::new(Cell::new(0u64));
    let accept = async {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let _ = stream.set_nodelay(true);
            let (rooms, ids) = (rooms.clone(), ids.clone());
            tokio::task::spawn_local(async move {
                let mut airport = String::new();
                #[allow(clippy::result_large_err)] // the signature tungstenite asks for
                let callback = |req: &Request, resp: Response| {
                    let query = req.uri().query().unwrap_or("");
                    airport = query
                        .split('&')
                        .find_map(|p| p.strip_prefix("airport="))
                        .unwrap_or("")
                        .to_ascii_uppercase();
                    Ok(resp)
                };
                let Ok(ws) = tokio_tungstenite::accept_hdr_async(stream, callback).await else {
                    return;
                };
                let id = ids.get();
                ids.set(id + 1);
                let (mut sink, mut source) = ws.split();
                let (tx, mut rx) = unbounded_channel::<Message>();
                let _ = tx.send(Message::Text(
                    "{\"type\":\"INITIAL_STATE\",\"data\":{}}".into(),
                ));
                rooms
                    .borrow_mut()
                    .entry(airport.clone())
                    .or_default()
                    .insert(id, tx);
                let writer = tokio::task::spawn_local(async move {
                    while let Some(m) = rx.recv().await {
                        if sink.feed(m).await.is_err() {
                            return;
                        }
                        while let Ok(m) = rx.try_recv() {
                            if sink.feed(m).await.is_err() {
                                return;
                            }
                        }
                        if sink.flush().await.is_err() {
                            return;
                        }
                    }
                });
                while let Some(Ok(m)) = source.next().await {
                    if m.is_text() || m.is_binary() {
                        if let Some(room) = rooms.borrow().get(&airport) {
                            for (other, tx) in room {
                                if *other != id {
                                    let _ = tx.send(m.clone());
                                }
                            }
                        }
                    } else if m.is_close() {
                        break;
                    }
                }
                if let Some(room) = rooms.borrow_mut().get_mut(&airport) {
                    room.remove(&id);
                }
                writer.abort();
            });
        }
    };
    tokio::select! {
        _ = accept => Ok(()),
        _ = tokio::time::sleep(Duration::from_secs(max_seconds)) => Ok(()),
    }
}
