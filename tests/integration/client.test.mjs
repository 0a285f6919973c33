// The Rust client (client/, its CLI `airport-client watch --json`) against the real service:
// its replica against the server's state, after a restart, an idle close, a frame dropped on
// the way and a reconnect that resumes; and what it does after each close code and refusal. It reaches the service through a
// proxy on a fixed port, which survives restarts (they change the service's port) and can drop
// frames or cut connections.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { execFile, execFileSync, spawn } from "node:child_process";
import net from "node:net";
import { dirname, join } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { Service, KEYS } from "./harness.mjs";
import { bounded, readServerFrame, sleep, until } from "./helpers.mjs";

const root = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
const CLI = join(root, "target", "debug", "airport-client");

before(() => {
  // Built already by `cargo test --workspace`; a no-op then.
  execFileSync("cargo", ["build", "-q", "-p", "airport-client"], { cwd: root, stdio: "inherit" });
});

/**
 * A TCP proxy to the service's current port. Server frames pass through a WebSocket frame reader
 * (server frames are never masked), so that `dropWhen(text)` can drop one; `cut()` drops every
 * connection at once, as a network loss would.
 */
class Proxy {
  constructor(target) {
    this.target = target;
    this.dropWhen = () => false;
    this.dropped = [];
    this.sockets = new Set();
    this.clients = new Set();
  }

  async start() {
    this.server = net.createServer((client) => this.relay(client));
    await new Promise((resolve) => this.server.listen(0, "127.0.0.1", resolve));
    this.url = `http://127.0.0.1:${this.server.address().port}`;
    return this;
  }

  relay(client) {
    const { hostname, port } = new URL(this.target);
    const upstream = net.connect(Number(port), hostname);
    this.clients.add(client);
    client.on("close", () => this.clients.delete(client));
    for (const socket of [client, upstream]) {
      this.sockets.add(socket);
      socket.on("close", () => this.sockets.delete(socket));
      socket.on("error", () => {});
    }
    client.pipe(upstream);
    let buffer = Buffer.alloc(0);
    // Until the response's head has passed: then frames after a 101, else raw bytes.
    let state = "head";
    upstream.on("data", (chunk) => {
      if (state === "raw") return client.write(chunk);
      buffer = Buffer.concat([buffer, chunk]);
      if (state === "head") {
        const end = buffer.indexOf("\r\n\r\n");
        if (end < 0) return;
        const head = buffer.subarray(0, end + 4);
        state = head.toString().startsWith("HTTP/1.1 101") ? "frames" : "raw";
        client.write(state === "raw" ? buffer : head);
        buffer = state === "raw" ? Buffer.alloc(0) : buffer.subarray(end + 4);
        if (state === "raw") return;
      }
      for (;;) {
        const frame = readServerFrame(buffer);
        if (!frame) break;
        buffer = buffer.subarray(frame.length);
        const text = frame.opcode === 1 ? frame.payload.toString() : undefined;
        if (text !== undefined && this.dropWhen(text)) this.dropped.push(JSON.parse(text));
        else client.write(frame.bytes);
      }
    });
    const close = () => {
      client.destroy();
      upstream.destroy();
    };
    client.on("close", close);
    upstream.on("close", close);
  }

  cut() {
    for (const socket of this.sockets) socket.destroy();
  }

  /** Closes every client's socket as the server would, with `code`, then the connections. */
  closeWith(code, reason) {
    const payload = Buffer.concat([Buffer.from([code >> 8, code & 0xff]), Buffer.from(reason)]);
    const frame = Buffer.concat([Buffer.from([0x88, payload.length]), payload]);
    for (const client of this.clients) client.end(frame);
    for (const socket of this.sockets) if (!this.clients.has(socket)) socket.destroy();
  }

  stop() {
    this.cut();
    return new Promise((resolve) => this.server.close(resolve));
  }
}

/** `airport-client --json watch`, its notices collected in order. */
class Watcher {
  constructor(url, key, airport) {
    this.notices = [];
    this.waiters = [];
    this.child = spawn(CLI, ["--server", url, "--key", key, "watch", airport, "--json"], {
      stdio: ["ignore", "pipe", "pipe"],
    });
    this.stderr = "";
    this.child.stderr.on("data", (d) => (this.stderr += d));
    this.exited = new Promise((resolve) => this.child.on("exit", (code) => resolve(code)));
    createInterface({ input: this.child.stdout }).on("line", (line) => {
      this.notices.push(JSON.parse(line));
      this.waiters = this.waiters.filter((check) => !check());
    });
  }

  /** The first notice from `since` on that matches. */
  next(match, { since = 0, ms = 10_000 } = {}) {
    const promise = new Promise((resolve) => {
      const check = () => {
        const found = this.notices.slice(since).find(match);
        if (found) resolve(found);
        return Boolean(found);
      };
      if (!check()) this.waiters.push(check);
    });
    return bounded(promise, ms, `a notice matching ${match} (stderr: ${this.stderr})`);
  }

  /** The replica as last printed. */
  get replica() {
    return this.notices.findLast((n) => n.notice === "replica")?.replica;
  }

  stop() {
    this.child.kill();
    return this.exited;
  }
}

/** What the replica and the server's state must agree on. */
function view({ objects, sharedState, controllers, offline, seq }) {
  const listed = Array.isArray(objects) ? objects : Object.values(objects);
  return {
    objects: listed.map(({ id, state, controllerId }) => ({ id, state, controllerId })).sort((a, b) => (a.id < b.id ? -1 : 1)),
    sharedState,
    controllers: [...controllers].sort(),
    offline,
    seq,
  };
}

/** The server's own state of `airport`, read by a fresh observer. */
async function serverView(service, airport) {
  const reader = await service.join(KEYS.observer1, airport);
  const snapshot = await reader.request({ type: "GET_STATE" });
  await reader.close();
  return view(snapshot.data);
}

/** Waits until the watcher's replica equals the server's state. */
async function converges(watcher, service, airport) {
  let expected;
  await until(
    async () => {
      expected = await serverView(service, airport);
      const replica = watcher.replica;
      return replica && JSON.stringify(view(replica)) === JSON.stringify(expected);
    },
    { ms: 15_000, every: 200, what: () => `replica ${JSON.stringify(watcher.replica && view(watcher.replica))} to equal ${JSON.stringify(expected)}` },
  );
}

let service;
let proxy;
before(async () => {
  // Short timings: an idle close after 3 s, and the re-check every second.
  service = await new Service({ HEARTBEAT_INTERVAL_MS: "2000", IDLE_TIMEOUT_MS: "3000", VATSIM_RECHECK_MS: "1000" }).start();
  proxy = await new Proxy(service.url).start();
});
after(async () => {
  await proxy?.stop();
  await service?.stop();
});

test("watch: the replica follows changes, shared state and controllers", async () => {
  const watcher = new Watcher(proxy.url, KEYS.observer1, "CLWA");
  await watcher.next((n) => n.notice === "ready" && n.role === "observer");
  const controller = await service.join(KEYS.controller1, "CLWA");
  controller.send({ type: "STATE_UPDATE", data: { objectId: "SB_1", state: true } });
  controller.send({ type: "MULTI_STATE_UPDATE", data: { updates: [{ objectId: "SB_2", state: { level: 2 } }, { objectId: "SB_1", patch: null }] } });
  controller.send({ type: "SHARED_STATE_UPDATE", data: { sharedStatePatch: { atis: "K" } } });
  await converges(watcher, service, "CLWA");
  assert.deepEqual(watcher.replica.sharedState, { atis: "K" });
  await controller.close();
  await until(() => watcher.replica?.offline === true, { what: "the controller's disconnect in the replica" });
  await watcher.stop();
});

test("a server restart: the client reconnects and its replica converges", async () => {
  const watcher = new Watcher(proxy.url, KEYS.pilot1, "CLRS");
  await watcher.next((n) => n.notice === "ready");
  const controller = await service.join(KEYS.controller1, "CLRS");
  controller.send({ type: "STATE_UPDATE", data: { objectId: "SB_1", state: true } });
  await converges(watcher, service, "CLRS");

  const since = watcher.notices.length;
  await service.restart();
  proxy.target = service.url;
  await watcher.next((n) => n.notice === "closed", { since });
  await watcher.next((n) => n.notice === "ready", { since, ms: 30_000 });
  const again = await service.join(KEYS.controller1, "CLRS");
  again.send({ type: "STATE_UPDATE", data: { objectId: "SB_2", state: true } });
  await converges(watcher, service, "CLRS");
  assert.equal(watcher.notices.filter((n) => n.notice === "stopped").length, 0);
  await again.close();
  await watcher.stop();
});

test("an idle close (4000) is followed by a reconnect", async () => {
  const watcher = new Watcher(proxy.url, KEYS.observer1, "CLID");
  await watcher.next((n) => n.notice === "ready");
  // Frozen past the idle timeout, the client cannot heartbeat; the server closes it.
  const since = watcher.notices.length;
  watcher.child.kill("SIGSTOP");
  await sleep(8_000);
  watcher.child.kill("SIGCONT");
  const closed = await watcher.next((n) => n.notice === "closed", { since });
  assert.equal(closed.code, 4000, JSON.stringify(closed));
  await watcher.next((n) => n.notice === "retrying", { since });
  await watcher.next((n) => n.notice === "ready", { since, ms: 15_000 });
  await watcher.stop();
});

test("a dropped frame is a seq gap: the client asks for GET_STATE and converges", async () => {
  const watcher = new Watcher(proxy.url, KEYS.observer1, "CLGP");
  await watcher.next((n) => n.notice === "ready");
  const controller = await service.join(KEYS.controller1, "CLGP");
  proxy.dropWhen = (text) => text.includes('"STATE_UPDATE"') && text.includes("SB_DROP");
  controller.send({ type: "STATE_UPDATE", data: { objectId: "SB_DROP", state: true } });
  await until(() => proxy.dropped.length === 1, { what: "the proxy dropping the update" });
  proxy.dropWhen = () => false;
  controller.send({ type: "STATE_UPDATE", data: { objectId: "SB_NEXT", state: true } });
  await watcher.next((n) => n.notice === "resyncing");
  await converges(watcher, service, "CLGP");
  assert.equal(watcher.replica.objects.SB_DROP.state, true, "the dropped change came with the snapshot");
  await controller.close();
  await watcher.stop();
});

test("a network loss (no close frame) is followed by a reconnect", async () => {
  const watcher = new Watcher(proxy.url, KEYS.observer1, "CLNL");
  await watcher.next((n) => n.notice === "ready");
  const since = watcher.notices.length;
  proxy.cut();
  const closed = await watcher.next((n) => n.notice === "closed", { since });
  assert.equal(closed.code, null);
  await watcher.next((n) => n.notice === "ready", { since, ms: 15_000 });
  await watcher.stop();
});

test("a reconnect resumes from the replica's seq: a change it missed comes with the resume", async () => {
  const watcher = new Watcher(proxy.url, KEYS.observer1, "CLRM");
  await watcher.next((n) => n.notice === "ready");
  const controller = await service.join(KEYS.controller1, "CLRM");
  controller.send({ type: "STATE_UPDATE", data: { objectId: "SB_1", state: true } });
  await converges(watcher, service, "CLRM");
  const first = watcher.notices.find((n) => n.notice === "packet" && n.packet.type === "INITIAL_STATE").packet;
  assert.match(first.data.history, /^[0-9a-f]{16}$/, "the client asked for resumes");
  // The change is lost on the way, then so is the connection: the client's replica is at the
  // seq before it, and its reconnect resumes from there.
  proxy.dropWhen = (text) => text.includes("SB_MISSED");
  controller.send({ type: "STATE_UPDATE", data: { objectId: "SB_MISSED", state: true } });
  await until(() => proxy.dropped.length > 0, { what: "the proxy dropping the update" });
  proxy.dropWhen = () => false;
  proxy.dropped.length = 0;
  const since = watcher.notices.length;
  proxy.cut();
  const resumed = await watcher.next((n) => n.notice === "packet" && n.packet.type === "INITIAL_STATE", { since, ms: 15_000 });
  assert.equal(resumed.packet.data.resumedFrom, first.data.seq + 1);
  assert.deepEqual(resumed.packet.data.objects.map((o) => o.id), ["SB_MISSED"]);
  await converges(watcher, service, "CLRM");
  assert.equal(watcher.replica.objects.SB_MISSED.state, true);
  assert.equal(watcher.notices.slice(since).filter((n) => n.notice === "resyncing").length, 0, "no resync needed");
  await controller.close();
  await watcher.stop();
});

test("close codes and refusals: 401 stops, 4001 stops, 4003 reconnects once and a ban then stops", async () => {
  const unknown = new Watcher(proxy.url, "BARS_not-a-key", "CLCC");
  const refused = await unknown.next((n) => n.notice === "refused");
  assert.deepEqual([refused.status, refused.code], [401, "INVALID_API_KEY"]);
  await unknown.next((n) => n.notice === "stopped");
  assert.equal(await unknown.exited, 1);

  const revoked = await service.account("observer");
  const watcher = new Watcher(proxy.url, revoked.key, "CLCC");
  await watcher.next((n) => n.notice === "ready");
  await service.db.prepare("UPDATE api_keys SET revoked_at = ?1 WHERE key_hash = ?2").bind(Date.now(), revoked.hash).run();
  const closed = await watcher.next((n) => n.notice === "closed");
  assert.equal(closed.code, 4001);
  await watcher.next((n) => n.notice === "stopped");
  assert.equal(watcher.notices.filter((n) => n.notice === "connecting").length, 1, "no reconnect after 4001");
  assert.equal(await watcher.exited, 1);

  const banned = await service.account("observer");
  const second = new Watcher(proxy.url, banned.key, "CLCC");
  await second.next((n) => n.notice === "ready");
  await service.db.prepare("UPDATE accounts SET banned = 1 WHERE cid = ?1").bind(banned.cid).run();
  const roleClose = await second.next((n) => n.notice === "closed");
  assert.equal(roleClose.code, 4003);
  const afterBan = await second.next((n) => n.notice === "refused");
  assert.deepEqual([afterBan.status, afterBan.code], [403, "BANNED"]);
  await second.next((n) => n.notice === "stopped");
  assert.equal(await second.exited, 1);
});

test("429 TOO_MANY_CONNECTIONS backs off and connects once a slot is free", async () => {
  const capped = await new Service({ MAX_SOCKETS_PER_KEY: "1" }).start();
  const capProxy = await new Proxy(capped.url).start();
  try {
    const holder = await capped.join(KEYS.observer1, "CLTM");
    const watcher = new Watcher(capProxy.url, KEYS.observer1, "CLTM");
    const refused = await watcher.next((n) => n.notice === "refused");
    assert.deepEqual([refused.status, refused.code], [429, "TOO_MANY_CONNECTIONS"]);
    await watcher.next((n) => n.notice === "retrying");
    await holder.close();
    await watcher.next((n) => n.notice === "ready", { ms: 15_000 });
    await watcher.stop();
  } finally {
    await capProxy.stop();
    await capped.stop();
  }
});

/** Runs the CLI once: `{ code, stdout, stderr }`. */
function run(...args) {
  return new Promise((resolve) => {
    execFile(CLI, ["--server", proxy.url, ...args], (error, stdout, stderr) =>
      resolve({ code: error ? error.code : 0, stdout, stderr }),
    );
  });
}

test("set and crossing: one change confirmed by GET_STATE, a crossing to the controllers, the role checked", async () => {
  const controller = await service.join(KEYS.controller2, "CLST");
  const set = await run("--key", KEYS.controller1, "set", "CLST", "SB_27L_A1", "true");
  assert.equal(set.code, 0, set.stderr);
  assert.match(set.stdout, /seq 1/);
  const update = await controller.next("STATE_UPDATE");
  assert.deepEqual(update.data, { objectId: "SB_27L_A1", state: true, controllerId: "1000001" });
  const settings = await run("--key", KEYS.controller1, "set", "CLST", "LO_1", '{"level":3}');
  assert.equal(settings.code, 0, settings.stderr);
  assert.deepEqual((await controller.next("STATE_UPDATE")).data.state, { level: 3 });

  const crossing = await run("--key", KEYS.pilot1, "crossing", "CLST", "SB_27L_A1");
  assert.equal(crossing.code, 0, crossing.stderr);
  const crossed = await controller.next("STOPBAR_CROSSING");
  assert.equal(crossed.data.objectId, "SB_27L_A1");

  const wrongRole = await run("--key", KEYS.pilot1, "set", "CLST", "SB_27L_A1", "false");
  assert.equal(wrongRole.code, 1);
  assert.match(wrongRole.stderr, /connects as pilot, not controller/);
  const refused = await run("--key", KEYS.controller1, "set", "CLST", "bad id!", "true");
  assert.equal(refused.code, 1);
  assert.match(refused.stderr, /INVALID_PACKET/);
  const badState = await run("--key", KEYS.controller1, "set", "CLST", "SB_1", "maybe");
  assert.equal(badState.code, 1);
  assert.match(badState.stderr, /state must be/);
  await controller.close();
});

test("every other close code, sent as the server would: 1000 stops, 4008 waits 10 s or more, 1011 and 4000 reconnect", async () => {
  for (const [code, expect] of [
    [4008, "retry after 10 s"],
    [1011, "retry"],
    [4000, "retry"],
    [1000, "stop"],
  ]) {
    const watcher = new Watcher(proxy.url, KEYS.observer1, "CLCO");
    await watcher.next((n) => n.notice === "ready");
    const since = watcher.notices.length;
    proxy.closeWith(code, "from the test");
    const closed = await watcher.next((n) => n.notice === "closed", { since });
    assert.equal(closed.code, code);
    if (expect === "stop") {
      await watcher.next((n) => n.notice === "stopped", { since });
      assert.equal(await watcher.exited, 0, "a 1000 close ends the watch cleanly");
      continue;
    }
    const retrying = await watcher.next((n) => n.notice === "retrying", { since });
    if (expect === "retry after 10 s") assert.ok(retrying.afterMs >= 10_000, `${code}: ${retrying.afterMs} ms`);
    else assert.ok(retrying.afterMs <= 1_000, `${code}: the first retry is within the initial second`);
    await watcher.stop();
  }
});
