// The `vatsim` role source (issue #5) against a fake status upstream on 127.0.0.1, and the
// re-checks of live sessions (revoked key 4001, ban or role change 4003) for both sources.
import { test, before, after, describe } from "node:test";
import assert from "node:assert/strict";
import { Service, KEYS } from "./harness.mjs";
import { FakeStatus } from "./fake-status.mjs";
import { keepAlive, sleep, until } from "./helpers.mjs";

const RECHECK_MS = 1500;

/** A fresh account with its own key (the role stored with it is irrelevant under vatsim). */
const account = (service, role) => service.account(role);

/**
 * For the tests of a describe block: a fake status upstream, and a service that takes roles
 * from it (with `vars`), both started before the tests and stopped after them; `use` is given
 * them once started.
 */
function withUpstream(vars, use) {
  let upstream;
  let service;
  before(async () => {
    upstream = await new FakeStatus().start();
    service = await new Service({ ROLE_SOURCE: "vatsim", VATSIM_STATUS_URL: upstream.url, ...vars }).start();
    use(upstream, service);
  });
  after(async () => {
    await service?.stop();
    await upstream?.stop();
  });
}

describe("vatsim role source", () => {
  let upstream;
  let service;
  withUpstream(
    { VATSIM_CACHE_MS: "1000", VATSIM_TIMEOUT_MS: "800", VATSIM_RECHECK_MS: String(RECHECK_MS) },
    (u, s) => ([upstream, service] = [u, s]),
  );

  test("callsign and type map to roles; the highest of several connections wins", async () => {
    const cases = [
      [[["EGLL_TWR", "atc"]], "controller"],
      [[["egll_gnd", "ATC"]], "controller"],
      [[["LON_S_CTR", "atc"]], "controller"],
      [[["EGLL_ATIS", "atc"]], "observer"],
      [[["EGLL_OBS", "atc"]], "observer"],
      [[["BAW123", "pilot"]], "pilot"],
      [[["EGLL_ATIS", "atc"], ["EGLL_TWR", "atc"]], "controller"],
      [[["EGLL_OBS", "atc"], ["BAW9", "pilot"]], "pilot"],
    ];
    for (const [connections, role] of cases) {
      const { cid, key } = await account(service, role === "controller" ? "observer" : "controller");
      upstream.set(cid, ...connections);
      const client = await service.join(key, "VMAP");
      assert.equal(client.initial.data.connectionType, role, JSON.stringify(connections));
      assert.equal(client.initial.data.cid, cid);
      await client.close();
    }
  });

  test("a pilot's network callsign is shown in ONLINE_PILOTS and STOPBAR_CROSSING", async () => {
    const pilot = await account(service);
    const controller = await account(service);
    upstream.set(pilot.cid, ["DLH4AB", "pilot"]);
    upstream.set(controller.cid, ["VCAL_TWR", "atc"]);
    const c = await service.join(controller.key, "VCAL");
    const p = await service.join(pilot.key, "VCAL");
    const list = await p.request({ type: "GET_ONLINE_PILOTS" });
    assert.deepEqual(list.data.pilots, [{ pilotId: pilot.cid, cid: pilot.cid, callsign: "DLH4AB" }]);
    p.send({ type: "STOPBAR_CROSSING", data: { objectId: "SB_1" } });
    const crossing = await c.next("STOPBAR_CROSSING");
    assert.deepEqual(crossing.data, { objectId: "SB_1", pilotId: pilot.cid, controllerId: pilot.cid, callsign: "DLH4AB" });
    await p.close();
    await c.close();
  });

  test("not connected to the network: 403 NOT_CONNECTED before the upgrade", async () => {
    const { key } = await account(service);
    const rejected = await service.reject(key, "VNOT");
    assert.equal(rejected.status, 403);
    assert.equal(rejected.body.error.code, "NOT_CONNECTED");
    // GET /state is public: a given key is checked (unknown, banned), not the network.
    const state = await service.fetch(`/state?airport=VNOT&key=${key}`);
    assert.equal(state.status, 200);
  });

  test("upstream errors, timeouts and refused connections give 503 UPSTREAM_UNAVAILABLE", async () => {
    for (const mode of ["error", "hang"]) {
      const { cid, key } = await account(service);
      upstream.set(cid, ["EGLL_TWR", "atc"]);
      upstream.mode = mode;
      try {
        const started = Date.now();
        const rejected = await service.reject(key, "VDWN");
        assert.equal(rejected.status, 503, mode);
        assert.equal(rejected.body.error.code, "UPSTREAM_UNAVAILABLE");
        if (mode === "hang") assert.ok(Date.now() - started < 3000, "the timeout applies");
      } finally {
        upstream.mode = "ok";
      }
      // Failures are not cached: the next attempt asks again and succeeds.
      const client = await service.join(key, "VDWN");
      assert.equal(client.initial.data.connectionType, "controller");
      await client.close();
    }
  });

  test("a burst of connections by one person makes one upstream request", async () => {
    const { cid, key } = await account(service);
    upstream.set(cid, ["BAW77", "pilot"]);
    upstream.delayMs = 300;
    try {
      const clients = await Promise.all(Array.from({ length: 5 }, () => service.join(key, "VBUR")));
      assert.equal(upstream.count(cid), 1);
      for (const c of clients) assert.equal(c.initial.data.connectionType, "pilot");
      // Within the cache period a new connection asks nothing.
      const more = await service.join(key, "VBUR");
      assert.equal(upstream.count(cid), 1);
      await Promise.all([...clients, more].map((c) => c.close()));
    } finally {
      upstream.delayMs = 0;
    }
  });

  test("one person connecting to eight airports at once makes one upstream request", async () => {
    const { cid, key } = await account(service);
    upstream.set(cid, ["LON_S_CTR", "atc"]);
    upstream.delayMs = 300;
    try {
      const airports = Array.from({ length: 8 }, (_, i) => `VAP${i}`);
      const clients = await Promise.all(airports.map((airport) => service.join(key, airport)));
      assert.equal(upstream.count(cid), 1, "one look-up shared by every airport");
      for (const c of clients) assert.equal(c.initial.data.connectionType, "controller");
      await Promise.all(clients.map((c) => c.close()));
    } finally {
      upstream.delayMs = 0;
    }
  });

  test("a role change closes a live session with 4003 after an ERROR", async () => {
    const { cid, key } = await account(service);
    upstream.set(cid, ["VROL_TWR", "atc"]);
    const client = await service.join(key, "VROL");
    assert.equal(client.initial.data.connectionType, "controller");
    upstream.set(cid, ["BAW5", "pilot"]);
    const error = await client.next("ERROR", RECHECK_MS * 4);
    assert.match(error.data.message, /role changed from controller to pilot/);
    const closed = await client.closed;
    assert.equal(closed.code, 4003);
    assert.match(closed.reason, /role changed/);
  });

  test("leaving the network closes a live session with 4003", async () => {
    const { cid, key } = await account(service);
    upstream.set(cid, ["BAW6", "pilot"]);
    const client = await service.join(key, "VLEF");
    upstream.set(cid);
    const closed = await client.closed;
    assert.equal(closed.code, 4003);
    assert.match(closed.reason, /no longer connected/);
  });

  test("a ban closes a live session with 4003, a revoked key with 4001", async () => {
    const banned = await account(service);
    const revoked = await account(service);
    upstream.set(banned.cid, ["BAW7", "pilot"]);
    upstream.set(revoked.cid, ["BAW8", "pilot"]);
    const a = await service.join(banned.key, "VBAN");
    const b = await service.join(revoked.key, "VBAN");
    await service.db.prepare("UPDATE accounts SET banned = 1 WHERE cid = ?1").bind(banned.cid).run();
    await service.db.prepare("UPDATE api_keys SET revoked_at = 1 WHERE key_hash = ?1").bind(revoked.hash).run();
    const [closedA, closedB] = await Promise.all([a.closed, b.closed]);
    assert.equal(closedA.code, 4003);
    assert.match(closedA.reason, /banned/);
    assert.equal(closedB.code, 4001);
    assert.ok(a.all("ERROR").length === 1 && b.all("ERROR").length === 1);
  });

  test("an upstream outage keeps live sessions; the next re-check still works", async () => {
    const { cid, key } = await account(service);
    upstream.set(cid, ["BAW10", "pilot"]);
    const client = await service.join(key, "VOUT");
    const asked = upstream.count(cid);
    upstream.mode = "error";
    try {
      // Two re-checks hit the failing upstream...
      await until(() => upstream.count(cid) >= asked + 2, { ms: RECHECK_MS * 6, what: "two re-checks" });
      // ...and the session is still served.
      const reply = await client.request({ type: "GET_STATE" });
      assert.equal(reply.type, "STATE_SNAPSHOT");
      assert.equal(client.closeInfo, undefined);
    } finally {
      upstream.mode = "ok";
    }
    // Once the upstream is back, changes are seen again.
    upstream.set(cid);
    assert.equal((await client.closed).code, 4003);
  });

  test("a pilot's callsign is refreshed by the re-check", async () => {
    const { cid, key } = await account(service);
    upstream.set(cid, ["EZY1", "pilot"]);
    const client = await service.join(key, "VCSR");
    upstream.set(cid, ["EZY2", "pilot"]);
    await until(
      async () => {
        const list = await client.request({ type: "GET_ONLINE_PILOTS" });
        return list.data.pilots[0]?.callsign === "EZY2";
      },
      { ms: RECHECK_MS * 6, what: "the new callsign" },
    );
    await client.close();
  });
});

describe("an outage during re-checks (short timers)", () => {
  const HEARTBEAT_MS = 4000;
  let upstream;
  let service;
  withUpstream(
    {
      HEARTBEAT_INTERVAL_MS: String(HEARTBEAT_MS),
      IDLE_TIMEOUT_MS: "6000",
      VATSIM_RECHECK_MS: "8000",
      VATSIM_TIMEOUT_MS: "5000",
      VATSIM_CACHE_MS: "1000",
    },
    (u, s) => ([upstream, service] = [u, s]),
  );

  // Three people at one airport who only answer the server's heartbeats (the EuroScope
  // plugin). A re-check asks the network about each of them: liveness must not wait for it.
  test("clients that only answer heartbeats are never closed while the status service hangs, then crawls", { timeout: 120_000 }, async () => {
    const people = [];
    for (const [callsign, type] of [["VHNG_TWR", "atc"], ["BAW1", "pilot"], ["EZY2", "pilot"]]) {
      const { cid, key } = await account(service);
      upstream.set(cid, [callsign, type]);
      people.push({ cid, key });
    }
    const clients = [];
    for (const { key } of people) {
      const client = await service.join(key, "VHNG");
      keepAlive(client);
      clients.push(client);
    }
    const joined = Date.now();
    const stillOpen = async (ms, what) => {
      await Promise.race([...clients.map((c) => c.closed), sleep(ms)]);
      for (const c of clients) assert.equal(c.closeInfo, undefined, `${what}: closed ${JSON.stringify(c.closeInfo)}`);
    };
    await stillOpen(10_000 - (Date.now() - joined), "before the outage");
    upstream.mode = "hang";
    const asked = people.map(({ cid }) => upstream.count(cid));
    const beats = clients[0].all("HEARTBEAT").length;
    // New connects are refused meanwhile, as always.
    const { key } = await account(service);
    assert.equal((await service.reject(key, "VHNG")).status, 503);
    await stillOpen(26_000, "while the status service hangs");
    // The re-checks did ask (and hang), and the heartbeats went on meanwhile.
    assert.ok(people.every(({ cid }, i) => upstream.count(cid) > asked[i]), "re-checks asked the upstream");
    const during = clients[0].all("HEARTBEAT").length - beats;
    assert.ok(during >= 26_000 / HEARTBEAT_MS - 2, `${during} heartbeats in 26 s`);
    // Slow answers, just within the upstream timeout, one person after another would also
    // have held the heartbeats back.
    upstream.mode = "ok";
    upstream.delayMs = 4500;
    await stillOpen(20_000, "while the status service crawls");
    upstream.delayMs = 0;
    await Promise.all(clients.map((c) => c.close()));
  });
});

describe("controller scope: prefix", () => {
  let upstream;
  let service;
  withUpstream({ CONTROLLER_SCOPE: "prefix" }, (u, s) => ([upstream, service] = [u, s]));

  test("a controller controls only the airport of its callsign; elsewhere it observes", async () => {
    const { cid, key } = await account(service);
    upstream.set(cid, ["EGLL_TWR", "atc"]);
    const home = await service.join(key, "egll");
    assert.equal(home.initial.data.connectionType, "controller");
    const away = await service.join(key, "EGKK");
    assert.equal(away.initial.data.connectionType, "observer");
    const forbidden = await away.request({ type: "STATE_UPDATE", data: { objectId: "SB_1", state: true } });
    assert.equal(forbidden.data.code, "FORBIDDEN");
    await home.close();
    await away.close();
  });
});

describe("static role source: live sessions are checked again too", () => {
  let service;
  before(async () => {
    service = await new Service({ VATSIM_RECHECK_MS: String(RECHECK_MS) }).start();
  });
  after(async () => {
    await service?.stop();
  });

  test("revoking a key closes its sockets with 4001; others stay", async () => {
    const victim = await account(service, "pilot");
    const client = await service.join(victim.key, "SREV");
    const bystander = await service.join(KEYS.observer1, "SREV");
    await service.db.prepare("UPDATE api_keys SET revoked_at = 1 WHERE key_hash = ?1").bind(victim.hash).run();
    const error = await client.next("ERROR", RECHECK_MS * 4);
    assert.match(error.data.message, /revoked/);
    assert.equal((await client.closed).code, 4001);
    assert.equal((await bystander.request({ type: "GET_STATE" })).type, "STATE_SNAPSHOT");
    await bystander.close();
  });

  test("banning an account or changing its role closes with 4003", async () => {
    const banned = await account(service, "controller");
    const demoted = await account(service, "controller");
    const a = await service.join(banned.key, "SBAN");
    const b = await service.join(demoted.key, "SBAN");
    await service.db.prepare("UPDATE accounts SET banned = 1 WHERE cid = ?1").bind(banned.cid).run();
    await service.db.prepare("UPDATE accounts SET role = 'observer' WHERE cid = ?1").bind(demoted.cid).run();
    const [closedA, closedB] = await Promise.all([a.closed, b.closed]);
    assert.equal(closedA.code, 4003);
    assert.equal(closedB.code, 4003);
    assert.match(closedB.reason, /controller to observer/);
    // A banned account cannot come back.
    assert.equal((await service.reject(banned.key, "SBAN")).status, 403);
  });
});
