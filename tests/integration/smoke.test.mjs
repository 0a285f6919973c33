import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { Service, KEYS, CIDS } from "./harness.mjs";

let service;
before(async () => {
  service = await new Service().start();
});
after(async () => {
  await service?.stop();
});

test("health reports the version", async () => {
  const res = await service.fetch("/health");
  assert.equal(res.status, 200);
  const body = await res.json();
  assert.equal(body.status, "ok");
  assert.match(body.version, /^\d+\.\d+\.\d+$/);
});

test("a controller connects and gets INITIAL_STATE first", async () => {
  const c = await service.join(KEYS.controller1, "KSMK");
  assert.equal(c.received[0].type, "INITIAL_STATE");
  assert.equal(c.initial.data.connectionType, "controller");
  assert.equal(c.initial.data.cid, CIDS.controller1);
  assert.deepEqual(c.initial.data.controllers, [CIDS.controller1]);
  await c.close();
});
