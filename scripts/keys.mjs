#!/usr/bin/env node
// Operators' API key and account management, through `wrangler d1 execute DB`: the local D1
// database (the one `scripts/dev.sh` uses) by default, the deployed one with --remote.
// Run `node scripts/keys.mjs help` for the commands; `import` reads the running service's
// people, keys and bans from an export of its database. Keys are printed once, by `create`, and
// stored only as the lowercase hex SHA-256 of the whole key, as the Worker looks them up
// (protocol/src/account.rs).
//
// Every argument is checked against a strict shape (cid: digits; hashes: hex; roles and times
// from fixed forms) before any SQL is run, and only such checked values are put into SQL:
// wrangler's `d1 execute` takes no bound parameters.
import { spawnSync } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
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
  list [--cid N] [--json]       accounts, roles, bans and their keys' hash prefixes (and which
                                keys an import stored)
  import FILE [--role R]        the running service's people, keys and bans (its tables users
                                and bans), from FILE: the SQL that
                                  wrangler d1 export ITS_DATABASE --remote --output FILE
                                writes (other tables are passed over), or JSON:
                                  {"users": [rows], "bans": [rows]}
                                with at least vatsim_id and api_key (users), vatsim_id and
                                expires_at (bans; null for a ban without end), or the answer of
                                  wrangler d1 execute ITS_DATABASE --remote --json \\
                                    --command "SELECT * FROM users; SELECT * FROM bans"
                                For each person: account vatsim_id, created with role R (default
                                observer) if new, else keeping its role; the SHA-256 of their
                                key is stored, and keys an earlier import stored for them that
                                are no longer their key are revoked (keys from create are never
                                touched). The export decides their ban: one in force bans them
                                (through expires_at, or without end); none or an expired one
                                (skipped, said why) lifts any ban. A second row for a vatsim_id
                                or a key, and a ban of no one imported, are skipped and said why.
                                All in one transaction; running it again changes nothing. Prints
                                a line per person (imported, updated and what changed, or
                                unchanged) and per skipped row, then the totals.

Roles: ${ROLES.join(", ")}.
A malformed row in an import (vatsim_id not digits, api_key not BARS_ and 64 lowercase hex,
expires_at not YYYY-MM-DD HH:MM:SS, a column missing) is named, and nothing is imported.
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
  import: ["role"],
};
const BOOLEAN = new Set(["remote", "json"]);
const POSITIONAL = { revoke: 1, import: 1 };

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
const CID = /^[0-9]{1,20}$/;

function checkCid(value, { required = true } = {}) {
  if (value === undefined) {
    if (required) fail("--cid N is required");
    return undefined;
  }
  if (!CID.test(value)) fail(`bad cid '${value}': digits only`);
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
  const utc = utcMs([y, mo, d, h, mi, s, ms.padEnd(3, "0")]);
  if (utc === undefined || Number(oh) > 23 || Number(om) > 59) fail(`bad time '${value}': no such date or time`);
  const offset = (sign === "-" ? -1 : 1) * (Number(oh) * 60 + Number(om)) * 60_000;
  return utc - offset;
}

/** Epoch ms of a UTC date and time given as digit strings; undefined if there is no such time. */
function utcMs(parts) {
  const [y, mo, d, h, mi, s, ms] = parts.map(Number);
  const daysInMonth = new Date(Date.UTC(y, mo, 0)).getUTCDate();
  if (mo < 1 || mo > 12 || d < 1 || d > daysInMonth || h > 23 || mi > 59 || s > 59) return undefined;
  return Date.UTC(y, mo - 1, d, h, mi, s, ms);
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

/**
 * Runs SQL through `wrangler d1 execute DB`; resolves with each statement's rows. Locally the
 * statements run in one transaction (a failing one leaves nothing of the others). With
 * `asFile` the SQL goes in a file (`--file`), for more SQL than one command-line argument
 * holds; remotely wrangler then imports the file whole or not at all, and answers with a
 * summary, not rows.
 */
function execute(opts, sql, { asFile = false } = {}) {
  const where = opts.remote ? ["--remote"] : ["--local", ...(opts["persist-to"] ? ["--persist-to", opts["persist-to"]] : [])];
  const bin = join(root, "node_modules", ".bin");
  const wrangler = existsSync(join(bin, "wrangler")) ? join(bin, "wrangler") : "wrangler";
  // node_modules/.bin first, so that wrangler runs on the project's Node (it needs Node 22).
  const env = { ...process.env, PATH: `${bin}${delimiter}${process.env.PATH ?? ""}` };
  const dir = asFile ? mkdtempSync(join(tmpdir(), "keys-")) : undefined;
  let input = ["--command", sql];
  if (dir) {
    writeFileSync(join(dir, "statements.sql"), sql);
    // --yes: no prompt for a remote file (the import is the operator's one request).
    input = ["--file", join(dir, "statements.sql"), "--yes"];
  }
  let run;
  try {
    run = spawnSync(wrangler, ["d1", "execute", "DB", ...where, "--json", ...input], {
      cwd: root,
      env,
      encoding: "utf8",
      maxBuffer: 64 * 1024 * 1024,
      stdio: ["inherit", "pipe", "pipe"],
    });
  } finally {
    if (dir) rmSync(dir, { recursive: true, force: true });
  }
  if (run.error) throw new Error(`could not run wrangler: ${run.error.message}`);
  let output;
  try {
    output = JSON.parse(run.stdout);
  } catch {
    output = undefined;
  }
  if (run.status !== 0 || !Array.isArray(output)) {
    const detail = output?.error?.text ?? (`${run.stdout}\n${run.stderr}`.trim() || `exit status ${run.status}`);
    const hint = /no such (table|column)/.test(detail)
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
// Import: the running service's people, keys and bans (its tables `users` and `bans`)

/** Its keys, stored there in plain text: BARS_ and 64 lowercase hex digits. */
const RUNNING_SERVICE_KEY = /^BARS_[0-9a-f]{64}$/;
/** Its ban ends: `YYYY-MM-DD HH:MM:SS` UTC as SQLite writes them, or ISO with T and Z. */
const EXPIRES_AT = /^(\d{4})-(\d{2})-(\d{2})[ T](\d{2}):(\d{2}):(\d{2})(?:\.\d+)?Z?$/;
const IMPORTED_TABLES = ["users", "bans"];

/** SQL text → tokens { type: word | number | string | blob | ident | punct, value, line }. */
function sqlTokens(text) {
  const tokens = [];
  const WORD = /[A-Za-z_][A-Za-z0-9_$]*/y;
  const NUMBER = /(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?/y;
  const CLOSING = { "'": "'", '"': '"', "`": "`", "[": "]" };
  let line = 1;
  let i = 0;
  const skipTo = (end) => {
    for (; i < end; i++) if (text.charCodeAt(i) === 10) line++;
  };
  while (i < text.length) {
    const c = text[i];
    const at = line;
    if (/\s/.test(c)) {
      skipTo(i + 1);
      continue;
    }
    if (text.startsWith("--", i)) {
      const end = text.indexOf("\n", i);
      skipTo(end < 0 ? text.length : end);
      continue;
    }
    if (text.startsWith("/*", i)) {
      const end = text.indexOf("*/", i + 2);
      if (end < 0) fail(`unreadable SQL: the comment opened on line ${at} is never closed`);
      skipTo(end + 2);
      continue;
    }
    const blob = (c === "x" || c === "X") && text[i + 1] === "'";
    const close = blob ? "'" : CLOSING[c];
    if (close) {
      // A quoted string or name; a doubled quote stands for itself.
      let value = "";
      let from = i + (blob ? 2 : 1);
      for (;;) {
        const end = text.indexOf(close, from);
        if (end < 0) fail(`unreadable SQL: the quote opened on line ${at} is never closed`);
        value += text.slice(from, end);
        if (close !== "]" && text[end + 1] === close) {
          value += close;
          from = end + 2;
          continue;
        }
        skipTo(end + 1);
        break;
      }
      tokens.push({ type: blob ? "blob" : c === "'" ? "string" : "ident", value, line: at });
      continue;
    }
    let matched = false;
    for (const [type, pattern] of [["number", NUMBER], ["word", WORD]]) {
      pattern.lastIndex = i;
      const m = pattern.exec(text);
      if (m) {
        tokens.push({ type, value: m[0], line: at });
        i += m[0].length;
        matched = true;
        break;
      }
    }
    if (!matched) {
      tokens.push({ type: "punct", value: c, line: at });
      i++;
    }
  }
  return tokens;
}

/** Reads one statement's tokens in order. */
class SqlCursor {
  constructor(tokens) {
    this.tokens = tokens;
    this.at = 0;
  }

  peek() {
    return this.tokens[this.at];
  }

  next() {
    return this.tokens[this.at++];
  }

  /** Takes the next token if it is this keyword. */
  word(keyword) {
    const t = this.peek();
    if (t?.type !== "word" || t.value.toUpperCase() !== keyword) return false;
    this.at++;
    return true;
  }

  /** Takes the next token if it is this punctuation. */
  punct(mark) {
    const t = this.peek();
    if (t?.type !== "punct" || t.value !== mark) return false;
    this.at++;
    return true;
  }

  /** A name, bare or quoted (a `schema.` before it is passed over), lowercase; or undefined. */
  name() {
    const t = this.peek();
    if (t?.type !== "word" && t?.type !== "ident") return undefined;
    this.at++;
    return this.punct(".") ? this.name() : t.value.toLowerCase();
  }
}

/**
 * One value as `wrangler d1 export` writes it: NULL, a number, a 'string', X'blob' (kept as
 * { blob }), or replace('…\n…','\n',char(10)) for line breaks.
 */
function sqlValue(cursor, where) {
  const t = cursor.next();
  const unreadable = () => fail(`${where}: unreadable value${t ? ` on line ${t.line}` : ""}`);
  if (t?.type === "string") return t.value;
  if (t?.type === "number") return Number(t.value);
  if (t?.type === "blob") return { blob: t.value };
  if (t?.type === "punct" && (t.value === "-" || t.value === "+")) {
    const number = cursor.next();
    if (number?.type !== "number") unreadable();
    return Number(`${t.value}${number.value}`);
  }
  if (t?.type !== "word") unreadable();
  const name = t.value.toUpperCase();
  if (name === "NULL") return null;
  if ((name === "REPLACE" || name === "CHAR") && cursor.punct("(")) {
    const args = [];
    do args.push(sqlValue(cursor, where));
    while (cursor.punct(","));
    if (!cursor.punct(")")) unreadable();
    if (name === "CHAR" && args.length === 1 && Number.isInteger(args[0]) && args[0] >= 0 && args[0] <= 0x10ffff) {
      return String.fromCodePoint(args[0]);
    }
    if (name === "REPLACE" && args.length === 3 && args.every((a) => typeof a === "string")) {
      return args[1] === "" ? args[0] : args[0].split(args[1]).join(args[2]);
    }
  }
  return unreadable();
}

/**
 * The rows of `users` and `bans` in SQL as `wrangler d1 export` writes it: one
 * `INSERT INTO "table" ("column",…) VALUES(…)` per row. Other statements and tables are passed
 * over; an insert into `users` or `bans` that cannot be read is refused, as is an export that
 * lacks either table (an export without `bans` would lift every ban).
 */
function readSqlExport(text) {
  const tokens = sqlTokens(text);
  const found = { users: [], bans: [] };
  const tables = new Set();
  let start = 0;
  for (let end = 0; end <= tokens.length; end++) {
    if (end < tokens.length && !(tokens[end].type === "punct" && tokens[end].value === ";")) continue;
    const cursor = new SqlCursor(tokens.slice(start, end));
    start = end + 1;
    if (cursor.word("CREATE")) {
      if (!cursor.word("TABLE")) continue;
      if (cursor.word("IF") && !(cursor.word("NOT") && cursor.word("EXISTS"))) continue;
      tables.add(cursor.name());
      continue;
    }
    if (!cursor.word("INSERT") && !cursor.word("REPLACE")) continue;
    if (cursor.word("OR")) cursor.next();
    if (!cursor.word("INTO")) continue;
    const first = cursor.peek();
    const table = cursor.name();
    if (!IMPORTED_TABLES.includes(table)) continue;
    tables.add(table);
    const rows = found[table];
    const here = (line) => `${table} row ${rows.length + 1} (line ${line})`;
    const columns = [];
    if (!cursor.punct("(")) fail(`${here(first.line)}: no column list`);
    do columns.push(cursor.name());
    while (cursor.punct(","));
    if (columns.includes(undefined) || !cursor.punct(")") || !cursor.word("VALUES")) {
      fail(`${here(first.line)}: unreadable column list`);
    }
    do {
      const where = here(cursor.peek()?.line ?? first.line);
      if (!cursor.punct("(")) fail(`${where}: unreadable values`);
      const values = [];
      do values.push(sqlValue(cursor, where));
      while (cursor.punct(","));
      if (!cursor.punct(")")) fail(`${where}: unreadable values`);
      if (values.length !== columns.length) fail(`${where}: ${columns.length} columns but ${values.length} values`);
      rows.push({ where, values: new Map(columns.map((column, k) => [column, values[k]])) });
    } while (cursor.punct(","));
    if (cursor.peek()) fail(`${table} row ${rows.length} (line ${first.line}): unreadable SQL after the values`);
  }
  for (const table of IMPORTED_TABLES) {
    if (!tables.has(table)) fail(`the export has no table ${table}: export both users and bans`);
  }
  return found;
}

const JSON_SHAPE = `{"users": [{"vatsim_id": "…", "api_key": "…", …}], "bans": [{"vatsim_id": "…", "expires_at": "…" or null, …}]}`;

/**
 * The rows of `users` and `bans` as JSON: `{"users": [rows], "bans": [rows]}`, or the array
 * `wrangler d1 execute --json --command "SELECT * FROM users; SELECT * FROM bans"` prints.
 */
function readJsonExport(text) {
  let data;
  try {
    data = JSON.parse(text);
  } catch (error) {
    fail(`unreadable JSON: ${error.message}`);
  }
  let tables;
  if (Array.isArray(data) && data.length === 2 && data.every((answer) => Array.isArray(answer?.results))) {
    tables = { users: data[0].results, bans: data[1].results };
  } else if (Array.isArray(data?.users) && Array.isArray(data?.bans)) {
    tables = data;
  } else {
    fail(`unreadable JSON: expected ${JSON_SHAPE}, or what wrangler d1 execute --json prints for "SELECT * FROM users; SELECT * FROM bans"`);
  }
  const found = {};
  for (const table of IMPORTED_TABLES) {
    found[table] = tables[table].map((row, k) => {
      const where = `${table} row ${k + 1}`;
      if (row === null || typeof row !== "object" || Array.isArray(row)) fail(`${where}: not an object`);
      return { where, values: new Map(Object.entries(row).map(([column, value]) => [column.toLowerCase(), value])) };
    });
  }
  return found;
}

/** An export as SQL (`wrangler d1 export`) or JSON, told apart by its first character. */
function readExport(text) {
  const body = text.replace(/^\uFEFF/, "");
  return /^\s*[[{]/.test(body) ? readJsonExport(body) : readSqlExport(body);
}

function column(row, name) {
  if (!row.values.has(name)) fail(`${row.where}: no column ${name}`);
  return row.values.get(name);
}

/** A value for a message: short text as it is, never anything long enough to be a key. */
function shown(value) {
  if (typeof value === "string") return value.length <= 20 ? JSON.stringify(value) : `(${value.length} characters)`;
  return value === null ? "NULL" : `(${typeof value === "object" ? "not text" : `a ${typeof value}`})`;
}

function rowCid(row) {
  const cid = column(row, "vatsim_id");
  if (typeof cid !== "string" || !CID.test(cid)) fail(`${row.where}: vatsim_id ${shown(cid)} is not a string of digits`);
  return cid;
}

/** A users row → { where, cid, hash }; only the key's hash is kept. */
function importedUser(row) {
  const cid = rowCid(row);
  const key = column(row, "api_key");
  if (typeof key !== "string" || !RUNNING_SERVICE_KEY.test(key)) {
    fail(`${row.where}: api_key is not BARS_ and 64 lowercase hex digits`);
  }
  return { where: row.where, cid, hash: hashKey(key) };
}

/**
 * A bans row → { where, cid, expires }: expires is epoch ms of the last second in force, read as
 * SQLite's unixepoch() reads it (whole seconds), or null for a ban without end.
 */
function importedBan(row) {
  const cid = rowCid(row);
  const expiresAt = column(row, "expires_at");
  if (expiresAt === null) return { where: row.where, cid, expires: null };
  const m = typeof expiresAt === "string" ? EXPIRES_AT.exec(expiresAt) : null;
  const expires = m ? utcMs([...m.slice(1, 7), "0"]) : undefined;
  if (expires === undefined) fail(`${row.where}: expires_at ${shown(expiresAt)} is not YYYY-MM-DD HH:MM:SS`);
  return { where: row.where, cid, expires };
}

const prefix = (hash) => hash.slice(0, PREFIX_SHOWN);

/**
 * What an import changes, from the rows read and the database as it is (`accounts`, `keys`):
 * the statements to run, in one transaction, and a line per person and per skipped row.
 * A person's account gets role `role` if new; their key's hash is stored (origin 'import'),
 * and keys an earlier import stored for them that are no longer theirs are revoked; their ban
 * is the export's. Values in the SQL are all checked: cids digits, hashes hex, a known role.
 */
function planImport({ users, bans }, { accounts, keys }, role, now) {
  const accountByCid = new Map(accounts.map((a) => [a.cid, a]));
  const keyByHash = new Map(keys.map((k) => [k.key_hash, k]));
  const importedKeysByCid = new Map();
  for (const k of keys) {
    if (k.origin === "import" && k.revoked_at === null) {
      importedKeysByCid.set(k.cid, [...(importedKeysByCid.get(k.cid) ?? []), k.key_hash]);
    }
  }
  const totals = { imported: 0, updated: 0, unchanged: 0, skipped: 0 };
  const skipped = (row, reason) => {
    totals.skipped++;
    return `skipped ${row.where}, vatsim_id ${row.cid}: ${reason}`;
  };

  // The rows taken: the first per vatsim_id and per key.
  const entries = [];
  const people = new Map();
  const byHash = new Map();
  const listed = new Set(users.map((u) => u.cid));
  for (const user of users) {
    const sameCid = people.get(user.cid);
    const sameKey = byHash.get(user.hash);
    const stored = keyByHash.get(user.hash);
    if (sameCid) entries.push(skipped(user, `duplicate of ${sameCid.where}`));
    else if (sameKey) entries.push(skipped(user, `key already used by ${sameKey.where}`));
    else if (stored && stored.cid !== user.cid) entries.push(skipped(user, `key already stored for account ${stored.cid}`));
    else {
      people.set(user.cid, user);
      byHash.set(user.hash, user);
      entries.push(user);
    }
  }

  // The bans in force, of people imported.
  const banSkips = [];
  const banRows = new Map();
  const inForce = new Map();
  for (const ban of bans) {
    const first = banRows.get(ban.cid);
    if (first) {
      banSkips.push(skipped(ban, `duplicate of ${first.where}`));
      continue;
    }
    banRows.set(ban.cid, ban);
    if (!people.has(ban.cid)) {
      banSkips.push(skipped(ban, listed.has(ban.cid) ? "no user imported (its users row was skipped)" : "no user with this vatsim_id"));
    } else if (ban.expires !== null && ban.expires + 1 <= now) {
      banSkips.push(skipped(ban, `ban expired ${iso(ban.expires)}`));
    } else {
      inForce.set(ban.cid, ban);
    }
  }

  const newAccounts = [];
  const newKeys = [];
  const revoked = [];
  const banChanges = [];
  const lines = entries.map((entry) => {
    if (typeof entry === "string") return entry;
    const { cid, hash } = entry;
    const ban = inForce.get(cid);
    const banned = ban ? 1 : 0;
    // In force through the last second, as the Worker reads the same table (NETWORK_PEOPLE).
    const bannedUntil = ban?.expires != null ? ban.expires + 1 : null;
    const banText = !ban ? "not banned" : ban.expires === null ? "banned without end" : `banned until ${iso(ban.expires)}`;
    const existing = accountByCid.get(cid);
    const stored = keyByHash.get(hash);
    const replaced = (importedKeysByCid.get(cid) ?? []).filter((h) => h !== hash);
    const changes = [];
    if (!existing) {
      newAccounts.push(`(${quote(cid)}, ${quote(role)}, ${banned}, ${bannedUntil ?? "NULL"})`);
    } else if (existing.banned !== banned || existing.banned_until !== bannedUntil) {
      banChanges.push(`UPDATE accounts SET banned = ${banned}, banned_until = ${bannedUntil ?? "NULL"} WHERE cid = ${quote(cid)}`);
      changes.push(ban ? banText : "unbanned");
    }
    if (!stored) newKeys.push(`(${quote(hash)}, ${quote(cid)}, ${now}, 'import')`);
    revoked.push(...replaced.map(quote));
    const old = replaced.map(prefix).join(", ");
    if (!stored) changes.unshift(replaced.length > 0 ? `key ${old} replaced by ${prefix(hash)}` : `key ${prefix(hash)} added`);
    else if (replaced.length > 0) changes.unshift(`old key ${old} revoked`);
    // An operator's revocation of an imported key stands; the person's next key comes in.
    const note = stored?.revoked_at != null ? ` (key ${prefix(hash)} is revoked here and stays revoked)` : "";
    if (!existing) {
      totals.imported++;
      return `imported ${cid}: ${role}, key ${prefix(hash)}, ${banText}`;
    }
    if (changes.length > 0) {
      totals.updated++;
      return `updated ${cid}: ${changes.join("; ")}${note}`;
    }
    totals.unchanged++;
    return `unchanged ${cid}${note}`;
  });
  // Many rows to a statement: thousands of statements take minutes where these take seconds.
  const sql = [
    ...chunks(newAccounts).map((rows) => `INSERT INTO accounts (cid, role, banned, banned_until) VALUES ${rows.join(", ")}`),
    ...banChanges,
    ...chunks(newKeys).map((rows) => `INSERT INTO api_keys (key_hash, cid, created_at, origin) VALUES ${rows.join(", ")}`),
    ...chunks(revoked).map((hashes) => `UPDATE api_keys SET revoked_at = ${now} WHERE key_hash IN (${hashes.join(", ")}) AND revoked_at IS NULL`),
  ];
  return { sql, lines: [...lines, ...banSkips], totals };
}

/** Groups of at most 200 (D1 takes statements of up to 100 KB; these rows are < 100 bytes). */
function chunks(items, size = 200) {
  const groups = [];
  for (let i = 0; i < items.length; i += size) groups.push(items.slice(i, i + size));
  return groups;
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

  async import({ opts, args: [file] }) {
    const role = checkRole(opts.role ?? "observer");
    let text;
    try {
      text = readFileSync(file, "utf8");
    } catch (error) {
      fail(`cannot read ${file}: ${error.code ?? error.message}`);
    }
    // Every row is checked before the database is asked anything.
    const rows = readExport(text);
    const found = { users: rows.users.map(importedUser), bans: rows.bans.map(importedBan) };
    const [accounts, keys] = execute(
      opts,
      "SELECT cid, role, banned, banned_until FROM accounts; SELECT key_hash, cid, origin, revoked_at FROM api_keys",
    );
    const { sql, lines, totals } = planImport(found, { accounts, keys }, role, Date.now());
    // One call, as a file: thousands of people are more SQL than one argument holds.
    if (sql.length > 0) execute(opts, sql.join(";\n"), { asFile: true });
    for (const line of lines) console.log(line);
    console.log(Object.entries(totals).map(([what, n]) => `${what} ${n}`).join(", "));
  },

  async list({ opts }) {
    const cid = checkCid(opts.cid, { required: false });
    const where = cid === undefined ? "" : `WHERE a.cid = ${quote(cid)}`;
    const [rows] = execute(
      opts,
      `SELECT a.cid, a.role, a.banned, a.banned_until, k.key_hash, k.created_at, k.revoked_at, k.origin
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
          imported: row.origin === "import",
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
        console.log(`  ${k.hashPrefix}  ${k.imported ? "imported" : "created"} ${k.created}${k.revoked ? `  REVOKED ${k.revoked}` : ""}`);
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
