// The service with its D1 where the operators' CLI (scripts/keys.mjs, through wrangler's
// `d1 execute --local --persist-to DIR`) keeps it, and the CLI run on that database. Used by
// keys.test.mjs and import.test.mjs.
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { Service } from "./harness.mjs";

export const root = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
/** The id wrangler gives the local DB binding: wrangler.toml's database_id (no preview id). */
const DATABASE_ID = /^database_id\s*=\s*"([^"]+)"/m.exec(readFileSync(join(root, "wrangler.toml"), "utf8"))[1];

/**
 * The service with its D1 where `wrangler d1 execute --local --persist-to DIR` keeps it:
 * miniflare storage under DIR/v3, the database named by its database_id.
 */
export class CliService extends Service {
  constructor(vars) {
    super(vars);
    rmSync(this.persist, { recursive: true, force: true });
    this.persistTo = mkdtempSync(join(tmpdir(), "airport-keys-"));
    this.persist = join(this.persistTo, "v3");
  }

  worker() {
    return { ...super.worker(), d1Databases: { DB: DATABASE_ID } };
  }

  async stop() {
    await super.stop();
    rmSync(this.persistTo, { recursive: true, force: true });
  }

  /** Runs the CLI on the service's database: { code, stdout, stderr }. */
  keys(...args) {
    return new Promise((resolve) => {
      execFile(
        process.execPath,
        [join(root, "scripts", "keys.mjs"), ...args, "--persist-to", this.persistTo],
        { cwd: root },
        (error, stdout, stderr) => resolve({ code: error ? error.code : 0, stdout, stderr }),
      );
    });
  }

  /** Runs the CLI and asserts that it succeeded. */
  async ok(...args) {
    let run = await this.keys(...args);
    // Locally the CLI's wrangler and the running service are two processes on one SQLite file:
    // a write can meet the service's re-check reading it ("Failed to get session commit token:
    // internal error"). Such a run changed nothing, so it is tried again.
    for (let retry = 0; retry < 2 && run.code !== 0 && /internal error/.test(run.stderr); retry++) {
      run = await this.keys(...args);
    }
    assert.equal(run.code, 0, `keys ${args.join(" ")} → ${run.code}: ${run.stderr}`);
    return run;
  }

  async rows(sql) {
    return (await this.db.prepare(sql).all()).results;
  }

  /** The HTTP status a connect with `key` gets now: 101 when the upgrade succeeds (then closed). */
  connectStatus(key) {
    return this.reject(key, "EGLL").then(
      (refused) => refused.status,
      () => 101,
    );
  }
}
