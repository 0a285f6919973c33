#!/usr/bin/env node
// Operators' API key and account management, through `wrangler d1 execute DB`: the local D1
// database (the one `scripts/dev.sh` uses) by default, the deployed one with --remote.
// Run `node scripts/keys.mjs help` for the commands. Keys are printed once, by `create`, and
// stored only as the lowercase hex SHA-256 of the whole key, as the Worker looks them up
// (protocol/src/account.rs).
//
// Every argument is checked against a strict shape (cid: digits; hashes: hex; roles and times
// from fixed forms) before any SQL is run, and only such checked values are put into SQL:
// wrangler's `d1 execute` takes no bound parameters.
import { spawnSync } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { delimiter, dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const ROLES = ["controller", "pilot", "observer"];
/** Hash prefixes shown by `list` and accepted by `revoke`: at least this many hex digits. */
const PREFIX_SHOWN = 12;
const PREFIX_MIN = 8;

const USAGE = `Usage: node scripts/keys.mjs <command> [options]

Commands:
  create --cid N [--role R]     new key for account N, printed once on stdout; creates the
                                account with role R if it does not exist (R required then);
                                an existing account must already have role R if R is given
  revoke KEY|HASH_PREFIX        revoke one key: the key itself, or ${PREFIX_MIN}-64 hex digits of its hash
  ban --cid N [--until TIME]    ban account N, without end or until TIME (ISO 8601:
                                2030-01-31, or 2030-01-31T18:00Z / 2030-01-31T18:00:00+01:00)
  unban --cid N                 lift a ban
  role --cid N --role R         change account N's role (for all its keys)
  list [--cid N] [--json]       accounts, roles, bans and their keys' hash prefixes

Roles: ${ROLES.join(", ")}.
Options for every command:
  --remote            the deployed database (wrangler's login or CLOUDFLARE_API_TOKEN)
  --persist-to DIR    local database under DIR (wrangler's --persist-to); default .wrangler/state
Bad input changes nothing and exits with status 2; a failed database call exits with 1.`;

class UsageError extends Error {}

function fail(message) {
  throw new UsageError(message);
}

// ---------------------------------------------------------------------------------------------
// Arguments

const FLAGS = {
  create: ["cid", "role"],
  revoke: [],
  ban: ["cid", "until"],
  unban: ["cid"],
  role: ["cid", "role"],
  list: ["cid", "json"],
};
const BOOLEAN = new Set(["remote", "json"]);
const POSITIONAL = { revoke: 1 };

/** argv → { command, opts, args }; throws UsageError on anything unexpected. */
function parseArgs(argv) {
  const [command, ...rest] = argv;
  if (command === undefined || command === "help" || command === "--help" || command === "-h") {
    return { command: "help", opts: {}, args: [] };
  }
  if (!Object.hasOwn(FLAGS, command)) fail(`unknown command '${command}' (node scripts/keys.mjs help)`);
  const allowed = new Set([...FLAGS[command], "remote", "persist-to"]);
  const opts = {};
  const args = [];
  for (let i = 0; i < rest.length; i++) {
    const arg = rest[i];
    if (!arg.startsWith("--")) {
      args.push(arg);
      continue;
    }
    let [name, value] = arg.slice(2).split(/=(.*)/s);
    if (!allowed.has(name)) fail(`'${command}' takes no option --${name}`);
    if (Object.hasOwn(opts, name)) fail(`--${name} given twice`);
    if (BOOLEAN.has(name)) {
      if (value !== undefined) fail(`--${name} takes no value`);
      opts[name] = true;
      continue;
    }
    if (value === undefined) {
      if (i + 1 >= rest.length) fail(`--${name} needs a value`);
      value = rest[++i];
    }
    opts[name] = value;
  }
  const positional = POSITIONAL[command] ?? 0;
  if (args.length !== positional) {
    fail(positional ? `'${command}' takes exactly ${positional} argument` : `'${command}' takes no arguments (got '${args[0]}')`);
  }
  if (opts.remote && opts["persist-to"] !== undefined) fail("--persist-to is for the local database, not with --remote");
  if (opts["persist-to"] === "") fail("--persist-to needs a directory");
  return { command, opts, args };
}

/** A cid: digits only (accounts.cid's CHECK), at most 20 of them. */
function checkCid(value, { required = true } = {}) {
  if (value === undefined) {
    if (required) fail("--cid N is required");
    return undefined;
  }
  if (!/^[0-9]{1,20}$/.test(value)) fail(`bad cid '${value}': digits only`);
  return value;
}

function checkRole(value) {
  if (!ROLES.includes(value)) fail(`unknown role '${value}': one of ${ROLES.join(", ")}`);
  return value;
}

/**
 * An ISO 8601 time → epoch ms: a date (midnight UTC) or a date and time with Z or an offset.
 * Impossible dates (2030-02-30) and times without a zone are refused rather than guessed.
 */
function parseTime(value) {
  const m =
    /^(\d{4})-(\d{2})-(\d{2})(?:T(\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,3}))?)?(Z|([+-])(\d{2}):(\d{2})))?$/.exec(
      value,
    );
  if (!m) fail(`bad time '${value}': use 2030-01-31, 2030-01-31T18:00Z or 2030-01-31T18:00:00+01:00`);
  const [, y, mo, d, h = "0", mi = "0", s = "0", ms = "0", , sign, oh = "0", om = "0"] = m;
  const n = (x) => Number(x);
  const daysInMonth = new Date(Date.UTC(n(y), n(mo), 0)).getUTCDate();
  if (n(mo) < 1 || n(mo) > 12 || n(d) < 1 || n(d) > daysInMonth || n(h) > 23 || n(mi) > 59 || n(s) > 59 || n(oh) > 23 || n(om) > 59) {
    fail(`bad time '${value}': no such date or time`);
  }
  const offset = (sign === "-" ? -1 : 1) * (n(oh) * 60 + n(om)) * 60_000;
  return Date.UTC(n(y), n(mo) - 1, n(d), n(h), n(mi), n(s), n(ms.padEnd(3, "0"))) - offset;
}

// ---------------------------------------------------------------------------------------------
// Keys

/** A new key: BARS_ and 43 base64url characters (256 bits from the CSPRNG). */
function newKey() {
  return `BARS_${randomBytes(32).toString("base64url")}`;
}

/** What the database stores for a key: the lowercase hex SHA-256 of the whole key string. */
function hashKey(key) {
  return createHash("sha256").update(key, "utf8").digest("hex");
}

// ---------------------------------------------------------------------------------------------
// The database, through wrangler

/** Runs SQL through `wrangler d1 execute DB`; resolves with each statement's rows. */
function execute(opts, sql) {
  const where = opts.remote ? ["--remote"] : ["--local", ...(opts["persist-to"] ? ["--persist-to", opts["persist-to"]] : [])];
  const bin = join(root, "node_modules", ".bin");
  const wrangler = existsSync(join(bin, "wrangler")) ? join(bin, "wrangler") : "wrangler";
  // node_modules/.bin first, so that wrangler runs on the project's Node (it needs Node 22).
  const env = { ...process.env, PATH: `${bin}${delimiter}${process.env.PATH ?? ""}` };
  const run = spawnSync(wrangler, ["d1", "execute", "DB", ...where, "--json", "--command", sql], {
    cwd: root,
    env,
    encoding: "utf8",
    maxBuffer: 64 * 1024 * 1024,
    stdio: ["inherit", "pipe", "pipe"],
  });
  if (run.error) throw new Error(`could not run wrangler: ${run.error.message}`);
  let output;
  try {
    output = JSON.parse(run.stdout);
  } catch {
    output = undefined;
  }
  if (run.status !== 0 || !Array.isArray(output)) {
    const detail = output?.error?.text ?? (`${run.stdout}\n${run.stderr}`.trim() || `exit status ${run.status}`);
    const hint = /no such table/.test(detail)
      ? `\n(is the database migrated? wrangler d1 migrations apply DB ${opts.remote ? "--remote" : "--local"})`
      : "";
    throw new Error(`wrangler d1 execute failed: ${detail}${hint}`);
  }
  return output.map((statement) => statement.results ?? []);
}

const quote = (checked) => `'${checked}'`; // only for values checked to digits, hex or a role

function account(opts, cid) {
  const [rows] = execute(opts, `SELECT cid, role, banned, banned_until FROM accounts WHERE cid = ${quote(cid)}`);
  return rows[0];
}

function requireAccount(opts, cid) {
  const found = account(opts, cid);
  if (!found) fail(`no account with cid ${cid}`);
  return found;
}

const iso = (ms) => (ms === null || ms === undefined ? "" : new Date(ms).toISOString());

function describeBan(row, now = Date.now()) {
  if (!row.banned) return "not banned";
  if (row.banned_until === null) return "banned";
  return row.banned_until > now ? `banned until ${iso(row.banned_until)}` : `ban ended ${iso(row.banned_until)}`;
}

// ---------------------------------------------------------------------------------------------
// Commands

const commands = {
  async create({ opts }) {
    const cid = checkCid(opts.cid);
    const role = opts.role === undefined ? undefined : checkRole(opts.role);
    const existing = account(opts, cid);
    if (!existing && !role) fail(`no account with cid ${cid}: give --role to create it`);
    if (existing && role && existing.role !== role) {
      fail(`account ${cid} exists with role ${existing.role}, not ${role}; change it with 'role --cid ${cid} --role ${role}' first`);
    }
    const accountRole = existing?.role ?? role;
    const key = newKey();
    const hash = hashKey(key);
    // The key goes in only if the account (still) has the role checked above; the last
    // statement says whether it did.
    const sql = [
      ...(existing ? [] : [`INSERT INTO accounts (cid, role) VALUES (${quote(cid)}, ${quote(accountRole)}) ON CONFLICT (cid) DO NOTHING`]),
      `INSERT INTO api_keys (key_hash, cid) SELECT ${quote(hash)}, cid FROM accounts WHERE cid = ${quote(cid)} AND role = ${quote(accountRole)}`,
      `SELECT k.cid, a.role, a.banned, a.banned_until FROM api_keys k JOIN accounts a ON a.cid = k.cid WHERE k.key_hash = ${quote(hash)}`,
    ].join(";\n");
    const results = execute(opts, sql);
    const stored = results.at(-1)[0];
    if (!stored) throw new Error(`account ${cid} changed while the key was being added; nothing stored, try again`);
    console.error(
      `${existing ? "Added a key to" : "Created"} account ${cid} (${stored.role}, ${describeBan(stored)}); key hash ${hash.slice(0, PREFIX_SHOWN)}.`,
    );
    if (stored.banned && (stored.banned_until === null || stored.banned_until > Date.now())) {
      console.error("The account is banned: the key works only once it is unbanned.");
    }
    console.error("The key, shown only this once:");
    console.log(key);
  },

  async revoke({ opts, args: [target] }) {
    // 8-64 hex digits are a hash (prefix); anything else is a key, hashed as the Worker does.
    if (target.length === 0) fail("give the key or a hash prefix to revoke");
    const isHash = new RegExp(`^[0-9a-fA-F]{${PREFIX_MIN},64}$`).test(target);
    const prefix = isHash ? target.toLowerCase() : hashKey(target);
    const [matches] = execute(
      opts,
      `SELECT key_hash, cid, created_at, revoked_at FROM api_keys WHERE substr(key_hash, 1, ${prefix.length}) = ${quote(prefix)} ORDER BY created_at LIMIT 10`,
    );
    if (matches.length === 0) fail(isHash ? `no key whose hash starts with ${prefix}` : "no such key (the key given hashes to no stored key)");
    if (matches.length > 1) {
      const list = matches.map((k) => `  ${k.key_hash.slice(0, 16)}  cid ${k.cid}`).join("\n");
      fail(`hash prefix ${prefix} is ambiguous; give more digits:\n${list}`);
    }
    const [k] = matches;
    if (k.revoked_at !== null) {
      console.error(`Key ${k.key_hash.slice(0, PREFIX_SHOWN)} of account ${k.cid} was already revoked at ${iso(k.revoked_at)}; nothing changed.`);
      return;
    }
    execute(opts, `UPDATE api_keys SET revoked_at = ${Date.now()} WHERE key_hash = ${quote(k.key_hash)} AND revoked_at IS NULL`);
    console.error(`Revoked key ${k.key_hash.slice(0, PREFIX_SHOWN)} of account ${k.cid}.`);
  },

  async ban({ opts }) {
    const cid = checkCid(opts.cid);
    const until = opts.until === undefined ? null : parseTime(opts.until);
    if (until !== null && until <= Date.now()) fail(`--until ${opts.until} is not in the future`);
    requireAccount(opts, cid);
    execute(opts, `UPDATE accounts SET banned = 1, banned_until = ${until ?? "NULL"} WHERE cid = ${quote(cid)}`);
    console.error(`Banned account ${cid}${until === null ? " without end" : ` until ${iso(until)}`}.`);
  },

  async unban({ opts }) {
    const cid = checkCid(opts.cid);
    const found = requireAccount(opts, cid);
    if (!found.banned) {
      console.error(`Account ${cid} is not banned; nothing changed.`);
      return;
    }
    execute(opts, `UPDATE accounts SET banned = 0, banned_until = NULL WHERE cid = ${quote(cid)}`);
    console.error(`Unbanned account ${cid}.`);
  },

  async role({ opts }) {
    const cid = checkCid(opts.cid);
    if (opts.role === undefined) fail("--role R is required");
    const role = checkRole(opts.role);
    const found = requireAccount(opts, cid);
    execute(opts, `UPDATE accounts SET role = ${quote(role)} WHERE cid = ${quote(cid)}`);
    console.error(`Account ${cid}: role ${found.role} → ${role}.`);
  },

  async list({ opts }) {
    const cid = checkCid(opts.cid, { required: false });
    const where = cid === undefined ? "" : `WHERE a.cid = ${quote(cid)}`;
    const [rows] = execute(
      opts,
      `SELECT a.cid, a.role, a.banned, a.banned_until, k.key_hash, k.created_at, k.revoked_at
       FROM accounts a LEFT JOIN api_keys k ON k.cid = a.cid ${where}
       ORDER BY CAST(a.cid AS INTEGER), a.cid, k.created_at, k.key_hash`,
    );
    const accounts = [];
    for (const row of rows) {
      let entry = accounts.at(-1);
      if (entry?.cid !== row.cid) {
        entry = { cid: row.cid, role: row.role, banned: Boolean(row.banned), bannedUntil: iso(row.banned_until) || null, keys: [] };
        entry.ban = describeBan(row);
        accounts.push(entry);
      }
      if (row.key_hash !== null) {
        entry.keys.push({
          hashPrefix: row.key_hash.slice(0, PREFIX_SHOWN),
          created: iso(row.created_at),
          revoked: iso(row.revoked_at) || null,
        });
      }
    }
    if (cid !== undefined && accounts.length === 0) fail(`no account with cid ${cid}`);
    if (opts.json) {
      console.log(JSON.stringify(accounts.map(({ ban, ...a }) => a), null, 2));
      return;
    }
    for (const a of accounts) {
      console.log(`${a.cid}  ${a.role}  ${a.ban}`);
      for (const k of a.keys) {
        console.log(`  ${k.hashPrefix}  created ${k.created}${k.revoked ? `  REVOKED ${k.revoked}` : ""}`);
      }
      if (a.keys.length === 0) console.log("  (no keys)");
    }
    if (accounts.length === 0) console.log("(no accounts)");
  },
};

async function main(argv) {
  const parsed = parseArgs(argv);
  if (parsed.command === "help") {
    console.log(USAGE);
    return;
  }
  await commands[parsed.command](parsed);
}

main(process.argv.slice(2)).catch((error) => {
  console.error(`keys: ${error.message}`);
  process.exitCode = error instanceof UsageError ? 2 : 1;
});
