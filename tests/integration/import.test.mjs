// `keys.mjs import`: the running service's people, keys and bans (its tables users and bans),
// read from an export of its database into this service's accounts, end to end against the D1
// database the Worker under test reads. What an import does (the CLI's help says the same):
// - an account per users row (cid = vatsim_id), created with --role (default observer); an
//   existing account keeps its role;
// - the SHA-256 of the row's api_key is stored for it (origin 'import'); keys an earlier import
//   stored for that cid that are no longer its key are revoked (the key was regenerated on the
//   website); keys made with `create` are never touched;
// - the export decides each imported person's ban: one in force bans them (banned_until the
//   millisecond after expires_at, or without end); none or an expired one (skipped, with the
//   reason) lifts any ban;
// - a second row for a vatsim_id or for a key, and a ban of no one imported, are skipped with
//   the reason;
// - a malformed row (or unreadable file) changes nothing, exits 2 and is named;
// - all writes in one transaction; a second run changes nothing and reports everyone unchanged.
// The fixture tests/fixtures/running-service-export.sql is a real export plus two rows by hand.
// The tests run in order, each on the database the one before left.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { delimiter, join } from "node:path";
import { CliService, root } from "./cli.mjs";

const sha256 = (text) => createHash("sha256").update(text).digest("hex");
/** The fixture's keys: BARS_ and sha256("bars-import-test-N"). */
const key = (n) => `BARS_${sha256(`bars-import-test-${n}`)}`;
const shown = (n) => sha256(key(n)).slice(0, 12);
/** 2099-12-31 23:59:59 UTC, the fixture's ban end, in force through that second. */
const END_2099 = Date.UTC(2099, 11, 31, 23, 59, 59);

const FIXTURE = readFileSync(join(root, "tests", "fixtures", "running-service-export.sql"), "utf8");
const SKIPS = [
  "skipped users row 5 (line 25), vatsim_id 1300001: duplicate of users row 1 (line 21)",
  "skipped users row 6 (line 26), vatsim_id 1300006: key already used by users row 2 (line 22)",
  "skipped bans row 3 (line 37), vatsim_id 1300004: ban expired 2020-01-01T00:00:00.000Z",
  "skipped bans row 4 (line 38), vatsim_id 1399999: no user with this vatsim_id",
];

let service;
let scratch;
before(async () => {
  service = await new CliService().start();
  scratch = mkdtempSync(join(tmpdir(), "airport-import-"));
});
after(async () => {
  await service?.stop();
  if (scratch) rmSync(scratch, { recursive: true, force: true });
});

/** Writes `text` as an export file in the scratch directory: its path. */
function exportFile(name, text) {
  const path = join(scratch, name);
  writeFileSync(path, text);
  return path;
}

/** `text` with the first `from` (which must be there) replaced by `to`. */
function edited(text, from, to) {
  assert.ok(text.includes(from), `the export holds ${from}`);
  return text.replace(from, to);
}

/** The text without the one line that holds `marker`. */
function withoutLine(text, marker) {
  const all = text.split("\n");
  assert.equal(all.filter((line) => line.includes(marker)).length, 1, `one line holds ${marker}`);
  return all.filter((line) => !line.includes(marker)).join("\n");
}

const lines = (run) => run.stdout.trim().split("\n");

const snapshot = async () => ({
  accounts: await service.rows("SELECT * FROM accounts ORDER BY cid"),
  keys: await service.rows("SELECT * FROM api_keys ORDER BY key_hash"),
});

async function importedKeys() {
  return service.rows(
    "SELECT key_hash, cid, origin, revoked_at IS NOT NULL AS revoked FROM api_keys WHERE cid LIKE '13%' ORDER BY cid, created_at",
  );
}

test("an export's people, keys and bans are imported; a second run changes nothing", async () => {
  // An account of one of the people, made here before the cutover, with its own key.
  const own = (await service.ok("create", "--cid", "1300001", "--role", "controller")).stdout.trim();
  const file = exportFile("export.sql", FIXTURE);

  const first = await service.ok("import", file);
  assert.deepEqual(lines(first), [
    `updated 1300001: key ${shown(1)} added`,
    `imported 1300002: observer, key ${shown(2)}, banned without end`,
    `imported 1300003: observer, key ${shown(3)}, banned until 2099-12-31T23:59:59.000Z`,
    `imported 1300004: observer, key ${shown(4)}, not banned`,
    ...SKIPS,
    "imported 3, updated 1, unchanged 0, skipped 4",
  ]);
  for (const n of [1, 2, 3, 4, 5]) {
    assert.ok(!first.stdout.includes(key(n)) && !first.stderr.includes(key(n)), `key ${n} is never printed`);
  }

  assert.deepEqual(await service.rows("SELECT cid, role, banned, banned_until FROM accounts WHERE cid LIKE '13%' ORDER BY cid"), [
    { cid: "1300001", role: "controller", banned: 0, banned_until: null },
    { cid: "1300002", role: "observer", banned: 1, banned_until: null },
    { cid: "1300003", role: "observer", banned: 1, banned_until: END_2099 + 1 },
    { cid: "1300004", role: "observer", banned: 0, banned_until: null },
  ]);
  assert.deepEqual(await importedKeys(), [
    { key_hash: sha256(own), cid: "1300001", origin: "own", revoked: 0 },
    { key_hash: sha256(key(1)), cid: "1300001", origin: "import", revoked: 0 },
    { key_hash: sha256(key(2)), cid: "1300002", origin: "import", revoked: 0 },
    { key_hash: sha256(key(3)), cid: "1300003", origin: "import", revoked: 0 },
    { key_hash: sha256(key(4)), cid: "1300004", origin: "import", revoked: 0 },
  ]);
  assert.ok(!JSON.stringify(await snapshot()).includes("BARS_"), "no key itself is stored");

  // The Worker reads them: the imported key with the account's role, bans in force refused.
  const controller = await service.join(key(1), "EGLL");
  assert.equal(controller.initial.data.connectionType, "controller", "an existing account keeps its role");
  await controller.close();
  assert.equal(await service.connectStatus(own), 101, "the account's own key still works");
  assert.equal(await service.connectStatus(key(2)), 403, "a ban without end");
  assert.equal(await service.connectStatus(key(3)), 403, "a ban in force until 2099");
  assert.equal(await service.connectStatus(key(4)), 101, "an expired ban is no ban");
  assert.equal(await service.connectStatus(key(5)), 401, "the duplicate row's key was not imported");

  const before = await snapshot();
  const second = await service.ok("import", file);
  assert.deepEqual(lines(second), [
    "unchanged 1300001",
    "unchanged 1300002",
    "unchanged 1300003",
    "unchanged 1300004",
    ...SKIPS,
    "imported 0, updated 0, unchanged 4, skipped 4",
  ]);
  assert.deepEqual(await snapshot(), before, "the second run changed nothing");
});

/**
 * The fixture after the people changed on the website: 1300001 regenerated their key (key 7),
 * 1300002's ban was lifted, 1300004 was banned again until 2099.
 */
const LATER = edited(
  withoutLine(edited(FIXTURE, key(1), key(7)), "VALUES(1,'1300002','abuse; repeated'"),
  "'2020-01-01 00:00:00'",
  "'2099-12-31 23:59:59'",
);

test("a later export replaces a regenerated key and decides the bans; own keys stay", async () => {
  // An operator's ban of an imported person: the export says they are not banned.
  await service.ok("ban", "--cid", "1300001");
  const own = (await service.ok("create", "--cid", "1300002")).stdout.trim();
  const file = exportFile("later.sql", LATER);

  const run = await service.ok("import", file);
  assert.deepEqual(lines(run), [
    `updated 1300001: key ${shown(1)} replaced by ${shown(7)}; unbanned`,
    "updated 1300002: unbanned",
    "unchanged 1300003",
    "updated 1300004: banned until 2099-12-31T23:59:59.000Z",
    "skipped users row 5 (line 25), vatsim_id 1300001: duplicate of users row 1 (line 21)",
    "skipped users row 6 (line 26), vatsim_id 1300006: key already used by users row 2 (line 22)",
    "skipped bans row 3 (line 37), vatsim_id 1399999: no user with this vatsim_id",
    "imported 0, updated 3, unchanged 1, skipped 3",
  ]);
  assert.equal(await service.connectStatus(key(1)), 401, "the regenerated key stops working");
  const regenerated = await service.join(key(7), "EGLL");
  assert.equal(regenerated.initial.data.connectionType, "controller");
  await regenerated.close();
  assert.equal(await service.connectStatus(key(2)), 101, "the lifted ban is lifted here");
  assert.equal(await service.connectStatus(own), 101, "a key made with create is untouched");
  assert.equal(await service.connectStatus(key(4)), 403);
  assert.deepEqual(
    (await importedKeys()).map(({ cid, origin, revoked }) => ({ cid, origin, revoked })),
    [
      { cid: "1300001", origin: "own", revoked: 0 },
      { cid: "1300001", origin: "import", revoked: 1 },
      { cid: "1300001", origin: "import", revoked: 0 },
      { cid: "1300002", origin: "import", revoked: 0 },
      { cid: "1300002", origin: "own", revoked: 0 },
      { cid: "1300003", origin: "import", revoked: 0 },
      { cid: "1300004", origin: "import", revoked: 0 },
    ],
    "only the replaced imported key is revoked",
  );

  // An operator revokes an imported key: the import leaves it revoked (the person's next key,
  // made on the website, comes in with the next import).
  await service.ok("revoke", shown(4));
  const before = await snapshot();
  const again = await service.ok("import", file);
  assert.deepEqual(lines(again).slice(0, 4), [
    "unchanged 1300001",
    "unchanged 1300002",
    "unchanged 1300003",
    `unchanged 1300004 (key ${shown(4)} is revoked here and stays revoked)`,
  ]);
  assert.equal(lines(again).at(-1), "imported 0, updated 0, unchanged 4, skipped 3");
  assert.deepEqual(await snapshot(), before, "the second run changed nothing");
  assert.equal(await service.connectStatus(key(4)), 401);
});

/** Runs wrangler in `dir`: its stdout. */
function wrangler(dir, ...args) {
  const bin = join(root, "node_modules", ".bin");
  return execFileSync(join(bin, "wrangler"), args, {
    cwd: dir,
    encoding: "utf8",
    env: { ...process.env, PATH: `${bin}${delimiter}${process.env.PATH}` },
  });
}

test("a real wrangler export and wrangler's JSON of the same tables import to the same database", async () => {
  // The running service's database, locally: the later export loaded (less users row 5, which
  // its UNIQUE vatsim_id refuses), then exported by wrangler and queried with --json.
  const project = mkdtempSync(join(scratch, "running-service-"));
  writeFileSync(
    join(project, "wrangler.toml"),
    `name = "running-service"\ncompatibility_date = "2026-10-01"\n\n[[d1_databases]]\nbinding = "DB"\ndatabase_name = "running-service"\ndatabase_id = "22222222-2222-2222-2222-222222222222"\n`,
  );
  writeFileSync(join(project, "load.sql"), withoutLine(LATER, "'Second Row For 1300001'"));
  wrangler(project, "d1", "execute", "DB", "--local", "--file", "load.sql");
  wrangler(project, "d1", "export", "running-service", "--local", "--output", "export.sql");
  const answer = wrangler(project, "d1", "execute", "DB", "--local", "--json", "--command", "SELECT * FROM users; SELECT * FROM bans");
  const [users, bans] = JSON.parse(answer).map((statement) => statement.results);
  const forms = [
    ["a wrangler export", join(project, "export.sql")],
    ["wrangler's --json answer", exportFile("answer.json", answer)],
    ['{"users", "bans"}', exportFile("rows.json", JSON.stringify({ users, bans }))],
  ];

  const before = await snapshot();
  for (const [form, file] of forms) {
    const run = await service.ok("import", file);
    const report = lines(run);
    assert.deepEqual(
      report.slice(0, 4),
      ["unchanged 1300001", "unchanged 1300002", "unchanged 1300003", `unchanged 1300004 (key ${shown(4)} is revoked here and stays revoked)`],
      form,
    );
    assert.match(report[4], /^skipped users row 5( \(line \d+\))?, vatsim_id 1300006: key already used by users row 2/, form);
    assert.match(report[5], /^skipped bans row 3( \(line \d+\))?, vatsim_id 1399999: no user with this vatsim_id$/, form);
    assert.equal(report[6], "imported 0, updated 0, unchanged 4, skipped 2", form);
    assert.deepEqual(await snapshot(), before, `${form}: the same people, keys and bans`);
  }
});

test("a malformed row or file is named, exits 2 and changes nothing", async () => {
  // Each case is the later export with 1300001's key regenerated again (a change an import
  // would make) and one thing wrong after that row.
  const base = edited(LATER, key(7), key(8));
  const bansRow2 = `"created_at","expires_at") VALUES(3,'1300004','served','system','2019-06-02 12:00:00','2099-12-31 23:59:59')`;
  const person = (fields) => JSON.stringify({ users: [{ vatsim_id: "1300001", api_key: key(8), ...fields }], bans: [] });
  const cases = [
    [edited(base, "VALUES(3,'1300003'", "VALUES(3,'13OO003'"), /^keys: users row 3 \(line 23\): vatsim_id "13OO003" is not a string of digits$/m],
    [edited(base, key(4), key(4).slice(0, -1)), /^keys: users row 4 \(line 24\): api_key is not BARS_ and 64 lowercase hex digits$/m],
    [edited(base, key(4), key(4).toUpperCase()), /users row 4 \(line 24\): api_key is not BARS_/],
    [edited(base, "'Ban Expired'", "upper('Ban Expired')"), /users row 4 \(line 24\): unreadable value on line 24/],
    [edited(base, "'Ban Expired',0,", "'Ban Expired',"), /users row 4 \(line 24\): 13 columns but 12 values/],
    [edited(base, "'2099-12-31 23:59:59'", "'2099-12-31'"), /bans row 1 \(line 35\): expires_at "2099-12-31" is not YYYY-MM-DD HH:MM:SS/],
    [edited(base, "'2099-12-31 23:59:59'", "'2099-02-30 00:00:00'"), /bans row 1 \(line 35\): expires_at "2099-02-30 00:00:00" is not/],
    [edited(base, bansRow2, bansRow2.replace(`,"expires_at"`, "").replace(",'2099-12-31 23:59:59'", "")), /bans row 2 \(line 36\): no column expires_at/],
    [base.slice(0, base.indexOf("'Banned Forever'") + 6), /unreadable SQL: the quote opened on line 22 is never closed/],
    [base.slice(0, base.indexOf("CREATE TABLE bans")), /the export has no table bans/],
    ['{"users": [', /unreadable JSON/],
    ['{"users": []}', /unreadable JSON: expected \{"users"/],
    [person({ api_key: undefined }), /users row 1: no column api_key/],
    [person({ vatsim_id: 1300001 }), /users row 1: vatsim_id \(a number\) is not a string of digits/],
    [JSON.stringify({ users: [], bans: [{ vatsim_id: "1300001" }] }), /bans row 1: no column expires_at/],
  ];
  const before = await snapshot();
  for (const [i, [text, message]] of cases.entries()) {
    const run = await service.keys("import", exportFile(`malformed-${i}`, text));
    const what = `case ${i} → ${run.code}: ${run.stderr}`;
    assert.equal(run.code, 2, what);
    assert.match(run.stderr, message, what);
    assert.equal(run.stdout, "", what);
    assert.doesNotMatch(run.stderr, /[0-9a-fA-F]{16}/, `${what}: no key printed`);
  }
  for (const [args, message] of [
    [["import", join(scratch, "no-such-file.sql")], /cannot read .*ENOENT/],
    [["import", exportFile("base.sql", base), "--role", "admin"], /unknown role 'admin'/],
    [["import"], /takes exactly 1 argument/],
  ]) {
    const run = await service.keys(...args);
    assert.equal(run.code, 2, `${args.join(" ")}: ${run.stderr}`);
    assert.match(run.stderr, message);
  }
  assert.deepEqual(await snapshot(), before, "the database is as it was");

  // The same export without the fault does change the database.
  const run = await service.ok("import", exportFile("base.sql", base));
  assert.match(run.stdout, new RegExp(`^updated 1300001: key ${shown(7)} replaced by ${shown(8)}$`, "m"));
});
