// KEY_SOURCE=network: the running service's people, keys and bans, read where they are (a local
// stand-in of its database, bound as NETWORK_DB, with the tables of
// tests/fixtures/running-service.sql), with roles from a fake status service.
import { test, before, after, describe } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { Service, KEYS, CIDS } from "./harness.mjs";
import { FakeStatus } from "./fake-status.mjs";

const RECHECK_MS = 1500;

/** A key as the running service's website issues it. */
const networkKey = () => `BARS_${randomBytes(32).toString("hex")}`;

/** Cids for the running service's people, clear of the harness's accounts. */
let nextCid = 3_000_001;

/** `expires_at` as SQLite writes it: `YYYY-MM-DD HH:MM:SS`, UTC. */
const sqliteTime = (ms) => new Date(ms).toISOString().slice(0, 19).replace("T", " ");

/** A person of the running service: a `users` row with a fresh key, on the network as `callsign`. */
async function person(service, upstream, callsign = "BAW1", type = "pilot") {
  const cid = String(nextCid++);
  const key = networkKey();
  service.secrets.push(key);
  await service.networkDb
    .prepare("INSERT INTO users (vatsim_id, api_key, email, full_name) VALUES (?1, ?2, ?3, ?4)")
    .bind(cid, key, `${cid}@example.net`, "Test Person")
    .run();
  upstream.set(cid, [callsign, type]);
  return { cid, key };
}

function ban(service, cid, expiresAt = null) {
  return service.networkDb
    .prepare("INSERT OR REPLACE INTO bans (vatsim_id, reason, issued_by, expires_at) VALUES (?1, 'test', 'staff', ?2)")
    .bind(cid, expiresAt)
    .run();
}

function regenerate(service, cid) {
  const key = networkKey();
  return service.networkDb
    .prepare("UPDATE users SET api_key = ?2, last_api_key_regen = CURRENT_TIMESTAMP WHERE vatsim_id = ?1")
    .bind(cid, key)
    .run()
    .then(() => key);
}

describe("keys from the running service's database", () => {
  let upstream;
  let service;
  before(async () => {
    upstream = await new FakeStatus().start();
    service = await new Service(
      { ROLE_SOURCE: "vatsim", KEY_SOURCE: "network", VATSIM_STATUS_URL: upstream.url, VATSIM_RECHECK_MS: String(RECHECK_MS) },
      { network: true },
    ).start();
  });
  after(async () => {
    await service?.stop();
    await upstream?.stop();
  });

  test("a user's BARS_ key connects with the role the network gives", async () => {
    const controller = await person(service, upstream, "EGLL_TWR", "atc");
    const pilot = await person(service, upstream, "BAW123", "pilot");
    const c = await service.join(controller.key, "EGLL");
    const p = await service.join(pilot.key, "EGLL");
    assert.equal(c.initial.data.connectionType, "controller");
    assert.equal(c.initial.data.cid, controller.cid);
    assert.equal(p.initial.data.connectionType, "pilot");
    await Promise.all([c.close(), p.close()]);
  });

  test("unknown keys are 401, of the running service's shape or not", async () => {
    for (const key of [networkKey(), "made-up", `BARS_${"0".repeat(63)}`]) {
      const rejected = await service.reject(key, "EGLL");
      assert.equal(rejected.status, 401, key.slice(0, 8));
      assert.equal(rejected.body.error.code, "INVALID_API_KEY");
    }
  });

  test("bans: without end and in force refuse with 403, an expired one does not", async () => {
    const forever = await person(service, upstream);
    const inForce = await person(service, upstream);
    const expired = await person(service, upstream);
    const unreadable = await person(service, upstream);
    await ban(service, forever.cid, null);
    const until = Date.now() + 3_600_000;
    await ban(service, inForce.cid, sqliteTime(until));
    await ban(service, expired.cid, sqliteTime(Date.now() - 60_000));
    await ban(service, unreadable.cid, "next tuesday");

    const refusedForever = await service.reject(forever.key, "EGKK");
    assert.equal(refusedForever.status, 403);
    assert.equal(refusedForever.body.error.code, "BANNED");
    assert.doesNotMatch(refusedForever.body.error.message, /until/);

    const refusedInForce = await service.reject(inForce.key, "EGKK");
    assert.equal(refusedInForce.status, 403);
    assert.equal(refusedInForce.body.error.code, "BANNED");
    // In force up to and including its second.
    const shown = Number(/until (\d+)/.exec(refusedInForce.body.error.message)[1]);
    assert.equal(shown, Math.floor(until / 1000) * 1000 + 1);

    // A ban whose end cannot be read is taken as a ban without end.
    assert.equal((await service.reject(unreadable.key, "EGKK")).status, 403);

    const client = await service.join(expired.key, "EGKK");
    assert.equal(client.initial.data.cid, expired.cid);
    await client.close();
  });

  test("a ban set or lifted on the website applies at the next connection", async () => {
    const p = await person(service, upstream);
    (await service.join(p.key, "EGCC")).close();
    await ban(service, p.cid);
    assert.equal((await service.reject(p.key, "EGCC")).status, 403);
    await service.networkDb.prepare("DELETE FROM bans WHERE vatsim_id = ?1").bind(p.cid).run();
    const again = await service.join(p.key, "EGCC");
    assert.equal(again.initial.data.cid, p.cid);
    await again.close();
  });

  test("a regenerated key works at once and the replaced one is refused", async () => {
    const p = await person(service, upstream);
    const first = await service.join(p.key, "EGPH");
    await first.close();
    const newKey = await regenerate(service, p.cid);
    assert.equal((await service.reject(p.key, "EGPH")).status, 401);
    const second = await service.join(newKey, "EGPH");
    assert.equal(second.initial.data.cid, p.cid);
    await second.close();
  });

  test("open sockets: a ban closes 4003 and a regenerated key 4001 at the next re-check", async () => {
    const banned = await person(service, upstream);
    const regenerated = await person(service, upstream);
    const kept = await person(service, upstream);
    const a = await service.join(banned.key, "EGNX");
    const b = await service.join(regenerated.key, "EGNX");
    const c = await service.join(kept.key, "EGNX");
    await ban(service, banned.cid);
    await regenerate(service, regenerated.cid);
    const [closedA, closedB] = await Promise.all([a.closed, b.closed]);
    assert.equal(closedA.code, 4003);
    assert.match(closedA.reason, /banned/);
    assert.equal(closedB.code, 4001);
    // Someone whose standing did not change is kept through the same re-checks.
    const reply = await c.request({ type: "GET_STATE" });
    assert.equal(reply.type, "STATE_SNAPSHOT");
    assert.equal(c.closeInfo, undefined);
    await c.close();
  });

  test("many people at once are each answered for their own key", async () => {
    const good = await Promise.all(Array.from({ length: 40 }, () => person(service, upstream)));
    const banned = await Promise.all(Array.from({ length: 10 }, () => person(service, upstream)));
    for (const p of banned) await ban(service, p.cid);
    const unknown = Array.from({ length: 10 }, networkKey);
    const since = service.logs.length;
    const [joined, refusedBans, refusedUnknown] = await Promise.all([
      Promise.all(good.map((p) => service.join(p.key, "EGBB"))),
      Promise.all(banned.map((p) => service.reject(p.key, "EGBB"))),
      Promise.all(unknown.map((key) => service.reject(key, "EGBB"))),
    ]);
    joined.forEach((client, i) => assert.equal(client.initial.data.cid, good[i].cid));
    assert.ok(refusedBans.every((r) => r.status === 403 && r.body.error.code === "BANNED"));
    assert.ok(refusedUnknown.every((r) => r.status === 401));
    // Keys that arrived together were looked up together.
    const batch = await service.waitForLog((e) => e.event === "keys_checked_together" && e.keys > 1, 5000, since);
    assert.ok(batch.keys > 1);
    await Promise.all(joined.map((client) => client.close()));
  });

  test("our own accounts still work; a key both know is our own account", async () => {
    upstream.set(CIDS.controller1, ["EGLL_GND", "atc"]);
    const own = await service.join(KEYS.controller1, "EGSS");
    assert.equal(own.initial.data.cid, CIDS.controller1);
    await own.close();
    // The same key in the running service's database for a banned person: ours wins.
    const mine = await service.account("observer");
    const theirs = String(nextCid++);
    await service.networkDb.prepare("INSERT INTO users (vatsim_id, api_key) VALUES (?1, ?2)").bind(theirs, mine.key).run();
    await ban(service, theirs);
    upstream.set(mine.cid, ["BAW55", "pilot"]);
    const client = await service.join(mine.key, "EGSS");
    assert.equal(client.initial.data.cid, mine.cid);
    await client.close();
  });

  test("GET /state with a running service's key", async () => {
    const p = await person(service, upstream);
    const ok = await service.fetch("/state?airport=EGLL", { headers: { Authorization: `Bearer ${p.key}` } });
    assert.equal(ok.status, 200);
    const bad = await service.fetch("/state?airport=EGLL", { headers: { Authorization: `Bearer ${networkKey()}` } });
    assert.equal(bad.status, 401);
  });

  test("the key never reaches a log line", async () => {
    const p = await person(service, upstream);
    (await service.join(p.key, "EGAA")).close();
    await service.reject(networkKey(), "EGAA");
    const logged = JSON.stringify(service.logs);
    assert.ok(!logged.includes("BARS_"), "a key in the logs");
  });
});

describe("the running service's database, when it fails", () => {
  let upstream;
  before(async () => {
    upstream = await new FakeStatus().start();
  });
  after(async () => upstream?.stop());

  test("a missing table is a clear 500, logged, and no socket is left half-open", async () => {
    const service = await new Service(
      { ROLE_SOURCE: "vatsim", KEY_SOURCE: "network", VATSIM_STATUS_URL: upstream.url },
      { network: true },
    ).start();
    try {
      await service.networkDb.prepare("DROP TABLE bans").run();
      const p = String(nextCid++);
      const key = networkKey();
      await service.networkDb.prepare("INSERT INTO users (vatsim_id, api_key) VALUES (?1, ?2)").bind(p, key).run();
      upstream.set(p, ["BAW1", "pilot"]);
      const rejected = await service.reject(key, "EGFF");
      assert.equal(rejected.status, 500);
      assert.equal(rejected.body.error.code, "INTERNAL");
      assert.match(rejected.body.error.message, /look-up failed/);
      const logged = await service.waitForLog((e) => e.event === "account_lookup_failed");
      assert.match(logged.detail, /no such table: bans/);
      // Nothing was admitted: the airport has nobody, and our own keys still connect.
      const state = await (await service.fetch("/state?airport=EGFF")).json();
      assert.deepEqual(state.connections, { controllers: 0, pilots: 0 });
      upstream.set(CIDS.pilot1, ["BAW2", "pilot"]);
      const own = await service.join(KEYS.pilot1, "EGFF");
      assert.equal(own.initial.data.cid, CIDS.pilot1);
      await own.close();
    } finally {
      await service.stop();
    }
  });

  test("KEY_SOURCE=network without NETWORK_DB: 500 naming the binding", async () => {
    const service = await new Service({ ROLE_SOURCE: "vatsim", KEY_SOURCE: "network", VATSIM_STATUS_URL: upstream.url }).start();
    try {
      const rejected = await service.reject(KEYS.pilot1, "EGLL");
      assert.equal(rejected.status, 500);
      assert.match(rejected.body.error.message, /NETWORK_DB/);
      const state = await service.fetch("/state?airport=EGLL", { headers: { Authorization: `Bearer ${KEYS.pilot1}` } });
      assert.equal(state.status, 500);
    } finally {
      await service.stop();
    }
  });

  test("KEY_SOURCE=network with ROLE_SOURCE=static: 500 naming KEY_SOURCE", async () => {
    const service = await new Service({ KEY_SOURCE: "network" }, { network: true }).start();
    try {
      const rejected = await service.reject(KEYS.pilot1, "EGLL");
      assert.equal(rejected.status, 500);
      assert.match(rejected.body.error.message, /KEY_SOURCE.*ROLE_SOURCE/);
    } finally {
      await service.stop();
    }
  });

  test("without KEY_SOURCE=network the running service's keys are unknown (the default)", async () => {
    const service = await new Service({}, { network: true }).start();
    try {
      const key = networkKey();
      await service.networkDb.prepare("INSERT INTO users (vatsim_id, api_key) VALUES ('3999999', ?1)").bind(key).run();
      assert.equal((await service.reject(key, "EGLL")).status, 401);
      assert.equal((await service.join(KEYS.observer1, "EGLL")).initial.data.cid, CIDS.observer1);
    } finally {
      await service.stop();
    }
  });
});
