// Starts the bundle that `wrangler deploy --dry-run --outdir DIR` wrote, with wrangler.toml's
// bindings and static assets, in workerd and asks it GET /health and the dashboard's page. The dry run checks the configuration and that
// the Worker bundles; this catches a bundle that does not start (a module that throws when
// loaded, a broken Wasm module). Usage: node scripts/check-bundle.mjs DIR
import { Miniflare, convertV4MiniflareOptions } from "miniflare";
import { unstable_getMiniflareWorkerOptions } from "wrangler";
import { existsSync, readdirSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const dir = process.argv[2] && resolve(process.argv[2]);
if (!dir || !existsSync(join(dir, "index.js"))) {
  console.error("usage: node scripts/check-bundle.mjs DIR (the --outdir of wrangler deploy --dry-run)");
  process.exit(2);
}

const { workerOptions } = unstable_getMiniflareWorkerOptions(join(root, "wrangler.toml"));
const wasm = readdirSync(dir).filter((file) => file.endsWith(".wasm"));
const mf = new Miniflare(
  convertV4MiniflareOptions({
    ...workerOptions,
    modulesRoot: dir,
    modules: [
      { type: "ESModule", path: join(dir, "index.js") },
      ...wasm.map((file) => ({ type: "CompiledWasm", path: join(dir, file) })),
    ],
    host: "127.0.0.1",
    port: 0,
  }),
);
try {
  const url = await mf.ready;
  const response = await fetch(new URL("/health", url));
  const body = await response.text();
  if (response.status !== 200 || JSON.parse(body).status !== "ok") {
    throw new Error(`GET /health answered ${response.status}: ${body}`);
  }
  const page = await fetch(new URL("/", url), { headers: { Accept: "text/html" } });
  if (page.status !== 200 || !(await page.text()).includes("/assets/main-")) {
    throw new Error(`GET / (the dashboard) answered ${page.status}`);
  }
  console.log(`bundle check: ${dir} starts, serves the dashboard and answers GET /health: ${body}`);
} catch (error) {
  console.error(`bundle check failed: ${error.message}`);
  process.exitCode = 1;
} finally {
  // A runtime that failed to start rejects dispose() with the same error, already reported.
  await mf.dispose().catch(() => {});
}
