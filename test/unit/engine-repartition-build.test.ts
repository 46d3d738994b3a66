/**
 * The pure rules the build of a repartitioned view rests on (engine/internal/repartition-build.ts;
 * the build itself runs on the real stack in test/integration/repartition-builds.test.ts):
 * each version has its own repartition topic, forwarded records of a version go to it, and a
 * live batch of a repartition topic leaves out the records below the build's recorded end
 * (`repartitionFloors`), folding and delivering the rest exactly as without a floor.
 */
import { describe, expect, it } from 'vitest';
import { MemoryItemStore } from '../../engine/index.ts';
import type { ChangeSink } from '../../engine/internal/change-sink.ts';
import { BatchProcessor } from '../../engine/internal/processor.ts';
import { ORIGIN_HEADERS } from '../../engine/internal/repartition.ts';
import { StateCache } from '../../engine/internal/state-cache.ts';
import { viewItemKey } from '../../sdk/contract/index.ts';
import { defineApp, defineTrigger, defineView, repartitionTopic, type Change, type SourceRecord } from '../../sdk/index.ts';

type Booking = { memberId: string; seq: number };

const recentOf = (version: number) =>
  defineView({
    name: 'recent',
    source: 'bookings',
    version,
    repartition: true,
    key: (e: Booking) => e.memberId,
    initial: () => ({ last: [] as number[] }),
    reduce: (s, e) => ({ last: [...s.last, e.seq].slice(-3) }),
  });

/** Copies of bookings as the forward leg writes them to `topic`/0: origin bookings/0@<seq>. */
function copies(topic: string, bookings: readonly Booking[]): SourceRecord[] {
  return bookings.map((booking, i) => ({
    topic,
    partition: 0,
    offset: String(i),
    key: Buffer.from(booking.memberId),
    value: Buffer.from(JSON.stringify(booking)),
    timestampMs: 1_000 + i,
    headers: {
      [ORIGIN_HEADERS.topic]: Buffer.from('bookings'),
      [ORIGIN_HEADERS.partition]: Buffer.from('0'),
      [ORIGIN_HEADERS.offset]: Buffer.from(String(booking.seq)),
      [ORIGIN_HEADERS.timestamp]: Buffer.from(String(1_000 + i)),
    },
  }));
}

describe('repartitioned view versions', () => {
  it('each version from 2 has its own repartition topic, listed by the app', () => {
    expect(repartitionTopic('gym', 'recent')).toBe('gym.recent.repartition');
    expect(repartitionTopic('gym', 'recent', 1)).toBe('gym.recent.repartition');
    expect(repartitionTopic('gym', 'recent', 3)).toBe('gym.recent.v3.repartition');
    expect(defineApp({ name: 'gym', views: [recentOf(1)] }).internalTopics).toEqual(['gym.recent.repartition']);
    expect(defineApp({ name: 'gym', views: [recentOf(2)] }).internalTopics).toEqual(['gym.recent.v2.repartition']);
  });

  it('a version forwards its source to its own topic', async () => {
    const view = recentOf(2);
    const app = defineApp({ name: 'gym', views: [view] });
    const forwarded: { topic: string; keys: string[] }[] = [];
    const processor = new BatchProcessor({
      app,
      store: new MemoryItemStore(),
      cache: new StateCache({ maxEntries: 100, maxBytes: 1024 * 1024 }),
      deadLetters: { send: async () => {} },
      changes: { deliver: async (_trigger, batch) => batch.map(() => 'delivered' as const) },
      limits: { writeConcurrency: 2, maxConflictRetries: 5 },
      repartition: { forward: async (batches) => void forwarded.push(...batches.map((b) => ({ topic: b.topic, keys: b.messages.map((m) => m.key) }))) },
    });
    const records: SourceRecord[] = [{ topic: 'bookings', partition: 0, offset: '0', key: Buffer.from('c1'), value: Buffer.from(JSON.stringify({ memberId: 'ann', seq: 0 })), timestampMs: 1, headers: {} }];
    await processor.apply('bookings', 0, records);
    expect(forwarded).toEqual([{ topic: 'gym.recent.v2.repartition', keys: ['ann'] }]);
  });

  it('a live batch of a repartition topic leaves the records below the floor to the build, and folds and delivers the rest', async () => {
    const view = recentOf(2);
    const topic = repartitionTopic('gym', 'recent', 2);
    const trigger = defineTrigger({ view, function: 'notify', changes: 'every' });
    const app = defineApp({ name: 'gym', views: [view], triggers: [trigger] });
    const bookings: Booking[] = [0, 1, 2, 3, 4, 5, 6].map((seq) => ({ memberId: seq % 2 === 0 ? 'ann' : 'bob', seq }));
    const delivered: Change[] = [];
    const changes: ChangeSink = {
      deliver: async (_trigger, batch) => {
        delivered.push(...batch);
        return batch.map(() => 'delivered' as const);
      },
    };
    const store = new MemoryItemStore();
    const floor = 4n;
    const processor = new BatchProcessor({
      app,
      store,
      cache: new StateCache({ maxEntries: 100, maxBytes: 1024 * 1024 }),
      deadLetters: { send: async () => {} },
      changes,
      limits: { writeConcurrency: 2, maxConflictRetries: 5 },
      repartition: { forward: async () => {} },
      repartitionFloors: new Map([[topic, new Map([[0, floor]])]]),
    });
    const result = await processor.apply(topic, 0, copies(topic, bookings));
    expect(result.nextOffset, 'the batch is covered to its end').toBe('7');

    // Reference: a plain fold of the copies at or past the floor (the build folded those below).
    const reference = new Map<string, number[]>();
    for (const b of bookings.slice(Number(floor))) reference.set(b.memberId, [...(reference.get(b.memberId) ?? []), b.seq].slice(-3));
    for (const member of ['ann', 'bob']) {
      const item = await store.readItem(viewItemKey('recent@2', member));
      expect(item?.state, `recent@2 ${member}`).toEqual(reference.has(member) ? { last: reference.get(member) } : undefined);
    }
    // One change per booking at or past the floor, in order per key (keys interleave freely).
    const byKey = (pairs: [string, number][]) => [...pairs].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
    expect(byKey(delivered.map((c) => [String(c.key), (c.after as { last: number[] }).last.at(-1)!]))).toEqual(byKey(bookings.slice(Number(floor)).map((b) => [b.memberId, b.seq])));
  });
});
