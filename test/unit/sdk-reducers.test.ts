import { describe, expect, it } from 'vitest';
import { SdkError } from '../../sdk/internal/errors.ts';
import {
  avg,
  avgValue,
  collect,
  count,
  countDistinct,
  countDistinctValue,
  DEFAULT_COLLECT_MAX,
  DEFAULT_COUNT_DISTINCT_MAX,
  type DistinctState,
  earliest,
  earliestByTime,
  histogram,
  HLL_REGISTERS,
  latest,
  latestByTime,
  max,
  min,
  removeWhere,
  stddev,
  stddevValue,
  sum,
  topK,
  varianceValue,
} from '../../sdk/internal/reducers.ts';

function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (error) {
    expect(error).toBeInstanceOf(SdkError);
    return (error as SdkError).code;
  }
  return undefined;
}

describe('count / sum', () => {
  it('start fresh keys at 0 and add deltas, negative included', () => {
    expect(count(undefined)).toBe(1);
    expect(count(null, 3)).toBe(3);
    expect(count(4, -1)).toBe(3);
    expect(sum(undefined, 12.5)).toBe(12.5);
    expect(sum(10, -3)).toBe(7);
  });

  it('reject non-finite numbers instead of storing NaN', () => {
    expect(codeOf(() => sum(1, Number.NaN))).toBe('INVALID_ARGUMENT');
    expect(codeOf(() => count(1, Infinity))).toBe('INVALID_ARGUMENT');
    expect(codeOf(() => sum('3' as unknown as number, 1))).toBe('INVALID_ARGUMENT');
  });
});

describe('min / max', () => {
  it('take the first value for a fresh key, then the extreme', () => {
    expect(min(undefined, 7)).toBe(7);
    expect(min(3, 7)).toBe(3);
    expect(min(8, 7)).toBe(7);
    expect(max(null, -2)).toBe(-2);
    expect(max(3, 7)).toBe(7);
    expect(max(9, 7)).toBe(9);
  });

  it('fold a sequence like Math.min / Math.max', () => {
    const values = [5, -1, 12, 3, 12, -4, 0];
    expect(values.reduce<number | undefined>((s, v) => min(s, v), undefined)).toBe(-4);
    expect(values.reduce<number | undefined>((s, v) => max(s, v), undefined)).toBe(12);
  });
});

describe('avg', () => {
  it('keeps sum and count; avgValue reads the mean', () => {
    let state = avg(undefined, 4);
    state = avg(state, 5);
    expect(state).toEqual({ sum: 9, count: 2 });
    expect(avgValue(state)).toBe(4.5);
  });

  it('removes a value with weight -1 and reads null when empty', () => {
    const state = avg(avg(avg(undefined, 4), 10), 4, -1);
    expect(avgValue(state)).toBe(10);
    expect(avgValue(avg(state, 10, -1))).toBeNull();
    expect(avgValue(undefined)).toBeNull();
  });

  it('does not mutate the previous state', () => {
    const before = Object.freeze({ sum: 1, count: 1 });
    expect(avg(before, 3)).toEqual({ sum: 4, count: 2 });
    expect(before).toEqual({ sum: 1, count: 1 });
  });
});

describe('latest / earliest (by offset) and latestByTime / earliestByTime', () => {
  it('latest is the last non-null value applied; earliest the first', () => {
    expect(latest(latest(undefined, 'gold'), 'silver')).toBe('silver');
    expect(latest('gold', null)).toBe('gold');
    expect(latest('gold', undefined)).toBe('gold');
    expect(latest(undefined, null)).toBeNull();
    expect(latest('gold', null, { nulls: 'keep' })).toBeNull();
    expect(latest('gold', undefined, { nulls: 'keep' })).toBeNull();
    expect(earliest(earliest(undefined, 'gold'), 'silver')).toBe('gold');
    expect(earliest(null, null)).toBeNull();
    expect(earliest(earliest(null, null), 'tin')).toBe('tin');
  });

  it('latest refuses the old timestamp argument and points to latestByTime', () => {
    expect(codeOf(() => latest(undefined, 1, '2026-01-01T00:00:00Z' as never))).toBe('INVALID_ARGUMENT');
    expect(codeOf(() => latest(undefined, 1, 1000 as never))).toBe('INVALID_ARGUMENT');
    expect(codeOf(() => latest(undefined, 1, new Date() as never))).toBe('INVALID_ARGUMENT');
    expect(codeOf(() => latest(undefined, 1, { nulls: 'drop' as never }))).toBe('INVALID_ARGUMENT');
  });

  it('latestByTime keeps the value with the greatest timestamp and ignores late older values', () => {
    let s = latestByTime(undefined, 'gold', '2026-01-02T10:00:00Z');
    s = latestByTime(s, 'silver', '2026-01-01T09:00:00Z');
    expect(s).toEqual({ value: 'gold', atMs: Date.parse('2026-01-02T10:00:00Z') });
    s = latestByTime(s, 'platinum', new Date('2026-01-03T00:00:00Z'));
    expect(s.value).toBe('platinum');
  });

  it('breaks ties by arrival: the later event for latestByTime, the earlier for earliestByTime', () => {
    expect(latestByTime(latestByTime(undefined, 'first', 1000), 'second', 1000).value).toBe('second');
    expect(earliestByTime(earliestByTime(undefined, 'first', 1000), 'second', 1000).value).toBe('first');
    expect(earliestByTime(earliestByTime(undefined, 'late', 2000), 'early', 1000)).toEqual({ value: 'early', atMs: 1000 });
  });

  it('skips a null value or a missing timestamp unless nulls: keep', () => {
    const s = latestByTime(undefined, 'gold', 1000);
    expect(latestByTime(s, null, 2000)).toBe(s);
    expect(latestByTime(s, 'tin', undefined)).toBe(s);
    expect(latestByTime(undefined, null, 2000)).toBeNull();
    expect(latestByTime(s, null, 2000, { nulls: 'keep' })).toEqual({ value: null, atMs: 2000 });
  });

  it('rejects unparseable timestamps', () => {
    expect(codeOf(() => latestByTime(undefined, 1, 'yesterday'))).toBe('INVALID_ARGUMENT');
    expect(codeOf(() => earliestByTime(undefined, 1, new Date('nope')))).toBe('INVALID_ARGUMENT');
  });
});

describe('collect / removeWhere', () => {
  it('appends and drops the oldest past the cap', () => {
    expect(collect(['a', 'b'], 'c', { max: 2 })).toEqual(['b', 'c']);
    expect(collect(undefined, 'a')).toEqual(['a']);
  });

  it('caps at DEFAULT_COLLECT_MAX by default', () => {
    let list: number[] | undefined;
    for (let i = 0; i < DEFAULT_COLLECT_MAX + 5; i++) list = collect(list, i);
    expect(list).toHaveLength(DEFAULT_COLLECT_MAX);
    expect(list?.[0]).toBe(5);
  });

  it('dedupes by identity as a set: the repeated item keeps its first position and takes the new value', () => {
    const list = [
      { id: 1, n: 1 },
      { id: 2, n: 1 },
    ];
    expect(collect(list, { id: 1, n: 2 }, { dedupeBy: (x) => x.id })).toEqual([
      { id: 1, n: 2 },
      { id: 2, n: 1 },
    ]);
    expect(list).toEqual([
      { id: 1, n: 1 },
      { id: 2, n: 1 },
    ]);
  });

  it("keep: 'first' ignores items past the cap, 'last' (the default) drops the oldest", () => {
    const fold = (keep?: 'first' | 'last') =>
      ['a', 'b', 'c', 'd'].reduce<string[] | null>((l, x) => collect(l, x, { max: 2, ...(keep ? { keep } : {}) }), null);
    expect(fold('first')).toEqual(['a', 'b']);
    expect(fold('last')).toEqual(['c', 'd']);
    expect(fold()).toEqual(['c', 'd']);
    // A repeat of a kept item still updates it in place when the list is full.
    expect(collect(['a', 'b'], 'a', { max: 2, keep: 'first', dedupeBy: (x) => x })).toEqual(['a', 'b']);
    // A list stored under a larger max is cut to the new one, by the same policy.
    expect(collect(['a', 'b', 'c'], 'a', { max: 2, keep: 'first', dedupeBy: (x) => x })).toEqual(['a', 'b']);
    expect(collect(['a', 'b', 'c'], 'a', { max: 2, dedupeBy: (x) => x })).toEqual(['b', 'c']);
    expect(codeOf(() => collect([], 'a', { keep: 'newest' as never }))).toBe('INVALID_ARGUMENT');
  });

  it('skips null items unless nulls: keep; a fresh list of only nulls is null', () => {
    expect(collect(['a'], null)).toEqual(['a']);
    expect(collect(undefined, undefined)).toBeNull();
    expect(collect(['a'], undefined, { nulls: 'keep' })).toEqual(['a', null]);
  });

  it('rejects a non-positive cap', () => {
    expect(codeOf(() => collect([], 1, { max: 0 }))).toBe('INVALID_ARGUMENT');
  });

  it('removeWhere returns a filtered copy', () => {
    const list = Object.freeze([{ id: 1 }, { id: 2 }]);
    expect(removeWhere(list, (x) => x.id === 1)).toEqual([{ id: 2 }]);
    expect(removeWhere(undefined, () => true)).toEqual([]);
  });
});

describe('topK', () => {
  const opts = { k: 2, score: (p: { id: string; pts: number }) => p.pts, id: (p: { id: string }) => p.id };

  it('keeps the k highest, best first', () => {
    let top = topK(undefined, { id: 'ann', pts: 5 }, opts);
    top = topK(top, { id: 'bob', pts: 9 }, opts);
    top = topK(top, { id: 'cid', pts: 1 }, opts);
    expect(top).toEqual([
      { id: 'bob', pts: 9 },
      { id: 'ann', pts: 5 },
    ]);
  });

  it('replaces the entry with the same id, whether its score rises or falls', () => {
    let top = topK([{ id: 'bob', pts: 9 }, { id: 'ann', pts: 5 }], { id: 'ann', pts: 12 }, opts);
    expect(top.map((p) => p.id)).toEqual(['ann', 'bob']);
    top = topK(top, { id: 'ann', pts: 1 }, { ...opts, k: 3 });
    expect(top).toEqual([
      { id: 'bob', pts: 9 },
      { id: 'ann', pts: 1 },
    ]);
  });

  it('keeps the lowest with order asc, and earlier entries win ties', () => {
    const asc = { k: 3, score: (x: { n: number; tag: string }) => x.n, order: 'asc' as const };
    let list = topK(undefined, { n: 5, tag: 'a' }, asc);
    list = topK(list, { n: 2, tag: 'b' }, asc);
    list = topK(list, { n: 5, tag: 'c' }, asc);
    list = topK(list, { n: 9, tag: 'd' }, asc);
    expect(list.map((x) => x.tag)).toEqual(['b', 'a', 'c']);
  });

  it('rejects a bad k or a non-finite score', () => {
    expect(codeOf(() => topK([], 1, { k: 1.5, score: (x: number) => x }))).toBe('INVALID_ARGUMENT');
    expect(codeOf(() => topK([], 1, { k: 1, score: () => Number.NaN }))).toBe('INVALID_ARGUMENT');
  });
});

describe('nulls, as SQL aggregates', () => {
  it('sum / min / max / avg / stddev / histogram / countDistinct skip null and undefined, keeping the state', () => {
    expect(sum(4, null)).toBe(4);
    expect(min(4, undefined)).toBe(4);
    expect(max(4, null)).toBe(4);
    expect(avg({ sum: 4, count: 1 }, null)).toEqual({ sum: 4, count: 1 });
    expect(stddev({ count: 1, mean: 4, m2: 0 }, null)).toEqual({ count: 1, mean: 4, m2: 0 });
    expect(histogram([1, 0], null, { boundaries: [10] })).toEqual([1, 0]);
    expect(countDistinct(['a'], null)).toEqual(['a']);
  });

  it('a fresh state that has seen only nulls is null, not undefined (the key still has a row)', () => {
    expect(sum(undefined, null)).toBeNull();
    expect(min(undefined, null)).toBeNull();
    expect(max(null, undefined)).toBeNull();
    expect(avg(undefined, null)).toBeNull();
    expect(avgValue(avg(undefined, null))).toBeNull();
    expect(stddev(undefined, null)).toBeNull();
    expect(topK(undefined, null, { k: 1, score: (x: number) => x })).toBeNull();
    expect(histogram(undefined, null, { boundaries: [1] })).toBeNull();
    expect(countDistinct(undefined, undefined)).toBeNull();
    // ...and the first real value starts from there.
    expect(sum(sum(undefined, null), 3)).toBe(3);
    expect(min(min(undefined, null), 3)).toBe(3);
  });

  it("{ nulls: 'error' } throws NULL_VALUE", () => {
    const strict = { nulls: 'error' } as const;
    expect(codeOf(() => sum(1, null, strict))).toBe('NULL_VALUE');
    expect(codeOf(() => min(1, undefined, strict))).toBe('NULL_VALUE');
    expect(codeOf(() => max(undefined, null, strict))).toBe('NULL_VALUE');
    expect(codeOf(() => avg(undefined, null, 1, strict))).toBe('NULL_VALUE');
    expect(codeOf(() => stddev(undefined, null, strict))).toBe('NULL_VALUE');
    expect(codeOf(() => topK([], { s: null }, { k: 1, score: (x: { s: number | null }) => x.s, ...strict }))).toBe('NULL_VALUE');
    expect(codeOf(() => countDistinct([], null, strict))).toBe('NULL_VALUE');
    expect(codeOf(() => histogram(undefined, null, { boundaries: [1], ...strict }))).toBe('NULL_VALUE');
    expect(codeOf(() => sum(1, null, { nulls: 'ignore' as never }))).toBe('INVALID_ARGUMENT');
  });

  it('topK skips a null item and an item whose score is null', () => {
    const opts = { k: 2, score: (x: { s: number | null }) => x.s };
    expect(topK([{ s: 1 }], { s: null }, opts)).toEqual([{ s: 1 }]);
    expect(topK([{ s: 1 }], null, opts)).toEqual([{ s: 1 }]);
  });
});

describe('min / max / topK on ordered types', () => {
  it('compare strings by code unit', () => {
    expect(['pear', 'apple', 'fig'].reduce<string | null>((s, v) => min(s, v), null)).toBe('apple');
    expect(['pear', 'apple', 'fig'].reduce<string | null>((s, v) => max(s, v), null)).toBe('pear');
    expect(min('2026-01-02T00:00:00Z', '2026-01-01T23:59:59Z')).toBe('2026-01-01T23:59:59Z');
  });

  it('compare bigints exactly, also against numbers, never rounding', () => {
    const big = 2n ** 63n - 1n;
    expect(max(big, big - 1n)).toBe(big);
    expect(min(9007199254740993n, 9007199254740992n)).toBe(9007199254740992n);
    // 2^53 + 1 as a bigint is above the number 2^53 (as a number it would round to equal).
    expect(max<number | bigint>(2 ** 53, 2n ** 53n + 1n)).toBe(2n ** 53n + 1n);
    expect(min<number | bigint>(2 ** 53, 2n ** 53n + 1n)).toBe(2 ** 53);
  });

  it('store a Date as its epoch ms and compare it with stored epoch ms', () => {
    const a = new Date('2026-01-02T00:00:00Z');
    const b = new Date('2026-01-01T00:00:00Z');
    const first = min(undefined, a);
    expect(first).toBe(a.getTime());
    expect(min(first, b)).toBe(b.getTime());
    expect(max(first, b)).toBe(a.getTime());
    expect(codeOf(() => min(1, new Date('nope')))).toBe('INVALID_ARGUMENT');
  });

  it('keep the first value seen on a tie', () => {
    const ci = { compare: (x: string, y: string) => x.toLowerCase().localeCompare(y.toLowerCase()) };
    expect(min('Ann', 'ann', ci)).toBe('Ann');
    expect(max('Ann', 'ann', ci)).toBe('Ann');
  });

  it('use compare when given, e.g. ISO strings with offsets', () => {
    const byTime = { compare: (x: string, y: string) => Date.parse(x) - Date.parse(y) };
    // As strings '2026-01-01T09:00+02:00' sorts after '2026-01-01T08:00Z'; in time it is earlier.
    expect(min('2026-01-01T08:00:00Z', '2026-01-01T09:00:00+02:00')).toBe('2026-01-01T08:00:00Z');
    expect(min('2026-01-01T08:00:00Z', '2026-01-01T09:00:00+02:00', byTime)).toBe('2026-01-01T09:00:00+02:00');
    expect(codeOf(() => min('a', 'b', { compare: () => Number.NaN }))).toBe('INVALID_ARGUMENT');
  });

  it('reject incomparable types instead of guessing an order', () => {
    expect(codeOf(() => min(3, 'a' as never))).toBe('INVALID_ARGUMENT');
    expect(codeOf(() => max('a', 1n as never))).toBe('INVALID_ARGUMENT');
    expect(codeOf(() => min(undefined, {} as never))).toBe('INVALID_ARGUMENT');
    expect(codeOf(() => max(undefined, true as never))).toBe('INVALID_ARGUMENT');
    expect(codeOf(() => min(1, Number.NaN))).toBe('INVALID_ARGUMENT');
    expect(codeOf(() => topK([{ s: 1 }], { s: 'x' }, { k: 2, score: (x: { s: unknown }) => x.s as string }))).toBe('INVALID_ARGUMENT');
  });

  it('topK ranks string, bigint and Date scores', () => {
    const byName = { k: 2, score: (x: string) => x, order: 'asc' as const };
    expect(['cy', 'ann', 'bob'].reduce<string[] | null>((l, x) => topK(l, x, byName), null)).toEqual(['ann', 'bob']);
    const byBig = { k: 2, score: (x: { n: string }) => BigInt(x.n) };
    const items = [{ n: '9007199254740993' }, { n: '9007199254740992' }, { n: '1' }];
    expect(items.reduce<{ n: string }[] | null>((l, x) => topK(l, x, byBig), null)).toEqual(items.slice(0, 2));
    const byDate = { k: 1, score: (x: { at: string }) => new Date(x.at) };
    const dates = [{ at: '2026-01-01T10:00:00+02:00' }, { at: '2026-01-01T09:00:00Z' }];
    expect(dates.reduce<{ at: string }[] | null>((l, x) => topK(l, x, byDate), null)).toEqual([dates[1]]);
  });
});

describe('countDistinct', () => {
  it('counts distinct values exactly, in first-seen order; 1 and "1" are distinct', () => {
    const values = ['ann', 'bob', 'ann', 1, '1', 1, true];
    const state = values.reduce<DistinctState<string | number | boolean> | null>((s, v) => countDistinct(s, v), null);
    expect(state).toEqual([...new Set(values)]);
    expect(countDistinctValue(state)).toBe(new Set(values).size);
    expect(countDistinctValue(undefined)).toBe(0);
  });

  it('throws DISTINCT_CAP_EXCEEDED for a new value past max, while repeats still pass', () => {
    const full = ['a', 'b'];
    expect(codeOf(() => countDistinct(full, 'c', { max: 2 }))).toBe('DISTINCT_CAP_EXCEEDED');
    expect(countDistinct(full, 'a', { max: 2 })).toEqual(['a', 'b']);
    let s: DistinctState<string> | null = null;
    for (let i = 0; i < DEFAULT_COUNT_DISTINCT_MAX; i++) s = countDistinct(s, `u${i}`);
    expect(codeOf(() => countDistinct(s, 'one-more'))).toBe('DISTINCT_CAP_EXCEEDED');
  });

  it("overflow: 'approximate' turns the exact list into a HyperLogLog sketch at max and keeps counting", () => {
    const opts = { max: 100, overflow: 'approximate' } as const;
    let s: DistinctState<string> | null = null;
    for (let i = 0; i < 100; i++) s = countDistinct(s, `user-${i}`, opts);
    expect(Array.isArray(s)).toBe(true);
    expect(countDistinctValue(s)).toBe(100);
    s = countDistinct(s, 'user-100', opts);
    expect(s).toEqual({ hll: expect.any(String) });
    expect(Buffer.from((s as { hll: string }).hll, 'base64')).toHaveLength(HLL_REGISTERS);
    const afterOverflow = countDistinctValue(s);
    expect(Math.abs(afterOverflow - 101)).toBeLessThanOrEqual(5);
    // Repeats do not move the sketch; 1 and '1' stay distinct in it as in the list.
    for (let i = 0; i < 100; i++) s = countDistinct(s, `user-${i}`, opts);
    expect(countDistinctValue(s)).toBe(afterOverflow);
    const truth = 20_000;
    for (let i = 101; i < truth; i++) s = countDistinct(s, `user-${i}`, opts);
    const estimate = countDistinctValue(s);
    // 3 standard errors (1.04 / sqrt(1024) = 3.25 %) either side; the hash is fixed, so this is deterministic.
    expect(Math.abs(estimate - truth) / truth).toBeLessThan(0.1);
    expect(codeOf(() => countDistinct(s, 'x', { overflow: 'guess' as never }))).toBe('INVALID_ARGUMENT');
    expect(codeOf(() => countDistinctValue({ hll: 'AAAA' }))).toBe('INVALID_ARGUMENT');
  });

  it('rejects values without an exact identity', () => {
    expect(codeOf(() => countDistinct([], { id: 1 } as never))).toBe('INVALID_ARGUMENT');
    expect(codeOf(() => countDistinct([], Number.NaN))).toBe('INVALID_ARGUMENT');
    expect(codeOf(() => countDistinct([], 'a', { max: 0 }))).toBe('INVALID_ARGUMENT');
  });
});

describe('histogram', () => {
  it('counts values into [lower, upper) buckets, with open ends', () => {
    const opts = { boundaries: [0, 10, 100] };
    const values = [-5, 0, 9.99, 10, 99, 100, 1e6];
    const h = values.reduce<number[] | null>((s, v) => histogram(s, v, opts), null);
    expect(h).toEqual([1, 2, 2, 2]);
  });

  it('rejects bad boundaries and a state of another shape', () => {
    expect(codeOf(() => histogram(undefined, 1, { boundaries: [] }))).toBe('INVALID_ARGUMENT');
    expect(codeOf(() => histogram(undefined, 1, { boundaries: [2, 1] }))).toBe('INVALID_ARGUMENT');
    expect(codeOf(() => histogram(undefined, 1, { boundaries: [1, 1] }))).toBe('INVALID_ARGUMENT');
    expect(codeOf(() => histogram([0, 0], 1, { boundaries: [1, 2] }))).toBe('INVALID_ARGUMENT');
    expect(codeOf(() => histogram(undefined, Infinity, { boundaries: [1] }))).toBe('INVALID_ARGUMENT');
  });
});

describe('stddev / varianceValue / stddevValue', () => {
  it('population and sample spread of a known set', () => {
    const values = [2, 4, 4, 4, 5, 5, 7, 9];
    const s = values.reduce<ReturnType<typeof stddev> | null>((st, v) => stddev(st, v), null);
    expect(s).toEqual({ count: 8, mean: 5, m2: 32 });
    expect(varianceValue(s)).toBe(4);
    expect(stddevValue(s)).toBe(2);
    expect(varianceValue(s, 'sample')).toBeCloseTo(32 / 7, 12);
    expect(stddevValue(s, 'sample')).toBeCloseTo(Math.sqrt(32 / 7), 12);
  });

  it('is null with no values, and sample with one', () => {
    expect(stddevValue(undefined)).toBeNull();
    expect(varianceValue(stddev(undefined, 3))).toBe(0);
    expect(varianceValue(stddev(undefined, 3), 'sample')).toBeNull();
    expect(codeOf(() => varianceValue(stddev(undefined, 3), 'both' as never))).toBe('INVALID_ARGUMENT');
  });

  it('stays accurate for large values with a small spread (where a sum of squares cancels)', () => {
    const base = 1e9;
    const values = [base + 4, base + 7, base + 13, base + 16];
    const s = values.reduce<ReturnType<typeof stddev> | null>((st, v) => stddev(st, v), null);
    // Spread of 4, 7, 13, 16: mean 10, squared deviations 36 + 9 + 9 + 36 = 90.
    expect(varianceValue(s, 'sample')).toBeCloseTo(90 / 3, 6);
    const naive = (values.reduce((a, v) => a + v * v, 0) - values.reduce((a, v) => a + v, 0) ** 2 / 4) / 3;
    expect(Math.abs(naive - 30)).toBeGreaterThan(1e-6); // the textbook formula loses it
  });
});
