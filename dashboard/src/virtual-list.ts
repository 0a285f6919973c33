// A list that puts only the rows in view (and a few around them) in the DOM, so that an airport
// of 10,000 objects scrolls and updates as fast as one of ten. Rows have one fixed height.

export interface RowRenderer {
  /** Fills `row` (a reused element) for item `index`. */
  fill(row: HTMLElement, index: number): void;
  create(): HTMLElement;
}

const OVERSCAN = 8;

export class VirtualList {
  readonly element: HTMLElement;
  private readonly spacer: HTMLElement;
  private readonly window: HTMLElement;
  private count = 0;
  private rows: HTMLElement[] = [];
  private first = -1;

  constructor(
    private readonly rowHeight: number,
    private readonly renderer: RowRenderer,
    label: string,
    private readonly onScroll: () => void,
  ) {
    this.element = document.createElement("div");
    this.element.className = "vlist";
    this.element.setAttribute("role", "list");
    this.element.setAttribute("aria-label", label);
    this.spacer = document.createElement("div");
    this.spacer.className = "vlist-spacer";
    this.window = document.createElement("div");
    this.window.className = "vlist-window";
    this.spacer.append(this.window);
    this.element.append(this.spacer);
    this.element.addEventListener("scroll", () => this.onScroll(), { passive: true });
  }

  /** Draws the rows in view for `count` items; `all` refills rows even if the range is unchanged. */
  draw(count: number, all: boolean): void {
    if (count !== this.count) {
      this.count = count;
      this.spacer.style.height = `${count * this.rowHeight}px`;
      all = true;
    }
    // The scroll position may still be past the end of a list that just got shorter.
    const inView = Math.ceil((this.element.clientHeight || 600) / this.rowHeight);
    const top = Math.min(Math.floor(this.element.scrollTop / this.rowHeight), count - inView);
    const first = Math.max(0, top - OVERSCAN);
    const needed = Math.min(count, top + inView + OVERSCAN) - first;
    while (this.rows.length < needed) {
      const row = this.renderer.create();
      row.setAttribute("role", "listitem");
      this.rows.push(row);
      this.window.append(row);
    }
    while (this.rows.length > needed) this.rows.pop()!.remove();
    if (!all && first === this.first) return;
    this.first = first;
    this.window.style.transform = `translateY(${first * this.rowHeight}px)`;
    for (let i = 0; i < needed; i++) this.renderer.fill(this.rows[i], first + i);
  }

  /** Scrolls so that item `index` is in view. */
  reveal(index: number): void {
    const top = index * this.rowHeight;
    const viewport = this.element.clientHeight;
    if (top < this.element.scrollTop) this.element.scrollTop = top;
    else if (top + this.rowHeight > this.element.scrollTop + viewport) {
      this.element.scrollTop = top + this.rowHeight - viewport;
    }
  }
}
