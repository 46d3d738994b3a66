/**
 * Built-in reducers: small pure functions that fold one input into one piece of view state.
 *
 * They are meant to be composed inside a view's `reduce`, one call per field:
 *
 * ```ts
 * reduce: (s, e) => ({
 *   booked: count(s.booked, e.type === 'booked' ? 1 : -1),
 *   revenue: sum(s.revenue, e.price),
 *   lastBooking: latest(s.lastBooking, e, e.at),
 * })
 * ```
 *
 * Nothing is magic: each takes the previous value (or `undefined` for a fresh key) and returns
 * a new value; inputs are never mutated. State they produce is plain JSON-like data (numbers,
 * strings, arrays, objects, `null`), so it round-trips through DynamoDB unchanged. Bad input
 * (a non-finite number, a non-positive cap) throws an {@link SdkError} with code
 * `INVALID_ARGUMENT`; inside a reducer that makes the record poison, which the engine sends to
 * the dead-letter topic instead of storing a corrupt state.
 */
import { preview } from './define-fns.ts';
import { SdkError } from './errors.ts';

/**
 * Default cap of {@link collect}: lists live inside one DynamoDB item (view state is capped at
 * 100 KB by default), so an unbounded list would eventually turn a healthy key into poison.
 */
export const DEFAULT_COLLECT_MAX = 100;

function requireFinite(value: unknown, reducer: string, what = 'value'): number {
  if (typeof value !== 'number' || !Number.isFinite(value)) {
    throw new SdkError(
      'INVALID_ARGUMENT',
      `${reducer}(): ${what} must be a finite number, received ${preview(value)}; DynamoDB cannot store NaN or Infinity, so convert or filter the event first`,
      { context: { reducer } },
    );
  }
  return value;
}

function requirePreviousNumber(value: unknown, reducer: string): number | undefined {
  if (value === undefined || value === null) return undefined;
  return requireFinite(value, reducer, 'the previous state');
}

/**
 * Adds `delta` (default 1) to a counter; a fresh counter (`undefined`/`null`) starts at 0.
 * Pass a negative delta to count down, e.g. for cancellations.
 *
 * @example
 * count(undefined)      // 1
 * count(4, -1)          // 3
 * reduce: (s, e) => ({ booked: count(s.booked, e.type === 'booked' ? 1 : -1) })
 */
export function count(current: number | null | undefined, delta = 1): number {
  return (requirePreviousNumber(current, 'count') ?? 0) + requireFinite(delta, 'count', 'delta');
}

/**
 * Adds `value` to a running sum; a fresh sum starts at 0.
 *
 * @example
 * sum(undefined, 12.5)  // 12.5
 * sum(10, -3)           // 7
 * reduce: (s, e) => ({ revenue: sum(s.revenue, e.price) })
 */
export function sum(current: number | null | undefined, value: number): number {
  return (requirePreviousNumber(current, 'sum') ?? 0) + requireFinite(value, 'sum');
}

/**
 * The smaller of the current minimum and `value`; a fresh minimum is `value` itself.
 *
 * @example
 * min(undefined, 7)     // 7
 * min(3, 7)             // 3
 * reduce: (s, e) => ({ cheapest: min(s.cheapest, e.price) })
 */
export function min(current: number | null | undefined, value: number): number {
  const previous = requirePreviousNumber(current, 'min');
  const next = requireFinite(value, 'min');
  return previous === undefined ? next : Math.min(previous, next);
}

/**
 * The larger of the current maximum and `value`; a fresh maximum is `value` itself.
 *
 * @example
 * max(undefined, 7)     // 7
 * max(3, 7)             // 7
 * reduce: (s, e) => ({ peak: max(s.peak, e.load) })
 */
export function max(current: number | null | undefined, value: number): number {
  const previous = requirePreviousNumber(current, 'max');
  const next = requireFinite(value, 'max');
  return previous === undefined ? next : Math.max(previous, next);
}

/**
 * State of {@link avg}: a sum and a weight, so the mean can be updated (and values removed)
 * exactly, without storing the values. Read the mean with {@link avgValue}.
 */
export interface AvgState {
  readonly sum: number;
  readonly count: number;
}

/**
 * Folds `value` into a running average. `weight` defaults to 1; a weight of -1 removes a value
 * added before (e.g. a cancelled rating). Read the mean with {@link avgValue}.
 *
 * @example
 * let rating = avg(undefined, 4);   // { sum: 4, count: 1 }
 * rating = avg(rating, 5);          // { sum: 9, count: 2 }
 * avgValue(rating)                  // 4.5
 * reduce: (s, e) => ({ rating: avg(s.rating, e.stars) })
 */
export function avg(current: AvgState | null | undefined, value: number, weight = 1): AvgState {
  const previous = current ?? { sum: 0, count: 0 };
  requireFinite(previous.sum, 'avg', 'the previous state .sum');
  requireFinite(previous.count, 'avg', 'the previous state .count');
  const v = requireFinite(value, 'avg');
  const w = requireFinite(weight, 'avg', 'weight');
  return { sum: previous.sum + v * w, count: previous.count + w };
}

/**
 * The mean held by an {@link avg} state, or `null` when it holds no values.
 *
 * @example
 * avgValue({ sum: 9, count: 2 })  // 4.5
 * avgValue(undefined)             // null
 */
export function avgValue(state: AvgState | null | undefined): number | null {
  if (!state || state.count <= 0) return null;
  return state.sum / state.count;
}

/** State of {@link latest}: the value with the greatest timestamp, and that timestamp (epoch ms). */
export interface LatestState<T> {
  readonly value: T;
  readonly atMs: number;
}

/** A timestamp: epoch milliseconds, an ISO-8601 string or a `Date`. */
export type Timestamp = number | string | Date;

function toEpochMs(at: Timestamp, reducer: string): number {
  const ms = at instanceof Date ? at.getTime() : typeof at === 'string' ? Date.parse(at) : at;
  if (typeof ms !== 'number' || !Number.isFinite(ms)) {
    throw new SdkError(
      'INVALID_ARGUMENT',
      `${reducer}(): timestamp must be epoch milliseconds, an ISO-8601 string or a valid Date, received ${preview(at instanceof Date ? String(at) : at)}`,
      { context: { reducer } },
    );
  }
  return ms;
}

/**
 * Keeps the value with the latest timestamp. Late (out-of-order) values with an older timestamp
 * are ignored; on equal timestamps the later call wins, so ties follow event order.
 *
 * @example
 * let last = latest(undefined, 'gold', '2026-01-02T10:00:00Z');
 * last = latest(last, 'silver', '2026-01-01T09:00:00Z');  // older: still 'gold'
 * last.value                                               // 'gold'
 * reduce: (s, e) => ({ plan: latest(s.plan, e.plan, e.at) })
 */
export function latest<T>(current: LatestState<T> | null | undefined, value: T, at: Timestamp): LatestState<T> {
  const atMs = toEpochMs(at, 'latest');
  if (current && current.atMs > atMs) return current;
  return { value, atMs };
}

/** Options of {@link collect}. */
export interface CollectOptions<T> {
  /**
   * Most items kept; when full, the oldest are dropped.
   * @default 100 ({@link DEFAULT_COLLECT_MAX}: the list lives in one DynamoDB item)
   */
  readonly max?: number;
  /**
   * Identity of an item. When set, an item equal by identity to one already in the list
   * replaces it and moves to the end (the newest position) instead of being added twice.
   * @default no deduplication
   */
  readonly dedupeBy?: (item: T) => unknown;
}

function requireCap(value: unknown, reducer: string, what: string): number {
  if (!Number.isInteger(value) || (value as number) <= 0) {
    throw new SdkError(
      'INVALID_ARGUMENT',
      `${reducer}(): ${what} must be a positive integer, received ${preview(value)}`,
      { context: { reducer } },
    );
  }
  return value as number;
}

/**
 * Appends `item` to a list, oldest first, keeping at most `max` items (the oldest are dropped).
 * With `dedupeBy`, an item with the same identity as one in the list replaces it and moves to the end.
 *
 * @example
 * collect(['a', 'b'], 'c', { max: 2 })                      // ['b', 'c']
 * collect([{ id: 1, n: 1 }], { id: 1, n: 2 }, { dedupeBy: (x) => x.id })  // [{ id: 1, n: 2 }]
 * reduce: (s, e) => ({ recent: collect(s.recent, e.orderId, { max: 20 }) })
 */
export function collect<T>(current: readonly T[] | null | undefined, item: T, options: CollectOptions<T> = {}): T[] {
  const cap = requireCap(options.max ?? DEFAULT_COLLECT_MAX, 'collect', 'max');
  const dedupeBy = options.dedupeBy;
  let list = current ? [...current] : [];
  if (dedupeBy) {
    const id = dedupeBy(item);
    list = list.filter((existing) => !Object.is(dedupeBy(existing), id));
  }
  list.push(item);
  return list.length > cap ? list.slice(list.length - cap) : list;
}

/**
 * A copy of `list` without the items matching `predicate`; the companion of {@link collect}
 * and {@link topK} for removals (a cancellation, an unfollow).
 *
 * @example
 * removeWhere([{ id: 1 }, { id: 2 }], (x) => x.id === 1)  // [{ id: 2 }]
 * reduce: (s, e) => ({ attendees: removeWhere(s.attendees, (a) => a.memberId === e.memberId) })
 */
export function removeWhere<T>(list: readonly T[] | null | undefined, predicate: (item: T) => boolean): T[] {
  return list ? list.filter((item) => !predicate(item)) : [];
}

/** Options of {@link topK}. */
export interface TopKOptions<T> {
  /** How many items to keep. */
  readonly k: number;
  /** Score of an item; must be a finite number. */
  readonly score: (item: T) => number;
  /**
   * Identity of an item: an item with the same identity as one in the list replaces it
   * (its score may go up or down), so one entity never holds two places.
   * @default no identity: every item is a new entry
   */
  readonly id?: (item: T) => unknown;
  /**
   * `'desc'` keeps the k highest scores, `'asc'` the k lowest (e.g. the soonest dates).
   * @default 'desc'
   */
  readonly order?: 'desc' | 'asc';
}

/**
 * Keeps the `k` best items by score, best first. On equal scores the item that was in the list
 * first stays ahead. With `id`, a new item replaces the entry with the same identity.
 *
 * @example
 * const opts = { k: 2, score: (p: { id: string; pts: number }) => p.pts, id: (p: { id: string }) => p.id };
 * let top = topK(undefined, { id: 'ann', pts: 5 }, opts);
 * top = topK(top, { id: 'bob', pts: 9 }, opts);
 * top = topK(top, { id: 'ann', pts: 12 }, opts);   // [{ id: 'ann', pts: 12 }, { id: 'bob', pts: 9 }]
 * reduce: (s, e) => ({ leaders: topK(s.leaders, { id: e.player, pts: e.points }, opts) })
 */
export function topK<T>(current: readonly T[] | null | undefined, item: T, options: TopKOptions<T>): T[] {
  const k = requireCap(options.k, 'topK', 'k');
  const { score, id } = options;
  const sign = (options.order ?? 'desc') === 'desc' ? -1 : 1;
  const itemScore = requireFinite(score(item), 'topK', 'score(item)');
  let list = current ? [...current] : [];
  if (id) {
    const itemId = id(item);
    list = list.filter((existing) => !Object.is(id(existing), itemId));
  }
  // Insert after every entry that ranks at least as well: stable, earlier entries win ties.
  let index = list.length;
  for (let i = 0; i < list.length; i++) {
    const existing = list[i] as T;
    if (sign * (requireFinite(score(existing), 'topK', 'score(existing item)') - itemScore) > 0) {
      index = i;
      break;
    }
  }
  list.splice(index, 0, item);
  return list.length > k ? list.slice(0, k) : list;
}
