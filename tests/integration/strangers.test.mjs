// Strangers stop at the Worker: keys it has not seen accepted lately are asked a few at a time
// per address, every refusal counts against its address (ADDRESS_LIMIT, the Rate Limiting
// binding), and past the limit the address's strangers are answered 429 with Retry-After before
// any airport is asked; a key just refused is refused again by the Worker; keys that are
// accepted are never counted; a connection refused for its role stores nothing.
import { test, before, after, describe } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { Service, KEYS, CIDS } from "./harness.mjs";
import { FakeStatus } from "./fake-status.mjs";

const LIMIT = 5;
// One address's strangers asked at once (ASKING_AT_ONCE in src/people/address_gate.rs).
const ASKING_AT_ONCE = 4;
const made_up = () => `BARS_${randomBytes(32).toString("hex")}`;
const from = (address, headers = {}) => ({ headers: { "CF-Connecting-IP": address, ...headers } });

describe("the address limit", () => {
  let service;
  before(async () => {
    service = await new Service({}, { addressLimit: LIMIT }).start();
  });
  after(() => service?.stop());

  test("made-up keys from one address: the limit's few reach airports, then 429 with Retry-After", async () => {
    const answers = [];
    for (let i = 0; i < 3 * LIMIT; i++) answers.push(await service.reject(made_up(), "KFRG", from("203.0.113.1")));
    const statuses = answers.map((answer) => answer.status);
    // Every key was new, so each 401 was an airport's answer, counted after it: the limit's
    // refusals, and the one that found the limit used up.
    assert.deepEqual(statuses.slice(0, LIMIT + 1), Array(LIMIT + 1).fill(401), statuses.join(","));
    assert.ok(statuses.slice(LIMIT + 1).every((s) => s === 429), statuses.join(","));
    const limited = answers.find((answer) => answer.status === 429);
    assert.equal(limited.body.error.code, "TOO_MANY_REQUESTS");
  });

  test("200 made-up keys at once from one address: at most the limit + the few asked at once reach airports", async () => {
    const burst = await Promise.all(Array.from({ length: 200 }, () => service.reject(made_up(), "KBST", from("203.0.113.2"))));
    const statuses = burst.map((answer) => answer.status);
    const asked = statuses.filter((s) => s === 401).length;
    // Only a few are asked at a time; the refusal that finds the limit used up stops the rest.
    assert.ok(asked > LIMIT && asked <= LIMIT + ASKING_AT_ONCE, `${asked} reached airports`);
    assert.equal(statuses.filter((s) => s === 429).length, 200 - asked);
    for (const answer of burst.filter((answer) => answer.status === 429)) {
      assert.equal(answer.body.error.code, "TOO_MANY_REQUESTS");
      assert.ok(Number(answer.headers["retry-after"]) >= 1, answer.headers["retry-after"]);
    }
  });

  test("60 people new to the Worker from one address all connect: accepted keys are never counted", { timeout: 60_000 }, async () => {
    const address = "203.0.113.7";
    const people = await Promise.all(Array.from({ length: 60 }, () => service.account("pilot")));
    const bearer = (key) => from(address, { Authorization: `Bearer ${key}` });
    const joined = await Promise.all(people.map((p) => service.open("/connect?airport=KSHR", bearer(p.key))));
    joined.forEach((client, i) => assert.equal(client.initial.data.cid, people[i].cid));
    await Promise.all(joined.map((client) => client.close()));
    // The address has its whole allowance for made-up keys left.
    for (let i = 0; i < LIMIT; i++) assert.equal((await service.reject(made_up(), "KSHR", from(address))).status, 401);
  });

  test("429 carries Retry-After; keyed /state from that address is limited too", async () => {
    for (let i = 0; i <= LIMIT; i++) await service.reject(made_up(), "KRTA", from("203.0.113.3"));
    const res = await service.reject(undefined, "KRTA", from("203.0.113.3", { Authorization: `Bearer ${made_up()}` }));
    assert.equal(res.status, 429);
    // The rest of the limiter's period, which began at the refusal that found the limit used up.
    const retryAfter = Number(res.headers["retry-after"]);
    assert.ok(retryAfter > 50 && retryAfter <= 60, res.headers["retry-after"]);
    const state = await service.fetch("/state?airport=KRTA", from("203.0.113.3", { Authorization: `Bearer ${made_up()}` }));
    assert.equal(state.status, 429);
    assert.ok(Number(state.headers.get("retry-after")) <= retryAfter);
    // The public, keyless /state is never limited.
    assert.equal((await service.fetch("/state?airport=KRTA", from("203.0.113.3"))).status, 200);
  });

  test("another address, and a key that worked before from the limited one, are unaffected", async () => {
    const address = "203.0.113.4";
    // A controller connects first, then a flood from the same address.
    const bearer = (key, at) => from(at, { Authorization: `Bearer ${key}` });
    (await service.open("/connect?airport=KOKK", bearer(KEYS.controller1, address))).close();
    for (let i = 0; i <= 2 * LIMIT; i++) await service.reject(made_up(), "KOKK", from(address));
    assert.equal((await service.reject(made_up(), "KOKK", from(address))).status, 429);
    const again = await service.open("/connect?airport=KOKK", bearer(KEYS.controller1, address));
    assert.equal(again.initial.data.cid, CIDS.controller1);
    await again.close();
    assert.equal((await service.reject(made_up(), "KOKK", from("203.0.113.5"))).status, 401);
    const other = await service.open("/connect?airport=KOKK", bearer(KEYS.pilot1, "203.0.113.5"));
    assert.equal(other.initial.data.cid, CIDS.pilot1);
    await other.close();
  });

  test("a banned account's refusals count against its address like unknown keys", async () => {
    const address = "203.0.113.8";
    for (let i = 0; i <= LIMIT; i++) {
      assert.equal((await service.reject(KEYS.banned1, "KBAN", from(address))).body.error.code, "BANNED", `try ${i}`);
    }
    assert.equal((await service.reject(KEYS.banned1, "KBAN", from(address))).status, 429);
    assert.equal((await service.reject(made_up(), "KBAN", from(address))).status, 429);
  });

  test("a key just refused is refused again by the Worker, without counting", async () => {
    const key = made_up();
    // Many more tries of one key than the limit: only the first is counted (and asked).
    for (let i = 0; i < 4 * LIMIT; i++) {
      const answer = await service.reject(key, "KONE", from("203.0.113.6"));
      assert.equal(answer.status, 401, `try ${i}`);
    }
    // The address still has the rest of its allowance for new keys.
    assert.equal((await service.reject(made_up(), "KONE", from("203.0.113.6"))).status, 401);
  });
});

test("a flood of made-up keys from many addresses while genuine people connect: none of them fails", { timeout: 120_000 }, async () => {
  const service = await new Service({ MAX_SOCKETS_PER_KEY: "64" }).start();
  try {
    const people = await Promise.all(Array.from({ length: 40 }, () => service.account("pilot")));
    const forged = Array.from({ length: 1500 }, (_, i) =>
      service.reject(made_up(), "KFLD", from(`198.51.${i >> 8}.${i & 255}`)),
    );
    // The people share one address (miniflare's own, without CF-Connecting-IP): new to the
    // Worker, they are asked a few at a time while the airport is busy with the flood.
    const genuine = people.map((p) => service.join(p.key, "KFLD"));
    const [refused, joined] = await Promise.all([Promise.all(forged), Promise.all(genuine)]);
    joined.forEach((client, i) => assert.equal(client.initial.data.cid, people[i].cid));
    assert.ok(refused.every((r) => r.status === 401), [...new Set(refused.map((r) => r.status))].join(","));
    await Promise.all(joined.map((client) => client.close()));
  } finally {
    await service.stop();
  }
});

describe("refused connections store nothing", () => {
  let upstream;
  let service;
  before(async () => {
    upstream = await new FakeStatus().start();
    service = await new Service({ ROLE_SOURCE: "vatsim", VATSIM_STATUS_URL: upstream.url, VATSIM_CACHE_MS: "1" }).start();
  });
  after(async () => {
    await service?.stop();
    await upstream?.stop();
  });

  test("NOT_CONNECTED and UPSTREAM_UNAVAILABLE leave no airport behind", async () => {
    const { cid, key } = await service.account("pilot");
    assert.equal((await service.reject(key, "XNOT")).body.error.code, "NOT_CONNECTED");
    const other = await service.account("pilot");
    upstream.mode = "error";
    try {
      assert.equal((await service.reject(other.key, "XDWN")).body.error.code, "UPSTREAM_UNAVAILABLE");
    } finally {
      upstream.mode = "ok";
    }
    const rows = await service.db.prepare("SELECT icao FROM airports WHERE icao IN ('XNOT', 'XDWN')").all();
    assert.deepEqual(rows.results, []);
    // The same person, once on the network, is accepted and listed.
    upstream.set(cid, ["BAW1", "pilot"]);
    (await service.join(key, "XNOT")).close();
    await service.waitForLog((e) => e.event === "airport_loaded" && e.airport === "XNOT");
  });
});
