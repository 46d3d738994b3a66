import { describe, expect, it } from 'vitest';
import { SdkError } from '../../sdk/internal/errors.ts';
import {
  avg,
  avgValue,
  collect,
  count,
  DEFAULT_COLLECT_MAX,
  latest,
  max,
  min,
  removeWhere,
  sum,
  topK,
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

describe('latest', () => {
  it('keeps the value with the greatest timestamp and ignores late older values', () => {
    let s = latest(undefined, 'gold', '2026-01-02T10:00:00Z');
    s = latest(s, 'silver', '2026-01-01T09:00:00Z');
    expect(s).toEqual({ value: 'gold', atMs: Date.parse('2026-01-02T10:00:00Z') });
    s = latest(s, 'platinum', new Date('2026-01-03T00:00:00Z'));
    expect(s.value).toBe('platinum');
  });

  it('breaks ties by event order: the later call wins', () => {
    const s = latest(latest(undefined, 'first', 1000), 'second', 1000);
    expect(s.value).toBe('second');
  });

  it('rejects unparseable timestamps', () => {
    expect(codeOf(() => latest(undefined, 1, 'yesterday'))).toBe('INVALID_ARGUMENT');
    expect(codeOf(() => latest(undefined, 1, new Date('nope')))).toBe('INVALID_ARGUMENT');
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

  it('dedupes by identity: the newer copy replaces the older and moves to the end', () => {
    const list = [
      { id: 1, n: 1 },
      { id: 2, n: 1 },
    ];
    expect(collect(list, { id: 1, n: 2 }, { dedupeBy: (x) => x.id })).toEqual([
      { id: 2, n: 1 },
      { id: 1, n: 2 },
    ]);
    expect(list).toHaveLength(2);
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
