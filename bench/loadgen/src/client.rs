//! WebSocket clients: opening a socket up to its INITIAL_STATE, reading packets into a shared
//! recorder, sending paced STATE_UPDATE / MULTI_STATE_UPDATE frames that carry their send time.

use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::OnceLock;
use std::time::{Duration, Instant};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::handshake::client::Request;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream, connect_async_with_config};

pub type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;
pub type Sink = SplitSink<Ws, Message>;
pub type Stream = SplitStream<Ws>;

/// Demo keys (seeds/dev.sql). Pilots and observers receive; controllers send.
pub const OTHER_KEYS: [&str; 3] = ["dev-pilot-1", "dev-pilot-2", "dev-observer-1"];
pub const CONTROLLER_KEYS: [&str; 2] = ["dev-controller-1", "dev-controller-2"];

/// The key of distinct person `i` (0..6000), seeded by bench/serve.mjs: of the running
/// service's shape (`BARS_` and 64 hex digits), so that the same keys serve as our own accounts
/// and, with `KEY_SOURCE=network`, as its `users`.
pub fn distinct_key(i: usize) -> String {
    format!("BARS_{i:064x}")
}

/// The address (`CF-Connecting-IP`) distinct person `i` connects from: one each.
pub fn person_address(i: usize) -> String {
    format!("10.{}.{}.{}", i / 62_500, (i / 250) % 250, 1 + i % 250)
}

static START: OnceLock<Instant> = OnceLock::new();

/// Microseconds on the generator's monotonic clock. Sender and receivers are in this one
/// process, so send and receipt times are on the same clock.
pub fn now_us() -> u64 {
    START.get_or_init(Instant::now).elapsed().as_micros() as u64
}

pub struct Opened {
    pub sink: Sink,
    pub stream: Stream,
    /// From the start of the TCP connect (the upgrade request) to the INITIAL_STATE frame.
    pub initial: Duration,
    pub initial_len: usize,
    /// The INITIAL_STATE's last characters, where `seq` and the resume members are.
    pub initial_tail: String,
}

/// How much of the end of an INITIAL_STATE [`Opened`] keeps.
const TAIL: usize = 200;

/// Only the loopback interface is ever a target.
pub fn check_loopback(url: &str) -> Result<(), String> {
    if url.starts_with("ws://127.0.0.1:") || url.starts_with("ws://localhost:") {
        Ok(())
    } else {
        Err(format!(
            "refusing {url}: only ws://127.0.0.1:PORT is a target"
        ))
    }
}

/// The upgrade request of `{base}/connect?airport=..&key=..` from `address`: the service reads
/// the client's address from `CF-Connecting-IP` (on Cloudflare the platform sets it; miniflare
/// keeps the one the client sends).
fn connect_request(base: &str, airport: &str, key: &str, address: &str) -> Result<Request, String> {
    connect_request_with(base, airport, key, address, "")
}

/// [`connect_request`] with more of the query (`&name=value…`).
fn connect_request_with(
    base: &str,
    airport: &str,
    key: &str,
    address: &str,
    query: &str,
) -> Result<Request, String> {
    let url = format!("{base}/connect?airport={airport}&key={key}{query}");
    let mut request = url.into_client_request().map_err(|e| e.to_string())?;
    let value = HeaderValue::from_str(address).map_err(|e| e.to_string())?;
    request.headers_mut().insert("CF-Connecting-IP", value);
    Ok(request)
}

thread_local! {
    static CONNECTS: Cell<u32> = const { Cell::new(0) };
}

/// An address no other connect of this generator uses (100.64.0.0/10). Without one, miniflare
/// gives every connect 127.0.0.1, and the service's address limit would count all the
/// generator's first connects of a key as one client's.
fn own_address() -> String {
    let n = CONNECTS.with(|c| {
        let n = c.get();
        c.set(n.wrapping_add(1));
        n
    }) % (1 << 22);
    format!("100.{}.{}.{}", 64 + (n >> 16), (n >> 8) & 255, n & 255)
}

/// Opens `{base}/connect?airport=..&key=..`, from an address of its own, and waits for the first
/// packet, which must be an INITIAL_STATE.
pub async fn open(base: &str, airport: &str, key: &str, limit: Duration) -> Result<Opened, String> {
    open_from(base, airport, key, &own_address(), limit).await
}

/// [`open`] from `address` (`CF-Connecting-IP`).
pub async fn open_from(
    base: &str,
    airport: &str,
    key: &str,
    address: &str,
    limit: Duration,
) -> Result<Opened, String> {
    open_request(connect_request(base, airport, key, address)?, limit).await
}

/// [`open`] with `resume={resume}` (docs/protocol.md §8).
pub async fn open_resuming(
    base: &str,
    airport: &str,
    key: &str,
    resume: &str,
    limit: Duration,
) -> Result<Opened, String> {
    let query = format!("&resume={resume}");
    let request = connect_request_with(base, airport, key, &own_address(), &query)?;
    open_request(request, limit).await
}

async fn open_request(request: Request, limit: Duration) -> Result<Opened, String> {
    let t0 = Instant::now();
    let attempt = async {
        let (ws, _) = connect_async_with_config(request, None, true)
            .await
            .map_err(|e| e.to_string())?;
        let (sink, mut stream) = ws.split();
        loop {
            match stream.next().await {
                Some(Ok(Message::Text(t))) => {
                    if t.as_str().contains("\"INITIAL_STATE\"") {
                        let tail = t.as_str().chars().rev().take(TAIL).collect::<Vec<_>>();
                        let tail: String = tail.into_iter().rev().collect();
                        return Ok((sink, stream, t.len(), tail));
                    }
                    let head: String = t.as_str().chars().take(120).collect();
                    return Err(format!("first packet is not INITIAL_STATE: {head}"));
                }
                Some(Ok(Message::Close(c))) => return Err(format!("closed: {c:?}")),
                Some(Ok(_)) => continue,
                Some(Err(e)) => return Err(e.to_string()),
                None => return Err("closed before INITIAL_STATE".into()),
            }
        }
    };
    let (sink, stream, initial_len, initial_tail) =
        tokio::time::timeout(limit, attempt)
            .await
            .map_err(|_| format!("no INITIAL_STATE within {limit:?}"))??;
    Ok(Opened {
        sink,
        stream,
        initial: t0.elapsed(),
        initial_len,
        initial_tail,
    })
}

/// The HTTP status a connect with `key` from `address` is answered with: 101 (the socket is then
/// closed at once) or the refusal's.
pub async fn knock(
    base: &str,
    airport: &str,
    key: &str,
    address: &str,
    limit: Duration,
) -> Result<u16, String> {
    let request = connect_request(base, airport, key, address)?;
    let attempt = async {
        match connect_async_with_config(request, None, true).await {
            Ok((mut ws, response)) => {
                let _ = ws.close(None).await;
                Ok(response.status().as_u16())
            }
            Err(WsError::Http(response)) => Ok(response.status().as_u16()),
            Err(e) => Err(e.to_string()),
        }
    };
    tokio::time::timeout(limit, attempt)
        .await
        .map_err(|_| format!("no answer within {limit:?}"))?
}

/// Opens `n` sockets, at most `parallel` at a time; `key(i)` picks each one's key.
pub async fn open_many(
    base: &str,
    airport: &str,
    n: usize,
    parallel: usize,
    key: impl Fn(usize) -> &'static str,
) -> Result<Vec<Opened>, String> {
    let results: Vec<Result<Opened, String>> = futures_util::stream::iter(0..n)
        .map(|i| open(base, airport, key(i), Duration::from_secs(30)))
        .buffered(parallel)
        .collect()
        .await;
    results.into_iter().collect()
}

/// What every reader of a scenario records. Receipts are attributed to the step they were sent
/// in (the `bs` field); receipts of another step are only counted.
#[derive(Default)]
pub struct Rec {
    pub step: u64,
    pub lat_us: Vec<u32>,
    pub received: u64,
    pub stale: u64,
    pub errors: u64,
    pub rate_limited: u64,
    pub heartbeats: u64,
    pub other: u64,
    pub closed: u64,
    pub last_receipt: Option<Instant>,
}

impl Rec {
    pub fn begin(&mut self, step: u64) {
        *self = Rec {
            step,
            ..Rec::default()
        };
    }
}

pub type Shared = Rc<RefCell<Rec>>;

/// The server's liveness probe: a client that does not answer it is closed idle.
pub fn is_heartbeat(text: &str) -> bool {
    text.starts_with("{\"type\":\"HEARTBEAT\"")
}

pub fn heartbeat_ack() -> Message {
    Message::Text("{\"type\":\"HEARTBEAT_ACK\"}".into())
}

/// Keeps a silent client connected: reads its socket until it closes, answering (and counting)
/// each HEARTBEAT, as a real client does.
pub fn spawn_answerer(o: Opened, heartbeats: Rc<Cell<u64>>) -> JoinHandle<Sink> {
    tokio::task::spawn_local(async move {
        let (mut sink, mut stream) = (o.sink, o.stream);
        while let Some(Ok(m)) = stream.next().await {
            if let Message::Text(text) = m
                && is_heartbeat(text.as_str())
            {
                heartbeats.set(heartbeats.get() + 1);
                if sink.send(heartbeat_ack()).await.is_err() {
                    break;
                }
            }
        }
        sink
    })
}

const BT: &str = "\"bt\":";
const BS: &str = "\"bs\":";

fn number_after(text: &str, key: &str) -> Option<u64> {
    let at = text.find(key)? + key.len();
    let digits = text[at..].bytes().take_while(u8::is_ascii_digit).count();
    text[at..at + digits].parse().ok()
}

fn record(rec: &Shared, text: &str) {
    let mut r = rec.borrow_mut();
    if text.starts_with("{\"type\":\"ERROR\"") {
        r.errors += 1;
        if text.contains("RATE_LIMITED") {
            r.rate_limited += 1;
        }
    } else if is_heartbeat(text) {
        r.heartbeats += 1;
    } else {
        // Each timed change: a pilot's or observer's packet may carry several, coalesced.
        let now = now_us();
        let mut timed = false;
        for item in text.split("\"objectId\":") {
            let Some(bt) = number_after(item, BT) else {
                continue;
            };
            timed = true;
            if number_after(item, BS) == Some(r.step) {
                r.lat_us
                    .push(now.saturating_sub(bt).min(u32::MAX as u64) as u32);
                r.received += 1;
                r.last_receipt = Some(Instant::now());
            } else {
                r.stale += 1;
            }
        }
        if !timed {
            r.other += 1;
        }
    }
}

/// Reads a socket until it closes, recording every packet.
pub fn spawn_reader(mut stream: Stream, rec: Shared) -> JoinHandle<()> {
    tokio::task::spawn_local(async move {
        while let Some(message) = stream.next().await {
            match message {
                Ok(Message::Text(t)) => record(&rec, t.as_str()),
                Ok(Message::Binary(b)) => record(&rec, &String::from_utf8_lossy(&b)),
                Ok(Message::Close(_)) | Err(_) => break,
                Ok(_) => {}
            }
        }
        rec.borrow_mut().closed += 1;
    })
}

/// Closes sockets with a close frame (at most 2 s each, all at once).
pub async fn close_all(sinks: Vec<Sink>, readers: Vec<JoinHandle<()>>) {
    let closing = sinks.into_iter().map(|mut sink| async move {
        let _ = tokio::time::timeout(Duration::from_secs(2), sink.send(Message::Close(None))).await;
    });
    futures_util::future::join_all(closing).await;
    for reader in readers {
        reader.abort();
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// One STATE_UPDATE per frame.
    Single,
    /// One MULTI_STATE_UPDATE of 200 updates per frame.
    Multi,
}

impl Kind {
    pub fn label(self) -> &'static str {
        match self {
            Kind::Single => "STATE_UPDATE",
            Kind::Multi => "MULTI_STATE_UPDATE ×200",
        }
    }
}

/// The frame to send now: the first (or only) update's state carries the send time `bt` (µs) and
/// the step `bs`. The service broadcasts the object's full state, so both come back unchanged;
/// the floor forwards the frame itself.
pub fn frame(kind: Kind, i: u64, step: u64, multi_tail: &str) -> String {
    match kind {
        Kind::Single => format!(
            "{{\"type\":\"STATE_UPDATE\",\"data\":{{\"objectId\":\"SB_{}\",\"state\":{{\"bt\":{},\"bs\":{}}}}}}}",
            i % 200,
            now_us(),
            step
        ),
        Kind::Multi => format!(
            "{{\"type\":\"MULTI_STATE_UPDATE\",\"data\":{{\"updates\":[{{\"objectId\":\"SB_0\",\"state\":{{\"bt\":{},\"bs\":{}}}}}{}]}}}}",
            now_us(),
            step,
            multi_tail
        ),
    }
}

/// Items 1..200 of a MULTI_STATE_UPDATE (item 0 carries the timing).
pub fn multi_tail() -> String {
    (1..200)
        .map(|i| format!(",{{\"objectId\":\"SB_{i}\",\"state\":{}}}", i % 2 == 0))
        .collect()
}

/// Sends frames at a steady `period` from `start + offset` until `end`. Returns the sink and how
/// many frames went out.
pub fn spawn_sender(
    mut sink: Sink,
    kind: Kind,
    step: u64,
    period: Duration,
    start: tokio::time::Instant,
    end: tokio::time::Instant,
) -> JoinHandle<(Sink, u64)> {
    tokio::task::spawn_local(async move {
        let tail = if kind == Kind::Multi {
            multi_tail()
        } else {
            String::new()
        };
        let mut next = start;
        let mut sent = 0u64;
        // Bounded: at most one frame per period between start and end.
        while next < end {
            tokio::time::sleep_until(next).await;
            let text = frame(kind, sent, step, &tail);
            if sink.send(Message::Text(text.into())).await.is_err() {
                break;
            }
            sent += 1;
            next += period;
        }
        (sink, sent)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_timing_fields_from_a_broadcast() {
        let text = "{\"type\":\"STATE_UPDATE\",\"airport\":\"EGLL\",\"timestamp\":1,\"seq\":9,\"data\":{\"objectId\":\"SB_1\",\"state\":{\"bs\":3,\"bt\":12345},\"controllerId\":\"1\"}}";
        assert_eq!(number_after(text, BT), Some(12345));
        assert_eq!(number_after(text, BS), Some(3));
    }

    #[test]
    fn times_every_change_of_a_coalesced_broadcast() {
        let rec: Shared = Rc::default();
        rec.borrow_mut().begin(3);
        let text = "{\"type\":\"MULTI_STATE_UPDATE\",\"seqFrom\":1,\"seq\":3,\"data\":{\"updates\":[{\"objectId\":\"SB_1\",\"state\":{\"bs\":3,\"bt\":10}},{\"objectId\":\"SB_2\",\"state\":{\"bs\":3,\"bt\":20}},{\"objectId\":\"SB_3\",\"state\":{\"bs\":2,\"bt\":30}}]}}";
        record(&rec, text);
        let r = rec.borrow();
        assert_eq!((r.received, r.stale, r.other, r.lat_us.len()), (2, 1, 0, 2));
    }

    #[test]
    fn frames_are_json() {
        for kind in [Kind::Single, Kind::Multi] {
            let f = frame(kind, 7, 2, &multi_tail());
            let v: serde_json::Value = serde_json::from_str(&f).unwrap();
            assert!(v["type"].is_string());
        }
        let v: serde_json::Value =
            serde_json::from_str(&frame(Kind::Multi, 0, 0, &multi_tail())).unwrap();
        assert_eq!(v["data"]["updates"].as_array().unwrap().len(), 200);
    }
}
