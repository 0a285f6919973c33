// Packets over real sockets (PROTOCOL.md §3): permissions per role, audiences across two
// airports, envelopes, state semantics and seq, every error code and every limit.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { SERVER_TYPES } from "./contract.mjs";
import { Service, KEYS, CIDS } from "./harness.mjs";
import { arr, assertAlive, chars, nest, scene, sizedUpdate, sleep, snapshot, until } from "./helpers.mjs";

let service;
before(async () => {
  service = await new Service().start();
});
after(async () => {
  await service?.stop();
});

// ---------------------------------------------------------------------------------------------
// Helpers

/** Server packets that answer one client packet, so may echo its requestId. */
const REPLIES = new Set(["HEARTBEAT_ACK", "STATE_SNAPSHOT", "ONLINE_PILOTS", "ERROR"]);
/** Packets that are not a direct reply to one client packet: never carry a requestId. */
const UNSOLICITED = new Set([...SERVER_TYPES].filter((type) => !REPLIES.has(type)));
const SEQUENCED = new Set(["STATE_UPDATE", "MULTI_STATE_UPDATE", "SHARED_STATE_UPDATE"]);

/** Every packet the sockets of a scene received: airport, timestamp, requestId rules. */
function checkEnvelopes(s) {
  for (const c of s.clients) {
    for (const p of c.received) {
      const shown = JSON.stringify(p).slice(0, 300);
      assert.ok(SERVER_TYPES.has(p.type), `unexpected server packet type: ${shown}`);
      assert.equal(p.airport, c.airport, `airport on ${shown}`);
      assert.ok(Number.isInteger(p.timestamp), `integer timestamp on ${shown}`);
      assert.ok(Math.abs(p.timestamp - Date.now()) < 10 * 60_000, `epoch-ms timestamp on ${shown}`);
      if (UNSOLICITED.has(p.type)) {
        assert.ok(!("requestId" in p), `no requestId on a broadcast: ${shown}`);
      }
      if (SEQUENCED.has(p.type)) {
        assert.ok(Number.isInteger(p.seq), `top-level seq on ${shown}`);
      }
    }
  }
}

async function send(c, packet) {
  await c.pacer.take();
  c.send(packet);
}

async function sendBinary(c, bytes) {
  await c.pacer.take();
  c.sendBinary(bytes);
}

async function req(c, packet, timeoutMs) {
  await c.pacer.take();
  return c.request(packet, timeoutMs);
}

async function settle(...clients) {
  await Promise.all(
    clients.map(async (c) => {
      await c.pacer.take();
      await c.settle();
    }),
  );
}

/** Sends `packet` with a requestId and expects an ERROR with `code` echoing it. */
async function expectError(c, packet, code, pattern) {
  const r = await req(c, packet);
  const shown = JSON.stringify(r).slice(0, 300);
  assert.equal(r.type, "ERROR", `expected ERROR ${code} for ${JSON.stringify(packet).slice(0, 200)}, got ${shown}`);
  assert.equal(r.data.code, code, `for ${JSON.stringify(packet).slice(0, 200)}: ${shown}`);
  assert.equal(typeof r.data.message, "string");
  assert.ok(r.data.message.length > 0, "ERROR has a message");
  if (pattern) assert.match(r.data.message, pattern);
  return r;
}

/** Sends a raw frame (string or Buffer) and expects the next ERROR to have `code`. */
async function expectRawError(c, frame, code, pattern) {
  if (typeof frame === "string") await send(c, frame);
  else await sendBinary(c, frame);
  const r = await c.next((p) => p.type === "ERROR" || p.type === "HEARTBEAT_ACK");
  const shown = JSON.stringify(r).slice(0, 300);
  assert.equal(r.type, "ERROR", `expected ERROR ${code}, got ${shown}`);
  assert.equal(r.data.code, code, shown);
  assert.ok(r.data.message.length > 0);
  if (pattern) assert.match(r.data.message, pattern);
  return r;
}

const statesOf = (data) => Object.fromEntries(data.objects.map((o) => [o.id, o.state]));

function assertPilots(packet, expected) {
  assert.equal(packet.type, "ONLINE_PILOTS");
  const ids = packet.data.pilots.map((p) => p.pilotId);
  assert.deepEqual([...ids].sort(), [...expected].sort(), `pilots listed once each: ${JSON.stringify(packet.data)}`);
  for (const p of packet.data.pilots) {
    // {pilotId, cid, callsign}: cid repeats pilotId, callsign falls back to the cid (§7).
    assert.deepEqual(Object.keys(p).sort(), ["callsign", "cid", "pilotId"], `pilot entry keys ${JSON.stringify(p)}`);
    assert.equal(p.cid, p.pilotId);
    assert.ok(typeof p.callsign === "string" && p.callsign.length > 0, `a non-empty callsign: ${JSON.stringify(p)}`);
  }
}

/**
 * GET_ONLINE_PILOTS until `gone` is no longer listed: the server handles a socket's close event
 * asynchronously to the client seeing its close complete, so this waits on replies, not time.
 */
function pilotsOnceGone(c, gone, deadlineMs = 5000) {
  return until(
    async () => {
      const r = await req(c, { type: "GET_ONLINE_PILOTS" });
      assert.equal(r.type, "ONLINE_PILOTS");
      return !r.data.pilots.some((p) => p.pilotId === gone) && r;
    },
    { ms: deadlineMs, every: 50, what: `pilot ${gone} to be no longer listed after its socket closed` },
  );
}

/** Sends HEARTBEATs until one is acknowledged (waiting for the bucket to refill). */
async function waitUntilAccepted(c, deadlineMs = 10_000) {
  await until(
    async () => {
      const rid = `probe-${Math.random().toString(36).slice(2)}`;
      const start = c.received.length;
      c.send({ type: "HEARTBEAT", requestId: rid });
      // Errors of earlier packets may still be queued: only count those that came after this send.
      const r = await c.next(
        (p) => p.requestId === rid || (p.type === "ERROR" && p.data.code === "RATE_LIMITED" && c.received.indexOf(p) >= start),
      );
      return r.type === "HEARTBEAT_ACK";
    },
    { ms: deadlineMs, every: 200, what: "the bucket to refill" },
  );
}

// ---------------------------------------------------------------------------------------------
// The cases. Each runs with a scene of its own airport (its `airport`; a second one where a case
// joins it by name) and then checks every packet its sockets received against the envelope
// rules (`checkEnvelopes`).

const cases = [
  // -------------------------------------------------------------------------------------------
  // Permissions

  {
    name: "permissions: every client packet type per role; forbidden ones get FORBIDDEN and change nothing",
    airport: "PRM1",
    joins: { c: KEYS.controller1, p: KEYS.pilot1, o: KEYS.observer1, elsewhere: [KEYS.controller2, "PRM2"] },
    async run(s, { c, p, o, elsewhere }) {
      await send(c, { type: "STATE_UPDATE", data: { objectId: "SB1", state: true } });
      await send(c, { type: "SHARED_STATE_UPDATE", data: { sharedStatePatch: { a: 1 } } });
      await c.next("SHARED_STATE_UPDATE");
      const base = await snapshot(c);
      assert.deepEqual(statesOf(base), { SB1: true });

      const controllerOnly = {
        STATE_UPDATE: { objectId: "SB1", state: false },
        MULTI_STATE_UPDATE: { updates: [{ objectId: "SB1", state: false }, { objectId: "SB2", state: true }] },
        SHARED_STATE_UPDATE: { sharedStatePatch: { a: 2 } },
      };
      for (const [role, client] of [["pilot", p], ["observer", o]]) {
        for (const [type, data] of Object.entries(controllerOnly)) {
          const r = await expectError(client, { type, data }, "FORBIDDEN");
          assert.ok(r.requestId, `${role} ${type}: requestId echoed`);
        }
      }
      for (const client of [c, o]) {
        await expectError(client, { type: "STOPBAR_CROSSING", data: { objectId: "SB1" } }, "FORBIDDEN");
      }

      const unchanged = await snapshot(o);
      assert.equal(unchanged.seq, base.seq, "no seq for forbidden packets");
      assert.deepEqual(unchanged.objects, base.objects);
      assert.deepEqual(unchanged.sharedState, { a: 1 });
      await settle(c, p, o, elsewhere);
      for (const client of [p, o]) {
        assert.equal(client.all("STATE_UPDATE").length, 1, "only the controller's own update");
        assert.equal(client.all("SHARED_STATE_UPDATE").length, 1);
        assert.equal(client.all("MULTI_STATE_UPDATE").length, 0);
      }
      assert.equal(c.all("SHARED_STATE_UPDATE").length, 1);
      for (const client of [c, p, o, elsewhere]) assert.equal(client.all("STOPBAR_CROSSING").length, 0);

      // Allowed for every role: HEARTBEAT, GET_STATE, GET_ONLINE_PILOTS, HEARTBEAT_ACK.
      for (const client of [c, p, o]) {
        assert.equal((await req(client, { type: "HEARTBEAT" })).type, "HEARTBEAT_ACK");
        assert.equal((await req(client, { type: "GET_STATE" })).type, "STATE_SNAPSHOT");
        assertPilots(await req(client, { type: "GET_ONLINE_PILOTS" }), [CIDS.pilot1]);
        const rid = `ack-${Math.random().toString(36).slice(2)}`;
        await send(client, { type: "HEARTBEAT_ACK", requestId: rid });
        await settle(client);
        assert.deepEqual(client.received.filter((x) => x.requestId === rid), [], "HEARTBEAT_ACK gets no reply");
      }

      // Controller-only packets from the controller are applied and broadcast.
      await send(c, { type: "STATE_UPDATE", data: controllerOnly.STATE_UPDATE });
      for (const client of [p, o]) {
        const u = await client.next("STATE_UPDATE");
        assert.equal(u.seq, base.seq + 1);
      }
      await send(c, { type: "MULTI_STATE_UPDATE", data: controllerOnly.MULTI_STATE_UPDATE });
      for (const client of [p, o]) assert.equal((await client.next("MULTI_STATE_UPDATE")).seq, base.seq + 2);
      await send(c, { type: "SHARED_STATE_UPDATE", data: controllerOnly.SHARED_STATE_UPDATE });
      for (const client of [c, p, o]) assert.equal((await client.next("SHARED_STATE_UPDATE")).seq, base.seq + 3);

      // The pilot-only packet from the pilot reaches the controller.
      await send(p, { type: "STOPBAR_CROSSING", data: { objectId: "SB1" } });
      const crossing = await c.next("STOPBAR_CROSSING");
      assert.equal(crossing.data.pilotId, CIDS.pilot1);

      const final = await snapshot(c);
      assert.equal(final.seq, base.seq + 3);
      assert.deepEqual(statesOf(final), { SB1: false, SB2: true });
      assert.deepEqual(final.sharedState, { a: 2 });

      // CLOSE is allowed for everyone.
      for (const client of [o, p, c]) {
        await send(client, { type: "CLOSE" });
        const info = await client.closed;
        assert.equal(info.code, 1000);
      }
      await settle(elsewhere);
      for (const type of ["STATE_UPDATE", "MULTI_STATE_UPDATE", "SHARED_STATE_UPDATE", "STOPBAR_CROSSING", "CONTROLLER_CONNECT", "CONTROLLER_DISCONNECT"]) {
        assert.equal(elsewhere.all(type).length, 0, `${type} leaked to another airport`);
      }
    },
  },

  // -------------------------------------------------------------------------------------------
  // Audiences

  {
    name: "STATE_UPDATE and MULTI_STATE_UPDATE reach every other socket of the airport, not the sender, not another airport",
    airport: "AUD1",
    joins: {
      c1a: KEYS.controller1, c1b: KEYS.controller1, c2: KEYS.controller2, p1: KEYS.pilot1, o1: KEYS.observer1,
      xo: [KEYS.observer1, "AUD2"], xc: [KEYS.controller1, "AUD2"],
    },
    async run(s, { c1a, c1b, c2, p1, o1, xo, xc }) {
      const seq0 = o1.initial.data.seq;

      await send(c1a, { type: "STATE_UPDATE", data: { objectId: "SB_27L_A1", state: true }, requestId: "su-1" });
      for (const client of [c1b, c2, p1, o1]) {
        const u = await client.next("STATE_UPDATE");
        assert.deepEqual(u.data, { objectId: "SB_27L_A1", state: true, controllerId: CIDS.controller1 });
        assert.equal(u.seq, seq0 + 1);
        assert.ok(!("requestId" in u));
      }

      await send(c2, {
        type: "MULTI_STATE_UPDATE",
        data: { updates: [{ objectId: "SB_27L_A2", state: true }, { objectId: "LO_1", state: { on: true } }] },
        requestId: "mu-1",
      });
      for (const client of [c1a, c1b, p1, o1]) {
        const u = await client.next("MULTI_STATE_UPDATE");
        assert.deepEqual(u.data, {
          updates: [
            { objectId: "SB_27L_A2", state: true, controllerId: CIDS.controller2 },
            { objectId: "LO_1", state: { on: true }, controllerId: CIDS.controller2 },
          ],
        });
        assert.equal(u.seq, seq0 + 2);
      }

      await settle(c1a, c1b, c2, p1, o1, xo, xc);
      assert.equal(c1a.all("STATE_UPDATE").length, 0, "the sender does not get its own STATE_UPDATE");
      assert.equal(c2.all("MULTI_STATE_UPDATE").length, 0, "the sender does not get its own MULTI_STATE_UPDATE");
      assert.deepEqual(c1a.received.filter((x) => x.requestId === "su-1"), [], "no reply to an accepted update");
      assert.deepEqual(c2.received.filter((x) => x.requestId === "mu-1"), []);
      for (const client of [c1b, c2, p1, o1]) assert.equal(client.all("STATE_UPDATE").length, 1);
      for (const client of [c1a, c1b, p1, o1]) assert.equal(client.all("MULTI_STATE_UPDATE").length, 1);
      for (const client of [xo, xc]) {
        assert.equal(client.all("STATE_UPDATE").length, 0, "other airport gets nothing");
        assert.equal(client.all("MULTI_STATE_UPDATE").length, 0, "other airport gets nothing");
      }
      const other = await snapshot(xo);
      assert.deepEqual(other.objects, [], "other airport's state untouched");
      assert.equal(other.seq, xo.initial.data.seq);
    },
  },

  {
    name: "SHARED_STATE_UPDATE reaches every socket of the airport including the sender, not another airport",
    airport: "SHR1",
    joins: {
      c1: KEYS.controller1, c2: KEYS.controller2, p1: KEYS.pilot1, o1: KEYS.observer1,
      xo: [KEYS.observer1, "SHR2"], xc: [KEYS.controller2, "SHR2"],
    },
    async run(s, { c1, c2, p1, o1, xo, xc }) {
      const seq0 = c1.initial.data.seq;

      const patch = { runway: { "27L": "dep" }, atis: "K" };
      await send(c1, { type: "SHARED_STATE_UPDATE", data: { sharedStatePatch: patch }, requestId: "ss-1" });
      for (const client of [c1, c2, p1, o1]) {
        const u = await client.next("SHARED_STATE_UPDATE");
        assert.deepEqual(u.data, { sharedStatePatch: patch, controllerId: CIDS.controller1 });
        assert.equal(u.seq, seq0 + 1);
        assert.ok(!("requestId" in u), "the sender's copy is a broadcast: no requestId");
      }
      await settle(c1, c2, p1, o1, xo, xc);
      for (const client of [c1, c2, p1, o1]) assert.equal(client.all("SHARED_STATE_UPDATE").length, 1);
      for (const client of [xo, xc]) assert.equal(client.all("SHARED_STATE_UPDATE").length, 0);
      assert.deepEqual((await snapshot(p1)).sharedState, patch);
      assert.deepEqual((await snapshot(xo)).sharedState, {});
    },
  },

  {
    name: "STOPBAR_CROSSING is forwarded to the airport's controllers only",
    airport: "STB1",
    joins: {
      c1a: KEYS.controller1, c1b: KEYS.controller1, c2: KEYS.controller2, p1: KEYS.pilot1, p2: KEYS.pilot2,
      o1: KEYS.observer1, xc: [KEYS.controller1, "STB2"], xp: [KEYS.pilot2, "STB2"],
    },
    async run(s, { c1a, c1b, c2, p1, p2, o1, xc, xp }) {
      const seq0 = o1.initial.data.seq;

      await send(p1, { type: "STOPBAR_CROSSING", data: { objectId: "SB_09R_B3" }, requestId: "x-1" });
      for (const client of [c1a, c1b, c2]) {
        const x = await client.next("STOPBAR_CROSSING");
        const { callsign, ...rest } = x.data;
        // controllerId repeats the pilot's cid under its legacy name (§7).
        assert.deepEqual(rest, { objectId: "SB_09R_B3", pilotId: CIDS.pilot1, controllerId: CIDS.pilot1 });
        if (callsign !== undefined) assert.equal(typeof callsign, "string");
        assert.ok(!("requestId" in x));
      }
      await settle(c1a, c1b, c2, p1, p2, o1, xc, xp);
      for (const client of [c1a, c1b, c2]) assert.equal(client.all("STOPBAR_CROSSING").length, 1);
      for (const client of [p1, p2, o1, xc, xp]) {
        assert.equal(client.all("STOPBAR_CROSSING").length, 0, "not for pilots, observers, or another airport");
      }
      assert.deepEqual(p1.received.filter((x) => x.requestId === "x-1"), []);
      assert.equal((await snapshot(o1)).seq, seq0, "a crossing is not a state change");
    },
  },

  {
    name: "CONTROLLER_CONNECT/DISCONNECT go to every other socket, once per person (first open, last close)",
    airport: "CON1", joins: { xo: [KEYS.observer1, "CON2"], xc: [KEYS.controller2, "CON2"] },
    async run(s, { xo, xc }) {
      const xconnect = await xo.next("CONTROLLER_CONNECT");
      assert.deepEqual(xconnect.data, { controllerId: CIDS.controller2 });

      const o1 = await s.join(KEYS.observer1);
      assert.equal(o1.initial.data.offline, true);
      assert.deepEqual(o1.initial.data.controllers, []);
      const p1 = await s.join(KEYS.pilot1);
      const c2 = await s.join(KEYS.controller2);
      for (const client of [o1, p1]) {
        assert.deepEqual((await client.next("CONTROLLER_CONNECT")).data, { controllerId: CIDS.controller2 });
      }

      const c1a = await s.join(KEYS.controller1);
      assert.deepEqual([...c1a.initial.data.controllers].sort(), [CIDS.controller1, CIDS.controller2]);
      assert.equal(c1a.initial.data.offline, false);
      for (const client of [o1, p1, c2]) {
        assert.deepEqual((await client.next("CONTROLLER_CONNECT")).data, { controllerId: CIDS.controller1 });
      }
      const c1b = await s.join(KEYS.controller1);
      assert.deepEqual([...c1b.initial.data.controllers].sort(), [CIDS.controller1, CIDS.controller2], "listed once");

      await settle(o1, p1, c2, c1a, c1b, xo, xc);
      const connects = (client, cid) => client.all("CONTROLLER_CONNECT").filter((x) => x.data.controllerId === cid).length;
      for (const client of [o1, p1, c2]) assert.equal(connects(client, CIDS.controller1), 1, "announced once");
      assert.equal(c1a.all("CONTROLLER_CONNECT").length, 0, "not announced to itself; second socket not announced");
      assert.equal(c1b.all("CONTROLLER_CONNECT").length, 0);

      await c1a.close();
      await settle(o1, p1, c2, c1b);
      for (const client of [o1, p1, c2, c1b]) {
        assert.equal(client.all("CONTROLLER_DISCONNECT").length, 0, "a remaining socket keeps the controller connected");
      }
      const mid = await snapshot(o1);
      assert.deepEqual([...mid.controllers].sort(), [CIDS.controller1, CIDS.controller2]);

      await c1b.close();
      for (const client of [o1, p1, c2]) {
        assert.deepEqual((await client.next("CONTROLLER_DISCONNECT")).data, { controllerId: CIDS.controller1 });
      }
      await settle(o1, p1, c2, xo, xc);
      for (const client of [o1, p1, c2]) assert.equal(client.all("CONTROLLER_DISCONNECT").length, 1, "leaves once");
      assert.deepEqual((await snapshot(o1)).controllers, [CIDS.controller2]);

      await c2.close();
      for (const client of [o1, p1]) {
        assert.deepEqual((await client.next("CONTROLLER_DISCONNECT")).data, { controllerId: CIDS.controller2 });
      }
      const end = await snapshot(p1);
      assert.equal(end.offline, true);
      assert.deepEqual(end.controllers, []);

      // The other airport heard only about its own controller.
      assert.equal(xo.all("CONTROLLER_CONNECT").length, 1);
      assert.equal(xo.all("CONTROLLER_DISCONNECT").length, 0);
      assert.equal(xc.all("CONTROLLER_CONNECT").length + xc.all("CONTROLLER_DISCONNECT").length, 0);
    },
  },

  {
    name: "HEARTBEAT, GET_STATE and GET_ONLINE_PILOTS are answered to the sender only, with its requestId",
    airport: "DIR1",
    joins: {
      c1: KEYS.controller1, p1a: KEYS.pilot1, p1b: KEYS.pilot1, p2: KEYS.pilot2, o1: KEYS.observer1,
      xp: [KEYS.pilot1, "DIR2"],
    },
    async run(s, { c1, p1a, p1b, p2, o1, xp }) {
      const all = [c1, p1a, p1b, p2, o1, xp];

      const replies = [];
      const ack = await req(o1, { type: "HEARTBEAT" });
      assert.equal(ack.type, "HEARTBEAT_ACK");
      replies.push(ack);

      const snap = await req(o1, { type: "GET_STATE" });
      assert.equal(snap.type, "STATE_SNAPSHOT");
      assert.deepEqual(Object.keys(snap.data).sort(), ["controllers", "objects", "offline", "seq", "sharedState"]);
      assert.deepEqual(snap.data.controllers, [CIDS.controller1]);
      assert.equal(snap.data.offline, false);
      replies.push(snap);

      const pilots = await req(o1, { type: "GET_ONLINE_PILOTS" });
      assertPilots(pilots, [CIDS.pilot1, CIDS.pilot2]);
      replies.push(pilots);

      await p2.close();
      const after2 = await pilotsOnceGone(c1, CIDS.pilot2);
      assertPilots(after2, [CIDS.pilot1]);
      replies.push(after2);
      await p1a.close();
      const after1a = await req(p1b, { type: "GET_ONLINE_PILOTS" });
      assertPilots(after1a, [CIDS.pilot1]);
      replies.push(after1a);

      const xpilots = await req(xp, { type: "GET_ONLINE_PILOTS" });
      assertPilots(xpilots, [CIDS.pilot1]);

      const open = [c1, p1b, o1, xp];
      await settle(...open);
      const rids = new Set(replies.map((r) => r.requestId));
      for (const r of replies) assert.match(r.requestId, /^r-/);
      for (const client of all) {
        const mine = client.received.filter((x) => rids.has(x.requestId));
        for (const x of mine) {
          assert.ok(replies.includes(x), `a reply reached a socket that did not ask: ${JSON.stringify(x).slice(0, 200)}`);
        }
      }
      assert.ok(c1.all("ONLINE_PILOTS").length >= 1);
      assert.equal(p1b.all("ONLINE_PILOTS").length, 1);
      assert.equal(o1.all("ONLINE_PILOTS").length, 1);
      for (const client of [c1, p1b, xp]) assert.equal(client.all("STATE_SNAPSHOT").length, 0);
    },
  },

  {
    name: "CLOSE: the server closes the socket with 1000; a controller's CLOSE is announced as a disconnect",
    airport: "CLS1", joins: { o1: KEYS.observer1, c1: KEYS.controller1 },
    async run(s, { o1, c1 }) {
      await o1.next("CONTROLLER_CONNECT");
      const xo = await s.join(KEYS.observer1, "CLS2");
      await send(c1, { type: "CLOSE", requestId: "bye" });
      const info = await c1.closed;
      assert.equal(info.code, 1000);
      assert.deepEqual((await o1.next("CONTROLLER_DISCONNECT")).data, { controllerId: CIDS.controller1 });
      await send(o1, { type: "CLOSE" });
      assert.equal((await o1.closed).code, 1000);
      await settle(xo);
      assert.equal(xo.all("CONTROLLER_DISCONNECT").length, 0);
    },
  },

  // -------------------------------------------------------------------------------------------
  // Envelopes

  {
    name: "every server packet carries airport and timestamp; requestId only on direct replies",
    airport: "ENV1",
    joins: {
      o1: [KEYS.observer1, "env1"], // lower case: canonicalised to ENV1
    },
    async run(s, { o1 }) {
      assert.equal(o1.initial.airport, "ENV1");
      const p1 = await s.join(KEYS.pilot1);
      const c1 = await s.join(KEYS.controller1);
      const c2 = await s.join(KEYS.controller2);
      // Every client packet carries a requestId, so any leak into a broadcast would show.
      await send(c1, { type: "STATE_UPDATE", data: { objectId: "A", state: true }, requestId: "e1" });
      await send(c1, { type: "MULTI_STATE_UPDATE", data: { updates: [{ objectId: "B", state: false }, { objectId: "C", state: true }] }, requestId: "e2" });
      await send(c1, { type: "SHARED_STATE_UPDATE", data: { sharedStatePatch: { k: 1 } }, requestId: "e3" });
      await send(p1, { type: "STOPBAR_CROSSING", data: { objectId: "A" }, requestId: "e4" });
      await send(c1, { type: "STATE_UPDATE", data: { objectId: "A", patch: null }, requestId: "e5" });
      await o1.next("STATE_UPDATE");
      await o1.next("MULTI_STATE_UPDATE");
      await o1.next("SHARED_STATE_UPDATE");
      await o1.next("STATE_UPDATE");
      await c2.next("STOPBAR_CROSSING");
      const err = await req(o1, { type: "STATE_UPDATE", data: { objectId: "A", state: true } });
      assert.equal(err.type, "ERROR");
      assert.equal(err.data.code, "FORBIDDEN");
      assert.equal((await req(o1, { type: "HEARTBEAT" })).type, "HEARTBEAT_ACK");
      assert.equal((await req(o1, { type: "GET_STATE" })).type, "STATE_SNAPSHOT");
      assert.equal((await req(o1, { type: "GET_ONLINE_PILOTS" })).type, "ONLINE_PILOTS");
      await c2.close();
      await o1.next("CONTROLLER_DISCONNECT");
      await settle(o1, p1, c1);

      const types = new Set(s.clients.flatMap((c) => c.received.map((p) => p.type)));
      for (const type of SERVER_TYPES) {
        if (type === "HEARTBEAT") continue; // the server's own heartbeat comes every 60 s
        assert.ok(types.has(type), `exercised ${type}`);
      }
      for (const c of s.clients) {
        for (const p of c.received) {
          if (["HEARTBEAT_ACK", "STATE_SNAPSHOT", "ONLINE_PILOTS", "ERROR"].includes(p.type)) {
            assert.equal(typeof p.requestId, "string", `direct reply ${p.type} echoes the requestId`);
          }
          assert.ok(!["e1", "e2", "e3", "e4", "e5"].includes(p.requestId), `requestId copied into ${p.type}`);
        }
      }
    },
  },

  // -------------------------------------------------------------------------------------------
  // Semantics and seq

  {
    name: "STATE_UPDATE semantics: replace, RFC 7396 patch, delete; seq +1 per accepted change",
    airport: "SEM1", joins: { c1: KEYS.controller1, c2: KEYS.controller2, o1: KEYS.observer1 },
    async run(s, { c1, c2, o1 }) {
      let seq = o1.initial.data.seq;

      /** Sends an update from `by` and checks the exact broadcast to the observer. */
      async function update(by, data, expected) {
        await send(by, { type: "STATE_UPDATE", data });
        const u = await o1.next("STATE_UPDATE");
        seq += 1;
        assert.deepEqual(Object.keys(u).sort(), ["airport", "data", "seq", "timestamp", "type"]);
        assert.deepEqual(u.data, expected);
        assert.equal(u.seq, seq, "seq increases by exactly 1");
        return u;
      }
      const by1 = CIDS.controller1;

      await update(c1, { objectId: "X", state: { a: { b: 1, c: 2 }, d: 3 } }, { objectId: "X", state: { a: { b: 1, c: 2 }, d: 3 }, controllerId: by1 });
      await update(
        c1,
        { objectId: "X", patch: { a: { b: null, e: [1, 2] }, d: null, f: "x" } },
        { objectId: "X", state: { a: { c: 2, e: [1, 2] }, f: "x" }, controllerId: by1 },
      );
      await update(c1, { objectId: "X", patch: { f: { g: true }, a: { e: [3] } } }, { objectId: "X", state: { a: { c: 2, e: [3] }, f: { g: true } }, controllerId: by1 });
      await update(c1, { objectId: "X", patch: { zz: null } }, { objectId: "X", state: { a: { c: 2, e: [3] }, f: { g: true } }, controllerId: by1 });
      await update(c1, { objectId: "X", state: { z: 1 } }, { objectId: "X", state: { z: 1 }, controllerId: by1 });
      await update(c1, { objectId: "X", state: true }, { objectId: "X", state: true, controllerId: by1 });
      await update(c1, { objectId: "X", patch: { on: 1 } }, { objectId: "X", state: { on: 1 }, controllerId: by1 });
      await update(c1, { objectId: "Y", state: false }, { objectId: "Y", state: false, controllerId: by1 });
      await update(c1, { objectId: "Y", patch: {} }, { objectId: "Y", state: {}, controllerId: by1 });
      await update(c1, { objectId: "NEW", patch: { k: "v", gone: null } }, { objectId: "NEW", state: { k: "v" }, controllerId: by1 });
      // The same value again still counts.
      await update(c1, { objectId: "NEW", state: { k: "v" } }, { objectId: "NEW", state: { k: "v" }, controllerId: by1 });
      await update(c1, { objectId: "NEW", patch: { k: "v" } }, { objectId: "NEW", state: { k: "v" }, controllerId: by1 });
      // Last writer wins the controllerId.
      const before = Date.now();
      await update(c2, { objectId: "Z", state: { lit: true } }, { objectId: "Z", state: { lit: true }, controllerId: CIDS.controller2 });
      const afterWrite = Date.now();
      // Deletion.
      await update(c1, { objectId: "NEW", patch: null }, { objectId: "NEW", patch: null, controllerId: by1 });
      await update(c1, { objectId: "X", patch: null }, { objectId: "X", patch: null, controllerId: by1 });

      // Deleting a missing object changes nothing: no broadcast, no seq.
      await send(c1, { type: "STATE_UPDATE", data: { objectId: "NEW", patch: null } });
      await send(c1, { type: "STATE_UPDATE", data: { objectId: "NEVER_EXISTED", patch: null } });
      const snap = await snapshot(c1);
      await settle(o1, c2);
      assert.equal(snap.seq, seq, "deleting a missing object takes no seq");
      assert.equal(o1.all("STATE_UPDATE").length, 15, "no broadcast for deleting a missing object");
      assert.equal(c2.all("STATE_UPDATE").length, 14, "c2 got every update but its own");
      assert.equal(c1.all("STATE_UPDATE").length, 1, "c1 got only c2's update");

      // Snapshot objects: {id, state, controllerId, timestamp}.
      assert.deepEqual(statesOf(snap), { Y: {}, Z: { lit: true } });
      for (const obj of snap.objects) {
        assert.deepEqual(Object.keys(obj).sort(), ["controllerId", "id", "state", "timestamp"]);
        assert.ok(Number.isInteger(obj.timestamp));
      }
      const z = snap.objects.find((x) => x.id === "Z");
      assert.equal(z.controllerId, CIDS.controller2);
      assert.ok(z.timestamp >= before - 1000 && z.timestamp <= afterWrite + 1000, `object timestamp ${z.timestamp} is the time of change`);
      assert.equal(snap.objects.find((x) => x.id === "Y").controllerId, CIDS.controller1);

      // A new socket's INITIAL_STATE shows the same.
      const p1 = await s.join(KEYS.pilot1);
      assert.equal(p1.initial.data.seq, seq);
      assert.deepEqual(p1.initial.data.objects, snap.objects);
      assert.deepEqual(p1.initial.data.sharedState, {});
    },
  },

  {
    name: "SHARED_STATE_UPDATE merges by RFC 7396 and takes one seq per packet",
    airport: "SEM2", joins: { c1: KEYS.controller1, o1: KEYS.observer1 },
    async run(s, { c1, o1 }) {
      let seq = o1.initial.data.seq;
      const patches = [
        { a: { b: 1, c: [1, 2] }, d: "x" },
        { a: { b: null, e: true }, d: null },
        { a: { e: true } }, // same value: still a change
        { nothing: null }, // deletes a missing key: still an accepted packet
      ];
      for (const patch of patches) {
        await send(c1, { type: "SHARED_STATE_UPDATE", data: { sharedStatePatch: patch } });
        const u = await o1.next("SHARED_STATE_UPDATE");
        seq += 1;
        assert.deepEqual(u.data, { sharedStatePatch: patch, controllerId: CIDS.controller1 });
        assert.equal(u.seq, seq);
      }
      const snap = await snapshot(o1);
      assert.deepEqual(snap.sharedState, { a: { c: [1, 2], e: true } });
      assert.equal(snap.seq, seq);
    },
  },

  {
    name: "MULTI_STATE_UPDATE: one seq per batch, exact broadcast shape, all or nothing",
    airport: "MUL1", joins: { c1: KEYS.controller1, o1: KEYS.observer1 },
    async run(s, { c1, o1 }) {
      const seq0 = o1.initial.data.seq;

      await send(c1, { type: "STATE_UPDATE", data: { objectId: "C", state: { x: 1 } } });
      await send(c1, { type: "STATE_UPDATE", data: { objectId: "B", state: true } });
      await o1.next("STATE_UPDATE");
      await o1.next("STATE_UPDATE");

      await send(c1, {
        type: "MULTI_STATE_UPDATE",
        data: {
          updates: [
            { objectId: "A", state: true },
            { objectId: "B", patch: { x: 1 } },
            { objectId: "C", patch: null },
            { objectId: "D", state: { n: { m: 1 } } },
          ],
        },
      });
      const m = await o1.next("MULTI_STATE_UPDATE");
      assert.deepEqual(Object.keys(m).sort(), ["airport", "data", "seq", "timestamp", "type"]);
      assert.equal(m.seq, seq0 + 3, "one seq for the whole batch");
      assert.deepEqual(m.data, {
        updates: [
          { objectId: "A", state: true, controllerId: CIDS.controller1 },
          { objectId: "B", state: { x: 1 }, controllerId: CIDS.controller1 },
          { objectId: "C", patch: null, controllerId: CIDS.controller1 },
          { objectId: "D", state: { n: { m: 1 } }, controllerId: CIDS.controller1 },
        ],
      });
      let snap = await snapshot(c1);
      assert.equal(snap.seq, seq0 + 3);
      assert.deepEqual(statesOf(snap), { A: true, B: { x: 1 }, D: { n: { m: 1 } } });

      // One bad item rejects the whole batch and names its index; nothing is applied.
      const good = [
        { objectId: "E", state: true },
        { objectId: "A", state: false },
      ];
      const bad = [
        [{ objectId: "bad id", state: true }, /updates\[2\]/],
        [{ objectId: "F", state: 5 }, /updates\[2\]/],
        [{ objectId: "F", state: true, patch: {} }, /updates\[2\]/],
        [{ objectId: "F" }, /updates\[2\]/],
        [{ objectId: "F", patch: [1] }, /updates\[2\]/],
        ["not an object", /updates\[2\]/],
      ];
      for (const [item, pattern] of bad) {
        const r = await expectError(c1, { type: "MULTI_STATE_UPDATE", data: { updates: [...good, item] } }, "INVALID_PACKET", pattern);
        assert.match(r.requestId, /^r-/);
      }
      await expectError(
        c1,
        { type: "MULTI_STATE_UPDATE", data: { updates: [{ objectId: "E", state: true }, { objectId: "x".repeat(129), state: true }, ...good] } },
        "INVALID_PACKET",
        /updates\[1\]/,
      );
      await expectError(
        c1,
        { type: "MULTI_STATE_UPDATE", data: { updates: [{ objectId: "E", state: "on" }, ...good] } },
        "INVALID_PACKET",
        /updates\[0\]/,
      );
      snap = await snapshot(c1);
      assert.equal(snap.seq, seq0 + 3, "a rejected batch takes no seq");
      assert.deepEqual(statesOf(snap), { A: true, B: { x: 1 }, D: { n: { m: 1 } } }, "nothing of a rejected batch applied");
      await settle(o1);
      assert.equal(o1.all("MULTI_STATE_UPDATE").length, 1);
    },
  },

  {
    name: "MULTI_STATE_UPDATE: an item nested too deep names its index and echoes the requestId",
    airport: "MUD1", joins: { c1: KEYS.controller1 },
    async run(s, { c1 }) {
      const seq0 = c1.initial.data.seq;
      // Depth 16 is fine inside a batch.
      await send(c1, {
        type: "MULTI_STATE_UPDATE",
        data: { updates: [{ objectId: "A", state: nest(16) }, { objectId: "B", patch: nest(16) }] },
      });
      let snap = await snapshot(c1);
      assert.equal(snap.seq, seq0 + 1, "depth 16 accepted in MULTI_STATE_UPDATE items");
      for (const [i, item] of [
        { objectId: "C", state: nest(17) },
        { objectId: "C", patch: nest(17) },
      ].entries()) {
        await send(c1, { type: "MULTI_STATE_UPDATE", data: { updates: [{ objectId: "D", state: true }, item] }, requestId: `deep-${i}` });
        const r = await c1.next("ERROR");
        assert.equal(r.data.code, "INVALID_PACKET");
        assert.match(r.data.message, /updates\[1\]/, `the message names the item: ${r.data.message}`);
        assert.equal(r.requestId, `deep-${i}`, "the requestId is echoed");
      }
      snap = await snapshot(c1);
      assert.equal(snap.seq, seq0 + 1);
      assert.deepEqual(Object.keys(statesOf(snap)).sort(), ["A", "B"]);
    },
  },

  // -------------------------------------------------------------------------------------------
  // Errors

  {
    name: "INVALID_JSON for text that is not JSON and for binary frames that are not UTF-8; valid JSON binary frames work",
    airport: "JSN1", joins: { c1: KEYS.controller1, o1: KEYS.observer1 },
    async run(s, { c1, o1 }) {
      for (const frame of ["not json", "{", '{"type":"HEARTBEAT",}', "", "{'type':'HEARTBEAT'}"]) {
        await expectRawError(c1, frame, "INVALID_JSON");
      }
      await expectRawError(c1, Buffer.from([0xff, 0xfe, 0xfd]), "INVALID_JSON");
      // Valid JSON apart from an invalid UTF-8 byte inside a string.
      await expectRawError(
        c1,
        Buffer.concat([Buffer.from('{"type":"HEARTBEAT","requestId":"'), Buffer.from([0xc3, 0x28]), Buffer.from('"}')]),
        "INVALID_JSON",
      );
      await assertAlive(c1);

      // A binary frame holding a JSON packet is read as UTF-8 text.
      await sendBinary(c1, Buffer.from(JSON.stringify({ type: "HEARTBEAT", requestId: "bin-1" })));
      const ack = await c1.next((p) => p.requestId === "bin-1");
      assert.equal(ack.type, "HEARTBEAT_ACK");
      await sendBinary(c1, Buffer.from(JSON.stringify({ type: "STATE_UPDATE", data: { objectId: "BIN_E", state: { s: "é😀" } } })));
      const u = await o1.next("STATE_UPDATE");
      assert.deepEqual(u.data, { objectId: "BIN_E", state: { s: "é😀" }, controllerId: CIDS.controller1 });
      await sendBinary(c1, Buffer.from(JSON.stringify({ type: "GET_STATE", requestId: "bin-2" })));
      const snap = await c1.next((p) => p.requestId === "bin-2");
      assert.equal(snap.type, "STATE_SNAPSHOT");
      assert.deepEqual(statesOf(snap.data), { BIN_E: { s: "é😀" } });
      assert.equal(snap.data.seq, c1.initial.data.seq + 1);
    },
  },

  {
    name: "INVALID_PACKET: envelope (not an object, type, requestId)",
    airport: "INV1", joins: { c1: KEYS.controller1 },
    async run(s, { c1 }) {
      for (const frame of ["[]", '[{"type":"HEARTBEAT"}]', '"HEARTBEAT"', "5", "null", "true"]) {
        await expectRawError(c1, frame, "INVALID_PACKET");
      }
      for (const frame of ["{}", '{"type":5}', '{"type":null}', '{"type":["HEARTBEAT"]}', '{"type":{"name":"HEARTBEAT"}}', '{"data":{}}']) {
        await expectRawError(c1, frame, "INVALID_PACKET", /type/);
      }
      // A valid requestId is echoed on these errors too.
      const r = await expectError(c1, { type: 7 }, "INVALID_PACKET", /type/);
      assert.match(r.requestId, /^r-/);
      // requestId: a string of at most 64 characters.
      for (const rid of [5, null, true, { id: "x" }, ["x"], "x".repeat(65), "é".repeat(65)]) {
        await expectRawError(c1, JSON.stringify({ type: "HEARTBEAT", requestId: rid }), "INVALID_PACKET", /requestId/);
      }
      for (const rid of ["x".repeat(64), "é".repeat(64), "", "with spaces & ünïcode"]) {
        await send(c1, { type: "HEARTBEAT", requestId: rid });
        const ack = await c1.next((p) => p.type === "HEARTBEAT_ACK" || p.type === "ERROR");
        assert.equal(ack.type, "HEARTBEAT_ACK", `requestId ${JSON.stringify(rid)} accepted: ${JSON.stringify(ack)}`);
        assert.equal(ack.requestId, rid, "echoed unchanged");
      }
      await assertAlive(c1);
    },
  },

  {
    name: "INVALID_PACKET: data of STATE_UPDATE, MULTI_STATE_UPDATE, SHARED_STATE_UPDATE and STOPBAR_CROSSING; nothing applied",
    airport: "INV2", joins: { c1: KEYS.controller1, p1: KEYS.pilot1, o1: KEYS.observer1 },
    async run(s, { c1, p1, o1 }) {
      const seq0 = o1.initial.data.seq;
      const su = (data) => ({ type: "STATE_UPDATE", data });
      const cases = [
        [su(undefined), /data/],
        [su("x"), /data/],
        [su([]), /data/],
        [su({ state: true }), /objectId/],
        [su({ objectId: 5, state: true }), /objectId/],
        [su({ objectId: "", state: true }), /objectId/],
        [su({ objectId: "bad id", state: true }), /objectId/],
        [su({ objectId: "a.b", state: true }), /objectId/],
        [su({ objectId: "é", state: true }), /objectId/],
        [su({ objectId: "a".repeat(129), state: true }), /objectId/],
        [su({ objectId: "A", state: true, patch: { x: 1 } }), /state|patch/],
        [su({ objectId: "A", state: true, patch: null }), /state|patch/],
        [su({ objectId: "A" }), /state|patch/],
        [su({ objectId: "A", state: 1 }), /state/],
        [su({ objectId: "A", state: "on" }), /state/],
        [su({ objectId: "A", state: null }), /state/],
        [su({ objectId: "A", state: [true] }), /state/],
        [su({ objectId: "A", patch: true }), /patch/],
        [su({ objectId: "A", patch: 1 }), /patch/],
        [su({ objectId: "A", patch: "x" }), /patch/],
        [su({ objectId: "A", patch: [] }), /patch/],
        [{ type: "MULTI_STATE_UPDATE", data: {} }, /updates/],
        [{ type: "MULTI_STATE_UPDATE", data: { updates: {} } }, /updates/],
        [{ type: "MULTI_STATE_UPDATE", data: { updates: [] } }, /updates/],
        [
          {
            type: "MULTI_STATE_UPDATE",
            // Object states: only boolean-only batches may hold more than 200 (§7).
            data: { updates: Array.from({ length: 201 }, (_, i) => ({ objectId: `M${i}`, state: { on: true } })) },
          },
          /updates/,
        ],
        [{ type: "SHARED_STATE_UPDATE", data: {} }, /sharedStatePatch/],
        [{ type: "SHARED_STATE_UPDATE", data: { sharedStatePatch: [1] } }, /sharedStatePatch/],
        [{ type: "SHARED_STATE_UPDATE", data: { sharedStatePatch: "x" } }, /sharedStatePatch/],
        [{ type: "SHARED_STATE_UPDATE", data: { sharedStatePatch: null } }, /sharedStatePatch/],
      ];
      for (const [packet, pattern] of cases) await expectError(c1, packet, "INVALID_PACKET", pattern);
      for (const data of [undefined, {}, { objectId: "bad id" }, { objectId: "a".repeat(129) }]) {
        await expectError(p1, { type: "STOPBAR_CROSSING", data }, "INVALID_PACKET", /data|objectId/);
      }
      const snap = await snapshot(c1);
      assert.equal(snap.seq, seq0, "nothing applied");
      assert.deepEqual(snap.objects, []);
      assert.deepEqual(snap.sharedState, {});

      // The boundaries themselves are accepted: a 128-character objectId, 200 updates.
      const longId = "a".repeat(128);
      await send(c1, su({ objectId: longId, state: true }));
      assert.equal((await o1.next("STATE_UPDATE")).data.objectId, longId);
      await send(c1, {
        type: "MULTI_STATE_UPDATE",
        data: { updates: Array.from({ length: 200 }, (_, i) => ({ objectId: `M_${i}`, state: { i } })) },
      });
      const m = await o1.next("MULTI_STATE_UPDATE");
      assert.equal(m.data.updates.length, 200);
      await send(p1, { type: "STOPBAR_CROSSING", data: { objectId: longId } });
      assert.equal((await c1.next("STOPBAR_CROSSING")).data.objectId, longId);
      const after = await snapshot(o1);
      assert.equal(after.seq, seq0 + 2);
      assert.equal(after.objects.length, 201);
      await settle(o1, p1);
      assert.equal(o1.all("STATE_UPDATE").length, 1);
      assert.equal(o1.all("MULTI_STATE_UPDATE").length, 1);
      assert.equal(o1.all("SHARED_STATE_UPDATE").length, 0);
    },
  },

  {
    name: "INVALID_PACKET: depth 16 accepted and 17 rejected for state, patch and sharedStatePatch; 10,000-deep nesting is refused safely",
    airport: "DEP1", joins: { c1: KEYS.controller1, o1: KEYS.observer1 },
    async run(s, { c1, o1 }) {
      let seq = o1.initial.data.seq;

      const accepted = [
        { type: "STATE_UPDATE", data: { objectId: "S", state: nest(16) } },
        { type: "STATE_UPDATE", data: { objectId: "S2", state: { a: arr(15) } } },
        { type: "STATE_UPDATE", data: { objectId: "P", patch: nest(16) } },
        { type: "SHARED_STATE_UPDATE", data: { sharedStatePatch: nest(16) } },
        // Brackets inside strings are not nesting.
        { type: "STATE_UPDATE", data: { objectId: "STR", state: { s: "[".repeat(100) + "{".repeat(100), t: '\\"' + "[".repeat(50) } } },
      ];
      for (const packet of accepted) {
        await send(c1, packet);
        const u = await o1.next((p) => p.type === packet.type);
        seq += 1;
        assert.equal(u.seq, seq, `${JSON.stringify(packet).slice(0, 80)} accepted`);
      }
      const rejected = [
        [{ type: "STATE_UPDATE", data: { objectId: "S", state: nest(17) } }, /state/],
        [{ type: "STATE_UPDATE", data: { objectId: "S", state: { a: arr(16) } } }, /state/],
        [{ type: "STATE_UPDATE", data: { objectId: "P", patch: nest(17) } }, /patch/],
        [{ type: "SHARED_STATE_UPDATE", data: { sharedStatePatch: nest(17) } }, /sharedStatePatch/],
      ];
      for (const [packet, pattern] of rejected) await expectError(c1, packet, "INVALID_PACKET", pattern);

      // 10,000 levels: refused without harm, the socket keeps working.
      const deepArray = "[".repeat(10_000) + "]".repeat(10_000);
      const deepObject = '{"a":'.repeat(8_000) + "1" + "}".repeat(8_000); // as deep as fits in 50,000
      await expectRawError(c1, `{"type":"STATE_UPDATE","data":{"objectId":"S","state":{"a":${deepArray}}}}`, "INVALID_PACKET");
      await expectRawError(c1, `{"type":"STATE_UPDATE","data":{"objectId":"S","state":${deepObject}}}`, "INVALID_PACKET");
      await expectRawError(c1, deepArray, "INVALID_PACKET");
      await send(c1, "[".repeat(10_000));
      const unclosed = await c1.next("ERROR");
      assert.ok(["INVALID_JSON", "INVALID_PACKET"].includes(unclosed.data.code), JSON.stringify(unclosed.data));
      await assertAlive(c1);

      const snap = await snapshot(c1);
      assert.equal(snap.seq, seq, "rejected packets changed nothing");
      assert.deepEqual(statesOf(snap).S, nest(16));
      assert.deepEqual(snap.sharedState, nest(16));
    },
  },

  {
    name: "UNKNOWN_TYPE for non-client types, server-only types and wrong case",
    airport: "UNK1", joins: { c1: KEYS.controller1 },
    async run(s, { c1 }) {
      for (const type of ["INITIAL_STATE", "STATE_SNAPSHOT", "HEARTBEAT_ACKS", "ERROR", "CONTROLLER_CONNECT", "heartbeat", "Heartbeat", "HEARTBEAT ", "", "FOO"]) {
        const r = await expectError(c1, { type, data: {} }, "UNKNOWN_TYPE");
        assert.match(r.requestId, /^r-/);
      }
      await assertAlive(c1);
      assert.equal((await snapshot(c1)).seq, c1.initial.data.seq);
    },
  },

  {
    name: "AIRPORT_MISMATCH when a packet names another airport; the match is case-insensitive",
    airport: "APM1", joins: { c1: KEYS.controller1, o1: KEYS.observer1 },
    async run(s, { c1, o1 }) {
      const seq0 = o1.initial.data.seq;
      for (const airport of ["APM2", "EGLL", "APM", "APM11", ""]) {
        const r = await expectError(c1, { type: "STATE_UPDATE", airport, data: { objectId: "A", state: true } }, "AIRPORT_MISMATCH");
        assert.match(r.requestId, /^r-/);
      }
      await expectError(c1, { type: "HEARTBEAT", airport: "APM2" }, "AIRPORT_MISMATCH");
      assert.equal((await snapshot(o1)).seq, seq0, "a mismatched update is not applied");

      for (const airport of ["APM1", "apm1", "Apm1"]) {
        const ack = await req(c1, { type: "HEARTBEAT", airport });
        assert.equal(ack.type, "HEARTBEAT_ACK", `airport ${airport} accepted`);
      }
      await send(c1, { type: "STATE_UPDATE", airport: "apm1", data: { objectId: "A", state: true } });
      assert.equal((await o1.next("STATE_UPDATE")).seq, seq0 + 1);
    },
  },

  {
    name: "PACKET_TOO_LARGE above 50,000 characters (Unicode scalar values, not bytes); nothing applied",
    airport: "BIG1", joins: { c1: KEYS.controller1, o1: KEYS.observer1 },
    async run(s, { c1, o1 }) {
      let seq = o1.initial.data.seq;

      for (const [ch, id] of [["x", "ASCII"], ["é", "E_ACUTE"], ["😀", "EMOJI"]]) {
        const ok = sizedUpdate(50_000, id, ch);
        await send(c1, ok);
        const u = await o1.next((p) => p.type === "STATE_UPDATE" || p.type === "ERROR", 10_000);
        assert.equal(u.type, "STATE_UPDATE", `a frame of 50,000 characters of ${JSON.stringify(ch)} is accepted`);
        seq += 1;
        assert.equal(u.seq, seq);
        assert.equal(chars(u.data.state.s), chars(JSON.parse(ok).data.state.s));

        const tooBig = sizedUpdate(50_001, `${id}_BIG`, ch);
        const err = await expectRawError(c1, tooBig, "PACKET_TOO_LARGE");
        assert.match(err.data.message, /50,?000/);
      }
      // A binary frame counts characters the same way.
      await sendBinary(c1, Buffer.from(sizedUpdate(50_000, "BIN_OK", "é")));
      assert.equal((await o1.next("STATE_UPDATE", 10_000)).seq, seq + 1);
      seq += 1;
      await expectRawError(c1, Buffer.from(sizedUpdate(50_001, "BIN_BIG", "é")), "PACKET_TOO_LARGE");
      // A huge frame that is not even JSON is too large first.
      await expectRawError(c1, "x".repeat(200_000), "PACKET_TOO_LARGE");

      const snap = await snapshot(c1);
      assert.equal(snap.seq, seq);
      assert.deepEqual(Object.keys(statesOf(snap)).sort(), ["ASCII", "BIN_OK", "EMOJI", "E_ACUTE"]);
      await assertAlive(c1);
    },
  },

  {
    name: "LIMIT_EXCEEDED: sharedStatePatch over 10,240 serialized characters",
    airport: "LSP1", joins: { c1: KEYS.controller1, o1: KEYS.observer1 },
    async run(s, { c1, o1 }) {
      const seq0 = o1.initial.data.seq;
      const patchOf = (n, ch = "x") => {
        const base = JSON.stringify({ a: "" }).length;
        const patch = { a: ch.repeat(n - base) };
        assert.equal(chars(JSON.stringify(patch)), n);
        return patch;
      };
      await send(c1, { type: "SHARED_STATE_UPDATE", data: { sharedStatePatch: patchOf(10_240) } });
      assert.equal((await o1.next("SHARED_STATE_UPDATE")).seq, seq0 + 1, "10,240 characters accepted");
      await send(c1, { type: "SHARED_STATE_UPDATE", data: { sharedStatePatch: patchOf(10_240, "é") } });
      assert.equal((await o1.next("SHARED_STATE_UPDATE")).seq, seq0 + 2, "10,240 characters (20 kB of UTF-8) accepted");
      const r = await expectError(c1, { type: "SHARED_STATE_UPDATE", data: { sharedStatePatch: patchOf(10_241) } }, "LIMIT_EXCEEDED");
      assert.match(r.data.message, /10,?240/);
      await expectError(c1, { type: "SHARED_STATE_UPDATE", data: { sharedStatePatch: patchOf(10_241, "é") } }, "LIMIT_EXCEEDED");
      const snap = await snapshot(o1);
      assert.equal(snap.seq, seq0 + 2);
      assert.deepEqual(snap.sharedState, patchOf(10_240, "é"));
    },
  },

  {
    name: "LIMIT_EXCEEDED: merged shared state over 1,000,000 characters; nothing applied",
    airport: "LSS1", joins: { c1: KEYS.controller1 },
    async run(s, { c1 }) {
      let seq = c1.initial.data.seq;
      const mirror = {};
      const size = () => JSON.stringify(mirror).length;

      async function accept(patch) {
        await send(c1, { type: "SHARED_STATE_UPDATE", data: { sharedStatePatch: patch } });
        const u = await c1.next((p) => p.type === "SHARED_STATE_UPDATE" || p.type === "ERROR");
        assert.equal(u.type, "SHARED_STATE_UPDATE", `accepted at ${size()} characters: ${JSON.stringify(u).slice(0, 200)}`);
        seq += 1;
        assert.equal(u.seq, seq);
      }

      const value = "x".repeat(10_000);
      for (let i = 0; ; i++) {
        const key = `k${String(i).padStart(3, "0")}`;
        mirror[key] = value;
        if (size() > 1_000_000) {
          delete mirror[key];
          break;
        }
        await accept({ [key]: value });
      }
      // Fill up to exactly 1,000,000 characters.
      mirror.fill = "";
      const fill = "y".repeat(1_000_000 - size());
      mirror.fill = fill;
      assert.equal(size(), 1_000_000);
      await accept({ fill });

      const over = [
        { z: 1 }, // one more member
        { fill: fill + "y" }, // one more character
        { k000: { nested: value } }, // grows by a few characters
      ];
      for (const patch of over) {
        const r = await expectError(c1, { type: "SHARED_STATE_UPDATE", data: { sharedStatePatch: patch } }, "LIMIT_EXCEEDED");
        assert.match(r.data.message, /1,?000,?000/);
      }
      const snap = await snapshot(c1, 20_000);
      assert.equal(snap.seq, seq, "rejected merges take no seq");
      assert.equal(JSON.stringify(snap.sharedState).length, 1_000_000);
      assert.deepEqual(snap.sharedState, mirror, "nothing of a rejected merge applied");

      // Same size is fine; shrinking makes room again.
      await accept({ fill: fill.replace(/y$/, "z") });
      await accept({ k000: null, z: 1 });
      delete mirror.k000;
      mirror.z = 1;
      mirror.fill = fill.replace(/y$/, "z");
      assert.deepEqual((await snapshot(c1, 20_000)).sharedState, mirror);
    },
  },

  {
    name: "LIMIT_EXCEEDED: 10,000 objects per airport, then one more",
    airport: "LOB1", joins: { c1: KEYS.controller1 },
    async run(s, { c1 }) {
      const seq0 = c1.initial.data.seq;
      for (let batch = 0; batch < 50; batch++) {
        const updates = Array.from({ length: 200 }, (_, i) => ({ objectId: `o${batch * 200 + i}`, state: true }));
        await send(c1, { type: "MULTI_STATE_UPDATE", data: { updates } });
      }
      let snap = await snapshot(c1, 30_000);
      assert.deepEqual(c1.all("ERROR"), [], "every batch accepted");
      assert.equal(snap.objects.length, 10_000);
      assert.equal(snap.seq, seq0 + 50, "one seq per batch");

      const r = await expectError(c1, { type: "STATE_UPDATE", data: { objectId: "extra", state: true } }, "LIMIT_EXCEEDED");
      assert.match(r.data.message, /10,?000/);
      await expectError(c1, { type: "STATE_UPDATE", data: { objectId: "extra", patch: { a: 1 } } }, "LIMIT_EXCEEDED");
      await expectError(
        c1,
        { type: "MULTI_STATE_UPDATE", data: { updates: [{ objectId: "o0", state: false }, { objectId: "extra", state: true }] } },
        "LIMIT_EXCEEDED",
        /updates\[1\]/,
      );
      snap = await snapshot(c1, 30_000);
      assert.equal(snap.seq, seq0 + 50, "rejections take no seq");
      assert.equal(snap.objects.length, 10_000);
      assert.equal(statesOf(snap).o0, true, "the rejected batch changed nothing");
      assert.equal(statesOf(snap).extra, undefined);

      // Changing an existing object at the limit is fine; deleting makes room in the same batch.
      await send(c1, { type: "STATE_UPDATE", data: { objectId: "o5", state: { on: true } } });
      await send(c1, {
        type: "MULTI_STATE_UPDATE",
        data: { updates: [{ objectId: "o1", patch: null }, { objectId: "extra", state: true }] },
      });
      snap = await snapshot(c1, 30_000);
      assert.deepEqual(c1.all("ERROR").filter((e) => !e.requestId), []);
      assert.equal(snap.seq, seq0 + 52);
      assert.equal(snap.objects.length, 10_000);
      const states = statesOf(snap);
      assert.deepEqual(states.o5, { on: true });
      assert.equal(states.extra, true);
      assert.equal(states.o1, undefined);
    },
  },



  {
    name: "RATE_LIMITED: of a burst of 100 questions, the first 50 pass and the rest are dropped; the socket recovers",
    airport: "RAT1", joins: { o1: KEYS.observer1, p1: KEYS.pilot1, c1: KEYS.controller1 },
    async run(s, { o1, p1, c1 }) {
      const seq0 = c1.initial.data.seq;

      // 100 heartbeats at once: questions have a budget of their own (50 at once, docs/protocol.md §7).
      for (let i = 0; i < 100; i++) o1.send({ type: "HEARTBEAT", requestId: `h${i}` });
      const replies = [];
      for (let i = 0; i < 100; i++) replies.push(await o1.next((p) => p.type === "HEARTBEAT_ACK" || p.type === "ERROR"));
      for (let i = 0; i < 50; i++) {
        assert.equal(replies[i].type, "HEARTBEAT_ACK", `packet ${i} of the burst passes`);
        assert.equal(replies[i].requestId, `h${i}`);
      }
      const limited = replies.slice(50).filter((r) => r.type === "ERROR");
      for (const r of limited) assert.equal(r.data.code, "RATE_LIMITED");
      assert.ok(limited.length >= 40, `most of the rest are dropped (${limited.length} of 50)`);
      assert.ok(limited[0].data.message.length > 0);
      // Another socket is unaffected.
      assert.equal((await req(p1, { type: "HEARTBEAT" })).type, "HEARTBEAT_ACK");
      // Its budget refills (2 a second): a question passes again after a pause.
      await sleep(1_000);
      assert.equal((await req(o1, { type: "HEARTBEAT" })).type, "HEARTBEAT_ACK");
      assert.equal(o1.closeInfo, undefined);

      // A pilot's dropped crossings are not forwarded.
      for (let i = 0; i < 100; i++) p1.send({ type: "STOPBAR_CROSSING", data: { objectId: `x${i}` } });
      await waitUntilAccepted(p1); // every crossing of the burst has been handled
      await settle(c1); // and every one forwarded has reached the controller
      const forwarded = c1.all("STOPBAR_CROSSING").length;
      assert.ok(forwarded >= 58 && forwarded <= 70, `crossings that passed: ${forwarded}`);
      const errors = p1.all("ERROR");
      assert.ok(errors.every((e) => e.data.code === "RATE_LIMITED"));
      assert.ok(errors.length >= 100 - forwarded, "every dropped crossing was answered RATE_LIMITED");

      // A controller's burst of 100 updates all pass (controllers have their own, larger bucket).
      for (let i = 0; i < 100; i++) c1.send({ type: "STATE_UPDATE", data: { objectId: `r${i}`, state: true } });
      await settle(c1);
      await settle(o1);
      assert.equal(o1.changes().length, 100, "every update of the controller's burst is broadcast");
      assert.deepEqual(c1.all("ERROR"), []);
      const snap = await snapshot(c1);
      assert.equal(snap.seq, seq0 + 100, "one seq per update");
      assert.equal(snap.objects.length, 100);
      assert.equal(c1.closeInfo, undefined);
    },
  },

  {
    name: "RATE_LIMITED errors echo the packet's requestId",
    airport: "RID1", joins: { o1: KEYS.observer1 },
    async run(s, { o1 }) {
      for (let i = 0; i < 70; i++) o1.send({ type: "HEARTBEAT", requestId: `q${i}` });
      const replies = [];
      for (let i = 0; i < 70; i++) replies.push(await o1.next((p) => p.type === "HEARTBEAT_ACK" || p.type === "ERROR"));
      const limited = replies.filter((r) => r.type === "ERROR");
      assert.ok(limited.length > 0);
      for (const r of limited) {
        assert.equal(r.data.code, "RATE_LIMITED");
        assert.match(String(r.requestId), /^q\d+$/, `ERROR RATE_LIMITED carries the requestId: ${JSON.stringify(r)}`);
      }
    },
  },

  {
    name: "a controller flooding past its 20,000-packet burst is closed with 4008; other sockets at the airport keep working",
    airport: "FLD1",
    timeout: 60_000,
    joins: { o1: KEYS.observer1, p1: KEYS.pilot1, c1: KEYS.controller1, c2: KEYS.controller2, xo: [KEYS.observer1, "FLD2"] },
    async run(s, { o1, p1, c1, c2, xo }) {
      // c2 is the flooder.
      await o1.next((p) => p.type === "CONTROLLER_CONNECT" && p.data.controllerId === CIDS.controller2);

      // The bucket holds 20,000 and 2,000 drops are forgiven; this is what a flood looks like.
      // (Acks: they ask nothing and are not refused; questions and refused frames would be cut
      // off sooner, by budgets of their own.)
      const frame = JSON.stringify({ type: "HEARTBEAT_ACK" });
      for (let i = 0; i < 30_000; i++) c2.ws.send(frame);
      const info = await c2.closed;
      assert.equal(info.code, 4008);
      assert.ok(c2.all("ERROR").some((e) => e.data.code === "RATE_LIMITED"), "RATE_LIMITED before the close");

      // Its last socket gone, the controller leaves.
      for (const client of [o1, p1, c1]) {
        assert.deepEqual((await client.next("CONTROLLER_DISCONNECT")).data, { controllerId: CIDS.controller2 });
      }
      await assertAlive(o1);
      await assertAlive(p1);
      await send(c1, { type: "STATE_UPDATE", data: { objectId: "after_flood", state: true } });
      assert.deepEqual((await p1.next("STATE_UPDATE")).data, { objectId: "after_flood", state: true, controllerId: CIDS.controller1 });
      await settle(xo);
      assert.equal(xo.all("CONTROLLER_DISCONNECT").length, 0);
      // The flooder may come back, once its cool-down is over.
      const refused = await service.reject(KEYS.controller2, "FLD1");
      assert.equal(refused.status, 429);
      assert.equal(refused.body.error.code, "TOO_MANY_REQUESTS");
      await sleep(Number(refused.headers["retry-after"]) * 1000 + 100);
      const again = await s.join(KEYS.controller2);
      await assertAlive(again);
    },
  },
];

for (const { name, airport, timeout, joins = {}, run } of cases) {
  test(name, timeout ? { timeout } : {}, async (t) => {
    const s = scene(t, service, airport);
    // The case's first sockets, joined one after another in the order listed.
    const sockets = {};
    for (const [socket, who] of Object.entries(joins)) {
      const [key, at] = [who].flat();
      sockets[socket] = await s.join(key, at);
    }
    await run(s, sockets);
    checkEnvelopes(s);
  });
}
