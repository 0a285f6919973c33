// Equivalent points (RUNNING_SERVICE.md, "Points"): with the running service's database bound
// (NETWORK_DB), two points that are the same light switch together, the grouping follows edits
// of the points table without a restart, and a failed read keeps the grouping it had.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { Service, KEYS, CIDS } from "./harness.mjs";
import { scene, sleep, snapshot } from "./helpers.mjs";

const REFRESH_MS = 300;
const HERE = [
  { lat: 51.4775, lng: -0.4614 },
  { lat: 51.4776, lng: -0.4612 },
];
const THERE = [
  { lat: 51.4701, lng: -0.4501 },
  { lat: 51.4702, lng: -0.4503 },
];

let service;
before(async () => {
  service = await new Service({ POINTS_REFRESH_MS: String(REFRESH_MS) }, { network: true }).start();
});
after(async () => {
  await service?.stop();
});

/** A stopbar of `airport` in the running service's points table. */
function addStopbar(id, airport, coordinates = HERE) {
  return service.networkDb
    .prepare(
      "INSERT INTO points (id, airport_id, type, name, coordinates, directionality, elevated, ihp) " +
        "VALUES (?1, ?2, 'stopbar', ?1, ?3, 'uni-directional', 0, 0)",
    )
    .bind(id, airport, JSON.stringify(coordinates))
    .run();
}

/** Joins `airport` as an observer with a `resume` parameter. */
const resume = (airport, value) =>
  service.open(`/connect?airport=${airport}&key=${encodeURIComponent(KEYS.observer1)}&resume=${value}`);

const isChange = (p) => p.type === "STATE_UPDATE" || p.type === "MULTI_STATE_UPDATE";
const items = (p) => (p.type === "STATE_UPDATE" ? [p.data] : p.data.updates).map((u) => [u.objectId, u.state]);

/** The next re-read of `airport`'s points that found `groups` groups, started by a frame. */
async function reread(client, airport, groups) {
  await sleep(REFRESH_MS + 50);
  const since = service.logs.length;
  await client.settle();
  const match = (e) => e.event === "points_read" && e.airport === airport && e.groups === groups;
  await service.waitForLog(match, 5000, since);
}

test("a pilot sees both lights of a duplicated stopbar switch from one controller STATE_UPDATE", async (t) => {
  // The same stopbar drawn twice (the second in lower case), and another one elsewhere.
  await addStopbar("BARS_SB1A", "EGLL");
  await addStopbar("BARS_SB1B", "egll");
  await addStopbar("BARS_SB2", "EGLL", THERE);
  const s = scene(t, service, "EGLL");
  const controller = await s.join(KEYS.controller1);
  const pilot = await s.join(KEYS.pilot1);

  controller.send({ type: "STATE_UPDATE", data: { objectId: "BARS_SB1A", state: true } });
  const seen = await pilot.next(isChange);
  assert.equal(seen.type, "MULTI_STATE_UPDATE");
  assert.equal(seen.seq, 1);
  assert.deepEqual(items(seen), [
    ["BARS_SB1A", true],
    ["BARS_SB1B", true],
  ]);
  // The controller is told of the equivalent it did not name, with the same seq.
  const echo = await controller.next(isChange);
  assert.equal(echo.type, "STATE_UPDATE");
  assert.equal(echo.seq, 1);
  assert.deepEqual(echo.data, { objectId: "BARS_SB1B", state: true, controllerId: CIDS.controller1 });

  // A stopbar without a duplicate switches alone, and its sender hears nothing back.
  controller.send({ type: "STATE_UPDATE", data: { objectId: "BARS_SB2", state: true } });
  const alone = await pilot.next(isChange);
  assert.deepEqual(items(alone), [["BARS_SB2", true]]);
  await controller.settle();
  assert.equal(controller.received.filter(isChange).length, 1);

  const objects = (await snapshot(pilot)).objects.map((o) => [o.id, o.state]);
  assert.deepEqual(objects, [
    ["BARS_SB1A", true],
    ["BARS_SB1B", true],
    ["BARS_SB2", true],
  ]);
});

test("the grouping follows an edit of the points table without a restart", async (t) => {
  await addStopbar("BARS_KK1", "EGKK");
  const s = scene(t, service, "EGKK");
  const controller = await s.join(KEYS.controller1);
  const pilot = await s.join(KEYS.pilot1);
  controller.send({ type: "STATE_UPDATE", data: { objectId: "BARS_KK1", state: true } });
  assert.deepEqual(items(await pilot.next(isChange)), [["BARS_KK1", true]]);

  // The website adds a duplicate: read again within the refresh time, it switches along, and
  // snapshots show it as the point it duplicates at once.
  await addStopbar("BARS_KK2", "EGKK");
  await reread(controller, "EGKK", 1);
  const objects = (await snapshot(pilot)).objects.map((o) => [o.id, o.state]);
  assert.deepEqual(objects, [
    ["BARS_KK1", true],
    ["BARS_KK2", true],
  ]);
  controller.send({ type: "STATE_UPDATE", data: { objectId: "BARS_KK1", state: false } });
  assert.deepEqual(items(await pilot.next(isChange)), [
    ["BARS_KK1", false],
    ["BARS_KK2", false],
  ]);

  // Moved elsewhere, it is a light of its own again.
  await service.networkDb
    .prepare("UPDATE points SET coordinates = ?1 WHERE id = 'BARS_KK2'")
    .bind(JSON.stringify(THERE))
    .run();
  await reread(controller, "EGKK", 0);
  controller.send({ type: "STATE_UPDATE", data: { objectId: "BARS_KK1", state: true } });
  assert.deepEqual(items(await pilot.next(isChange)), [["BARS_KK1", true]]);
});

test("a new grouping ends resumes from before it, in memory and in storage", async (t) => {
  await addStopbar("BARS_SS1", "EGSS");
  const s = scene(t, service, "EGSS");
  const controller = await s.join(KEYS.controller1);
  controller.send({ type: "STATE_UPDATE", data: { objectId: "BARS_SS1", state: true } });
  await controller.request({ type: "GET_STATE" });
  const taken = await resume("EGSS", "");
  const replica = taken.initial.data;
  await taken.close();
  const same = await resume("EGSS", `${replica.history}.${replica.seq}`);
  assert.equal(same.initial.data.resumedFrom, replica.seq, "nothing changed yet");
  await same.close();

  // A duplicate is drawn: the page shows it at once, without a seq.
  await addStopbar("BARS_SS2", "EGSS");
  await reread(controller, "EGSS", 1);
  const stale = await resume("EGSS", `${replica.history}.${replica.seq}`);
  assert.equal(stale.initial.data.resumedFrom, undefined, "the full state");
  assert.equal(stale.initial.data.seq, replica.seq);
  assert.deepEqual(stale.initial.data.objects.map((o) => [o.id, o.state]), [
    ["BARS_SS1", true],
    ["BARS_SS2", true],
  ]);
  await stale.close();

  // The stored floor rose with the stored grouping.
  await service.restart();
  await controller.closed;
  const restarted = await resume("EGSS", `${replica.history}.${replica.seq}`);
  assert.equal(restarted.initial.data.resumedFrom, undefined);
  assert.equal(restarted.initial.data.history, replica.history);
  await restarted.close();
  assert.equal(service.logs.filter((e) => e.event === "points_store_failed").length, 0);
});

// Last: it drops the points table.
test("a failed read of the points table keeps the grouping", async (t) => {
  await addStopbar("BARS_EH1", "EHAM");
  await addStopbar("BARS_EH2", "EHAM");
  const s = scene(t, service, "EHAM");
  const controller = await s.join(KEYS.controller1);
  const pilot = await s.join(KEYS.pilot1);
  await service.networkDb.prepare("DROP TABLE points").run();
  await sleep(REFRESH_MS + 50);
  const since = service.logs.length;
  await controller.settle();
  const failed = (e) => e.event === "points_read_failed" && e.airport === "EHAM";
  await service.waitForLog(failed, 5000, since);
  controller.send({ type: "STATE_UPDATE", data: { objectId: "BARS_EH2", state: true } });
  assert.deepEqual(items(await pilot.next(isChange)), [
    ["BARS_EH2", true],
    ["BARS_EH1", true],
  ]);
});
