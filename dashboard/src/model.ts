// One airport's state as the dashboard holds it: objects, shared state, people, seq. Changes
// mark what must be drawn again; the view draws it once per animation frame.
import { ChangeItem, ObjectRecord, Resume, Snapshot, isOn } from "./protocol";

export interface ObjectEntry {
  state: unknown;
  controllerId: string;
  timestamp: number;
}

export class AirportModel {
  objects = new Map<string, ObjectEntry>();
  sharedState: Record<string, unknown> = {};
  controllers = new Set<string>();
  pilots: string[] = [];
  seq: number | null = null;
  offline = false;
  lightsOn = 0;
  /** Object ids in order; rebuilt only when an object is added or deleted. */
  private sortedIds: string[] | null = [];
  /** What changed since the view last drew. */
  dirty = { objects: true, order: true, shared: true, people: true, seq: true };
  /** Ids whose state changed since the last draw (for the inspector and row flashes). */
  changedIds = new Set<string>();

  /** Replaces everything with a snapshot (INITIAL_STATE, STATE_SNAPSHOT, GET /state). */
  replace(snapshot: Snapshot, pilots?: string[]): void {
    this.objects = new Map();
    this.lightsOn = 0;
    for (const record of snapshot.objects) this.put(record.id, record);
    this.sharedState = snapshot.sharedState ?? {};
    this.controllers = new Set(snapshot.controllers);
    if (pilots) this.pilots = pilots;
    this.offline = snapshot.offline;
    this.seq = snapshot.seq;
    this.sortedIds = null;
    this.markAll();
  }

  /** Brings the state at `resume.resumedFrom` up to `resume.seq` (a resuming INITIAL_STATE). */
  resume(resume: Resume): void {
    for (const id of resume.deleted) this.remove(id);
    for (const record of resume.objects) {
      this.put(record.id, record);
      this.changedIds.add(record.id);
    }
    if (resume.sharedState !== undefined) {
      this.sharedState = resume.sharedState;
      this.dirty.shared = true;
    }
    this.setControllers(resume.controllers);
    this.offline = resume.offline;
    this.setSeq(resume.seq);
    this.dirty.objects = true;
  }

  /** Applies the items of one change packet, stamped `timestamp`. */
  applyChanges(items: ChangeItem[], timestamp: number): void {
    for (const item of items) {
      if (item.state === undefined) {
        this.remove(item.objectId);
      } else {
        const record = { state: item.state, controllerId: item.controllerId ?? "", timestamp };
        this.put(item.objectId, { id: item.objectId, ...record });
      }
      this.changedIds.add(item.objectId);
    }
    this.dirty.objects = true;
  }

  private remove(id: string): void {
    const old = this.objects.get(id);
    if (!old) return;
    if (isOn(old.state)) this.lightsOn--;
    this.objects.delete(id);
    this.sortedIds = null;
    this.changedIds.add(id);
  }

  /** A SHARED_STATE_UPDATE's patch, merged by RFC 7396 as the service does. */
  applySharedPatch(patch: Record<string, unknown>): void {
    this.sharedState = mergePatch(this.sharedState, patch) as Record<string, unknown>;
    this.dirty.shared = true;
  }

  setControllers(ids: Iterable<string>): void {
    this.controllers = new Set(ids);
    this.offline = this.controllers.size === 0;
    this.dirty.people = true;
  }

  setPilots(pilots: string[]): void {
    this.pilots = pilots;
    this.dirty.people = true;
  }

  setSeq(seq: number): void {
    this.seq = seq;
    this.dirty.seq = true;
  }

  ids(): string[] {
    if (!this.sortedIds) {
      this.sortedIds = [...this.objects.keys()].sort();
      this.dirty.order = true;
    }
    return this.sortedIds;
  }

  markAll(): void {
    this.dirty = { objects: true, order: true, shared: true, people: true, seq: true };
  }

  private put(id: string, record: ObjectRecord): void {
    const old = this.objects.get(id);
    if (old === undefined) this.sortedIds = null;
    else if (isOn(old.state)) this.lightsOn--;
    if (isOn(record.state)) this.lightsOn++;
    this.objects.set(id, { state: record.state, controllerId: record.controllerId, timestamp: record.timestamp });
  }
}

/** RFC 7396 JSON Merge Patch. */
export function mergePatch(target: unknown, patch: unknown): unknown {
  if (patch === null || typeof patch !== "object" || Array.isArray(patch)) return patch;
  const result: Record<string, unknown> =
    target !== null && typeof target === "object" && !Array.isArray(target) ? { ...(target as object) } : {};
  for (const [key, value] of Object.entries(patch)) {
    if (value === null) delete result[key];
    else result[key] = mergePatch(result[key], value);
  }
  return result;
}
