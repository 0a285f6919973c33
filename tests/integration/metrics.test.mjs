// Metrics (Workers Analytics Engine): what an airport records, as a recording double of the
// dataset receives it. A window is written once the airport has been quiet for five seconds (at its alarm)
// or is a minute old, so a burst of frames costs one set of data points.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { Service, KEYS } from "./harness.mjs";
import { until } from "./helpers.mjs";

/**
 * The `airport` point's columns, in order (protocol/src/metrics.rs AIRPORT_COLUMNS). A copy on
 * purpose: the README's queries read the columns by position, so the test holds the order they
 * expect and fails if the Worker writes another.
 */
const COLUMNS = [
  "controllers",
  "pilots",
  "observers",
  "connects",
  "disconnects",
  "frames_in",
  "broadcasts",
  "messages_out",
  "errors",
  "commits",
  "commit_ms",
  "storage_failures",
  "window_ms",
  "awake_ms",
];

let service;
before(async () => {
  service = await new Service().start();
});
after(async () => {
  await service?.stop();
});

/** The airport's `airport` points as objects by column name. */
const summaries = (airport) =>
  service
    .pointsOf(airport)
    .filter((p) => p.blobs[0] === "airport")
    .map((p) => Object.fromEntries(COLUMNS.map((name, i) => [name, p.doubles[i]])));

/** `kind:name → count` over the airport's breakdown points. */
function breakdown(airport) {
  const counts = {};
  for (const p of service.pointsOf(airport).filter((p) => p.blobs[0] !== "airport")) {
    const key = `${p.blobs[0]}:${p.blobs[2]}`;
    counts[key] = (counts[key] ?? 0) + p.doubles[0];
  }
  return counts;
}

test("an airport's window records sockets, frames, broadcasts, errors and closes", async () => {
  const airport = "MTA1";
  const controller = await service.join(KEYS.controller1, airport);
  const pilot = await service.join(KEYS.pilot1, airport);
  for (const [i, objectId] of ["A1", "A2", "A3"].entries()) {
    controller.send({ type: "STATE_UPDATE", data: { objectId, state: i % 2 === 0 } });
    await pilot.next("STATE_UPDATE");
  }
  pilot.send({ type: "STATE_UPDATE", data: { objectId: "A1", state: true } });
  assert.equal((await pilot.next("ERROR")).data.code, "FORBIDDEN");
  pilot.send({ type: "GET_STATE" });
  await pilot.next("STATE_SNAPSHOT");
  pilot.send({ type: "CLOSE" });
  assert.equal((await pilot.closed).code, 1000);

  // The burst may span windows (one is written after 2 s without a count): add them up.
  const counts = ["connects", "disconnects", "frames_in", "broadcasts", "messages_out", "errors", "commits", "storage_failures"];
  const total = () => {
    const all = summaries(airport);
    const sum = Object.fromEntries(counts.map((c) => [c, all.reduce((n, p) => n + p[c], 0)]));
    return { ...all.at(-1), ...sum };
  };
  // Each point is its own call to the dataset: wait for all of them.
  const seen = () => Object.values(breakdown(airport)).reduce((n, c) => n + c, 0);
  await until(() => summaries(airport).length > 0 && total().frames_in >= 6 && seen() >= 8, {
    ms: 15_000,
    what: () => `the airport's data points: ${JSON.stringify(service.pointsOf(airport))}`,
  });
  const summary = total();
  for (const point of service.pointsOf(airport).filter((p) => p.blobs[0] === "airport")) {
    assert.deepEqual(point.blobs, ["airport", airport]);
    assert.equal(point.doubles.length, COLUMNS.length);
  }
  assert.deepEqual(
    {
      controllers: summary.controllers,
      pilots: summary.pilots,
      observers: summary.observers,
      connects: summary.connects,
      disconnects: summary.disconnects,
      frames_in: summary.frames_in,
      errors: summary.errors,
      storage_failures: summary.storage_failures,
    },
    { controllers: 1, pilots: 0, observers: 0, connects: 2, disconnects: 1, frames_in: 6, errors: 1, storage_failures: 0 },
  );
  // Each update goes to the controllers' and the pilots' groups; the pilot's join is announced
  // to nobody (only a controller's is).
  assert.ok(summary.broadcasts >= 3, `broadcasts ${summary.broadcasts}`);
  // Two INITIAL_STATEs, three updates to the pilot, its ERROR and its STATE_SNAPSHOT.
  assert.ok(summary.messages_out >= 7, `messages out ${summary.messages_out}`);
  assert.ok(summary.commits >= 1 && summary.commits <= 5, `commits ${summary.commits}`);
  for (const { window_ms } of summaries(airport)) {
    assert.ok(window_ms >= 0 && window_ms <= 60_000, `window ${window_ms} ms`);
  }
  // The connects looked their keys up in D1 and the updates were committed: time awake, by the
  // runtime's clock (which moves across that I/O), and never more than the test has run.
  const awake = summaries(airport).reduce((n, p) => n + p.awake_ms, 0);
  assert.ok(awake > 0 && awake < performance.now(), `awake ${awake} ms`);
  assert.deepEqual(breakdown(airport), {
    "frame:STATE_UPDATE": 4,
    "frame:GET_STATE": 1,
    "frame:CLOSE": 1,
    "error:FORBIDDEN": 1,
    "close:1000": 1,
  });
  await controller.close();
});

test("frames that are not packets are counted as unreadable, with their errors", async () => {
  const airport = "MTB1";
  const observer = await service.join(KEYS.observer1, airport);
  observer.send("{not json");
  assert.equal((await observer.next("ERROR")).data.code, "INVALID_JSON");
  observer.send({ type: "NOT_A_TYPE" });
  assert.equal((await observer.next("ERROR")).data.code, "UNKNOWN_TYPE");
  await observer.close();
  await until(() => summaries(airport).some((p) => p.disconnects === 1) && Object.keys(breakdown(airport)).length >= 3, {
    ms: 15_000,
    what: "the airport's data points",
  });
  assert.deepEqual(breakdown(airport), {
    "frame:UNREADABLE": 2,
    "error:INVALID_JSON": 1,
    "error:UNKNOWN_TYPE": 1,
  });
});

test("a window begun while the alarm waits for the heartbeat is written after 5 quiet seconds", async () => {
  const airport = "MTA3";
  const controller = await service.join(KEYS.controller1, airport);
  await until(() => summaries(airport).length === 1, { ms: 15_000, what: "the connect's window" });
  // The alarm is now the heartbeat's, a minute away: the next count moves it earlier, after
  // the count's reply has left.
  await controller.request({ type: "GET_STATE" });
  const sent = performance.now();
  await until(() => summaries(airport).length === 2, { ms: 15_000, what: "the update's window" });
  const waited = performance.now() - sent;
  assert.ok(waited < 10_000, `written after ${Math.round(waited)} ms, not at the heartbeat`);
  assert.equal(summaries(airport)[1].frames_in, 1);
  await controller.close();
});
