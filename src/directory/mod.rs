//! The directory of airports in D1 (`migrations/0002_airport_directory.sql`): each airport's
//! Durable Object writes how it stands; the Worker reads it to answer `GET /state` for an
//! airport with nothing in it, and to list the live ones for `GET /state?airport=all`.

pub mod entry;

use airport_protocol::Icao;
use airport_protocol::directory::Listing;
use serde::Deserialize;
use worker::{D1Database, Result};

pub async fn write(
    db: &D1Database,
    icao: &Icao,
    listing: Listing,
    seq: u64,
    now: i64,
) -> Result<()> {
    db.prepare(
        "INSERT INTO airports (icao, status, seq, updated_at) VALUES (?1, ?2, ?3, ?4) \
         ON CONFLICT (icao) DO UPDATE SET status = excluded.status, seq = excluded.seq, \
         updated_at = excluded.updated_at",
    )
    .bind(&[
        icao.as_str().into(),
        listing.as_str().into(),
        (seq as f64).into(),
        (now as f64).into(),
    ])?
    .run()
    .await?;
    Ok(())
}

#[derive(Deserialize)]
struct ListingRow {
    status: String,
    seq: f64,
}

/// How an airport stands, with its `seq` (meaningful when dormant); `None` for an airport
/// that was never used.
pub async fn read(db: &D1Database, icao: &Icao) -> Result<Option<(Listing, u64)>> {
    let row: Option<ListingRow> = db
        .prepare("SELECT status, seq FROM airports WHERE icao = ?1")
        .bind(&[icao.as_str().into()])?
        .first(None)
        .await?;
    Ok(row.and_then(|row| Some((Listing::parse(&row.status)?, row.seq.max(0.0) as u64))))
}

#[derive(Deserialize)]
struct IcaoRow {
    icao: String,
}

/// The airports listed as live, by the index on `status`: the cost follows the airports live
/// now, not every airport that ever was.
/// The airports listed live, in ICAO order, at most `limit` of them.
pub async fn live(db: &D1Database, limit: usize) -> Result<Vec<Icao>> {
    let rows: Vec<IcaoRow> = db
        .prepare("SELECT icao FROM airports WHERE status = 'live' ORDER BY icao LIMIT ?1")
        .bind(&[(limit as f64).into()])?
        .all()
        .await?
        .results()?;
    Ok(rows
        .iter()
        .filter_map(|row| Icao::parse(&row.icao))
        .collect())
}
