// Serves, for the benchmarks, the built Worker (build/, exactly what a deploy ships) and the floor
// (bench/floor/floor.mjs) with miniflare: each is a workerd process listening on 127.0.0.1
// itself, with no proxy in front (unlike `wrangler dev`). D1 is migrated and seeded with the demo
// keys, as in the integration tests, and with a key for each of 6,000 distinct pilots. Storage lives in a temporary directory removed on exit.
//
//   node bench/serve.mjs [--port 8787] [--floor-port 8788] [--stats-port 8789] [--tail]
//                        [--network [--status-cpu N]] [--address-limit N] [--info FILE]
//                        [VAR=value ...]
//
// VAR=value overrides a wrangler [vars] value of the service (defaults below raise the caps so
// that 1,000 sockets with the demo keys fit at one airport). --tail adds a tail worker that
// counts every invocation of the service (fetch, alarm, WebSocket events): the idle-cost
// scenario reads those counts, with the structured log events, from
// http://127.0.0.1:<stats-port>/stats. --info writes the URLs and workerd pids as JSON once both
// are ready. Runs until SIGINT/SIGTERM (or at most --max-seconds, default 3600).
//
// --network also serves the service twice more, with roles from the network (ROLE_SOURCE=vatsim,
// from bench/floor/status.mjs, which answers every cid as a pilot; pinned to core N with
// --status-cpu): `ours+vatsim` with the 1,000 pilots' keys in its own tables, and `ours+network`
// (KEY_SOURCE=network) with them only as `users` rows of NETWORK_DB, the running service's
// tables. With the service itself (own keys, static roles) that isolates what the role look-up
// and what the network key source cost a connect. And `floor+status`: the floor asking the
// status service once per connect (bench/floor/ladder.mjs STATUS), the least any service that
// takes roles from the network does for a person it knows nothing recent of.
import { Miniflare, convertV4MiniflareOptions } from "miniflare";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:http";
import { createHash } from "node:crypto";
import { execFileSync, spawn } from "node:child_process";
import { once } from "node:events";
import { createInterface } from "node:readline";
import { tmpdir } from "node:os";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import {
  COMPATIBILITY_DATE,
  createRunningServiceTables,
  logEvents,
  metricsRecorder,
  migrateAndSeed,
  recording,
  serviceWorker,
} from "../scripts/local-service.mjs";
import { args, opt } from "./args.mjs";
import { unstable_getMiniflareWorkerOptions } from "wrangler";

const bench = dirname(fileURLToPath(import.meta.url));

const port = Number(opt("--port", "8787"));
const floorPort = Number(opt("--floor-port", "8788"));
const statsPort = Number(opt("--stats-port", "8789"));
const maxSeconds = Number(opt("--max-seconds", "3600"));
const infoFile = opt("--info", undefined);
const withTail = args.includes("--tail");
// Refused keys per address a minute (the ADDRESS_LIMIT Rate Limiting binding): by default
// wrangler.toml's, as deployed; 0 serves no limiter. The load generator gives every connect its
// own CF-Connecting-IP (without one, miniflare gives every request 127.0.0.1).
const deployedLimit = unstable_getMiniflareWorkerOptions(join(bench, "..", "wrangler.toml")).workerOptions.ratelimits
  ?.ADDRESS_LIMIT?.simple?.limit;
const addressLimit = Number(opt("--address-limit", deployedLimit));
// Diagnosis: also serve bench/floor/ladder.mjs, the floor plus one cost of the service at a time,
// on --floor-port + 10, 11, …, and after them the floor in Rust → Wasm (bench/floor-wasm).
const withLadder = args.includes("--ladder");
const withNetwork = args.includes("--network");
const statusCpu = opt("--status-cpu", undefined);
// Diagnosis: --extra NAME=DIR serves another build of the service (DIR holds index.js and
// index_bg.wasm, e.g. a patched copy) with the same vars, on --floor-port + 20, 21, ...
const extras = args.flatMap((a, i) => (a === "--extra" ? [args[i + 1].split("=")] : []));
// Diagnosis: --inspect PORT opens V8's inspector for the service on PORT (and for each --extra on
// PORT + 1, + 2, ...; for --network's ours+vatsim and ours+network on PORT + 10 and + 11), for
// bench/profile.mjs.
const inspect = opt("--inspect", undefined);
const inspectorPort = (offset) => (inspect ? { inspectorPort: Number(inspect) + offset } : {});

const vars = {
  ROLE_SOURCE: "static",
  HEARTBEAT_INTERVAL_MS: "60000",
  IDLE_TIMEOUT_MS: "70000",
  OFFLINE_GRACE_MS: "120000",
  VATSIM_RECHECK_MS: "120000",
  // Raised for the benchmarks: the demo keys are few, and 1,000+ sockets share them.
  MAX_SOCKETS_PER_KEY: "2000",
  MAX_SOCKETS_PER_AIRPORT: "2000",
};
for (const a of args) {
  const m = /^([A-Z_]+)=(.*)$/.exec(a);
  if (m) vars[m[1]] = m[2];
}

// Counters for /stats: structured log events by name (and, for events naming an airport, by
// airport too: `airports.state_read.EGLL`), tail items by kind, and the times of airport_loaded
// (one per Durable Object construction that served an event) and alarms.
const counts = {};
const airports = {};
const times = { airport_loaded: [], alarm: [], ws_message: [], woke: [] };
const metricSums = [];
function onLog(message) {
  for (const event of logEvents(message)) {
    const name = event.event === "tail" ? `tail_${event.kind}` : String(event.event);
    counts[name] = (counts[name] ?? 0) + 1;
    if (typeof event.airport === "string") {
      const byAirport = (airports[name] ??= {});
      byAirport[event.airport] = (byAirport[event.airport] ?? 0) + 1;
    }
    if (event.event === "airport_loaded") times.airport_loaded.push(Date.now());
    if (event.event === "tail") {
      // Invocation start times as workerd reports them; `woke`: the invocations during which
      // the object was constructed (it had been hibernated or evicted).
      const at = event.at ?? Date.now();
      if (event.kind === "alarm" || event.kind === "ws_message") times[event.kind].push(at);
      const outcome = `tail_${event.kind}_outcome_${event.outcome}`;
      counts[outcome] = (counts[outcome] ?? 0) + 1;
      if (event.constructed) {
        times.woke.push({ at, kind: event.kind });
        counts[`tail_woke_by_${event.kind}`] = (counts[`tail_woke_by_${event.kind}`] ?? 0) + 1;
      }
    }
  }
}

const persist = mkdtempSync(join(tmpdir(), "airport-bench-"));

/**
 * The service as the benchmarks serve it, without the dashboard's static assets: with them,
 * miniflare puts a JavaScript router worker in front of the Worker, on the same core, for every
 * request. On Cloudflare that routing is the platform's (wrangler.toml's `run_worker_first`), and
 * the floor has none.
 */
function benchService(dir, bindings = vars, options = {}) {
  const { assets: _, ...worker } = serviceWorker(bindings, dir, { addressLimit, ...options });
  return worker;
}

// With --tail, METRICS is a recorder too: the idle scenarios read the windows' sums (`metrics`
// in /stats, the `airport` points' doubles added up by position, AIRPORT_COLUMNS' order).
const service = withTail ? { ...recording(benchService()), tails: ["bench-tail"] } : benchService();
const recorder = metricsRecorder(async (request) => {
  const point = await request.json();
  if (point.blobs?.[0] === "airport") point.doubles.forEach((d, i) => (metricSums[i] = (metricSums[i] ?? 0) + d));
  return new Response(null, { status: 204 });
});
const tail = {
  name: "bench-tail",
  modules: [{ type: "ESModule", path: join(bench, "floor", "tail.mjs") }],
  compatibilityDate: COMPATIBILITY_DATE,
};
const floor = {
  name: "floor",
  modules: [{ type: "ESModule", path: join(bench, "floor", "floor.mjs") }],
  compatibilityDate: COMPATIBILITY_DATE,
  durableObjects: { FLOOR: { className: "FloorObject", useSQLite: true } },
};
const shared = (p, dir) => ({
  host: "127.0.0.1",
  port: p,
  logRequests: false,
  resourcePersistencePath: join(persist, dir),
  handleStructuredLogs: (log) => onLog(log.message),
});

/** The pid of the process listening on 127.0.0.1:port (the workerd miniflare started). */
function listenerPid(p) {
  const out = execFileSync("ss", ["-ltnpH", `sport = :${p}`], { encoding: "utf8" });
  const m = /pid=(\d+)/.exec(out);
  return m ? Number(m[1]) : null;
}

const mfService = new Miniflare(
  convertV4MiniflareOptions({ ...shared(port, "service"), ...inspectorPort(0), workers: withTail ? [service, tail, recorder] : [service] }),
);
const mfFloor = new Miniflare(convertV4MiniflareOptions({ ...shared(floorPort, "floor"), workers: [floor] }));
const ladder = !withLadder
  ? []
  : [
      ["floor+auth", { AUTH: "1" }],
      ["floor+sql", { SQL: "1" }],
      ["floor+attach", { ATTACH: "1" }],
      ["floor+all", { AUTH: "1", SQL: "1", ATTACH: "1" }],
      ["floor+bytes", { BYTES: "1" }],
      ["floor+drop", { DROP: "1" }],
      ["floor+object", { KEY_IN_OBJECT: "1", SQL: "1", ATTACH: "1", ALARM: "1" }],
    ].map(([name, bindings], i) => {
      const p = floorPort + 10 + i;
      const worker = {
        ...floor,
        name: "floor",
        modules: [{ type: "ESModule", path: join(bench, "floor", "ladder.mjs") }],
        d1Databases: { DB: "airport-realtime" },
        bindings,
      };
      const mf = new Miniflare(convertV4MiniflareOptions({ ...shared(p, `ladder${i}`), workers: [worker] }));
      return { name, port: p, mf };
    });
// The floor in Rust → Wasm (bench/floor-wasm, built by run.sh): what the toolchain itself costs.
if (withLadder) {
  const dir = join(bench, "floor-wasm", "build");
  const p = floorPort + 10 + ladder.length;
  const worker = {
    ...floor,
    modulesRoot: dir,
    modules: [
      { type: "ESModule", path: join(dir, "index.js") },
      { type: "CompiledWasm", path: join(dir, "index_bg.wasm") },
    ],
  };
  const mf = new Miniflare(convertV4MiniflareOptions({ ...shared(p, "floor-wasm"), workers: [worker] }));
  ladder.push({ name: "floor-wasm", port: p, mf, unseeded: true });
}

const extraServices = extras.map(([name, dir], i) => {
  const p = floorPort + 20 + i;
  const worker = benchService(dir);
  const mf = new Miniflare(convertV4MiniflareOptions({ ...shared(p, `extra${i}`), ...inspectorPort(1 + i), workers: [worker] }));
  return { name, port: p, mf };
});

/**
 * The status service of --network's variants, in a process of its own (on --status-cpu's core):
 * resolves to its URLs once it listens.
 */
async function startStatus() {
  const script = [process.execPath, join(bench, "floor", "status.mjs"), "--max-seconds", String(maxSeconds)];
  const child = statusCpu === undefined ? spawn(script[0], script.slice(1)) : spawn("taskset", ["-c", statusCpu, ...script]);
  child.stderr.pipe(process.stderr);
  const exited = once(child, "exit").then(([code]) => {
    throw new Error(`bench/floor/status.mjs exited (${code}) before it listened`);
  });
  exited.catch(() => {}); // its exit at stop() is expected
  const [line] = await Promise.race([once(createInterface({ input: child.stdout }), "line"), exited]);
  return { child, ...JSON.parse(line) };
}

const status = withNetwork ? await startStatus() : null;
const networkServices = !withNetwork
  ? []
  : [
      ["ours+vatsim", {}],
      ["ours+network", { KEY_SOURCE: "network" }],
    ].map(([name, keySource], i) => {
      const p = floorPort + 30 + i;
      const network = keySource.KEY_SOURCE === "network";
      // VATSIM_CACHE_MS=1 (the least allowed) unless given: every herd asks the status service
      // for each of its people, as a herd of people none of whom connected in the last 15 s
      // (the default reuse) does.
      const cache = vars.VATSIM_CACHE_MS ?? "1";
      const roles = { ROLE_SOURCE: "vatsim", VATSIM_STATUS_URL: status.url, VATSIM_CACHE_MS: cache };
      const worker = benchService(undefined, { ...vars, ...roles, ...keySource }, { network });
      const mf = new Miniflare(
        convertV4MiniflareOptions({ ...shared(p, `network${i}`), ...inspectorPort(10 + i), workers: [worker] }),
      );
      return { name, port: p, mf, network };
    });
const statusFloor = !withNetwork
  ? []
  : [
      (() => {
        const p = floorPort + 32;
        const worker = {
          ...floor,
          name: "floor",
          modules: [{ type: "ESModule", path: join(bench, "floor", "ladder.mjs") }],
          bindings: { STATUS: status.url },
        };
        const mf = new Miniflare(convertV4MiniflareOptions({ ...shared(p, "floor-status"), workers: [worker] }));
        return { name: "floor+status", port: p, mf };
      })(),
    ];

/**
 * Pilots with one key each for the distinct-people herds: loadgen's `distinct_key(i)`, the
 * same 1,000 in every herd and 5 sets of 1,000 the Worker has not seen.
 */
const DISTINCT_PEOPLE = 6000;
/** Person i's key: loadgen's `distinct_key(i)`, of the running service's shape. */
const distinctKey = (i) => `BARS_${i.toString(16).padStart(64, "0")}`;
const distinctCid = (i) => String(3_000_000 + i);

/**
 * `db.batch(rows)`, again if it failed: miniflare's D1 proxy now and then drops the connection
 * of a batch of a thousand statements ("other side closed", about one in three on this machine
 * under load). The seeds' statements are `INSERT OR IGNORE`, so a batch can run twice.
 */
async function batch(db, rows) {
  for (let attempt = 1; ; attempt++) {
    try {
      return await db.batch(rows);
    } catch (error) {
      if (attempt === 5) throw error;
      console.error(`seed batch failed (${error.cause?.message ?? error.message}); again`);
    }
  }
}

/**
 * Migrates and seeds DB with the demo keys, and the distinct pilots: in our own tables, or with
 * `network` only as `users` of the running service's tables in NETWORK_DB (plain keys).
 */
async function seed(mf, network = false) {
  const db = await mf.getD1Database("DB");
  await migrateAndSeed(db);
  if (network) {
    const networkDb = await mf.getD1Database("NETWORK_DB");
    await createRunningServiceTables(networkDb);
    const rows = [];
    for (let i = 0; i < DISTINCT_PEOPLE; i++) {
      const insert = "INSERT OR IGNORE INTO users (vatsim_id, api_key) VALUES (?1, ?2)";
      rows.push(networkDb.prepare(insert).bind(distinctCid(i), distinctKey(i)));
    }
    await batch(networkDb, rows);
    return;
  }
  // Rows written as literals, 500 people a statement: one statement per row took about 4 ms
  // each (half a minute for 6,000 people). The values are ours, digits and hex only.
  const statements = [];
  for (let first = 0; first < DISTINCT_PEOPLE; first += 500) {
    const people = Array.from({ length: 500 }, (_, j) => {
      const i = first + j;
      return [distinctCid(i), createHash("sha256").update(distinctKey(i)).digest("hex")];
    });
    statements.push(
      db.prepare(`INSERT OR IGNORE INTO accounts (cid, role) VALUES ${people.map(([cid]) => `('${cid}', 'pilot')`).join(",")}`),
      db.prepare(`INSERT OR IGNORE INTO api_keys (key_hash, cid) VALUES ${people.map(([cid, hash]) => `('${hash}', '${cid}')`).join(",")}`),
    );
  }
  await batch(db, statements);
}

async function stop(code = 0) {
  status?.child.kill();
  const served = [...ladder, ...extraServices, ...networkServices, ...statusFloor];
  await Promise.allSettled([mfService.dispose(), mfFloor.dispose(), ...served.map((l) => l.mf.dispose())]);
  rmSync(persist, { recursive: true, force: true });
  process.exit(code);
}
process.on("SIGINT", () => stop(0));
process.on("SIGTERM", () => stop(0));
// Miniflare's own exit hook ends the process at SIGINT/SIGTERM before stop() gets to removing
// the storage: remove it on the way out whichever way that is.
process.on("exit", () => rmSync(persist, { recursive: true, force: true }));
setTimeout(() => stop(0), maxSeconds * 1000).unref();

try {
  const [serviceUrl, floorUrl] = await Promise.all([mfService.ready, mfFloor.ready]);
  await seed(mfService);
  for (const l of [...ladder, ...extraServices]) {
    l.url = (await l.mf.ready).toString();
    if (!l.unseeded) await seed(l.mf);
  }
  for (const l of networkServices) {
    l.url = (await l.mf.ready).toString();
    await seed(l.mf, l.network);
  }
  for (const l of statusFloor) l.url = (await l.mf.ready).toString();

  createServer((req, res) => {
    if (req.url === "/reset") {
      for (const k of Object.keys(counts)) delete counts[k];
      for (const k of Object.keys(airports)) delete airports[k];
      for (const k of Object.keys(times)) times[k] = [];
      metricSums.length = 0;
    }
    res.setHeader("Content-Type", "application/json");
    res.end(JSON.stringify({ counts, airports, times, metrics: metricSums }));
  }).listen(statsPort, "127.0.0.1");

  const info = {
    service: { url: serviceUrl.toString(), pid: listenerPid(port) },
    floor: { url: floorUrl.toString(), pid: listenerPid(floorPort) },
    ladder: ladder.map((l) => ({ name: l.name, url: l.url, pid: listenerPid(l.port) })),
    extra: extraServices.map((l) => ({ name: l.name, url: l.url, pid: listenerPid(l.port) })),
    network: [...networkServices, ...statusFloor].map((l) => ({ name: l.name, url: l.url, pid: listenerPid(l.port) })),
    status: status && { url: status.url, count: status.count },
    stats: `http://127.0.0.1:${statsPort}/stats`,
    vars,
    addressLimit,
    tail: withTail,
  };
  if (infoFile) writeFileSync(infoFile, JSON.stringify(info));
  console.log(`READY ${JSON.stringify(info)}`);
} catch (error) {
  console.error(error);
  await stop(1);
}
