//! The airport's SQLite storage, row by row: one row per object, one per top-level shared-state
//! member, one per remembered deletion (the resume log's tombstones), and one row for the
//! airport itself (code, `seq`, the resume log's history id, floor and shared-state `seq`,
//! offline and heartbeat times).
//! Writes made in one event commit together, and the output gate holds every message sent
//! after them until they are durable.

use airport_protocol::airport::ObjectRow;
use airport_protocol::directory::Listing;
use airport_protocol::equivalence::Equivalence;
use airport_protocol::history::{History, HistoryId, Tombstone};
use airport_protocol::liveness::Schedule;
use airport_protocol::{Airport, Icao, ObjectRecord, StoreOp};
use serde::Deserialize;
use serde_json::{Map, Value};
use std::cell::Cell;
use std::collections::BTreeMap;
use std::rc::Rc;
use wasm_bindgen::prelude::*;
use worker::{Result, SqlStorage, SqlStorageValue, Storage};

#[wasm_bindgen]
extern "C" {
    /// The Durable Object's storage, for the one method `worker` does not bind.
    type TransactionalStorage;

    /// Runs `run` in a transaction that is rolled back if it throws.
    #[wasm_bindgen(method, catch, js_name = transactionSync)]
    fn transaction_sync(
        this: &TransactionalStorage,
        run: &js_sys::Function,
    ) -> std::result::Result<JsValue, JsValue>;
}

/// Schema changes in order; an object runs the ones it has not run yet, once, in its
/// constructor, all in one transaction with the version they bring it to.
const MIGRATIONS: [&str; 7] = [
    "CREATE TABLE IF NOT EXISTS airport (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        icao TEXT NOT NULL,
        seq INTEGER NOT NULL DEFAULT 0,
        offline_since INTEGER,
        next_heartbeat INTEGER
    );
    CREATE TABLE IF NOT EXISTS objects (
        id TEXT PRIMARY KEY,
        state TEXT NOT NULL,
        controller_id TEXT NOT NULL,
        updated_at INTEGER NOT NULL
    );
    CREATE TABLE IF NOT EXISTS shared_state (
        key TEXT PRIMARY KEY,
        value TEXT NOT NULL
    );",
    "ALTER TABLE airport ADD COLUMN next_recheck INTEGER;",
    // Keyed by text, the tables are their primary-key index (WITHOUT ROWID): a write touches one
    // B-tree instead of a rowid table and its index, which halves the cost of a batch's puts.
    "CREATE TABLE objects_by_id (
        id TEXT PRIMARY KEY,
        state TEXT NOT NULL,
        controller_id TEXT NOT NULL,
        updated_at INTEGER NOT NULL
    ) WITHOUT ROWID;
    INSERT INTO objects_by_id (id, state, controller_id, updated_at)
        SELECT id, state, controller_id, updated_at FROM objects;
    DROP TABLE objects;
    ALTER TABLE objects_by_id RENAME TO objects;
    CREATE TABLE shared_state_by_key (
        key TEXT PRIMARY KEY,
        value TEXT NOT NULL
    ) WITHOUT ROWID;
    INSERT INTO shared_state_by_key (key, value) SELECT key, value FROM shared_state;
    DROP TABLE shared_state;
    ALTER TABLE shared_state_by_key RENAME TO shared_state;",
    // How the directory in D1 lists the airport, as last written there.
    "ALTER TABLE airport ADD COLUMN listed TEXT;",
    // The groups of equivalent points as last read from the points table, and when.
    "ALTER TABLE airport ADD COLUMN point_groups TEXT;
    ALTER TABLE airport ADD COLUMN points_read_at INTEGER;",
    // The resume log (protocol/src/history.rs). An existing airport gets a new history, which
    // no client knows yet: its rows' `seq` 0 and the floor at its `seq` are never resumed from.
    "ALTER TABLE objects ADD COLUMN seq INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE airport ADD COLUMN history TEXT;
    ALTER TABLE airport ADD COLUMN shared_seq INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE airport ADD COLUMN resume_floor INTEGER NOT NULL DEFAULT 0;
    UPDATE airport SET history = lower(hex(randomblob(8))), resume_floor = seq;
    CREATE TABLE tombstones (
        id TEXT PRIMARY KEY,
        seq INTEGER NOT NULL
    ) WITHOUT ROWID;",
    // A resume reads the rows changed after its `seq`: without this index, a scan of every
    // row (0.3 ms for 10,000 in SQLite alone); with it, each object write costs about 1.5 µs
    // more (BENCHMARKS.md §3).
    "CREATE INDEX objects_by_seq ON objects (seq);",
];

#[derive(Deserialize)]
struct VersionRow {
    version: i64,
}

/// The tables as [`MIGRATIONS`] leave them (`schema_version` aside, made with them in
/// [`run_migrations`]), made at once for a new storage: the migrations' table copies and column
/// additions were a third of the server's time for a connect to a new airport (BENCHMARKS.md
/// §3). durability.test.mjs checks that both ways give the same tables.
const SCHEMA: &str = "CREATE TABLE airport (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        icao TEXT NOT NULL,
        seq INTEGER NOT NULL DEFAULT 0,
        offline_since INTEGER,
        next_heartbeat INTEGER,
        next_recheck INTEGER,
        listed TEXT,
        point_groups TEXT,
        points_read_at INTEGER,
        history TEXT,
        shared_seq INTEGER NOT NULL DEFAULT 0,
        resume_floor INTEGER NOT NULL DEFAULT 0
    );
    CREATE TABLE objects (
        id TEXT PRIMARY KEY,
        state TEXT NOT NULL,
        controller_id TEXT NOT NULL,
        updated_at INTEGER NOT NULL,
        seq INTEGER NOT NULL DEFAULT 0
    ) WITHOUT ROWID;
    CREATE TABLE shared_state (
        key TEXT PRIMARY KEY,
        value TEXT NOT NULL
    ) WITHOUT ROWID;
    CREATE TABLE tombstones (
        id TEXT PRIMARY KEY,
        seq INTEGER NOT NULL
    ) WITHOUT ROWID;
    CREATE INDEX objects_by_seq ON objects (seq);";

#[derive(Deserialize)]
struct TableName {
    name: String,
}

/// Whether the airport's storage existed before this wake-up's [`migrate`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tables {
    /// Made just now, empty: nothing in them needs reading.
    New,
    Existing,
}

/// Brings the schema up to date, all or nothing: a migration is several statements. Every
/// wake-up reads where the schema stands; only a storage with work to do opens a transaction.
pub fn migrate(storage: &Storage) -> Result<Tables> {
    match schema(&storage.sql())? {
        Schema::At(version) if version >= MIGRATIONS.len() => Ok(Tables::Existing),
        stands => atomically(storage, move |sql| run_migrations(sql, stands)),
    }
}

/// Where a storage's schema stands.
#[derive(Clone, Copy)]
enum Schema {
    /// No airport table: a new storage (every build made that table first).
    New,
    /// At this many of [`MIGRATIONS`]; 0 without `schema_version` (made before versions were
    /// kept).
    At(usize),
}

fn schema(sql: &SqlStorage) -> Result<Schema> {
    let tables = sql
        .exec(
            "SELECT name FROM sqlite_master WHERE type = 'table' \
             AND name IN ('airport', 'schema_version')",
            None,
        )?
        .to_array::<TableName>()?;
    let has = |name: &str| tables.iter().any(|table| table.name == name);
    if !has("airport") {
        return Ok(Schema::New);
    }
    if !has("schema_version") {
        return Ok(Schema::At(0));
    }
    let version = sql
        .exec("SELECT version FROM schema_version", None)?
        .to_array::<VersionRow>()?
        .first()
        .map_or(0, |row| row.version.max(0) as usize);
    Ok(Schema::At(version))
}

/// Brings a schema that stands at `stands` (read in the same event, which nothing else
/// writes in between) up to date.
fn run_migrations(sql: &SqlStorage, stands: Schema) -> Result<Tables> {
    match stands {
        Schema::New => {
            // The tables and their version in one statement: each is a call out of Wasm.
            let version = MIGRATIONS.len();
            sql.exec(
                &format!(
                    "{SCHEMA} {VERSION_TABLE} INSERT INTO schema_version (version) VALUES ({version});"
                ),
                None,
            )?;
            Ok(Tables::New)
        }
        Schema::At(current) => {
            for migration in MIGRATIONS.get(current..).unwrap_or_default() {
                sql.exec(migration, None)?;
            }
            record_version(sql)?;
            Ok(Tables::Existing)
        }
    }
}

const VERSION_TABLE: &str = "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL);";

/// Notes that the schema is [`MIGRATIONS`]' last version.
fn record_version(sql: &SqlStorage) -> Result<()> {
    sql.exec(VERSION_TABLE, None)?;
    sql.exec("DELETE FROM schema_version", None)?;
    sql.exec(
        "INSERT INTO schema_version (version) VALUES (?)",
        vec![SqlStorageValue::Integer(MIGRATIONS.len() as i64)],
    )?;
    Ok(())
}

#[derive(Deserialize)]
struct AirportRow {
    icao: String,
    seq: i64,
    offline_since: Option<i64>,
    next_heartbeat: Option<i64>,
    next_recheck: Option<i64>,
    listed: Option<String>,
    point_groups: Option<String>,
    points_read_at: Option<i64>,
    history: Option<String>,
    shared_seq: i64,
    resume_floor: i64,
    /// How many objects it holds: what a wake-up knows of them until an event reads them.
    objects: i64,
    /// The shared state's members as a JSON array of `[key, value as JSON text]`.
    shared: String,
    /// The tombstones as a JSON array of `[id, seq]`, in `seq` order.
    tombstones: String,
}

#[derive(Deserialize)]
struct LoadedObject {
    id: String,
    state: String,
    controller_id: String,
    updated_at: i64,
    seq: i64,
}

/// The columns of [`AirportRow`] kept in the airport's own row.
const AIRPORT_ROW: &str = "icao, seq, offline_since, next_heartbeat, next_recheck, listed, \
    point_groups, points_read_at, history, shared_seq, resume_floor";

/// The airport's row with its objects' count, shared state and tombstones, in one statement:
/// each statement is a call out of Wasm and a cursor, and a wake-up makes this one.
fn airport_row(sql: &SqlStorage) -> Result<Option<AirportRow>> {
    let query = format!(
        "SELECT {AIRPORT_ROW}, (SELECT count(*) FROM objects) AS objects, \
         (SELECT json_group_array(json_array(key, value)) FROM shared_state) AS shared, \
         (SELECT json_group_array(json_array(id, seq)) \
            FROM (SELECT id, seq FROM tombstones ORDER BY seq)) AS tombstones \
         FROM airport WHERE id = 1"
    );
    Ok(sql.exec(&query, None)?.to_array::<AirportRow>()?.pop())
}

/// What storage holds: the airport, its periodic schedule and its directory listing.
pub struct Stored {
    pub airport: Airport,
    pub schedule: Schedule,
    pub listed: Option<Listing>,
    /// The grouping of equivalent points as last read, and when (`None`: never).
    pub points: (Equivalence, Option<i64>),
}

/// Loads the airport but its objects' rows, which only some events need ([`read_objects`]).
/// `icao` names it on its first request; an alarm passes `None` and gets `None` back for an
/// airport that never had one. `tables` says whether [`migrate`] has just made them.
pub fn load(sql: &SqlStorage, icao: Option<&Icao>, tables: Tables) -> Result<Option<Stored>> {
    let existing = match tables {
        Tables::New => None,
        Tables::Existing => airport_row(sql)?,
    };
    match (existing, icao) {
        (Some(row), _) => stored(row).map(Some),
        (None, Some(icao)) => create(sql, icao).map(Some),
        (None, None) => Ok(None),
    }
}

/// A new airport's row, as the table's defaults make it; it has no object, shared state or
/// deletion to read. A new storage is a new history: a `seq` from before it means nothing here.
/// The directory has no entry for it, which reads as dormant (`directory::read`), so that is
/// what it is listed as.
fn create(sql: &SqlStorage, icao: &Icao) -> Result<Stored> {
    let row = sql
        .exec(
            &format!(
                "INSERT INTO airport (id, icao, history, listed) \
                 VALUES (1, ?, lower(hex(randomblob(8))), ?) \
                 RETURNING {AIRPORT_ROW}, 0 AS objects, '[]' AS shared, '[]' AS tombstones"
            ),
            vec![icao.as_str().into(), Listing::Dormant.as_str().into()],
        )?
        .to_array::<AirportRow>()?
        .pop()
        .ok_or("the airport row was not written")?;
    stored(row)
}

fn stored(row: AirportRow) -> Result<Stored> {
    let mut shared = Map::new();
    for (key, value) in serde_json::from_str::<Vec<(String, String)>>(&row.shared)? {
        shared.insert(key, serde_json::from_str::<Value>(&value)?);
    }
    let tombstones = serde_json::from_str::<Vec<(String, u64)>>(&row.tombstones)?
        .into_iter()
        .map(|(id, seq)| Tombstone { id, seq });
    let icao = Icao::parse(&row.icao).ok_or("stored airport code is invalid")?;
    let history_id = (row.history.as_deref())
        .and_then(HistoryId::parse)
        .ok_or("stored history id is invalid")?;
    let history = History::restore(
        history_id,
        row.shared_seq.max(0) as u64,
        row.resume_floor.max(0) as u64,
        tombstones,
    );
    let seq = row.seq.max(0) as u64;
    Ok(Stored {
        airport: Airport::restore_unread(
            icao,
            row.objects.max(0) as usize,
            shared,
            seq,
            row.offline_since,
        )
        .with_history(history),
        schedule: Schedule {
            heartbeat: row.next_heartbeat,
            recheck: row.next_recheck,
        },
        listed: row.listed.as_deref().and_then(Listing::parse),
        points: (
            row.point_groups
                .as_deref()
                .map(Equivalence::from_text)
                .unwrap_or_default(),
            row.points_read_at,
        ),
    })
}

/// Every object's row, for the first event of a wake-up that needs them.
pub fn read_objects(sql: &SqlStorage) -> Result<BTreeMap<String, ObjectRecord>> {
    read_rows(sql, "", None)
}

/// The rows whose `seq` is above `since`: what a resume from it shows
/// ([`airport_protocol::RowsToRead`]).
pub fn read_changed_objects(
    sql: &SqlStorage,
    since: u64,
) -> Result<BTreeMap<String, ObjectRecord>> {
    read_rows(sql, " WHERE seq > ?", Some(vec![stored_seq(since)?]))
}

fn read_rows(
    sql: &SqlStorage,
    filter: &str,
    bindings: Option<Vec<SqlStorageValue>>,
) -> Result<BTreeMap<String, ObjectRecord>> {
    let mut objects = BTreeMap::new();
    let query = format!("SELECT id, state, controller_id, updated_at, seq FROM objects{filter}");
    for object in sql.exec(&query, bindings)?.to_array::<LoadedObject>()? {
        let record = ObjectRecord {
            state: serde_json::from_str(&object.state)?,
            controller_id: airport_protocol::Cid::parse(&object.controller_id)
                .ok_or("stored controller id is invalid")?,
            updated_at: object.updated_at,
            seq: object.seq.max(0) as u64,
        };
        objects.insert(object.id, record);
    }
    Ok(objects)
}

/// Writes the operations in order, all or none, so that a change is never half stored while
/// its sender is told it was not.
pub fn write(storage: &Storage, ops: Vec<StoreOp>) -> Result<()> {
    if ops.is_empty() {
        return Ok(());
    }
    atomically(storage, move |sql| write_in_order(sql, &ops))
}

/// Runs `work` in one `transactionSync`, which rolls back if it fails: the event's implicit
/// transaction alone would still commit the statements that ran before the failing one.
fn atomically<T: 'static>(
    storage: &Storage,
    work: impl FnOnce(&SqlStorage) -> Result<T> + 'static,
) -> Result<T> {
    let sql = storage.sql();
    let done = Rc::new(Cell::new(None));
    let out = Rc::clone(&done);
    let run = Closure::once(move || match work(&sql) {
        Ok(value) => {
            out.set(Some(value));
            Ok(JsValue::UNDEFINED)
        }
        Err(error) => Err(JsValue::from(error.to_string())),
    });
    storage
        .as_raw()
        .unchecked_ref::<TransactionalStorage>()
        .transaction_sync(run.as_ref().unchecked_ref())?;
    Ok(done.take().ok_or("the transaction did not run")?)
}

/// A run of object puts (a batch, or several frames sharing a commit) is one statement over a
/// JSON array of rows rather than one statement per row: each statement is a call out of Wasm
/// and a cursor in the runtime. The array is read as JSONB, so that SQLite parses it once
/// rather than once per row and column.
fn write_in_order(sql: &SqlStorage, ops: &[StoreOp]) -> Result<()> {
    let mut rest = ops;
    while let Some(op) = rest.first() {
        let puts: Vec<(&str, &ObjectRow)> = rest
            .iter()
            .map_while(|op| match op {
                StoreOp::PutObject { id, row } => Some((id.as_str(), row)),
                _ => None,
            })
            .collect();
        if puts.is_empty() {
            write_one(sql, op)?;
            rest = &rest[1..];
        } else {
            put_objects(sql, &puts)?;
            rest = &rest[puts.len()..];
        }
    }
    Ok(())
}

/// `[id, state, controller_id, updated_at, seq]` rows, as `jsonb_each` reads them.
fn put_objects(sql: &SqlStorage, puts: &[(&str, &ObjectRow)]) -> Result<()> {
    let rows: Vec<_> = puts
        .iter()
        .map(|(id, row)| {
            (
                *id,
                row.state_json.get(),
                row.controller_id.as_str(),
                row.updated_at,
                row.seq,
            )
        })
        .collect();
    sql.exec(
        "INSERT OR REPLACE INTO objects (id, state, controller_id, updated_at, seq) \
         SELECT value ->> 0, value ->> 1, value ->> 2, value ->> 3, value ->> 4 \
         FROM jsonb_each(jsonb(?))",
        vec![serde_json::to_string(&rows)?.into()],
    )?;
    Ok(())
}

fn write_one(sql: &SqlStorage, op: &StoreOp) -> Result<()> {
    match op {
        StoreOp::PutObject { id, row } => return put_objects(sql, &[(id.as_str(), row)]),
        StoreOp::DeleteObject { id } => {
            sql.exec("DELETE FROM objects WHERE id = ?", vec![id.as_str().into()])?
        }
        StoreOp::PutShared { key, value } => sql.exec(
            "INSERT OR REPLACE INTO shared_state (key, value) VALUES (?, ?)",
            vec![key.as_str().into(), serde_json::to_string(value)?.into()],
        )?,
        StoreOp::DeleteShared { key } => sql.exec(
            "DELETE FROM shared_state WHERE key = ?",
            vec![key.as_str().into()],
        )?,
        StoreOp::ClearState => {
            sql.exec("DELETE FROM objects", None)?;
            sql.exec("DELETE FROM shared_state", None)?
        }
        StoreOp::SetSeq(seq) => sql.exec(
            "UPDATE airport SET seq = ? WHERE id = 1",
            vec![stored_seq(*seq)?],
        )?,
        StoreOp::PutTombstone { id, seq } => sql.exec(
            "INSERT OR REPLACE INTO tombstones (id, seq) VALUES (?, ?)",
            vec![id.as_str().into(), stored_seq(*seq)?],
        )?,
        StoreOp::SetSharedSeq(seq) => sql.exec(
            "UPDATE airport SET shared_seq = ? WHERE id = 1",
            vec![stored_seq(*seq)?],
        )?,
        StoreOp::SetResumeFloor(floor) => {
            sql.exec(
                "UPDATE airport SET resume_floor = ? WHERE id = 1",
                vec![stored_seq(*floor)?],
            )?;
            sql.exec(
                "DELETE FROM tombstones WHERE seq <= ?",
                vec![stored_seq(*floor)?],
            )?
        }
        StoreOp::SetOfflineSince(since) => sql.exec(
            "UPDATE airport SET offline_since = ? WHERE id = 1",
            vec![optional_time(*since)?],
        )?,
        StoreOp::SetSchedule(schedule) => sql.exec(
            "UPDATE airport SET next_heartbeat = ?, next_recheck = ? WHERE id = 1",
            vec![
                optional_time(schedule.heartbeat)?,
                optional_time(schedule.recheck)?,
            ],
        )?,
    };
    Ok(())
}

pub fn set_listed(sql: &SqlStorage, listed: Listing) -> Result<()> {
    sql.exec(
        "UPDATE airport SET listed = ? WHERE id = 1",
        vec![listed.as_str().into()],
    )?;
    Ok(())
}

/// The grouping of equivalent points just read, and when. A different grouping changes what
/// clients see without a `seq`: no replica up to now may resume (the rule of
/// `Airport::regroup`, applied here in the same statement, whether or not the airport is in
/// memory).
pub fn set_points(sql: &SqlStorage, equivalence: &Equivalence, read_at: i64) -> Result<()> {
    let groups = equivalence.to_text();
    sql.exec(
        "UPDATE airport SET resume_floor = CASE WHEN coalesce(point_groups, '') IS NOT ? \
         THEN max(resume_floor, seq + 1) ELSE resume_floor END, \
         point_groups = ?, points_read_at = ? WHERE id = 1",
        vec![
            groups.as_str().into(),
            groups.as_str().into(),
            SqlStorageValue::try_from_i64(read_at)?,
        ],
    )?;
    sql.exec(
        "DELETE FROM tombstones WHERE seq <= (SELECT resume_floor FROM airport WHERE id = 1)",
        None,
    )?;
    Ok(())
}

fn stored_seq(seq: u64) -> Result<SqlStorageValue> {
    SqlStorageValue::try_from_i64(seq as i64)
}

fn optional_time(at: Option<i64>) -> Result<SqlStorageValue> {
    at.map_or(Ok(SqlStorageValue::Null), SqlStorageValue::try_from_i64)
}
