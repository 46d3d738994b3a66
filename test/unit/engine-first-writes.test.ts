/**
 * Cache misses written first without a read (processor.ts `NewKeyShare`): while most recent
 * misses of a view were keys never written, a miss is folded from nothing and written on the
 * condition that the item does not exist. A key that existed after all loses that condition and
 * is folded again from the item as stored (returned by the lost write, else read), so each event
 * is applied exactly once either way. Through BatchProcessor on the in-memory table.
 */
import { describe, expect, it } from 'vitest';
import { MemoryItemStore } from '../../engine/index.ts';
import { itemId } from '../../engine/internal/fold.ts';
import { BatchProcessor, LIGHT_BATCH_MISSES, NewKeyShare, type BatchResult } from '../../engine/internal/processor.ts';
import { StateCache } from '../../engine/internal/state-cache.ts';
import { decodeState, viewItemKey, type ViewItem } from '../../sdk/contract/index.ts';
import { defineApp, defineView, type SourceRecord } from '../../sdk/index.ts';

type Booking = { classId: string };

const attendance = defineView({
  name: 'attendance',
  source: 'bookings',
  key: (e: Booking) => e.classId,
  initial: () => ({ booked: 0 }),
  reduce: (s, _e: Booking) => ({ booked: s.booked + 1 }),
});
const app = defineApp({ name: 'first-writes', views: [attendance] });

let nextOffset = 0;
function record(classId: string, offset = nextOffset++): SourceRecord {
  return { topic: 'bookings', partition: 0, offset: String(offset), key: null, value: Buffer.from(JSON.stringify({ classId })), timestampMs: 0, headers: {} };
}

/** A processor with a one-entry cache: every other key is a miss. */
function processorOf(store: MemoryItemStore): BatchProcessor {
  return new BatchProcessor({
    app,
    store,
    cache: new StateCache({ maxEntries: 1, maxBytes: 1024 * 1024 }),
    deadLetters: { send: async () => {} },
    changes: { deliver: async (_t, changes) => changes.map(() => 'delivered' as const) },
    limits: { writeConcurrency: 4, maxConflictRetries: 3 },
    now: () => new Date(0),
  });
}

async function batch(processor: BatchProcessor, records: readonly SourceRecord[]): Promise<BatchResult> {
  const result = await processor.apply('bookings', 0, records);
  await processor.checkpoint('bookings', 0, result.nextOffset);
  return result;
}

function booked(store: MemoryItemStore, classId: string): number | undefined {
  const item = store.items.get(itemId(viewItemKey('attendance', classId)));
  return item === undefined ? undefined : (decodeState(item.state) as { booked: number }).booked;
}

/** Makes the processor's misses mostly new keys: one new key per batch until misses go unread. */
async function warmUp(processor: BatchProcessor, prefix: string): Promise<void> {
  for (let i = 0; i < 20; i++) {
    const result = await batch(processor, [record(`${prefix}-${i}`)]);
    if (result.firstWrites.unread > 0) return;
  }
  throw new Error('misses never went unread after 20 new keys');
}

describe('first writes without a read', () => {
  it('reads misses at first, then writes new keys without reading them, one write each', async () => {
    const store = new MemoryItemStore();
    const processor = processorOf(store);
    const first = await batch(processor, [record('a')]);
    expect(first.reads).toBe(1);
    expect(first.firstWrites).toEqual({ unread: 0, existed: 0 });
    await warmUp(processor, 'new');
    const readsBefore = store.reads;
    const writesBefore = store.writes;
    const result = await batch(processor, [record('b'), record('c'), record('c')]);
    expect(result.firstWrites).toEqual({ unread: 2, existed: 0 });
    expect(result.reads).toBe(0);
    expect(store.reads).toBe(readsBefore);
    expect(store.writes - writesBefore).toBe(2);
    expect(store.conflicts).toBe(0);
    expect([booked(store, 'b'), booked(store, 'c')]).toEqual([1, 2]);
  });

  it.each([
    { returned: true, reads: 0 },
    { returned: false, reads: 1 },
  ])('folds a key that existed after all again from the stored item (returned by the lost write: $returned)', async ({ returned, reads }) => {
    const store = new MemoryItemStore();
    store.returnsStoredOnConflict = returned;
    const processor = processorOf(store);
    await batch(processor, [record('x'), record('x'), record('x')]); // x: 3 bookings
    await warmUp(processor, 'fresh'); // also evicts x from the one-entry cache
    const result = await batch(processor, [record('x'), record('x')]);
    expect(result.firstWrites).toEqual({ unread: 1, existed: 1 });
    expect(result.conflicts).toBe(0);
    expect(result.reads).toBe(reads);
    expect(booked(store, 'x')).toBe(5);
  });

  it('skips a replayed record of a key that existed after all (the offset fence of the stored item)', async () => {
    const store = new MemoryItemStore();
    const processor = processorOf(store);
    const replayed = record('y');
    await batch(processor, [replayed]);
    await warmUp(processor, 'more');
    // The same record again (a crash before the commit): unread, conflicting, fenced.
    const result = await batch(processor, [replayed, record('y')]);
    expect(result.firstWrites).toEqual({ unread: 1, existed: 1 });
    expect(result.skipped).toBe(1);
    expect(result.applied).toBe(1);
    expect(booked(store, 'y')).toBe(2);
  });

  it('reads a guessed miss after all when its events write nothing (what a stored item owes is seen)', async () => {
    const strict = defineView({
      name: 'attendance',
      source: 'bookings',
      key: (e: Booking) => e.classId,
      initial: () => ({ booked: 0 }),
      reduce: (s, e: Booking & { bad?: true }) => {
        if (e.bad) throw new Error('bad booking');
        return { booked: s.booked + 1 };
      },
      onPoison: 'dead-letter',
    });
    const store = new MemoryItemStore();
    const processor = new BatchProcessor({
      app: defineApp({ name: 'first-writes-poison', views: [strict] }),
      store,
      cache: new StateCache({ maxEntries: 1, maxBytes: 1024 * 1024 }),
      deadLetters: { send: async () => {} },
      changes: { deliver: async (_t, changes) => changes.map(() => 'delivered' as const) },
      limits: { writeConcurrency: 4, maxConflictRetries: 3 },
      now: () => new Date(0),
    });
    await batch(processor, [record('p')]);
    await warmUp(processor, 'poison');
    const bad: SourceRecord = { ...record('p'), value: Buffer.from(JSON.stringify({ classId: 'p', bad: true })) };
    const result = await batch(processor, [bad]);
    expect(result.firstWrites.unread).toBe(1);
    expect(result.reads).toBe(1);
    expect(result.deadLetters).toBe(1);
    expect(booked(store, 'p')).toBe(1);
  });

  it('another writer creating the key between the guess and the write loses nothing', async () => {
    const store = new MemoryItemStore();
    const processor = processorOf(store);
    await warmUp(processor, 'k');
    // Another task's write of z (10 bookings from another source) lands just before this one's.
    store.beforePut = (item: ViewItem) => {
      if (item.key !== 'z') return;
      store.beforePut = undefined;
      store.items.set(itemId(item), { ...item, state: { booked: 10 }, offsets: {}, version: 1 });
    };
    const result = await batch(processor, [record('z')]);
    expect(result.firstWrites).toEqual({ unread: 1, existed: 1 });
    expect(booked(store, 'z')).toBe(11);
  });
});

describe('NewKeyShare', () => {
  it('starts by reading, guesses new after a run of new keys, and reads again when keys exist', () => {
    const share = new NewKeyShare();
    expect([share.worthGuessing(false), share.worthGuessing(true)]).toEqual([false, false]);
    for (let i = 0; i < 7; i++) share.note(true);
    expect(share.worthGuessing(false)).toBe(true);
    for (let i = 0; i < 3; i++) share.note(false);
    expect(share.worthGuessing(false)).toBe(false);
    // A light batch still guesses while one miss in ten or more is new...
    expect(share.worthGuessing(true)).toBe(true);
    // ...and reads once nearly all misses exist.
    for (let i = 0; i < 20; i++) share.note(false);
    expect(share.worthGuessing(true)).toBe(false);
  });

  it('guesses in a light batch of mostly existing keys, not in a heavy one', async () => {
    const store = new MemoryItemStore();
    const processor = processorOf(store);
    // Sixteen new keys, one batch each: the share passes one half.
    const keys = Array.from({ length: 16 }, (_, i) => `e${i}`);
    for (const key of keys) await batch(processor, [record(key)]);
    // Six that existed (guessed new, lost): below one half, still above one in ten.
    for (const key of keys.slice(0, 6)) expect((await batch(processor, [record(key)])).firstWrites).toEqual({ unread: 1, existed: 1 });
    const heavy = await batch(processor, keys.slice(6).map((key) => record(key)));
    expect(keys.length - 6).toBeGreaterThan(LIGHT_BATCH_MISSES);
    expect(heavy.firstWrites.unread).toBe(0);
    expect(heavy.reads).toBe(keys.length - 6);
    const light = await batch(processor, [record('brand-new')]);
    expect(light.firstWrites).toEqual({ unread: 1, existed: 0 });
    for (const key of keys) expect(booked(store, key)).toBe(2);
  });
});
