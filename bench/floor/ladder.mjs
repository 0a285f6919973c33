// Diagnosis only (bench/run.sh --only diagnose): the floor plus one of the costs the service has
// and the floor has not, each switched on by a binding, to tell which one a gap comes from.
// These are JavaScript stand-ins for what the Rust service does, not the service itself.
//   AUTH=1    the Worker hashes the key (SHA-256) and looks the account up in D1 (the same
//             query as src/people/accounts.rs) before handing the upgrade to the object
//   SQL=1     each frame writes its object row and bumps a seq row in the object's SQLite, so
//             the output gate holds the forwarded frames until the write is durable
//   ATTACH=1  each frame rewrites the sender's attachment (last-seen time), as the service does
//   BYTES=1   each forwarded frame is padded with spaces to the length of the service's broadcast
//             of it: the contract adds `,"controllerId":"<cid>"` (25 bytes with the demo cids) to
//             every update and `airport`, `timestamp` and `seq` (about 56 bytes) to the envelope
//   DROP=1    a socket is closed (4008) at its first frame that is not JSON, and every frame of a
//             closed socket is dropped before anything else is done with it: the least work a
//             flood of unreadable frames can cost (`floor+drop`, bench/run.sh --only flood-drop)
//   KEY_IN_OBJECT=1  the object, not the Worker, hashes the key and looks the account up in D1,
//             as the service does: the keys that arrive while a query is under way go into the
//             next one, so that a burst of connects shares queries
//   ALARM=1   the first connect of a wake-up reads the object's alarm and, if none is set, sets
//             it a heartbeat ahead before accepting (the service's heartbeat runs on the alarm)
//   STATUS=URL the Worker asks the status service at URL for the person's connection (the request
//             every connect under ROLE_SOURCE=vatsim needs when nothing recent is known of the
//             person) and answers 503 unless it answers 200: the floor of a service that takes
//             roles from the network (bench/serve.mjs --network serves it as `floor+status`)
export default {
  async fetch(request, env) {
    const url = new URL(request.url);
    const airport = (url.searchParams.get("airport") ?? "").toUpperCase();
    if (env.AUTH === "1" && !(await knownKey(env, url))) {
      return new Response('{"error":{"code":"INVALID_API_KEY"}}', { status: 401 });
    }
    if (env.STATUS) {
      const status = await fetch(`${env.STATUS}/users/info?cid=${cidOf(url.searchParams.get("key") ?? "")}`);
      await status.text();
      if (!status.ok) return new Response('{"error":{"code":"UPSTREAM_UNAVAILABLE"}}', { status: 503 });
    }
    return env.FLOOR.get(env.FLOOR.idFromName(airport)).fetch(request);
  },
};

/** Whether the request's key is an account's: its SHA-256 looked up as src/people/accounts.rs does. */
async function knownKey(env, url) {
  const row = await env.DB.prepare(
    "SELECT a.cid, a.role, a.banned, a.banned_until FROM api_keys k JOIN accounts a ON a.cid = k.cid WHERE k.key_hash = ?1 AND k.revoked_at IS NULL",
  )
    .bind(await keyHash(url))
    .first();
  return row !== null;
}

async function keyHash(url) {
  const key = url.searchParams.get("key") ?? "";
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(key));
  return [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, "0")).join("");
}

/** The known ones of `hashes`, in one query. */
async function knownKeys(env, hashes) {
  const { results } = await env.DB.prepare(
    "SELECT k.key_hash FROM api_keys k JOIN accounts a ON a.cid = k.cid WHERE k.key_hash IN (SELECT value FROM json_each(?1)) AND k.revoked_at IS NULL",
  )
    .bind(JSON.stringify([...new Set(hashes)]))
    .all();
  return new Set(results.map((row) => row.key_hash));
}

/** Keys looked up in batches: the first alone, those that arrive meanwhile together in the next. */
class Batches {
  constructor(run) {
    this.run = run;
    this.waiting = null;
    this.busy = false;
  }
  async has(key) {
    if (!this.waiting) {
      const waiting = { keys: [] };
      waiting.found = new Promise((resolve, reject) => Object.assign(waiting, { resolve, reject }));
      this.waiting = waiting;
    }
    const waiting = this.waiting;
    waiting.keys.push(key);
    if (!this.busy) this.next();
    return (await waiting.found).has(key);
  }
  async next() {
    const batch = this.waiting;
    if (!batch) return;
    this.waiting = null;
    this.busy = true;
    try {
      batch.resolve(await this.run(batch.keys));
    } catch (error) {
      batch.reject(error);
    }
    this.busy = false;
    this.next();
  }
}

/** The benchmark's person behind a key: `BARS_` and i in hex is cid 3,000,000 + i (serve.mjs). */
function cidOf(key) {
  const i = key.startsWith("BARS_") ? parseInt(key.slice(5), 16) : 0;
  return 3_000_000 + (Number.isSafeInteger(i) ? i : 0);
}

export class FloorObject {
  constructor(ctx, env) {
    this.ctx = ctx;
    this.env = env;
    console.log('{"event":"floor_constructed"}');
    if (env.SQL === "1") {
      ctx.storage.sql.exec(
        "CREATE TABLE IF NOT EXISTS objects (id TEXT PRIMARY KEY, state TEXT NOT NULL, updated_at INTEGER NOT NULL);" +
          "CREATE TABLE IF NOT EXISTS airport (id INTEGER PRIMARY KEY, seq INTEGER NOT NULL);" +
          "INSERT OR IGNORE INTO airport (id, seq) VALUES (1, 0);",
      );
    }
  }
  async fetch(request) {
    if (this.env.KEY_IN_OBJECT === "1") {
      this.keys ??= new Batches((hashes) => knownKeys(this.env, hashes));
      if (!(await this.keys.has(await keyHash(new URL(request.url))))) {
        return new Response('{"error":{"code":"INVALID_API_KEY"}}', { status: 401 });
      }
    }
    if (this.env.ALARM === "1") {
      const { storage } = this.ctx;
      this.alarm ??= storage.getAlarm().then((at) => at ?? storage.setAlarm(Date.now() + 60_000));
      await this.alarm;
    }
    const { 0: client, 1: server } = new WebSocketPair();
    this.ctx.acceptWebSocket(server);
    if (this.env.ATTACH === "1") server.serializeAttachment({ id: Math.random(), lastSeen: Date.now(), left: false });
    server.send('{"type":"INITIAL_STATE","data":{}}');
    return new Response(null, { status: 101, webSocket: client });
  }
  webSocketMessage(ws, message) {
    if (this.env.DROP === "1") {
      if (closed.has(ws)) return;
      try {
        JSON.parse(message);
      } catch {
        closed.add(ws);
        ws.close(4008, "flood");
        return;
      }
    }
    if (this.env.ATTACH === "1") {
      const a = ws.deserializeAttachment();
      a.lastSeen = Date.now();
      ws.serializeAttachment(a);
    }
    if (this.env.SQL === "1") {
      this.ctx.storage.sql.exec(
        "INSERT OR REPLACE INTO objects (id, state, updated_at) VALUES (?, ?, ?)",
        String(message.length),
        typeof message === "string" ? message.slice(0, 200) : "",
        Date.now(),
      );
      this.ctx.storage.sql.exec("UPDATE airport SET seq = seq + 1 WHERE id = 1");
    }
    if (this.env.BYTES === "1" && typeof message === "string") message = padded(message);
    // A socket DROP closed is still listed until its close completes; sending to it throws.
    for (const other of this.ctx.getWebSockets()) if (other !== ws && !closed.has(other)) other.send(message);
  }
  alarm() {}
  webSocketClose(ws) {
    ws.close();
  }
}

/** DROP: the sockets closed for an unreadable frame. */
const closed = new WeakSet();

function padded(message) {
  let updates = 0;
  for (let i = message.indexOf('"objectId"'); i !== -1; i = message.indexOf('"objectId"', i + 1)) updates++;
  return message + " ".repeat(25 * updates + 56);
}
