// The Worker's entry: worker-build's module (built as build/worker.js, then bundled with this
// file into build/index.js by scripts/build.sh), with one check in front of the airport's Wasm.
// A socket the airport has closed (a flooder's, 4008) may still have thousands of frames queued,
// and the runtime hands over each: they are dropped here, before crossing into Wasm, which
// costs more than the frame's own look-up (BENCHMARKS.md §8). src/airport/sockets.rs adds the
// sockets to the set.
import { DurableObject } from "cloudflare:workers";
import { AirportObject, PersonLookup } from "../build/worker.js";

export * from "../build/worker.js";
export { default } from "../build/worker.js";

const closed = (globalThis.airportClosedSockets ??= new WeakSet());
const { prototype } = AirportObject;
const handle = prototype.webSocketMessage;
prototype.webSocketMessage = function webSocketMessage(ws, message) {
  if (closed.has(ws)) return undefined;
  return handle.call(this, ws, message);
};

// Airports ask a person's look-up object over RPC (src/people/person_lookup.rs), which the
// runtime offers only on classes deriving from DurableObject; worker-build's class does not.
Object.setPrototypeOf(PersonLookup.prototype, DurableObject.prototype);
Object.setPrototypeOf(PersonLookup, DurableObject);
