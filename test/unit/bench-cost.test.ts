import { describe, expect, it } from 'vitest';
import { batchedUpdate, checkAgainstReference, groupByClass } from '../../bench/internal/batched-naive.ts';
import { anyItemSize, costPerMillionEvents, itemSize, numberSize, readUnits, resolveUpdateUnits, writeUnits } from '../../bench/internal/cost.ts';
import type { BookingEvent } from '../../functions/events.ts';

const event = (type: BookingEvent['type'], classId: string, at: string): BookingEvent => ({
  type,
  bookingId: `b-${classId}-${at}`,
  classId,
  memberId: 'm',
  classStartsAt: '2026-01-02T00:00:00.000Z',
  capacity: 10,
  at,
});

describe('bench cost model', () => {
  it('sizes numbers by significant digits: one byte per two, plus one', () => {
    expect(numberSize('7')).toBe(2);
    expect(numberSize('12345')).toBe(4);
    expect(numberSize('-1200')).toBe(2); // "12": 1 byte + 1
    expect(numberSize('0.0015')).toBe(2); // "15"
    expect(numberSize('1764547200000')).toBe(5); // "17645472": 4 bytes + 1
  });

  it('sizes items as attribute names plus values, maps with 3 bytes and 1 per element', () => {
    // pk: 2 + 2; n: 1 + 2; m: 1 + (3 + (1 + 1 + 1 /* "x": 'a' */) + (1 + 1 + 1 /* "y": true */)) = 10
    expect(itemSize({ pk: { S: 'ab' }, n: { N: '7' }, m: { M: { x: { S: 'a' }, y: { BOOL: true } } } })).toBe(4 + 3 + 10);
    // a list of two numbers: 3 + (1 + 2) + (1 + 2) = 9, name "l" 1
    expect(itemSize({ l: { L: [{ N: '1' }, { N: '22' }] } })).toBe(10);
    expect(itemSize({ é: { S: 'ü' } })).toBe(4); // UTF-8 bytes, not characters
  });

  it('sizes a document client item (plain values) as its wire format', () => {
    expect(anyItemSize({ pk: 'ab', n: 7, m: { x: 'a', y: true } })).toBe(17);
    expect(anyItemSize({ pk: { S: 'ab' }, n: { N: '7' }, m: { M: { x: { S: 'a' }, y: { BOOL: true } } } })).toBe(17);
    expect(anyItemSize({ l: [1, 22], gone: undefined })).toBe(10);
  });

  it('prices writes per started KB, doubled in a transaction, and reads per started 4 KB', () => {
    expect(writeUnits(0, false)).toBe(1);
    expect(writeUnits(1024, false)).toBe(1);
    expect(writeUnits(1025, false)).toBe(2);
    expect(writeUnits(3000, true)).toBe(6);
    expect(readUnits(0, true)).toBe(1);
    expect(readUnits(4096, false)).toBe(0.5);
    expect(readUnits(4097, true)).toBe(2);
    expect(readUnits(9000, false)).toBe(1.5);
  });

  it('prices a million events at the on-demand list price', () => {
    // 0.04 WRU/event * $0.625 + 0.5 RRU/event * $0.125 = $0.025 + $0.0625
    expect(costPerMillionEvents(0.04, 0.5)).toBeCloseTo(0.0875, 10);
    // the naive pattern: one ~100-byte UpdateItem per event, no reads
    expect(costPerMillionEvents(1, 0)).toBeCloseTo(0.625, 10);
    expect(costPerMillionEvents(1, 0, { region: 'x', effective: 'x', writePerMillionUnits: 1.25, readPerMillionUnits: 0.25 })).toBe(1.25);
  });

  it('prices updates at the stored size of their item, an item gone at one unit', () => {
    const sizes: Record<string, number> = { 't\ta\t1': 100, 't\tb\t1': 2100 };
    // a: 3 updates * 1 unit; b: 2 * 3 units; c (gone): 1 * 1
    expect(resolveUpdateUnits({ 't\ta\t1': 3, 't\tb\t1': 2, 't\tc\t1': 1 }, (id) => sizes[id])).toBe(3 + 6 + 1);
  });
});

describe('bench batched naive contender and reference', () => {
  const events = [
    event('booked', 'a', '2026-01-01T00:00:01.000Z'),
    event('booked', 'a', '2026-01-01T00:00:02.000Z'),
    event('cancelled', 'b', '2026-01-01T00:00:03.000Z'),
    event('cancelled', 'a', '2026-01-01T00:00:04.000Z'),
  ];

  it('groups a batch into one delta per class, keeping the last event time', () => {
    const grouped = groupByClass(events);
    expect([...grouped.keys()]).toEqual(['a', 'b']);
    expect(grouped.get('a')).toEqual({ booked: 2, cancelled: 1, net: 1, lastEventAtMs: Date.UTC(2026, 0, 1, 0, 0, 4) });
    expect(grouped.get('b')).toEqual({ booked: 0, cancelled: 1, net: -1, lastEventAtMs: Date.UTC(2026, 0, 1, 0, 0, 3) });
  });

  it('sends one ADD per key with the delta of the batch', () => {
    const input = batchedUpdate('t', 'a', { booked: 2, cancelled: 1, net: 1, lastEventAtMs: 5 }).input;
    expect(input.Key).toEqual({ pk: { S: 'naive#classCounts' }, sk: { S: 'key#a' } });
    expect(input.ExpressionAttributeValues).toEqual({ ':b': { N: '2' }, ':c': { N: '1' }, ':n': { N: '1' }, ':at': { N: '5' } });
  });

  it('counts a re-delivered batch as extra events and wrong keys', () => {
    const reference = groupByClass(events);
    expect(checkAgainstReference(reference, new Map([['a', { booked: 2, cancelled: 1, net: 1 }], ['b', { booked: 0, cancelled: 1, net: -1 }]]))).toEqual({ keysWrong: 0, extraEvents: 0 });
    // the first two events delivered twice: a gets 2 more bookings
    expect(checkAgainstReference(reference, new Map([['a', { booked: 4, cancelled: 1, net: 3 }], ['b', { booked: 0, cancelled: 1, net: -1 }]]))).toEqual({ keysWrong: 1, extraEvents: 2 });
    // b never written: one event lost
    expect(checkAgainstReference(reference, new Map([['a', { booked: 2, cancelled: 1, net: 1 }]]))).toEqual({ keysWrong: 1, extraEvents: -1 });
  });
});
