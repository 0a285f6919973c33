// The herd table of `loadgen bench --only herd` with more than two targets, as ratios to the
// floor: loadgen prints the ratio of its first two targets only. For each keys and target, the
// ratio of its median herd to the floor's, and of each of its herds to the floor's herd of the
// same round (the targets alternate, so a round's herds ran within seconds of each other); and
// the server CPU time of the median herd (its CPU share times its length), which moves less than
// the herd's length when other work on the machine takes the server's core for a while.
//
//   node bench/herd-ratios.mjs FILE   # FILE: loadgen's output
import { readFileSync } from "node:fs";

const [file] = process.argv.slice(2);
// Rows: | keys | target | median ms | every herd, ms | ...
const rows = readFileSync(file, "utf8")
  .split("\n")
  .map((line) => line.split("|").map((cell) => cell.trim()))
  .filter((cells) => cells.length > 5 && /^\d/.test(cells[3]))
  .map((cells) => {
    const [, keys, target, median, every] = cells;
    const cpuShare = parseFloat(cells[10]) / 100; // "server CPU" of the median herd, e.g. "62%"
    return { keys, target, median: Number(median), every: every.split(",").map(Number), cpuMs: cpuShare * Number(median) };
  });
const ratio = (a, b) => `${(a / b).toFixed(2)}×`;

/** Each target's herds against `base`'s (the same keys), when `base` ran. */
function table(base, title) {
  const reference = new Map(rows.filter((r) => r.target === base).map((r) => [r.keys, r]));
  if (reference.size === 0) return;
  console.log(`\n${title}\n`);
  console.log(`| keys | target | median herd / ${base}'s | each round's herd / ${base}'s | server CPU of the median herd, ms | / ${base}'s |`);
  console.log("|---|---|---|---|---|---|");
  for (const r of rows.filter((r) => reference.has(r.keys) && r.target !== base)) {
    const f = reference.get(r.keys);
    const rounds = r.every.map((ms, i) => ratio(ms, f.every[i])).join(", ");
    const cpu = `${r.cpuMs.toFixed(0)} | ${ratio(r.cpuMs, f.cpuMs)}`;
    console.log(`| ${r.keys} | ${r.target} | **${ratio(r.median, f.median)}** | ${rounds} | ${cpu} |`);
  }
}

table("floor", "Ratios to the floor (target ≤ 1.5×):");
// The floor that asks the status service once per connect: what taking roles from the network
// costs any service, against which the services that do are measured.
table("floor+status", "Ratios to the floor that asks the status service once per connect:");
