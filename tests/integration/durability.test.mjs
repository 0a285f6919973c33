// Durability (PROTOCOL §4–5): state, seq, sockets' roles and presence survive a runtime
// restart and the Durable Object's hibernation, and stored airports survive schema upgrades.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { readdirSync } from "node:fs";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { Service, KEYS, CIDS } from "./harness.mjs";
import { until } from "./helpers.mjs";

let service;
before(async () => {
  service = await new Service().start();
});
after(async () => {
  await service?.stop();
});

const loads = (airport) =>
  service.logs.filter((e) => e.event === "airport_loaded" && e.airport === airport);

test("accepted changes and seq survive a restart of the runtime", async () => {
  const controller = await service.join(KEYS.controller1, "DUR1");
  const pilot = await service.join(KEYS.pilot1, "DUR1");
  controller.send({ type: "STATE_UPDATE", data: { objectId: "SB_1", state: true } });
  controller.send({ type: "STATE_UPDATE", data: { objectId: "LO_1", patch: { color: "green", on: true } } });
  controller.send({ type: "MULTI_STATE_UPDATE", data: { updates: [{ objectId: "SB_2", state: { on: false } }, { objectId: "SB_1", patch: null }] } });
  controller.send({ type: "SHARED_STATE_UPDATE", data: { sharedStatePatch: { runway: "27L", atis: { code: "K" } } } });
  const last = await controller.next("SHARED_STATE_UPDATE");
  assert.equal(last.seq, 4);
  await pilot.next("SHARED_STATE_UPDATE");
  const loadsBefore = loads("DUR1").length;

  await service.restart();
  // Every socket was dropped by the restart.
  await controller.closed;
  await pilot.closed;

  const observer = await service.join(KEYS.observer1, "DUR1");
  const data = observer.initial.data;
  assert.equal(data.seq, 4);
  assert.deepEqual(
    data.objects.map(({ id, state, controllerId }) => ({ id, state, controllerId })),
    [
      { id: "LO_1", state: { color: "green", on: true }, controllerId: CIDS.controller1 },
      { id: "SB_2", state: { on: false }, controllerId: CIDS.controller1 },
    ],
  );
  assert.deepEqual(data.sharedState, { runway: "27L", atis: { code: "K" } });
  assert.deepEqual(data.controllers, []);
  assert.equal(data.offline, true);
  // The object was constructed again and loaded from storage (logged after the replies).
  await until(() => loads("DUR1").length > loadsBefore, { ms: 5000, what: "the reload's line" });
  assert.equal(loads("DUR1").length, loadsBefore + 1);

  // seq continues from where it was, never back.
  const again = await service.join(KEYS.controller2, "DUR1");
  again.send({ type: "STATE_UPDATE", data: { objectId: "SB_3", state: true } });
  const update = await observer.next("STATE_UPDATE");
  assert.equal(update.seq, 5);
  await again.close();
  await observer.close();
});

test("a burst from two controllers: frames share commits, yet each change goes out once, in seq order, and is stored", async () => {
  const c1 = await service.join(KEYS.controller1, "BRST");
  const c2 = await service.join(KEYS.controller2, "BRST");
  const observer = await service.join(KEYS.observer1, "BRST");
  // 2 × 40 frames written at once: they reach the object back to back and share commits.
  for (let i = 0; i < 40; i++) {
    c1.send({ type: "STATE_UPDATE", data: { objectId: `SB_${i % 5}`, state: { n: i } } });
    c2.send({ type: "STATE_UPDATE", data: { objectId: `LO_${i % 5}`, patch: { n: i, by: 2 } } });
  }
  // The observer gets every change once, in seq order; several may share one
  // MULTI_STATE_UPDATE (seqFrom to seq, §7).
  await observer.changeCount(80);
  await observer.settle();
  const updates = observer.changes();
  assert.deepEqual(
    updates.map((u) => u.seq),
    Array.from({ length: 80 }, (_, i) => i + 1),
  );
  // Each controller's own frames keep their order.
  const values = (prefix) => updates.filter((u) => u.objectId.startsWith(prefix)).map((u) => u.state.n);
  assert.deepEqual(values("SB_"), Array.from({ length: 40 }, (_, i) => i));
  assert.deepEqual(values("LO_"), Array.from({ length: 40 }, (_, i) => i));
  // Controllers get each of the other's changes as its own STATE_UPDATE, as accepted.
  await c1.settle();
  assert.deepEqual(c1.all("MULTI_STATE_UPDATE"), []);
  assert.deepEqual(
    c1.all("STATE_UPDATE").map((u) => u.data.state.n),
    Array.from({ length: 40 }, (_, i) => i),
  );

  await service.restart();
  const after = await service.join(KEYS.observer1, "BRST");
  assert.equal(after.initial.data.seq, 80);
  const last = new Map(updates.map((u) => [u.objectId, u.state]));
  assert.deepEqual(
    Object.fromEntries(after.initial.data.objects.map((o) => [o.id, o.state])),
    Object.fromEntries(last),
  );
  await after.close();
});

test("sockets, roles, presence and state survive hibernation", { timeout: 60_000 }, async () => {
  const controller = await service.join(KEYS.controller1, "HIB1");
  const pilot = await service.join(KEYS.pilot1, "HIB1");
  controller.send({ type: "STATE_UPDATE", data: { objectId: "SB_1", state: true } });
  await pilot.next("STATE_UPDATE");
  await controller.settle();
  await pilot.settle();
  const loadsBefore = loads("HIB1").length;
  assert.equal(loadsBefore, 1);

  // Silence: workerd hibernates an idle Durable Object after about ten seconds. The alarm that
  // writes the metrics window 5 s after the last frame is an event too, so it hibernates about
  // 15 s after the frames. Heartbeats (every 60 s) and idle closes (70 s) are far enough away.
  await service.untilHibernated("HIB1");

  const since = service.logs.length;
  const snapshot = await pilot.request({ type: "GET_STATE" });
  // The constructor ran again: the airport was loaded anew, with both sockets found open (the
  // line is written after the replies).
  const reload = await service.waitForLog((e) => e.event === "airport_loaded" && e.airport === "HIB1", 5000, since);
  const reloads = loads("HIB1");
  assert.equal(reloads.length, 2, "the object did not hibernate");
  assert.equal(reloads[1].sockets, 2);
  assert.ok(reload);
  assert.deepEqual(snapshot.data.objects.map((o) => o.id), ["SB_1"]);
  assert.equal(snapshot.data.seq, 1);
  assert.deepEqual(snapshot.data.controllers, [CIDS.controller1]);

  // Roles came back from the attachments: the pilot still may not change state...
  const forbidden = await pilot.request({ type: "STATE_UPDATE", data: { objectId: "SB_1", state: false } });
  assert.equal(forbidden.data.code, "FORBIDDEN");
  // ...and the controller still may, under its own cid.
  controller.send({ type: "STATE_UPDATE", data: { objectId: "SB_1", state: false } });
  const update = await pilot.next("STATE_UPDATE");
  assert.equal(update.data.controllerId, CIDS.controller1);
  assert.equal(update.seq, 2);
  // The controller's departure is still announced once.
  await controller.close();
  const gone = await pilot.next("CONTROLLER_DISCONNECT");
  assert.equal(gone.data.controllerId, CIDS.controller1);
  await pilot.close();
});

test("a hibernated airport answers a heartbeat without reading its objects", { timeout: 60_000 }, async () => {
  const controller = await service.join(KEYS.controller1, "WAKE");
  const pilot = await service.join(KEYS.pilot1, "WAKE");
  const updates = Array.from({ length: 50 }, (_, i) => ({ objectId: `SB_${i}`, state: { n: i } }));
  controller.send({ type: "MULTI_STATE_UPDATE", data: { updates } });
  const states = (snapshot) => snapshot.data.objects.map((o) => o.state.n).sort((a, b) => a - b);
  const all = Array.from({ length: 50 }, (_, i) => i);
  // The controller's next frame is handled after its update; the pilot's could come first.
  assert.deepEqual(states(await controller.request({ type: "GET_STATE" })), all);
  assert.deepEqual(states(await pilot.request({ type: "GET_STATE" })), all);
  await controller.settle();
  await pilot.settle();
  assert.equal(loads("WAKE").length, 1);

  // Silence until the object hibernates (as in the test above).
  await service.untilHibernated("WAKE");
  const since = service.logs.length;
  const ack = await pilot.request({ type: "HEARTBEAT" });
  assert.equal(ack.type, "HEARTBEAT_ACK");
  const reload = await service.waitForLog((e) => e.event === "airport_loaded" && e.airport === "WAKE", 5000, since);
  assert.equal(loads("WAKE").length, 2, "the object did not hibernate");
  // Woken for the heartbeat: the objects are counted, not read.
  assert.equal(reload.objects, 50);
  assert.equal(reload.objects_read, 0);
  const reads = () => service.logs.slice(since).filter((e) => e.event === "objects_read" && e.airport === "WAKE");
  assert.deepEqual(reads(), []);

  // The first question that needs them reads them, once.
  const snapshot = await pilot.request({ type: "GET_STATE" });
  assert.deepEqual(states(snapshot), all);
  assert.equal(snapshot.data.seq, 1);
  await pilot.request({ type: "GET_STATE" });
  assert.deepEqual(reads().map((e) => e.objects), [50]);
  await controller.close();
  await pilot.close();
});

/** The SQLite file of the airport `icao`, among the Durable Objects' files under `dir`. */
function airportFile(dir, icao) {
  const files = readdirSync(dir, { recursive: true })
    .map((f) => join(dir, String(f)))
    .filter((f) => f.endsWith(".sqlite"));
  for (const file of files) {
    const db = new DatabaseSync(file, { readOnly: true });
    try {
      const hasAirport = db.prepare("SELECT 1 FROM sqlite_master WHERE name = 'airport'").get();
      if (hasAirport && db.prepare("SELECT icao FROM airport").get()?.icao === icao) return file;
    } finally {
      db.close();
    }
  }
  throw new Error(`no SQLite file holds airport ${icao} (looked at ${files.length})`);
}

/** Restarts the runtime with SQLite refusing every new object row of airport `icao`. */
async function refuseNewObjects(icao) {
  await service.halt();
  const db = new DatabaseSync(airportFile(service.persist, icao));
  db.exec("CREATE TRIGGER refuse_objects BEFORE INSERT ON objects BEGIN SELECT RAISE(ABORT, 'refused by the test'); END");
  db.close();
  await service.start();
}

const tableSql = (db, name) =>
  db.prepare("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = ?").get(name).sql;

test("a change the storage refuses is undone whole: ERROR INTERNAL to its sender, nothing broadcast, nothing kept", async () => {
  const controller = await service.join(KEYS.controller1, "FAIL");
  const observer = await service.join(KEYS.observer1, "FAIL");
  controller.send({ type: "MULTI_STATE_UPDATE", data: { updates: [{ objectId: "SB_1", state: true }, { objectId: "SB_2", state: true }] } });
  await observer.next("MULTI_STATE_UPDATE");
  await controller.close();
  await observer.close();

  await refuseNewObjects("FAIL");

  const again = await service.join(KEYS.controller1, "FAIL");
  const watcher = await service.join(KEYS.observer1, "FAIL");
  // The deletion is a statement SQLite takes; the new row after it is refused.
  again.send({
    type: "MULTI_STATE_UPDATE",
    requestId: "batch-1",
    data: { updates: [{ objectId: "SB_1", patch: null }, { objectId: "SB_3", state: true }] },
  });
  const error = await again.next("ERROR");
  assert.equal(error.data.code, "INTERNAL");
  assert.equal(error.requestId, "batch-1");

  // The airport is reloaded from storage: SB_1 is still there, seq did not move.
  const snapshot = await watcher.request({ type: "GET_STATE" });
  assert.equal(snapshot.type, "STATE_SNAPSHOT");
  assert.deepEqual(snapshot.data.objects.map(({ id }) => id), ["SB_1", "SB_2"]);
  assert.equal(snapshot.data.seq, 1);
  assert.equal(watcher.all("MULTI_STATE_UPDATE").length, 0);

  // Changes the storage takes go on, from the same seq.
  again.send({ type: "SHARED_STATE_UPDATE", data: { sharedStatePatch: { runway: "27L" } } });
  assert.equal((await watcher.next("SHARED_STATE_UPDATE")).seq, 2);
  await again.close();
  await watcher.close();
});

test("a change the storage refuses reaches nobody, not even in a snapshot asked for in the same burst", async () => {
  const controller = await service.join(KEYS.controller1, "FAI2");
  controller.send({ type: "STATE_UPDATE", data: { objectId: "SB_1", state: true } });
  await controller.request({ type: "GET_STATE" });
  await controller.close();
  await refuseNewObjects("FAI2");

  const again = await service.join(KEYS.controller1, "FAI2");
  const watcher = await service.join(KEYS.observer1, "FAI2");
  // Back to back: a change that commits, one the storage refuses, and snapshots asked for
  // behind it; the refused one and the snapshots share a commit.
  again.send({ type: "SHARED_STATE_UPDATE", data: { sharedStatePatch: { warm: 1 } } });
  again.send({ type: "STATE_UPDATE", requestId: "lost", data: { objectId: "SB_LOST", state: true } });
  for (let i = 0; i < 5; i++) again.send({ type: "GET_STATE", requestId: `after-${i}` });
  const error = await again.next((p) => p.type === "ERROR" && p.requestId === "lost");
  assert.equal(error.data.code, "INTERNAL");
  await again.settle();
  await watcher.settle();
  for (const client of [again, watcher]) {
    const seen = JSON.stringify(client.received);
    assert.ok(!seen.includes("SB_LOST"), `the refused change reached a client: ${seen.slice(0, 500)}`);
  }
  // The next change takes the seq the refused one would have had; nobody saw that seq before.
  const seqs = new Set([...again.received, ...watcher.received].map((p) => p.seq ?? p.data?.seq));
  again.send({ type: "SHARED_STATE_UPDATE", data: { sharedStatePatch: { runway: "27L" } } });
  const next = await watcher.next((p) => p.type === "SHARED_STATE_UPDATE" && p.data.sharedStatePatch.runway);
  assert.equal(next.seq, 3);
  assert.ok(!seqs.has(3), "seq 3 was seen before it was stored");
  await again.close();
  await watcher.close();
});

test("a migration that fails is rolled back whole, so it can run again once its cause is gone", async () => {
  const controller = await service.join(KEYS.controller1, "MIGX");
  controller.send({ type: "STATE_UPDATE", data: { objectId: "SB_1", state: true } });
  await controller.request({ type: "GET_STATE" });
  await controller.close();

  // Schema version 2's tables, but with a second row for SB_1, which migration 3's copy into a
  // keyed table refuses halfway through.
  await service.halt();
  const file = airportFile(service.persist, "MIGX");
  const old = new DatabaseSync(file);
  old.exec(`
    CREATE TABLE objects_v2 (id TEXT, state TEXT NOT NULL, controller_id TEXT NOT NULL, updated_at INTEGER NOT NULL);
    INSERT INTO objects_v2 SELECT id, state, controller_id, updated_at FROM objects;
    INSERT INTO objects_v2 SELECT id, 'false', controller_id, updated_at FROM objects;
    DROP TABLE objects;
    ALTER TABLE objects_v2 RENAME TO objects;
    ALTER TABLE airport DROP COLUMN listed;
    ALTER TABLE airport DROP COLUMN point_groups;
    ALTER TABLE airport DROP COLUMN points_read_at;
    ALTER TABLE airport DROP COLUMN history;
    ALTER TABLE airport DROP COLUMN shared_seq;
    ALTER TABLE airport DROP COLUMN resume_floor;
    DROP TABLE tombstones;
    UPDATE schema_version SET version = 2;`);
  old.close();

  await service.start();
  const since = service.logs.length;
  const attempt = await service.connect(KEYS.observer1, "MIGX").catch(() => null);
  await service.waitForLog((e) => e.event === "migrate_failed", 5000, since);
  attempt?.ws.terminate();
  await service.halt();
  const after = new DatabaseSync(file);
  try {
    assert.equal(after.prepare("SELECT version FROM schema_version").get().version, 2);
    const tables = after.prepare("SELECT name FROM sqlite_master WHERE type = 'table'").all().map((t) => t.name);
    assert.ok(!tables.includes("objects_by_id"), `half a migration was kept: ${tables}`);
    // Its cause removed, the migration runs again from the start.
    after.exec("DELETE FROM objects WHERE state = 'false'");
  } finally {
    after.close();
  }

  await service.start();
  const observer = await service.join(KEYS.observer1, "MIGX");
  assert.deepEqual(observer.initial.data.objects.map(({ id, state }) => ({ id, state })), [{ id: "SB_1", state: true }]);
  await observer.close();
});

/** A storage's tables and indexes: each one's definition (its text, spacing and quoting aside) and columns. */
function tables(file) {
  const db = new DatabaseSync(file, { readOnly: true });
  try {
    const rows = db
      .prepare("SELECT name, sql FROM sqlite_master WHERE type IN ('table', 'index') AND name NOT LIKE '\\_cf\\_%' ESCAPE '\\' AND name NOT LIKE 'sqlite%' ORDER BY name")
      .all();
    return {
      version: db.prepare("SELECT version FROM schema_version").get().version,
      tables: rows.map(({ name, sql }) => ({
        name,
        sql: sql
          .replace(/"/g, "")
          .replace(/IF NOT EXISTS /, "")
          .replace(/\s+/g, " ")
          .replace(/\s*([(),])\s*/g, "$1"),
        columns: db.prepare(`PRAGMA table_xinfo("${name}")`).all(),
      })),
    };
  } finally {
    db.close();
  }
}

test("a new airport's tables are made at once, the same as its migrations make them from the first tables", async () => {
  const [made, versioned, unversioned] = ["SCHN", "SCHO", "SCHU"];
  for (const airport of [made, versioned, unversioned]) await (await service.join(KEYS.controller1, airport)).close();
  await service.halt();
  // Migration 1's tables, as the first builds stored them: SCHO at version 1; SCHU from before
  // versions were kept, without `schema_version` (version 0).
  for (const [airport, version] of [[versioned, "UPDATE schema_version SET version = 1;"], [unversioned, "DROP TABLE schema_version;"]]) {
    const old = new DatabaseSync(airportFile(service.persist, airport));
    old.exec(`
      DROP TABLE airport; DROP TABLE objects; DROP TABLE shared_state; DROP TABLE tombstones;
      CREATE TABLE airport (id INTEGER PRIMARY KEY CHECK (id = 1), icao TEXT NOT NULL,
        seq INTEGER NOT NULL DEFAULT 0, offline_since INTEGER, next_heartbeat INTEGER);
      CREATE TABLE objects (id TEXT PRIMARY KEY, state TEXT NOT NULL, controller_id TEXT NOT NULL,
        updated_at INTEGER NOT NULL);
      CREATE TABLE shared_state (key TEXT PRIMARY KEY, value TEXT NOT NULL);
      INSERT INTO airport (id, icao) VALUES (1, '${airport}');
      ${version}`);
    old.close();
  }
  await service.start();
  for (const airport of [versioned, unversioned]) await (await service.join(KEYS.observer1, airport)).close();
  await service.halt();
  const [fresh, ...migrated] = [made, versioned, unversioned].map((airport) => tables(airportFile(service.persist, airport)));
  assert.deepEqual(
    fresh.tables.map((t) => t.name),
    ["airport", "objects", "objects_by_seq", "schema_version", "shared_state", "tombstones"],
  );
  for (const upgraded of migrated) assert.deepEqual(upgraded, fresh);
  await service.start();
});

test("an airport stored by a build before migration 3 is upgraded in place, its rows intact", async () => {
  const controller = await service.join(KEYS.controller1, "MIG3");
  controller.send({
    type: "MULTI_STATE_UPDATE",
    data: { updates: [{ objectId: "SB_1", state: { on: true, big: 1.5e300 } }, { objectId: "SB_2", state: false }] },
  });
  controller.send({ type: "SHARED_STATE_UPDATE", data: { sharedStatePatch: { runway: "27L" } } });
  await controller.next("SHARED_STATE_UPDATE");
  await controller.close();

  // Stop the runtime and put the tables back as schema version 2 had them: rowid tables, the
  // text keys in their automatic indexes.
  await service.halt();
  const file = airportFile(service.persist, "MIG3");
  const old = new DatabaseSync(file);
  old.exec(`
    CREATE TABLE objects_v2 (id TEXT PRIMARY KEY, state TEXT NOT NULL, controller_id TEXT NOT NULL, updated_at INTEGER NOT NULL);
    INSERT INTO objects_v2 SELECT id, state, controller_id, updated_at FROM objects;
    DROP TABLE objects;
    ALTER TABLE objects_v2 RENAME TO objects;
    CREATE TABLE shared_state_v2 (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    INSERT INTO shared_state_v2 SELECT key, value FROM shared_state;
    DROP TABLE shared_state;
    ALTER TABLE shared_state_v2 RENAME TO shared_state;
    ALTER TABLE airport DROP COLUMN listed;
    ALTER TABLE airport DROP COLUMN point_groups;
    ALTER TABLE airport DROP COLUMN points_read_at;
    ALTER TABLE airport DROP COLUMN history;
    ALTER TABLE airport DROP COLUMN shared_seq;
    ALTER TABLE airport DROP COLUMN resume_floor;
    DROP TABLE tombstones;
    UPDATE schema_version SET version = 2;`);
  assert.doesNotMatch(tableSql(old, "objects"), /WITHOUT ROWID/);
  old.close();

  await service.start();
  const observer = await service.join(KEYS.observer1, "MIG3");
  const data = observer.initial.data;
  assert.equal(data.seq, 2);
  assert.deepEqual(
    data.objects.map(({ id, state }) => ({ id, state })),
    [
      { id: "SB_1", state: { on: true, big: 1.5e300 } },
      { id: "SB_2", state: false },
    ],
  );
  assert.deepEqual(data.sharedState, { runway: "27L" });
  // The upgraded tables take writes.
  const again = await service.join(KEYS.controller2, "MIG3");
  again.send({ type: "STATE_UPDATE", data: { objectId: "SB_1", patch: { on: false } } });
  assert.deepEqual((await observer.next("STATE_UPDATE")).data.state, { on: false, big: 1.5e300 });
  await again.close();
  await observer.close();

  await service.halt();
  const upgraded = new DatabaseSync(file, { readOnly: true });
  try {
    assert.match(tableSql(upgraded, "objects"), /WITHOUT ROWID/);
    assert.match(tableSql(upgraded, "shared_state"), /WITHOUT ROWID/);
    assert.equal(upgraded.prepare("SELECT version FROM schema_version").get().version, 7);
    const rows = upgraded.prepare("SELECT id, state FROM objects ORDER BY id").all();
    assert.deepEqual(
      rows.map(({ id, state }) => ({ id, state: JSON.parse(state) })),
      [
        { id: "SB_1", state: { on: false, big: 1.5e300 } },
        { id: "SB_2", state: false },
      ],
    );
  } finally {
    upgraded.close();
  }
  await service.start();
});
