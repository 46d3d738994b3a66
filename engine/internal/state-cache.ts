import type { ItemSnapshot } from './fold.ts';

/** Limits of the {@link StateCache}. */
export interface StateCacheLimits {
  /** Largest number of cached items. */
  readonly maxEntries: number;
  /** Largest total of cached item sizes (approximate heap bytes, see {@link cachedItemBytes}). */
  readonly maxBytes: number;
}

interface Entry {
  readonly snapshot: ItemSnapshot;
  readonly bytes: number;
}

/**
 * V8 heap per cached item besides its strings: the map slot, the entry, the snapshot and its
 * offsets object. Calibrated by measuring the heap of 100k cached items of the bench view
 * (~420 bytes each, with ~170 bytes of strings), so `maxBytes` bounds real memory, not JSON text.
 */
const ENTRY_OVERHEAD_BYTES = 250;
/** Per offsets-vector entry besides its two strings (property slot, string headers). */
const OFFSET_OVERHEAD_BYTES = 48;

/** Approximate heap bytes of one cached item: fixed overhead plus its strings, one byte a character. */
export function cachedItemBytes(id: string, snapshot: ItemSnapshot): number {
  let bytes = ENTRY_OVERHEAD_BYTES + id.length + (snapshot.stateJson?.length ?? 0);
  for (const [name, offset] of Object.entries(snapshot.offsets)) bytes += name.length + offset.length + OFFSET_OVERHEAD_BYTES;
  if (snapshot.pending !== undefined) bytes += JSON.stringify(snapshot.pending).length;
  if (snapshot.befores !== undefined) bytes += JSON.stringify(snapshot.befores).length;
  return bytes;
}

/**
 * LRU cache of item snapshots, bounded in entries and bytes. Entries may be stale (another task
 * may have written the item): every write is conditional on the cached version, and a lost
 * condition re-reads the item, so staleness costs a retry, never correctness.
 */
export class StateCache {
  private readonly entries = new Map<string, Entry>();
  private totalBytes = 0;
  hits = 0;
  misses = 0;
  evictions = 0;

  constructor(private readonly limits: StateCacheLimits) {}

  /** Number of cached items. */
  get size(): number {
    return this.entries.size;
  }

  /** Approximate bytes held. */
  get bytes(): number {
    return this.totalBytes;
  }

  get(id: string): ItemSnapshot | undefined {
    const entry = this.entries.get(id);
    if (entry === undefined) {
      this.misses += 1;
      return undefined;
    }
    this.hits += 1;
    this.entries.delete(id);
    this.entries.set(id, entry);
    return entry.snapshot;
  }

  /** Looks up without counting or reordering. */
  peek(id: string): ItemSnapshot | undefined {
    return this.entries.get(id)?.snapshot;
  }

  set(id: string, snapshot: ItemSnapshot): void {
    this.delete(id);
    const entry = { snapshot, bytes: cachedItemBytes(id, snapshot) };
    if (entry.bytes > this.limits.maxBytes || this.limits.maxEntries <= 0) return;
    this.entries.set(id, entry);
    this.totalBytes += entry.bytes;
    while (this.entries.size > this.limits.maxEntries || this.totalBytes > this.limits.maxBytes) {
      const oldest = this.entries.keys().next().value as string;
      this.delete(oldest);
      this.evictions += 1;
    }
  }

  delete(id: string): void {
    const entry = this.entries.get(id);
    if (entry === undefined) return;
    this.entries.delete(id);
    this.totalBytes -= entry.bytes;
  }

  clear(): void {
    this.entries.clear();
    this.totalBytes = 0;
  }
}
