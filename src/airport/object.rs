//! The airport's Durable Object: thin glue around the core's [`Room`]. It maps socket ids to
//! WebSockets, commits the room's writes to SQLite (one commit path for every event), carries
//! out the actions once they are durable, keeps the one alarm at the room's `next_wake`, and
//! serves `fetch`. Sockets use the hibernation API: everything needed after an eviction lives
//! in storage and in each socket's attachment. Hooks log failures and survive them.

use crate::airport::awake::Awake;
use crate::airport::metrics;
use crate::airport::points::{self, PointsReads};
use crate::airport::sockets::{self as sockets, Sockets};
use crate::airport::storage::{self, Tables};
use crate::directory::entry::DirectoryEntry;
use crate::gateway::log_internal;
use crate::handoff::{self, error_response};
use crate::log_event;
use crate::now_ms as now;
use crate::people::accounts::{self, PresentedKey, authenticate_connect};
use crate::people::batch_lookup::BatchLookup;
use crate::people::person_lookup::network_standing;
use crate::people::standings;
use airport_protocol::account::Account;
use airport_protocol::config::{Config, ConfigError};
use airport_protocol::connect::HttpError;
use airport_protocol::directory::dormant_state;
use airport_protocol::effects::Effects;
use airport_protocol::history::ResumeRequest;
use airport_protocol::liveness::ALARM_RETRY_MS;
use airport_protocol::metrics::{Commit, Tick};
use airport_protocol::outbound::Stamp;
use airport_protocol::outbox::{Next, Outbox};
use airport_protocol::packet::Frame;
use airport_protocol::recheck::{answers_limit_ms, session_at};
use airport_protocol::room::{Answers, Recheck};
use airport_protocol::{CloseCode, Icao, NeedsObjects, Room, RowsToRead, StoreOp};
use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::Duration;
use worker::*;

/// The airport in memory; rebuilt from storage and the sockets' attachments after every
/// restart or hibernation, and after a failed write.
struct Live {
    room: Room,
    sockets: Sockets,
    outbox: Outbox,
    /// The alarm as last set, so that most events need no storage call to keep it right.
    alarm_at: Option<i64>,
}

#[durable_object]
pub struct AirportObject {
    state: State,
    env: Env,
    config: std::result::Result<Rc<Config>, ConfigError>,
    live: Rc<RefCell<Option<Live>>>,
    /// The airport's entry in the D1 directory.
    directory: Rc<DirectoryEntry>,
    /// The accounts of the keys connecting, looked up in batches.
    accounts: BatchLookup<PresentedKey, Account>,
    recheck: Rc<RecheckAnswers>,
    /// Reads of the points table, for the grouping of equivalent points.
    points: Rc<PointsReads>,
    /// Whether the Worker has the running service's database (NETWORK_DB): without it, no
    /// point has an equivalent.
    network: bool,
    /// How long the object is awake: every hook and background task holds it while it runs.
    awake: Rc<Awake>,
}

/// A re-check's look-ups run beside the alarms, never in their way: heartbeats and idle closes
/// do not wait for the network or D1. The answers wait here for the next alarm, which is set
/// for as soon as they are in.
#[derive(Default)]
struct RecheckAnswers {
    asking: Cell<bool>,
    answers: RefCell<Option<Answers>>,
}

/// A hook's failure is logged and survived: propagated, it would reset the object.
fn survive(event: &str, result: Result<()>) -> Result<()> {
    if let Err(error) = result {
        log_event::failure(event, error);
    }
    Ok(())
}

impl DurableObject for AirportObject {
    fn new(state: State, env: Env) -> Self {
        let config = handoff::config(&env);
        // With bad settings nothing is looked up: `accept` refuses first.
        let key_source = config.as_ref().map(|c| c.key_source).unwrap_or_default();
        AirportObject {
            state,
            config,
            live: Rc::default(),
            directory: Rc::default(),
            accounts: accounts::connect_lookup(&env, key_source),
            recheck: Rc::default(),
            points: Rc::default(),
            network: points::network_db(&env).is_some(),
            awake: Rc::default(),
            env,
        }
    }

    async fn fetch(&self, req: Request) -> Result<Response> {
        let _awake = self.awake.stay();
        (self.serve(req).await).or_else(|error| {
            log_internal(&error);
            error_response(&error)
        })
    }

    async fn websocket_message(
        &self,
        ws: WebSocket,
        message: WebSocketIncomingMessage,
    ) -> Result<()> {
        let _awake = self.awake.stay();
        survive("message_failed", self.on_message(&ws, message).await)
    }

    async fn websocket_close(
        &self,
        ws: WebSocket,
        _code: usize,
        _reason: String,
        _was_clean: bool,
    ) -> Result<()> {
        let _awake = self.awake.stay();
        survive("close_failed", self.on_gone(&ws).await)
    }

    async fn websocket_error(&self, ws: WebSocket, _error: Error) -> Result<()> {
        let _awake = self.awake.stay();
        survive("close_failed", self.on_gone(&ws).await)
    }

    async fn alarm(&self) -> Result<Response> {
        let _awake = self.awake.stay();
        match self.on_alarm().await {
            Ok(done) => Response::ok(done),
            Err(error) => {
                // The alarm is spent: set another so that the airport's deadlines still run.
                log_event::failure("alarm_failed", &error);
                self.set_alarm(Some(now() + ALARM_RETRY_MS)).await?;
                Response::ok("retrying")
            }
        }
    }
}

impl AirportObject {
    fn config(&self) -> Result<&Config> {
        self.config
            .as_deref()
            .map_err(|error| Error::RustError(error.to_string()))
    }

    async fn on_message(&self, ws: &WebSocket, message: WebSocketIncomingMessage) -> Result<()> {
        // A socket this wake-up has seen is found without reading its attachment. The frames
        // of one that has left (closed for flooding, say) do not get here: the Worker's entry
        // drops them (src/entry.mjs).
        let known = self
            .live
            .borrow()
            .as_ref()
            .and_then(|live| live.sockets.find(ws));
        let id = match known {
            Some(id) => id,
            None => {
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
                attachment.id
            }
        };
        let frame = match &message {
            WebSocketIncomingMessage::String(text) => Frame::Text(text),
            WebSocketIncomingMessage::Binary(bytes) => Frame::Binary(bytes),
        };
        let now = now();
        let effects = match self.with_room(|room| room.frame(id, frame, now))? {
            Ok(effects) => effects,
            // The first frame of a wake-up that reads the objects: read them, then hand it in.
            Err(NeedsObjects) => {
                self.read_objects()?;
                self.with_room(|room| room.frame(id, frame, now))?
                    .map_err(|needs| Error::RustError(needs.to_string()))?
            }
        };
        self.carry_out(effects, now).await;
        self.settle().await
    }

    /// The client closed or the socket failed.
    async fn on_gone(&self, ws: &WebSocket) -> Result<()> {
        if let Some(attachment) = sockets::attachment(ws)
            && !attachment.left
            && self.ensure_live(None).await?
        {
            let (now, id) = (now(), attachment.id);
            sockets::mark_left(ws, attachment);
            let effects = self.with_room(|room| room.leave(id, now))?;
            if let Some(live) = self.live.borrow_mut().as_mut() {
                live.sockets.remove(id);
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
        let answered = self.recheck.answers.take();
        let (effects, questions) = self.with_room(|room| {
            let mut effects = Effects::default();
            if let Some(answers) = &answered {
                effects = room.rechecked(answers, now);
            }
            let (liveness, questions) = room.alarm(now);
            effects.extend(liveness);
            (effects, questions)
        })?;
        self.carry_out(effects, now).await;
        if self.live.borrow().is_none() {
            return Err("the airport's writes failed".into());
        }
        self.settle().await?;
        if let Some(questions) = questions {
            self.ask(questions)?;
        }
        Ok("ok")
    }

    /// Starts a re-check's look-ups in the background, unless the last one is still out (its
    /// time limit is far below the re-check interval; this one then only answers "unknown").
    fn ask(&self, questions: Recheck) -> Result<()> {
        if self.recheck.asking.replace(true) {
            return Ok(());
        }
        let config = self.config()?.clone();
        let (env, storage) = (self.env.clone(), self.state.storage());
        let (recheck, live) = (Rc::clone(&self.recheck), Rc::clone(&self.live));
        self.awake.in_background(async move {
            let limit = answers_limit_ms(&config.role_source);
            let answers = standings::answers(&env, &config, &questions, limit).await;
            *recheck.answers.borrow_mut() = Some(answers);
            recheck.asking.set(false);
            let set_before = live.borrow().as_ref().map(|live| live.alarm_at);
            let at = now();
            if let Err(error) = schedule_alarm(&storage, Some(at)).await {
                log_event::failure("alarm_failed", error);
                return;
            }
            // Unless an event set the alarm meanwhile (then the answers wait for that one).
            if let Some(live) = live.borrow_mut().as_mut()
                && Some(live.alarm_at) == set_before
            {
                live.alarm_at = Some(at);
            }
        });
        Ok(())
    }

    fn with_room<R>(&self, event: impl FnOnce(&mut Room) -> R) -> Result<R> {
        let mut guard = self.live.borrow_mut();
        let live = guard.as_mut().ok_or("airport not loaded")?;
        Ok(event(&mut live.room))
    }

    /// Reads the objects' rows into the room, once per wake-up, for the first event that needs
    /// them; nothing if they are read, or if the airport is not in memory. A failed read leaves
    /// the room as it was: the event fails, as a failed load does.
    fn read_objects(&self) -> Result<()> {
        let mut guard = self.live.borrow_mut();
        let Some(live) = guard
            .as_mut()
            .filter(|live| !live.room.airport().objects_read())
        else {
            return Ok(());
        };
        let objects = storage::read_objects(&self.state.storage().sql())?;
        live.room.read_objects(objects);
        let count = live.room.airport().object_count() as u64;
        log_event::airport("objects_read", live.room.icao(), &[("objects", count)]);
        Ok(())
    }

    /// Reads the rows a connect needs ([`Room::rows_for_connect`]): a resume the log can serve
    /// reads only those changed after its `seq`, and leaves the objects unread. Not logged: a
    /// line costs a wake-up's connect about half a millisecond locally (BENCHMARKS.md §3), and
    /// a full read, the costly one, is (`objects_read`).
    fn read_for_connect(&self, resume: Option<&ResumeRequest>) -> Result<()> {
        let needed = self.with_room(|room| room.rows_for_connect(resume));
        let Ok(Some(RowsToRead::ChangedSince(since))) = needed else {
            return self.read_objects();
        };
        let changed = storage::read_changed_objects(&self.state.storage().sql(), since)?;
        self.with_room(|room| room.read_changed_objects(since, changed))
    }

    /// Loads the airport (its objects' rows left for [`Self::read_objects`]) and its sockets
    /// once per wake-up; false if none is stored. Storage, migrations included, is first
    /// touched here: a connect refused for its key writes nothing.
    async fn ensure_live(&self, icao: Option<&Icao>) -> Result<bool> {
        if self.live.borrow().is_some() {
            return Ok(true);
        }
        let alarm_at = self.state.storage().get_alarm().await?;
        // Connects whose keys came in one batch resume together: the first loads.
        if self.live.borrow().is_some() {
            return Ok(true);
        }
        // A failed migration is rolled back and logged; the load then reads what there is.
        let tables = storage::migrate(&self.state.storage()).unwrap_or_else(|error| {
            log_event::failure("migrate_failed", error);
            Tables::Existing
        });
        let now = now();
        let config = self.config()?.clone();
        let Some(stored) = storage::load(&self.state.storage().sql(), icao, tables)? else {
            return Ok(false);
        };
        let (sockets, attachments) = Sockets::present(&self.state);
        let (mut room, effects) =
            Room::restore(config, stored.airport, stored.schedule, attachments, now);
        if self.network {
            let (equivalence, read_at) = stored.points;
            room.set_equivalence(equivalence);
            self.points.restore(read_at);
        }
        let airport = room.airport();
        let counts = [
            ("sockets", sockets.len() as u64),
            ("seq", airport.seq()),
            ("objects", airport.object_count() as u64),
            ("objects_read", u64::from(airport.objects_read())),
        ];
        let icao = room.icao().clone();
        self.after_replies(async move { log_event::airport("airport_loaded", &icao, &counts) });
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
        let next = self.queue(effects, now);
        if let Some(Next::FlushSoon) = next {
            Delay::from(Duration::ZERO).await;
        }
        if let Some(Next::Flush | Next::FlushSoon) = next {
            self.flush();
        }
    }

    /// Stores the attachments and queues the rest; `None` if the airport is not in memory.
    fn queue(&self, effects: Effects, now: i64) -> Option<Next> {
        let mut guard = self.live.borrow_mut();
        let live = guard.as_mut()?;
        live.sockets.save(&effects.attachments);
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
        let started = now();
        let saved = storage::write(&self.state.storage(), writes);
        if let Err(error) = &saved {
            log_event::failure("storage_failed", error);
        } else if cleared {
            let seq = live.room.airport().seq();
            log_event::airport("offline_cleared", live.room.icao(), &[("seq", seq)]);
        }
        let now = now();
        let stamp = Stamp::of(live.room.airport(), now);
        let actions = batch.deliver(saved.is_ok(), stamp);
        let sends = live.sockets.perform(&self.state, &actions);
        let commit = wrote.then_some(Commit {
            ms: now - started,
            saved: saved.is_ok(),
        });
        live.room.metrics().delivered(&actions, sends, commit, now);
        if saved.is_err() {
            metrics::write(&self.env, &live.room.end_metrics(now));
            *guard = None;
            return false;
        }
        if wrote {
            live.outbox.committed(now, sends);
        }
        true
    }

    /// After an event: the directory entry brought up to date (in the background), and the
    /// one alarm at the room's next wake-up. An alarm earlier than needed only recomputes; a
    /// later one would miss a deadline.
    async fn settle(&self) -> Result<()> {
        self.refresh_points(now()).await;
        let Some(entry) = self.live.borrow().as_ref().map(|live| {
            let room = &live.room;
            (room.icao().clone(), room.listing(), room.airport().seq())
        }) else {
            return Ok(());
        };
        let open = || (self.env.d1("DB").ok(), self.state.storage().sql());
        self.directory.update(entry, open, &self.awake);
        let tick = self.live.borrow_mut().as_mut().map(|live| {
            live.room.metrics().awake(self.awake.take());
            live.room.metrics_tick(now())
        });
        if let Some(Tick::Write(window)) = tick {
            metrics::write(&self.env, &window);
        }
        // After the window's write: a window just written is no reason for another alarm.
        let Some((wake, liveness, alarm_at)) = self.live.borrow().as_ref().map(|live| {
            let room = &live.room;
            (room.alarm_at(), room.next_wake(), live.alarm_at)
        }) else {
            return Ok(());
        };
        // An alarm earlier than needed only recomputes, so one that is set stays until it is
        // later than needed: a busy airport, whose metrics window is due a little later after
        // every frame, does not set its alarm again for each.
        let serves = |needed: Option<i64>| match (needed, alarm_at) {
            (Some(needed), Some(set)) => set <= needed,
            (None, None) => true,
            _ => false,
        };
        match wake {
            _ if serves(wake) => Ok(()),
            // The alarm set serves the liveness deadlines (so it is not the alarm's own event,
            // which cleared it): only the metrics window wants it earlier.
            Some(window) if alarm_at.is_some() && serves(liveness) => {
                self.set_alarm_after_replies(window);
                Ok(())
            }
            _ => self.set_alarm(wake).await,
        }
    }

    /// Moves the alarm to `at` after the event's replies ([`Self::after_replies`]): for the
    /// metrics window, which no client waits for. Locally the move was 2 ms of a connect that
    /// woke the airport (BENCHMARKS.md §3). An event that sets the alarm before it runs has set
    /// what it needed, and wins.
    fn set_alarm_after_replies(&self, at: i64) {
        if let Some(live) = self.live.borrow_mut().as_mut() {
            live.alarm_at = Some(at);
        }
        let (storage, live) = (self.state.storage(), Rc::clone(&self.live));
        self.after_replies(async move {
            let unchanged = || {
                live.borrow()
                    .as_ref()
                    .is_some_and(|l| l.alarm_at == Some(at))
            };
            if !unchanged() {
                return;
            }
            if let Err(error) = schedule_alarm(&storage, Some(at)).await {
                log_event::failure("alarm_failed", error);
                // Not set: the next event sets it again.
                if unchanged()
                    && let Some(live) = live.borrow_mut().as_mut()
                {
                    live.alarm_at = None;
                }
            }
        });
    }

    /// Runs `work` once the event's replies have left: after a zero-delay timer, holding the
    /// object awake meanwhile. For what no client waits for, which would otherwise delay them.
    fn after_replies(&self, work: impl Future<Output = ()> + 'static) {
        self.awake.in_background(async move {
            Delay::from(Duration::ZERO).await;
            work.await;
        });
    }

    /// Reads the points table again when it is due ([`PointsReads::refresh`]); nothing
    /// without NETWORK_DB.
    async fn refresh_points(&self, now: i64) {
        let Ok(config) = self.config() else {
            return;
        };
        if !self.network || !self.points.due(now, config.points_refresh_ms) {
            return;
        }
        let Some(icao) = self.live.borrow().as_ref().map(|l| l.room.icao().clone()) else {
            return;
        };
        let (live, awake) = (Rc::clone(&self.live), self.awake.stay());
        // Owned by the read (in the background but for the first): awake until it ends.
        let apply = move |equivalence| {
            let _awake = awake;
            if let Some(live) = live.borrow_mut().as_mut() {
                live.room.regroup(equivalence);
            }
        };
        let sql = self.state.storage().sql();
        PointsReads::refresh(&self.points, &self.env, sql, icao, now, apply).await;
    }

    async fn set_alarm(&self, at: Option<i64>) -> Result<()> {
        schedule_alarm(&self.state.storage(), at).await?;
        if let Some(live) = self.live.borrow_mut().as_mut() {
            live.alarm_at = at;
        }
        Ok(())
    }

    async fn serve(&self, req: Request) -> std::result::Result<Response, HttpError> {
        match req.path().as_str() {
            "/state" => {
                let icao = handoff::read_airport(&req).map_err(HttpError::internal)?;
                self.public_state(icao).await.map_err(HttpError::internal)
            }
            "/connect" => self.accept(&req).await,
            _ => Err(HttpError::NotFound),
        }
    }

    /// The public state (PROTOCOL §6) for the Worker's `GET /state`. The Worker asks only
    /// for an airport its directory does not list as dormant, and an airport that was never
    /// stored is not created here.
    async fn public_state(&self, icao: Icao) -> Result<Response> {
        log_event::airport("state_read", &icao, &[]);
        self.ensure_live(None).await?;
        self.read_objects()?;
        self.flush();
        let (body, live) = match self.live.borrow_mut().as_mut() {
            Some(live) => {
                let body = (live.room.public_state())
                    .map_err(|needs| Error::RustError(needs.to_string()))?;
                (body, live.room.presence().is_live())
            }
            None => (dormant_state(icao, 0), false),
        };
        self.settle().await?;
        handoff::state_response(body, live)
    }

    /// A WebSocket upgrade: the key and the role source's session first (a connection refused
    /// for either stores nothing, not even the airport), then the room's admission;
    /// `INITIAL_STATE` is the socket's first packet.
    async fn accept(&self, req: &Request) -> std::result::Result<Response, HttpError> {
        let connecting = handoff::read_connecting(req).map_err(HttpError::internal)?;
        let config = self
            .config
            .as_ref()
            .map_err(|e| HttpError::Misconfigured(e.clone()))?;
        let account = authenticate_connect(&self.accounts, &connecting.key, now()).await?;
        let source = &config.role_source;
        let network = network_standing(&self.env, source, &account.cid).await;
        let session = session_at(source, &connecting.airport, account.session(), network)?;
        self.ensure_live(Some(&connecting.airport))
            .await
            .map_err(HttpError::internal)?;
        // What its INITIAL_STATE shows.
        (self.read_for_connect(connecting.resume.as_ref())).map_err(HttpError::internal)?;
        // What the new socket sees is durable, and no older broadcast reaches it.
        self.flush();
        let (now, id) = (now(), sockets::new_socket_id());
        let pair = WebSocketPair::new().map_err(HttpError::internal)?;
        let role = session.role;
        let effects = {
            let mut guard = self.live.borrow_mut();
            let live = guard.as_mut().ok_or(HttpError::NotFound)?;
            let resume = connecting.resume.as_ref();
            let effects = live
                .room
                .connect(id, session, connecting.key.hash, resume, now)?;
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
        self.settle().await.map_err(HttpError::internal)?;
        handoff::upgrade_response(pair.client, connecting.protocol.as_deref())
            .map_err(HttpError::internal)
    }
}

/// Sets the object's one alarm to `at`, or deletes it.
async fn schedule_alarm(storage: &Storage, at: Option<i64>) -> Result<()> {
    match at {
        Some(at) => {
            let when = js_sys::Date::new(&wasm_bindgen::JsValue::from_f64(at as f64));
            storage.set_alarm(ScheduledTime::new(when)).await
        }
        None => storage.delete_alarm().await,
    }
}
