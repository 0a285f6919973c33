// The parts of the service's protocol (docs/protocol.md) the dashboard reads.

/** An object as snapshots list it. */
export interface ObjectRecord {
  id: string;
  state: unknown;
  controllerId: string;
  timestamp: number;
}

/** The snapshot shared by INITIAL_STATE, STATE_SNAPSHOT and the public GET /state. */
export interface Snapshot {
  objects: ObjectRecord[];
  sharedState: Record<string, unknown>;
  controllers: string[];
  offline: boolean;
  seq: number;
}

/**
 * An INITIAL_STATE that resumes the replica at `resumedFrom` (docs/protocol.md §8): the objects
 * changed since, the ids deleted since, the shared state only if it changed.
 */
export interface Resume {
  objects: ObjectRecord[];
  sharedState?: Record<string, unknown>;
  controllers: string[];
  offline: boolean;
  seq: number;
  resumedFrom: number;
  deleted: string[];
}

/** One airport of the public GET /state (and of /state?airport=all). */
export interface PublicState extends Snapshot {
  airport: string;
  pilots: string[];
  connections: { controllers: number; pilots: number };
}

/** One item of a STATE_UPDATE or MULTI_STATE_UPDATE: a new state, or `patch: null` (deleted). */
export interface ChangeItem {
  objectId: string;
  state?: unknown;
  patch?: null;
  controllerId?: string;
}

export interface ServerPacket {
  type: string;
  airport?: string;
  timestamp?: number;
  seq?: number;
  seqFrom?: number;
  requestId?: string;
  // Its shape depends on `type`; readers check what they use.
  data?: any;
}

/** A light is on only when its state is JSON `true` (what the pilot client shows, CLIENTS.md). */
export const isOn = (state: unknown): boolean => state === true;

/** An airport code as the service accepts it: 4 letters or digits, upper-cased. */
export function canonicalIcao(text: string): string | null {
  const icao = text.trim().toUpperCase();
  return /^[A-Z0-9]{4}$/.test(icao) ? icao : null;
}

/** The public state of one airport, or of every live one. Throws on a non-2xx answer. */
export async function fetchState<T>(airport: string): Promise<T> {
  const response = await fetch(`/state?airport=${encodeURIComponent(airport)}`, { cache: "no-store" });
  if (!response.ok) throw new Error(`GET /state answered ${response.status}`);
  return (await response.json()) as T;
}
