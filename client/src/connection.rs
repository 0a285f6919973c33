//! The tokio driver: opens the socket, runs a [`Session`] on it, and when it ends decides by
//! the close code or the HTTP refusal ([`policy`](crate::policy)) whether to try again after a
//! [`Backoff`]. The application sends [`Command`]s and hears [`Notice`]s; the replica is
//! published on a `watch` channel and carried from one connection to the next.

use crate::backoff::Backoff;
use crate::policy::{Next, Stop, after_close, after_rejection};
use crate::replica::Replica;
use crate::session::{Event, Output, Session};
use airport_protocol::history::ResumeRequest;
use airport_protocol::wire::ClientPacket;
use airport_protocol::wire::client::Envelope;
use futures_util::{FutureExt, SinkExt, StreamExt};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch};
use tokio::time::timeout;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Where and how to connect.
#[derive(Debug, Clone)]
pub struct Options {
    /// The service's base URL: `http(s)://` or `ws(s)://`, e.g. `http://127.0.0.1:8787`.
    pub server: String,
    pub airport: String,
    pub key: String,
    /// Send the key as `Authorization: Bearer` (the default) rather than in the query, where
    /// proxies log it.
    pub key_in_query: bool,
    pub backoff: Backoff,
}

/// What the application asks for.
#[derive(Debug, Clone)]
pub enum Command {
    Send(ClientPacket),
    /// Send `CLOSE`, close the socket and stop.
    Close,
}

/// What the application hears.
#[derive(Debug, Clone, PartialEq)]
pub enum Notice {
    Connecting {
        attempt: u32,
    },
    Session(Event),
    /// The connect was refused before the upgrade.
    Refused(Rejection),
    /// The socket ended: the server's close code, or `None` for a lost connection.
    Closed {
        code: Option<u16>,
        reason: String,
    },
    Retrying {
        after: Duration,
    },
    /// No more attempts.
    Stopped(Stop),
}

/// An HTTP refusal of the upgrade, as the server's JSON error body says.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("refused with {status} {code}: {message}")]
pub struct Rejection {
    pub status: u16,
    pub code: String,
    pub message: String,
}

/// A running client; dropping it closes the connection.
pub struct Client {
    commands: mpsc::UnboundedSender<Command>,
    pub replica: watch::Receiver<Replica>,
}

impl Client {
    /// Starts connecting in a task of the current tokio runtime. Read the notices: they are
    /// queued without bound until read.
    pub fn connect(options: Options) -> (Client, mpsc::UnboundedReceiver<Notice>) {
        let (commands, command_rx) = mpsc::unbounded_channel();
        let (notices, notice_rx) = mpsc::unbounded_channel();
        let (replica_tx, replica) = watch::channel(Replica::new());
        tokio::spawn(run(options, command_rx, notices, replica_tx));
        (Client { commands, replica }, notice_rx)
    }

    /// Sent if connected; dropped while between connections or connecting (the replica is
    /// stale then).
    pub fn send(&self, packet: ClientPacket) {
        let _ = self.commands.send(Command::Send(packet));
    }

    pub fn close(&self) {
        let _ = self.commands.send(Command::Close);
    }
}

struct Driver {
    options: Options,
    commands: mpsc::UnboundedReceiver<Command>,
    notices: mpsc::UnboundedSender<Notice>,
    replica: watch::Sender<Replica>,
}

/// How one socket ended.
enum End {
    /// By our `Close`, or because the application went away.
    ByUs,
    Closed {
        code: Option<u16>,
        reason: String,
    },
}

async fn run(
    options: Options,
    commands: mpsc::UnboundedReceiver<Command>,
    notices: mpsc::UnboundedSender<Notice>,
    replica: watch::Sender<Replica>,
) {
    let mut backoff = options.backoff.clone();
    let mut driver = Driver {
        options,
        commands,
        notices,
        replica,
    };
    let mut carried = Replica::new();
    loop {
        driver.notify(Notice::Connecting {
            attempt: backoff.attempt(),
        });
        let next = match driver.open(&carried.resume()).await {
            Err(Opened::Refused(rejection)) => {
                let next = after_rejection(rejection.status, &rejection.code);
                driver.notify(Notice::Refused(rejection));
                next
            }
            Err(Opened::Failed(reason)) => {
                driver.notify(Notice::Closed { code: None, reason });
                after_close(None)
            }
            Err(Opened::BadUrl) => Next::Stop(Stop::BadRequest),
            Err(Opened::ClosedByUs) => Next::Stop(Stop::Closed),
            Ok(socket) => {
                let started = Instant::now();
                let mut session = Session::new(carried, started);
                let end = driver.drive(socket, &mut session).await;
                carried = session.into_replica();
                backoff.connection_lasted(started.elapsed());
                match end {
                    End::ByUs => Next::Stop(Stop::Closed),
                    End::Closed { code, reason } => {
                        driver.notify(Notice::Closed { code, reason });
                        after_close(code)
                    }
                }
            }
        };
        let at_least = match next {
            Next::Stop(stop) => {
                driver.notify(Notice::Stopped(stop));
                return;
            }
            Next::Retry { at_least } => at_least,
        };
        let delay = backoff.next_delay(fastrand::f64(), at_least);
        driver.notify(Notice::Retrying { after: delay });
        if !driver.wait(delay).await {
            driver.notify(Notice::Stopped(Stop::Closed));
            return;
        }
    }
}

impl Driver {
    fn notify(&self, notice: Notice) {
        let _ = self.notices.send(notice);
    }

    /// The upgrade, given up after [`UPGRADE_WITHIN`].
    async fn open(&mut self, resume: &ResumeRequest) -> Result<Socket, Opened> {
        let upgrade = timeout(UPGRADE_WITHIN, open(&self.options, resume));
        match unless_closed(&mut self.commands, upgrade).await {
            None => Err(Opened::ClosedByUs),
            Some(Err(_)) => Err(Opened::Failed("the upgrade took too long".into())),
            Some(Ok(opened)) => opened,
        }
    }

    /// Waits out a back-off; false if the application closed meanwhile.
    async fn wait(&mut self, delay: Duration) -> bool {
        let until = tokio::time::sleep(delay);
        unless_closed(&mut self.commands, until).await.is_some()
    }

    async fn drive(&mut self, mut socket: Socket, session: &mut Session) -> End {
        loop {
            let due = tokio::time::Instant::from_std(session.poll_timeout());
            let (mut outputs, mut ended) = tokio::select! {
                // What has arrived counts before a deadline that passed meanwhile: a close
                // frame says more than our own timeout would.
                biased;
                frame = socket.next() => received(frame, session),
                _ = tokio::time::sleep_until(due) => (session.handle_timeout(Instant::now()), None),
                command = self.commands.recv() => match command {
                    Some(Command::Send(packet)) => (vec![session.send(packet, now_ms())], None),
                    Some(Command::Close) | None => {
                        close(&mut socket).await;
                        return End::ByUs;
                    }
                },
            };
            // Frames already here are read now, so that a burst publishes the replica once.
            for _ in 0..DRAIN_AT_MOST {
                let Some(frame) = ended
                    .is_none()
                    .then(|| socket.next().now_or_never())
                    .flatten()
                else {
                    break;
                };
                let (more, end) = received(frame, session);
                outputs.extend(more);
                ended = end;
            }
            let changed =
                |o: &Output| matches!(o, Output::Event(Event::ReplicaChanged | Event::Resyncing));
            if outputs.iter().any(changed) {
                self.replica.send_replace(session.replica().clone());
            }
            for output in outputs {
                match output {
                    // The socket is closing: what the frames before the close asked to send
                    // can no longer go, but what they told the application still does.
                    Output::Send(_) | Output::Dead(_) if ended.is_some() => {}
                    Output::Send(text) => {
                        match timeout(WRITE_WITHIN, socket.send(Message::text(text))).await {
                            Ok(Ok(())) => {}
                            Ok(Err(error)) => return lost(error.to_string()),
                            Err(_) => return lost("a send did not complete in time".into()),
                        }
                    }
                    Output::Event(event) => self.notify(Notice::Session(event)),
                    Output::Dead(reason) => {
                        let _ = timeout(WRITE_WITHIN, socket.close(None)).await;
                        return lost(reason.into());
                    }
                }
            }
            if let Some(end) = ended {
                return end;
            }
        }
    }
}

/// `work` while there is no session (connecting, or waiting to); `None` if the application
/// closed meanwhile. What it asks to send meanwhile is dropped: nothing may go out before
/// `INITIAL_STATE` says who we are, and that state will be the truth.
async fn unless_closed<T>(
    commands: &mut mpsc::UnboundedReceiver<Command>,
    work: impl Future<Output = T>,
) -> Option<T> {
    tokio::pin!(work);
    loop {
        tokio::select! {
            done = &mut work => return Some(done),
            command = commands.recv() => match command {
                Some(Command::Send(_)) => continue,
                Some(Command::Close) | None => return None,
            },
        }
    }
}

/// Frames read in one go at most, so that timers and commands still get their turn.
const DRAIN_AT_MOST: usize = 1_000;
/// A send (or our close) that takes longer means a dead peer behind a full buffer.
const WRITE_WITHIN: Duration = Duration::from_secs(10);
/// An upgrade that takes longer is given up (and tried again).
const UPGRADE_WITHIN: Duration = Duration::from_secs(15);

/// One read from the socket: what the session makes of a frame, or how the socket ended.
fn received(
    frame: Option<Result<Message, tungstenite::Error>>,
    session: &mut Session,
) -> (Vec<Output>, Option<End>) {
    match frame {
        Some(Ok(Message::Text(text))) => {
            (session.handle_frame(text.as_str(), Instant::now()), None)
        }
        Some(Ok(Message::Binary(bytes))) => {
            let text = String::from_utf8_lossy(&bytes);
            (session.handle_frame(&text, Instant::now()), None)
        }
        Some(Ok(Message::Close(frame))) => {
            let end = End::Closed {
                code: frame.as_ref().map(|f| u16::from(f.code)),
                reason: frame.map(|f| f.reason.to_string()).unwrap_or_default(),
            };
            (Vec::new(), Some(end))
        }
        // Pings are answered by tungstenite itself.
        Some(Ok(_)) => (Vec::new(), None),
        Some(Err(error)) => (Vec::new(), Some(lost(error.to_string()))),
        None => (Vec::new(), Some(lost("connection ended".into()))),
    }
}

fn lost(reason: String) -> End {
    End::Closed { code: None, reason }
}

/// `CLOSE` (the server answers with 1000), then the close handshake, briefly.
async fn close(socket: &mut Socket) {
    let packet = ClientPacket::Close(Envelope::default());
    if let Ok(text) = serde_json::to_string(&packet) {
        let _ = timeout(WRITE_WITHIN, socket.send(Message::text(text))).await;
    }
    let _ = tokio::time::timeout(Duration::from_secs(2), async {
        while let Some(Ok(_)) = socket.next().await {}
    })
    .await;
}

enum Opened {
    Refused(Rejection),
    Failed(String),
    BadUrl,
    /// The application closed while connecting.
    ClosedByUs,
}

/// The upgrade request for `options`, resuming as the replica allows (PROTOCOL §8).
fn connect_url(options: &Options, resume: &ResumeRequest) -> Option<String> {
    let base = options.server.trim_end_matches('/');
    let base = match base.split_once("://") {
        Some(("http", rest)) => format!("ws://{rest}"),
        Some(("https", rest)) => format!("wss://{rest}"),
        Some(("ws" | "wss", _)) => base.to_owned(),
        _ => return None,
    };
    let mut url = format!("{base}/connect?airport={}", encode(&options.airport));
    let resume = encode(&resume.to_param());
    url.push_str(&format!("&{}={resume}", ResumeRequest::PARAM));
    if options.key_in_query {
        url.push_str(&format!("&key={}", encode(&options.key)));
    }
    Some(url)
}

/// Percent-encodes everything but unreserved characters.
fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

async fn open(options: &Options, resume: &ResumeRequest) -> Result<Socket, Opened> {
    let url = connect_url(options, resume).ok_or(Opened::BadUrl)?;
    let mut request = url.into_client_request().map_err(|_| Opened::BadUrl)?;
    if !options.key_in_query {
        let bearer = HeaderValue::from_str(&format!("Bearer {}", options.key))
            .map_err(|_| Opened::BadUrl)?;
        request.headers_mut().insert("Authorization", bearer);
    }
    match tokio_tungstenite::connect_async(request).await {
        Ok((socket, _)) => Ok(socket),
        Err(tungstenite::Error::Http(response)) => Err(Opened::Refused(rejection(
            response.status().as_u16(),
            response.body(),
        ))),
        Err(error) => Err(Opened::Failed(error.to_string())),
    }
}

/// The server's `{"error":{"code","message"}}`, or what there is of it (a proxy's page).
fn rejection(status: u16, body: &Option<Vec<u8>>) -> Rejection {
    let parsed: Option<serde_json::Value> =
        body.as_deref().and_then(|b| serde_json::from_slice(b).ok());
    let field = |name: &str| {
        parsed
            .as_ref()
            .and_then(|v| v.pointer(&format!("/error/{name}")))
            .and_then(|v| v.as_str())
            .map(str::to_owned)
    };
    Rejection {
        status,
        code: field("code").unwrap_or_default(),
        message: field("message").unwrap_or_else(|| {
            String::from_utf8_lossy(body.as_deref().unwrap_or_default()).into_owned()
        }),
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(server: &str, key_in_query: bool) -> Options {
        Options {
            server: server.into(),
            airport: "EGLL".into(),
            key: "BARS_a b&c".into(),
            key_in_query,
            backoff: Backoff::default(),
        }
    }

    #[test]
    fn urls_from_any_scheme_with_the_key_encoded_and_where_to_resume() {
        use airport_protocol::history::HistoryId;
        let fresh = &ResumeRequest::Fresh;
        assert_eq!(
            connect_url(&options("http://127.0.0.1:8787/", false), fresh).as_deref(),
            Some("ws://127.0.0.1:8787/connect?airport=EGLL&resume=")
        );
        let from = ResumeRequest::From {
            history: HistoryId::from_bits(0xbeef),
            seq: 42,
        };
        assert_eq!(
            connect_url(&options("https://bars.example", true), &from).as_deref(),
            Some(
                "wss://bars.example/connect?airport=EGLL&resume=000000000000beef.42&key=BARS_a%20b%26c"
            )
        );
        assert_eq!(connect_url(&options("ftp://x", false), fresh), None);
    }

    #[test]
    fn rejections_read_the_error_body_or_keep_what_came() {
        let body = br#"{"error":{"code":"BANNED","message":"this account is banned"}}"#;
        assert_eq!(
            rejection(403, &Some(body.to_vec())),
            Rejection {
                status: 403,
                code: "BANNED".into(),
                message: "this account is banned".into()
            }
        );
        let page = rejection(502, &Some(b"<html>bad gateway</html>".to_vec()));
        assert_eq!(
            (page.code.as_str(), page.message.as_str()),
            ("", "<html>bad gateway</html>")
        );
        assert_eq!(rejection(503, &None).message, "");
    }
}
