// A fake network status service on 127.0.0.1: `GET /users/info?cid=N` answers text/plain CSV
// lines from `connections` (or, for a cid not set there, from `everyone`), and counts requests
// per cid. Modes simulate an outage. The benchmarks use it too (bench/floor/status.mjs).
import http from "node:http";

const line = (cid, [callsign, type]) => `${cid},${callsign},${type}`;

export class FakeStatus {
  constructor() {
    this.connections = new Map(); // cid -> array of "cid,callsign,type" lines
    this.everyone = null; // [callsign, type] for any cid not in `connections`
    this.requests = new Map(); // cid -> count
    this.mode = "ok"; // "ok" | "error" (503) | "hang" (never answers)
    this.delayMs = 0;
    this.hanging = [];
  }

  async start() {
    this.server = http.createServer((req, res) => {
      const url = new URL(req.url, "http://localhost");
      const cid = url.searchParams.get("cid") ?? "";
      if (url.pathname !== "/users/info") {
        res.writeHead(404).end();
        return;
      }
      this.requests.set(cid, (this.requests.get(cid) ?? 0) + 1);
      if (this.mode === "hang") {
        this.hanging.push(res);
        return;
      }
      setTimeout(() => {
        if (this.mode === "error") {
          res.writeHead(503, { "Content-Type": "text/plain" }).end("unavailable");
          return;
        }
        const lines = this.connections.get(cid) ?? (this.everyone ? [line(cid, this.everyone)] : []);
        res.writeHead(200, { "Content-Type": "text/plain" }).end(lines.join("\n"));
      }, this.delayMs);
    });
    await new Promise((resolve) => this.server.listen(0, "127.0.0.1", resolve));
    this.url = `http://127.0.0.1:${this.server.address().port}`;
    return this;
  }

  /** Sets what the network says about a cid: `[callsign, type]` pairs. */
  set(cid, ...connections) {
    this.connections.set(
      cid,
      connections.map((connection) => line(cid, connection)),
    );
  }

  /** Answers every cid not `set` as on the network with one connection: `[callsign, type]`. */
  setEveryone(callsign, type) {
    this.everyone = [callsign, type];
  }

  /** Requests answered or held so far, for every cid. */
  total() {
    let sum = 0;
    for (const n of this.requests.values()) sum += n;
    return sum;
  }

  count(cid) {
    return this.requests.get(cid) ?? 0;
  }

  async stop() {
    for (const res of this.hanging) res.destroy();
    this.server.closeAllConnections?.();
    await new Promise((resolve) => this.server.close(resolve));
  }
}
