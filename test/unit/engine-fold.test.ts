import { describe, expect, it } from 'vitest';
import { defineView, type SourceRecord } from '../../sdk/index.ts';
import { deadLetterBytes, encodeDeadLetter, groupDeadLetters } from '../../engine/internal/dead-letter.ts';
import { ABSENT_ITEM, compareOffsets, foldItem, routeRecords, snapshotOf, unstorableReason } from '../../engine/internal/fold.ts';
import { advancePending, pendingDeliveries } from '../../engine/internal/ledger.ts';
import { StateCache } from '../../engine/internal/state-cache.ts';
import {
  checkpointKey,
  encodeViewKey,
  MAX_WINDOW_START_MS,
  offsetsKey,
  VIEW_INDEX_SHARDS,
  viewIndexKey,
  viewIndexShard,
  viewItemKey,
} from '../../sdk/contract/index.ts';
import { defineTrigger } from '../../sdk/index.ts';

type Booking = { classId: string; n?: number; boom?: boolean; big?: boolean };

const counter = defineView({
  name: 'counter',
  source: 'bookings',
  key: (e: Booking) => e.classId,
  initial: () => ({ count: 0, sum: 0 }),
  reduce: (s, e) => {
    if (e.boom) throw new Error('boom');
    return { count: s.count + 1, sum: s.sum + (e.n ?? 0) };
  },
});

function record(offset: number, value: unknown, partition = 0, topic = 'bookings'): SourceRecord {
  return {
    topic,
    partition,
    offset: String(offset),
    key: null,
    value: value === null ? null : Buffer.from(typeof value === 'string' ? value : JSON.stringify(value)),
    timestampMs: 0,
    headers: {},
  };
}

describe('storage keys', () => {
  it('encodes view items, checkpoints and offsets as in docs/architecture.md "Storage layout"', () => {
    expect(viewItemKey('counter', 'yoga')).toEqual({ pk: 'v#counter#yoga', sk: '_' });
    expect(viewItemKey('counter', 42)).toEqual({ pk: 'v#counter#42', sk: '_' });
    expect(viewItemKey('counter', 42n)).toEqual({ pk: 'v#counter#42', sk: '_' });
    expect(viewItemKey('counter', 1.5)).toEqual({ pk: 'v#counter#1.5', sk: '_' });
    // '' is a key like any other (as in ksqlDB); `v#counter#` is a valid DynamoDB partition key.
    expect(viewItemKey('counter', '')).toEqual({ pk: 'v#counter#', sk: '_' });
    expect(checkpointKey('bookings', 2)).toEqual({ pk: '_tributary', sk: 'checkpoint#bookings#2' });
    expect(offsetsKey('bookings', 2)).toBe('bookings/2');
  });

  it('puts a windowed item under its key, sorted by the 15-digit window start', () => {
    const day = { start: 1_764_547_200_000, end: 1_764_633_600_000 };
    expect(viewItemKey('daily', 'yoga', day)).toEqual({ pk: 'v#daily#yoga', sk: 'w#001764547200000' });
    expect(viewItemKey('daily', 'yoga', day.start)).toEqual(viewItemKey('daily', 'yoga', day));
    expect(viewItemKey('daily', 'yoga', 0)).toEqual({ pk: 'v#daily#yoga', sk: 'w#000000000000000' });
    expect(viewItemKey('daily', 'yoga', MAX_WINDOW_START_MS).sk).toBe('w#999999999999999');
    // String order of the sort keys is time order.
    const starts = [5, 40, 300, 86_400_000, 1_764_547_200_000];
    const sks = starts.map((start) => viewItemKey('daily', 'k', start).sk);
    expect([...sks].sort()).toEqual(sks);
    for (const bad of [-1, 1.5, Number.NaN, MAX_WINDOW_START_MS + 1, '5' as never]) {
      expect(() => viewItemKey('daily', 'yoga', bad)).toThrowError(expect.objectContaining({ code: 'INVALID_ARGUMENT' }));
    }
  });

  it('shards the key index by FNV-1a of the key modulo 16', () => {
    expect(VIEW_INDEX_SHARDS).toBe(16);
    // Published FNV-1a 32-bit vectors: "" 0x811c9dc5, "a" 0xe40c292c, "foobar" 0xbf9cf968.
    expect(viewIndexShard('')).toBe(0x811c9dc5 % 16);
    expect(viewIndexShard('a')).toBe(0xe40c292c % 16);
    expect(viewIndexShard('foobar')).toBe(0xbf9cf968 % 16);
    expect(viewIndexKey('counter', 'foobar')).toEqual({ ixShard: 'v#counter#8', ixKey: 'k#foobar' });
    // An index key cannot be '', a view key can: hence the k# prefix.
    expect(viewIndexKey('counter', '')).toEqual({ ixShard: `v#counter#${0x811c9dc5 % 16}`, ixKey: 'k#' });
    expect(viewIndexKey('counter', 'a', { start: 86_400_000, end: 172_800_000 })).toEqual({
      ixShard: 'v#counter#12',
      ixKey: 'w#000000086400000#a',
    });
    // The same key has the same shard whatever its type or window.
    expect(viewIndexKey('counter', 42).ixShard).toBe(viewIndexKey('counter', '42', 7).ixShard);
    // Many keys use every shard.
    const used = new Set(Array.from({ length: 200 }, (_, i) => viewIndexShard(`key-${i}`)));
    expect(used.size).toBe(16);
  });

  it('rejects unusable keys with INVALID_ARGUMENT', () => {
    expect(() => encodeViewKey(null as never)).toThrowError(expect.objectContaining({ code: 'INVALID_ARGUMENT' }));
    expect(() => encodeViewKey(Number.NaN)).toThrowError(expect.objectContaining({ code: 'INVALID_ARGUMENT' }));
  });
});

describe('compareOffsets', () => {
  it('compares int64 decimal offsets numerically', () => {
    expect(compareOffsets('9', '10')).toBeLessThan(0);
    expect(compareOffsets('10', '9')).toBeGreaterThan(0);
    expect(compareOffsets('9223372036854775806', '9223372036854775807')).toBeLessThan(0);
    expect(compareOffsets('5', '5')).toBe(0);
  });
});

describe('routeRecords', () => {
  it('routes decoded events to items in order and classifies poison', () => {
    const routed = routeRecords(
      [counter],
      [
        record(0, { classId: 'a' }),
        record(1, '{not json'),
        record(2, { classId: 'b' }),
        record(3, { nope: 1 }),
        record(4, null),
        record(5, { classId: 'a', n: 2 }),
        record(6, { classId: 'a' }, 0, 'other-topic'),
      ],
    );
    expect([...routed.items.values()].map((i) => [i.key, i.events.map((e) => e.record.offset)])).toEqual([
      ['a', ['0', '5']],
      ['b', ['2']],
    ]);
    expect(routed.deadLetters.map((d) => [d.code, d.record.offset])).toEqual([
      ['DECODE_FAILED', '1'],
      ['KEY_MISSING', '3'],
      ['DECODE_FAILED', '4'],
    ]);
    expect(routed.deadLetters[1]!.reason).toContain('bookings/0@3');
  });

  it('counts filtered events and dead-letters a throwing filter or key', () => {
    const view = defineView({
      name: 'f',
      source: 'bookings',
      filter: (e: Booking) => {
        if (e.classId === 'x') throw new Error('bad filter');
        return e.classId !== 'skip';
      },
      key: (e: Booking) => {
        if (e.classId === 'k') throw new Error('bad key');
        return e.classId;
      },
      initial: () => 0,
      reduce: (s: number) => s + 1,
    });
    const routed = routeRecords([view], [record(0, { classId: 'skip' }), record(1, { classId: 'x' }), record(2, { classId: 'k' })]);
    expect(routed.filtered).toBe(1);
    expect(routed.deadLetters.map((d) => d.code)).toEqual(['FILTER_FAILED', 'KEY_FAILED']);
    expect(routed.items.size).toBe(0);
  });
});

describe('foldItem', () => {
  const events = (offsets: number[], partition = 0, extra: Partial<Booking> = {}) =>
    offsets.map((o) => ({ record: record(o, {}, partition), event: { classId: 'a', n: o, ...extra } as Booking }));

  it('folds fresh events into one write conditioned on the read version', () => {
    const result = foldItem(counter, 'a', ABSENT_ITEM, events([0, 1, 2]));
    expect(result.applied).toBe(3);
    expect(result.write?.expectedVersion).toBe(0);
    expect(result.write?.item).toMatchObject({
      pk: 'v#counter#a',
      sk: '_',
      ixShard: `v#counter#${0xe40c292c % 16}`,
      ixKey: 'k#a',
      state: { count: 3, sum: 3 },
      // One version per applied event.
      version: 3,
      offsets: { 'bookings/0': '2' },
    });
    const next = foldItem(counter, 'a', result.write!.snapshot, events([3], 1));
    expect(next.write?.expectedVersion).toBe(3);
    expect(next.write?.item.version).toBe(4);
    expect(next.write?.item.offsets).toEqual({ 'bookings/0': '2', 'bookings/1': '3' });
    expect(next.write?.item.state).toEqual({ count: 4, sum: 6 });
  });

  it('skips events at or below the stored offset of their partition (the fence)', () => {
    const first = foldItem(counter, 'a', ABSENT_ITEM, events([0, 1, 2]));
    const again = foldItem(counter, 'a', first.write!.snapshot, events([1, 2, 3, 4]));
    expect(again.skipped).toBe(2);
    expect(again.applied).toBe(2);
    expect(again.write?.item.state).toEqual({ count: 5, sum: 10 });
    const replay = foldItem(counter, 'a', again.write!.snapshot, events([0, 1, 2, 3, 4]));
    expect(replay.write).toBeUndefined();
    expect(replay.skipped).toBe(5);
  });

  it('dead-letters a throwing reducer and keeps folding the rest', () => {
    const list = [...events([0]), ...events([1], 0, { boom: true }), ...events([2])];
    const result = foldItem(counter, 'a', ABSENT_ITEM, list);
    expect(result.deadLetters.map((d) => [d.code, d.record.offset, d.key])).toEqual([['REDUCE_FAILED', '1', 'a']]);
    expect(result.write?.item.state).toEqual({ count: 2, sum: 2 });
    expect(result.write?.item.offsets).toEqual({ 'bookings/0': '2' });
  });

  it('dead-letters the event that grows the state past maxStateBytes, keeping the others', () => {
    const collect = defineView({
      name: 'collect',
      source: 'bookings',
      key: (e: { k: string; text: string }) => e.k,
      initial: () => [] as string[],
      reduce: (s: string[], e: { k: string; text: string }) => [...s, e.text],
      maxStateBytes: 100,
    });
    const list = ['aa', 'x'.repeat(200), 'bb'].map((text, i) => ({ record: record(i, {}), event: { k: 'k', text } }));
    const result = foldItem(collect, 'k', ABSENT_ITEM, list);
    expect(result.deadLetters.map((d) => [d.code, d.record.offset])).toEqual([['STATE_TOO_LARGE', '1']]);
    expect(result.deadLetters[0]!.reason).toMatch(/maxStateBytes 100/);
    expect(result.write?.item.state).toEqual(['aa', 'bb']);
    expect(result.applied).toBe(2);
  });

  it('dead-letters the event that makes the state unstorable in DynamoDB, keeping the others', () => {
    const metrics = defineView({
      name: 'metrics',
      source: 'bookings',
      key: (e: { k: string; set: Record<string, unknown> }) => e.k,
      initial: () => ({}) as Record<string, unknown>,
      reduce: (s: Record<string, unknown>, e: { k: string; set: Record<string, unknown> }) => ({ ...s, ...e.set }),
    });
    const sets: Record<string, unknown>[] = [
      { a: 1 },
      { b: 1e200 }, // 1: over DynamoDB's 1e126
      { c: 2 ** 60 }, // storable: past 2^53 but a double DynamoDB holds exactly
      { d: Number.NaN }, // 3: JSON would turn it into null
      { '': 1 }, // 4: empty attribute name
      { e: 1e-200 }, // 5: under DynamoDB's 1e-130
    ];
    const list = sets.map((set, i) => ({ record: record(i, {}), event: { k: 'k', set } }));
    const result = foldItem(metrics, 'k', ABSENT_ITEM, list);
    expect(result.deadLetters.map((d) => [d.code, d.record.offset])).toEqual([
      ['STATE_NOT_STORABLE', '1'],
      ['STATE_NOT_STORABLE', '3'],
      ['STATE_NOT_STORABLE', '4'],
      ['STATE_NOT_STORABLE', '5'],
    ]);
    expect(result.deadLetters[0]!.reason).toContain('state.b is 1e+200');
    expect(result.write?.item.state).toEqual({ a: 1, c: 2 ** 60 });
  });

  it('explains what in a state DynamoDB cannot store, following JSON.stringify', () => {
    const deep = (n: number): unknown => (n === 0 ? 1 : { x: deep(n - 1) });
    expect(unstorableReason({ a: [1, { b: -1e130 }] })).toBe("state.a[1].b is -1e+130, outside DynamoDB's number range (magnitudes 1e-130 to below 1e126)");
    expect(unstorableReason({ 'odd key': Infinity })).toBe('state["odd key"] is Infinity, which JSON would store as null');
    expect(unstorableReason(deep(31))).toBeUndefined();
    expect(unstorableReason(deep(32))).toMatch(/nests deeper than the 31 levels/);
    // What JSON drops or converts is judged as JSON stores it.
    expect(unstorableReason({ gone: undefined, fn: () => 1, at: new Date(0), n: 9.99e125, tiny: 1e-130, zero: -0 })).toBeUndefined();
    expect(unstorableReason({ custom: { toJSON: () => ({ '': 1 }) } })).toBe('state.custom has an empty key, which DynamoDB cannot store');
  });

  it('writes nothing when every fresh event is poison', () => {
    const result = foldItem(counter, 'a', ABSENT_ITEM, events([0, 1], 0, { boom: true }));
    expect(result.write).toBeUndefined();
    expect(result.deadLetters).toHaveLength(2);
  });

  it('sets trigger bookkeeping on a change, keeping the older before when coalescing', () => {
    const trigger = defineTrigger({ view: counter, function: 'notify', changes: 'coalesced' });
    const v1 = foldItem(counter, 'a', ABSENT_ITEM, events([0]), { triggers: [trigger] }).write!;
    expect(v1.item.pending).toEqual({ 'counter-notify': 0 });
    // Not delivered yet: the next write keeps before = absent.
    const v2 = foldItem(counter, 'a', v1.snapshot, events([1]), { triggers: [trigger] }).write!;
    expect(v2.item.pending).toEqual({ 'counter-notify': 0 });
    const deliveries = pendingDeliveries(counter, 'a', v2.snapshot, [trigger]);
    expect(deliveries).toHaveLength(1);
    expect(deliveries[0]!.change).toMatchObject({
      view: 'counter',
      key: 'a',
      before: undefined,
      after: { count: 2, sum: 1 },
      version: 2,
      idempotencyKey: 'counter#a##2',
    });
    // After a delivery the bookkeeping is gone; the next change starts from the delivered state.
    const { pending: _p, befores: _b, ...delivered } = v2.snapshot;
    const v3 = foldItem(counter, 'a', delivered, events([2]), { triggers: [trigger] }).write!;
    expect(v3.item.pending).toEqual({ 'counter-notify': 2 });
    expect(v3.item.befores).toEqual({ '2': { count: 2, sum: 1 } });
    expect(pendingDeliveries(counter, 'a', v3.snapshot, [trigger])[0]!.change.before).toEqual({ count: 2, sum: 1 });
  });

  it('starts a change where the trigger last judged, and advances bookkeeping the item moved past', () => {
    const trigger = defineTrigger({ view: counter, function: 'notify' });
    const v1 = foldItem(counter, 'a', ABSENT_ITEM, events([0]), { triggers: [trigger] }).write!;
    const v2 = foldItem(counter, 'a', v1.snapshot, events([1]), { triggers: [trigger] }).write!;
    const s1 = JSON.parse(v1.snapshot.stateJson!);
    // v2 kept v1's bookkeeping (before = absent); another batch judged v1 meanwhile.
    expect(v2.item.pending).toEqual({ 'counter-notify': 0 });
    const judged = new Map([[trigger.name, { version: 1, stateJson: v1.snapshot.stateJson! }]]);
    expect(pendingDeliveries(counter, 'a', v2.snapshot, [trigger], judged)[0]!.change).toMatchObject({
      before: s1,
      after: JSON.parse(v2.snapshot.stateJson!),
      version: 2,
    });
    // Judged at or past the snapshot's version: nothing left to judge.
    expect(pendingDeliveries(counter, 'a', v1.snapshot, [trigger], judged)).toEqual([]);
    // v1's change settled after v2 was written: v2's bookkeeping now starts at v1.
    const advanced = advancePending(v2.snapshot, [trigger.name], 1, v1.snapshot.stateJson!);
    expect(advanced).toMatchObject({ version: 2, pending: { 'counter-notify': 1 }, befores: { '1': s1 } });
    expect(pendingDeliveries(counter, 'a', advanced, [trigger])[0]!.change.before).toEqual(s1);
    // Never backwards, never to the item's own version (that is a clear), other triggers untouched.
    expect(advancePending(advanced, [trigger.name], 0, '{}')).toBe(advanced);
    expect(advancePending(v2.snapshot, [trigger.name], 2, v2.snapshot.stateJson!)).toBe(v2.snapshot);
    expect(advancePending(v2.snapshot, ['other'], 1, v1.snapshot.stateJson!)).toBe(v2.snapshot);
  });

  it('applies when() and dead-letters a throwing when()', () => {
    const quiet = defineTrigger({ view: counter, function: 'f', name: 'quiet', when: () => false });
    const broken = defineTrigger({
      view: counter,
      function: 'f',
      name: 'broken',
      when: () => {
        throw new Error('nope');
      },
    });
    const write = foldItem(counter, 'a', ABSENT_ITEM, events([0]), { triggers: [quiet, broken] }).write!;
    const deliveries = pendingDeliveries(counter, 'a', write.snapshot, [quiet, broken]);
    expect(deliveries.map((d) => [d.trigger.name, d.deliver, d.deadLetter?.code])).toEqual([
      ['quiet', false, undefined],
      ['broken', false, 'TRIGGER_WHEN_FAILED'],
    ]);
  });

  it('snapshots a stored item as JSON', () => {
    const snapshot = snapshotOf({
      pk: 'v#counter#a',
      sk: '_',
      ixShard: 'v#counter#12',
      ixKey: 'k#a',
      view: 'counter',
      key: 'a',
      state: { count: 1 },
      version: 3,
      offsets: { 'bookings/0': '7' },
      updatedAt: 'x',
    });
    expect(snapshot).toEqual({ version: 3, stateJson: '{"count":1}', offsets: { 'bookings/0': '7' } });
  });
});

describe('encodeDeadLetter', () => {
  it('carries reason, code, view, coordinates and the original record in base64', () => {
    const source = { ...record(9, '{bad', 2), key: Buffer.from('k1'), headers: { h: Buffer.from('v') } };
    const routed = routeRecords([counter], [source]);
    const message = encodeDeadLetter('gym', routed.deadLetters[0]!, new Date(0));
    const value = JSON.parse(message.value);
    expect(value).toMatchObject({
      kind: 'poison',
      app: 'gym',
      code: 'DECODE_FAILED',
      view: 'counter',
      source: { topic: 'bookings', partition: 2, offset: '9' },
      original: { key: Buffer.from('k1').toString('base64'), value: Buffer.from('{bad').toString('base64'), headers: { h: 'dg==' } },
    });
    expect(value.error.message).toBeTruthy();
    expect(message.headers).toMatchObject({ 'tributary-code': 'DECODE_FAILED', 'tributary-source': 'bookings/2@9' });
    expect(message.key?.toString()).toBe('k1');
  });

  it('omits the original value of a poison record whose letter would pass the size limit, and says where to read it', () => {
    const source = { ...record(4, '{' + 'x'.repeat(5_000), 1), key: Buffer.from('k1'), headers: { h: Buffer.from('v') } };
    const letter = routeRecords([counter], [source]).deadLetters[0]!;
    expect(deadLetterBytes(encodeDeadLetter('gym', letter, new Date(0)))).toBeGreaterThan(6_000);
    const message = encodeDeadLetter('gym', letter, new Date(0), 2_000);
    expect(deadLetterBytes(message)).toBeLessThanOrEqual(2_000);
    const value = JSON.parse(message.value);
    expect(value).toMatchObject({
      code: 'DECODE_FAILED',
      source: { topic: 'bookings', partition: 1, offset: '4' },
      original: { key: Buffer.from('k1').toString('base64'), value: null, headers: {} },
      omitted: { fields: ['original.value', 'original.headers'], originalValueBytes: 5_001 },
    });
    expect(value.omitted.reason).toContain('bookings/1@4');
  });

  it("omits a change's before and after when its letter would pass the size limit, keeping key and version", () => {
    const big = 'y'.repeat(3_000);
    const letter = {
      kind: 'trigger' as const,
      code: 'TRIGGER_DELIVERY_FAILED' as const,
      reason: 'function failed',
      trigger: 't',
      view: 'counter',
      key: 'c1',
      function: 'f',
      change: { view: 'counter', key: 'c1', version: 7, before: { big }, after: { big } },
    };
    expect(JSON.parse(encodeDeadLetter('gym', letter, new Date(0)).value).change.after).toEqual({ big });
    const value = JSON.parse(encodeDeadLetter('gym', letter, new Date(0), 1_000).value);
    expect(value.change).toEqual({ view: 'counter', key: 'c1', version: 7 });
    expect(value.omitted.fields).toEqual(['change.before', 'change.after']);
  });

  it('groups letters, in order, into requests under the size limit', () => {
    const message = (n: number) => ({ key: null, value: 'v'.repeat(n), headers: {} });
    const groups = groupDeadLetters([message(400), message(400), message(400), message(900), message(50)], 1_000);
    expect(groups.map((g) => g.map((m) => m.value.length))).toEqual([[400, 400], [400], [900, 50]]);
    expect(groupDeadLetters([], 1_000)).toEqual([]);
    // One letter over the limit still goes alone (encodeDeadLetter keeps each under it).
    expect(groupDeadLetters([message(1_500)], 1_000)).toHaveLength(1);
  });
});

describe('StateCache', () => {
  it('evicts the least recently used entries past its entry and byte limits', () => {
    const cache = new StateCache({ maxEntries: 2, maxBytes: 10_000 });
    const snap = (n: number) => ({ version: n, stateJson: String(n), offsets: {} });
    cache.set('a', snap(1));
    cache.set('b', snap(2));
    cache.get('a');
    cache.set('c', snap(3));
    expect(cache.peek('b')).toBeUndefined();
    expect(cache.peek('a')?.version).toBe(1);
    expect(cache.size).toBe(2);
    // Each entry is ~300 bytes (overhead + strings): three fit in 1,000.
    const small = new StateCache({ maxEntries: 100, maxBytes: 1_000 });
    for (let i = 0; i < 10; i += 1) small.set(String(i), { version: 1, stateJson: 'x'.repeat(50), offsets: {} });
    expect(small.bytes).toBeLessThanOrEqual(1_000);
    expect(small.size).toBe(3);
    expect(small.evictions).toBeGreaterThan(0);
  });
});
