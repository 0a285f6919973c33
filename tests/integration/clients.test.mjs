// The network's deployed clients (docs/protocol.md §10): each client's exact frames
// replayed against the built Worker, and on every reply what that client needs of it (field
// presence and JSON types, as that client parses them). These clients cannot change; a failure
// here is a client that stops working on the network.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { Service, KEYS, CIDS, withService } from "./harness.mjs";
import { expectStaysOpen, scene, sleep, until } from "./helpers.mjs";

let service;
before(async () => {
  service = await new Service().start();
});
after(async () => {
  await service?.stop();
});

/** Every `timestamp` in a packet, at any depth, with its path. */
function timestamps(value, path = "") {
  if (Array.isArray(value)) return value.flatMap((v, i) => timestamps(v, `${path}[${i}]`));
  if (value && typeof value === "object") {
    return Object.entries(value).flatMap(([k, v]) => [
      ...(k === "timestamp" ? [[`${path}.${k}`, v]] : []),
      ...timestamps(v, `${path}.${k}`),
    ]);
  }
  return [];
}

/** The pilot client reads a float timestamp as 0 and drops a frame with a string one. */
function assertIntegerTimestamps(packet) {
  const found = timestamps(packet);
  assert.ok(found.length > 0, `${packet.type} has a timestamp`);
  for (const [path, v] of found) assert.ok(Number.isSafeInteger(v), `${packet.type}${path} = ${JSON.stringify(v)} is an integer`);
}

/** Sends a raw frame and waits until the server has handled it (a HEARTBEAT round trip). */
async function sendRaw(c, frame) {
  c.ws.send(frame);
  await c.settle();
}

// ---------------------------------------------------------------------------------------------
// Pilot client (C#, System.Text.Json)

test("pilot client: connects with a BARS_ key, gets what it parses, and its frames work", async (t) => {
  const s = scene(t, service);
  const pilot = await service.account("pilot");
  const controller = await s.join(KEYS.controller1, "PCL1");
  controller.send({ type: "STATE_UPDATE", data: { objectId: "BARS_7K2QH", state: true } });
  controller.send({ type: "STATE_UPDATE", data: { objectId: "BARS_OBJ", state: { lit: true } } });
  await controller.settle();

  const p = await s.open(`/connect?airport=PCL1&key=${pilot.key}`);
  const initial = p.initial;
  assert.equal(initial.airport, "PCL1", "INITIAL_STATE has a root airport string");
  assertIntegerTimestamps(initial);
  for (const o of initial.data.objects) assert.equal(typeof o.id, "string");
  assert.equal(initial.data.objects.find((o) => o.id === "BARS_7K2QH").state, true, "on is JSON true");

  // Its frames, byte for byte.
  p.ws.send('{ "type": "HEARTBEAT" }');
  assert.equal((await p.next("HEARTBEAT_ACK")).airport, "PCL1");
  p.ws.send('{ "type": "GET_STATE", "airport": "PCL1", "timestamp": 1715000000000 }');
  const snapshot = await p.next("STATE_SNAPSHOT");
  assert.equal(snapshot.airport, "PCL1");
  assertIntegerTimestamps(snapshot);
  for (const o of snapshot.data.objects) assert.equal(typeof o.id, "string");

  p.ws.send('{"type":"STOPBAR_CROSSING","data":{"objectId":"BARS_7K2QH"}}');
  const crossing = await controller.next("STOPBAR_CROSSING");
  assert.equal(crossing.data.objectId, "BARS_7K2QH");

  // Batches are read from data.updates, states as booleans, timestamps as integers.
  controller.send({ type: "MULTI_STATE_UPDATE", data: { updates: [{ objectId: "BARS_7K2QH", state: false }, { objectId: "BARS_8R1LP", state: true }] } });
  const batch = await p.next("MULTI_STATE_UPDATE");
  assert.deepEqual(batch.data.updates.map((u) => [u.objectId, u.state]), [["BARS_7K2QH", false], ["BARS_8R1LP", true]]);
  assertIntegerTimestamps(batch);

  p.ws.send('{ "type": "CLOSE" }');
  assert.equal((await p.closed).code, 1000);
  assert.deepEqual(p.all("ERROR"), []);
});

// ---------------------------------------------------------------------------------------------
// vatSys controller plugin (C#, Newtonsoft)

test("vatSys: its bare-array MULTI_STATE_UPDATE toggles stopbars, and its polls get what it shows", async (t) => {
  const s = scene(t, service);
  const vatsys = await s.open(`/connect?key=${KEYS.controller1}&airport=YSSY`);
  const otherController = await s.join(KEYS.controller2, "YSSY");
  const pilot = await s.join(KEYS.pilot1, "YSSY");
  const observer = await s.join(KEYS.observer1, "YSSY");

  vatsys.ws.send('{"type":"HEARTBEAT"}');
  await vatsys.next("HEARTBEAT_ACK");
  vatsys.ws.send('{"type":"GET_ONLINE_PILOTS"}');
  const online = await vatsys.next("ONLINE_PILOTS");
  assert.equal(online.airport, "YSSY", "ONLINE_PILOTS root airport equals its airport");
  assert.deepEqual(online.data.pilots, [{ pilotId: CIDS.pilot1, cid: CIDS.pilot1, callsign: CIDS.pilot1 }]);
  for (const p of online.data.pilots) assert.ok(typeof p.callsign === "string" && p.callsign, "a callsign on every pilot");

  // Newest build: one packet per stopbar toggle, data a bare array.
  vatsys.ws.send('{"type":"MULTI_STATE_UPDATE","airport":"YSSY","data":[{"objectId":"BARS_7K2QH","state":true},{"objectId":"BARS_8R1LP","state":false}]}');
  for (const c of [otherController, pilot, observer]) {
    const u = await c.next("MULTI_STATE_UPDATE");
    assert.deepEqual(u.data.updates, [
      { objectId: "BARS_7K2QH", state: true, controllerId: CIDS.controller1 },
      { objectId: "BARS_8R1LP", state: false, controllerId: CIDS.controller1 },
    ]);
  }
  // Released build: one STATE_UPDATE per object.
  vatsys.ws.send('{"type":"STATE_UPDATE","airport":"YSSY","data":{"objectId":"BARS_7K2QH","state":false}}');
  assert.equal((await pilot.next("STATE_UPDATE")).data.state, false);
  vatsys.ws.send('{"type":"GET_STATE","airport":"YSSY","timestamp":1715000000000}');
  const snap = await vatsys.next("STATE_SNAPSHOT");
  assert.deepEqual(
    snap.data.objects.map((o) => [o.id, o.state]).sort(),
    [["BARS_7K2QH", false], ["BARS_8R1LP", false]],
  );

  // A crossing: data.objectId to re-raise the bar, data.controllerId logged as the pilot.
  pilot.send({ type: "STOPBAR_CROSSING", data: { objectId: "BARS_7K2QH" } });
  const crossing = await vatsys.next("STOPBAR_CROSSING");
  assert.equal(crossing.data.objectId, "BARS_7K2QH");
  assert.equal(crossing.data.controllerId, CIDS.pilot1);

  // Errors are shown to the controller: a message it can read.
  vatsys.ws.send('{"type":"MULTI_STATE_UPDATE","airport":"YSSY","data":[{"objectId":"BARS_7K2QH","state":true},{"objectId":"bad id","state":true}]}');
  const error = await vatsys.next("ERROR");
  assert.equal(error.data.code, "INVALID_PACKET");
  assert.match(error.data.message, /data\[1\]\.objectId/);
  vatsys.ws.send('{"type":"CLOSE"}');
  assert.equal((await vatsys.closed).code, 1000);
});

// ---------------------------------------------------------------------------------------------
// EuroScope controller plugin (Rust, serde): released version

test("EuroScope: INITIAL_STATE, updates, presence and its own echoed graph patch parse as its serde types", async (t) => {
  const s = scene(t, service);
  const es = await s.open(`/connect?airport=ESCL&key=${KEYS.controller1}`);
  assert.equal(typeof es.initial.data.connectionType, "string");
  const other = await s.join(KEYS.controller2, "ESCL");
  const connect = await es.next("CONTROLLER_CONNECT");
  assert.equal(typeof connect.data.controllerId, "string");

  other.send({ type: "STATE_UPDATE", data: { objectId: "BARS_1", state: true } });
  const update = await es.next("STATE_UPDATE");
  assert.equal(typeof update.data.state, "boolean");
  assert.equal(typeof update.data.controllerId, "string");
  // A one-item batch from a plugin that sends batches reaches it as a STATE_UPDATE.
  other.send({ type: "MULTI_STATE_UPDATE", data: { updates: [{ objectId: "BARS_2", state: false }] } });
  const single = await es.next("STATE_UPDATE");
  assert.deepEqual(single.data, { objectId: "BARS_2", state: false, controllerId: CIDS.controller2 });

  // Its lighting graph, exactly as sent; it applies its own change only from the echo.
  es.ws.send('{"type":"SHARED_STATE_UPDATE","data":{"sharedStatePatch":{"profile":"default","nodes":{"N1":true},"blocks":{"B2":"clear","B1":{"route":["N1","N2"]}}}}}');
  const echo = await es.next("SHARED_STATE_UPDATE");
  assert.equal(echo.data.controllerId, CIDS.controller1);
  assert.deepEqual(echo.data.sharedStatePatch.blocks.B1, { route: ["N1", "N2"] });
  es.ws.send('{"type":"SHARED_STATE_UPDATE","data":{"sharedStatePatch":{"profile":null,"nodes":{},"blocks":{}}}}');
  assert.equal((await es.next("SHARED_STATE_UPDATE")).data.sharedStatePatch.profile, null);

  // A reconnecting plugin's INITIAL_STATE: every object state a boolean (one object-valued
  // state would drop the whole packet).
  const again = await s.open(`/connect?airport=ESCL&key=${KEYS.controller1}`);
  for (const o of again.initial.data.objects) {
    assert.equal(typeof o.id, "string");
    assert.equal(typeof o.state, "boolean");
  }
  await other.close();
  const gone = await es.next("CONTROLLER_DISCONNECT");
  assert.equal(typeof gone.data.controllerId, "string");
  assert.deepEqual(es.all("ERROR"), []);
});

test("EuroScope: a 2,000-frame profile change is applied and broadcast in seq order (each to controllers), with no error and no close", { timeout: 120_000 }, async (t) => {
  await withService({}, async (svc) => {
    const A = "ESBU";
    const es = await svc.join(KEYS.controller1, A);
    const other = await svc.join(KEYS.controller2, A);
    const observer = await svc.join(KEYS.observer1, A);
    const seq0 = observer.initial.data.seq;
    const N = 2_000;
    const started = Date.now();
    for (let i = 0; i < N; i++) {
      es.ws.send(`{"type":"STATE_UPDATE","data":{"objectId":"LIGHT_${i}","state":${i % 3 === 0}}}`);
    }
    for (const c of [observer, other]) {
      await c.nextChange(`LIGHT_${N - 1}`, 60_000);
      const updates = c.changes();
      assert.equal(updates.length, N);
      assert.deepEqual(updates.map((u) => u.seq), updates.map((_, i) => seq0 + i + 1), "every change, in seq order");
      assert.deepEqual(updates.map((u) => u.objectId), updates.map((_, i) => `LIGHT_${i}`));
    }
    // The other controller (a EuroScope plugin reads only STATE_UPDATE) gets each change as
    // accepted; the observer may get them coalesced into MULTI_STATE_UPDATEs with seqFrom (§7).
    assert.equal(other.all("STATE_UPDATE").length, N);
    const packets = observer.seqRanges().length;
    t.diagnostic(
      `2,000 frames from one controller reached two sockets in ${Date.now() - started} ms; the observer got them in ${packets} packets`,
    );
    await es.settle();
    assert.deepEqual(es.all("ERROR"), [], "no RATE_LIMITED");
    assert.equal(es.closeInfo, undefined, "the plugin's socket stays open");

    // Everything is stored: after a restart, a new socket finds all 2,000.
    await svc.restart();
    const after = await svc.join(KEYS.observer1, A);
    assert.equal(after.initial.data.objects.length, N);
    assert.equal(after.initial.data.seq, seq0 + N);
    await after.close();
  });
});

test("EuroScope rewrite: Bearer key only, a 10,000-item boolean batch and a 900,000-character graph patch", { timeout: 60_000 }, async (t) => {
  const s = scene(t, service);
  const rewrite = await s.open("/connect?airport=ESRW", { headers: { Authorization: `Bearer ${KEYS.controller1}` } });
  const observer = await s.join(KEYS.observer1, "ESRW");
  rewrite.ws.send('{"type":"HEARTBEAT"}');
  await rewrite.next("HEARTBEAT_ACK");

  // A whole airport in one batch, as it sends every 500 ms while things change.
  const updates = Array.from({ length: 10_000 }, (_, i) => ({ objectId: `E${i}`, state: i % 2 === 0 }));
  const batch = JSON.stringify({ type: "MULTI_STATE_UPDATE", data: { updates } });
  assert.ok(batch.length > 50_000);
  rewrite.ws.send(batch);
  const applied = await observer.next("MULTI_STATE_UPDATE", 20_000);
  assert.equal(applied.data.updates.length, 10_000);

  // Its graph patch: meta, nodes and blocks; 900,000 characters.
  const nodes = {};
  let i = 0;
  const graph = () => JSON.stringify({ type: "SHARED_STATE_UPDATE", data: { sharedStatePatch: { meta: { client: 123456789, serial: 7 }, nodes, blocks: { B2: "Clear", B1: { Route: ["N1", "N2"] } } } } });
  while (graph().length < 900_000) {
    for (let k = 0; k < 1000; k++) nodes[`NODE_${String(i++).padStart(6, "0")}`] = i % 2 === 0;
  }
  const patch = graph();
  assert.ok(patch.length >= 900_000 && patch.length < 1_000_000, `${patch.length} characters`);
  rewrite.ws.send(patch);
  const echo = await rewrite.next("SHARED_STATE_UPDATE", 20_000);
  assert.equal(Object.keys(echo.data.sharedStatePatch.nodes).length, Object.keys(nodes).length);
  assert.equal(echo.data.controllerId, CIDS.controller1);

  // STATE_SNAPSHOT has offline; integer timestamps throughout.
  rewrite.ws.send('{"type":"GET_STATE"}');
  const snap = await rewrite.next("STATE_SNAPSHOT", 20_000);
  assert.equal(snap.data.offline, false);
  assertIntegerTimestamps(snap);
  assert.equal(snap.data.objects.length, 10_000);

  // What does not qualify keeps the strict limits.
  const refusals = [
    [JSON.stringify({ type: "MULTI_STATE_UPDATE", data: { updates: [...updates.slice(1), { objectId: "E0", state: { on: true } }] } }), "PACKET_TOO_LARGE"],
    [JSON.stringify({ type: "SHARED_STATE_UPDATE", data: { sharedStatePatch: { nodes, weather: "fog" } } }), "PACKET_TOO_LARGE"],
    [JSON.stringify({ type: "STATE_UPDATE", data: { objectId: "X", state: { nodes } } }), "PACKET_TOO_LARGE"],
    [JSON.stringify({ type: "SHARED_STATE_UPDATE", data: { sharedStatePatch: { runway: "x".repeat(20_000) } } }), "LIMIT_EXCEEDED"],
    [JSON.stringify({ type: "MULTI_STATE_UPDATE", data: [...updates, { objectId: "ONE_MORE", state: true }] }), "INVALID_PACKET"],
  ];
  for (const [frame, code] of refusals) {
    rewrite.ws.send(frame);
    assert.equal((await rewrite.next("ERROR", 20_000)).data.code, code, frame.slice(0, 80));
  }
  // A pilot's large frame is too large whatever it holds.
  const pilot = await s.join(KEYS.pilot1, "ESRW");
  pilot.ws.send(batch);
  assert.equal((await pilot.next("ERROR", 20_000)).data.code, "PACKET_TOO_LARGE");
  await observer.settle();
  assert.equal(observer.all("MULTI_STATE_UPDATE").length, 1, "nothing refused was broadcast");
});

test("EuroScope rewrite: ONLINE_PILOTS items have a string cid and a non-null callsign", async (t) => {
  const s = scene(t, service);
  const rewrite = await s.open("/connect?airport=ESRP", { headers: { Authorization: `Bearer ${KEYS.controller1}` } });
  await s.join(KEYS.pilot1, "ESRP");
  await s.join(KEYS.pilot2, "ESRP");
  rewrite.ws.send('{"type":"GET_ONLINE_PILOTS"}');
  const online = await rewrite.next("ONLINE_PILOTS");
  assert.equal(online.data.pilots.length, 2);
  for (const p of online.data.pilots) {
    assert.equal(typeof p.cid, "string");
    assert.equal(p.cid, p.pilotId);
    assert.equal(typeof p.callsign, "string");
  }
});

test("EuroScope: a plugin that only answers the server's HEARTBEAT is never closed for idleness", { timeout: 60_000 }, async (t) => {
  await withService({ HEARTBEAT_INTERVAL_MS: "1000", IDLE_TIMEOUT_MS: "2500" }, async (svc) => {
    const es = await svc.join(KEYS.controller1, "ESHB");
    const silent = await svc.join(KEYS.pilot1, "ESHB");
    let heartbeats = 0;
    es.ws.on("message", (data) => {
      const packet = JSON.parse(data.toString());
      if (packet.type !== "HEARTBEAT") return;
      // Its serde type fails on "data":{}; no data (or null) parses.
      assert.ok(!("data" in packet) || packet.data === null, `server HEARTBEAT: ${data}`);
      heartbeats++;
      es.ws.send('{"type":"HEARTBEAT_ACK"}');
    });
    const closed = await silent.closed;
    assert.equal(closed.code, 4000, "a socket that says nothing is closed");
    // Well past three idle timeouts, the ack-only plugin is still there.
    await expectStaysOpen(es, 6_000, "the plugin was not closed");
    assert.ok(heartbeats >= 5, `${heartbeats} heartbeats answered`);
    await es.close();
  });
});

// ---------------------------------------------------------------------------------------------
// The network's website and the public /state

/** GET /state?airport=all as the website does it: no key, from another origin. */
async function allStates(svc) {
  const res = await svc.fetch("/state?airport=all", { headers: { Origin: "https://network.example" } });
  assert.equal(res.status, 200);
  assert.equal(res.headers.get("access-control-allow-origin"), "*");
  return (await res.json()).states;
}

/** Polls /state?airport=all until the listed airports are `airports` (at most 8 s). */
async function allUntil(svc, airports, what) {
  const want = JSON.stringify([...airports].sort());
  let states;
  return until(
    async () => {
      states = await allStates(svc);
      return JSON.stringify(states.map((s) => s.airport).sort()) === want && states;
    },
    { ms: 8_000, every: 200, what: () => `${what}: listed ${JSON.stringify(states.map((s) => s.airport))}, want ${want}` },
  );
}

test("website: /state?airport=all lists exactly the airports with a controller or pilot, and drops them when they leave and after a restart", { timeout: 90_000 }, async () => {
  await withService({}, async (svc) => {
    assert.deepEqual(await allStates(svc), []);
    const controller = await svc.join(KEYS.controller1, "WEB1");
    const pilot = await svc.join(KEYS.pilot1, "WEB2");
    const observer = await svc.join(KEYS.observer1, "WEB3"); // observers alone are not live
    controller.send({ type: "MULTI_STATE_UPDATE", data: [{ objectId: "SB_1", state: true }, { objectId: "SB_2", state: false }, { objectId: "SB_3", state: true }] });
    await controller.settle();

    const states = await allUntil(svc, ["WEB1", "WEB2"], "one controller's and one pilot's airports");
    const web1 = states.find((s) => s.airport === "WEB1");
    // What the website reads: the airport, the lengths of controllers and pilots, states === true.
    assert.deepEqual(web1.controllers, [CIDS.controller1]);
    assert.deepEqual(web1.pilots, []);
    assert.equal(web1.objects.filter((o) => o.state === true).length, 2);
    assert.equal(web1.offline, false);
    assert.deepEqual(web1.connections, { controllers: 1, pilots: 0 });
    const web2 = states.find((s) => s.airport === "WEB2");
    assert.deepEqual(web2.pilots, [CIDS.pilot1]);
    assert.deepEqual(web2.connections, { controllers: 0, pilots: 1 });

    // The pilot leaves: WEB2 drops out.
    await pilot.close();
    await allUntil(svc, ["WEB1"], "after the pilot left");
    // A restart drops every socket: no ghost stays listed.
    await svc.restart();
    await allUntil(svc, [], "after a restart");
    observer.ws.terminate();
    controller.ws.terminate();
  });
});

test("website: a dashboard watching a quiet airport writes no directory entry; a pilot lists it live, then dormant", { timeout: 30_000 }, async () => {
  await withService({}, async (svc) => {
    const entry = async () => (await svc.db.prepare("SELECT status FROM airports WHERE icao = 'OBSV'").all()).results;
    const observer = await svc.join(KEYS.observer1, "OBSV");
    await svc.waitForLog((e) => e.event === "airport_loaded" && e.airport === "OBSV");
    // /state does not show observers: the directory's missing entry answers what the object would.
    // No event follows a write that must not happen: the writer starts at the connect and takes a
    // few ms here, so half a second is ample for it to have shown.
    await sleep(500);
    assert.deepEqual(await entry(), []);
    const quiet = await (await svc.fetch("/state?airport=OBSV")).json();
    assert.deepEqual([quiet.controllers, quiet.pilots, quiet.offline], [[], [], true]);
    const pilot = await svc.join(KEYS.pilot1, "OBSV");
    await until(async () => (await entry())[0]?.status === "live", { ms: 5_000, what: "the airport listed live" });
    await pilot.close();
    await until(async () => (await entry())[0]?.status === "dormant", { ms: 5_000, what: "the airport listed dormant" });
    await observer.close();
  });
});

test("anonymous /state polling of 200 never-used airports wakes no Durable Object", { timeout: 60_000 }, async () => {
  const since = service.logs.length;
  const codes = Array.from({ length: 200 }, (_, i) => `Q${String(i).padStart(3, "0")}`);
  for (const code of codes) {
    const res = await service.fetch(`/state?airport=${code}`);
    assert.equal(res.status, 200, code);
    const body = await res.json();
    assert.equal(body.airport, code);
    assert.deepEqual(body.objects, []);
    assert.equal(body.offline, true);
  }
  const woken = service.logs.slice(since).filter((e) => codes.includes(e.airport));
  assert.deepEqual(woken, [], "no airport object was constructed or asked");
});

test("100 anonymous /state polls of one live airport within a second cost at most one read of its object", async (t) => {
  const s = scene(t, service);
  const controller = await s.join(KEYS.controller1, "POLL");
  controller.send({ type: "STATE_UPDATE", data: { objectId: "SB_1", state: true } });
  await controller.settle();
  // Wait until the directory lists it and the answer shows the change.
  await until(async () => (await (await service.fetch("/state?airport=POLL")).json()).objects.length === 1, {
    ms: 8_000,
    every: 200,
    what: "the airport to show up in /state",
  });
  const since = service.logs.length;
  const started = Date.now();
  const answers = [];
  for (let round = 0; round < 10; round++) {
    const batch = Array.from({ length: 10 }, () => service.fetch("/state?airport=POLL").then((r) => r.json()));
    answers.push(...(await Promise.all(batch)));
    await sleep(100); // pacing: ten rounds of ten polls within about a second
  }
  const elapsed = Date.now() - started;
  const reads = service.logs.slice(since).filter((e) => e.event === "state_read" && e.airport === "POLL").length;
  t.diagnostic(`100 polls in ${elapsed} ms: ${reads} reads of the airport's object`);
  assert.ok(answers.every((a) => a.objects.length === 1));
  // Answers are reused for 1 s in the isolate and 2 s in the cache: one read per period at most.
  assert.ok(reads <= Math.ceil(elapsed / 1000), `${reads} reads in ${elapsed} ms`);
});
