//! Keeping the airport's entry in the D1 directory up to date, in the background: the write
//! never delays a connect or a broadcast. One write is under way at a time, and when it is
//! done the writer looks again, so entries cannot be written out of order; a failed write is
//! tried again at the next event.

use crate::airport::awake::Awake;
use crate::airport::storage;
use crate::directory;
use crate::log_event;
use airport_protocol::Icao;
use airport_protocol::directory::Listing;
use std::cell::{Cell, RefCell};
use std::rc::Rc;
use worker::{D1Database, SqlStorage};

/// What the directory should say: the airport, its listing and its `seq`.
type Entry = (Icao, Listing, u64);

#[derive(Default)]
pub struct DirectoryEntry {
    /// What the directory says, as last written (and stored in the airport's own table).
    listed: Cell<Option<Listing>>,
    /// What it should say now.
    wanted: RefCell<Option<Entry>>,
    writing: Cell<bool>,
}

impl DirectoryEntry {
    /// What storage says was last written, after a wake-up.
    pub fn restore(&self, listed: Option<Listing>) {
        self.listed.set(listed);
    }

    /// Asks for the entry to say `wanted`; starts a writer, on the handles `open` gives, unless
    /// one is under way (it will pick this up) or nothing changes. Most events change nothing,
    /// and then nothing is opened.
    pub fn update(
        self: &Rc<Self>,
        wanted: Entry,
        open: impl FnOnce() -> (Option<D1Database>, SqlStorage),
        awake: &Rc<Awake>,
    ) {
        let changed = self.listed.get() != Some(wanted.1);
        *self.wanted.borrow_mut() = Some(wanted);
        if !changed || self.writing.get() {
            return;
        }
        let (Some(db), sql) = open() else {
            return;
        };
        self.writing.set(true);
        let entry = Rc::clone(self);
        awake.in_background(async move {
            entry.write_until_current(db, sql).await;
            entry.writing.set(false);
        });
    }

    async fn write_until_current(&self, db: D1Database, sql: SqlStorage) {
        loop {
            let Some((icao, listing, seq)) = self.wanted.borrow().clone() else {
                return;
            };
            if self.listed.get() == Some(listing) {
                return;
            }
            let now = crate::now_ms();
            if let Err(error) = directory::write(&db, &icao, listing, seq, now).await {
                log_event::airport_failure("directory_write_failed", &icao, error);
                return;
            }
            // Memory follows even if this local write fails: the next wake-up rewrites at worst.
            let _ = storage::set_listed(&sql, listing);
            self.listed.set(Some(listing));
        }
    }
}
