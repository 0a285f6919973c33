// Liveness (PROTOCOL §4) with shortened durations: heartbeats, idle closes, offline clearing,
// all driven by the Durable Object's alarm.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { Service, KEYS, CIDS } from "./harness.mjs";
import { keepAlive } from "./helpers.mjs";

const HEARTBEAT_INTERVAL_MS = 1000;
const IDLE_TIMEOUT_MS = 3000;
const OFFLINE_GRACE_MS = 2000;

let service;
before(async () => {
  service = await new Service({
    HEARTBEAT_INTERVAL_MS: String(HEARTBEAT_INTERVAL_MS),
    IDLE_TIMEOUT_MS: String(IDLE_TIMEOUT_MS),
    OFFLINE_GRACE_MS: String(OFFLINE_GRACE_MS),
  }).start();
});
after(async () => {
  await service?.stop();
});

test("INITIAL_STATE announces the configured durations", async () => {
  const c = await service.join(KEYS.observer1, "LVA1");
  assert.equal(c.initial.data.heartbeatIntervalMs, HEARTBEAT_INTERVAL_MS);
  assert.equal(c.initial.data.idleTimeoutMs, IDLE_TIMEOUT_MS);
  await c.close();
});

test("every socket gets HEARTBEAT every interval, with airport and timestamp", async () => {
  const a = await service.join(KEYS.pilot1, "LVB1");
  const b = await service.join(KEYS.observer1, "LVB1");
  keepAlive(a);
  keepAlive(b);
  const first = await a.next("HEARTBEAT", HEARTBEAT_INTERVAL_MS * 3);
  const second = await a.next("HEARTBEAT", HEARTBEAT_INTERVAL_MS * 3);
  await b.next("HEARTBEAT", HEARTBEAT_INTERVAL_MS * 3);
  assert.equal(first.airport, "LVB1");
  assert.equal(typeof first.timestamp, "number");
  const gap = second.timestamp - first.timestamp;
  assert.ok(gap >= HEARTBEAT_INTERVAL_MS * 0.8 && gap <= HEARTBEAT_INTERVAL_MS * 2.5, `gap ${gap} ms`);
  await a.close();
  await b.close();
});

test("a socket with no inbound frame is closed with 4000 close to the idle deadline", async () => {
  const opened = Date.now();
  const silent = await service.join(KEYS.pilot2, "LVC1");
  const { code } = await silent.closed;
  const after = Date.now() - opened;
  assert.equal(code, 4000);
  assert.ok(after >= IDLE_TIMEOUT_MS - 100, `closed after ${after} ms, before the deadline`);
  assert.ok(after <= IDLE_TIMEOUT_MS + 2500, `closed after ${after} ms, too late`);
  // Silent sockets still got their heartbeats before being closed.
  assert.ok(silent.all("HEARTBEAT").length >= 1);
});

test("any inbound frame keeps a socket alive past the idle timeout", async () => {
  const busy = await service.join(KEYS.pilot1, "LVD1");
  keepAlive(busy);
  const silent = await service.join(KEYS.observer1, "LVD1");
  assert.equal((await silent.closed).code, 4000);
  // The busy socket outlives the silent one and is still served.
  const reply = await busy.request({ type: "GET_STATE" });
  assert.equal(reply.type, "STATE_SNAPSHOT");
  assert.equal(busy.closeInfo, undefined);
  await busy.close();
});

test("a controller's idle close is announced with CONTROLLER_DISCONNECT", async () => {
  const watcher = await service.join(KEYS.observer1, "LVE1");
  keepAlive(watcher);
  const controller = await service.join(KEYS.controller2, "LVE1");
  const connect = await watcher.next("CONTROLLER_CONNECT");
  assert.equal(connect.data.controllerId, CIDS.controller2);
  assert.equal((await controller.closed).code, 4000);
  const gone = await watcher.next("CONTROLLER_DISCONNECT", IDLE_TIMEOUT_MS);
  assert.equal(gone.data.controllerId, CIDS.controller2);
  await watcher.close();
});

async function snapshot(airport) {
  const res = await service.fetch(`/state?airport=${airport}&key=${KEYS.observer1}`);
  assert.equal(res.status, 200);
  return res.json();
}

test("state survives a controller's reconnect within the grace period", async () => {
  const c = await service.join(KEYS.controller1, "LVF1");
  keepAlive(c);
  const watcher = await service.join(KEYS.pilot1, "LVF1");
  keepAlive(watcher);
  c.send({ type: "STATE_UPDATE", data: { objectId: "SB_1", state: true } });
  await watcher.next("STATE_UPDATE");
  await c.close();
  const left = await watcher.next("CONTROLLER_DISCONNECT");
  const back = await service.join(KEYS.controller2, "LVF1");
  keepAlive(back);
  assert.deepEqual(back.initial.data.objects.map((o) => o.id), ["SB_1"]);
  // Long past the grace period, with a controller present, nothing is cleared: the alarm that
  // would clear it sends the heartbeats, so one stamped 1.5 s after the grace period ended (it
  // began when the controller left) shows that the alarm has run past it.
  await watcher.settle();
  const since = service.logs.length;
  const pastGrace = left.timestamp + OFFLINE_GRACE_MS + 1500;
  await watcher.next((p) => p.type === "HEARTBEAT" && p.timestamp >= pastGrace, OFFLINE_GRACE_MS + 5000);
  assert.equal(service.logs.slice(since).filter((e) => e.event === "offline_cleared" && e.airport === "LVF1").length, 0);
  assert.deepEqual((await snapshot("LVF1")).objects.map((o) => o.id), ["SB_1"]);
  await back.close();
  await watcher.close();
});

test("with no controller back, the alarm clears objects and shared state after the grace period", async () => {
  const c = await service.join(KEYS.controller1, "LVG1");
  c.send({ type: "STATE_UPDATE", data: { objectId: "SB_1", state: true } });
  c.send({ type: "SHARED_STATE_UPDATE", data: { sharedStatePatch: { runway: "27L" } } });
  await c.next("SHARED_STATE_UPDATE");
  const before = await snapshot("LVG1");
  assert.equal(before.seq, 2);
  const since = service.logs.length;
  const left = Date.now();
  await c.close();
  // Nobody connects or asks: the alarm alone does it.
  const cleared = await service.waitForLog(
    (e) => e.event === "offline_cleared" && e.airport === "LVG1",
    OFFLINE_GRACE_MS + 5000,
    since,
  );
  const took = Date.now() - left;
  assert.ok(took >= OFFLINE_GRACE_MS - 100, `cleared after ${took} ms`);
  assert.equal(cleared.seq, 3);
  const after = await snapshot("LVG1");
  assert.deepEqual(after.objects, []);
  assert.deepEqual(after.sharedState, {});
  // The clearing counts as a change.
  assert.equal(after.seq, 3);
  assert.equal(after.offline, true);
});
