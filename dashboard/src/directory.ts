// The home page, /: the live airports from the public GET /state?airport=all, polled.
import { FrameScheduler, h } from "./frame";
import { PublicState, fetchState, isOn } from "./protocol";

const POLL_MS = 3_000;

interface Row {
  airport: string;
  controllers: number;
  pilots: number;
  on: number;
  objects: number;
  seq: number;
}

export function directoryPage(root: HTMLElement): void {
  let rows: Row[] = [];
  let filter = "";
  let error = "";
  let updated: Date | null = null;
  const frame = new FrameScheduler(draw);

  const search = h("input", { id: "directory-filter", type: "search", placeholder: "EGLL", autocomplete: "off", spellcheck: "false" });
  const note = h("p", { class: "muted", role: "status" }, "Loading…");
  const body = h("tbody");
  const table = h(
    "table",
    { class: "airports" },
    h("caption", {}, "Airports with a controller or pilot connected"),
    h(
      "thead",
      {},
      h("tr", {}, ...["Airport", "Controllers", "Pilots", "Lights on", "seq"].map((t) => h("th", { scope: "col" }, t))),
    ),
    body,
  );
  root.replaceChildren(
    h("h1", {}, "Live airports"),
    h("div", { class: "filter" }, h("label", { for: "directory-filter" }, "Search by ICAO"), search),
    note,
    h("div", { class: "table-wrap" }, table),
  );
  search.addEventListener("input", () => {
    filter = search.value.trim().toUpperCase();
    frame.request();
  });

  async function poll(): Promise<void> {
    try {
      const { states } = await fetchState<{ states: PublicState[] }>("all");
      rows = states.map((s) => ({
        airport: s.airport,
        controllers: s.controllers.length,
        pilots: s.pilots.length,
        on: s.objects.filter((o) => isOn(o.state)).length,
        objects: s.objects.length,
        seq: s.seq,
      }));
      error = "";
      updated = new Date();
    } catch (e) {
      error = `Could not read the airports: ${(e as Error).message}. Retrying.`;
    }
    frame.request();
    setTimeout(() => void poll(), POLL_MS);
  }

  function draw(): void {
    const shown = rows.filter((r) => r.airport.includes(filter));
    body.replaceChildren(
      ...shown.map((r) =>
        h(
          "tr",
          { "data-airport": r.airport },
          h("th", { scope: "row" }, h("a", { href: `/airport/${r.airport}` }, r.airport)),
          h("td", {}, String(r.controllers)),
          h("td", {}, String(r.pilots)),
          h("td", {}, `${r.on} / ${r.objects}`),
          h("td", {}, String(r.seq)),
        ),
      ),
    );
    note.textContent =
      error ||
      (rows.length === 0
        ? "No airport is live right now."
        : `${shown.length} of ${rows.length} live airport${rows.length === 1 ? "" : "s"}; updated ${updated?.toLocaleTimeString("en-GB")}.`);
  }

  void poll();
}
