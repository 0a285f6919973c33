// Connecting (PROTOCOL §1, §2) and the plain HTTP endpoints (§6): the rejection table in its
// precedence order, key sources, connection caps, airport canonicalisation, INITIAL_STATE per
// role, GET /state, GET /health and 404s.
import { test, describe, before, after } from "node:test";
import assert from "node:assert/strict";
import http from "node:http";
import { randomBytes } from "node:crypto";
import { Service, KEYS, CIDS } from "./harness.mjs";
import { checkHttpBody } from "./contract.mjs";
import { sleep, until } from "./helpers.mjs";

let service;
before(async () => {
  service = await new Service().start();
});
after(async () => {
  await service?.stop();
});

const UNKNOWN_KEY = "no-such-key-7f3a9c2e";

/** Options that send `key` in an Authorization: Bearer header. */
const bearer = (key) => ({ headers: { Authorization: `Bearer ${key}` } });

/** Headers of a real WebSocket handshake, with the Upgrade value of choice. */
function upgradeHeaders(upgrade = "websocket") {
  return {
    Connection: "Upgrade",
    Upgrade: upgrade,
    "Sec-WebSocket-Version": "13",
    "Sec-WebSocket-Key": randomBytes(16).toString("base64"),
  };
}

/**
 * A request sent with node:http, which (unlike fetch) lets us send any method with any Upgrade
 * header. Resolves with { status, contentType, body } (body parsed as JSON when it is JSON), or
 * { status: 101, upgraded: true } when the server switched protocols.
 */
function raw(svc, path, { method = "GET", headers = {} } = {}) {
  return new Promise((resolve, reject) => {
    const req = http.request(svc.httpUrl(path), { method, headers });
    req.on("response", (res) => {
      let text = "";
      res.setEncoding("utf8");
      res.on("data", (d) => (text += d));
      res.on("end", () => {
        const answer = { status: res.statusCode, contentType: res.headers["content-type"], body: bodyOf(text) };
        try {
          if (text) checkHttpBody(path, answer.status, answer.contentType, answer.body);
          resolve(answer);
        } catch (error) {
          reject(error);
        }
      });
    });
    req.on("upgrade", (res, socket) => {
      socket.destroy();
      resolve({ status: res.statusCode, upgraded: true });
    });
    req.on("error", reject);
    req.end();
  });
}

/** A fetch() response as { status, contentType, body }. */
async function viaFetch(svc, path, init) {
  const res = await svc.fetch(path, init);
  return { status: res.status, contentType: res.headers.get("content-type"), body: bodyOf(await res.text()) };
}

/** A response body parsed as JSON when it is JSON; else the text, for the assertion on its shape to show. */
function bodyOf(text) {
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

/** The contract's error response: status, JSON content type, exactly {"error":{"code","message"}}. */
function assertError(res, status, code, what = "") {
  const got = `${what} → ${res.status} ${JSON.stringify(res.body)}`;
  assert.equal(res.status, status, `expected ${status} ${code ?? ""}: ${got}`);
  assert.match(res.contentType ?? "", /^application\/json\b/i, `content type of ${got}`);
  assert.ok(res.body && typeof res.body === "object", `JSON body: ${got}`);
  assert.deepEqual(Object.keys(res.body), ["error"], `body shape: ${got}`);
  assert.deepEqual(Object.keys(res.body.error).sort(), ["code", "message"], `error shape: ${got}`);
  if (code !== undefined) assert.equal(res.body.error.code, code, got);
  else assert.ok(typeof res.body.error.code === "string" && res.body.error.code.length > 0, got);
  assert.equal(typeof res.body.error.message, "string", got);
  assert.ok(res.body.error.message.length > 0, `non-empty message: ${got}`);
}

/** Joins, retrying while the server answers 429 (a slot is freed once a close is processed). */
function joinWhenFree(svc, key, airport, timeoutMs = 5000) {
  return until(
    async () => {
      try {
        return await svc.join(key, airport);
      } catch (error) {
        if (!/upgrade refused: 429/.test(error.message)) throw error;
        return null;
      }
    },
    { ms: timeoutMs, every: 20, what: "a free slot (the upgrade was still refused with 429)" },
  );
}

const INITIAL_FIELDS = [
  "connectionType",
  "cid",
  "objects",
  "sharedState",
  "controllers",
  "offline",
  "seq",
  "heartbeatIntervalMs",
  "idleTimeoutMs",
];

/** Checks an INITIAL_STATE packet's envelope and the fields every role gets. */
function assertInitial(client, airport, role, cid) {
  const first = client.received[0];
  assert.equal(first?.type, "INITIAL_STATE", "INITIAL_STATE is the first message on the socket");
  assert.equal(first, client.initial);
  assert.equal(first.airport, airport);
  assert.equal(typeof first.timestamp, "number");
  assert.ok(!("requestId" in first), "INITIAL_STATE carries no requestId");
  const data = first.data;
  for (const field of INITIAL_FIELDS) assert.ok(field in data, `INITIAL_STATE data has ${field}`);
  assert.equal(data.connectionType, role);
  assert.equal(typeof data.cid, "string", "cid is a JSON string");
  assert.equal(data.cid, cid);
  assert.ok(Array.isArray(data.objects));
  assert.ok(data.sharedState && typeof data.sharedState === "object" && !Array.isArray(data.sharedState));
  assert.ok(Array.isArray(data.controllers));
  for (const c of data.controllers) assert.match(c, /^\d+$/, "controller ids are digit strings");
  assert.equal(typeof data.offline, "boolean");
  assert.ok(Number.isInteger(data.seq) && data.seq >= 0, "seq is a non-negative integer");
  assert.equal(data.heartbeatIntervalMs, Number(service.vars.HEARTBEAT_INTERVAL_MS));
  assert.equal(data.idleTimeoutMs, Number(service.vars.IDLE_TIMEOUT_MS));
  return data;
}

// ---------------------------------------------------------------------------------------------
// §2 rejection table, in order
// ---------------------------------------------------------------------------------------------

test("405 METHOD_NOT_ALLOWED for any non-GET /connect, before every other check", async () => {
  const valid = `/connect?airport=KMTH&key=${KEYS.controller1}`;
  const cases = [
    ["POST", "/connect"], // no upgrade, no airport, no key
    ["POST", valid], // otherwise valid, but no upgrade header (the contract's explicit case)
    ["POST", `/connect?airport=x&key=${UNKNOWN_KEY}`],
    ["POST", `/connect?airport=KMTH&key=${KEYS.banned1}`],
    ["PUT", valid],
    ["DELETE", "/connect"],
    ["PATCH", valid],
  ];
  for (const [method, path] of cases) {
    assertError(await raw(service, path, { method }), 405, "METHOD_NOT_ALLOWED", `${method} ${path}`);
  }
  // A non-GET that carries a WebSocket handshake never reaches the Worker under workerd (its HTTP
  // server answers 400 text/plain "WebSocket must be initiated with a GET request."), which is
  // why the contract pins down only the POST without an upgrade header. It must still never be
  // upgraded.
  for (const method of ["POST", "PUT"]) {
    const res = await raw(service, valid, { method, headers: upgradeHeaders() });
    assert.ok(res.status >= 400 && res.status < 500, `${method} with a handshake → ${JSON.stringify(res)}`);
  }
});

test("426 UPGRADE_REQUIRED for a GET /connect without Upgrade: websocket, before airport and key", async () => {
  const cases = [
    [`/connect?airport=KUPR&key=${KEYS.controller1}`, {}], // otherwise valid
    ["/connect", {}], // no airport, no key
    [`/connect?airport=x&key=${UNKNOWN_KEY}`, {}],
    [`/connect?airport=KUPR&key=${KEYS.banned1}`, {}],
    [`/connect?airport=KUPR`, { Authorization: `Bearer ${KEYS.controller1}` }],
  ];
  for (const [path, headers] of cases) {
    assertError(await viaFetch(service, path, { headers }), 426, "UPGRADE_REQUIRED", `GET ${path}`);
  }
  // An Upgrade header naming another protocol is not a WebSocket upgrade.
  const h2c = await raw(service, `/connect?airport=KUPR&key=${KEYS.controller1}`, {
    headers: { Connection: "Upgrade", Upgrade: "h2c" },
  });
  assertError(h2c, 426, "UPGRADE_REQUIRED", "Upgrade: h2c");
});

test("the Upgrade header value is matched case-insensitively", async () => {
  // Each request gets past the upgrade check and stops at the next row of the table...
  const mixed = await raw(service, "/connect?airport=x", { headers: upgradeHeaders("WebSocket") });
  assertError(mixed, 400, "INVALID_AIRPORT", "Upgrade: WebSocket, bad airport");
  const upper = await raw(service, "/connect?airport=KCAS", { headers: upgradeHeaders("WEBSOCKET") });
  assertError(upper, 401, "MISSING_API_KEY", "Upgrade: WEBSOCKET, no key");
  const unknown = await raw(service, `/connect?airport=KCAS&key=${UNKNOWN_KEY}`, {
    headers: upgradeHeaders("WebSocket"),
  });
  assertError(unknown, 401, "INVALID_API_KEY", "Upgrade: WebSocket, unknown key");
  // ...and a valid one is upgraded.
  const ok = await raw(service, `/connect?airport=KCAS&key=${KEYS.observer1}`, {
    headers: upgradeHeaders("WebSocket"),
  });
  assert.equal(ok.status, 101, `Upgrade: WebSocket with a valid key → ${JSON.stringify(ok)}`);
  assert.equal(ok.upgraded, true);
});

test("400 INVALID_AIRPORT unless airport is 4 × [A-Za-z0-9], checked before the key", async () => {
  const missing = await raw(service, `/connect?key=${KEYS.controller1}`, { headers: upgradeHeaders() });
  assertError(missing, 400, "INVALID_AIRPORT", "airport missing");
  const missingNoKey = await raw(service, "/connect", { headers: upgradeHeaders() });
  assertError(missingNoKey, 400, "INVALID_AIRPORT", "airport and key missing");

  const bad = ["", "EGL", "EGLLL", "eg", "EG-L", "EG_L", "EGL!", "EG%20L", "%C3%89GLL", "EGL%00", "E.LL"];
  for (const airport of bad) {
    for (const key of [KEYS.controller1, undefined, UNKNOWN_KEY, KEYS.banned1]) {
      assertError(await service.reject(key, airport), 400, "INVALID_AIRPORT", `airport=${airport} key=${key}`);
    }
  }
});

test("401 MISSING_API_KEY with no key in the query or the Authorization header", async () => {
  assertError(await service.reject(undefined, "KMIS"), 401, "MISSING_API_KEY", "no key");
  // An Authorization header that carries no Bearer key is not a key either.
  assertError(
    await service.reject(undefined, "KMIS", { headers: { Authorization: "Bearer " } }),
    401,
    "MISSING_API_KEY",
    "empty Bearer",
  );
});

test("a browser's key as a subprotocol: accepted and the service's protocol echoed, never in a URL", async () => {
  const offer = (key) => ({ protocols: ["airport-realtime", `airport-key.${key}`] });
  const client = await service.open("/connect?airport=KSUB", offer(KEYS.observer1));
  assert.equal(client.ws.protocol, "airport-realtime");
  assert.equal(client.initial.data.cid, CIDS.observer1);
  await client.close();
  // Offered alone, the key's own subprotocol is the one answered (RFC 6455: one of those offered).
  const alone = await service.open("/connect?airport=KSUB", { protocols: [`airport-key.${KEYS.pilot1}`] });
  assert.equal(alone.ws.protocol, `airport-key.${KEYS.pilot1}`);
  await alone.close();
  // A wrong key is refused like any bad key; a banned one like any banned one.
  const header = (key) => ({ headers: { "Sec-WebSocket-Protocol": `airport-realtime, airport-key.${key}` } });
  assertError(await service.reject(undefined, "KSUB", header(UNKNOWN_KEY)), 401, "INVALID_API_KEY", "wrong");
  assertError(await service.reject(undefined, "KSUB", header(KEYS.banned1)), 403, "BANNED", "banned");
  // Offering only the service's protocol is no key.
  const none = { headers: { "Sec-WebSocket-Protocol": "airport-realtime" } };
  assertError(await service.reject(undefined, "KSUB", none), 401, "MISSING_API_KEY", "no key");
});

test("401 INVALID_API_KEY for an unknown key, from the query or a Bearer header", async () => {
  assertError(await service.reject(UNKNOWN_KEY, "KUNK"), 401, "INVALID_API_KEY", "query");
  assertError(await service.reject(undefined, "KUNK", bearer(UNKNOWN_KEY)), 401, "INVALID_API_KEY", "Bearer");
  // A key that differs from a real one only by case is a different key.
  assertError(await service.reject(KEYS.controller1.toUpperCase(), "KUNK"), 401, "INVALID_API_KEY", "upper-cased");
});

test("403 BANNED for a banned account, from the query or a Bearer header", async () => {
  assertError(await service.reject(KEYS.banned1, "KBAN"), 403, "BANNED", "query");
  assertError(await service.reject(undefined, "KBAN", bearer(KEYS.banned1)), 403, "BANNED", "Bearer");
});

test("connections arriving together are each answered for their own key", async () => {
  // The airport looks up every key that arrives while a look-up is under way in one query:
  // good, unknown and banned keys in one burst must still get their own answers.
  const airport = "ZBAT";
  const people = await Promise.all(Array.from({ length: 12 }, () => service.account("pilot")));
  const unknown = Array.from({ length: 4 }, (_, i) => `${UNKNOWN_KEY}-${i}`);
  const since = service.logs.length;
  const [joined, refused, banned] = await Promise.all([
    Promise.all(people.map(({ key }) => service.join(key, airport))),
    Promise.all(unknown.map((key) => service.reject(key, airport))),
    service.reject(KEYS.banned1, airport),
  ]);
  assert.deepEqual(
    joined.map((client) => client.initial.data.connectionType),
    people.map(() => "pilot"),
  );
  for (const response of refused) assertError(response, 401, "INVALID_API_KEY", "unknown key in a burst");
  assertError(banned, 403, "BANNED", "banned key in a burst");
  const batches = service.logs.slice(since).filter((e) => e.event === "keys_checked_together");
  assert.ok(batches.length > 0, "some keys of the burst were checked in one query");
  await Promise.all(joined.map((client) => client.close()));
});

test("a refused key ahead of a burst: the airport is loaded once and holds every socket", async () => {
  // The unknown key's check goes first; the others may gather behind it and resume together
  // into an airport nobody has loaded yet (the load re-checks after its await for this).
  const airport = "ZONE";
  const people = await Promise.all(Array.from({ length: 8 }, () => service.account("pilot")));
  const since = service.logs.length;
  const refused = service.reject(UNKNOWN_KEY, airport);
  const joined = await Promise.all(people.map(({ key }) => service.join(key, airport)));
  assertError(await refused, 401, "INVALID_API_KEY", "the first, alone");
  // A load's line is written after its event's replies: wait for it, then for a barrier's,
  // which comes after any other load of this airport (workerd writes its lines in order).
  const isLoaded = (icao) => (e) => e.event === "airport_loaded" && e.airport === icao;
  await service.waitForLog(isLoaded(airport), 5000, since);
  const barrier = await service.join(KEYS.observer1, "ZONB");
  await service.waitForLog(isLoaded("ZONB"), 5000, since);
  const loads = service.logs.slice(since).filter(isLoaded(airport));
  assert.equal(loads.length, 1, JSON.stringify(loads));
  await barrier.close();
  // One room holds every socket: a change reaches all of them.
  const controller = await service.join(KEYS.controller1, airport);
  controller.send({ type: "STATE_UPDATE", data: { objectId: "SB_ONE", state: true } });
  await Promise.all(joined.map((client) => client.next("STATE_UPDATE")));
  await Promise.all([...joined, controller].map((client) => client.close()));
});

test("a key in an Authorization: Bearer header connects like a query key", async () => {
  const client = await service.connect(undefined, "KBRR", bearer(KEYS.pilot1));
  client.initial = await client.next("INITIAL_STATE");
  const data = assertInitial(client, "KBRR", "pilot", CIDS.pilot1);
  assert.equal(data.offline, true);

  const controller = await service.connect(undefined, "KBRR", bearer(KEYS.controller2));
  controller.initial = await controller.next("INITIAL_STATE");
  assertInitial(controller, "KBRR", "controller", CIDS.controller2);
  assert.deepEqual(controller.initial.data.controllers, [CIDS.controller2]);
  await Promise.all([client.close(), controller.close()]);
});

test("an unknown key is rejected before the airport is loaded", async () => {
  const airport = "ZUNK";
  const barrier = "ZBAR";
  const isLoaded = (icao) => (e) => e.event === "airport_loaded" && e.airport === icao;

  assertError(await service.reject(UNKNOWN_KEY, airport), 401, "INVALID_API_KEY", "query");
  assertError(await service.reject(undefined, airport, bearer(UNKNOWN_KEY)), 401, "INVALID_API_KEY", "Bearer");
  // Barrier: a valid connection to another airport, logged after anything the rejected requests
  // could have logged (workerd writes its log lines in order).
  const other = await service.join(KEYS.observer1, barrier);
  await service.waitForLog(isLoaded(barrier));
  assert.equal(
    service.logs.filter(isLoaded(airport)).length,
    0,
    `no airport_loaded for ${airport} after rejecting an unknown key: ${JSON.stringify(service.logs.filter(isLoaded(airport)))}`,
  );

  // The log does record a real wake-up of that airport.
  const since = service.logs.length;
  const client = await service.join(KEYS.observer1, airport);
  await service.waitForLog(isLoaded(airport), 5000, since);

  // The key never appears in a log line.
  const logged = JSON.stringify(service.logs);
  assert.ok(!logged.includes(UNKNOWN_KEY), "the unknown key is not logged");
  for (const key of Object.values(KEYS)) assert.ok(!logged.includes(key), `${key} is not logged`);
  await Promise.all([other.close(), client.close()]);
});

describe("connection caps (MAX_SOCKETS_PER_KEY=2, MAX_SOCKETS_PER_AIRPORT=3)", () => {
  let capped;
  before(async () => {
    capped = await new Service({ MAX_SOCKETS_PER_KEY: "2", MAX_SOCKETS_PER_AIRPORT: "3" }).start();
  });
  after(async () => {
    await capped?.stop();
  });

  test("429 TOO_MANY_CONNECTIONS per key per airport; a closed socket frees its slot", async () => {
    const a = await capped.join(KEYS.controller1, "CAPK");
    const b = await capped.join(KEYS.controller1, "CAPK");
    assertError(await capped.reject(KEYS.controller1, "CAPK"), 429, "TOO_MANY_CONNECTIONS", "3rd socket of a key");
    // The cap is per key, whichever way the key is sent.
    assertError(await capped.reject(undefined, "CAPK", bearer(KEYS.controller1)), 429, "TOO_MANY_CONNECTIONS", "3rd socket of a key, via Bearer");
    // Per airport: the same key is welcome at another airport.
    const elsewhere = await capped.join(KEYS.controller1, "CAPL");
    assert.equal(elsewhere.initial.data.cid, CIDS.controller1);

    // Closing one socket frees its slot once the server has processed the close.
    await a.close();
    const c = await joinWhenFree(capped, KEYS.controller1, "CAPK");
    assertInitial(c, "CAPK", "controller", CIDS.controller1);
    // ...exactly one slot: the key is at its cap again.
    assertError(await capped.reject(KEYS.controller1, "CAPK"), 429, "TOO_MANY_CONNECTIONS", "cap again");
    await Promise.all([b.close(), c.close(), elsewhere.close()]);
  });

  test("429 TOO_MANY_CONNECTIONS per airport, after the key and ban checks; other airports unaffected", async () => {
    const sockets = [
      await capped.join(KEYS.controller2, "CAPA"),
      await capped.join(KEYS.pilot1, "CAPA"),
      await capped.join(KEYS.observer1, "CAPA"),
    ];
    for (const key of [KEYS.pilot2, KEYS.controller1]) {
      assertError(await capped.reject(key, "CAPA"), 429, "TOO_MANY_CONNECTIONS", `${key} at a full airport`);
    }
    // Earlier rows of the table win over the cap.
    assertError(await capped.reject(UNKNOWN_KEY, "CAPA"), 401, "INVALID_API_KEY", "unknown key at a full airport");
    assertError(await capped.reject(KEYS.banned1, "CAPA"), 403, "BANNED", "banned key at a full airport");
    assertError(await capped.reject(undefined, "CAPA"), 401, "MISSING_API_KEY", "no key at a full airport");

    // The cap is per airport: another airport still accepts.
    const other = await capped.join(KEYS.pilot2, "CAPB");
    assertInitial(other, "CAPB", "pilot", CIDS.pilot2);

    // Closing a socket frees a slot at the full airport.
    await sockets[1].close();
    const replacement = await joinWhenFree(capped, KEYS.pilot2, "CAPA");
    assertInitial(replacement, "CAPA", "pilot", CIDS.pilot2);
    assertError(await capped.reject(KEYS.controller1, "CAPA"), 429, "TOO_MANY_CONNECTIONS", "full again");

    // An abruptly dropped socket (no close handshake) frees its slot too.
    sockets[2].ws.terminate();
    await sockets[2].closed;
    const again = await joinWhenFree(capped, KEYS.controller1, "CAPA");
    assertInitial(again, "CAPA", "controller", CIDS.controller1);

    await Promise.all([sockets[0].close(), replacement.close(), other.close(), again.close()]);
  });
});

// ---------------------------------------------------------------------------------------------
// Airport canonicalisation and INITIAL_STATE
// ---------------------------------------------------------------------------------------------

test("airport codes are case-insensitive: lfpg, LFPG and LfPg share one airport, named LFPG", async () => {
  const controller = await service.join(KEYS.controller1, "lfpg");
  assertInitial(controller, "LFPG", "controller", CIDS.controller1);
  const pilot = await service.join(KEYS.pilot1, "LFPG");
  assertInitial(pilot, "LFPG", "pilot", CIDS.pilot1);
  assert.deepEqual(pilot.initial.data.controllers, [CIDS.controller1], "the pilot sees the lfpg controller");
  assert.equal(pilot.initial.data.offline, false);

  controller.send({ type: "STATE_UPDATE", data: { objectId: "SB_09L_A1", state: true } });
  const update = await pilot.next("STATE_UPDATE");
  assert.equal(update.airport, "LFPG");
  assert.deepEqual(
    { objectId: update.data.objectId, state: update.data.state, controllerId: update.data.controllerId },
    { objectId: "SB_09L_A1", state: true, controllerId: CIDS.controller1 },
  );

  // A controller on a third spelling joins the same airport, and the first controller hears it.
  const second = await service.join(KEYS.controller2, "LfPg");
  assertInitial(second, "LFPG", "controller", CIDS.controller2);
  assert.deepEqual([...second.initial.data.controllers].sort(), [CIDS.controller1, CIDS.controller2]);
  assert.deepEqual(
    second.initial.data.objects.map((o) => [o.id, o.state]),
    [["SB_09L_A1", true]],
    "the update made through lfpg is in LfPg's INITIAL_STATE",
  );
  const announced = await controller.next("CONTROLLER_CONNECT");
  assert.equal(announced.airport, "LFPG");
  assert.equal(announced.data.controllerId, CIDS.controller2);

  // And the other way round: an update made through LfPg reaches lfpg and LFPG.
  second.send({ type: "STATE_UPDATE", data: { objectId: "SB_09L_A1", state: false } });
  for (const client of [controller, pilot]) {
    const u = await client.next("STATE_UPDATE");
    assert.equal(u.airport, "LFPG");
    assert.equal(u.data.state, false);
    assert.equal(u.data.controllerId, CIDS.controller2);
  }
  assert.ok(
    !service.logs.some((e) => typeof e.airport === "string" && e.airport !== "LFPG" && e.airport.toUpperCase() === "LFPG"),
    "only the canonical code is ever used for the airport",
  );
  await Promise.all([controller.close(), pilot.close(), second.close()]);
});

test("INITIAL_STATE is first and correct for each role", async () => {
  const airport = "EDDF";
  // Only a pilot and an observer: offline, no controllers, empty state.
  const pilot = await service.join(KEYS.pilot1, airport);
  let data = assertInitial(pilot, airport, "pilot", CIDS.pilot1);
  assert.deepEqual(data.objects, []);
  assert.deepEqual(data.sharedState, {});
  assert.deepEqual(data.controllers, []);
  assert.equal(data.offline, true);
  const seq0 = data.seq;

  const observer = await service.join(KEYS.observer1, airport);
  data = assertInitial(observer, airport, "observer", CIDS.observer1);
  assert.deepEqual(data.controllers, []);
  assert.equal(data.offline, true);
  assert.equal(data.seq, seq0);

  // A controller lists itself and is not offline.
  const controller = await service.join(KEYS.controller1, airport);
  data = assertInitial(controller, airport, "controller", CIDS.controller1);
  assert.deepEqual(data.controllers, [CIDS.controller1]);
  assert.equal(data.offline, false);

  // Some state, then everyone who joins gets it.
  controller.send({ type: "STATE_UPDATE", data: { objectId: "SB_25C_A1", state: true } });
  controller.send({ type: "STATE_UPDATE", data: { objectId: "LO_25C_A1", state: { on: true, level: 3 } } });
  controller.send({ type: "SHARED_STATE_UPDATE", data: { sharedStatePatch: { runways: { "25C": "arr" } } } });
  const shared = await controller.next("SHARED_STATE_UPDATE");

  const controller2 = await service.join(KEYS.controller2, airport);
  data = assertInitial(controller2, airport, "controller", CIDS.controller2);
  assert.deepEqual([...data.controllers].sort(), [CIDS.controller1, CIDS.controller2]);
  assert.equal(data.offline, false);
  assert.equal(data.seq, shared.seq, "INITIAL_STATE carries the current seq");
  assert.deepEqual(data.sharedState, { runways: { "25C": "arr" } });
  const objects = [...data.objects].sort((x, y) => x.id.localeCompare(y.id));
  assert.equal(objects.length, 2);
  for (const o of objects) {
    assert.deepEqual(Object.keys(o).sort(), ["controllerId", "id", "state", "timestamp"]);
    assert.equal(o.controllerId, CIDS.controller1);
    assert.equal(typeof o.timestamp, "number");
  }
  assert.deepEqual(
    objects.map((o) => [o.id, o.state]),
    [
      ["LO_25C_A1", { on: true, level: 3 }],
      ["SB_25C_A1", true],
    ],
  );

  const pilot2 = await service.join(KEYS.pilot2, airport);
  data = assertInitial(pilot2, airport, "pilot", CIDS.pilot2);
  assert.deepEqual([...data.controllers].sort(), [CIDS.controller1, CIDS.controller2]);
  assert.equal(data.offline, false);
  assert.equal(data.objects.length, 2);

  // A person with two sockets is one controller.
  const controller1b = await service.join(KEYS.controller1, airport);
  data = assertInitial(controller1b, airport, "controller", CIDS.controller1);
  assert.deepEqual([...data.controllers].sort(), [CIDS.controller1, CIDS.controller2]);

  // When every controller has left, a newcomer sees the airport offline (state kept for the grace).
  await Promise.all([controller.close(), controller1b.close(), controller2.close()]);
  const gone = new Set();
  while (gone.size < 2) gone.add((await pilot.next("CONTROLLER_DISCONNECT")).data.controllerId);
  assert.deepEqual([...gone].sort(), [CIDS.controller1, CIDS.controller2]);
  const observer2 = await service.join(KEYS.observer1, airport);
  data = assertInitial(observer2, airport, "observer", CIDS.observer1);
  assert.deepEqual(data.controllers, []);
  assert.equal(data.offline, true);
  assert.equal(data.objects.length, 2, "objects are kept during the offline grace period");

  await Promise.all([pilot.close(), observer.close(), pilot2.close(), observer2.close()]);
});

test("no broadcast reaches a socket before its INITIAL_STATE, and none is lost after it", async () => {
  const airport = "EDDM";
  const controller = await service.join(KEYS.controller1, airport);
  const start = controller.initial.data.seq;
  const update = (i) => ({ type: "STATE_UPDATE", data: { objectId: `SB_${i}`, state: i % 2 === 0 } });
  // Keep updates flowing while an observer connects, so they race its INITIAL_STATE (paced a
  // millisecond apart to spread them over the handshake; the rate limit allows bursts of 50).
  let sent = 0;
  for (; sent < 5; sent++) controller.send(update(sent));
  await controller.request({ type: "GET_STATE" });
  let joined = false;
  const joining = service.join(KEYS.observer1, airport).finally(() => (joined = true));
  while (!joined && sent < 40) {
    controller.send(update(sent++));
    await sleep(1);
  }
  for (const end = sent + 5; sent < end; sent++) controller.send(update(sent));
  const observer = await joining;
  const last = (await controller.request({ type: "GET_STATE" })).data.seq;
  assert.equal(last, start + sent);

  const data = assertInitial(observer, airport, "observer", CIDS.observer1);
  // INITIAL_STATE is a consistent cut: exactly the updates up to its seq (one new object each)...
  assert.equal(data.objects.length, data.seq - start);
  // ...and the broadcasts after it continue from that seq with no gap and no repeat (an
  // observer may get several as one MULTI_STATE_UPDATE from seqFrom to seq, §7).
  await observer.changeCount(last - data.seq);
  await observer.settle();
  let seq = data.seq;
  for (const [from, to] of observer.seqRanges()) {
    assert.equal(from, seq + 1, `a change packet after seq ${seq}`);
    seq = to;
  }
  assert.equal(seq, last);
  assert.deepEqual(
    observer.changes().map((c) => c.seq),
    Array.from({ length: last - data.seq }, (_, i) => data.seq + i + 1),
  );
  await Promise.all([controller.close(), observer.close()]);
});

// ---------------------------------------------------------------------------------------------
// §6 HTTP besides /connect
// ---------------------------------------------------------------------------------------------

/** Polls GET `path` (at most 5 s: the contract's cache bound) until `done(body)` holds. */
function stateWhen(path, done, init = {}) {
  let res;
  return until(
    async () => {
      res = await viaFetch(service, path, init);
      return res.status === 200 && done(res.body) && res;
    },
    { ms: 6_000, what: () => `GET ${path} to show the change: ${JSON.stringify(res).slice(0, 300)}` },
  );
}

test("GET /state is public: the STATE_SNAPSHOT data with airport and pilots, with or without a key, readable from any origin", async () => {
  const empty = await service.fetch("/state?airport=LOWE");
  assert.equal(empty.status, 200);
  assert.match(empty.headers.get("content-type") ?? "", /^application\/json\b/i);
  assert.equal(empty.headers.get("access-control-allow-origin"), "*");
  assert.deepEqual(await empty.json(), {
    airport: "LOWE", objects: [], sharedState: {}, controllers: [], pilots: [], offline: true, seq: 0,
    connections: { controllers: 0, pilots: 0 },
  });

  const airport = "LOWW";
  const controller = await service.join(KEYS.controller1, airport);
  const pilot = await service.join(KEYS.pilot1, airport);
  controller.send({ type: "STATE_UPDATE", data: { objectId: "SB_16_A1", state: true } });
  controller.send({ type: "SHARED_STATE_UPDATE", data: { sharedStatePatch: { atis: "K" } } });
  await controller.next("SHARED_STATE_UPDATE");
  const snapshot = await controller.request({ type: "GET_STATE" });
  assert.equal(snapshot.type, "STATE_SNAPSHOT");
  const expected = {
    airport,
    ...snapshot.data,
    pilots: [CIDS.pilot1],
    connections: { controllers: 1, pilots: 1 },
  };
  await stateWhen(`/state?airport=${airport}`, (body) => body.seq === snapshot.data.seq);

  const requests = [
    [`/state?airport=${airport}`, {}],
    [`/state?airport=${airport}&key=${KEYS.observer1}`, {}],
    [`/state?airport=${airport.toLowerCase()}&key=${KEYS.pilot1}`, {}],
    [`/state?airport=${airport}`, { Authorization: `Bearer ${KEYS.controller2}` }],
    [`/state?airport=LoWw`, { Authorization: `Bearer ${KEYS.observer1}` }],
  ];
  for (const [path, headers] of requests) {
    const res = await service.fetch(path, { headers, redirect: "manual" });
    assert.equal(res.status, 200, path);
    assert.equal(res.headers.get("access-control-allow-origin"), "*", `${path}: CORS`);
    assert.match(res.headers.get("content-type") ?? "", /^application\/json\b/i);
    assert.deepEqual(await res.json(), expected, `${path} is the STATE_SNAPSHOT data with airport and pilots`);
  }
  assert.deepEqual(snapshot.data.controllers, [CIDS.controller1]);
  assert.equal(snapshot.data.offline, false);
  await controller.close();
  await pilot.close();
});

test("GET /state error table: 405, 400, then a given key is checked (401, 403); errors carry CORS too; OPTIONS is a preflight", async () => {
  const cases = [
    ["POST", `/state?airport=LOWS&key=${KEYS.observer1}`, {}, 405, "METHOD_NOT_ALLOWED"],
    ["POST", "/state", {}, 405, "METHOD_NOT_ALLOWED"],
    ["DELETE", `/state?airport=LOWS&key=${KEYS.observer1}`, {}, 405, "METHOD_NOT_ALLOWED"],
    ["GET", `/state?key=${KEYS.observer1}`, {}, 400, "INVALID_AIRPORT"],
    ["GET", "/state", {}, 400, "INVALID_AIRPORT"],
    ["GET", `/state?airport=LOW&key=${KEYS.observer1}`, {}, 400, "INVALID_AIRPORT"],
    ["GET", `/state?airport=LOWSS&key=${KEYS.observer1}`, {}, 400, "INVALID_AIRPORT"],
    ["GET", `/state?airport=LO-W&key=${KEYS.observer1}`, {}, 400, "INVALID_AIRPORT"],
    ["GET", `/state?airport=LO-W&key=${KEYS.banned1}`, {}, 400, "INVALID_AIRPORT"],
    ["GET", `/state?airport=LOWS&key=${UNKNOWN_KEY}`, {}, 401, "INVALID_API_KEY"],
    ["GET", "/state?airport=LOWS", { Authorization: `Bearer ${UNKNOWN_KEY}` }, 401, "INVALID_API_KEY"],
    ["GET", `/state?airport=all&key=${UNKNOWN_KEY}`, {}, 401, "INVALID_API_KEY"],
    ["GET", `/state?airport=LOWS&key=${KEYS.banned1}`, {}, 403, "BANNED"],
    ["GET", "/state?airport=LOWS", { Authorization: `Bearer ${KEYS.banned1}` }, 403, "BANNED"],
  ];
  for (const [method, path, headers, status, code] of cases) {
    assertError(await viaFetch(service, path, { method, headers }), status, code, `${method} ${path}`);
    const res = await service.fetch(path, { method, headers });
    assert.equal(res.headers.get("access-control-allow-origin"), "*", `${method} ${path}: CORS on errors`);
  }
  // No key is no error: the read is public.
  const anonymous = await viaFetch(service, "/state?airport=LOWS");
  assert.equal(anonymous.status, 200, JSON.stringify(anonymous));
  // /state needs no upgrade, and an upgrade header does not turn it into something else.
  const plain = await viaFetch(service, `/state?airport=LOWS&key=${KEYS.observer1}`);
  assert.equal(plain.status, 200, JSON.stringify(plain));
  const withUpgrade = await raw(service, `/state?airport=LOWS&key=${KEYS.observer1}`, { headers: upgradeHeaders() });
  assert.notEqual(withUpgrade.status, 426);
  assert.notEqual(withUpgrade.status, 101);
  // A browser's preflight before a GET with an Authorization header.
  const preflight = await service.fetch("/state?airport=LOWS", {
    method: "OPTIONS",
    headers: { Origin: "https://example.org", "Access-Control-Request-Method": "GET", "Access-Control-Request-Headers": "authorization" },
  });
  assert.equal(preflight.status, 204);
  assert.equal(preflight.headers.get("access-control-allow-origin"), "*");
  assert.match(preflight.headers.get("access-control-allow-methods") ?? "", /GET/);
  assert.match(preflight.headers.get("access-control-allow-headers") ?? "", /authorization/i);
  // /connect keeps its table: OPTIONS there is a 405.
  assertError(await viaFetch(service, "/connect?airport=LOWS", { method: "OPTIONS" }), 405, "METHOD_NOT_ALLOWED", "OPTIONS /connect");
});

test("GET /health is 200 with the service version", async () => {
  const res = await viaFetch(service, "/health");
  assert.equal(res.status, 200);
  assert.equal(typeof res.body, "object", `JSON body: ${JSON.stringify(res.body)}`);
  assert.equal(typeof res.body.version, "string");
  assert.ok(res.body.version.length > 0);
});

test("any other path is 404 with the JSON error body", async () => {
  const paths = ["/", "/nope", "/connect/extra", "/Connect", "/state/x", "/healthz", "/connect.json"];
  for (const path of paths) {
    assertError(await viaFetch(service, path), 404, undefined, `GET ${path}`);
    assertError(await viaFetch(service, path, { method: "POST" }), 404, undefined, `POST ${path}`);
  }
  // A WebSocket handshake to an unknown path is refused the same way.
  const ws = await raw(service, `/nope?airport=EGLL&key=${KEYS.controller1}`, { headers: upgradeHeaders() });
  assertError(ws, 404, undefined, "upgrade to /nope");
});
