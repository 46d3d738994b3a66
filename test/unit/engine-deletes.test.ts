/**
 * Deleting view items (`reduce` returns DELETE) and tombstones reaching a view (`onTombstone`),
 * through the in-memory driver. The tombstone item keeps the key's offsets (invariant 1), so a
 * replay applies nothing twice and delivers no change twice; expected states and change
 * sequences are computed in the test from the events.
 */
import { describe, expect, it } from 'vitest';
import { createTestDriver } from '../../engine/index.ts';
import { DEFAULT_DELETE_RETENTION_MS, DELETE, DefinitionError, defineApp, defineTrigger, defineView, tumbling } from '../../sdk/index.ts';

type OrderEvent = { order: string; type: 'placed' | 'item' | 'cancelled' };
type Order = { items: number };

const orders = defineView({
  name: 'orders',
  source: 'order-events',
  key: (e: OrderEvent) => e.order,
  initial: (): Order => ({ items: 0 }),
  reduce: (s, e) => (e.type === 'cancelled' ? DELETE : e.type === 'item' ? { items: s.items + 1 } : s),
  // A tombstone of key K deletes order K.
  onTombstone: (record): OrderEvent => ({ order: record.key!.toString('utf8'), type: 'cancelled' }),
});
const every = defineTrigger({ view: orders, function: 'audit', name: 'auditEvery' });
const coalesced = defineTrigger({ view: orders, function: 'audit', name: 'auditCoalesced', changes: 'coalesced' });
const app = defineApp({ name: 'shop', views: [orders], triggers: [every, coalesced] });

const ev = (order: string, type: OrderEvent['type']) => ({ key: order, value: { order, type } });

/** Independent fold: [before, after, version] of each state change of one key ('every'). */
function reference(types: readonly (OrderEvent['type'] | 'tombstone')[]) {
  const out: [Order | undefined, Order | undefined, number][] = [];
  let state: Order | undefined;
  let version = 0;
  for (const type of types) {
    version += 1;
    const base = state ?? { items: 0 };
    const next = type === 'cancelled' || type === 'tombstone' ? undefined : type === 'item' ? { items: base.items + 1 } : base;
    if (JSON.stringify(next) !== JSON.stringify(state)) out.push([state, next, version]);
    state = next;
  }
  return { changes: out, state, version };
}

const changesOf = (driver: ReturnType<typeof createTestDriver>, trigger: string) =>
  driver.changes.filter((c) => c.trigger === trigger).map(({ change }) => [change.before, change.after, change.version] as const);

describe('deleting view items', () => {
  it('hides a deleted item from reads, tells triggers with after undefined, and starts again from initial()', async () => {
    const driver = createTestDriver(app);
    const types = ['placed', 'item', 'item', 'cancelled', 'item'] as const;
    // One batch with a delete in the middle, then a separate batch that deletes again.
    await driver.send('order-events', types.map((t) => ev('o1', t)));
    const first = reference(types);
    expect(driver.state('orders', 'o1')).toEqual(first.state);
    expect(changesOf(driver, 'auditEvery')).toEqual(first.changes);

    await driver.send('order-events', [ev('o1', 'cancelled')]);
    const all = reference([...types, 'cancelled']);
    expect(driver.state('orders', 'o1')).toBeUndefined();
    expect(changesOf(driver, 'auditEvery')).toEqual(all.changes);
    const last = driver.changes.at(-1)!.change;
    expect(last.deleted).toBe(true);
    expect(last.after).toBeUndefined();
    // The coalesced trigger: one change per batch, the last one from { items: 1 } to deleted.
    expect(changesOf(driver, 'auditCoalesced')).toEqual([
      [undefined, { items: 1 }, 5],
      [{ items: 1 }, undefined, 6],
    ]);

    // The tombstone keeps the fence: version and offsets, no state, an expiry.
    const tombstone = driver.item('orders', 'o1')!;
    expect(tombstone.state).toBeUndefined();
    expect(tombstone.version).toBe(all.version);
    expect(tombstone.offsets).toEqual({ 'order-events/0': '5' });
    expect(tombstone.ttl).toBe(Math.ceil(DEFAULT_DELETE_RETENTION_MS / 1000));
  });

  it('applies nothing twice and delivers no change twice when the whole log is replayed', async () => {
    const driver = createTestDriver(app);
    const types = ['placed', 'item', 'cancelled'] as const;
    await driver.send('order-events', types.map((t) => ev('o2', t)));
    const before = driver.changes.length;
    driver.restart();
    await driver.redeliver('order-events', 0, 0);
    expect(driver.changes.length).toBe(before);
    expect(driver.state('orders', 'o2')).toBeUndefined();
    expect(driver.item('orders', 'o2')!.version).toBe(3);
    // A new event after the delete starts from initial().
    await driver.send('order-events', [ev('o2', 'item')]);
    expect(driver.state('orders', 'o2')).toEqual({ items: 1 });
    expect(changesOf(driver, 'auditEvery').at(-1)).toEqual([undefined, { items: 1 }, 4]);
  });

  it('creates nothing for a delete of a key that never existed, and no change', async () => {
    const driver = createTestDriver(app);
    await driver.send('order-events', [ev('o3', 'cancelled')]);
    expect(driver.state('orders', 'o3')).toBeUndefined();
    expect(driver.changes).toEqual([]);
  });

  it('deletes one window of a windowed view; the others stay', async () => {
    const windowed = defineView({
      name: 'hourly',
      source: 'order-events',
      key: (e: OrderEvent) => e.order,
      window: tumbling({ sizeMs: 1000 }),
      graceMs: 10_000,
      initial: (): Order => ({ items: 0 }),
      reduce: (s, e) => (e.type === 'cancelled' ? DELETE : { items: s.items + 1 }),
    });
    const driver = createTestDriver(defineApp({ name: 'shop2', views: [windowed] }));
    await driver.send('order-events', [
      { ...ev('o4', 'item'), timestampMs: 100 },
      { ...ev('o4', 'item'), timestampMs: 1100 },
      { ...ev('o4', 'cancelled'), timestampMs: 1200 },
    ]);
    expect(driver.windows('hourly', 'o4')).toEqual([{ window: { start: 0, end: 1000 }, state: { items: 1 } }]);
    expect(driver.state('hourly', 'o4', 1000)).toBeUndefined();
  });

  it('refuses DELETE in a session view as poison, naming the reason', async () => {
    const sessions = defineView({
      name: 'visits',
      source: 'order-events',
      key: (e: OrderEvent) => e.order,
      window: { kind: 'session', gapMs: 1000 },
      graceMs: 0,
      merge: (a: Order, b: Order) => ({ items: a.items + b.items }),
      initial: (): Order => ({ items: 0 }),
      reduce: (s, e) => (e.type === 'cancelled' ? DELETE : { items: s.items + 1 }),
    });
    const driver = createTestDriver(defineApp({ name: 'shop3', views: [sessions] }));
    await driver.send('order-events', [{ ...ev('o5', 'item'), timestampMs: 10 }, { ...ev('o5', 'cancelled'), timestampMs: 20 }]);
    expect(driver.deadLetters.map((d) => d.code)).toEqual(['REDUCE_FAILED']);
    expect(JSON.stringify(driver.deadLetters[0])).toContain('session view cannot delete');
    expect(driver.windows('visits', 'o5').map((w) => w.state)).toEqual([{ items: 1 }]);
  });

  it('refuses a state with the reserved top-level key "$absent"', async () => {
    const bad = defineView({
      name: 'bad',
      source: 'order-events',
      key: (e: OrderEvent) => e.order,
      initial: () => ({}),
      reduce: () => ({ $absent: true }),
    });
    const driver = createTestDriver(defineApp({ name: 'shop4', views: [bad] }));
    await driver.send('order-events', [ev('o6', 'item')]);
    expect(driver.deadLetters.map((d) => d.code)).toEqual(['STATE_NOT_STORABLE']);
  });

  it('rejects a deleteRetentionMs that is not a positive integer', () => {
    expect(() => defineView({ ...optionsOf(), deleteRetentionMs: 0 })).toThrow(DefinitionError);
    expect(() => defineView({ ...optionsOf(), deleteRetentionMs: 0 })).toThrow(/deleteRetentionMs must be a positive integer, received 0/);
  });
});

function optionsOf() {
  return {
    name: 'x',
    source: 'order-events',
    key: (e: OrderEvent) => e.order,
    initial: (): Order => ({ items: 0 }),
    reduce: (s: Order) => s,
  };
}

describe('tombstones', () => {
  it('turns a tombstone into an event with onTombstone: it deletes the key', async () => {
    const driver = createTestDriver(app);
    await driver.send('order-events', [ev('t1', 'item'), { key: 't1', value: null }]);
    expect(driver.state('orders', 't1')).toBeUndefined();
    expect(changesOf(driver, 'auditEvery')).toEqual(reference(['item', 'tombstone']).changes);
    expect(driver.deadLetters).toEqual([]);
  });

  it('keeps a tombstone poison (DECODE_FAILED) for a view without onTombstone, and a throwing hook too', async () => {
    const plain = defineView({ ...optionsOf(), name: 'plain' });
    const throwing = defineView({
      ...optionsOf(),
      name: 'throwing',
      onTombstone: () => {
        throw new Error('no key');
      },
    });
    const driver = createTestDriver(defineApp({ name: 'shop5', views: [plain, throwing] }));
    await driver.send('order-events', [{ key: 't2', value: null }]);
    const letters = driver.deadLetters.map((d) => [d.code, (d as { view?: string }).view, d.reason.includes('onTombstone')]);
    expect(letters).toEqual([
      ['DECODE_FAILED', 'plain', true],
      ['DECODE_FAILED', 'throwing', true],
    ]);
    expect(driver.deadLetters[1]!.reason).toContain('no key');
  });
});
