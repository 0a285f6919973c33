//! The airport's Durable Object: thin glue that turns the protocol core's effects into socket
//! sends, SQLite writes and one alarm. Sockets use the hibernation API: the object may be
//! evicted between events, and everything it needs afterwards lives in storage and in each
//! socket's attachment.

mod listing;
mod network;
mod sockets;
mod storage;

use crate::accounts::account_for_key_hash;
use crate::handoff::{self, LIVE_HEADER, error_response, json_response};
use crate::protocol::coalesce::ChangeRun;
use crate::protocol::config::{Config, ConfigError, RoleSource};
use crate::protocol::connect::HttpError;
use crate::protocol::directory::{Listing, dormant_state};
use crate::protocol::liveness::{
    Clock, Schedule, is_idle, next_alarm, periodic_plan, restored_last_seen, should_store_last_seen,
};
use crate::protocol::machine::{self, CloseCode, Effects};
use crate::protocol::outbound::{self, Stamp};
use crate::protocol::packet::Frame;
use crate::protocol::presence::CapExceeded;
use crate::protocol::rate_limit::TokenBucket;
use crate::protocol::recheck::{KeyStanding, NetworkStanding, Verdict, verdict};
use crate::protocol::vatsim::resolve;
use crate::protocol::write_batch::{self, LastCommit};
use crate::protocol::{Airport, Cid, Icao, PacketError, Presence, Session, StoreOp};
use listing::DirectoryEntry;
use network::StatusClient;
use sockets::{Attachment, Recipients};
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;
use std::time::Duration;
use worker::*;

/// What the object keeps in memory between events; rebuilt from storage and the sockets'
/// attachments after every restart or hibernation.
struct Live {
    airport: Airport,
    presence: Presence,
    /// When each socket was last heard from; exact while in memory.
    clock: Clock,
    schedule: Schedule,
    /// The alarm as last set, so that most events need no storage read to keep it right.
    alarm_at: Option<i64>,
}

#[durable_object]
pub struct AirportObject {
    state: State,
    env: Env,
    config: std::result::Result<Config, ConfigError>,
    live: RefCell<Option<Live>>,
    /// Per-socket token buckets. Memory only: a socket that was quiet long enough for the
    /// object to hibernate has a full bucket anyway.
    buckets: RefCell<HashMap<u64, TokenBucket>>,
    /// The network status service (`vatsim` role source), with its cache.
    status: StatusClient,
    /// Effects of handled frames waiting for one shared commit, in arrival order.
    outbox: RefCell<Vec<(WebSocket, Effects)>>,
    /// When the outbox last committed changes, to tell a burst of changes from a lone one.
    last_commit: Cell<Option<LastCommit>>,
    /// The airport's entry in the D1 directory.
    directory: Rc<DirectoryEntry>,
}

fn now() -> i64 {
    Date::now().as_millis() as i64
}

impl DurableObject for AirportObject {
    fn new(state: State, env: Env) -> Self {
        let config = Config::from_vars(|name| env.var(name).ok().map(|v| v.to_string()));
        if let Err(error) = storage::migrate(&state.storage()) {
            console_error!(
                "{{\"event\":\"migrate_failed\",\"detail\":{:?}}}",
                error.to_string()
            );
        }
        AirportObject {
            state,
            env,
            config,
            live: RefCell::new(None),
            buckets: RefCell::new(HashMap::new()),
            status: StatusClient::default(),
            outbox: RefCell::new(Vec::new()),
            last_commit: Cell::new(None),
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
        let now = now();
        let Some(mut attachment) = sockets::attachment(&ws) else {
            let _ = ws.close(Some(CloseCode::Internal.code()), Some("unknown socket"));
            return Ok(());
        };
        if attachment.left {
            return Ok(());
        }
        let config = self.config()?;
        if !self.ensure_live(None).await? {
            let _ = ws.close(Some(CloseCode::Internal.code()), Some("airport not found"));
            return Ok(());
        }
        // The attachment's copy only has to survive hibernation: refresh it now and then.
        if should_store_last_seen(attachment.last_seen, now) {
            attachment.last_seen = now;
            sockets::save_attachment(&ws, &attachment)?;
        }
        let frame = match &message {
            WebSocketIncomingMessage::String(text) => Frame::Text(text),
            WebSocketIncomingMessage::Binary(bytes) => Frame::Binary(bytes),
        };
        let effects = {
            let mut guard = self.live.borrow_mut();
            let live = guard.as_mut().ok_or("airport not loaded")?;
            live.clock.heard(attachment.id, now);
            let limit = config.rate_limits.for_role(attachment.session.role);
            let mut buckets = self.buckets.borrow_mut();
            let bucket = buckets
                .entry(attachment.id)
                .or_insert_with(|| TokenBucket::full(limit, now));
            machine::on_frame(
                &mut live.airport,
                &live.presence,
                &attachment.session,
                bucket,
                limit,
                frame,
                now,
            )
        };
        match effects.close {
            None if !effects.persist.is_empty() || !self.outbox.borrow().is_empty() => {
                if self.queue(&ws, effects) {
                    if write_batch::wait_for_more(self.last_commit.get(), now) {
                        // In a burst: frames that are already waiting get handled first and
                        // share the commit.
                        Delay::from(Duration::ZERO).await;
                    }
                    self.flush();
                }
            }
            close => {
                self.carry_out(&ws, effects);
                if let Some(code) = close {
                    self.leave(&ws, attachment, Some((code, code.reason())), now)
                        .await?;
                }
            }
        }
        // An alarm set for a socket's idle deadline is not needed once that socket spoke.
        if let Some(later) = self.alarm_can_wait(config) {
            self.set_alarm(later).await?;
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
        self.socket_gone(ws).await
    }

    async fn websocket_error(&self, ws: WebSocket, _error: Error) -> Result<()> {
        self.socket_gone(ws).await
    }

    async fn alarm(&self) -> Result<Response> {
        let now = now();
        let config = self.config()?;
        if !self.ensure_live(None).await? {
            return Response::ok("no airport");
        }
        self.flush();
        if let Some(live) = self.live.borrow_mut().as_mut() {
            live.alarm_at = None;
        }
        // Idle sockets first, so that they get no heartbeat.
        let mut open = 0usize;
        for ws in self.state.get_websockets() {
            let Some(attachment) = sockets::present(&ws) else {
                continue;
            };
            let last_seen = self
                .live
                .borrow()
                .as_ref()
                .and_then(|l| l.clock.last_heard(attachment.id))
                .unwrap_or_else(|| restored_last_seen(attachment.last_seen));
            if is_idle(last_seen, now, &config.timings) {
                let idle = CloseCode::Idle;
                self.leave(&ws, attachment, Some((idle, idle.reason())), now)
                    .await?;
            } else {
                open += 1;
            }
        }
        let recheck_due = self.live.borrow().as_ref().and_then(|l| l.schedule.recheck);
        let (recheck, next_recheck) = periodic_plan(recheck_due, open > 0, now, config.recheck_ms);
        if recheck {
            self.recheck(config, now).await?;
        }
        let wake_at = {
            let mut guard = self.live.borrow_mut();
            let live = guard.as_mut().ok_or("airport not loaded")?;
            let interval = config.timings.heartbeat_interval_ms;
            let (send, next_heartbeat) =
                periodic_plan(live.schedule.heartbeat, open > 0, now, interval);
            if send {
                let packet = outbound::heartbeat(Stamp::of(&live.airport, now));
                sockets::send_to(&self.state, Recipients::Everyone, None, &packet);
            }
            let sql = self.state.storage().sql();
            let schedule = Schedule {
                heartbeat: next_heartbeat,
                recheck: next_recheck,
            };
            if schedule != live.schedule {
                storage::set_schedule(&sql, &schedule)?;
                live.schedule = schedule;
            }
            if !live.presence.has_controllers() {
                let ops = live
                    .airport
                    .clear_if_due(now, config.timings.offline_grace_ms);
                let cleared = ops.contains(&StoreOp::ClearState);
                storage::write(&self.state.storage(), ops)?;
                if cleared {
                    console_log!(
                        "{{\"event\":\"offline_cleared\",\"airport\":\"{}\",\"seq\":{}}}",
                        live.airport.icao(),
                        live.airport.seq()
                    );
                }
            }
            next_alarm(
                live.schedule,
                live.clock.oldest(),
                live.airport
                    .offline_clear_due(config.timings.offline_grace_ms),
                &config.timings,
            )
        };
        match wake_at {
            Some(at) => self.set_alarm(at).await?,
            None => self.state.storage().delete_alarm().await?,
        }
        self.sync_directory();
        Response::ok("ok")
    }
}

impl AirportObject {
    fn config(&self) -> Result<&Config> {
        self.config
            .as_ref()
            .map_err(|error| Error::RustError(error.to_string()))
    }

    /// Loads the airport and rebuilds presence from the open sockets, once per wake-up.
    /// Returns false when there is no airport (an alarm for an object that never served one).
    async fn ensure_live(&self, icao: Option<&Icao>) -> Result<bool> {
        if self.live.borrow().is_some() {
            return Ok(true);
        }
        let sql = self.state.storage().sql();
        let Some(stored) = storage::load(&sql, icao)? else {
            return Ok(false);
        };
        let mut presence = Presence::default();
        let mut clock = Clock::default();
        for ws in self.state.get_websockets() {
            if let Some(attachment) = sockets::present(&ws) {
                presence.join(&attachment.session);
                clock.heard(attachment.id, restored_last_seen(attachment.last_seen));
            }
        }
        let mut airport = stored.airport;
        // State left behind with no controller (e.g. every socket dropped in a restart) waits
        // out the grace period like any other.
        if !presence.has_controllers() {
            storage::write(&self.state.storage(), airport.controllers_absent(now()))?;
        }
        let alarm_at = self.state.storage().get_alarm().await?;
        console_log!(
            "{{\"event\":\"airport_loaded\",\"airport\":\"{}\",\"sockets\":{},\"seq\":{}}}",
            airport.icao(),
            presence.total(),
            airport.seq()
        );
        let offline_due = self.config()?.timings.offline_grace_ms;
        let wanted = airport.offline_clear_due(offline_due);
        *self.live.borrow_mut() = Some(Live {
            airport,
            presence,
            clock,
            schedule: stored.schedule,
            alarm_at,
        });
        self.directory.restore(stored.listed);
        // After a restart that dropped every socket, the directory may still say live.
        self.sync_directory();
        if let Some(at) = wanted {
            self.lower_alarm(at).await?;
        }
        Ok(true)
    }

    /// Brings the airport's directory entry up to date with how it stands now (in the
    /// background).
    fn sync_directory(&self) {
        let wanted = {
            let guard = self.live.borrow();
            let Some(live) = guard.as_ref() else {
                return;
            };
            let listing = Listing::of(&live.airport, &live.presence);
            (live.airport.icao().clone(), listing, live.airport.seq())
        };
        self.directory.update(wanted, || {
            (self.env.d1("DB").ok(), self.state.storage().sql())
        });
    }

    /// The public state (PROTOCOL §6) for the Worker's `GET /state`. The Worker asks only
    /// for an airport its directory does not list as dormant, and an airport that was never
    /// stored is not created here.
    async fn public_state(&self, icao: Icao) -> std::result::Result<Response, HttpError> {
        let internal = |e: Error| HttpError::Internal(e.to_string());
        console_log!("{{\"event\":\"state_read\",\"airport\":\"{}\"}}", icao);
        let loaded = self.ensure_live(None).await.map_err(internal)?;
        self.flush();
        let (body, live) = match self.live.borrow().as_ref() {
            Some(live) if loaded => (
                outbound::public_state(&live.airport, &live.presence),
                live.presence.is_live(),
            ),
            _ => (dormant_state(icao, 0), false),
        };
        self.sync_directory();
        let response = json_response(body).map_err(internal)?;
        response
            .headers()
            .set(LIVE_HEADER, if live { "1" } else { "0" })
            .map_err(internal)?;
        Ok(response)
    }

    async fn serve(&self, req: Request) -> std::result::Result<Response, HttpError> {
        let internal = |e: Error| HttpError::Internal(e.to_string());
        match req.path().as_str() {
            "/state" => {
                return self
                    .public_state(handoff::read_airport(&req).map_err(internal)?)
                    .await;
            }
            "/connect" => {}
            _ => return Err(HttpError::NotFound),
        }
        let identity = handoff::read_identity(&req).map_err(internal)?;
        let icao = identity.airport;
        let config = self.config().map_err(internal)?;
        self.ensure_live(Some(&icao)).await.map_err(internal)?;
        let session = self.resolve_role(config, identity.session, &icao).await?;
        // What the new socket sees is durable, and no older broadcast reaches it.
        self.flush();
        let now = now();
        let pair = WebSocketPair::new().map_err(internal)?;
        let server = pair.server;
        let wake_at = {
            let mut guard = self.live.borrow_mut();
            let live = guard.as_mut().ok_or(HttpError::NotFound)?;
            live.presence
                .admit(&session.cid, &config.caps)
                .map_err(|exceeded| match exceeded {
                    CapExceeded::PerKey(limit) => HttpError::TooManyConnections {
                        scope: "sockets per API key at this airport",
                        limit,
                    },
                    CapExceeded::PerAirport(limit) => HttpError::TooManyConnections {
                        scope: "sockets at this airport",
                        limit,
                    },
                })?;
            self.state
                .accept_websocket_with_tags(&server, &[session.role.as_str()]);
            let id = sockets::new_socket_id();
            live.clock.heard(id, now);
            let attachment = Attachment {
                id,
                session: session.clone(),
                key_hash: identity.key_hash,
                last_seen: now,
                left: false,
            };
            sockets::save_attachment(&server, &attachment).map_err(internal)?;
            let mut joined = machine::on_join(
                &mut live.airport,
                &mut live.presence,
                &session,
                &config.timings,
                now,
            );
            storage::write(&self.state.storage(), std::mem::take(&mut joined.persist))
                .map_err(internal)?;
            // INITIAL_STATE is the first thing on the socket: nothing can be sent in between.
            let _ = server.send_with_str(&joined.initial_state);
            if let Some(announce) = &joined.announce {
                sockets::send_to(&self.state, Recipients::Others, Some(&server), announce);
            }
            if live.schedule.start(now, &config.timings, config.recheck_ms) {
                storage::set_schedule(&self.state.storage().sql(), &live.schedule)
                    .map_err(internal)?;
            }
            let idle_at = now + config.timings.idle_timeout_ms;
            next_alarm(live.schedule, Some(now), None, &config.timings).unwrap_or(idle_at)
        };
        self.lower_alarm(wake_at).await.map_err(internal)?;
        self.sync_directory();
        Response::from_websocket(pair.client).map_err(internal)
    }

    /// Carries out one event's effects now, after whatever is queued.
    fn carry_out(&self, sender: &WebSocket, effects: Effects) {
        self.queue(sender, effects);
        self.flush();
    }

    /// Queues a handled frame's effects for the next flush. Returns true when the outbox was
    /// empty, that is, when no flush is pending yet.
    fn queue(&self, sender: &WebSocket, effects: Effects) -> bool {
        let mut outbox = self.outbox.borrow_mut();
        outbox.push((sender.clone(), effects));
        outbox.len() == 1
    }

    /// Writes everything queued in one commit, then replies and broadcasts in order; the
    /// output gate holds those sends until the commit is durable. If the write fails, no
    /// change goes out: the in-memory state is forgotten (the next event reloads what is
    /// durable) and each sender of a change gets `ERROR INTERNAL`.
    fn flush(&self) {
        let mut entries = std::mem::take(&mut *self.outbox.borrow_mut());
        if entries.is_empty() {
            return;
        }
        let mut ops = Vec::new();
        let wrote: Vec<bool> = entries
            .iter_mut()
            .map(|(_, effects)| {
                let wrote = !effects.persist.is_empty();
                ops.append(&mut effects.persist);
                wrote
            })
            .collect();
        let committed = !ops.is_empty();
        let failure = storage::write(&self.state.storage(), write_batch::compact(ops))
            .err()
            .map(|error| self.forget_live(&error));
        let icao = self
            .live
            .borrow()
            .as_ref()
            .map(|l| l.airport.icao().clone());
        let stamp = Stamp {
            airport: icao.as_ref().map_or("", Icao::as_str),
            now: now(),
        };
        // Pilots and observers get consecutive changes as one packet; one entry goes as it is.
        let coalesce = entries.len() > 1;
        let mut run = ChangeRun::default();
        let mut sends = 0;
        for ((sender, effects), wrote) in entries.iter().zip(wrote) {
            match (&failure, &effects.broadcast, &effects.changes) {
                (Some(icao), ..) if wrote => {
                    let stamp = Stamp {
                        airport: icao.as_ref().map_or("", Icao::as_str),
                        ..stamp
                    };
                    let error =
                        PacketError::Internal("the change could not be saved; try again".into());
                    let request_id = effects.request_id.as_deref();
                    let _ = sender.send_with_str(outbound::error(stamp, &error, request_id));
                }
                (_, Some((_, packet)), Some(changes)) if coalesce => {
                    if let Some(reply) = &effects.reply {
                        let _ = sender.send_with_str(reply);
                    }
                    sends += sockets::send_to(
                        &self.state,
                        Recipients::OtherControllers,
                        Some(sender),
                        packet,
                    );
                    run.push(packet, changes);
                }
                _ => {
                    sends += self.send_run(run.take(stamp));
                    sends += self.send(sender, effects);
                }
            }
        }
        sends += self.send_run(run.take(stamp));
        if committed {
            self.last_commit.set(Some(LastCommit {
                at: stamp.now,
                sends,
            }));
        }
    }

    /// Sends a run of changes to pilots and observers; returns the number of sends.
    fn send_run(&self, packet: Option<String>) -> u32 {
        packet.map_or(0, |packet| {
            sockets::send_to(&self.state, Recipients::PilotsAndObservers, None, &packet)
        })
    }

    /// Sends an entry's reply and broadcast; returns the number of broadcast sends.
    fn send(&self, sender: &WebSocket, effects: &Effects) -> u32 {
        if let Some(reply) = &effects.reply {
            let _ = sender.send_with_str(reply);
        }
        effects.broadcast.as_ref().map_or(0, |(audience, packet)| {
            sockets::send_to(&self.state, (*audience).into(), Some(sender), packet)
        })
    }

    /// A storage write failed: drop the in-memory airport and return its code.
    fn forget_live(&self, error: &Error) -> Option<Icao> {
        let live = self.live.borrow_mut().take()?;
        let icao = live.airport.icao().clone();
        console_error!(
            "{{\"event\":\"storage_failed\",\"airport\":\"{}\",\"detail\":{:?}}}",
            icao,
            error.to_string()
        );
        Some(icao)
    }

    /// The client closed or the socket failed.
    async fn socket_gone(&self, ws: WebSocket) -> Result<()> {
        let Some(attachment) = sockets::attachment(&ws) else {
            return Ok(());
        };
        if !attachment.left && self.ensure_live(None).await? {
            self.leave(&ws, attachment, None, now()).await?;
        }
        // Complete the closing handshake; a socket that is already closed refuses, harmlessly.
        let _ = ws.close(Some(1000), Some("closed"));
        Ok(())
    }

    /// A socket leaves the airport, once: closed by the server with `close`, or gone.
    async fn leave(
        &self,
        ws: &WebSocket,
        mut attachment: Attachment,
        close: Option<(CloseCode, &str)>,
        now: i64,
    ) -> Result<()> {
        if attachment.left {
            return Ok(());
        }
        attachment.left = true;
        let _ = sockets::save_attachment(ws, &attachment);
        if let Some((code, reason)) = close {
            let _ = ws.close(Some(code.code()), Some(reason));
        }
        self.buckets.borrow_mut().remove(&attachment.id);
        let grace = self.config()?.timings.offline_grace_ms;
        let (effects, offline_due) = {
            let mut guard = self.live.borrow_mut();
            let Some(live) = guard.as_mut() else {
                return Ok(());
            };
            live.clock.forget(attachment.id);
            let effects = machine::on_leave(
                &mut live.airport,
                &mut live.presence,
                &attachment.session,
                now,
            );
            (effects, live.airport.offline_clear_due(grace))
        };
        self.carry_out(ws, effects);
        self.sync_directory();
        if let Some(at) = offline_due {
            self.lower_alarm(at).await?;
        }
        Ok(())
    }

    /// The role source: `static` keeps the role stored with the key; `vatsim` asks the network.
    async fn resolve_role(
        &self,
        config: &Config,
        stored: Session,
        airport: &Icao,
    ) -> std::result::Result<Session, HttpError> {
        let RoleSource::Vatsim(settings) = &config.role_source else {
            return Ok(stored);
        };
        match self.status.lookup(settings, &stored.cid, now()).await {
            NetworkStanding::Unreachable => Err(HttpError::UpstreamUnavailable),
            NetworkStanding::NotConnected => Err(HttpError::NotConnected),
            NetworkStanding::Connected(connections) => {
                let (role, callsign) = resolve(&connections, airport, settings.scope)
                    .ok_or(HttpError::NotConnected)?;
                Ok(Session {
                    cid: stored.cid,
                    role,
                    callsign: Some(callsign),
                })
            }
        }
    }

    /// Checks every live session again: key revoked (4001), banned or role changed (4003);
    /// a pilot's callsign is refreshed. Whatever cannot be asked right now keeps its session.
    async fn recheck(&self, config: &Config, now: i64) -> Result<()> {
        let present: Vec<(WebSocket, Attachment)> = self
            .state
            .get_websockets()
            .into_iter()
            .filter_map(|ws| sockets::present(&ws).map(|a| (ws, a)))
            .collect();
        let db = self.env.d1("DB").ok();
        let mut keys: HashMap<String, KeyStanding> = HashMap::new();
        let mut network: HashMap<Cid, NetworkStanding> = HashMap::new();
        for (_, attachment) in &present {
            if !keys.contains_key(&attachment.key_hash) {
                let standing = match &db {
                    Some(db) => match account_for_key_hash(db, &attachment.key_hash).await {
                        Ok(Some(account)) => KeyStanding::Valid(account),
                        Ok(None) => KeyStanding::Revoked,
                        Err(_) => KeyStanding::Unknown,
                    },
                    None => KeyStanding::Unknown,
                };
                keys.insert(attachment.key_hash.clone(), standing);
            }
            if let RoleSource::Vatsim(settings) = &config.role_source {
                let cid = &attachment.session.cid;
                if !network.contains_key(cid) {
                    let standing = self.status.lookup(settings, cid, now).await;
                    network.insert(cid.clone(), standing);
                }
            }
        }
        let Some(icao) = self
            .live
            .borrow()
            .as_ref()
            .map(|l| l.airport.icao().clone())
        else {
            return Ok(());
        };
        for (ws, _) in present {
            // Read again: the socket may have left while the look-ups were under way.
            let Some(mut attachment) = sockets::present(&ws) else {
                continue;
            };
            let key = keys
                .get(&attachment.key_hash)
                .unwrap_or(&KeyStanding::Unknown);
            let network = network
                .get(&attachment.session.cid)
                .unwrap_or(&NetworkStanding::Unreachable);
            match verdict(
                &attachment.session,
                key,
                network,
                &config.role_source,
                &icao,
                now,
            ) {
                Verdict::Keep => {}
                Verdict::NewCallsign(callsign) => {
                    if let Some(live) = self.live.borrow_mut().as_mut() {
                        live.presence.leave(&attachment.session);
                        attachment.session.callsign = Some(callsign);
                        live.presence.join(&attachment.session);
                    }
                    sockets::save_attachment(&ws, &attachment)?;
                }
                Verdict::Close { code, reason } => {
                    let stamp = Stamp {
                        airport: icao.as_str(),
                        now,
                    };
                    let error = PacketError::SessionEnded(reason.clone());
                    let _ = ws.send_with_str(outbound::error(stamp, &error, None));
                    self.leave(&ws, attachment, Some((code, &reason)), now)
                        .await?;
                }
            }
        }
        Ok(())
    }

    /// A later time for the pending alarm, when what it was set for has moved on (the socket
    /// whose idle deadline it was sent a frame). Not while the alarm handler runs.
    fn alarm_can_wait(&self, config: &Config) -> Option<i64> {
        let guard = self.live.borrow();
        let live = guard.as_ref()?;
        let pending = live.alarm_at?;
        let next = next_alarm(
            live.schedule,
            live.clock.oldest(),
            live.airport
                .offline_clear_due(config.timings.offline_grace_ms),
            &config.timings,
        )?;
        (next > pending).then_some(next)
    }

    /// Moves the alarm earlier if `at` is before it (an early alarm only recomputes).
    async fn lower_alarm(&self, at: i64) -> Result<()> {
        let current = self.live.borrow().as_ref().and_then(|l| l.alarm_at);
        if current.is_some_and(|current| current <= at) {
            return Ok(());
        }
        self.set_alarm(at).await
    }

    async fn set_alarm(&self, at: i64) -> Result<()> {
        let when = js_sys::Date::new(&wasm_bindgen::JsValue::from_f64(at as f64));
        self.state
            .storage()
            .set_alarm(ScheduledTime::new(when))
            .await?;
        if let Some(live) = self.live.borrow_mut().as_mut() {
            live.alarm_at = Some(at);
        }
        Ok(())
    }
}
