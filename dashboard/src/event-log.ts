// The page's event log: the newest entries first, at most MAX kept, drawn once per frame.
// It never records a key: nothing that logs here is given one.

const MAX = 300;

export type EventKind = "info" | "warn" | "error" | "update" | "presence";

interface Entry {
  at: Date;
  kind: EventKind;
  text: string;
}

export class EventLog {
  private fresh: Entry[] = [];

  constructor(private readonly onAdd: () => void) {}

  add(kind: EventKind, text: string): void {
    this.fresh.push({ at: new Date(), kind, text });
    if (this.fresh.length > MAX) this.fresh.shift();
    this.onAdd();
  }

  /** Puts the entries added since the last draw at the top of `list`. */
  draw(list: HTMLOListElement): void {
    if (this.fresh.length === 0) return;
    const items = this.fresh.map((entry) => {
      const li = document.createElement("li");
      li.dataset.kind = entry.kind;
      const time = document.createElement("time");
      time.dateTime = entry.at.toISOString();
      time.textContent = entry.at.toLocaleTimeString("en-GB");
      li.append(time, ` ${entry.kind} `, entry.text);
      return li;
    });
    list.prepend(...items.reverse());
    this.fresh = [];
    while (list.childElementCount > MAX) list.lastElementChild!.remove();
  }
}
