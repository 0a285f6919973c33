// The observer's WebSocket to /connect: reconnects with back-off after a close, answers
// heartbeats, watches `seq` and asks GET_STATE when a change was missed.
import { Resume, ServerPacket, Snapshot } from "./protocol";

/** What the connection tells its owner. */
export interface ConnectionEvents {
  status(status: ConnectionStatus, detail: string): void;
  /** INITIAL_STATE or the STATE_SNAPSHOT of a resync: replace everything. */
  snapshot(snapshot: Snapshot, why: "initial" | "resync", receivedAt: number): void;
  /** An INITIAL_STATE that resumes the state at the connection's last `seq`: apply it. */
  resume(resume: Resume, receivedAt: number): void;
  /** A change packet in sequence (STATE_UPDATE, MULTI_STATE_UPDATE, SHARED_STATE_UPDATE). */
  change(packet: ServerPacket, receivedAt: number): void;
  /** Any other packet (CONTROLLER_CONNECT, ONLINE_PILOTS, ERROR, …). */
  other(packet: ServerPacket): void;
  log(kind: "info" | "warn" | "error", text: string): void;
  /** The key was refused (401/403): do not try again with it. */
  keyRefused(reason: string): void;
}

export type ConnectionStatus = "connecting" | "live" | "resyncing" | "waiting" | "closed";

/** Reconnect delays: full jitter over an exponential ceiling (AWS architecture blog). */
export const BACKOFF = { baseMs: 500, capMs: 30_000 };
export const backoffDelay = (attempt: number, random = Math.random): number =>
  random() * Math.min(BACKOFF.capMs, BACKOFF.baseMs * 2 ** attempt);

/** Close codes after which reconnecting cannot help (docs/protocol.md). */
const FINAL_CLOSES: Record<number, string> = {
  1000: "closed",
  4001: "the key was revoked",
};

const CHANGE_TYPES = new Set(["STATE_UPDATE", "MULTI_STATE_UPDATE", "SHARED_STATE_UPDATE"]);
/** How often the online pilots are asked for (the protocol has no pilot presence packets). */
const PILOTS_EVERY_MS = 15_000;

export class ObserverConnection {
  private ws: WebSocket | null = null;
  private attempt = 0;
  private retryTimer = 0;
  private watchdog = 0;
  private pilotsTimer = 0;
  private silenceMs = 90_000;
  private seq: number | null = null;
  /** The airport's history id from the last INITIAL_STATE: with `seq`, where to resume. */
  private history: string | null = null;
  private resyncId: string | null = null;
  private nextRequest = 1;
  private stopped = false;

  constructor(
    private readonly airport: string,
    private readonly key: string,
    private readonly events: ConnectionEvents,
  ) {}

  start(): void {
    this.stopped = false;
    this.open();
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.retryTimer);
    this.clearTimers();
    this.ws?.close(1000);
    this.ws = null;
    this.events.status("closed", "disconnected");
  }

  private open(): void {
    this.events.status("connecting", this.attempt === 0 ? "connecting" : `reconnecting (attempt ${this.attempt + 1})`);
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    // What the page shows is the airport at `seq` unless a resync is under way: then resume
    // from there (docs/protocol.md §8), else ask for the full state and the history id.
    const resume = this.history !== null && this.seq !== null && this.resyncId === null ? `${this.history}.${this.seq}` : "";
    const url = `${scheme}//${location.host}/connect?airport=${this.airport}&resume=${encodeURIComponent(resume)}`;
    // The key travels as a subprotocol (docs/protocol.md §1), never in the URL, where it would
    // land in history, proxies and request logs. A key a subprotocol cannot carry is no key.
    if (!/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/.test(this.key)) {
      this.events.status("closed", "key refused: INVALID_API_KEY");
      this.events.keyRefused("INVALID_API_KEY");
      return;
    }
    const ws = new WebSocket(url, ["airport-realtime", `airport-key.${this.key}`]);
    this.ws = ws;
    let opened = false;
    ws.addEventListener("open", () => {
      opened = true;
    });
    ws.addEventListener("message", (event) => {
      if (this.ws === ws) this.receive(ws, event.data);
    });
    ws.addEventListener("close", (event) => {
      if (this.ws !== ws) return;
      this.ws = null;
      this.clearTimers();
      void this.closed(event.code, event.reason, opened);
    });
  }

  private async closed(code: number, reason: string, opened: boolean): Promise<void> {
    if (this.stopped) return;
    const final = FINAL_CLOSES[code];
    if (final) {
      this.events.log("error", `closed ${code}: ${reason || final}`);
      this.events.status("closed", final);
      if (code === 4001) this.events.keyRefused(final);
      return;
    }
    if (!opened) {
      // A refused upgrade shows in a browser only as a failed socket: ask /state, which checks a
      // key given in the Authorization header, whether the key is the reason.
      const refusal = await this.keyRefusal();
      if (refusal) {
        this.events.log("error", `key refused: ${refusal}`);
        this.events.status("closed", `key refused: ${refusal}`);
        this.events.keyRefused(refusal);
        return;
      }
    }
    const delay = backoffDelay(this.attempt++);
    const what = opened ? `closed ${code}${reason ? `: ${reason}` : ""}` : "could not connect";
    this.events.log("warn", `${what}; reconnecting in ${(delay / 1000).toFixed(1)} s`);
    this.events.status("waiting", `${what}; retrying in ${(delay / 1000).toFixed(1)} s`);
    this.retryTimer = window.setTimeout(() => this.open(), delay);
  }

  /** The error code when the service refuses the key (401/403), else null. */
  private async keyRefusal(): Promise<string | null> {
    try {
      const response = await fetch(`/state?airport=${this.airport}`, {
        headers: { Authorization: `Bearer ${this.key}` },
        cache: "no-store",
      });
      if (response.status !== 401 && response.status !== 403) return null;
      const body = await response.json().catch(() => null);
      return body?.error?.code ?? String(response.status);
    } catch {
      return null;
    }
  }

  private receive(ws: WebSocket, data: unknown): void {
    const at = performance.now();
    this.armWatchdog(ws);
    if (typeof data !== "string") return;
    let packet: ServerPacket;
    try {
      packet = JSON.parse(data);
    } catch {
      this.events.log("error", "unreadable frame");
      return;
    }
    switch (packet.type) {
      case "HEARTBEAT":
        this.send({ type: "HEARTBEAT_ACK" });
        return;
      case "HEARTBEAT_ACK":
        return;
      case "INITIAL_STATE":
        this.attempt = 0;
        this.silenceMs = Math.max(packet.data.heartbeatIntervalMs ?? 60_000, packet.data.idleTimeoutMs ?? 70_000) + 20_000;
        this.armWatchdog(ws);
        this.initial(packet.data, at);
        this.events.status("live", `connected as ${packet.data.connectionType} ${packet.data.cid}`);
        this.askPilots();
        return;
      case "STATE_SNAPSHOT":
        if (packet.requestId !== undefined && packet.requestId === this.resyncId) {
          this.resyncId = null;
          this.seq = packet.data.seq;
          this.events.snapshot(packet.data, "resync", at);
          this.events.status("live", "resynchronised");
        }
        return;
    }
    if (CHANGE_TYPES.has(packet.type) && typeof packet.seq === "number") {
      this.change(packet, packet.seq, at);
      return;
    }
    this.events.other(packet);
  }

  /** A full state replaces; a resume of our `seq` is applied; a resume of another is a gap. */
  private initial(data: any, at: number): void {
    this.history = typeof data.history === "string" ? data.history : null;
    const from = data.resumedFrom;
    if (from === undefined) {
      this.seq = data.seq;
      this.resyncId = null;
      this.events.snapshot(data, "initial", at);
    } else if (from === this.seq && this.resyncId === null) {
      this.seq = data.seq;
      this.events.resume(data, at);
    } else {
      this.events.log("warn", `a resume from seq ${from}, but the page is at ${this.seq}; asking GET_STATE`);
      this.resync();
    }
  }

  private resync(): void {
    this.resyncId = `resync-${this.nextRequest++}`;
    this.send({ type: "GET_STATE", requestId: this.resyncId });
  }

  /** A change in sequence is applied; one after a gap starts a resync, in which changes wait. */
  private change(packet: ServerPacket, seq: number, at: number): void {
    if (this.resyncId !== null || this.seq === null) return; // the snapshot will include it
    if (seq <= this.seq) return; // already seen
    const from = packet.seqFrom ?? seq;
    if (from > this.seq + 1) {
      this.events.log("warn", `seq gap: had ${this.seq}, got ${from}; asking GET_STATE`);
      this.resync();
      this.events.status("resyncing", `missed changes ${this.seq + 1}–${from - 1}`);
      return;
    }
    this.seq = seq;
    this.events.change(packet, at);
  }

  private askPilots(): void {
    clearTimeout(this.pilotsTimer);
    this.send({ type: "GET_ONLINE_PILOTS" });
    this.pilotsTimer = window.setTimeout(() => this.askPilots(), PILOTS_EVERY_MS);
  }

  /** With no frame for longer than the server's heartbeat and idle periods, the link is dead. */
  private armWatchdog(ws: WebSocket): void {
    clearTimeout(this.watchdog);
    this.watchdog = window.setTimeout(() => {
      if (this.ws !== ws) return;
      this.events.log("warn", "no frame from the service in time; reconnecting");
      this.ws = null;
      ws.close();
      this.clearTimers();
      void this.closed(1006, "silent", true);
    }, this.silenceMs);
  }

  private clearTimers(): void {
    clearTimeout(this.watchdog);
    clearTimeout(this.pilotsTimer);
  }

  private send(packet: object): void {
    if (this.ws?.readyState === WebSocket.OPEN) this.ws.send(JSON.stringify(packet));
  }
}
