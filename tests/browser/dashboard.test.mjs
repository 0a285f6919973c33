// The dashboard in headless Chromium against the local service: the directory, an airport page
// live over /connect (changes, presence, a seq gap, a restart, a resume) and read-only without a key, and
// the headers it is served with.
import { test } from "node:test";
import assert from "node:assert/strict";
import { KEYS, CIDS } from "../integration/harness.mjs";
import { keepAlive, scene, snapshot, until } from "../integration/helpers.mjs";
import { browserSuite, interceptSockets, KEY_STORAGE, logLines, rowState, status, unexpectedProblems, untilStatus } from "./browser.mjs";

const suite = browserSuite();

/** A controller at `airport` that answers heartbeats; closed after the test. */
async function controller(t, airport, key = KEYS.controller1) {
  const c = await scene(t, suite.service, airport).join(key);
  keepAlive(c);
  return c;
}

/** Sends a STATE_UPDATE and waits until it is applied (a round trip after it). */
async function set(c, objectId, state) {
  c.send({ type: "STATE_UPDATE", data: { objectId, state } });
  await c.settle();
}

test("pages are served to browsers with their headers; API clients still get 404", async () => {
  const html = { Accept: "text/html,application/xhtml+xml" };
  for (const path of ["/", "/airport/EGLL"]) {
    const res = await suite.service.fetch(path, { headers: html });
    assert.equal(res.status, 200, path);
    assert.match(res.headers.get("content-type"), /^text\/html/);
    assert.equal(res.headers.get("cache-control"), "no-cache");
    const csp = res.headers.get("content-security-policy");
    assert.match(csp, /default-src 'none'/);
    assert.match(csp, /script-src 'self'(;|$)/);
    assert.match(csp, /style-src 'self'(;|$)/);
    assert.match(csp, /connect-src 'self'(;|$)/);
    const body = await res.text();
    const assets = [...body.matchAll(/(?:src|href)="(\/assets\/[^"]+)"/g)].map((m) => m[1]);
    assert.equal(assets.length, 2, body);
    for (const asset of assets) {
      const a = await suite.service.fetch(asset);
      assert.equal(a.status, 200, asset);
      assert.match(asset, /-[A-Z0-9]{8}\.(js|css)$/, "a content-hashed name");
      assert.match(a.headers.get("content-type"), asset.endsWith(".js") ? /^text\/javascript/ : /^text\/css/);
      assert.equal(a.headers.get("cache-control"), "public, max-age=31536000, immutable");
    }
  }
  // Without Accept: text/html (an API client), and for other methods, nothing changed.
  assert.equal((await suite.service.fetch("/")).status, 404);
  assert.equal((await suite.service.fetch("/", { method: "POST", headers: html })).status, 404);
  assert.equal((await suite.service.fetch("/state?airport=all", { headers: html })).headers.get("content-type"), "application/json");
});

test("the directory lists an airport once a controller connects", async (t) => {
  const page = await suite.open(t, "/");
  await until(() => page.$eval("[role=status]", (el) => el.textContent !== "Loading…"), { what: "the first poll" });
  assert.equal(await page.$("tr[data-airport=EDDF]"), null, "not listed before");
  const c = await controller(t, "EDDF");
  await set(c, "SB_25C_N1", true);
  await set(c, "SB_25C_N2", false);
  const row = () => page.evaluate(() => [...(document.querySelector("tr[data-airport=EDDF]")?.children ?? [])].map((td) => td.textContent));
  // Listed once a poll sees the controller, with its lights once a poll sees them too.
  const cells = await until(async () => {
    const cells = await row();
    return cells[3] === "1 / 2" && cells;
  }, { ms: 15_000, what: "EDDF listed with its lights" });
  assert.deepEqual(cells.slice(0, 4), ["EDDF", "1", "0", "1 / 2"]);
  // Search by ICAO filters the list.
  await page.type("#directory-filter", "egll");
  await until(async () => (await page.$("tr[data-airport=EDDF]")) === null, { what: "EDDF filtered out" });
  await page.click("#directory-filter", { count: 3 });
  await page.keyboard.press("Backspace");
  await until(async () => (await page.$("tr[data-airport=EDDF]")) !== null, { what: "EDDF back" });
  // The link opens the airport page.
  await Promise.all([page.waitForNavigation(), page.click("tr[data-airport=EDDF] a")]);
  assert.equal(new URL(page.url()).pathname, "/airport/EDDF");
  assert.deepEqual(page.problems, []);
});

test("a key entered once goes live; a controller's change shows within a second", async (t) => {
  const c = await controller(t, "KJFK");
  await set(c, "SB_4L_A", false);
  const page = await suite.open(t, "/airport/KJFK");
  await untilStatus(page, "read-only");
  const entries = await page.evaluate(() => history.length);
  // Typed into the form, kept in local storage, never in the address or the history.
  await page.type("#observer-key", KEYS.observer1);
  await page.keyboard.press("Enter");
  await untilStatus(page, "live");
  assert.equal(await page.evaluate((k) => localStorage.getItem(k), KEY_STORAGE), KEYS.observer1);
  assert.ok(!page.url().includes(KEYS.observer1), "the key is not in the address");
  // The socket carries it as a subprotocol, not in its URL.
  assert.ok(page.socketUrls.length > 0);
  assert.ok(!page.socketUrls.some((url) => url.includes(KEYS.observer1)), "nor in a socket's URL");
  assert.equal(await page.evaluate(() => history.length), entries, "no history entry");
  assert.ok(!(await logLines(page)).some((line) => line.includes(KEYS.observer1)), "nor in the log");
  await until(async () => (await rowState(page, "SB_4L_A")) === "off", { what: "the object drawn" });

  const sent = Date.now();
  c.send({ type: "STATE_UPDATE", data: { objectId: "SB_4L_A", state: true } });
  await page.waitForFunction(() => document.querySelector('button.object[data-id="SB_4L_A"]')?.dataset.state === "on", {
    timeout: 1000,
    polling: "raf",
  });
  const shownAfter = Date.now() - sent;
  assert.ok(shownAfter < 1000, `shown after ${shownAfter} ms`);
  const { seq } = await snapshot(c);
  assert.equal(await page.$eval("[data-testid=seq]", (el) => Number(el.textContent)), seq, "seq shown");
  assert.ok((await logLines(page)).some((line) => /SB_4L_A on by 1000001/.test(line)));
  // Expanding an object shows its whole state; the keyboard works as well as the mouse.
  await page.focus('button.object[data-id="SB_4L_A"]');
  await page.keyboard.press("Enter");
  await until(() => page.$eval(".inspector", (el) => el.textContent.startsWith("true")), { what: "the inspector" });
  assert.deepEqual(page.problems, []);
});

test("controller connects and disconnects appear on the airport page", async (t) => {
  const first = await controller(t, "LFPG");
  const page = await suite.open(t, "/airport/LFPG", { key: KEYS.observer1 });
  await untilStatus(page, "live");
  const controllers = () => page.$$eval('[aria-label="Controllers online"] li', (items) => items.map((li) => li.textContent));
  assert.deepEqual(await controllers(), [CIDS.controller1]);
  const second = await controller(t, "LFPG", KEYS.controller2);
  await until(async () => (await controllers()).includes(CIDS.controller2), { ms: 3000, what: "controller 2 listed" });
  assert.ok((await logLines(page)).some((line) => line.includes(`controller ${CIDS.controller2} connected`)));
  await second.close();
  await until(async () => !(await controllers()).includes(CIDS.controller2), { ms: 3000, what: "controller 2 gone" });
  assert.ok((await logLines(page)).some((line) => line.includes(`controller ${CIDS.controller2} disconnected`)));
  assert.deepEqual(await controllers(), [CIDS.controller1]);
  await first.close();
  assert.deepEqual(page.problems, []);
});

test("a seq gap is recovered with GET_STATE", async (t) => {
  const c = await controller(t, "EHAM");
  await set(c, "SB_A", false);
  await set(c, "SB_B", false);
  // The test drops change frames before the page sees them, as a lost frame would be.
  const page = await suite.open(t, "/airport/EHAM", {
    key: KEYS.observer1,
    before: interceptSockets,
  });
  await untilStatus(page, "live");
  await until(async () => (await rowState(page, "SB_B")) === "off", { what: "the objects drawn" });
  await page.evaluate(() => (window.__dropChanges = 1));
  await set(c, "SB_A", true);
  await until(() => page.evaluate(() => window.__dropped === 1), { what: "the change dropped" });
  assert.equal(await rowState(page, "SB_A"), "off", "the page missed it");
  await set(c, "SB_B", true);
  // The next change shows the gap: the page asks GET_STATE and redraws from the snapshot.
  await until(async () => (await rowState(page, "SB_A")) === "on" && (await rowState(page, "SB_B")) === "on", {
    ms: 3000,
    what: "both objects on after the resync",
  });
  assert.ok(page.sentFrames.some((f) => JSON.parse(f).type === "GET_STATE"), "GET_STATE sent");
  const lines = await logLines(page);
  assert.ok(lines.some((line) => /seq gap/.test(line)), lines.join("\n"));
  assert.ok(lines.some((line) => /resynchronised from GET_STATE/.test(line)), lines.join("\n"));
  assert.equal(await status(page), "live");
  assert.deepEqual(page.problems, []);
});

test("the page reconnects after the service restarts", async (t) => {
  const c = await controller(t, "RJTT");
  await set(c, "SB_34R", false);
  const page = await suite.open(t, "/airport/RJTT", { key: KEYS.observer1 });
  await untilStatus(page, "live");
  const opened = page.socketsOpened;
  await suite.service.restart();
  await untilStatus(page, "live", 30_000);
  assert.ok(page.socketsOpened > opened, "a new socket");
  assert.ok((await logLines(page)).some((line) => /reconnecting in/.test(line)));
  // Live again: a change after the restart shows.
  const again = await controller(t, "RJTT");
  await set(again, "SB_34R", true);
  await until(async () => (await rowState(page, "SB_34R")) === "on", { ms: 3000, what: "the change after the restart" });
  assert.deepEqual(unexpectedProblems(page), []);
});

test("a reconnect resumes from the page's seq: only what it missed comes", async (t) => {
  const c = await controller(t, "LFPG");
  await set(c, "SB_A", false);
  await set(c, "SB_C", true);
  // The test drops change frames before the page sees them, then closes its socket: what it
  // missed must come with the resume.
  const page = await suite.open(t, "/airport/LFPG", {
    key: KEYS.observer1,
    before: interceptSockets,
  });
  await untilStatus(page, "live");
  await until(async () => (await rowState(page, "SB_C")) === "on", { what: "the objects drawn" });
  assert.match(page.socketUrls[0], /&resume=$/, "no replica yet");
  await page.evaluate(() => (window.__dropChanges = 2));
  await set(c, "SB_A", true);
  c.send({ type: "STATE_UPDATE", data: { objectId: "SB_C", patch: null } });
  await c.settle();
  await until(() => page.evaluate(() => window.__dropped === 2), { what: "the changes dropped" });
  assert.equal(await rowState(page, "SB_A"), "off", "the page missed it");
  // The server answers any close with 1000, which ends the page's tries: this one reaches the
  // page as the idle close (4000), after which it reconnects.
  await page.evaluate(() => {
    window.__closeAs = 4000;
    window.__sockets.at(-1).close(3000, "test");
  });
  await until(async () => (await rowState(page, "SB_A")) === "on" && (await rowState(page, "SB_C")) === null, {
    ms: 5000,
    what: "the missed change and deletion after the reconnect",
  });
  assert.match(page.socketUrls.at(-1), /&resume=[0-9a-f]{16}\.2$/);
  const lines = await logLines(page);
  assert.ok(lines.some((line) => /resumed from seq 2 to 4: 2 objects changed/.test(line)), lines.join("\n"));
  assert.ok(!page.sentFrames.some((f) => JSON.parse(f).type === "GET_STATE"), "no resync needed");
  assert.equal(await status(page), "live");
  assert.deepEqual(unexpectedProblems(page), []);
});

test("without a key the page is a read-only view of the public state", async (t) => {
  const c = await controller(t, "YSSY");
  await set(c, "SB_16R_B1", false);
  const page = await suite.open(t, "/airport/YSSY");
  await untilStatus(page, "read-only");
  assert.ok(await page.$eval("#observer-key", (el) => el.offsetParent !== null), "the key form is shown");
  await until(async () => (await rowState(page, "SB_16R_B1")) === "off", { ms: 10_000, what: "the public state drawn" });
  assert.equal(await page.$eval(".status", (el) => el.textContent), "read-only: public state every 3 s");
  assert.equal(await page.$eval(".counts", (el) => el.textContent), "1 object, 0 on");
  await set(c, "SB_16R_B1", true);
  await until(async () => (await rowState(page, "SB_16R_B1")) === "on", { ms: 15_000, what: "the change polled" });
  assert.equal(page.socketsOpened, 0, "no WebSocket without a key");
  assert.ok((await logLines(page)).some((line) => /object changed/.test(line)));
  assert.deepEqual(page.problems, []);
});

test("a phone-sized screen fits without scrolling sideways", async (t) => {
  const c = await controller(t, "EGKK");
  await set(c, "SB_26L_LONG_OBJECT_IDENTIFIER_A1", { colour: "red", intensity: 3 });
  const page = await suite.open(t, "/airport/EGKK", { key: KEYS.observer1, viewport: { width: 390, height: 844, isMobile: true } });
  await untilStatus(page, "live");
  await until(async () => (await rowState(page, "SB_26L_LONG_OBJECT_IDENTIFIER_A1")) === "object", { what: "the object drawn" });
  const { scroll, width } = await page.evaluate(() => ({ scroll: document.documentElement.scrollWidth, width: innerWidth }));
  assert.ok(scroll <= width, `page ${scroll} px wide on a ${width} px screen`);
  assert.deepEqual(page.problems, []);
});
