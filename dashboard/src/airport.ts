// The airport page, /airport/ICAO: live over /connect as an observer when a key is saved in this
// browser, else read-only from the public GET /state, polled.
import { ConnectionStatus, ObserverConnection } from "./connection";
import { EventLog } from "./event-log";
import { FrameScheduler, h } from "./frame";
import { AirportModel } from "./model";
import { ChangeItem, PublicState, ServerPacket, fetchState, isOn } from "./protocol";
import { RenderStats } from "./stats";
import { VirtualList } from "./virtual-list";

const KEY_STORAGE = "airport-realtime:observer-key";
const POLL_MS = 3_000;
const ROW_HEIGHT = 36;

export function savedKey(): string | null {
  try {
    return localStorage.getItem(KEY_STORAGE);
  } catch {
    return null;
  }
}

export function airportPage(root: HTMLElement, airport: string, stats: RenderStats): void {
  new AirportPage(root, airport, stats).start();
}

class AirportPage {
  private readonly model = new AirportModel();
  private readonly frame = new FrameScheduler(() => this.draw());
  private readonly log: EventLog;
  private readonly list: VirtualList;
  private connection: ObserverConnection | null = null;
  private pollTimer = 0;
  private filter = "";
  private visibleIds: string[] = [];
  private filterDirty = true;
  private selected: string | null = null;
  private statusDirty = true;
  private status: { kind: ConnectionStatus | "read-only"; text: string } = { kind: "connecting", text: "" };
  private readonly ui;

  constructor(
    private readonly root: HTMLElement,
    private readonly airport: string,
    private readonly stats: RenderStats,
  ) {
    this.log = new EventLog(() => this.frame.request());
    this.list = new VirtualList(ROW_HEIGHT, { create: () => this.createRow(), fill: (row, i) => this.fillRow(row, i) }, "Objects", () =>
      this.frame.request(),
    );
    this.ui = this.build();
  }

  start(): void {
    document.title = `${this.airport} · Airport lighting`;
    const key = savedKey();
    if (key) this.goLive(key);
    else this.goReadOnly();
  }

  // --- modes -------------------------------------------------------------------------------

  private goLive(key: string): void {
    clearTimeout(this.pollTimer);
    this.pollTimer = 0;
    this.showKeyForm(false);
    this.connection = new ObserverConnection(this.airport, key, {
      status: (kind, text) => this.setStatus(kind, text),
      snapshot: (snapshot, why, at) => {
        this.stats.snapshotArrived(at);
        this.model.replace(snapshot);
        this.log.add("info", why === "initial" ? `state received (seq ${snapshot.seq})` : `resynchronised from GET_STATE (seq ${snapshot.seq})`);
        this.changed();
      },
      resume: (resume, at) => {
        this.stats.snapshotArrived(at);
        this.model.resume(resume);
        const changed = resume.objects.length + resume.deleted.length;
        this.log.add("info", `resumed from seq ${resume.resumedFrom} to ${resume.seq}: ${changed} object${changed === 1 ? "" : "s"} changed`);
        this.changed();
      },
      change: (packet, at) => this.applyChange(packet, at),
      other: (packet) => this.other(packet),
      log: (kind, text) => this.log.add(kind, text),
      keyRefused: () => this.goReadOnly(),
    });
    this.connection.start();
  }

  private goReadOnly(): void {
    this.connection?.stop();
    this.connection = null;
    this.showKeyForm(true);
    this.setStatus("read-only", `public state every ${POLL_MS / 1000} s`);
    void this.poll();
  }

  private async poll(): Promise<void> {
    const at = performance.now();
    try {
      const state = await fetchState<PublicState>(this.airport);
      if (this.connection) return;
      this.stats.snapshotArrived(at);
      this.logDifferences(state);
      this.model.replace(state, state.pilots);
      this.changed();
    } catch (error) {
      this.log.add("error", `GET /state failed: ${(error as Error).message}`);
    }
    if (!this.connection) this.pollTimer = window.setTimeout(() => void this.poll(), POLL_MS);
  }

  /** In read-only mode the log shows what changed between two polls. */
  private logDifferences(state: PublicState): void {
    const model = this.model;
    if (model.seq === null) {
      this.log.add("info", `state received (seq ${state.seq})`);
      return;
    }
    if (state.seq !== model.seq) {
      let changed = 0;
      const seen = new Set<string>();
      for (const object of state.objects) {
        seen.add(object.id);
        const old = model.objects.get(object.id);
        if (!old || old.timestamp !== object.timestamp || JSON.stringify(old.state) !== JSON.stringify(object.state)) changed++;
      }
      for (const id of model.objects.keys()) if (!seen.has(id)) changed++;
      this.log.add("update", `seq ${model.seq} → ${state.seq}: ${changed} object${changed === 1 ? "" : "s"} changed`);
    }
    const now = new Set(state.controllers);
    for (const cid of now) if (!model.controllers.has(cid)) this.log.add("presence", `controller ${cid} connected`);
    for (const cid of model.controllers) if (!now.has(cid)) this.log.add("presence", `controller ${cid} disconnected`);
  }

  // --- packets -----------------------------------------------------------------------------

  private applyChange(packet: ServerPacket, at: number): void {
    const range = packet.seqFrom !== undefined && packet.seqFrom !== packet.seq ? `${packet.seqFrom}–${packet.seq}` : `${packet.seq}`;
    if (packet.type === "SHARED_STATE_UPDATE") {
      this.model.applySharedPatch(packet.data.sharedStatePatch);
      this.log.add("update", `seq ${range}: shared state (${Object.keys(packet.data.sharedStatePatch).join(", ")}) by ${packet.data.controllerId}`);
    } else {
      const items: ChangeItem[] = packet.type === "STATE_UPDATE" ? [packet.data] : packet.data.updates;
      this.model.applyChanges(items, packet.timestamp ?? Date.now());
      this.log.add("update", `seq ${range}: ${describe(items)}`);
      this.stats.applied(at, items.length);
    }
    this.model.setSeq(packet.seq!);
    this.changed();
  }

  private other(packet: ServerPacket): void {
    switch (packet.type) {
      case "CONTROLLER_CONNECT":
      case "CONTROLLER_DISCONNECT": {
        const cid = packet.data.controllerId;
        const connected = packet.type === "CONTROLLER_CONNECT";
        const ids = new Set(this.model.controllers);
        if (connected) ids.add(cid);
        else ids.delete(cid);
        this.model.setControllers(ids);
        this.log.add("presence", `controller ${cid} ${connected ? "connected" : "disconnected"}`);
        break;
      }
      case "ONLINE_PILOTS":
        this.model.setPilots(packet.data.pilots.map((p: { pilotId: string; callsign: string }) => (p.callsign !== p.pilotId ? `${p.callsign} (${p.pilotId})` : p.pilotId)));
        break;
      case "STOPBAR_CROSSING":
        this.log.add("update", `stopbar ${packet.data.objectId} crossed by ${packet.data.pilotId}`);
        break;
      case "ERROR":
        this.log.add("error", `${packet.data.code}: ${packet.data.message}`);
        break;
      default:
        this.log.add("info", `${packet.type}`);
    }
    this.changed();
  }

  private setStatus(kind: ConnectionStatus | "read-only", text: string): void {
    if (kind !== this.status.kind) this.log.add(kind === "waiting" || kind === "closed" ? "warn" : "info", `status: ${kind}${text ? ` (${text})` : ""}`);
    this.status = { kind, text };
    this.statusDirty = true;
    this.frame.request();
  }

  private changed(): void {
    this.frame.request();
  }

  // --- drawing (once per animation frame) --------------------------------------------------

  private build() {
    const status = h("p", { class: "status", role: "status", "data-status": "connecting" });
    const seq = h("span", { class: "seq", "data-testid": "seq" }, "–");
    const counts = h("p", { class: "counts" });
    const controllers = h("ul", { class: "people", "aria-label": "Controllers online" });
    const pilots = h("ul", { class: "people", "aria-label": "Pilots online" });
    const filter = h("input", { id: "object-filter", type: "search", placeholder: "SB_27L", autocomplete: "off", spellcheck: "false" });
    const inspector = h("pre", { class: "inspector", "aria-live": "polite", tabindex: "0" }, "Select an object to see its whole state.");
    const inspectorTitle = h("h3", {}, "Object");
    const shared = h("pre", { class: "shared", tabindex: "0" });
    const sharedDetails = h("details", { class: "panel" }, h("summary", {}, "Shared state"), shared);
    const keyInput = h("input", { id: "observer-key", type: "password", autocomplete: "off", spellcheck: "false", required: true });
    const keyForm = h(
      "form",
      { class: "key-form", "aria-label": "Observer key" },
      h("label", { for: "observer-key" }, "Observer key"),
      keyInput,
      h("button", { type: "submit" }, "Connect live"),
      h("p", { class: "muted small" }, "Kept in this browser only (local storage). Without a key the page shows the public state, refreshed every few seconds."),
    );
    const forget = h("button", { type: "button", class: "secondary" }, "Forget key");
    const liveBar = h("p", { class: "live-bar" }, "Live with the key saved in this browser. ", forget);
    const logList = h("ol", { class: "log", "aria-label": "Event log" });

    keyForm.addEventListener("submit", (event) => {
      event.preventDefault();
      const key = keyInput.value.trim();
      keyInput.value = "";
      if (!key) return;
      try {
        localStorage.setItem(KEY_STORAGE, key);
      } catch {
        this.log.add("warn", "local storage unavailable: the key is kept for this page only");
      }
      this.goLive(key);
    });
    forget.addEventListener("click", () => {
      localStorage.removeItem(KEY_STORAGE);
      this.log.add("info", "key forgotten");
      this.goReadOnly();
      keyInput.focus();
    });
    filter.addEventListener("input", () => {
      this.filter = filter.value.trim().toUpperCase();
      this.filterDirty = true;
      this.frame.request();
    });
    this.list.element.addEventListener("click", (event) => {
      const button = (event.target as HTMLElement).closest<HTMLButtonElement>("button[data-id]");
      if (button) this.select(button.dataset.id!);
    });
    this.list.element.addEventListener("keydown", (event) => this.listKey(event));
    sharedDetails.addEventListener("toggle", () => {
      this.model.dirty.shared = true;
      this.frame.request();
    });

    this.root.replaceChildren(
      h(
        "section",
        { class: "airport-head" },
        h("h1", {}, this.airport),
        status,
        h("p", { class: "seq-line" }, "seq ", seq),
      ),
      keyForm,
      liveBar,
      h(
        "div",
        { class: "grid" },
        h(
          "section",
          { class: "panel objects", "aria-labelledby": "objects-title" },
          h("h2", { id: "objects-title" }, "Objects"),
          counts,
          h("div", { class: "filter" }, h("label", { for: "object-filter" }, "Filter"), filter),
          this.list.element,
        ),
        h(
          "div",
          { class: "side" },
          h("section", { class: "panel" }, inspectorTitle, inspector),
          h("section", { class: "panel" }, h("h2", {}, "Controllers"), controllers, h("h2", {}, "Pilots"), pilots),
          sharedDetails,
        ),
      ),
      h("section", { class: "panel" }, h("h2", {}, "Events"), logList),
    );
    return { status, seq, counts, controllers, pilots, inspector, inspectorTitle, shared, sharedDetails, keyForm, liveBar, logList };
  }

  private showKeyForm(show: boolean): void {
    this.ui.keyForm.hidden = !show;
    this.ui.liveBar.hidden = show;
  }

  private draw(): void {
    const start = performance.now();
    const model = this.model;
    const ui = this.ui;
    if (this.statusDirty) {
      this.statusDirty = false;
      ui.status.dataset.status = this.status.kind;
      ui.status.textContent = this.status.text ? `${this.status.kind}: ${this.status.text}` : this.status.kind;
    }
    if (model.dirty.seq || model.dirty.objects) {
      ui.seq.textContent = model.seq === null ? "–" : String(model.seq);
    }
    const objectsDrawn = model.dirty.objects || model.dirty.order || this.filterDirty;
    if (model.dirty.order || this.filterDirty || model.changedIds.size > 0) {
      const ids = model.ids();
      if (model.dirty.order || this.filterDirty) {
        this.visibleIds = this.filter ? ids.filter((id) => id.toUpperCase().includes(this.filter)) : ids;
      }
    }
    if (objectsDrawn) {
      ui.counts.textContent = `${counted(model.objects.size, "object")}, ${model.lightsOn.toLocaleString("en")} on${this.filter ? `; ${this.visibleIds.length.toLocaleString("en")} shown` : ""}`;
      if (this.selected && model.changedIds.has(this.selected)) this.drawInspector();
    }
    this.list.draw(this.visibleIds.length, objectsDrawn);
    if (model.dirty.people) {
      ui.controllers.replaceChildren(...peopleItems([...model.controllers].sort(), "none"));
      ui.pilots.replaceChildren(...peopleItems(model.pilots, this.connection || model.seq !== null ? "none" : "–"));
    }
    if (model.dirty.shared && ui.sharedDetails.open) {
      ui.shared.textContent = JSON.stringify(model.sharedState, null, 2);
    }
    if (model.dirty.shared) {
      ui.sharedDetails.querySelector("summary")!.textContent = `Shared state (${Object.keys(model.sharedState).length} keys)`;
    }
    this.log.draw(ui.logList);
    model.dirty = { objects: false, order: false, shared: false, people: false, seq: false };
    model.changedIds.clear();
    this.filterDirty = false;
    if (model.seq !== null) this.stats.drew(start, objectsDrawn);
  }

  private createRow(): HTMLElement {
    const row = h("div", { class: "row" });
    const button = h("button", { type: "button", class: "object" });
    button.append(h("span", { class: "lamp", "aria-hidden": "true" }), h("span", { class: "id" }), h("span", { class: "value" }), h("span", { class: "by" }));
    row.append(button);
    return row;
  }

  private fillRow(row: HTMLElement, index: number): void {
    const id = this.visibleIds[index];
    const entry = this.model.objects.get(id);
    const button = row.firstElementChild as HTMLButtonElement;
    const [, idSpan, value, by] = button.children as unknown as HTMLElement[];
    const state = entry?.state;
    const kind = state === true ? "on" : state === false ? "off" : "object";
    button.dataset.id = id;
    button.dataset.state = kind;
    button.setAttribute("aria-pressed", String(id === this.selected));
    idSpan.textContent = id;
    value.textContent = kind === "object" ? summary(state) : kind;
    by.textContent = entry?.controllerId ? `by ${entry.controllerId}` : "";
  }

  private select(id: string): void {
    this.selected = id;
    this.drawInspector();
    this.list.draw(this.visibleIds.length, true);
  }

  private drawInspector(): void {
    const id = this.selected!;
    const entry = this.model.objects.get(id);
    this.ui.inspectorTitle.textContent = `Object ${id}`;
    this.ui.inspector.textContent = entry
      ? `${JSON.stringify(entry.state, null, 2)}\n\n${typeof entry.state === "boolean" ? (entry.state ? "on" : "off") : "an object state"} · by ${entry.controllerId || "?"} · ${new Date(entry.timestamp).toLocaleTimeString("en-GB")}`
      : "deleted";
  }

  /** Up and down move the selection through the whole list, not only the rows drawn. */
  private listKey(event: KeyboardEvent): void {
    if (event.key !== "ArrowDown" && event.key !== "ArrowUp" && event.key !== "Home" && event.key !== "End") return;
    if (this.visibleIds.length === 0) return;
    event.preventDefault();
    const current = this.selected ? this.visibleIds.indexOf(this.selected) : -1;
    const last = this.visibleIds.length - 1;
    const next = event.key === "Home" ? 0 : event.key === "End" ? last : Math.min(last, Math.max(0, current + (event.key === "ArrowDown" ? 1 : -1)));
    this.list.reveal(next);
    this.select(this.visibleIds[next]);
    requestAnimationFrame(() => this.list.element.querySelector<HTMLButtonElement>(`button[data-id="${CSS.escape(this.visibleIds[next])}"]`)?.focus());
  }
}

function peopleItems(people: string[], empty: string): HTMLElement[] {
  return people.length ? people.map((p) => h("li", {}, p)) : [h("li", { class: "muted" }, empty)];
}

/** `n` and the noun, plural unless one: "1 object", "10,000 objects". */
function counted(n: number, noun: string): string {
  return `${n.toLocaleString("en")} ${noun}${n === 1 ? "" : "s"}`;
}

/** A short text for a state that is a JSON object. */
function summary(state: unknown): string {
  const text = JSON.stringify(state) ?? "";
  return text.length > 60 ? `${text.slice(0, 57)}…` : text;
}

/** The log line of a change's items: the object when there is one, else how many. */
function describe(items: ChangeItem[]): string {
  const by = items[0]?.controllerId ? ` by ${items[0].controllerId}` : "";
  if (items.length === 1) {
    const item = items[0];
    const what = item.state === undefined ? "deleted" : item.state === true ? "on" : item.state === false ? "off" : summary(item.state);
    return `${item.objectId} ${what}${by}`;
  }
  const on = items.filter((item) => isOn(item.state)).length;
  return `${items.length} objects (${on} on)${by}`;
}
