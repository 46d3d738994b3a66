// Stream time at one offset checkpointed twice: a task that lost a partition finishes its last
// batch and checkpoints the offset the partition's new owner already checkpointed after an idle
// close advance. That stale checkpoint must never lower the stored stream time, or a later event
// late for a window already closed (and final-delivered) is applied.
import { describe, expect, it } from 'vitest';
import { MemoryItemStore } from '../../engine/index.ts';
import { BatchProcessor } from '../../engine/internal/processor.ts';
import { StateCache } from '../../engine/internal/state-cache.ts';
import { checkpointKey } from '../../sdk/contract/index.ts';
import { defineApp, defineView, tumbling, type SourceRecord } from '../../sdk/index.ts';

type Visit = { member: string; at: number };
const perSecond = defineView({
  name: 'perSecond',
  source: 'visits',
  key: (e: Visit) => e.member,
  timestamp: (e: Visit) => e.at,
  window: tumbling({ sizeMs: 1_000 }),
  graceMs: 0,
  emit: 'final',
  idleCloseMs: 1_000,
  initial: () => 0,
  reduce: (n: number) => n + 1,
});
const app = defineApp({ name: 'gym', views: [perSecond] });

function task(store: MemoryItemStore): BatchProcessor {
  return new BatchProcessor({
    app,
    store,
    cache: new StateCache({ maxEntries: 1_000, maxBytes: 1024 * 1024 }),
    deadLetters: { send: async () => {} },
    changes: { deliver: async (_t, b) => b.map(() => 'delivered' as const) },
    limits: { writeConcurrency: 4, maxConflictRetries: 10 },
    now: () => new Date(0),
  });
}

function record(offset: number, at: number): SourceRecord {
  return {
    topic: 'visits',
    partition: 0,
    offset: String(offset),
    key: null,
    value: Buffer.from(JSON.stringify({ member: 'ann', at })),
    timestampMs: at,
    headers: {},
  };
}

describe('a checkpoint at the offset already stored', () => {
  it('from a stale task never lowers the stored stream time', async () => {
    const store = new MemoryItemStore();
    const stale = task(store);
    const owner = task(store);
    await stale.apply('visits', 0, [record(0, 1_000)]); // applied; its checkpoint is still to come
    // The partition moved: the new owner re-applies (fenced), then idle close raises stream time.
    await owner.apply('visits', 0, [record(0, 1_000)]);
    await owner.checkpoint('visits', 0, '1');
    const at = await owner.advanceStreamTime('visits', 0, 'perSecond', 5_000);
    await owner.checkpoint('visits', 0, at!);
    expect(store.streamTimes.get(checkpointKey('visits', 0).sk)?.perSecond).toBe(5_000);
    await stale.checkpoint('visits', 0, '1'); // the old owner's commit pipeline catches up
    expect(store.streamTimes.get(checkpointKey('visits', 0).sk)?.perSecond).toBe(5_000);
  });

  it('raises each view to the later stream time and keeps the stored ones it does not name', async () => {
    const store = new MemoryItemStore();
    const sk = checkpointKey('visits', 0).sk;
    await store.writeCheckpoint('visits', 0, '7', { a: 5_000, b: 1_000, c: 3_000 });
    await store.writeCheckpoint('visits', 0, '7', { a: 1_000, b: 4_000 });
    expect(store.streamTimes.get(sk)).toEqual({ a: 5_000, b: 4_000, c: 3_000 });
    await store.writeCheckpoint('visits', 0, '7');
    expect(store.streamTimes.get(sk)).toEqual({ a: 5_000, b: 4_000, c: 3_000 });
    await store.writeCheckpoint('visits', 0, '6', { a: 9_000 });
    expect(store.streamTimes.get(sk)).toEqual({ a: 5_000, b: 4_000, c: 3_000 });
    await store.writeCheckpoint('visits', 0, '8', { a: 6_000 });
    expect(await store.readCheckpointState('visits', 0)).toEqual({ partition: 0, offset: '8', streamTime: { a: 6_000 } });
  });
});
