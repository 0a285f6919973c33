// Rendering timings, kept in memory for the browser tests and BENCHMARKS.md to read
// (`window.dashboardStats`): time to first render, and per frame that drew changes, the time
// spent applying their packets and drawing them, and the delay from the first packet to drawn.

const KEEP = 1000;

export interface FrameStat {
  applyMs: number;
  drawMs: number;
  latencyMs: number;
  changes: number;
}

export class RenderStats {
  /** From navigation start to the end of the first draw of the airport's objects. */
  firstRenderMs: number | null = null;
  /** From the snapshot's arrival (before parsing) to the end of that draw. */
  snapshotToRenderMs: number | null = null;
  frames: FrameStat[] = [];
  private applyMs = 0;
  private changes = 0;
  private since: number | null = null;
  private snapshotAt: number | null = null;

  /** A packet arrived at `at` and took until now to parse and apply. */
  applied(at: number, changes: number): void {
    this.applyMs += performance.now() - at;
    this.changes += changes;
    this.since ??= at;
  }

  snapshotArrived(at: number): void {
    this.snapshotAt ??= at;
  }

  /** A frame drew from `start` to now. */
  drew(start: number, objectsDrawn: boolean): void {
    const end = performance.now();
    if (objectsDrawn && this.firstRenderMs === null && this.snapshotAt !== null) {
      this.firstRenderMs = end;
      this.snapshotToRenderMs = end - this.snapshotAt;
    } else if (this.since !== null) {
      this.frames.push({ applyMs: this.applyMs, drawMs: end - start, latencyMs: end - this.since, changes: this.changes });
      if (this.frames.length > KEEP) this.frames.shift();
    }
    this.applyMs = 0;
    this.changes = 0;
    this.since = null;
  }
}
