// Diagnosis: a V8 CPU profile of a workerd isolate served by `bench/serve.mjs --inspect PORT`.
//
//   node bench/profile.mjs --port 9229 --seconds 20 [--out FILE.cpuprofile] [--top 40]
//
// Samples for --seconds, then prints the functions with the most self time (Wasm functions
// have names when the build keeps its name section; see bench/README.md) and, with --out,
// writes the profile for Chrome DevTools. Time spent in workerd's C++ below a JS call (a
// socket send, a SQLite statement) counts to that call.
import { WebSocket } from "ws";
import { writeFileSync } from "node:fs";
import { opt } from "./args.mjs";

const port = Number(opt("--port", "9229"));
const seconds = Number(opt("--seconds", "20"));
const out = opt("--out", undefined);
const top = Number(opt("--top", "40"));

const targets = await (await fetch(`http://127.0.0.1:${port}/json`)).json();
const target = targets.find((t) => t.webSocketDebuggerUrl);
if (!target) throw new Error(`no inspector target on port ${port}`);
const ws = new WebSocket(target.webSocketDebuggerUrl, { headers: { Origin: "http://localhost" } });
await new Promise((resolve, reject) => {
  ws.once("open", resolve);
  ws.once("error", reject);
});

let nextId = 1;
const pending = new Map();
ws.on("message", (raw) => {
  const message = JSON.parse(raw.toString());
  const waiter = pending.get(message.id);
  if (waiter) {
    pending.delete(message.id);
    if (message.error) waiter.reject(new Error(JSON.stringify(message.error)));
    else waiter.resolve(message.result);
  }
});
const call = (method, params = {}) =>
  new Promise((resolve, reject) => {
    const id = nextId++;
    pending.set(id, { resolve, reject });
    ws.send(JSON.stringify({ id, method, params }));
  });

await call("Profiler.enable");
await call("Profiler.setSamplingInterval", { interval: 200 });
await call("Profiler.start");
await new Promise((resolve) => setTimeout(resolve, seconds * 1000));
const { profile } = await call("Profiler.stop");
ws.close();
if (out) writeFileSync(out, JSON.stringify(profile));

// Self time per function name, from sample counts.
const hits = new Map();
for (const id of profile.samples) hits.set(id, (hits.get(id) ?? 0) + 1);
const byName = new Map();
for (const node of profile.nodes) {
  const frame = node.callFrame;
  const name = `${frame.functionName || "(anonymous)"} ${frame.url ? frame.url.split("/").pop() : ""}`.trim();
  byName.set(name, (byName.get(name) ?? 0) + (hits.get(node.id) ?? 0));
}
const total = profile.samples.length;
const idle = byName.get("(idle)") ?? 0;
console.log(`${total} samples, ${((100 * idle) / total).toFixed(1)}% idle; share of busy samples:`);
const busy = total - idle;
for (const [name, count] of [...byName].filter(([n]) => n !== "(idle)").sort((a, b) => b[1] - a[1]).slice(0, top)) {
  console.log(`${((100 * count) / busy).toFixed(2).padStart(6)}%  ${name}`);
}
