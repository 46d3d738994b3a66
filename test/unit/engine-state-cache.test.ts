import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { describe, expect, it } from 'vitest';
import { defineApp, defineView, type SourceRecord } from '../../sdk/index.ts';
import { BatchProcessor } from '../../engine/internal/processor.ts';
import { cachedItemBytes, StateCache } from '../../engine/internal/state-cache.ts';
import { MemoryItemStore } from '../../engine/internal/test-driver.ts';

const counts = defineView({
  name: 'counts',
  source: 'events',
  key: (e: { id: string }) => e.id,
  initial: () => 0,
  reduce: (s: number) => s + 1,
});
const app = defineApp({ name: 'cache-test', views: [counts] });

function records(from: number, count: number): SourceRecord[] {
  return Array.from({ length: count }, (_, i) => ({
    topic: 'events',
    partition: 0,
    offset: String(from + i),
    key: null,
    value: Buffer.from(JSON.stringify({ id: `k${from + i}` })),
    timestampMs: 0,
    headers: {},
  }));
}

describe('StateCache in the batch loop', () => {
  it('evicts each key at most once when a batch holds more new keys than the cache', async () => {
    const capacity = 10;
    const cache = new StateCache({ maxEntries: capacity, maxBytes: 1024 * 1024 });
    const store = new MemoryItemStore();
    const processor = new BatchProcessor({
      app,
      store,
      cache,
      deadLetters: { send: async () => {} },
      changes: { deliver: async (_t, changes) => changes.map(() => 'delivered' as const) },
      limits: { writeConcurrency: 4, maxConflictRetries: 3 },
    });
    await processor.apply('events', 0, records(0, 30));
    await processor.apply('events', 0, records(30, 30));
    expect(cache.misses).toBe(60);
    expect(store.writes).toBe(60);
    // Each missed key enters the cache once per batch; all but the last `capacity` leave it.
    expect(cache.evictions).toBe(cache.misses - capacity);
    expect(cache.size).toBe(capacity);
  });

  it('counts one eviction per entry pushed out', () => {
    const cache = new StateCache({ maxEntries: 2, maxBytes: 1024 * 1024 });
    const snapshot = { version: 1, stateJson: '1', offsets: {} };
    for (const id of ['a', 'b', 'c', 'a', 'd']) cache.set(id, snapshot);
    expect(cache.evictions).toBe(3);
    expect(cache.size).toBe(2);
  });
});

describe('StateCache byte accounting', () => {
  it('counts about the heap its items really take, so maxBytes bounds memory', () => {
    setFlagsFromString('--expose-gc');
    const gc = runInNewContext('gc') as () => void;
    const items = 50_000;
    gc();
    const before = process.memoryUsage().heapUsed;
    const cache = new StateCache({ maxEntries: items, maxBytes: Number.MAX_SAFE_INTEGER });
    for (let i = 0; i < items; i++) {
      const state = { booked: i % 20, cancelled: i % 3, net: 1, lastEventAtMs: 1_795_450_000_000 + i, classId: `class-${i}` };
      cache.set(`classCounts\nclass-${String(i).padStart(7, '0')}`, {
        version: 1 + (i % 50),
        stateJson: JSON.stringify(state),
        offsets: { [`bookings-topic/${i % 4}`]: String(i * 7) },
      });
    }
    gc();
    const measured = process.memoryUsage().heapUsed - before;
    expect(cache.size).toBe(items);
    // Within 35% either way; counting JSON text alone came to under half of the real heap.
    expect(cache.bytes / measured).toBeGreaterThan(0.65);
    expect(cache.bytes / measured).toBeLessThan(1.35);
  });

  it('charges bookkeeping and ids to the item', () => {
    const bare = { version: 1, stateJson: '{}', offsets: {} };
    expect(cachedItemBytes('ab', bare)).toBe(cachedItemBytes('a', bare) + 1);
    const pending = { t: 1 };
    const befores = { '1': { n: 1 } };
    expect(cachedItemBytes('a', { ...bare, pending, befores })).toBe(
      cachedItemBytes('a', bare) + JSON.stringify(pending).length + JSON.stringify(befores).length,
    );
  });
});
