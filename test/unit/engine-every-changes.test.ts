/**
 * Triggers with `changes: 'every'` (docs/architecture.md, invariant 4): one change per applied
 * event that changed the state, each with its own before/after/version, in order, through the
 * in-memory driver. Expected sequences are computed in the test from the events, never read
 * back from the engine; replays and crashes deliver nothing twice that was delivered and settled.
 */
import { describe, expect, it } from 'vitest';
import { createTestDriver } from '../../engine/index.ts';
import { MAX_ITEM_STATES_BYTES } from '../../engine/internal/ledger.ts';
import { DefinitionError, defineApp, defineTrigger, defineView, type Change } from '../../sdk/index.ts';

type OrderEvent = { order: string; status: 'placed' | 'shipped' | 'cancelled' | 'noted' };
type Order = { status: string; events: number };

const orders = defineView({
  name: 'orders',
  source: 'order-events',
  key: (e: OrderEvent) => e.order,
  initial: (): Order => ({ status: 'new', events: 0 }),
  // 'noted' leaves the state as it was: an applied event that is no change.
  reduce: (s, e) => (e.status === 'noted' ? s : { status: e.status, events: s.events + 1 }),
});
const refundIfCancelledAfterShipping = ({ before, after }: Change<Order>) => before?.status === 'shipped' && after.status === 'cancelled';
const refundEvery = defineTrigger({ view: orders, function: 'refund', name: 'refundEvery', when: refundIfCancelledAfterShipping });
const refundCoalesced = defineTrigger({
  view: orders,
  function: 'refund',
  name: 'refundCoalesced',
  when: refundIfCancelledAfterShipping,
  changes: 'coalesced',
});
const auditEvery = defineTrigger({ view: orders, function: 'audit', name: 'auditEvery' });
const app = defineApp({ name: 'shop', views: [orders], triggers: [refundEvery, refundCoalesced, auditEvery] });

const event = (order: string, status: OrderEvent['status'], partition = 0) => ({ partition, value: { order, status } });

/**
 * The changes 'every' owes for `events` of one key, by an independent fold: version n after the
 * n-th event, a change wherever the state moved.
 */
function referenceChanges(statuses: readonly OrderEvent['status'][], from?: { state: Order; version: number }) {
  const out: [Order | undefined, Order, number][] = [];
  let state: Order | undefined = from?.state;
  let version = from?.version ?? 0;
  for (const status of statuses) {
    version += 1;
    const base = state ?? { status: 'new', events: 0 };
    const next = status === 'noted' ? base : { status, events: base.events + 1 };
    if (state === undefined || JSON.stringify(next) !== JSON.stringify(state)) out.push([state, next, version]);
    state = next;
  }
  return out;
}

const of = <S = Order>(driver: ReturnType<typeof createTestDriver>, trigger: string) =>
  driver.changes
    .filter((c) => c.trigger === trigger)
    .map(({ change }) => [change.before as S | undefined, change.after as S, change.version] as const);

describe("trigger changes: 'every'", () => {
  it('is the default', () => {
    expect(defineTrigger({ view: orders, function: 'f' }).changes).toBe('every');
    expect(() => defineTrigger({ view: orders, function: 'f', changes: 'all' as never })).toThrow(DefinitionError);
    expect(() => defineTrigger({ view: orders, function: 'f', changes: 'all' as never })).toThrow(/changes must be 'every'.*received "all"/);
  });

  it('sees placed → shipped → cancelled in one batch as three changes; coalesced sees one, and misses the transition', async () => {
    const driver = createTestDriver(app);
    const statuses = ['placed', 'shipped', 'cancelled'] as const;
    await driver.send('order-events', statuses.map((s) => event('o1', s)));
    const expected = referenceChanges(statuses);
    expect(of(driver, 'auditEvery')).toEqual(expected);
    // Each change names its own version; the key is the change's id across redeliveries.
    expect(driver.changes.filter((c) => c.trigger === 'auditEvery').map((c) => c.change.idempotencyKey)).toEqual(
      expected.map(([, , version]) => `orders#o1##${version}`),
    );
    // The transition condition holds on exactly the shipped → cancelled change.
    expect(of(driver, 'refundEvery')).toEqual(expected.filter(([before, after]) => before?.status === 'shipped' && after.status === 'cancelled'));
    expect(of(driver, 'refundEvery')).toHaveLength(1);
    // Coalesced: one change from no item to the final state, which the condition never matches.
    expect(of(driver, 'refundCoalesced')).toEqual([]);
    expect(driver.item('orders', 'o1')).toMatchObject({ version: statuses.length, state: { status: 'cancelled', events: 3 } });
  });

  it('chains batches, skips events that changed nothing (their versions still count) and poison (no version)', async () => {
    const driver = createTestDriver(app);
    await driver.send('order-events', [event('o1', 'placed'), event('o1', 'noted')]);
    await driver.send('order-events', [event('o1', 'shipped'), { value: 'not json' }, event('o1', 'noted'), event('o1', 'cancelled')]);
    expect(of(driver, 'auditEvery')).toEqual(referenceChanges(['placed', 'noted', 'shipped', 'noted', 'cancelled']));
    expect(of(driver, 'auditEvery').map(([, , v]) => v)).toEqual([1, 3, 5]);
    expect(driver.deadLetters.map((d) => d.code)).toEqual(['DECODE_FAILED']);
    expect(driver.item('orders', 'o1')?.version).toBe(5);
  });

  it('delivers nothing twice on a replay of the same records, and the state is unchanged', async () => {
    const driver = createTestDriver(app);
    await driver.send('order-events', [event('o1', 'placed'), event('o2', 'placed'), event('o1', 'shipped'), event('o1', 'cancelled')]);
    const delivered = driver.changes.length;
    const item = driver.item('orders', 'o1');
    const again = await driver.redeliver('order-events', 0, 0);
    expect(again).toMatchObject({ skipped: 4, applied: 0, writes: 0, changesDelivered: 0 });
    driver.restart();
    await driver.redeliver('order-events', 0, 0);
    expect(driver.changes).toHaveLength(delivered);
    expect(driver.item('orders', 'o1')).toEqual(item);
    // Per key, in order (keys are independent of each other).
    const ofKey = (key: string) =>
      driver.changes.filter((c) => c.trigger === 'auditEvery' && c.change.key === key).map(({ change }) => [change.before, change.after, change.version]);
    expect(ofKey('o1')).toEqual(referenceChanges(['placed', 'shipped', 'cancelled']));
    expect(ofKey('o2')).toEqual(referenceChanges(['placed']));
  });

  it('keeps the intermediate states on the item until delivered, so a crash before delivery redelivers each', async () => {
    const driver = createTestDriver(app);
    const statuses = ['placed', 'shipped', 'cancelled'] as const;
    await driver.send('order-events', statuses.map((s) => event('o1', s)));
    const expected = referenceChanges(statuses);
    // The write stored every state the changes need, atomically with the state.
    const stored = driver.item('orders', 'o1')!;
    expect(stored.pending).toEqual({ refundEvery: 0, refundCoalesced: 0, auditEvery: 0 });
    expect(stored.befores).toEqual({ '1': expected[0]![1], '2': expected[1]![1] });
    // A crash after the write and before delivery: the checkpoint, written after the
    // deliveries, is not there. A restarted engine delivers the same changes again.
    driver.store.checkpoints.delete('checkpoint#order-events#0');
    driver.restart();
    const before = driver.changes.length;
    await driver.redeliver('order-events', 0, 0);
    const redelivered = driver.changes.slice(before).filter((c) => c.trigger === 'auditEvery');
    expect(redelivered.map(({ change }) => [change.before, change.after, change.version])).toEqual(expected);
    expect(redelivered.map(({ change }) => change.idempotencyKey)).toEqual(expected.map(([, , v]) => `orders#o1##${v}`));
    // Settled by the checkpoint now: a third pass delivers nothing.
    driver.restart();
    const settled = driver.changes.length;
    await driver.redeliver('order-events', 0, 0);
    expect(driver.changes).toHaveLength(settled);
  });

  it('after a crash before delivery, a new event on the key delivers the owed changes and its own, in order', async () => {
    const driver = createTestDriver(defineApp({ name: 'shop', views: [orders], triggers: [auditEvery] }));
    await driver.send('order-events', [event('o1', 'placed'), event('o1', 'shipped')]);
    driver.store.checkpoints.delete('checkpoint#order-events#0');
    driver.restart();
    const before = driver.changes.length;
    // Only the new record is processed: the item's stored bookkeeping still owes versions 1 and 2.
    await driver.send('order-events', [event('o1', 'cancelled')]);
    expect(of(driver, 'auditEvery').slice(before)).toEqual(referenceChanges(['placed', 'shipped', 'cancelled']));
  });

  it('dead-letters only the change that failed; the key’s later changes still go, in order', async () => {
    const driver = createTestDriver(defineApp({ name: 'shop', views: [orders], triggers: [auditEvery] }), {
      failDelivery: (_t, change) => change.version === 2,
    });
    await driver.send('order-events', [event('o1', 'placed'), event('o1', 'shipped'), event('o1', 'cancelled')]);
    const expected = referenceChanges(['placed', 'shipped', 'cancelled']);
    expect(of(driver, 'auditEvery')).toEqual(expected.filter(([, , v]) => v !== 2));
    expect(driver.deadLetters).toHaveLength(1);
    expect(driver.deadLetters[0]).toMatchObject({ kind: 'trigger', change: { version: 2, before: expected[1]![0], after: expected[1]![1] } });
  });

  it('dead-letters a change whose when() throws, and judges the others', async () => {
    const picky = defineTrigger({
      view: orders,
      function: 'picky',
      when: ({ after }) => {
        if (after.status === 'shipped') throw new Error('no shipped, please');
        return true;
      },
    });
    const driver = createTestDriver(defineApp({ name: 'shop', views: [orders], triggers: [picky] }));
    await driver.send('order-events', [event('o1', 'placed'), event('o1', 'shipped'), event('o1', 'cancelled')]);
    expect(of(driver, picky.name).map(([, after, v]) => [after.status, v])).toEqual([
      ['placed', 1],
      ['cancelled', 3],
    ]);
    expect(driver.deadLetters).toMatchObject([{ code: 'TRIGGER_WHEN_FAILED', change: { version: 2 } }]);
  });

  it.each([
    ['cached', 10_000],
    ['read from the table every batch', 0],
  ])('splits a burst whose states would not fit the item into several writes, each delivered before the next (%s)', async (_name, cacheMaxEntries) => {
    type Blob = { n: number; pad: string };
    // Each state is about 60 KB: more than MAX_ITEM_STATES_BYTES for a burst of 10 on one key.
    const pad = 'x'.repeat(60_000);
    const blobs = defineView({
      name: 'blobs',
      source: 'blob-events',
      key: (e: { id: string }) => e.id,
      initial: (): Blob => ({ n: 0, pad: '' }),
      reduce: (s) => ({ n: s.n + 1, pad }),
      maxStateBytes: 100_000,
    });
    const watch = defineTrigger({ view: blobs, function: 'watch' });
    const driver = createTestDriver(defineApp({ name: 'blobs', views: [blobs], triggers: [watch] }), { cacheMaxEntries });
    const sizes: number[] = [];
    driver.store.beforePut = (item) => {
      const states = [item.state, ...Object.values(item.befores ?? {})];
      sizes.push(states.reduce((sum: number, state) => sum + Buffer.byteLength(JSON.stringify(state)), 0));
    };
    const burst = 10;
    const [result] = await driver.send('blob-events', Array.from({ length: burst }, () => ({ value: { id: 'b' } })));
    // Every event's change, in order, none skipped.
    expect(of<Blob>(driver, watch.name).map(([before, after, v]) => [before?.n, after.n, v])).toEqual(
      Array.from({ length: burst }, (_, i) => [i === 0 ? undefined : i, i + 1, i + 1]),
    );
    // In more than one write, none over the bound.
    expect(result!.writes).toBeGreaterThan(1);
    expect(result!.applied).toBe(burst);
    expect(Math.max(...sizes)).toBeLessThanOrEqual(MAX_ITEM_STATES_BYTES);
    expect(driver.item('blobs', 'b')).toMatchObject({ version: burst, state: { n: burst } });
    // And a replay delivers nothing again.
    driver.restart();
    const delivered = driver.changes.length;
    await driver.redeliver('blob-events', 0, 0);
    expect(driver.changes).toHaveLength(delivered);
  });

  it('after a crash, delivers the changes an item still owes before a new event that would not fit beside them', async () => {
    type Blob = { n: number; pad: string };
    const pad = 'x'.repeat(60_000);
    const blobs = defineView({
      name: 'blobs',
      source: 'blob-events',
      key: (e: { id: string }) => e.id,
      initial: (): Blob => ({ n: 0, pad: '' }),
      reduce: (s) => ({ n: s.n + 1, pad }),
      maxStateBytes: 100_000,
    });
    const watch = defineTrigger({ view: blobs, function: 'watch' });
    const driver = createTestDriver(defineApp({ name: 'blobs', views: [blobs], triggers: [watch] }));
    // 11 states of about 60 KB: a write of 6 events, then one of 5, which leaves 6 states on the item.
    const burst = 11;
    await driver.send('blob-events', Array.from({ length: burst }, () => ({ value: { id: 'b' } })));
    // The last write of the burst still carries the states of its changes (settled by the
    // checkpoint, which the crash below takes away).
    const owed = Object.keys(driver.item('blobs', 'b')!.befores ?? {}).map(Number).sort((a, b) => a - b);
    expect(owed.length).toBeGreaterThan(3);
    driver.store.checkpoints.delete('checkpoint#blob-events#0');
    driver.restart();
    const sizes: number[] = [];
    driver.store.beforePut = (item) => {
      const states = [item.state, ...Object.values(item.befores ?? {})];
      sizes.push(states.reduce((sum: number, state) => sum + Buffer.byteLength(JSON.stringify(state)), 0));
    };
    const before = driver.changes.length;
    await driver.send('blob-events', [{ value: { id: 'b' } }]);
    // The owed changes again (after the first owed state), then the new event's, in order.
    const expected = [...owed.slice(1), burst, burst + 1].map((v) => [v - 1, v, v]);
    expect(of<Blob>(driver, watch.name).slice(before).map(([b, a, v]) => [b?.n, a.n, v])).toEqual(expected);
    expect(sizes).toHaveLength(1);
    expect(sizes[0]!).toBeLessThanOrEqual(MAX_ITEM_STATES_BYTES);
  });

  it('starts where the previous batch judged, for an item that several partitions write', async () => {
    const driver = createTestDriver(defineApp({ name: 'shop', views: [orders], triggers: [auditEvery] }));
    await driver.send('order-events', [event('o1', 'placed', 0), event('o1', 'shipped', 1), event('o1', 'cancelled', 0)]);
    // One batch per partition, partition 0 first: placed, cancelled, then shipped.
    expect(of(driver, 'auditEvery')).toEqual(referenceChanges(['placed', 'cancelled', 'shipped']));
  });

  it('lets when() see bigints as bigint, while the change it delivers stays JSON (tagged)', async () => {
    const totals = defineView({
      name: 'totals',
      source: 'payments',
      decode: 'json-bigint',
      key: (e: { account: string; amount: bigint | number }) => e.account,
      initial: () => ({ total: 0n }),
      reduce: (s, e) => ({ total: s.total + BigInt(e.amount) }),
    });
    const seen: unknown[] = [];
    const big = defineTrigger({
      view: totals,
      function: 'big',
      when: ({ after }) => {
        seen.push(after.total);
        return after.total > 2n ** 53n;
      },
    });
    const driver = createTestDriver(defineApp({ name: 'pay', views: [totals], triggers: [big] }));
    await driver.send('payments', [{ value: '{"account":"a","amount":9007199254740992}' }, { value: '{"account":"a","amount":1}' }]);
    expect(seen).toEqual([2n ** 53n, 2n ** 53n + 1n]);
    expect(driver.changes.map((c) => c.change.after)).toEqual([{ total: { $bigint: '9007199254740993' } }]);
  });
});
