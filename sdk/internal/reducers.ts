/**
 * Built-in reducers: small pure functions that fold one input into one piece of view state.
 *
 * They are meant to be composed inside a view's `reduce`, one call per field:
 *
 * ```ts
 * reduce: (s, e) => ({
 *   booked: count(s.booked, e.type === 'booked' ? 1 : -1),
 *   revenue: sum(s.revenue, e.price),
 *   plan: latest(s.plan, e.plan),
 * })
 * ```
 *
 * Nothing is magic: each takes the previous value (or `undefined`/`null` for a fresh key) and
 * returns a new value; inputs are never mutated. State they produce is plain JSON-like data
 * (numbers, strings, arrays, objects, `null`), so it round-trips through DynamoDB unchanged.
 *
 * Nulls follow SQL aggregates: a `null`/`undefined` input is skipped, so it leaves the state as
 * it was and never costs the record its other fields; a fresh state that has seen only nulls is
 * `null` (the key still gets a row). `{ nulls: 'error' }` (aggregates) makes a null input throw
 * `NULL_VALUE`; `{ nulls: 'keep' }` (`latest`, `collect`) stores it. Bad input (a non-finite
 * number, a non-positive cap, values of types that do not compare) throws an {@link SdkError}
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

/**
 * Default cap of {@link countDistinct}: the distinct values are kept in the state to stay exact,
 * and 1000 short values fit well inside the default 100 KB state.
 */
export const DEFAULT_COUNT_DISTINCT_MAX = 1000;

// ---------------------------------------------------------------------------------------------
// Nulls

/** What an aggregate (`sum`, `min`, `max`, `avg`, `topK`, ...) does with a null/undefined input. */
export type AggregateNulls = 'skip' | 'error';
/** What a value-keeping reducer (`latest`, `collect`, ...) does with a null/undefined input. */
export type ValueNulls = 'skip' | 'keep';

/** Options shared by the aggregates. */
export interface AggregateOptions {
  /**
   * `'skip'`: a null/undefined input leaves the state as it was (a fresh state becomes `null`),
   * as SQL aggregates skip NULL. `'error'`: it throws `NULL_VALUE`, so the record is poison.
   * @default 'skip'
   */
  readonly nulls?: AggregateNulls;
}

function isNull(value: unknown): value is null | undefined {
  return value === null || value === undefined;
}

function nullsPolicy<P extends string>(nulls: unknown, allowed: readonly P[], reducer: string): P {
  const policy = (nulls ?? 'skip') as P;
  if (!allowed.includes(policy)) {
    throw new SdkError(
      'INVALID_ARGUMENT',
      `${reducer}(): option nulls must be ${allowed.map((a) => `'${a}'`).join(' or ')}, received ${preview(nulls)}`,
      { context: { reducer } },
    );
  }
  return policy;
}

/** Applies an aggregate's null policy: the state to return for a null input (or a throw). */
function skipNull<S>(current: S | null | undefined, options: AggregateOptions | undefined, reducer: string, what = 'value'): S | null {
  if (nullsPolicy(options?.nulls, ['skip', 'error'] as const, reducer) === 'error') {
    throw new SdkError(
      'NULL_VALUE',
      `${reducer}(): ${what} is null or undefined and the reducer was given { nulls: 'error' }; send a value, filter such events out, or drop the option to skip nulls`,
      { context: { reducer } },
    );
  }
  return current ?? null;
}

// ---------------------------------------------------------------------------------------------
// Numbers

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
 * Pass a negative delta to count down, e.g. for cancellations. Called once per event it is
 * SQL's `COUNT(*)`; to count non-null values (`COUNT(col)`), pass `e.col == null ? 0 : 1`.
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
 * Adds `value` to a running sum; a fresh sum starts at 0. A null/undefined value is skipped
 * (a key that has seen only nulls sums to `null`, as SQL's `SUM`), or throws `NULL_VALUE` with
 * `{ nulls: 'error' }`.
 *
 * @example
 * sum(undefined, 12.5)  // 12.5
 * sum(10, -3)           // 7
 * sum(10, null)         // 10
 * sum(undefined, null)  // null
 * reduce: (s, e) => ({ revenue: sum(s.revenue, e.price) })
 */
export function sum(current: number, value: number | null | undefined, options?: AggregateOptions): number;
export function sum(current: number | null | undefined, value: number, options?: AggregateOptions): number;
export function sum(current: number | null | undefined, value: number | null | undefined, options?: AggregateOptions): number | null;
export function sum(current: number | null | undefined, value: number | null | undefined, options?: AggregateOptions): number | null {
  const previous = requirePreviousNumber(current, 'sum');
  if (isNull(value)) return skipNull(previous, options, 'sum');
  return (previous ?? 0) + requireFinite(value, 'sum');
}

// ---------------------------------------------------------------------------------------------
// Ordered values

/**
 * A value `min`, `max` and `topK` order without a `compare`: numbers and bigints (compared
 * exactly with each other, never rounded), or strings (by UTF-16 code unit, as `<` does).
 */
export type Ordered = number | bigint | string;
/** What `min`, `max` and a `topK` score accept: an {@link Ordered} value, or a `Date` (stored as its epoch ms). */
export type OrderedInput = Ordered | Date;

/** Options of {@link min} and {@link max}. */
export interface OrderOptions<T> extends AggregateOptions {
  /**
   * Orders two values: negative when `a` sorts before `b`, 0 when equal, positive after (the
   * contract of `Array.prototype.sort`). It receives the stored form of the previous state, so
   * compare what is stored (e.g. ISO strings with offsets: `(a, b) => Date.parse(a) - Date.parse(b)`).
   * @default numbers and bigints numerically, strings by code unit; other types or a mix of a
   * string with a number throw `INVALID_ARGUMENT`
   */
  readonly compare?: (a: T, b: T) => number;
}

function typeName(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'array';
  return typeof value;
}

/**
 * The stored form of an ordered input: a `Date` becomes its epoch milliseconds (view state is
 * JSON, which has no Date, and what is stored is what the next event is compared with).
 */
function toOrdered(value: unknown, reducer: string, what: string, custom: boolean): unknown {
  if (value instanceof Date) {
    const ms = value.getTime();
    if (!Number.isFinite(ms)) {
      throw new SdkError('INVALID_ARGUMENT', `${reducer}(): ${what} is an invalid Date; pass a valid Date, epoch milliseconds or a string`, {
        context: { reducer },
      });
    }
    return ms;
  }
  if (custom) return value;
  if (typeof value === 'number') return requireFinite(value, reducer, what);
  if (typeof value === 'bigint' || typeof value === 'string') return value;
  throw new SdkError(
    'INVALID_ARGUMENT',
    `${reducer}(): ${what} must be a number, bigint, string or Date, received ${typeName(value)} ${preview(value)}; convert it, or pass a compare option`,
    { context: { reducer } },
  );
}

function isNumeric(value: unknown): value is number | bigint {
  return typeof value === 'number' || typeof value === 'bigint';
}

/** Compares two stored ordered values with `compare`, or by their natural order. */
function compareValues(a: unknown, b: unknown, reducer: string, compare: ((a: any, b: any) => number) | undefined): number {
  if (compare) {
    const result = compare(a, b);
    if (typeof result !== 'number' || Number.isNaN(result)) {
      throw new SdkError('INVALID_ARGUMENT', `${reducer}(): compare must return a number, returned ${preview(result)} for ${preview(a)} and ${preview(b)}`, {
        context: { reducer },
      });
    }
    return result;
  }
  const comparable = (isNumeric(a) && isNumeric(b)) || (typeof a === 'string' && typeof b === 'string');
  if (!comparable) {
    throw new SdkError(
      'INVALID_ARGUMENT',
      `${reducer}(): cannot compare ${typeName(a)} ${preview(a)} with ${typeName(b)} ${preview(b)}; keep one type per field (numbers and bigints mix, strings do not), or pass a compare option`,
      { context: { reducer } },
    );
  }
  // `<` between a number and a bigint is exact in JavaScript: nothing is rounded.
  return (a as Ordered) < (b as Ordered) ? -1 : (a as Ordered) > (b as Ordered) ? 1 : 0;
}

function extreme<T>(
  reducer: 'min' | 'max',
  current: T | null | undefined,
  value: unknown,
  options: OrderOptions<T> | undefined,
): T | null {
  const custom = options?.compare !== undefined;
  const previous = isNull(current) ? undefined : toOrdered(current, reducer, 'the previous state', custom);
  if (isNull(value)) return skipNull(previous as T | undefined, options, reducer);
  const next = toOrdered(value, reducer, 'value', custom);
  if (previous === undefined) return next as T;
  const order = compareValues(next, previous, reducer, options?.compare);
  // On a tie the value already held stays: the first one seen wins.
  return (reducer === 'min' ? order < 0 : order > 0) ? (next as T) : (previous as T);
}

/**
 * The smaller of the current minimum and `value`; a fresh minimum is `value` itself. Works on
 * numbers, bigints (exact, also against numbers), strings (by code unit: ISO-8601 UTC strings of
 * one format sort by time) and Dates, which are stored as epoch milliseconds. A null/undefined
 * value is skipped (see {@link AggregateOptions}); on a tie the value seen first is kept.
 *
 * @example
 * min(undefined, 7)                                  // 7
 * min(3, 7)                                          // 3
 * min('2026-01-02', '2026-01-01')                    // '2026-01-01'
 * min(undefined, new Date('2026-01-01T00:00:00Z'))   // 1767225600000
 * min(9007199254740993n, 9007199254740992n)          // 9007199254740992n
 * reduce: (s, e) => ({ cheapest: min(s.cheapest, e.price) })
 */
export function min<T extends Ordered>(current: T, value: T | Date | null | undefined, options?: OrderOptions<T>): T;
export function min<T extends Ordered>(current: T | null | undefined, value: T | Date, options?: OrderOptions<T>): T;
export function min<T extends Ordered>(current: T | null | undefined, value: T | Date | null | undefined, options?: OrderOptions<T>): T | null;
export function min<T extends Ordered>(current: T | null | undefined, value: T | Date | null | undefined, options?: OrderOptions<T>): T | null {
  return extreme('min', current, value, options);
}

/**
 * The larger of the current maximum and `value`; a fresh maximum is `value` itself. Same types,
 * null handling and tie rule as {@link min}.
 *
 * @example
 * max(undefined, 7)     // 7
 * max(3, 7)             // 7
 * max('apple', 'pear')  // 'pear'
 * reduce: (s, e) => ({ peak: max(s.peak, e.load) })
 */
export function max<T extends Ordered>(current: T, value: T | Date | null | undefined, options?: OrderOptions<T>): T;
export function max<T extends Ordered>(current: T | null | undefined, value: T | Date, options?: OrderOptions<T>): T;
export function max<T extends Ordered>(current: T | null | undefined, value: T | Date | null | undefined, options?: OrderOptions<T>): T | null;
export function max<T extends Ordered>(current: T | null | undefined, value: T | Date | null | undefined, options?: OrderOptions<T>): T | null {
  return extreme('max', current, value, options);
}

// ---------------------------------------------------------------------------------------------
// Averages and spread

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
 * added before (e.g. a cancelled rating). A null/undefined value is skipped (a key that has seen
 * only nulls holds `null`, whose {@link avgValue} is `null`). Read the mean with {@link avgValue}.
 *
 * @example
 * let rating = avg(undefined, 4);   // { sum: 4, count: 1 }
 * rating = avg(rating, 5);          // { sum: 9, count: 2 }
 * avgValue(rating)                  // 4.5
 * reduce: (s, e) => ({ rating: avg(s.rating, e.stars) })
 */
export function avg(current: AvgState, value: number | null | undefined, weight?: number, options?: AggregateOptions): AvgState;
export function avg(current: AvgState | null | undefined, value: number, weight?: number, options?: AggregateOptions): AvgState;
export function avg(current: AvgState | null | undefined, value: number | null | undefined, weight?: number, options?: AggregateOptions): AvgState | null;
export function avg(current: AvgState | null | undefined, value: number | null | undefined, weight = 1, options?: AggregateOptions): AvgState | null {
  if (current) {
    requireFinite(current.sum, 'avg', 'the previous state .sum');
    requireFinite(current.count, 'avg', 'the previous state .count');
  }
  if (isNull(value)) return skipNull(current, options, 'avg');
  const previous = current ?? { sum: 0, count: 0 };
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

/**
 * State of {@link stddev}: Welford's running count, mean and sum of squared deviations `m2`,
 * which stays accurate where a sum of squares would cancel catastrophically (large values with
 * a small spread). Read it with {@link stddevValue} or {@link varianceValue}.
 */
export interface StddevState {
  readonly count: number;
  readonly mean: number;
  readonly m2: number;
}

/**
 * Folds `value` into a running spread (Welford's online algorithm), for a standard deviation or
 * variance read with {@link stddevValue} / {@link varianceValue}, population or sample. A
 * null/undefined value is skipped (see {@link AggregateOptions}).
 *
 * @example
 * let s = stddev(undefined, 2);
 * for (const v of [4, 4, 4, 5, 5, 7, 9]) s = stddev(s, v);
 * stddevValue(s)             // 2 (population)
 * stddevValue(s, 'sample')   // 2.138...
 * reduce: (st, e) => ({ latency: stddev(st.latency, e.ms) })
 */
export function stddev(current: StddevState, value: number | null | undefined, options?: AggregateOptions): StddevState;
export function stddev(current: StddevState | null | undefined, value: number, options?: AggregateOptions): StddevState;
export function stddev(current: StddevState | null | undefined, value: number | null | undefined, options?: AggregateOptions): StddevState | null;
export function stddev(current: StddevState | null | undefined, value: number | null | undefined, options?: AggregateOptions): StddevState | null {
  if (current) {
    requireFinite(current.count, 'stddev', 'the previous state .count');
    requireFinite(current.mean, 'stddev', 'the previous state .mean');
    requireFinite(current.m2, 'stddev', 'the previous state .m2');
  }
  if (isNull(value)) return skipNull(current, options, 'stddev');
  const x = requireFinite(value, 'stddev');
  const n = (current?.count ?? 0) + 1;
  const mean0 = current?.mean ?? 0;
  const delta = x - mean0;
  const mean = mean0 + delta / n;
  return { count: n, mean, m2: (current?.m2 ?? 0) + delta * (x - mean) };
}

/** Which variance: over the values themselves (`'population'`, divides by n) or a sample of a larger set (`'sample'`, by n - 1). */
export type SpreadKind = 'population' | 'sample';

/**
 * The variance held by a {@link stddev} state, or `null` with no values (or one value, for
 * `'sample'`).
 *
 * @example
 * varianceValue({ count: 8, mean: 5, m2: 32 })            // 4
 * varianceValue({ count: 8, mean: 5, m2: 32 }, 'sample')  // 4.571...
 */
export function varianceValue(state: StddevState | null | undefined, kind: SpreadKind = 'population'): number | null {
  if (kind !== 'population' && kind !== 'sample') {
    throw new SdkError('INVALID_ARGUMENT', `varianceValue(): kind must be 'population' or 'sample', received ${preview(kind)}`);
  }
  if (!state) return null;
  const divisor = kind === 'sample' ? state.count - 1 : state.count;
  if (divisor <= 0) return null;
  // m2 can come out a hair below 0 through rounding when every value is equal.
  return Math.max(0, state.m2) / divisor;
}

/**
 * The standard deviation held by a {@link stddev} state (the square root of {@link varianceValue}).
 *
 * @example
 * stddevValue({ count: 8, mean: 5, m2: 32 })  // 2
 */
export function stddevValue(state: StddevState | null | undefined, kind: SpreadKind = 'population'): number | null {
  const variance = varianceValue(state, kind);
  return variance === null ? null : Math.sqrt(variance);
}

// ---------------------------------------------------------------------------------------------
// First and last values

/** Options of {@link latest} and {@link latestByTime}. */
export interface LatestOptions {
  /**
   * `'skip'`: a null/undefined value leaves the state as it was (the last non-null value wins).
   * `'keep'`: it replaces the state (stored as `null`), like ksqlDB's `ignoreNulls = false`.
   * @default 'skip'
   */
  readonly nulls?: ValueNulls;
}

/**
 * The value of the last applied event: last by offset within a partition, as ksqlDB's
 * `LATEST_BY_OFFSET`. Nulls are skipped unless `{ nulls: 'keep' }`. The engine applies one
 * partition's events in offset order, so for a view keyed like its topic this is the newest
 * event; for an item fed from several partitions it is the last one applied, and partitions are
 * not ordered with each other: use {@link latestByTime} for "newest by event time".
 *
 * @example
 * latest('gold', 'silver')            // 'silver'
 * latest('gold', null)                // 'gold'
 * latest('gold', null, { nulls: 'keep' })  // null
 * reduce: (s, e) => ({ plan: latest(s.plan, e.plan) })
 */
export function latest<T>(current: T | null | undefined, value: T | null | undefined, options?: LatestOptions): T | null {
  if (options !== undefined && (options === null || typeof options !== 'object' || options instanceof Date)) {
    // latest() used to take a timestamp third; keep that call from silently changing meaning.
    throw new SdkError(
      'INVALID_ARGUMENT',
      `latest(): the third argument must be an options object, received ${preview(options instanceof Date ? String(options) : options)}; latest() is last by offset, use latestByTime(current, value, at) to keep the value with the newest timestamp`,
      { context: { reducer: 'latest' } },
    );
  }
  const policy = nullsPolicy(options?.nulls, ['skip', 'keep'] as const, 'latest');
  if (isNull(value)) return policy === 'keep' ? null : (current ?? null);
  return value;
}

/**
 * The value of the first applied event that carried one (first by offset within a partition, as
 * ksqlDB's `EARLIEST_BY_OFFSET`): once set it never changes. Null values are always skipped,
 * because a stored `null` is also how a fresh field reads.
 *
 * @example
 * earliest(undefined, 'gold')  // 'gold'
 * earliest('gold', 'silver')   // 'gold'
 * reduce: (s, e) => ({ firstPlan: earliest(s.firstPlan, e.plan) })
 */
export function earliest<T>(current: T | null | undefined, value: T | null | undefined): T | null {
  if (!isNull(current)) return current;
  return isNull(value) ? null : value;
}

/** State of {@link latestByTime} and {@link earliestByTime}: the value and its timestamp (epoch ms). */
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

function byTime<T>(
  reducer: 'latestByTime' | 'earliestByTime',
  current: LatestState<T> | null | undefined,
  value: T | null | undefined,
  at: Timestamp | null | undefined,
  options: LatestOptions | undefined,
): LatestState<T> | null {
  const policy = nullsPolicy(options?.nulls, ['skip', 'keep'] as const, reducer);
  // An event without a time cannot be placed in time: it is skipped, like a null value.
  if (isNull(at) || (isNull(value) && policy === 'skip')) return current ?? null;
  const atMs = toEpochMs(at, reducer);
  if (current) {
    const previousMs = toEpochMs(current.atMs, reducer);
    // Ties go to arrival order: the later event for latest, the earlier one for earliest.
    if (reducer === 'latestByTime' ? previousMs > atMs : previousMs <= atMs) return current;
  }
  return { value: (value ?? null) as T, atMs };
}

/**
 * Keeps the value with the newest timestamp, whatever order events arrive in (an older, late
 * event is ignored); on equal timestamps the later-applied event wins. Timestamps are stored as
 * epoch ms. A null/undefined value, or a missing `at`, is skipped; `{ nulls: 'keep' }` stores a
 * null value.
 *
 * @example
 * let last = latestByTime(undefined, 'gold', '2026-01-02T10:00:00Z');
 * last = latestByTime(last, 'silver', '2026-01-01T09:00:00Z');  // older: still 'gold'
 * last.value                                                     // 'gold'
 * reduce: (s, e) => ({ plan: latestByTime(s.plan, e.plan, e.at) })
 */
export function latestByTime<T>(current: LatestState<T>, value: T | null | undefined, at: Timestamp | null | undefined, options?: LatestOptions): LatestState<T>;
export function latestByTime<T>(current: LatestState<T> | null | undefined, value: T, at: Timestamp, options?: LatestOptions): LatestState<T>;
export function latestByTime<T>(current: LatestState<T> | null | undefined, value: T | null | undefined, at: Timestamp | null | undefined, options?: LatestOptions): LatestState<T> | null;
export function latestByTime<T>(current: LatestState<T> | null | undefined, value: T | null | undefined, at: Timestamp | null | undefined, options?: LatestOptions): LatestState<T> | null {
  return byTime('latestByTime', current, value, at, options);
}

/**
 * Keeps the value with the oldest timestamp; on equal timestamps the first-applied event wins.
 * Same storage and null handling as {@link latestByTime}.
 *
 * @example
 * let first = earliestByTime(undefined, 'gold', '2026-01-02T10:00:00Z');
 * first = earliestByTime(first, 'silver', '2026-01-01T09:00:00Z');  // older: 'silver'
 * reduce: (s, e) => ({ signup: earliestByTime(s.signup, e.plan, e.at) })
 */
export function earliestByTime<T>(current: LatestState<T>, value: T | null | undefined, at: Timestamp | null | undefined, options?: LatestOptions): LatestState<T>;
export function earliestByTime<T>(current: LatestState<T> | null | undefined, value: T, at: Timestamp, options?: LatestOptions): LatestState<T>;
export function earliestByTime<T>(current: LatestState<T> | null | undefined, value: T | null | undefined, at: Timestamp | null | undefined, options?: LatestOptions): LatestState<T> | null;
export function earliestByTime<T>(current: LatestState<T> | null | undefined, value: T | null | undefined, at: Timestamp | null | undefined, options?: LatestOptions): LatestState<T> | null {
  return byTime('earliestByTime', current, value, at, options);
}

// ---------------------------------------------------------------------------------------------
// Lists

/** Options of {@link collect}. */
export interface CollectOptions<T> {
  /**
   * Most items kept; what happens past it is `keep`.
   * @default 100 ({@link DEFAULT_COLLECT_MAX}: the list lives in one DynamoDB item)
   */
  readonly max?: number;
  /**
   * Which items a full list keeps: `'last'` the newest `max` (the oldest is dropped, a "recent"
   * list), `'first'` the first `max` (later items are ignored, e.g. the first 10 to sign up).
   * @default 'last'
   */
  readonly keep?: 'first' | 'last';
  /**
   * Identity of an item (compared with `Object.is`, so return a string or number). When set the
   * list is a set in first-insertion order: an item whose identity is already in the list keeps
   * that item's position, and its value is replaced by the new item (the newest copy wins).
   * @default no deduplication
   */
  readonly dedupeBy?: (item: T) => unknown;
  /**
   * `'skip'`: a null/undefined item is not added. `'keep'`: it is added as `null`.
   * @default 'skip'
   */
  readonly nulls?: ValueNulls;
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
 * Appends `item` to a list, oldest first, keeping at most `max` items (by default the newest;
 * `keep: 'first'` keeps the first ones). With `dedupeBy` the list is a set: a repeated item keeps
 * its first position and takes the new value. A null/undefined item is skipped unless
 * `{ nulls: 'keep' }`; a fresh list that has seen only nulls is `null`.
 *
 * @example
 * collect(['a', 'b'], 'c', { max: 2 })                                 // ['b', 'c']
 * collect(['a', 'b'], 'c', { max: 2, keep: 'first' })                  // ['a', 'b']
 * collect([{ id: 1, n: 1 }, { id: 2, n: 1 }], { id: 1, n: 2 }, { dedupeBy: (x) => x.id })
 * // [{ id: 1, n: 2 }, { id: 2, n: 1 }]
 * reduce: (s, e) => ({ recent: collect(s.recent, e.orderId, { max: 20 }) })
 */
export function collect<T>(current: readonly T[], item: T | null | undefined, options?: CollectOptions<T>): T[];
export function collect<T>(current: readonly T[] | null | undefined, item: T, options?: CollectOptions<T>): T[];
export function collect<T>(current: readonly T[] | null | undefined, item: T | null | undefined, options?: CollectOptions<T>): T[] | null;
export function collect<T>(current: readonly T[] | null | undefined, item: T | null | undefined, options: CollectOptions<T> = {}): T[] | null {
  const cap = requireCap(options.max ?? DEFAULT_COLLECT_MAX, 'collect', 'max');
  const keep = options.keep ?? 'last';
  if (keep !== 'first' && keep !== 'last') {
    throw new SdkError('INVALID_ARGUMENT', `collect(): option keep must be 'first' or 'last', received ${preview(keep)}`, {
      context: { reducer: 'collect' },
    });
  }
  const policy = nullsPolicy(options.nulls, ['skip', 'keep'] as const, 'collect');
  if (isNull(item) && policy === 'skip') return current ? [...current] : null;
  const value = (item ?? null) as T;
  const list = current ? [...current] : [];
  const { dedupeBy } = options;
  if (dedupeBy) {
    const id = dedupeBy(value);
    const index = list.findIndex((existing) => Object.is(dedupeBy(existing), id));
    if (index >= 0) list[index] = value;
    else list.push(value);
  } else {
    list.push(value);
  }
  // A list can also be over the cap because `max` was lowered since it was stored.
  if (list.length <= cap) return list;
  return keep === 'first' ? list.slice(0, cap) : list.slice(list.length - cap);
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
export interface TopKOptions<T> extends AggregateOptions {
  /** How many items to keep. */
  readonly k: number;
  /**
   * Score of an item: a finite number, a bigint, a string or a Date (compared as epoch ms). An
   * item whose score is null/undefined is a null input (see `nulls`).
   */
  readonly score: (item: T) => OrderedInput | null | undefined;
  /**
   * Orders two scores (negative when `a` is lower), for scores without a natural order.
   * @default numbers and bigints numerically, strings by code unit, Dates by epoch ms
   */
  readonly compare?: (a: any, b: any) => number;
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
 * first stays ahead. With `id`, a new item replaces the entry with the same identity. A
 * null/undefined item or score is skipped (a fresh list that has seen only nulls is `null`).
 *
 * @example
 * const opts = { k: 2, score: (p: { id: string; pts: number }) => p.pts, id: (p: { id: string }) => p.id };
 * let top = topK(undefined, { id: 'ann', pts: 5 }, opts);
 * top = topK(top, { id: 'bob', pts: 9 }, opts);
 * top = topK(top, { id: 'ann', pts: 12 }, opts);   // [{ id: 'ann', pts: 12 }, { id: 'bob', pts: 9 }]
 * reduce: (s, e) => ({ leaders: topK(s.leaders, { id: e.player, pts: e.points }, opts) })
 */
export function topK<T>(current: readonly T[], item: T | null | undefined, options: TopKOptions<T>): T[];
export function topK<T>(current: readonly T[] | null | undefined, item: T, options: TopKOptions<T>): T[];
export function topK<T>(current: readonly T[] | null | undefined, item: T | null | undefined, options: TopKOptions<T>): T[] | null;
export function topK<T>(current: readonly T[] | null | undefined, item: T | null | undefined, options: TopKOptions<T>): T[] | null {
  const k = requireCap(options.k, 'topK', 'k');
  const { score, id, compare } = options;
  const custom = compare !== undefined;
  const sign = (options.order ?? 'desc') === 'desc' ? -1 : 1;
  const itemScore = isNull(item) ? undefined : score(item);
  if (isNull(item) || isNull(itemScore)) {
    const kept = skipNull(current, options, 'topK', isNull(item) ? 'item' : 'score(item)');
    return kept ? [...kept] : null;
  }
  const ordered = toOrdered(itemScore, 'topK', 'score(item)', custom);
  let list = current ? [...current] : [];
  if (id) {
    const itemId = id(item);
    list = list.filter((existing) => !Object.is(id(existing), itemId));
  }
  // Insert after every entry that ranks at least as well: stable, earlier entries win ties.
  let index = list.length;
  for (let i = 0; i < list.length; i++) {
    const existing = toOrdered(score(list[i] as T), 'topK', 'score(existing item)', custom);
    if (sign * compareValues(existing, ordered, 'topK', compare) > 0) {
      index = i;
      break;
    }
  }
  list.splice(index, 0, item);
  return list.length > k ? list.slice(0, k) : list;
}

// ---------------------------------------------------------------------------------------------
// Distinct counts and histograms

/** A value {@link countDistinct} can tell apart exactly: compared with `Object.is`. */
export type DistinctValue = string | number | bigint | boolean;

/**
 * The approximate form of a {@link countDistinct} state: a HyperLogLog sketch of
 * {@link HLL_REGISTERS} one-byte registers, base64 (about 1.4 KB whatever the count).
 */
export interface ApproxDistinctState {
  readonly hll: string;
}

/** State of {@link countDistinct}: the distinct values themselves (exact), or a sketch past `max` with `overflow: 'approximate'`. */
export type DistinctState<V extends DistinctValue = DistinctValue> = V[] | ApproxDistinctState;

/**
 * Registers of the approximate {@link countDistinct} sketch (2^10): a standard error of about
 * 1.04 / sqrt(1024) = 3.3 %, in 1 KB of registers that fit any view state.
 */
export const HLL_REGISTERS = 1024;
const HLL_INDEX_BITS = 10;

/** Options of {@link countDistinct}. */
export interface CountDistinctOptions extends AggregateOptions {
  /**
   * Most distinct values kept. The count is exact up to it; what a new distinct value past it
   * does is `overflow`. Repeats of values already counted are always fine.
   * @default 1000 ({@link DEFAULT_COUNT_DISTINCT_MAX}: the values live in one DynamoDB item)
   */
  readonly max?: number;
  /**
   * Past `max`: `'error'` throws `DISTINCT_CAP_EXCEEDED` (the record is poison, the count stays
   * exact); `'approximate'` turns the state into a HyperLogLog sketch ({@link ApproxDistinctState},
   * 3.3 % standard error: estimates off by up to ~7 % happen) and keeps counting, approximately.
   * @default 'error': an approximation is never introduced silently
   */
  readonly overflow?: 'error' | 'approximate';
}

/** The identity hashed for the sketch: typed, so 1 and '1' stay distinct as in the exact set. */
function identityOf(value: DistinctValue): string {
  return `${typeof value}:${String(value)}`;
}

/** MurmurHash3 (x86, 32-bit) of the UTF-8 bytes of `text`: well mixed, cheap, stable across runtimes. */
function murmur3(text: string): number {
  const bytes = Buffer.from(text, 'utf8');
  let h = 0;
  const blocks = bytes.length & ~3;
  for (let i = 0; i < blocks; i += 4) {
    let k = bytes[i]! | (bytes[i + 1]! << 8) | (bytes[i + 2]! << 16) | (bytes[i + 3]! << 24);
    k = Math.imul(k, 0xcc9e2d51);
    k = (k << 15) | (k >>> 17);
    k = Math.imul(k, 0x1b873593);
    h ^= k;
    h = (h << 13) | (h >>> 19);
    h = (Math.imul(h, 5) + 0xe6546b64) | 0;
  }
  const tail = bytes.length & 3;
  if (tail > 0) {
    let k = 0;
    if (tail === 3) k ^= bytes[blocks + 2]! << 16;
    if (tail >= 2) k ^= bytes[blocks + 1]! << 8;
    k ^= bytes[blocks]!;
    k = Math.imul(k, 0xcc9e2d51);
    k = (k << 15) | (k >>> 17);
    k = Math.imul(k, 0x1b873593);
    h ^= k;
  }
  h ^= bytes.length;
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

function addToSketch(registers: Uint8Array, value: DistinctValue): void {
  const hash = murmur3(identityOf(value));
  const index = hash >>> (32 - HLL_INDEX_BITS);
  const rest = (hash << HLL_INDEX_BITS) >>> 0;
  const rank = rest === 0 ? 32 - HLL_INDEX_BITS + 1 : Math.clz32(rest) + 1;
  if (rank > registers[index]!) registers[index] = rank;
}

function readSketch(state: ApproxDistinctState): Uint8Array {
  const registers = typeof state.hll === 'string' ? new Uint8Array(Buffer.from(state.hll, 'base64')) : undefined;
  if (registers === undefined || registers.length !== HLL_REGISTERS) {
    throw new SdkError(
      'INVALID_ARGUMENT',
      `countDistinct(): the previous state is not a sketch of ${HLL_REGISTERS} registers, received ${preview(state)}; keep the state countDistinct() returned`,
      { context: { reducer: 'countDistinct' } },
    );
  }
  return registers;
}

function isSketch(state: unknown): state is ApproxDistinctState {
  return state !== null && typeof state === 'object' && !Array.isArray(state);
}

/**
 * Adds `value` to the set of distinct values seen (first-seen order); read the count with
 * {@link countDistinctValue}. Exact while at most `max` values are distinct (the values are
 * stored); past it, an error or an approximate sketch (see {@link CountDistinctOptions.overflow}).
 * A null/undefined value is skipped, as SQL's `COUNT(DISTINCT col)`.
 *
 * @example
 * let users = countDistinct(undefined, 'ann');
 * users = countDistinct(users, 'bob');
 * users = countDistinct(users, 'ann');
 * countDistinctValue(users)   // 2
 * reduce: (s, e) => ({ visitors: countDistinct(s.visitors, e.userId, { max: 500, overflow: 'approximate' }) })
 */
export function countDistinct<V extends DistinctValue>(current: DistinctState<V>, value: V | null | undefined, options?: CountDistinctOptions): DistinctState<V>;
export function countDistinct<V extends DistinctValue>(current: DistinctState<V> | null | undefined, value: V, options?: CountDistinctOptions): DistinctState<V>;
export function countDistinct<V extends DistinctValue>(current: DistinctState<V> | null | undefined, value: V | null | undefined, options?: CountDistinctOptions): DistinctState<V> | null;
export function countDistinct<V extends DistinctValue>(current: DistinctState<V> | null | undefined, value: V | null | undefined, options: CountDistinctOptions = {}): DistinctState<V> | null {
  const cap = requireCap(options.max ?? DEFAULT_COUNT_DISTINCT_MAX, 'countDistinct', 'max');
  const overflow = options.overflow ?? 'error';
  if (overflow !== 'error' && overflow !== 'approximate') {
    throw new SdkError('INVALID_ARGUMENT', `countDistinct(): option overflow must be 'error' or 'approximate', received ${preview(overflow)}`, {
      context: { reducer: 'countDistinct' },
    });
  }
  if (isNull(value)) {
    const kept = skipNull(current, options, 'countDistinct');
    return kept === null ? null : isSketch(kept) ? kept : [...kept];
  }
  const type = typeof value;
  if (type !== 'string' && type !== 'number' && type !== 'bigint' && type !== 'boolean') {
    throw new SdkError(
      'INVALID_ARGUMENT',
      `countDistinct(): value must be a string, number, bigint or boolean, received ${typeName(value)} ${preview(value)}; pass an identity such as e.user.id`,
      { context: { reducer: 'countDistinct' } },
    );
  }
  if (type === 'number') requireFinite(value, 'countDistinct');
  if (isSketch(current)) {
    const registers = readSketch(current);
    addToSketch(registers, value);
    return { hll: Buffer.from(registers).toString('base64') };
  }
  const list = current ? [...current] : [];
  if (list.some((seen) => Object.is(seen, value))) return list;
  if (list.length < cap) {
    list.push(value);
    return list;
  }
  if (overflow === 'approximate') {
    const registers = new Uint8Array(HLL_REGISTERS);
    for (const seen of list) addToSketch(registers, seen);
    addToSketch(registers, value);
    return { hll: Buffer.from(registers).toString('base64') };
  }
  throw new SdkError(
    'DISTINCT_CAP_EXCEEDED',
    `countDistinct(): ${preview(value)} would be distinct value ${cap + 1}, over max ${cap}; raise max (each value is stored in the state), count a coarser identity, or pass overflow: 'approximate'`,
    { context: { reducer: 'countDistinct', max: cap } },
  );
}

/**
 * The number of distinct values held by a {@link countDistinct} state (0 when fresh): exact for
 * the list form, a HyperLogLog estimate (rounded) for the sketch.
 *
 * @example
 * countDistinctValue(['ann', 'bob'])  // 2
 */
export function countDistinctValue(state: DistinctState | null | undefined): number {
  if (!state) return 0;
  if (!isSketch(state)) return state.length;
  const registers = readSketch(state);
  const m = HLL_REGISTERS;
  let harmonic = 0;
  let zeros = 0;
  for (const rank of registers) {
    harmonic += 2 ** -rank;
    if (rank === 0) zeros += 1;
  }
  const alpha = 0.7213 / (1 + 1.079 / m);
  let estimate = (alpha * m * m) / harmonic;
  // Few values: linear counting over the empty registers is the better estimate.
  if (estimate <= 2.5 * m && zeros > 0) estimate = m * Math.log(m / zeros);
  // Near the 32-bit hash space, correct for hash collisions.
  else if (estimate > 2 ** 32 / 30) estimate = -(2 ** 32) * Math.log(1 - estimate / 2 ** 32);
  return Math.round(estimate);
}

/** Options of {@link histogram}. */
export interface HistogramOptions extends AggregateOptions {
  /**
   * Bucket boundaries, finite and strictly increasing. `n` boundaries make `n + 1` buckets:
   * bucket 0 holds values below `boundaries[0]`, bucket `i` values in
   * `[boundaries[i - 1], boundaries[i])` (lower bound inclusive), the last values at or above
   * the last boundary. Keep them fixed for a view: a state built with other boundaries throws.
   */
  readonly boundaries: readonly number[];
}

function requireBoundaries(boundaries: unknown): readonly number[] {
  const ok =
    Array.isArray(boundaries) &&
    boundaries.length > 0 &&
    boundaries.every((b, i) => typeof b === 'number' && Number.isFinite(b) && (i === 0 || b > (boundaries[i - 1] as number)));
  if (!ok) {
    throw new SdkError(
      'INVALID_ARGUMENT',
      `histogram(): boundaries must be a non-empty array of finite, strictly increasing numbers, received ${preview(boundaries)}`,
      { context: { reducer: 'histogram' } },
    );
  }
  return boundaries as readonly number[];
}

/**
 * Counts `value` into its bucket: the state is the array of bucket counts (see
 * {@link HistogramOptions.boundaries}). A null/undefined value is skipped (a fresh histogram that
 * has seen only nulls is `null`).
 *
 * @example
 * const latency = { boundaries: [100, 500, 1000] };          // <100, 100-499, 500-999, >=1000
 * let h = histogram(undefined, 120, latency);                // [0, 1, 0, 0]
 * h = histogram(h, 1000, latency);                           // [0, 1, 0, 1]
 * reduce: (s, e) => ({ latency: histogram(s.latency, e.ms, latency) })
 */
export function histogram(current: readonly number[], value: number | null | undefined, options: HistogramOptions): number[];
export function histogram(current: readonly number[] | null | undefined, value: number, options: HistogramOptions): number[];
export function histogram(current: readonly number[] | null | undefined, value: number | null | undefined, options: HistogramOptions): number[] | null;
export function histogram(current: readonly number[] | null | undefined, value: number | null | undefined, options: HistogramOptions): number[] | null {
  const boundaries = requireBoundaries(options?.boundaries);
  if (current && current.length !== boundaries.length + 1) {
    throw new SdkError(
      'INVALID_ARGUMENT',
      `histogram(): the previous state has ${current.length} buckets but ${boundaries.length} boundaries make ${boundaries.length + 1}; keep boundaries fixed, or fold the view again from the start under a new view name`,
      { context: { reducer: 'histogram' } },
    );
  }
  if (isNull(value)) {
    const kept = skipNull(current, options, 'histogram');
    return kept ? [...kept] : null;
  }
  const x = requireFinite(value, 'histogram');
  const counts = current ? [...current] : new Array<number>(boundaries.length + 1).fill(0);
  let bucket = 0;
  while (bucket < boundaries.length && x >= (boundaries[bucket] as number)) bucket += 1;
  counts[bucket] = requireFinite(counts[bucket], 'histogram', `the previous state [${bucket}]`) + 1;
  return counts;
}
