//! The airport's Durable Object: thin glue around the core's [`Room`]. It maps socket ids to
//! WebSockets, commits the room's writes to SQLite (one commit path for every event), carries
//! out the actions once they are durable, keeps the one alarm at the room's `next_wake`, and
//! serves `fetch`. Sockets use the hibernation API: everything needed after an eviction lives
//! in storage and in each socket's attachment. Hooks log failures and survive them.

mod listing;
mod sockets;
mod storage;

use crate::handoff::{self, LIVE_HEADER, error_response, json_response};
use crate::person_lookup::network_standing;
use crate::standings;
use airport_protocol::config::{Config, ConfigError};
use airport_protocol::connect::HttpError;
use airport_protocol::directory::dormant_state;
use airport_protocol::effects::{Action, Effects, To};
use airport_protocol::liveness::ALARM_RETRY_MS;
use airport_protocol::outbound::Stamp;
use airport_protocol::outbox::{Next, Outbox};
use airport_protocol::packet::Frame;
use airport_protocol::{CloseCode, Icao, Room, SocketId, StoreOp};
use listing::DirectoryEntry;
use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::time::Duration;
use worker::*;

/// The airport in memory; rebuilt from storage and the sockets' attachments after every
/// restart or hibernation, and after a failed write.
struct Live {
    room: Room,
    sockets: HashMap<SocketId, WebSocket>,
    outbox: Outbox,
    /// The alarm as last set, so that most events need no storage call to keep it right.
    alarm_at: Option<i64>,
}

#[durable_object]
pub struct AirportObject {
    state: State,
    env: Env,
    config: std::result::Result<Config, ConfigError>,
    live: RefCell<Option<Live>>,
    /// The airport's entry in the D1 directory.
    directory: Rc<DirectoryEntry>,
}

fn now() -> i64 {
    Date::now().as_millis() as i64
}

fn log_failure(event: &str, error: &Error) {
    console_error!(
        "{{\"event\":\"{event}\",\"detail\":{:?}}}",
        error.to_string()
    );
}

/// A hook's failure is logged and survived: propagated, it would reset the object.
fn survive(event: &str, result: Result<()>) -> Result<()> {
    if let Err(error) = result {
        log_failure(event, &error);
    }
    Ok(())
}

impl DurableObject for AirportObject {
    fn new(state: State, env: Env) -> Self {
        let config = handoff::read_config(&env);
        if let Err(error) = storage::migrate(&state.storage()) {
            log_failure("migrate_failed", &error);
        }
        AirportObject {
            state,
            env,
            config,
            live: RefCell::new(None),
            directory: Rc::default(),
        }
    }

    async fn fetch(&self, req: Request) -> Result<Response> {
        match self.serve(req).await {
            Ok(response) => Ok(response),
            Err(error) => error_response(&error),
        }
    }

    async fn websocket_message(
        &self,
        ws: WebSocket,
        message: WebSocketIncomingMessage,
    ) -> Result<()> {
        survive("message_failed", self.on_message(&ws, message).await)
    }

    async fn websocket_close(
        &self,
        ws: WebSocket,
        _code: usize,
        _reason: String,
        _was_clean: bool,
    ) -> Result<()> {
        survive("close_failed", self.on_gone(&ws).await)
    }

    async fn websocket_error(&self, ws: WebSocket, _error: Error) -> Result<()> {
        survive("close_failed", self.on_gone(&ws).await)
    }

    async fn alarm(&self) -> Result<Response> {
        match self.on_alarm().await {
            Ok(done) => Response::ok(done),
            Err(error) => {
                // The alarm is spent: set another so that the airport's deadlines still run.
                log_failure("alarm_failed", &error);
                self.set_alarm(Some(now() + ALARM_RETRY_MS)).await?;
                Response::ok("retrying")
            }
        }
    }
}

impl AirportObject {
    fn config(&self) -> Result<&Config> {
        self.config
            .as_ref()
            .map_err(|error| Error::RustError(error.to_string()))
    }

    async fn on_message(&self, ws: &WebSocket, message: WebSocketIncomingMessage) -> Result<()> {
        let now = now();
        let Some(attachment) = sockets::attachment(ws) else {
            let _ = ws.close(Some(CloseCode::Internal.code()), Some("unknown socket"));
            return Ok(());
        };
        if attachment.left {
            return Ok(());
        }
        if !self.ensure_live(None).await? {
            let _ = ws.close(Some(CloseCode::Internal.code()), Some("airport not found"));
            return Ok(());
        }
        let frame = match &message {
            WebSocketIncomingMessage::String(text) => Frame::Text(text),
            WebSocketIncomingMessage::Binary(bytes) => Frame::Binary(bytes),
        };
        let effects = self.with_room(|room| room.frame(attachment.id, frame, now))?;
        self.carry_out(effects, now).await;
        self.settle().await
    }

    /// The client closed or the socket failed.
    async fn on_gone(&self, ws: &WebSocket) -> Result<()> {
        if let Some(mut attachment) = sockets::attachment(ws)
            && !attachment.left
            && self.ensure_live(None).await?
        {
            let now = now();
            attachment.left = true;
            let _ = sockets::save_attachment(ws, &attachment);
            let effects = self.with_room(|room| room.leave(attachment.id, now))?;
            if let Some(live) = self.live.borrow_mut().as_mut() {
                live.sockets.remove(&attachment.id);
            }
            self.carry_out(effects, now).await;
            self.settle().await?;
        }
        // Complete the closing handshake; a socket that is already closed refuses, harmlessly.
        let _ = ws.close(Some(1000), Some("closed"));
        Ok(())
    }

    async fn on_alarm(&self) -> Result<&'static str> {
        let now = now();
        if !self.ensure_live(None).await? {
            return Ok("no airport");
        }
        self.flush();
        if let Some(live) = self.live.borrow_mut().as_mut() {
            live.alarm_at = None;
        }
        let (effects, recheck) = self.with_room(|room| room.alarm(now))?;
        self.carry_out(effects, now).await;
        let answers = match recheck {
            Some(questions) => {
                let source = &self.config()?.role_source;
                Some(standings::answers(&self.env, source, &questions).await)
            }
            None => None,
        };
        let effects = self.with_room(|room| room.finish_alarm(now, answers.as_ref()))?;
        self.carry_out(effects, now).await;
        if self.live.borrow().is_none() {
            return Err("the airport's writes failed".into());
        }
        self.settle().await?;
        Ok("ok")
    }

    fn with_room<R>(&self, event: impl FnOnce(&mut Room) -> R) -> Result<R> {
        let mut guard = self.live.borrow_mut();
        let live = guard.as_mut().ok_or("airport not loaded")?;
        Ok(event(&mut live.room))
    }

    /// Loads the airport and its open sockets, once per wake-up. Returns false when there is
    /// no airport (an alarm for an object that never served one).
    async fn ensure_live(&self, icao: Option<&Icao>) -> Result<bool> {
        if self.live.borrow().is_some() {
            return Ok(true);
        }
        let now = now();
        let config = self.config()?.clone();
        let Some(stored) = storage::load(&self.state.storage().sql(), icao)? else {
            return Ok(false);
        };
        let mut sockets = HashMap::new();
        let mut attachments = Vec::new();
        for ws in self.state.get_websockets() {
            if let Some(attachment) = sockets::present(&ws) {
                sockets.insert(attachment.id, ws);
                attachments.push(attachment);
            }
        }
        let (room, effects) =
            Room::restore(config, stored.airport, stored.schedule, attachments, now);
        let alarm_at = self.state.storage().get_alarm().await?;
        console_log!(
            "{{\"event\":\"airport_loaded\",\"airport\":\"{}\",\"sockets\":{},\"seq\":{}}}",
            room.icao(),
            sockets.len(),
            room.airport().seq()
        );
        *self.live.borrow_mut() = Some(Live {
            room,
            sockets,
            outbox: Outbox::default(),
            alarm_at,
        });
        self.directory.restore(stored.listed);
        self.carry_out(effects, now).await;
        // After a restart that dropped every socket, the directory may still say live.
        self.settle().await?;
        Ok(self.live.borrow().is_some())
    }

    /// Carries out an event's effects: attachments at once, the rest through the outbox. A
    /// write in a burst waits one timer turn, so that frames already waiting share its commit.
    async fn carry_out(&self, effects: Effects, now: i64) {
        match self.queue(effects, now) {
            Some(Next::Flush) => {
                self.flush();
            }
            Some(Next::FlushSoon) => {
                Delay::from(Duration::ZERO).await;
                self.flush();
            }
            Some(Next::Wait) | None => {}
        }
    }

    /// Stores the attachments and queues the rest; `None` if the airport is not in memory.
    fn queue(&self, effects: Effects, now: i64) -> Option<Next> {
        let mut guard = self.live.borrow_mut();
        let live = guard.as_mut()?;
        for attachment in &effects.attachments {
            if let Some(ws) = live.sockets.get(&attachment.id)
                && let Err(error) = sockets::save_attachment(ws, attachment)
            {
                log_failure("attachment_failed", &error);
            }
        }
        Some(live.outbox.push(effects, now))
    }

    /// Commits everything queued in one write, then carries out the actions in order; the
    /// output gate holds the sends until the commit is durable. If the write fails, the
    /// writers get `ERROR INTERNAL` instead and the airport in memory is forgotten: the next
    /// event reloads what is durable. Returns whether the write held.
    fn flush(&self) -> bool {
        let mut guard = self.live.borrow_mut();
        let Some(live) = guard.as_mut() else {
            return false;
        };
        let (writes, batch) = live.outbox.take();
        if batch.is_empty() {
            return true;
        }
        let wrote = !writes.is_empty();
        let cleared = writes.contains(&StoreOp::ClearState);
        let saved = storage::write(&self.state.storage(), writes);
        if let Err(error) = &saved {
            log_failure("storage_failed", error);
        } else if cleared {
            console_log!(
                "{{\"event\":\"offline_cleared\",\"airport\":\"{}\",\"seq\":{}}}",
                live.room.icao(),
                live.room.airport().seq()
            );
        }
        let now = now();
        let stamp = Stamp::of(live.room.airport(), now);
        let actions = batch.deliver(saved.is_ok(), stamp);
        let sends = self.perform(live, actions);
        if saved.is_err() {
            *guard = None;
            return false;
        }
        if wrote {
            live.outbox.committed(now, sends);
        }
        true
    }

    /// Sends and closes; returns the number of packets sent.
    fn perform(&self, live: &mut Live, actions: Vec<Action>) -> u32 {
        let mut sends = 0;
        for action in actions {
            match action {
                Action::Send {
                    to: To::Socket(id),
                    packet,
                } => {
                    if let Some(ws) = live.sockets.get(&id) {
                        sends += u32::from(ws.send_with_str(&packet).is_ok());
                    }
                }
                Action::Send { to, packet } => {
                    let except = match to {
                        To::All { except } | To::Controllers { except } => except,
                        To::Socket(_) | To::PilotsAndObservers => None,
                    };
                    let except = except.and_then(|id| live.sockets.get(&id));
                    sends += sockets::send_to_group(&self.state, to, except, &packet);
                }
                Action::Close {
                    socket,
                    code,
                    reason,
                } => {
                    let Some(ws) = live.sockets.remove(&socket) else {
                        continue;
                    };
                    if let Some(mut attachment) = sockets::attachment(&ws) {
                        attachment.left = true;
                        let _ = sockets::save_attachment(&ws, &attachment);
                    }
                    let _ = ws.close(Some(code.code()), Some(&reason));
                }
            }
        }
        sends
    }

    /// After an event: the alarm at the room's next wake-up, the directory up to date.
    async fn settle(&self) -> Result<()> {
        self.sync_directory();
        self.sync_alarm().await
    }

    /// Keeps the one alarm at the room's next wake-up. An alarm earlier than needed only
    /// recomputes; a later one would miss a deadline.
    async fn sync_alarm(&self) -> Result<()> {
        let wanted = {
            let guard = self.live.borrow();
            let Some(live) = guard.as_ref() else {
                return Ok(());
            };
            let wanted = live.room.next_wake();
            if wanted == live.alarm_at {
                return Ok(());
            }
            wanted
        };
        self.set_alarm(wanted).await
    }

    async fn set_alarm(&self, at: Option<i64>) -> Result<()> {
        let storage = self.state.storage();
        match at {
            Some(at) => {
                let when = js_sys::Date::new(&wasm_bindgen::JsValue::from_f64(at as f64));
                storage.set_alarm(ScheduledTime::new(when)).await?
            }
            None => storage.delete_alarm().await?,
        }
        if let Some(live) = self.live.borrow_mut().as_mut() {
            live.alarm_at = at;
        }
        Ok(())
    }

    /// Brings the airport's directory entry up to date with how it stands now (in the
    /// background).
    fn sync_directory(&self) {
        let wanted = {
            let guard = self.live.borrow();
            let Some(live) = guard.as_ref() else {
                return;
            };
            let room = &live.room;
            (room.icao().clone(), room.listing(), room.airport().seq())
        };
        self.directory.update(wanted, || {
            (self.env.d1("DB").ok(), self.state.storage().sql())
        });
    }

    async fn serve(&self, req: Request) -> std::result::Result<Response, HttpError> {
        let internal = |e: Error| HttpError::Internal(e.to_string());
        match req.path().as_str() {
            "/state" => {
                let icao = handoff::read_airport(&req).map_err(internal)?;
                self.public_state(icao).await.map_err(internal)
            }
            "/connect" => self.accept(&req).await,
            _ => Err(HttpError::NotFound),
        }
    }

    /// The public state (PROTOCOL §6) for the Worker's `GET /state`. The Worker asks only
    /// for an airport its directory does not list as dormant, and an airport that was never
    /// stored is not created here.
    async fn public_state(&self, icao: Icao) -> Result<Response> {
        console_log!("{{\"event\":\"state_read\",\"airport\":\"{}\"}}", icao);
        self.ensure_live(None).await?;
        self.flush();
        let (body, live) = match self.live.borrow_mut().as_mut() {
            Some(live) => (live.room.public_state(), live.room.presence().is_live()),
            None => (dormant_state(icao, 0), false),
        };
        self.sync_directory();
        let response = json_response(body)?;
        response
            .headers()
            .set(LIVE_HEADER, if live { "1" } else { "0" })?;
        Ok(response)
    }

    /// A WebSocket upgrade the Worker has authenticated: the role source decides the session,
    /// the room admits it, and `INITIAL_STATE` is the socket's first packet.
    async fn accept(&self, req: &Request) -> std::result::Result<Response, HttpError> {
        let internal = |e: Error| HttpError::Internal(e.to_string());
        let identity = handoff::read_identity(req).map_err(internal)?;
        self.ensure_live(Some(&identity.airport))
            .await
            .map_err(internal)?;
        let source = &self.config().map_err(internal)?.role_source;
        let cid = &identity.session.cid;
        let network = network_standing(&self.env, source, cid).await;
        let session = self
            .with_room(|room| room.session_for(identity.session, network))
            .map_err(internal)??;
        // What the new socket sees is durable, and no older broadcast reaches it.
        self.flush();
        let now = now();
        let pair = WebSocketPair::new().map_err(internal)?;
        let id = sockets::new_socket_id();
        let role = session.role;
        let effects = {
            let mut guard = self.live.borrow_mut();
            let live = guard.as_mut().ok_or(HttpError::NotFound)?;
            let effects = live.room.connect(id, session, identity.key_hash, now)?;
            self.state
                .accept_websocket_with_tags(&pair.server, &[role.as_str()]);
            live.sockets.insert(id, pair.server.clone());
            effects
        };
        // Committed at once: nothing may reach the socket before its INITIAL_STATE.
        self.queue(effects, now);
        if !self.flush() {
            let _ = pair
                .server
                .close(Some(CloseCode::Internal.code()), Some("internal error"));
            return Err(HttpError::Internal("the airport could not be saved".into()));
        }
        self.settle().await.map_err(internal)?;
        Response::from_websocket(pair.client).map_err(internal)
    }
}
