// The committed contract (docs/contract/, generated from the protocol crate's wire types) as
// validators: every frame and JSON body the service sends in these tests must match the JSON
// Schema of its packet type or endpoint, or the test that received it fails.
import Ajv2020 from "ajv/dist/2020.js";
import { readFileSync, readdirSync } from "node:fs";
import { join } from "node:path";

const SCHEMAS = new URL("../../docs/contract/schemas/", import.meta.url).pathname;

const ajv = new Ajv2020({ allErrors: true, strict: true });
// The integer formats schemars writes for Rust's integer types.
ajv.addFormat("int64", { type: "number", validate: Number.isSafeInteger });
ajv.addFormat("uint64", { type: "number", validate: (n) => Number.isSafeInteger(n) && n >= 0 });
ajv.addFormat("uint32", { type: "number", validate: (n) => Number.isInteger(n) && n >= 0 && n < 2 ** 32 });

/** The validators of the schemas in one folder, by file name without `.schema.json`. */
function validators(folder) {
  return new Map(
    readdirSync(join(SCHEMAS, folder)).map((file) => [
      file.replace(/\.schema\.json$/, ""),
      ajv.compile(JSON.parse(readFileSync(join(SCHEMAS, folder, file), "utf8"))),
    ]),
  );
}

const SERVER_PACKETS = validators("server");
/** Every server packet type the contract knows. */
export const SERVER_TYPES = new Set(SERVER_PACKETS.keys());
const HTTP_BODIES = validators("http");

function check(validate, value, what, schema) {
  if (!validate(value)) {
    const shown = JSON.stringify(value).slice(0, 500);
    throw new Error(`${what} does not match docs/contract/schemas/${schema}: ${ajv.errorsText(validate.errors, { dataVar: "body" })}\n${shown}`);
  }
}

/** Throws unless `packet` is a server packet of a known type that matches its schema. */
export function checkServerPacket(packet) {
  const validate = SERVER_PACKETS.get(packet?.type);
  if (!validate) throw new Error(`the server sent a packet of a type the contract does not know: ${JSON.stringify(packet).slice(0, 300)}`);
  check(validate, packet, packet.type, `server/${packet.type}.schema.json`);
}

/**
 * Throws unless the JSON body of a response to `path` matches its schema: an error body for any
 * error status, else the body of `/state` or `/health`. Answers that are not JSON (the
 * dashboard's pages, a CORS preflight) are not checked.
 */
export function checkHttpBody(path, status, contentType, body) {
  if (!contentType?.startsWith("application/json")) return;
  const url = new URL(path, "http://service");
  let name;
  if (status >= 400) name = "error";
  else if (url.pathname === "/health") name = "health";
  else if (url.pathname === "/state") name = url.searchParams.get("airport")?.toLowerCase() === "all" ? "public-states" : "public-state";
  else return; // the dashboard's static assets: not part of the API
  check(HTTP_BODIES.get(name), body, `the answer to ${path} (${status})`, `http/${name}.schema.json`);
}
