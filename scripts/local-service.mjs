// The service as miniflare runs it locally, shared by the integration tests
// (tests/integration/harness.mjs) and the benchmarks (bench/serve.mjs), so that both serve the
// worker-build output with the same bindings and the same D1 setup as wrangler.toml describes.
import { readFileSync, readdirSync } from "node:fs";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { unstable_getMiniflareWorkerOptions } from "wrangler";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
/** wrangler.toml's `compatibility_date`, so that local runs match a deploy. */
export const COMPATIBILITY_DATE = /^compatibility_date\s*=\s*"([^"]+)"/m.exec(
  readFileSync(join(root, "wrangler.toml"), "utf8"),
)[1];

/**
 * wrangler.toml's `[assets]` (the dashboard, built into dashboard/dist) as wrangler itself hands
 * them to miniflare: the directory, the ASSETS binding and which paths run the Worker first.
 * Miniflare reads the directory's `_headers`, as the deployed service does.
 */
const ASSETS = unstable_getMiniflareWorkerOptions(join(root, "wrangler.toml")).workerOptions.assets;

/**
 * The Worker's miniflare options: the build in `buildDir` (index.js, index_bg.wasm) and the
 * dashboard's static assets.
 */
export function serviceWorker(bindings, buildDir = join(root, "build"), { network = false, addressLimit } = {}) {
  return {
    name: "airport-realtime",
    modulesRoot: buildDir,
    modules: [
      { type: "ESModule", path: join(buildDir, "index.js") },
      { type: "CompiledWasm", path: join(buildDir, "index_bg.wasm") },
    ],
    compatibilityDate: COMPATIBILITY_DATE,
    durableObjects: {
      AIRPORT: { className: "AirportObject", useSQLite: true },
      PEOPLE: { className: "PersonLookup", useSQLite: true },
    },
    // NETWORK_DB: a local stand-in of the running service's database (docs/operations.md).
    d1Databases: network
      ? { DB: "airport-realtime", NETWORK_DB: "running-service" }
      : { DB: "airport-realtime" },
    // Locally a dataset that drops what it is given, as wrangler's (tests bind a recorder).
    analyticsEngineDatasets: { METRICS: { dataset: "airport_metrics" } },
    assets: ASSETS,
    // ADDRESS_LIMIT: refused keys per address a minute (wrangler.toml's [[ratelimits]]).
    ...(addressLimit ? { ratelimits: { ADDRESS_LIMIT: { namespace_id: "1001", simple: { limit: addressLimit, period: 60 } } } } : {}),
    bindings,
  };
}

/**
 * A recording double of an Analytics Engine dataset: `writeDataPoint` over RPC, each point handed
 * to `sink` (a function of a Request whose body is the point as JSON). `recording(worker)` binds
 * the service's METRICS to it in place of the local dataset, which drops what it is given.
 */
export function metricsRecorder(sink) {
  return {
    name: "metrics-recorder",
    modules: true,
    script: `
import { WorkerEntrypoint } from "cloudflare:workers";
export class Dataset extends WorkerEntrypoint {
  async writeDataPoint(point) {
    await this.env.SINK.fetch("http://sink/", { method: "POST", body: JSON.stringify(point) });
  }
}
export default { fetch: () => new Response(null, { status: 404 }) };
`,
    compatibilityDate: COMPATIBILITY_DATE,
    serviceBindings: { SINK: sink },
  };
}

/** The service's worker options with METRICS bound to `metricsRecorder`. */
export function recording(worker) {
  const { analyticsEngineDatasets: _, ...rest } = worker;
  return { ...rest, serviceBindings: { ...rest.serviceBindings, METRICS: { name: "metrics-recorder", entrypoint: "Dataset" } } };
}

/** A SQL file split into statements (comments stripped). */
function statements(file) {
  return readFileSync(file, "utf8")
    .split("\n")
    .map((line) => line.replace(/--.*$/, ""))
    .join("\n")
    .split(/;\s*(?:\n|$)/)
    .map((s) => s.trim())
    .filter(Boolean);
}

/**
 * Applies migrations/ to a database that has no tables yet, then seeds/dev.sql (the demo keys,
 * written with INSERT OR REPLACE, so a restart can run it again).
 */
export async function migrateAndSeed(db) {
  const exists = await db
    .prepare("SELECT name FROM sqlite_master WHERE type='table' AND name='accounts'")
    .first();
  const migrations = exists
    ? []
    : readdirSync(join(root, "migrations"))
        .sort()
        .map((m) => join(root, "migrations", m));
  const sql = [...migrations, join(root, "seeds", "dev.sql")].flatMap(statements);
  await db.batch(sql.map((s) => db.prepare(s)));
}

/**
 * Creates the running service's tables (tests/fixtures/running-service.sql) in a local stand-in
 * of its database, if they are not there yet.
 */
export async function createRunningServiceTables(db) {
  const sql = statements(join(root, "tests", "fixtures", "running-service.sql"));
  await db.batch(sql.map((s) => db.prepare(s)));
}

/** The structured log events in a message workerd logged: each of its lines that is JSON. */
export function logEvents(message) {
  const events = [];
  for (const line of message.split("\n")) {
    try {
      events.push(JSON.parse(line));
    } catch {
      // not a structured event
    }
  }
  return events;
}
