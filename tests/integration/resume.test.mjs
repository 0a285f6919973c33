// Resume by `seq` (docs/protocol.md §8): a client that sends `resume=<history>.<seq>` gets only
// what changed since, when the airport's log still holds it; otherwise the full state, never an
// error. A client that sends no `resume` sees INITIAL_STATE exactly as before.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { Service, KEYS } from "./harness.mjs";

let service;
before(async () => {
  service = await new Service().start();
});
after(async () => {
  await service?.stop();
});

/** Joins with a `resume` parameter (a string, sent as it is). */
const resume = (key, airport, value) =>
  service.open(`/connect?airport=${airport}&key=${encodeURIComponent(key)}&resume=${encodeURIComponent(value)}`);

/** Joins without a replica and returns the client and where it can resume from later. */
async function replica(airport) {
  const client = await resume(KEYS.observer1, airport, "");
  const { history, seq, resumedFrom } = client.initial.data;
  assert.match(history, /^[0-9a-f]{16}$/);
  assert.equal(resumedFrom, undefined, "no replica: the full state");
  await client.close();
  return { history, seq, data: client.initial.data };
}

const ids = (objects) => objects.map(({ id }) => id).sort();

test("a client that sends no resume sees INITIAL_STATE as before", async () => {
  const plain = await service.join(KEYS.observer1, "RSM0");
  for (const member of ["history", "resumedFrom", "deleted"]) {
    assert.equal(member in plain.initial.data, false, member);
  }
  assert.deepEqual(plain.initial.data.sharedState, {});
  await plain.close();
});

test("a fresh seq resumes empty; changes and deletions since are all it carries", async () => {
  const controller = await service.join(KEYS.controller1, "RSM1");
  controller.send({ type: "MULTI_STATE_UPDATE", data: { updates: [{ objectId: "SB_1", state: true }, { objectId: "SB_2", state: true }] } });
  controller.send({ type: "SHARED_STATE_UPDATE", data: { sharedStatePatch: { runway: "27L" } } });
  await controller.next("SHARED_STATE_UPDATE");
  const taken = await replica("RSM1");
  assert.equal(taken.seq, 2);

  const fresh = await resume(KEYS.observer1, "RSM1", `${taken.history}.${taken.seq}`);
  const data = fresh.initial.data;
  assert.equal(data.resumedFrom, 2);
  assert.equal(data.seq, 2);
  assert.deepEqual(data.objects, []);
  assert.deepEqual(data.deleted, []);
  assert.equal("sharedState" in data, false, "unchanged, so left out");
  assert.deepEqual(data.controllers, [controller.initial.data.cid]);
  await fresh.close();

  controller.send({ type: "MULTI_STATE_UPDATE", data: { updates: [{ objectId: "SB_1", patch: null }, { objectId: "SB_3", state: true }] } });
  controller.send({ type: "SHARED_STATE_UPDATE", data: { sharedStatePatch: { atis: "K" } } });
  await controller.next("SHARED_STATE_UPDATE");
  const later = await resume(KEYS.observer1, "RSM1", `${taken.history}.${taken.seq}`);
  assert.equal(later.initial.data.resumedFrom, 2);
  assert.equal(later.initial.data.seq, 4);
  assert.deepEqual(ids(later.initial.data.objects), ["SB_3"]);
  assert.deepEqual(later.initial.data.deleted, ["SB_1"]);
  assert.deepEqual(later.initial.data.sharedState, { runway: "27L", atis: "K" });
  await later.close();
  await controller.close();
});

test("a seq from before the log's oldest deletion gets the full state", async () => {
  const controller = await service.join(KEYS.controller1, "RSM2");
  controller.send({ type: "STATE_UPDATE", data: { objectId: "KEEP", state: true } });
  await controller.request({ type: "GET_STATE" });
  const old = await replica("RSM2");
  // 6 × 200 objects made and deleted: 1,200 deletions, past the log's 1,000.
  for (let batch = 0; batch < 6; batch++) {
    const made = Array.from({ length: 200 }, (_, i) => ({ objectId: `B${batch}_${i}`, state: true }));
    controller.send({ type: "MULTI_STATE_UPDATE", data: { updates: made } });
    const gone = made.map(({ objectId }) => ({ objectId, patch: null }));
    controller.send({ type: "MULTI_STATE_UPDATE", data: { updates: gone } });
  }
  const snapshot = await controller.request({ type: "GET_STATE" });
  assert.equal(snapshot.data.seq, old.seq + 12);

  const evicted = await resume(KEYS.observer1, "RSM2", `${old.history}.${old.seq}`);
  assert.equal(evicted.initial.data.resumedFrom, undefined);
  assert.equal(evicted.initial.data.history, old.history);
  assert.deepEqual(ids(evicted.initial.data.objects), ["KEEP"]);
  assert.deepEqual(evicted.initial.data.sharedState, {});
  await evicted.close();

  // A replica after the last deletion still resumes.
  const recent = await resume(KEYS.observer1, "RSM2", `${old.history}.${snapshot.data.seq}`);
  assert.equal(recent.initial.data.resumedFrom, snapshot.data.seq);
  await recent.close();
  await controller.close();
});

test("a future, foreign or malformed resume gets the full state and no error", async () => {
  const controller = await service.join(KEYS.controller1, "RSM3");
  controller.send({ type: "STATE_UPDATE", data: { objectId: "SB_1", state: true } });
  await controller.request({ type: "GET_STATE" });
  const taken = await replica("RSM3");
  const other = taken.history === "0123456789abcdef" ? "fedcba9876543210" : "0123456789abcdef";
  for (const value of [`${taken.history}.${taken.seq + 1}`, `${other}.${taken.seq}`, "x.1", `${taken.history}.-1`, "9".repeat(5000)]) {
    const client = await resume(KEYS.observer1, "RSM3", value);
    const data = client.initial.data;
    assert.equal(data.resumedFrom, undefined, value);
    assert.equal(data.history, taken.history);
    assert.deepEqual(ids(data.objects), ["SB_1"]);
    assert.deepEqual(data.sharedState, {});
    await client.close();
  }
  await controller.close();
});

test("a resume after a restart of the runtime carries what changed before it", async () => {
  const controller = await service.join(KEYS.controller1, "RSM4");
  controller.send({ type: "MULTI_STATE_UPDATE", data: { updates: [{ objectId: "SB_1", state: true }, { objectId: "SB_2", state: true }] } });
  await controller.request({ type: "GET_STATE" });
  const taken = await replica("RSM4");
  controller.send({ type: "MULTI_STATE_UPDATE", data: { updates: [{ objectId: "SB_1", patch: null }, { objectId: "SB_2", state: false }] } });
  await controller.request({ type: "GET_STATE" });

  await service.restart();
  await controller.closed;

  const back = await resume(KEYS.observer1, "RSM4", `${taken.history}.${taken.seq}`);
  const data = back.initial.data;
  assert.equal(data.history, taken.history, "the history survives the restart");
  assert.equal(data.resumedFrom, taken.seq);
  assert.equal(data.seq, taken.seq + 1);
  assert.deepEqual(data.objects.map(({ id, state }) => ({ id, state })), [{ id: "SB_2", state: false }]);
  assert.deepEqual(data.deleted, ["SB_1"]);
  await back.close();
});

test("a resume at a hibernated airport reads only the rows that changed", { timeout: 60_000 }, async () => {
  const controller = await service.join(KEYS.controller1, "RSM5");
  const updates = Array.from({ length: 30 }, (_, i) => ({ objectId: `SB_${i}`, state: { n: i } }));
  controller.send({ type: "MULTI_STATE_UPDATE", data: { updates } });
  await controller.request({ type: "GET_STATE" });
  const taken = await replica("RSM5");
  controller.send({ type: "MULTI_STATE_UPDATE", data: { updates: [{ objectId: "SB_1", patch: { n: 100 } }, { objectId: "SB_2", patch: null }] } });
  controller.send({ type: "SHARED_STATE_UPDATE", data: { sharedStatePatch: { runway: "09R" } } });
  await controller.request({ type: "GET_STATE" });
  await controller.close();

  // Silence: with no socket open, workerd lets the object go after about ten seconds.
  await service.untilHibernated("RSM5");
  const since = service.logs.length;
  const back = await resume(KEYS.observer1, "RSM5", `${taken.history}.${taken.seq}`);
  const loaded = await service.waitForLog((e) => e.event === "airport_loaded" && e.airport === "RSM5", 5000, since);
  assert.equal(loaded.objects, 29);
  assert.equal(loaded.objects_read, 0);
  const data = back.initial.data;
  assert.equal(data.resumedFrom, taken.seq);
  assert.equal(data.seq, taken.seq + 2);
  assert.deepEqual(data.objects.map(({ id, state }) => ({ id, state })), [{ id: "SB_1", state: { n: 100 } }]);
  assert.deepEqual(data.deleted, ["SB_2"]);
  assert.deepEqual(data.sharedState, { runway: "09R" });
  const logged = (event) => service.logs.slice(since).filter((e) => e.event === event && e.airport === "RSM5");
  // Only SB_1 is shown, so only the row changed since was read; a full read would be logged.
  assert.deepEqual(logged("objects_read"), [], "the other rows are not read");

  // A question that needs every object reads them all.
  const snapshot = await back.request({ type: "GET_STATE" });
  assert.equal(snapshot.data.objects.length, 29);
  assert.deepEqual(snapshot.data.sharedState, { runway: "09R" });
  await service.waitForLog((e) => e.event === "objects_read" && e.airport === "RSM5", 5000, since);
  assert.deepEqual(logged("objects_read").map((e) => e.objects), [29]);
  await back.close();
});
