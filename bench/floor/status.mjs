// The status service for the benchmarks' `vatsim` role source: tests/integration/fake-status.mjs
// on 127.0.0.1 answering every cid as a pilot, at once. bench/serve.mjs --network starts it (in
// its own process, so that it can run on another core than workerd: the real one is not on the
// service's CPU) and reads its URL from the first line it prints. `GET /count` answers how many
// look-ups it has had. Stops with its parent (stdin closed), or at most after --max-seconds.
import { createServer } from "node:http";
import { FakeStatus } from "../../tests/integration/fake-status.mjs";
import { opt } from "../args.mjs";

const maxSeconds = Number(opt("--max-seconds", "3600"));

const status = await new FakeStatus().start();
status.setEveryone("BENCH1", "pilot");
const counter = createServer((_, res) => res.end(String(status.total())));
await new Promise((resolve) => counter.listen(0, "127.0.0.1", resolve));
console.log(JSON.stringify({ url: status.url, count: `http://127.0.0.1:${counter.address().port}/count` }));

const stop = async () => {
  counter.close();
  await status.stop();
  process.exit(0);
};
process.stdin.on("end", stop).resume();
process.on("SIGTERM", stop);
setTimeout(stop, maxSeconds * 1000).unref();
