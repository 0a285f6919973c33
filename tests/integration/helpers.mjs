// Helpers shared by the integration tests: waiting on conditions, pacing under the rate limit,
// the sockets of one test, and packet builders. Service and Client are in harness.mjs.
import assert from "node:assert/strict";

/**
 * The one timer the tests wait on. Waiting for something to happen is never done with it (wait on
 * the thing: `Client.next`, `Service.waitForLog`, `until`, `bounded`); it is only the interval of
 * a rate (a Pacer's refill, a poll's period), a deliberate delay, or time that must pass to prove
 * a negative (`expectStaysOpen`, the hibernation test's silence).
 */
export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** Rejects after `ms` unless `promise` settles first. */
export function bounded(promise, ms, what) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/**
 * Polls `probe` (which may be async) every `every` ms until it returns a truthy value, and
 * resolves with that value; rejects once `ms` have passed. `what` names the condition in the
 * error, or is a function of the last value probed that does.
 */
export async function until(probe, { ms = 10_000, every = 100, what = "a condition" } = {}) {
  const deadline = Date.now() + ms;
  let last;
  for (;;) {
    last = await probe();
    if (last) return last;
    if (Date.now() > deadline) break;
    await sleep(every);
  }
  throw new Error(`gave up waiting for ${typeof what === "function" ? what(last) : what}`);
}

/**
 * Proves a negative over time: lets `ms` pass (there is nothing to wait for when what is shown is
 * that nothing happens) and asserts that `client` was not closed meanwhile; fails as soon as it is.
 */
export async function expectStaysOpen(client, ms, message) {
  await Promise.race([client.closed, sleep(ms)]);
  assert.equal(client.closeInfo, undefined, message);
}

/**
 * A conservative client-side model of the server's token bucket (the service allows bursts of
 * 60 and 25/s; we stay at 40 and 20/s) so that tests which send many packets never trip it.
 * Every Client has one as `pacer`.
 */
export class Pacer {
  constructor(burst = 40, perSecond = 20) {
    this.burst = burst;
    this.perSecond = perSecond;
    this.tokens = burst;
    this.at = Date.now();
  }

  async take() {
    for (let i = 0; i < 10_000; i++) {
      const now = Date.now();
      this.tokens = Math.min(this.burst, this.tokens + ((now - this.at) / 1000) * this.perSecond);
      this.at = now;
      if (this.tokens >= 1) {
        this.tokens -= 1;
        return;
      }
      await sleep(Math.ceil(1000 / this.perSecond));
    }
    throw new Error("pacer never refilled");
  }
}

/**
 * The sockets of one test on `service`, all closed after it (a socket that does not finish its
 * closing handshake within 2 s is dropped). `join` defaults to `airport`.
 */
export function scene(t, service, airport) {
  const clients = [];
  t.after(async () => {
    await Promise.all(clients.map((c) => bounded(c.close(), 2000, "a close").catch(() => {})));
    for (const c of clients) c.ws.terminate();
  });
  const track = (c) => {
    clients.push(c);
    return c;
  };
  return {
    airport,
    clients,
    /** Joins as `key` (see `Service.join`); the client's `airport` is the canonical code. */
    async join(key, at = airport) {
      const c = await service.join(key, at);
      c.airport = at?.toUpperCase();
      return track(c);
    },
    /** Opens a socket at a /connect URL made by hand (see `Service.open`). */
    async open(path, options) {
      return track(await service.open(path, options));
    },
    /** Adds a socket opened otherwise. */
    track,
  };
}

/** Answers every server HEARTBEAT, as a well-behaved client does. */
export function keepAlive(client) {
  client.ws.on("message", (data) => {
    if (JSON.parse(data.toString()).type === "HEARTBEAT") client.send({ type: "HEARTBEAT_ACK" });
  });
}

/** The next GET_STATE reply's data (sent under the client's pacer). */
export async function snapshot(c, timeoutMs) {
  await c.pacer.take();
  const r = await c.request({ type: "GET_STATE" }, timeoutMs);
  assert.equal(r.type, "STATE_SNAPSHOT", JSON.stringify(r).slice(0, 300));
  return r.data;
}

/** The socket is open and still answers (a HEARTBEAT sent under its pacer). */
export async function assertAlive(c) {
  await c.pacer.take();
  const r = await c.request({ type: "HEARTBEAT" });
  assert.equal(r.type, "HEARTBEAT_ACK");
  assert.equal(c.closeInfo, undefined);
}

/** An object nested `d` deep: nest(1) = {"a":true}. */
export const nest = (d, leaf = true) => (d === 0 ? leaf : { a: nest(d - 1, leaf) });
/** An array nested `d` deep: arr(1) = [true]. */
export const arr = (d) => (d === 0 ? true : [arr(d - 1)]);
/** The length of a string in Unicode scalar values, as the server counts characters. */
export const chars = (s) => [...s].length;

/** A STATE_UPDATE text of exactly `n` characters (Unicode scalar values), padded with `ch`. */
export function sizedUpdate(n, objectId, ch = "x") {
  const prefix = `{"type":"STATE_UPDATE","data":{"objectId":"${objectId}","state":{"s":"`;
  const suffix = `"}}}`;
  const fill = n - chars(prefix) - chars(suffix);
  const text = prefix + ch.repeat(fill) + suffix;
  // Checked where that is cheap (not for multi-megabyte frames).
  if (n <= 100_000) {
    assert.equal(chars(text), n);
    JSON.parse(text);
  }
  return text;
}

/**
 * The first WebSocket frame in `buffer` as a server sends it (never masked): `{ opcode, payload,
 * bytes, length }`, or undefined until all of it has arrived.
 */
export function readServerFrame(buffer) {
  if (buffer.length < 2) return undefined;
  let length = buffer[1] & 0x7f;
  let offset = 2;
  if (length === 126) {
    if (buffer.length < 4) return undefined;
    length = buffer.readUInt16BE(2);
    offset = 4;
  } else if (length === 127) {
    if (buffer.length < 10) return undefined;
    length = Number(buffer.readBigUInt64BE(2));
    offset = 10;
  }
  if (buffer.length < offset + length) return undefined;
  return {
    opcode: buffer[0] & 0x0f,
    payload: buffer.subarray(offset, offset + length),
    bytes: buffer.subarray(0, offset + length),
    length: offset + length,
  };
}
