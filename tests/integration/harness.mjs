// Test harness: runs the worker-build output in workerd through miniflare, with D1 migrated and
// seeded with the demo keys, and real WebSocket clients (ws) on 127.0.0.1.
import { Miniflare, convertV4MiniflareOptions } from "miniflare";
import WebSocket from "ws";
import { mkdtempSync, rmSync } from "node:fs";
import { createHash, randomBytes } from "node:crypto";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  createRunningServiceTables,
  logEvents,
  metricsRecorder,
  migrateAndSeed,
  recording,
  serviceWorker,
} from "../../scripts/local-service.mjs";
import { Pacer, bounded, sleep, until } from "./helpers.mjs";
import { checkHttpBody, checkServerPacket } from "./contract.mjs";

export const KEYS = {
  controller1: "dev-controller-1",
  controller2: "dev-controller-2",
  pilot1: "dev-pilot-1",
  pilot2: "dev-pilot-2",
  observer1: "dev-observer-1",
  banned1: "dev-banned-1",
};
export const CIDS = {
  controller1: "1000001",
  controller2: "1000002",
  pilot1: "1000011",
  pilot2: "1000012",
  observer1: "1000021",
};


const sha256 = (text) => createHash("sha256").update(text).digest("hex");

/** Accounts made by tests get cids from here, clear of the demo accounts. */
let nextCid = 2_000_001;

const DEFAULT_VARS = {
  ROLE_SOURCE: "static",
  HEARTBEAT_INTERVAL_MS: "60000",
  IDLE_TIMEOUT_MS: "70000",
  OFFLINE_GRACE_MS: "120000",
  MAX_SOCKETS_PER_KEY: "8",
  MAX_SOCKETS_PER_AIRPORT: "2000",
};

/**
 * A running service. `vars` override wrangler.toml's [vars]. Storage persists in a temporary
 * directory for the life of the service, so `restart()` keeps Durable Object and D1 data.
 * `addressLimit` is the ADDRESS_LIMIT binding's refused keys per address a minute (high unless a test
 * is about it; tests set their address with a `CF-Connecting-IP` header, as Cloudflare does).
 * With `network: true`, NETWORK_DB is bound to a local stand-in of the running service's
 * database (its tables from tests/fixtures/running-service.sql), as `this.networkDb`.
 */
export class Service {
  constructor(vars = {}, { network = false, addressLimit = 1_000_000 } = {}) {
    this.vars = { ...DEFAULT_VARS, ...vars };
    this.network = network;
    this.addressLimit = addressLimit;
    this.persist = mkdtempSync(join(tmpdir(), "airport-test-"));
    this.logs = [];
    this.logWaiters = [];
    /** Every Analytics Engine data point written, in order: `{ indexes, blobs, doubles }`. */
    this.dataPoints = [];
    /**
     * Keys and their hashes that must never reach a log line: the demo keys and every key
     * `account()` makes. `stop()` fails the test file if one did (`leaks`).
     */
    this.secrets = Object.values(KEYS).flatMap((key) => [key, sha256(key)]);
    this.leaks = [];
  }

  /** The service's own worker options; METRICS is bound to the recorder in `options()`. */
  worker() {
    return serviceWorker(this.vars, undefined, { network: this.network, addressLimit: this.addressLimit });
  }

  options() {
    const worker = this.worker();
    return {
      host: "127.0.0.1",
      port: 0,
      resourcePersistencePath: this.persist,
      handleStructuredLogs: (log) => this.onLog(log.message),
      workers: [
        // METRICS is the recorder: what the Worker writes to Analytics Engine.
        recording(worker),
        metricsRecorder((request) => this.onDataPoint(request)),
      ],
    };
  }

  /**
   * Silence until `airport`'s object has hibernated: its metrics window, which the alarm writes
   * 5 s after the last event, arrives; then workerd's idle eviction (about ten seconds after
   * that alarm) has time to run, with 5 s to spare. Waiting on the window rather than a fixed
   * time keeps a late alarm on a loaded machine from landing after the test has woken the
   * object.
   */
  async untilHibernated(airport) {
    const since = this.dataPoints.length;
    const written = () => this.pointsOf(airport, since).length > 0;
    await until(written, { ms: 30_000, what: `the metrics window of ${airport}` });
    await sleep(15_000);
  }

  /** The data points an airport wrote (from the `since`th on), in order. */
  pointsOf(airport, since = 0) {
    return this.dataPoints.slice(since).filter((p) => p.indexes?.[0] === airport);
  }

  async onDataPoint(request) {
    this.dataPoints.push(await request.json());
    return new Response(null, { status: 204 });
  }

  onLog(message) {
    for (const secret of this.secrets) {
      if (message.includes(secret)) this.leaks.push(message.slice(0, 80).replace(secret, "<key>"));
    }
    for (const event of logEvents(message)) {
      this.logs.push(event);
      this.logWaiters = this.logWaiters.filter(({ match, resolve }) => {
        if (match(event)) {
          resolve(event);
          return false;
        }
        return true;
      });
    }
  }

  /** Resolves with the first structured log event (past or future) that matches. */
  waitForLog(match, timeoutMs = 5000, since = 0) {
    const found = this.logs.slice(since).find(match);
    if (found) return Promise.resolve(found);
    return bounded(
      new Promise((resolve) => this.logWaiters.push({ match, resolve })),
      timeoutMs,
      "log event",
    );
  }

  async start() {
    this.mf = new Miniflare(convertV4MiniflareOptions(this.options()));
    this.url = await this.mf.ready;
    const db = await this.mf.getD1Database("DB");
    // Idempotent across restarts: tables exist after the first start.
    await migrateAndSeed(db);
    this.db = db;
    if (this.network) {
      this.networkDb = await this.mf.getD1Database("NETWORK_DB");
      await createRunningServiceTables(this.networkDb);
    }
    return this;
  }

  /** Stops workerd; storage survives for `start()`. Every open socket is dropped. */
  async halt() {
    await this.mf.dispose();
    this.mf = undefined;
  }

  /** Restarts workerd; storage survives. Every open socket is dropped. */
  async restart() {
    await this.halt();
    await this.start();
  }

  async stop() {
    if (this.mf) await this.mf.dispose();
    rmSync(this.persist, { recursive: true, force: true });
    if (this.leaks.length > 0) {
      throw new Error(`an API key or its hash reached the log: ${JSON.stringify(this.leaks.slice(0, 3))}`);
    }
  }

  /**
   * A new account with a new key, stored hashed as every key is: `{ cid, key, hash }`. Keys
   * start with `BARS_`, as the deployed pilot client requires.
   */
  async account(role = "observer") {
    const cid = String(nextCid++);
    const key = `BARS_${randomBytes(24).toString("base64url")}`;
    const hash = sha256(key);
    this.secrets.push(key, hash);
    await this.db.batch([
      this.db.prepare("INSERT INTO accounts (cid, role) VALUES (?1, ?2)").bind(cid, role),
      this.db.prepare("INSERT INTO api_keys (key_hash, cid) VALUES (?1, ?2)").bind(hash, cid),
    ]);
    return { cid, key, hash };
  }

  httpUrl(path) {
    return new URL(path, this.url).toString();
  }

  wsUrl(path) {
    return this.httpUrl(path).replace(/^http/, "ws");
  }

  /** fetch(), with a JSON answer checked against the contract. */
  async fetch(path, init) {
    const res = await fetch(this.httpUrl(path), init);
    const contentType = res.headers.get("content-type");
    const text = contentType?.startsWith("application/json") ? await res.clone().text() : "";
    if (text) checkHttpBody(path, res.status, contentType, JSON.parse(text));
    return res;
  }

  /** Opens a socket; resolves once open (INITIAL_STATE may still be in flight). */
  connect(key, airport = "EGLL", { headers } = {}) {
    return Client.open(this.wsUrl(connectPath(key, airport)), headers);
  }

  /** Opens a socket and waits for its INITIAL_STATE. */
  join(key, airport = "EGLL") {
    return this.open(connectPath(key, airport));
  }

  /**
   * Opens a socket at a /connect URL made by hand and waits for its INITIAL_STATE; `protocols`
   * are the WebSocket subprotocols offered.
   */
  async open(path, { headers, protocols } = {}) {
    const client = await Client.open(this.wsUrl(path), headers, protocols);
    client.initial = await client.next("INITIAL_STATE");
    return client;
  }

  /** A rejected upgrade: resolves with { status, body, contentType, headers }. */
  reject(key, airport = "EGLL", { headers } = {}) {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(this.wsUrl(connectPath(key, airport)), { headers });
      ws.on("open", () => {
        ws.terminate();
        reject(new Error("upgrade unexpectedly succeeded"));
      });
      ws.on("unexpected-response", (_req, res) => {
        let body = "";
        res.on("data", (d) => (body += d));
        res.on("end", () => {
          const rejection = { status: res.statusCode, body: JSON.parse(body), contentType: res.headers["content-type"], headers: res.headers };
          try {
            checkHttpBody("/connect", rejection.status, rejection.contentType, rejection.body);
            resolve(rejection);
          } catch (error) {
            reject(error);
          }
        });
      });
      ws.on("error", () => {});
    });
  }
}

/** The /connect path for `key` (none when undefined) at `airport`. */
function connectPath(key, airport) {
  return key === undefined ? `/connect?airport=${airport}` : `/connect?airport=${airport}&key=${encodeURIComponent(key)}`;
}

/** A WebSocket client that queues every packet so tests can wait on them in order. */
export class Client {
  static open(url, headers, protocols = []) {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(url, protocols, { headers });
      const client = new Client(ws);
      ws.on("open", () => resolve(client));
      ws.on("error", reject);
      ws.on("unexpected-response", (_req, res) => reject(new Error(`upgrade refused: ${res.statusCode}`)));
    });
  }

  constructor(ws) {
    this.ws = ws;
    this.received = [];
    this.cursor = 0;
    this.waiters = [];
    /** For tests that send many packets: `await client.pacer.take()` before each. */
    this.pacer = new Pacer();
    // A socket counts as closed when the server's close frame arrives. ws's 'close' event waits
    // for the TCP close, and locally workerd keeps the TCP connection of a socket closed from an
    // alarm open until the object hibernates (docs/protocol.md), so it can come much later. But
    // once ws has answered the close frame, it ends its side of the connection (the socket's
    // 'finish'): nothing more can arrive, so the connection is dropped there, and 'close' comes
    // at once with the server's code and reason.
    ws.once("upgrade", (res) => res.socket.once("finish", () => ws.terminate()));
    this.closed = new Promise((resolve) => {
      ws.on("close", (code, reason) => {
        this.closeInfo = { code, reason: reason.toString(), at: Date.now() };
        resolve(this.closeInfo);
        this.flush();
      });
    });
    ws.on("message", (data) => {
      const packet = JSON.parse(data.toString());
      // A frame off the contract fails the test at once (an uncaught error fails it).
      checkServerPacket(packet);
      this.received.push(packet);
      this.flush();
    });
  }

  flush() {
    this.waiters = this.waiters.filter((w) => !w());
  }

  send(packet) {
    this.ws.send(typeof packet === "string" ? packet : JSON.stringify(packet));
  }

  sendBinary(bytes) {
    this.ws.send(bytes, { binary: true });
  }

  /**
   * The next packet (after the ones already taken) matching `match`: a type name or a predicate.
   * Packets skipped over stay available to `all()` but are not returned again by `next`.
   */
  next(match, timeoutMs = 5000) {
    const test = typeof match === "string" ? (p) => p.type === match : match;
    const promise = new Promise((resolve, reject) => {
      const check = () => {
        for (let i = this.cursor; i < this.received.length; i++) {
          if (test(this.received[i])) {
            this.cursor = i + 1;
            resolve(this.received[i]);
            return true;
          }
        }
        if (this.closeInfo) {
          reject(new Error(`socket closed (${this.closeInfo.code}) before ${String(match)}`));
          return true;
        }
        return false;
      };
      if (!check()) this.waiters.push(check);
    });
    return bounded(promise, timeoutMs, `packet ${typeof match === "string" ? match : "matching predicate"}`);
  }

  /** Sends a packet with a fresh requestId and waits for the direct reply carrying it. */
  async request(packet, timeoutMs = 5000) {
    const requestId = `r-${Math.random().toString(36).slice(2, 10)}`;
    this.send({ ...packet, requestId });
    return this.next((p) => p.requestId === requestId, timeoutMs);
  }

  /** Every packet of a type received so far. */
  all(type) {
    return this.received.filter((p) => p.type === type);
  }

  /**
   * The object changes received so far, in order, one `{ seq, objectId, state | patch,
   * controllerId }` per update item, whether it came in its own STATE_UPDATE or
   * MULTI_STATE_UPDATE or, for pilots and observers, coalesced with others into one
   * MULTI_STATE_UPDATE with `seqFrom` (PROTOCOL §7). A coalesced packet with one item per seq
   * (single updates) numbers its items from `seqFrom`; any other packet's items all get its seq.
   */
  changes() {
    return this.received.flatMap((p) => {
      if (p.type === "STATE_UPDATE") return [{ seq: p.seq, ...p.data }];
      if (p.type !== "MULTI_STATE_UPDATE") return [];
      const from = p.seqFrom ?? p.seq;
      const onePerSeq = p.data.updates.length === p.seq - from + 1;
      return p.data.updates.map((u, i) => ({ seq: onePerSeq ? from + i : p.seq, ...u }));
    });
  }

  /** Waits until a change of `objectId` has arrived, in whichever packet; resolves with it. */
  async nextChange(objectId, timeoutMs = 5000) {
    const carries = (p) =>
      (p.type === "STATE_UPDATE" && p.data.objectId === objectId) ||
      (p.type === "MULTI_STATE_UPDATE" && p.data.updates.some((u) => u.objectId === objectId));
    const packet = await this.next(carries, timeoutMs);
    return packet.type === "STATE_UPDATE" ? packet.data : packet.data.updates.findLast((u) => u.objectId === objectId);
  }

  /** Waits until at least `count` changes have arrived (see `changes`). */
  async changeCount(count, timeoutMs = 5000) {
    if (this.changes().length < count) await this.next(() => this.changes().length >= count, timeoutMs);
  }

  /** The seq ranges `[from, to]` of the change packets received, in order. */
  seqRanges() {
    return this.received
      .filter((p) => p.type === "STATE_UPDATE" || p.type === "MULTI_STATE_UPDATE")
      .map((p) => [p.seqFrom ?? p.seq, p.seq]);
  }

  /**
   * Proves a negative by a round trip: after a HEARTBEAT's ACK comes back, anything the server
   * sent this socket before that ACK has arrived.
   */
  async settle() {
    await this.request({ type: "HEARTBEAT" });
  }

  close(code = 1000) {
    this.ws.close(code);
    return this.closed;
  }
}

export async function withService(vars, fn) {
  const service = await new Service(vars).start();
  try {
    return await fn(service);
  } finally {
    await service.stop();
  }
}
