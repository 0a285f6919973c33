//! The scenarios of BENCHMARKS.md, one file each: fan-out latency, airport throughput, connect
//! cost, idle cost, profile-change burst, public /state, snapshot polling, a flood from one
//! socket, forged keys, a reconnect storm with and without `resume`, a wake-up for a heartbeat.
//! What they share is here (the targets, fresh airports, waiting for receipts, populating an
//! airport), in `runs.rs` (runs alternating between the targets, and their medians) and in
//! `report.rs` (the tables printed).

mod burst;
mod connect;
mod fanout;
mod flood;
mod forged;
mod idle;
mod poll;
mod reconnect;
mod report;
mod runs;
mod state;
mod throughput;
mod wake;

pub use idle::idle;

use crate::Args;
use crate::client::{
    CONTROLLER_KEYS, Kind, OTHER_KEYS, Opened, Rec, Shared, check_loopback, close_all, open,
};
use futures_util::{SinkExt, StreamExt};
use std::cell::Cell;
use std::fmt::Write as _;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio_tungstenite::tungstenite::Message;

pub struct Target {
    pub name: String,
    pub url: String,
    pub pid: Option<u32>,
    /// The real service (its INITIAL_STATE has objects); the floor and the native server keep
    /// no state.
    pub stateful: Cell<bool>,
}

impl Target {
    /// `NAME=ws://127.0.0.1:PORT[@PID]`
    pub fn parse(spec: &str) -> Result<Target, String> {
        let (name, rest) = spec
            .split_once('=')
            .ok_or_else(|| format!("target {spec}: expected NAME=URL[@PID]"))?;
        let (url, pid) = match rest.rsplit_once('@') {
            Some((url, pid)) => (
                url,
                Some(pid.parse().map_err(|_| format!("bad pid {pid}"))?),
            ),
            None => (rest, None),
        };
        let url = url.trim_end_matches('/').to_owned();
        check_loopback(&url)?;
        Ok(Target {
            name: name.to_owned(),
            url,
            pid,
            stateful: Cell::new(false),
        })
    }
}

thread_local! {
    static AIRPORTS: Cell<u32> = const { Cell::new(0) };
}

/// A never-used airport: a letter picked by the clock (so reruns against the same server differ)
/// and a base-36 counter.
fn fresh_airport() -> String {
    const DIGITS: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ";
    let n = AIRPORTS.with(|c| {
        let n = c.get();
        c.set(n + 1);
        n
    });
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let mut code = String::new();
    code.push((b'A' + ((secs / 60) % 26) as u8) as char);
    let mut rest = n % (36 * 36 * 36);
    let mut tail = [b'0'; 3];
    for slot in tail.iter_mut().rev() {
        *slot = DIGITS[(rest % 36) as usize];
        rest /= 36;
    }
    code.push_str(std::str::from_utf8(&tail).unwrap_or("000"));
    code
}

/// Waits until `expected(rec)` receipts have arrived, or nothing arrived for 2 s (at most 15 s).
async fn drain(rec: &Shared, expected: impl Fn(&Rec) -> u64) {
    let begin = Instant::now();
    loop {
        tokio::time::sleep(Duration::from_millis(20)).await;
        let r = rec.borrow();
        if r.received >= expected(&r) {
            return;
        }
        let quiet = r.last_receipt.map_or(begin.elapsed(), |t| t.elapsed());
        if quiet > Duration::from_secs(2) || begin.elapsed() > Duration::from_secs(15) {
            return;
        }
    }
}

/// The first demo controller, connected to `airport`.
async fn open_controller(t: &Target, airport: &str) -> Result<Opened, String> {
    open(&t.url, airport, CONTROLLER_KEYS[0], Duration::from_secs(30)).await
}

fn progress(line: &str) {
    eprintln!("[loadgen] {line}");
}

pub async fn bench(args: &Args) -> Result<(), String> {
    for t in &args.targets {
        let probe = open(
            &t.url,
            &fresh_airport(),
            OTHER_KEYS[2],
            Duration::from_secs(30),
        )
        .await
        .map_err(|e| format!("{}: {e}", t.name))?;
        t.stateful.set(probe.initial_len > 40);
        close_all(vec![probe.sink], vec![]).await;
    }
    let wants = |s: &str| args.only.is_empty() || args.only.iter().any(|o| o == s);
    let mut out = String::new();
    let _ = writeln!(
        out,
        "Targets: {}",
        args.targets
            .iter()
            .map(|t| format!("{} ({})", t.name, t.url))
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!("{out}");
    if wants("fanout") {
        fanout::section(args).await?;
    }
    if wants("throughput") || wants("throughput-single") {
        throughput::section(args, Kind::Single).await?;
    }
    if wants("throughput") || wants("throughput-multi") {
        throughput::section(args, Kind::Multi).await?;
    }
    if wants("connect") {
        connect::section(args, false).await?;
    } else if wants("herd") {
        connect::section(args, true).await?;
    }
    if wants("burst") {
        burst::section(args).await?;
    }
    if wants("flood") {
        flood::section(args).await?;
    }
    if wants("forged") {
        forged::section(args).await?;
    }
    if wants("state") {
        state::section(args).await?;
    }
    if wants("poll") {
        poll::section(args).await?;
    }
    if wants("reconnect") {
        reconnect::section(args).await?;
    }
    if wants("wake") {
        wake::section(args).await?;
    }
    Ok(())
}

/// Puts 10,000 objects in the airport: 50 MULTI_STATE_UPDATEs of 200 new objects (within the
/// rate limiter's burst of 60), then a GET_STATE round trip proves they were all applied.
async fn populate(controller: &mut Opened) -> Result<(), String> {
    populate_with(controller, 10_000).await
}

/// Sets `objects` (a multiple of 200) objects from the controller, and waits until they are in.
async fn populate_with(controller: &mut Opened, objects: usize) -> Result<(), String> {
    for batch in 0..objects / 200 {
        let items: Vec<String> = (0..200)
            .map(|i| {
                format!(
                    "{{\"objectId\":\"OBJ_{batch}_{i}\",\"state\":{{\"on\":{}}}}}",
                    i % 2 == 0
                )
            })
            .collect();
        let frame = format!(
            "{{\"type\":\"MULTI_STATE_UPDATE\",\"data\":{{\"updates\":[{}]}}}}",
            items.join(",")
        );
        controller
            .sink
            .send(Message::Text(frame.into()))
            .await
            .map_err(|e| e.to_string())?;
    }
    controller
        .sink
        .send(Message::Text(
            "{\"type\":\"GET_STATE\",\"requestId\":\"populated\"}".into(),
        ))
        .await
        .map_err(|e| e.to_string())?;
    let wait = async {
        while let Some(m) = controller.stream.next().await {
            if let Ok(Message::Text(t)) = m {
                if t.as_str().starts_with("{\"type\":\"ERROR\"") {
                    return Err(format!("populating: {}", &t.as_str()[..t.len().min(200)]));
                }
                if t.as_str().contains("\"requestId\":\"populated\"") {
                    let count = t.as_str().matches("\"OBJ_").count();
                    return if count == objects {
                        Ok(())
                    } else {
                        Err(format!("populated {count} objects, not {objects}"))
                    };
                }
            }
        }
        Err("closed while populating".to_string())
    };
    tokio::time::timeout(Duration::from_secs(60), wait)
        .await
        .map_err(|_| "populating timed out".to_string())?
}
