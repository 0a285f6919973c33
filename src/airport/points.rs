//! The airport's equivalent points, read from the running service's `points` table in its own
//! database (binding `NETWORK_DB`, only read). Without that binding nothing here runs and no
//! point has an equivalent. The grouping is stored with the airport, so that a wake-up from
//! hibernation has it without a read; it is read again when an event finds it older than
//! `POINTS_REFRESH_MS`, in the background (the events until then use the grouping they have).
//! A failed read keeps the previous grouping and is tried again after the same time.

use crate::airport::storage;
use crate::log_event;
use airport_protocol::Icao;
use airport_protocol::equivalence::{Equivalence, PointRow, refresh_due};
use std::cell::Cell;
use worker::{D1Database, Env, Result, SqlStorage};

/// The binding of the running service's database.
const NETWORK_DB: &str = "NETWORK_DB";

/// The running service's database, if the Worker has it.
pub fn network_db(env: &Env) -> Option<D1Database> {
    env.d1(NETWORK_DB).ok()
}

/// When the points were last read (or a read was tried), and whether one is under way.
#[derive(Default)]
pub struct PointsReads {
    read_at: Cell<Option<i64>>,
    reading: Cell<bool>,
}

impl PointsReads {
    /// When storage says the points were last read, after a wake-up.
    pub fn restore(&self, read_at: Option<i64>) {
        self.read_at.set(read_at);
    }

    /// Whether they were never read.
    pub fn never_read(&self) -> bool {
        self.read_at.get().is_none()
    }

    /// Whether a read is due and none is under way.
    pub fn due(&self, now: i64, refresh_ms: i64) -> bool {
        !self.reading.get() && refresh_due(self.read_at.get(), now, refresh_ms)
    }

    /// A read starts at `now`.
    pub fn start(&self, now: i64) {
        self.reading.set(true);
        self.read_at.set(Some(now));
    }

    /// Reads the airport's points (a read started at `now`) and stores the grouping; `None`
    /// (logged) when the read failed.
    pub async fn read(
        &self,
        db: &D1Database,
        sql: &SqlStorage,
        icao: &Icao,
        now: i64,
    ) -> Option<Equivalence> {
        let read = read(db, icao).await;
        self.reading.set(false);
        let equivalence = read
            .inspect_err(|error| log_event::airport_failure("points_read_failed", icao, error))
            .ok()?;
        if let Err(error) = storage::set_points(sql, &equivalence, now) {
            log_event::airport_failure("points_store_failed", icao, error);
        }
        let groups = equivalence.groups().len() as u64;
        log_event::airport("points_read", icao, &[("groups", groups)]);
        Some(equivalence)
    }
}

/// The airport's points, grouped. `airport_id` is matched in upper and lower case, which keeps
/// the query on the table's index (the rule's case-insensitive match of a mixed spelling would
/// read every airport's points).
async fn read(db: &D1Database, icao: &Icao) -> Result<Equivalence> {
    let rows: Vec<PointRow> = db
        .prepare(
            "SELECT id, airport_id, type, coordinates, directionality, color, elevated, ihp \
             FROM points WHERE airport_id IN (?1, ?2)",
        )
        .bind(&[
            icao.as_str().into(),
            icao.as_str().to_ascii_lowercase().into(),
        ])?
        .all()
        .await?
        .results()?;
    Ok(Equivalence::of(rows))
}
