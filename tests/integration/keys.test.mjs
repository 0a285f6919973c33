// The operators' key CLI (scripts/keys.mjs) end to end: it runs wrangler's `d1 execute --local`
// against the very D1 database the Worker under test reads, and the Worker then accepts or
// refuses connections accordingly. Bad input exits with status 2 and changes nothing.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { CliService } from "./cli.mjs";

let service;
before(async () => {
  // Live sessions are checked again every second, so a revocation reaches an open socket.
  service = await new CliService({ VATSIM_RECHECK_MS: "1000" }).start();
});
after(async () => {
  await service?.stop();
});

const keys = (...args) => service.keys(...args);
const ok = (...args) => service.ok(...args);
const rows = (sql) => service.rows(sql);
const connectStatus = (key) => service.connectStatus(key);

const sha256 = (text) => createHash("sha256").update(text).digest("hex");

test("a key from the CLI connects; revoked, it is refused with 401 and its socket closed", async () => {
  const created = await ok("create", "--cid", "3000001", "--role", "controller");
  const key = created.stdout.trim();
  assert.match(key, /^BARS_[A-Za-z0-9_-]{43}$/, "BARS_ and 256 bits of base64url");
  assert.doesNotMatch(created.stderr, new RegExp(key), "the key is printed once, on stdout");

  const stored = await rows("SELECT * FROM api_keys WHERE cid = '3000001'");
  assert.equal(stored.length, 1);
  assert.equal(stored[0].key_hash, sha256(key), "stored as the lowercase hex SHA-256 of the key");
  assert.equal(stored[0].revoked_at, null);
  assert.ok(!JSON.stringify(await rows("SELECT * FROM api_keys")).includes(key), "the key itself is not stored");
  assert.deepEqual(await rows("SELECT cid, role, banned, banned_until FROM accounts WHERE cid = '3000001'"), [
    { cid: "3000001", role: "controller", banned: 0, banned_until: null },
  ]);

  const client = await service.join(key, "EGLL");
  assert.equal(client.initial.data.connectionType, "controller");

  const list = await ok("list", "--json");
  assert.ok(!list.stdout.includes(key), "list never shows a key");
  const entry = JSON.parse(list.stdout).find((a) => a.cid === "3000001");
  assert.equal(entry.role, "controller");
  assert.equal(entry.banned, false);
  assert.deepEqual(
    entry.keys.map((k) => [k.hashPrefix, k.revoked]),
    [[sha256(key).slice(0, 12), null]],
  );

  const revoked = await ok("revoke", sha256(key).slice(0, 12));
  assert.match(revoked.stderr, /Revoked key/);
  const [row] = await rows("SELECT revoked_at FROM api_keys WHERE cid = '3000001'");
  assert.ok(row.revoked_at > 0, "revoked_at is set");

  // Connects reuse no look-up: the very next one sees the revocation.
  const refused = await service.reject(key, "EGLL");
  assert.equal(refused.status, 401);
  assert.equal(refused.body.error.code, "INVALID_API_KEY");
  assert.equal((await client.closed).code, 4001, "the open socket is closed by the re-check");

  const again = await ok("revoke", key);
  assert.match(again.stderr, /already revoked/, "revoking by the key itself finds the same key");
});

test("ban, unban and role reach the very next connection", async () => {
  const key = (await ok("create", "--cid", "3000002", "--role", "pilot")).stdout.trim();
  const bannedUntil = new Date(Date.now() + 3_600_000).toISOString();
  await ok("ban", "--cid", "3000002", "--until", bannedUntil);
  assert.deepEqual(await rows("SELECT banned, banned_until FROM accounts WHERE cid = '3000002'"), [
    { banned: 1, banned_until: Date.parse(bannedUntil) },
  ]);
  const banned = await service.reject(key, "EGLL");
  assert.equal(banned.status, 403);
  assert.equal(banned.body.error.code, "BANNED");

  await ok("unban", "--cid", "3000002");
  assert.equal(await connectStatus(key), 101, "the next connection after the unban is accepted");
  const pilot = await service.join(key, "EGLL");
  assert.equal(pilot.initial.data.connectionType, "pilot");
  await pilot.close();

  await ok("role", "--cid", "3000002", "--role", "observer");
  // A second key for the account, which has the role now.
  const second = (await ok("create", "--cid", "3000002")).stdout.trim();
  assert.notEqual(second, key);
  for (const k of [key, second]) {
    const observer = await service.join(k, "EGLL");
    assert.equal(observer.initial.data.connectionType, "observer");
    await observer.close();
  }
});

test("bad input is refused with status 2 and changes nothing", async () => {
  await ok("create", "--cid", "3000003", "--role", "controller");
  // Two keys whose hashes share a 12-digit prefix, so that the prefix is ambiguous.
  await service.db.batch([
    service.db.prepare("INSERT INTO accounts (cid, role) VALUES ('3000009', 'observer')"),
    service.db.prepare(`INSERT INTO api_keys (key_hash, cid) VALUES ('abcdef012345${"0".repeat(52)}', '3000009')`),
    service.db.prepare(`INSERT INTO api_keys (key_hash, cid) VALUES ('abcdef012345${"1".repeat(52)}', '3000009')`),
  ]);
  const snapshot = async () => ({
    accounts: await rows("SELECT * FROM accounts ORDER BY cid"),
    keys: await rows("SELECT * FROM api_keys ORDER BY key_hash"),
  });
  const before = await snapshot();

  const cases = [
    [["create", "--cid", "12a", "--role", "pilot"], /bad cid '12a': digits only/],
    [["create", "--cid", "3000004' OR '1'='1", "--role", "pilot"], /bad cid/],
    [["create", "--cid", "", "--role", "pilot"], /bad cid/],
    [["create", "--role", "pilot"], /--cid N is required/],
    [["create", "--cid", "3000004", "--role", "admin"], /unknown role 'admin'/],
    [["create", "--cid", "3000004"], /no account with cid 3000004: give --role/],
    [["create", "--cid", "3000003", "--role", "pilot"], /exists with role controller, not pilot/],
    [["create", "--cid", "3000003", "--role", "controller", "--admin"], /takes no option --admin/],
    [["role", "--cid", "3000003", "--role", "controller'; DROP TABLE accounts; --"], /unknown role/],
    [["role", "--cid", "3999999", "--role", "pilot"], /no account with cid 3999999/],
    [["ban", "--cid", "3000003", "--until", "tomorrow"], /bad time 'tomorrow'/],
    [["ban", "--cid", "3000003", "--until", "2031-02-30T00:00Z"], /no such date or time/],
    [["ban", "--cid", "3000003", "--until", "2031-01-01T00:00"], /bad time/],
    [["ban", "--cid", "3000003", "--until", "2001-01-01"], /not in the future/],
    [["ban", "--cid", "3999999"], /no account with cid 3999999/],
    [["unban", "--cid", "3999999"], /no account with cid 3999999/],
    [["revoke", "abcdef012345"], /ambiguous/],
    [["revoke", "ffffffffffff"], /no key whose hash starts with ffffffffffff/],
    [["revoke", "BARS_no-such-key"], /no such key/],
    [["revoke"], /takes exactly 1 argument/],
    [["list", "--cid", "3000003", "--remote"], /--persist-to is for the local database/],
    [["rotate", "--cid", "3000003"], /unknown command 'rotate'/],
  ];
  for (const [args, message] of cases) {
    const run = await keys(...args);
    const what = `keys ${args.join(" ")} → ${run.code}: ${run.stderr}`;
    assert.equal(run.code, 2, what);
    assert.match(run.stderr, message, what);
    assert.equal(run.stdout, "", `${what}: nothing on stdout`);
  }
  assert.deepEqual(await snapshot(), before, "the database is as it was");
});
