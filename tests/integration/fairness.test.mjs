// No socket, within what the contract lets it send, holds up the others at its airport: a
// flood of questions, or of frames the airport refuses, is cut off by a budget of its own
// (whatever the role's bucket) and the rest of its frames are dropped unread; a bystander's
// answers stay prompt; nobody is closed for an idleness the flood caused; and whoever was
// closed for flooding is refused for a while.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { Service, KEYS, CIDS } from "./harness.mjs";
import { bounded, sleep } from "./helpers.mjs";

const HEARTBEAT_MS = 1_000;
const IDLE_MS = 2_500;
let service;
before(async () => {
  service = await new Service({ HEARTBEAT_INTERVAL_MS: String(HEARTBEAT_MS), IDLE_TIMEOUT_MS: String(IDLE_MS), MAX_SOCKETS_PER_KEY: "32" }).start();
});
after(() => service?.stop());

const percentile = (xs, p) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor((xs.length * p) / 100))];

/** A client that only answers the server's heartbeats, as the released EuroScope plugin does. */
async function ackOnly(key, airport) {
  const client = await service.join(key, airport);
  client.ws.on("message", (data) => {
    if (JSON.parse(String(data)).type === "HEARTBEAT") client.ws.send(JSON.stringify({ type: "HEARTBEAT_ACK" }));
  });
  return client;
}

/**
 * `flooder` sends `frames` copies of `frame` back to back; meanwhile another controller changes
 * an object every 5 ms and the bystander times each change's arrival, until the flooder is
 * closed and two seconds have passed (its queued frames are still arriving then). Returns those
 * delays.
 */
async function floodWithBystander(flooder, frame, frames, writer, bystander) {
  for (let i = 0; i < frames; i++) flooder.ws.send(frame);
  const delays = [];
  let closedAt;
  flooder.closed.then(() => (closedAt = Date.now()));
  for (let i = 0; ; i++) {
    const objectId = `W_${i}`;
    const sent = Date.now();
    const arrived = bystander.next((p) => p.type === "STATE_UPDATE" && p.data.objectId === objectId, 10_000);
    writer.send({ type: "STATE_UPDATE", data: { objectId, state: true } });
    await arrived;
    delays.push(Date.now() - sent);

    if (closedAt && Date.now() - closedAt > 2_000) break;
    await sleep(5);
  }
  return delays;
}

// A socket is closed after its first 100 refused frames at once (docs/protocol.md §7).
const REFUSALS_BURST = 100;
const HEARTBEAT = JSON.stringify({ type: "HEARTBEAT" });

for (const [who, key, airport, frame, frames] of [
  ["a controller", KEYS.controller1, "FAIC", HEARTBEAT, 20_000],
  ["a pilot", KEYS.pilot1, "FAIP", HEARTBEAT, 20_000],
  ["a controller", KEYS.controller1, "FAIU", "{", 20_000],
]) {
  test(`${who}'s flood of ${frames} × ${frame}: a bystander's answers stay within 250 ms, nobody idles out`, { timeout: 60_000 }, async (t) => {
    // Both answer the server's heartbeats: only an idleness the flood caused could close them.
    const bystander = await ackOnly(KEYS.observer1, airport);
    const writer = await ackOnly(KEYS.controller2, airport);
    const flooder = await service.join(key, airport);
    const rtts = await floodWithBystander(flooder, frame, frames, writer, bystander);
    const close = await bounded(flooder.closed, 10_000, "the flooder's close");
    assert.equal(close.code, 4008);
    if (frame === "{") {
      // Each refused frame was answered until the budget ran out, the last one before the
      // close; the frames behind it were dropped unread (a second's refill is 20 more).
      const errors = flooder.all("ERROR");
      assert.ok(errors.every((e) => e.data.code === "INVALID_JSON"), "only INVALID_JSON");
      assert.ok(errors.length > REFUSALS_BURST && errors.length <= REFUSALS_BURST + 40, `${errors.length} errors`);
    }
    const p50 = percentile(rtts, 50);
    const p99 = percentile(rtts, 99);
    t.diagnostic(`${rtts.length} changes to the bystander: p50 ${p50} ms, p99 ${p99} ms, max ${Math.max(...rtts)} ms`);
    assert.ok(p99 <= 250, `p99 ${p99} ms`);
    // Past the idle timeout since the flood: the ack-only client is still there.
    await sleep(IDLE_MS + 500);
    assert.equal(writer.closeInfo, undefined, "the ack-only clients were not closed");
    assert.equal(bystander.closeInfo, undefined);
    // Its own questions are answered at once.
    assert.equal((await bystander.request({ type: "HEARTBEAT" })).type, "HEARTBEAT_ACK");
    await Promise.all([bystander.close(), writer.close()]);
  });
}

test("closed for flooding: a reconnect within 10 s is refused 429 with Retry-After, then allowed", { timeout: 60_000 }, async () => {
  const flooder = await service.join(KEYS.pilot2, "FAIR");
  for (let i = 0; i < 500; i++) flooder.ws.send(JSON.stringify({ type: "HEARTBEAT" }));
  assert.equal((await bounded(flooder.closed, 10_000, "the close")).code, 4008);
  const refused = await service.reject(KEYS.pilot2, "FAIR");
  assert.equal(refused.status, 429);
  assert.equal(refused.body.error.code, "TOO_MANY_REQUESTS");
  const wait = Number(refused.headers["retry-after"]);
  assert.ok(wait >= 1 && wait <= 10, `Retry-After: ${wait}`);
  // Someone else is not affected, nor is the same person at another airport.
  (await service.join(KEYS.pilot1, "FAIR")).close();
  (await service.join(KEYS.pilot2, "FAIS")).close();
  await sleep(wait * 1000 + 200);
  const again = await service.join(KEYS.pilot2, "FAIR");
  assert.equal(again.initial.data.cid, CIDS.pilot2);
  await again.close();
});

test("snapshots asked in a loop cost what they weigh; small questions still pass", { timeout: 60_000 }, async () => {
  const airport = "FAIG";
  const controller = await service.join(KEYS.controller1, airport);
  // 2,000 objects of about 250 bytes: a snapshot of about 500 KB, 6 tokens of 50.
  const pad = "x".repeat(200);
  for (let i = 0; i < 2_000; i += 100) {
    const updates = Array.from({ length: 100 }, (_, j) => ({ objectId: `OBJ_${i + j}`, state: { pad } }));
    controller.send({ type: "MULTI_STATE_UPDATE", data: { updates } });
  }
  await controller.request({ type: "HEARTBEAT" }); // every batch before it has been applied
  const observer = await service.join(KEYS.observer1, airport);
  assert.equal(observer.initial.data.objects.length, 2_000);
  let answered = 0;
  let limited = 0;
  for (let i = 0; i < 30; i++) {
    const reply = await observer.request({ type: "GET_STATE", requestId: `s${i}` }, 10_000);
    if (reply.type === "STATE_SNAPSHOT") answered++;
    else if (reply.type === "ERROR" && reply.data.code === "RATE_LIMITED") limited++;
  }
  assert.ok(answered >= 5 && answered <= 10, `${answered} snapshots answered`);
  assert.equal(answered + limited, 30);
  // The controller was never held up, and its own questions pass.
  assert.equal((await controller.request({ type: "HEARTBEAT" })).type, "HEARTBEAT_ACK");
  await Promise.all([controller.close(), observer.close()]);
});
