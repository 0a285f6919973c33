//! The airport's equivalent points, read from the running service's `points` table in its own
//! database (binding `NETWORK_DB`, only read). Without that binding nothing here runs and no
//! point has an equivalent. The grouping is stored with the airport, so that a wake-up from
//! hibernation has it without a read; it is read again when an event finds it older than
//! `POINTS_REFRESH_MS`, in the background (the events until then use the grouping they have).
//! A failed read keeps the previous grouping and is tried again after the same time.

use crate::airport::storage;
use crate::log_event;
use airport_protocol::Icao;
use airport_protocol::equivalence::{Equivalence, refresh_due};
use std::cell::Cell;
use std::rc::Rc;
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

    /// Whether a read is due and none is under way.
    pub fn due(&self, now: i64, refresh_ms: i64) -> bool {
        !self.reading.get() && refresh_due(self.read_at.get(), now, refresh_ms)
    }

    /// Reads the points (the read being due), stores the grouping and hands it to `apply`:
    /// awaited when they were never read (the airport's first events must not miss a group),
    /// in the background otherwise. A failed read is logged and changes nothing.
    pub async fn refresh(
        reads: &Rc<PointsReads>,
        env: &Env,
        sql: SqlStorage,
        icao: Icao,
        now: i64,
        apply: impl FnOnce(Equivalence) + 'static,
    ) {
        let Some(db) = network_db(env) else {
            return;
        };
        let first = reads.read_at.get().is_none();
        reads.reading.set(true);
        reads.read_at.set(Some(now));
        let reads = Rc::clone(reads);
        let read = async move {
            let read = read(&db, &icao).await;
            reads.reading.set(false);
            let equivalence = match read {
                Ok(equivalence) => equivalence,
                Err(error) => {
                    return log_event::airport_failure("points_read_failed", &icao, error);
                }
            };
            if let Err(error) = storage::set_points(&sql, &equivalence, now) {
                log_event::airport_failure("points_store_failed", &icao, error);
            }
            let groups = equivalence.groups().len() as u64;
            log_event::airport("points_read", &icao, &[("groups", groups)]);
            apply(equivalence);
        };
        if first {
            read.await;
        } else {
            wasm_bindgen_futures::spawn_local(read);
        }
    }
}

/// The airport's points, grouped. `airport_id` is matched in upper and lower case, which keeps
/// the query on the table's index (the rule's case-insensitive match of a mixed spelling would
/// read every airport's points). The rows come as one JSON array (`json_group_array`), read with
/// the JSON parser the Worker has anyway.
async fn read(db: &D1Database, icao: &Icao) -> Result<Equivalence> {
    let rows: Option<String> = db
        .prepare(
            "SELECT json_group_array(json_object('id', id, 'airport_id', airport_id, 'type', type, \
             'coordinates', coordinates, 'directionality', directionality, 'color', color, \
             'elevated', elevated, 'ihp', ihp)) AS points \
             FROM points WHERE airport_id IN (?1, ?2)",
        )
        .bind(&[
            icao.as_str().into(),
            icao.as_str().to_ascii_lowercase().into(),
        ])?
        .first(Some("points"))
        .await?;
    Equivalence::of_json(rows.as_deref().unwrap_or("[]"))
        .ok_or_else(|| "the points table's rows are not a JSON array".into())
}
