// Browser-test helpers: headless Chromium (Debian's, installed by scripts/setup.sh) driven by
// puppeteer-core, against the service of tests/integration/harness.mjs.
import { before, after } from "node:test";
import puppeteer from "puppeteer-core";
import { Service } from "../integration/harness.mjs";
import { until } from "../integration/helpers.mjs";

export const CHROMIUM = process.env.CHROMIUM ?? "/usr/bin/chromium";
/** Where the page keeps the observer key (dashboard/src/airport.ts). */
export const KEY_STORAGE = "airport-realtime:observer-key";

export function launch() {
  return puppeteer.launch({
    executablePath: CHROMIUM,
    headless: true,
    // Chromium's sandbox cannot run as root (CI containers).
    args: process.getuid?.() === 0 ? ["--no-sandbox"] : [],
  });
}

/**
 * The service on a port that stays the same across `restart()`, so that a page can reconnect
 * to it.
 */
export class PinnedService extends Service {
  options() {
    return { ...super.options(), port: this.port ?? 0 };
  }

  async start() {
    await super.start();
    this.port = Number(new URL(this.url).port);
    return this;
  }
}

/**
 * The service (a `PinnedService`) and a headless Chromium for the tests of one file: started
 * before them, closed after them. `open(t, path, options)` is `openPage` on the two.
 */
export function browserSuite() {
  const suite = {
    service: null,
    browser: null,
    open: (t, path, options) => openPage(t, suite.browser, suite.service, path, options),
  };
  before(async () => {
    suite.service = await new PinnedService().start();
    suite.browser = await launch();
  });
  after(async () => {
    await suite.browser?.close();
    await suite.service?.stop();
  });
  return suite;
}

/**
 * A new page of `browser` at `path` of `service`, in a browser context of its own (its own
 * local storage) that is closed after test `t`. With `key`, the page finds it saved, as after
 * entering it once. `page.problems` collects page errors and console errors (CSP violations
 * among them); `page.sentFrames` the WebSocket frames the page sent.
 */
export async function openPage(t, browser, service, path, { key, viewport = { width: 1280, height: 900 }, before } = {}) {
  const context = await browser.createBrowserContext();
  t.after(() => context.close());
  const page = await context.newPage();
  await page.setViewport(viewport);
  page.problems = [];
  page.on("pageerror", (error) => page.problems.push(error.message));
  page.on("console", (message) => {
    if (message.type() === "error") page.problems.push(message.text());
  });
  page.sentFrames = [];
  page.socketsOpened = 0;
  page.socketUrls = [];
  const cdp = await page.createCDPSession();
  await cdp.send("Network.enable");
  cdp.on("Network.webSocketCreated", (event) => {
    page.socketsOpened++;
    page.socketUrls.push(event.url);
  });
  cdp.on("Network.webSocketFrameSent", (event) => page.sentFrames.push(event.response.payloadData));
  if (key) {
    await page.evaluateOnNewDocument(
      (storage, value) => {
        if (!sessionStorage.getItem("seeded")) {
          localStorage.setItem(storage, value);
          sessionStorage.setItem("seeded", "1");
        }
      },
      KEY_STORAGE,
      key,
    );
  }
  if (before) await page.evaluateOnNewDocument(before);
  await page.goto(service.httpUrl(path), { waitUntil: "domcontentloaded" });
  return page;
}

/**
 * For `openPage`'s `before`, so that it runs before the page's scripts: `window.__dropChanges`
 * change frames are dropped before the page sees them, as lost frames would be
 * (`window.__dropped` counts them); the page's sockets are kept in `window.__sockets`; while
 * `window.__closeAs` is set, a socket's close reaches the page with that code.
 */
export function interceptSockets() {
  window.__dropChanges = 0;
  window.__dropped = 0;
  window.__sockets = [];
  window.__closeAs = null;
  const Native = window.WebSocket;
  window.WebSocket = class extends Native {
    constructor(...args) {
      super(...args);
      window.__sockets.push(this);
    }
    addEventListener(type, listener, options) {
      if (type === "close") {
        const close = (event) => listener.call(this, window.__closeAs ? { code: window.__closeAs, reason: "test" } : event);
        return super.addEventListener(type, close, options);
      }
      if (type !== "message") return super.addEventListener(type, listener, options);
      return super.addEventListener(type, (event) => {
        if (window.__dropChanges > 0 && /"type":"(STATE_UPDATE|MULTI_STATE_UPDATE)"/.test(event.data)) {
          window.__dropChanges--;
          window.__dropped++;
          return;
        }
        listener.call(this, event);
      }, options);
    }
  };
}

/** The status shown on an airport page: `live`, `read-only`, `waiting`, … */
export const status = (page) => page.$eval(".status", (el) => el.dataset.status);

/** Waits until the airport page's status is `want`. */
export function untilStatus(page, want, ms = 10_000) {
  return until(async () => (await status(page)) === want, { ms, every: 50, what: `status ${want}` });
}

/** The object row of `id` as drawn: its state (`on`, `off`, `object`), or null when not drawn. */
export function rowState(page, id) {
  return page.evaluate((id) => document.querySelector(`button.object[data-id="${id}"]`)?.dataset.state ?? null, id);
}

/** The event log's lines, newest first. */
export function logLines(page) {
  return page.$$eval(".log li", (items) => items.map((li) => li.textContent));
}

/** The page's problems, but for what a browser prints about sockets it could not open. */
export function unexpectedProblems(page) {
  return page.problems.filter((p) => !/WebSocket connection to .* failed|Failed to load resource/.test(p));
}
