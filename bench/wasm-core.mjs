// Per-packet time of the protocol core in Wasm (V8, as workerd runs it), for builds compared
// side by side: `bash bench/wasm-core.sh` builds testkit/examples/wasm_core.rs at each
// opt-level and runs this. Each round times every case in every build, alternating, and the
// table shows each build's median per packet over the rounds.
//
//   node bench/wasm-core.mjs NAME=FILE.wasm [NAME=FILE.wasm ...] [--rounds 7] [--count 2000]
import { readFileSync } from "node:fs";
import { performance } from "node:perf_hooks";
import { args, opt } from "./args.mjs";

const rounds = Number(opt("--rounds", "7"));
const count = Number(opt("--count", "2000"));
const builds = args
  .filter((a) => a.includes("=") && a.endsWith(".wasm"))
  .map((a) => {
    const file = a.slice(a.lastIndexOf("=") + 1);
    const name = a.slice(0, a.lastIndexOf("="));
    const bytes = readFileSync(file);
    const { exports } = new WebAssembly.Instance(new WebAssembly.Module(bytes), {});
    return { name, bytes: bytes.length, exports };
  });
if (builds.length === 0) throw new Error("usage: node bench/wasm-core.mjs NAME=FILE.wasm ...");

const { exports: first } = builds[0];
const NAMES = Array.from({ length: first.case_count() }, (_, c) =>
  new TextDecoder().decode(new Uint8Array(first.memory.buffer, first.case_name(c), first.case_name_len(c))),
);
const cases = NAMES.length;

/** Microseconds per packet: `count` packets after the setup, less the setup alone. */
function perPacket(build, c, n) {
  const t0 = performance.now();
  build.exports.run(c, 0);
  const t1 = performance.now();
  build.exports.run(c, n);
  const t2 = performance.now();
  return (((t2 - t1) - (t1 - t0)) * 1000) / n;
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const times = builds.map(() => NAMES.map(() => []));
for (let c = 0; c < cases; c++) {
  // Fewer sends of the big cases, so that each case takes about as long.
  const n = NAMES[c].startsWith("state_update") ? count : Math.max(20, count / 20);
  for (const build of builds) perPacket(build, c, n); // warm-up: V8 tiers up
  for (let r = 0; r < rounds; r++) {
    builds.forEach((build, b) => times[b][c].push(perPacket(build, c, n)));
  }
}

console.log(`| case | ${builds.map((b) => `${b.name} µs/packet`).join(" | ")} |${builds.length > 1 ? ` ${builds[1].name} / ${builds[0].name} |` : ""}`);
console.log(`|---|${builds.map(() => "---|").join("")}${builds.length > 1 ? "---|" : ""}`);
for (let c = 0; c < cases; c++) {
  const m = builds.map((_, b) => median(times[b][c]));
  const ratio = builds.length > 1 ? ` ${(m[1] / m[0]).toFixed(2)}× |` : "";
  console.log(`| ${NAMES[c]} | ${m.map((x) => x.toFixed(2)).join(" | ")} |${ratio}`);
}
console.log(`\nmodule bytes: ${builds.map((b) => `${b.name} ${b.bytes}`).join(", ")}; median of ${rounds} rounds`);
