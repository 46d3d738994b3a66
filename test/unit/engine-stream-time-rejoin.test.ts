// Stream time across a partition's stints on one engine process: a task that had a partition,
// lost it to another task (which moved its stream time on) and got it back must never checkpoint
// an older stream time than the one stored, or a later record is judged from a stream time the
// partition had passed (an event late for a window another task already closed is applied).
import { describe, expect, it } from 'vitest';
import { MemoryItemStore } from '../../engine/index.ts';
import { BatchProcessor } from '../../engine/internal/processor.ts';
import { StateCache } from '../../engine/internal/state-cache.ts';
import { checkpointKey } from '../../sdk/contract/index.ts';
import { defineApp, defineView, tumbling, type App, type SourceRecord } from '../../sdk/index.ts';

type Visit = { member: string; at: number };
const perSecond = defineView({
  name: 'perSecond',
  source: 'visits',
  key: (e: Visit) => e.member,
  timestamp: (e: Visit) => e.at,
  window: tumbling({ sizeMs: 1_000 }),
  graceMs: 0,
  initial: () => 0,
  reduce: (n: number) => n + 1,
});
const app = defineApp({ name: 'gym', views: [perSecond] });

function task(store: MemoryItemStore, application: App = app): BatchProcessor {
  return new BatchProcessor({
    app: application,
    store,
    cache: new StateCache({ maxEntries: 1_000, maxBytes: 1024 * 1024 }),
    deadLetters: { send: async () => {} },
    changes: { deliver: async (_t, batch) => batch.map(() => 'delivered' as const) },
    limits: { writeConcurrency: 4, maxConflictRetries: 10 },
    now: () => new Date(0),
  });
}

const record = (offset: number, at: number): SourceRecord => ({
  topic: 'visits',
  partition: 0,
  offset: String(offset),
  key: null,
  value: Buffer.from(JSON.stringify({ member: 'ann', at })),
  timestampMs: at,
  headers: {},
});

describe('stream time after a partition comes back to a task', () => {
  it('a checkpoint past records the task never read (transaction markers) keeps the stored stream time, never an older one of its earlier stint', async () => {
    const store = new MemoryItemStore();
    const a = task(store);
    const b = task(store);
    // Task A has the partition: stream time 1_000 at offset 1.
    await a.apply('visits', 0, [record(0, 1_000)]);
    await a.checkpoint('visits', 0, '1');
    // Rebalance: task B gets it and moves stream time on to 5_000 (offset 2).
    await b.apply('visits', 0, [record(1, 5_000)]);
    await b.checkpoint('visits', 0, '2');
    // Rebalance again: A gets the partition back; its first fetch holds only a transaction
    // marker at offset 2, so the runtime checkpoints 3 without a batch (onFilteredBatch).
    a.forgetStreamTimes();
    await a.checkpoint('visits', 0, '3');
    const stored = store.streamTimes.get(checkpointKey('visits', 0).sk);
    expect(stored?.perSecond).toBe(5_000);
    // The consequence: [1000, 2000) closed at stream time 5_000, so an event at 1_500 is late.
    const next = await a.apply('visits', 0, [record(3, 1_500)]);
    expect(next.late).toEqual({ perSecond: 1 });
    expect(store.items.size).toBe(2);
  });
});
