// Strangers stop at the Worker: made-up keys count against their address (ADDRESS_LIMIT, the
// Rate Limiting binding) and are answered 429 with Retry-After before any airport is asked;
// a key just refused is refused again by the Worker; people whose key worked are not counted;
// a connection refused for its role stores nothing.
import { test, before, after, describe } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { Service, KEYS, CIDS } from "./harness.mjs";
import { FakeStatus } from "./fake-status.mjs";

const LIMIT = 5;
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
    // Every key was new, so each 401 was an airport's answer: no more than the limit.
    assert.ok(statuses.filter((s) => s === 401).length <= LIMIT, statuses.join(","));
    assert.ok(statuses.slice(LIMIT + 1).every((s) => s === 429), statuses.join(","));
    const limited = answers.find((answer) => answer.status === 429);
    assert.equal(limited.body.error.code, "TOO_MANY_REQUESTS");
    // A burst at once is bounded the same way.
    const burst = await Promise.all(Array.from({ length: 30 }, () => service.reject(made_up(), "KFRG", from("203.0.113.2"))));
    assert.ok(burst.filter((answer) => answer.status === 401).length <= LIMIT + 1);
    assert.ok(burst.filter((answer) => answer.status === 429).length >= 30 - LIMIT - 1);
  });

  test("429 carries Retry-After; keyed /state from that address is limited too", async () => {
    for (let i = 0; i <= LIMIT; i++) await service.reject(made_up(), "KRTA", from("203.0.113.3"));
    const res = await service.reject(undefined, "KRTA", from("203.0.113.3", { Authorization: `Bearer ${made_up()}` }));
    assert.equal(res.status, 429);
    assert.equal(res.headers["retry-after"], "60");
    const state = await service.fetch("/state?airport=KRTA", from("203.0.113.3", { Authorization: `Bearer ${made_up()}` }));
    assert.equal(state.status, 429);
    assert.equal(state.headers.get("retry-after"), "60");
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
