import {
  DELETE,
  type App,
  type AppOptions,
  type Decoder,
  type Delete,
  type EventSchema,
  type JsonDecoding,
  type Lookup,
  type Lookups,
  type RowChange,
  type SourceRecord,
  type Table,
  type TableOptions,
  type TableViewOptions,
  type Trigger,
  type TriggerOptions,
  type View,
  type ViewOptions,
  type WindowDefinition,
  type WindowSpec,
} from './define.ts';
import { MAX_STATE_BYTES } from './contract.ts';
import { DefinitionError } from './errors.ts';
import { parseJsonExact, parseJsonStrict } from './exact-json.ts';
import { compileLiveApp, compileLiveView } from './live.ts';

/**
 * How old a cached lookup row may be by default: short enough that a row another engine task
 * rewrote is seen about as soon as its writer's batch commits, long enough that a hot row (a
 * member booking many classes) is read about once a second per task, not once per batch.
 */
export const DEFAULT_LOOKUP_MAX_AGE_MS = 1_000;
/** Items are capped at 400 KB by DynamoDB; state gets the bulk, bookkeeping the rest. */
export const DEFAULT_MAX_STATE_BYTES = 100_000;
/** Large enough to amortize an invocation, small enough to stay far below the 6 MB payload cap. */
export const DEFAULT_TRIGGER_BATCH_SIZE = 100;
/**
 * No wait: the engine's consumer batch already gathers a batch's changes, and each wait is
 * latency every change pays. Raise it to gather changes of several partitions into fewer,
 * fuller invocations.
 */
export const DEFAULT_TRIGGER_MAX_BATCH_WAIT_MS = 0;
/** Parallel invocations per trigger; Lambda's default account concurrency is far above this. */
export const DEFAULT_TRIGGER_CONCURRENCY = 8;
/**
 * Every change: a missed transition is a silent wrong answer (a refund not sent), while the
 * price of `'every'` is invocations (and, for a key with many events in a batch, delivery
 * time), which show; a user who wants fewer opts into `'coalesced'`.
 */
export const DEFAULT_TRIGGER_CHANGES = 'every';
/** Five attempts with capped exponential backoff ride out a throttle or a cold start. */
export const DEFAULT_RETRY = { maxAttempts: 5, initialBackoffMs: 100, maxBackoffMs: 5_000 } as const;

/**
 * Default retention of a window past its end, as a multiple of its size (or session gap) plus
 * grace: the window stays readable for as long again as it took to fill and close, then
 * expires through DynamoDB TTL.
 */
export const DEFAULT_RETENTION_FACTOR = 2;
/**
 * Most windows one event of a hopping view lands in (sizeMs / advanceMs): each is its own item
 * and write, so a larger ratio is a cost few mean to pay.
 */
export const MAX_HOPPING_WINDOWS_PER_EVENT = 100;
/** Longest window size, gap, grace, retention or idle time: about 31 years, far inside exact integer arithmetic. */
export const MAX_WINDOW_DURATION_MS = 1e12;

const VIEW_NAME = /^[A-Za-z0-9_-]{1,64}$/;
const APP_NAME = /^[A-Za-z][A-Za-z0-9-]{0,39}$/;
const TOPIC_NAME = /^[A-Za-z0-9._-]{1,249}$/;

const utf8 = new TextDecoder('utf-8', { fatal: true });

/**
 * The default decoder (`decode: 'json'`): UTF-8 JSON, as `JSON.parse`, except that an integer a
 * double cannot hold exactly (e.g. 9007199254740993) throws instead of being rounded.
 */
export const jsonDecoder: Decoder<any> = (value) => parseJsonStrict(utf8.decode(value));

/**
 * `decode: 'json-bigint'`: UTF-8 JSON whose integers past ±(2^53−1) decode to `bigint`, exactly;
 * a non-integer a double cannot hold without losing digits throws.
 */
export const jsonBigintDecoder: Decoder<any> = (value) => parseJsonExact(utf8.decode(value));

const JSON_DECODERS: Readonly<Record<string, Decoder<any>>> = { json: jsonDecoder, 'json-bigint': jsonBigintDecoder };

function requireStandardSchema(schema: unknown, name: string, context: Record<string, unknown>): void {
  const standard = (schema as { '~standard'?: { version?: unknown; validate?: unknown } } | null)?.['~standard'];
  if (standard === undefined || standard === null || standard.version !== 1 || typeof standard.validate !== 'function') {
    throw new DefinitionError(
      `view "${name}": schema must implement Standard Schema v1 (a "~standard" property with version 1 and validate()), received ${preview(schema)}; pass a zod, valibot or arktype schema`,
      context,
    );
  }
}

function requireFunction(value: unknown, what: string, context: Record<string, unknown>): void {
  if (typeof value !== 'function') {
    throw new DefinitionError(
      `${what} must be a function, received ${preview(value)}; pass a function`,
      context,
    );
  }
}

function requirePositiveInt(value: unknown, what: string, context: Record<string, unknown>): void {
  if (!Number.isInteger(value) || (value as number) <= 0) {
    throw new DefinitionError(`${what} must be a positive integer, received ${preview(value)}`, context);
  }
}

/** Short, safe rendering of a received value for error messages. */
export function preview(value: unknown): string {
  if (typeof value === 'function') return 'a function';
  if (typeof value === 'bigint') return `${value}n`;
  if (typeof value === 'string') return JSON.stringify(value.length > 80 ? `${value.slice(0, 80)}…` : value);
  try {
    const text = JSON.stringify(value);
    if (text === undefined) return String(value);
    return text.length > 80 ? `${text.slice(0, 80)}…` : text;
  } catch {
    return String(value);
  }
}

function requireDuration(value: unknown, what: string, context: Record<string, unknown>, allowZero = false): number {
  if (!Number.isSafeInteger(value) || (value as number) < (allowZero ? 0 : 1) || (value as number) > MAX_WINDOW_DURATION_MS) {
    throw new DefinitionError(
      `${what} must be ${allowZero ? 'a non-negative' : 'a positive'} integer number of milliseconds (at most ${MAX_WINDOW_DURATION_MS}), received ${preview(value)}`,
      context,
    );
  }
  return value as number;
}

/**
 * A tumbling window: fixed-size, non-overlapping windows aligned to the epoch, `[k·sizeMs,
 * (k+1)·sizeMs)`. Each event lands in exactly one.
 *
 * @example
 * defineView({ name: 'bookingsPerDay', window: tumbling({ sizeMs: 86_400_000 }), graceMs: 3_600_000, ... });
 */
export function tumbling(options: { readonly sizeMs: number }): WindowSpec {
  const sizeMs = requireDuration(options?.sizeMs, 'tumbling window: sizeMs', {});
  return Object.freeze({ kind: 'tumbling', sizeMs });
}

/**
 * A hopping window: windows of `sizeMs` starting every `advanceMs` (aligned to the epoch), so an
 * event lands in `sizeMs / advanceMs` windows, each its own item. `sizeMs` must be a multiple
 * of `advanceMs` (every event then lands in the same number of windows, and the cost per event
 * is that number), at most {@link MAX_HOPPING_WINDOWS_PER_EVENT} times it.
 *
 * @example
 * hopping({ sizeMs: 3_600_000, advanceMs: 600_000 }); // the last hour, every 10 minutes: 6 windows per event
 */
export function hopping(options: { readonly sizeMs: number; readonly advanceMs: number }): WindowSpec {
  const sizeMs = requireDuration(options?.sizeMs, 'hopping window: sizeMs', {});
  const advanceMs = requireDuration(options?.advanceMs, 'hopping window: advanceMs', {});
  if (advanceMs > sizeMs) {
    throw new DefinitionError(
      `hopping window: advanceMs (${advanceMs}) is larger than sizeMs (${sizeMs}), which would leave gaps no window covers; use advanceMs <= sizeMs (equal is a tumbling window)`,
    );
  }
  if (sizeMs % advanceMs !== 0) {
    throw new DefinitionError(
      `hopping window: sizeMs (${sizeMs}) must be a multiple of advanceMs (${advanceMs}), so every event lands in sizeMs / advanceMs windows; e.g. advanceMs ${largestDivisorAtMost(sizeMs, advanceMs)}`,
    );
  }
  if (sizeMs / advanceMs > MAX_HOPPING_WINDOWS_PER_EVENT) {
    throw new DefinitionError(
      `hopping window: sizeMs / advanceMs is ${sizeMs / advanceMs}, so each event would be written to that many windows; keep it at most ${MAX_HOPPING_WINDOWS_PER_EVENT} (raise advanceMs)`,
    );
  }
  return Object.freeze({ kind: 'hopping', sizeMs, advanceMs });
}

function largestDivisorAtMost(n: number, limit: number): number {
  for (let d = Math.min(limit, n); d > 1; d--) if (n % d === 0) return d;
  return 1;
}

/**
 * A session window: per key, events closer than `gapMs` to each other form one session
 * `[first event, last event + gapMs)`; an event that bridges two sessions merges them with
 * the view's `merge(a, b)`, which a session view must define.
 *
 * @example
 * defineView({ name: 'visits', window: session({ gapMs: 30 * 60_000 }), graceMs: 60_000, merge: (a, b) => ..., ... });
 */
export function session(options: { readonly gapMs: number }): WindowSpec {
  const gapMs = requireDuration(options?.gapMs, 'session window: gapMs', {});
  return Object.freeze({ kind: 'session', gapMs });
}

const WINDOW_ONLY_OPTIONS = ['graceMs', 'timestamp', 'emit', 'onLate', 'retentionMs', 'idleCloseMs', 'merge'] as const;

/** Compiles a view's window options (undefined for an unwindowed view), or throws why they are wrong. */
function compileWindow(name: string, options: ViewOptions<any, any>, context: Record<string, unknown>): WindowDefinition | undefined {
  const spec = options.window;
  if (spec === undefined) {
    const stray = WINDOW_ONLY_OPTIONS.filter((option) => options[option] !== undefined);
    if (stray.length > 0) {
      throw new DefinitionError(
        `view "${name}": ${stray.join(', ')} ${stray.length === 1 ? 'applies' : 'apply'} only to windowed views; add window: tumbling(...), hopping(...) or session(...), or remove ${stray.length === 1 ? 'it' : 'them'}`,
        context,
      );
    }
    return undefined;
  }
  const kind = (spec as { kind?: unknown } | null)?.kind;
  // Re-checked through the helpers: the spec may be a plain object rather than their result.
  const checked =
    kind === 'tumbling'
      ? tumbling(spec as { sizeMs: number })
      : kind === 'hopping'
        ? hopping(spec as { sizeMs: number; advanceMs: number })
        : kind === 'session'
          ? session(spec as { gapMs: number })
          : undefined;
  if (checked === undefined) {
    throw new DefinitionError(
      `view "${name}": window must come from tumbling(), hopping() or session(), received ${preview(spec)}`,
      context,
    );
  }
  if (options.graceMs === undefined) {
    throw new DefinitionError(
      `view "${name}": a windowed view needs graceMs, how long past a window's end (in event time) late events are still applied. There is no default on purpose: it trades completeness against how long every result waits, and only the app knows how out of order its source is. Set graceMs: 0 for in-order sources`,
      context,
    );
  }
  const graceMs = requireDuration(options.graceMs, `view "${name}": graceMs`, context, true);
  const span = checked.kind === 'session' ? checked.gapMs : checked.sizeMs;
  const retentionMs =
    options.retentionMs === undefined
      ? DEFAULT_RETENTION_FACTOR * (span + graceMs)
      : requireDuration(options.retentionMs, `view "${name}": retentionMs`, context);
  if (retentionMs < graceMs) {
    throw new DefinitionError(
      `view "${name}": retentionMs (${retentionMs}) is shorter than graceMs (${graceMs}), so windows would expire before they close; use retentionMs >= graceMs`,
      context,
    );
  }
  const emit = options.emit ?? 'changes';
  if (emit !== 'changes' && emit !== 'final') {
    throw new DefinitionError(`view "${name}": emit must be "changes" or "final", received ${preview(emit)}`, context);
  }
  const onLate = options.onLate ?? 'dead-letter';
  if (onLate !== 'dead-letter' && onLate !== 'drop') {
    throw new DefinitionError(`view "${name}": onLate must be "dead-letter" or "drop", received ${preview(onLate)}`, context);
  }
  const idleCloseMs =
    options.idleCloseMs === undefined ? undefined : requireDuration(options.idleCloseMs, `view "${name}": idleCloseMs`, context);
  if (options.timestamp !== undefined) requireFunction(options.timestamp, `view "${name}": timestamp`, context);
  if (checked.kind === 'session') {
    if (options.merge === undefined) {
      throw new DefinitionError(
        `view "${name}": a session view needs merge(a, b), which combines the states of two sessions an event bridges (a is the earlier); e.g. merge: (a, b) => ({ visits: a.visits + b.visits })`,
        context,
      );
    }
    requireFunction(options.merge, `view "${name}": merge`, context);
  } else if (options.merge !== undefined) {
    throw new DefinitionError(
      `view "${name}": merge applies only to session windows (a ${checked.kind} window never merges); remove it`,
      context,
    );
  }
  return Object.freeze({ ...checked, graceMs, retentionMs, emit, onLate, idleCloseMs, timestamp: options.timestamp });
}

/** How long a deleted item's tombstone fences its key by default: 7 days. */
export const DEFAULT_DELETE_RETENTION_MS = 7 * 24 * 60 * 60 * 1000;

/**
 * Defines a view: events of `source` folded by `key` into state with `reduce`.
 *
 * @example
 * const attendance = defineView({
 *   name: 'classAttendance',
 *   source: 'bookings',
 *   key: (e: BookingEvent) => e.classId,
 *   initial: () => ({ booked: 0 }),
 *   reduce: (s, e) => ({ booked: s.booked + (e.type === 'booked' ? 1 : -1) }),
 * });
 */
export function defineView<R, S>(options: TableViewOptions<R, S>): View<RowChange<R>, S>;
export function defineView<E, S, L extends Lookups<E> = {}>(options: ViewOptions<E, S, L>): View<E, S>;
export function defineView<E, S>(options: ViewOptions<E, S, any> | TableViewOptions<any, S>): View<any, S> {
  if (options !== null && typeof options === 'object' && typeof options.source === 'object' && options.source !== null) {
    return defineTableView(options as TableViewOptions<any, S>);
  }
  return defineStreamView(options as ViewOptions<E, S, any>);
}

function defineStreamView<E, S>(options: ViewOptions<E, S, any>): View<E, S> {
  const name = options?.name;
  if (typeof name !== 'string' || !VIEW_NAME.test(name)) {
    throw new DefinitionError(
      `view name must be 1-64 letters, digits, "_" or "-", received ${preview(name)}`,
      { view: String(name) },
    );
  }
  const context = { view: name };
  if (typeof options.source !== 'string' || !TOPIC_NAME.test(options.source)) {
    throw new DefinitionError(
      `view "${name}": source must be a Kafka topic name (letters, digits, ".", "_", "-"), received ${preview(options.source)}`,
      context,
    );
  }
  requireFunction(options.key, `view "${name}": key`, context);
  requireFunction(options.initial, `view "${name}": initial`, context);
  requireFunction(options.reduce, `view "${name}": reduce`, context);
  const decode = typeof options.decode === 'string' ? JSON_DECODERS[options.decode] : options.decode ?? jsonDecoder;
  if (decode === undefined) {
    throw new DefinitionError(
      `view "${name}": decode must be a function, 'json' or 'json-bigint', received ${preview(options.decode)}`,
      context,
    );
  }
  requireFunction(decode, `view "${name}": decode`, context);
  if (options.schema !== undefined) requireStandardSchema(options.schema, name, context);
  if (options.filter !== undefined) requireFunction(options.filter, `view "${name}": filter`, context);
  const maxStateBytes = options.maxStateBytes ?? DEFAULT_MAX_STATE_BYTES;
  requirePositiveInt(maxStateBytes, `view "${name}": maxStateBytes`, context);
  if (maxStateBytes > MAX_STATE_BYTES) {
    throw new DefinitionError(
      `view "${name}": maxStateBytes ${maxStateBytes} leaves no room under DynamoDB's 400 KB item cap; use at most ${MAX_STATE_BYTES}`,
      context,
    );
  }
  const onPoison = options.onPoison ?? 'dead-letter';
  if (onPoison !== 'dead-letter' && onPoison !== 'stop') {
    throw new DefinitionError(
      `view "${name}": onPoison must be "dead-letter" or "stop", received ${preview(onPoison)}`,
      context,
    );
  }
  if (options.lookup !== undefined) {
    if (options.lookup === null || typeof options.lookup !== 'object') {
      throw new DefinitionError(`view "${name}": lookup must be an object of { table, key } by name, received ${preview(options.lookup)}`, context);
    }
    for (const [as, lookup] of Object.entries(options.lookup as Lookups<E>)) {
      if (lookup?.table?.kind !== 'view' || lookup.table.table !== true) {
        throw new DefinitionError(
          `view "${name}": lookup "${as}" needs table: a defineTable() result, received ${preview(lookup?.table)}`,
          context,
        );
      }
      requireFunction(lookup.key, `view "${name}": lookup "${as}" key`, context);
      if (lookup.maxAgeMs !== undefined && (!Number.isInteger(lookup.maxAgeMs) || lookup.maxAgeMs < 0)) {
        throw new DefinitionError(`view "${name}": lookup "${as}" maxAgeMs must be a non-negative integer (ms; 0 reads every batch), received ${preview(lookup.maxAgeMs)}`, context);
      }
    }
  }
  if (options.onTombstone !== undefined) requireFunction(options.onTombstone, `view "${name}": onTombstone`, context);
  const deleteRetentionMs = options.deleteRetentionMs ?? DEFAULT_DELETE_RETENTION_MS;
  requirePositiveInt(deleteRetentionMs, `view "${name}": deleteRetentionMs`, context);
  const version = options.version ?? 1;
  requirePositiveInt(version, `view "${name}": version`, context);
  const backfill = options.backfill ?? 'all';
  if (backfill !== 'all' && backfill !== 'retained') {
    throw new DefinitionError(`view "${name}": backfill must be "all" or "retained", received ${preview(backfill)}`, context);
  }
  const window = compileWindow(name, options, context);
  if (options.repartition !== undefined && typeof options.repartition !== 'boolean') {
    throw new DefinitionError(`view "${name}": repartition must be true or false, received ${preview(options.repartition)}`, context);
  }
  if (options.repartition === true && window !== undefined) {
    throw new DefinitionError(
      `view "${name}": repartition is not supported with a window yet (stream time is kept per source partition); key the windowed view by its Kafka key, or drop repartition`,
      context,
    );
  }
  const live = compileLiveView(name, options.live);
  return Object.freeze({
    kind: 'view',
    name,
    source: options.source,
    version,
    backfill,
    decode: decode as Decoder<E>,
    schema: options.schema,
    filter: options.filter ?? (() => true),
    key: options.key,
    initial: options.initial,
    // DELETE passes through to the engine (View.reduce's doc).
    reduce: options.reduce as View<E, S>['reduce'],
    ...(options.onTombstone !== undefined ? { onTombstone: options.onTombstone } : {}),
    ...(options.repartition === true ? { repartition: true as const } : {}),
    ...(options.lookup !== undefined && Object.keys(options.lookup).length > 0 ? { lookup: Object.freeze({ ...options.lookup }) } : {}),
    deleteRetentionMs,
    maxStateBytes,
    onPoison,
    ...(window !== undefined ? { window } : {}),
    ...(window?.kind === 'session' ? { merge: options.merge } : {}),
    ...(live !== undefined ? { live } : {}),
  });
}

/** The event a table's onTombstone gives its reduce: delete the row. */
const ROW_DELETED: unique symbol = Symbol('tributary.rowDeleted');

function recordKeyText(record: SourceRecord): string | undefined {
  return record.key === null ? undefined : record.key.toString('utf8');
}

/**
 * Defines a table: `source` read as a changelog, one item per row key holding the row's latest
 * value; a tombstone (null value) deletes the row. Read it like a view; aggregate it with
 * `defineView({ source: table, key, reduce, subtract })`; look rows up from a view's fold.
 *
 * @example
 * export const members = defineTable({ name: 'members', source: 'members', schema: memberSchema });
 */
export function defineTable<R>(options: TableOptions<R>): Table<R> {
  const name = options?.name;
  const rowKey = options?.key ?? recordKeyText;
  if (options?.key !== undefined) requireFunction(options.key, `table "${String(name)}": key`, { view: String(name) });
  const view = defineStreamView<unknown, R>({
    name,
    source: options.source,
    ...(options.decode !== undefined ? { decode: options.decode as Decoder<unknown> | JsonDecoding } : {}),
    ...(options.schema !== undefined ? { schema: options.schema as EventSchema<unknown> } : {}),
    key: (_row, record) => rowKey(record),
    initial: () => null as R,
    reduce: (_state, row) => (row === ROW_DELETED ? DELETE : (row as R)),
    onTombstone: () => ROW_DELETED,
    ...(options.maxStateBytes !== undefined ? { maxStateBytes: options.maxStateBytes } : {}),
    ...(options.onPoison !== undefined ? { onPoison: options.onPoison } : {}),
    ...(options.deleteRetentionMs !== undefined ? { deleteRetentionMs: options.deleteRetentionMs } : {}),
  });
  return Object.freeze({ ...view, table: true as const }) as Table<R>;
}

/** A view over a table: its events are row changes, applied as subtract(old) then reduce(new). */
function defineTableView<R, S>(options: TableViewOptions<R, S>): View<RowChange<R>, S> {
  const name = options.name;
  const table = options.source;
  if (table.kind !== 'view' || table.table !== true) {
    throw new DefinitionError(
      `view "${String(name)}": source must be a topic name or a defineTable() result, received ${preview(table)}`,
      { view: String(name) },
    );
  }
  const context = { view: String(name) };
  requireFunction(options.subtract, `view "${String(name)}": subtract (the undo of reduce for a row that leaves the group)`, context);
  requireFunction(options.reduce, `view "${String(name)}": reduce`, context);
  requireFunction(options.key, `view "${String(name)}": key`, context);
  if (options.filter !== undefined) requireFunction(options.filter, `view "${String(name)}": filter`, context);
  const { reduce: add, subtract, initial } = options;
  const view = defineStreamView<RowChange<R>, S>({
    name,
    source: table.source,
    ...(options.version !== undefined ? { version: options.version } : {}),
    key: (change) => options.key((change.new ?? change.old)!),
    ...(options.filter !== undefined ? { filter: (change: RowChange<R>) => options.filter!((change.new ?? change.old)!) } : {}),
    initial,
    reduce: (state, change, record) => {
      let next: S | Delete = state;
      if (change.old !== undefined) next = subtract(next, change.old, record);
      if (change.new !== undefined) next = add(next === DELETE ? initial() : next, change.new, record);
      return next;
    },
    ...(options.maxStateBytes !== undefined ? { maxStateBytes: options.maxStateBytes } : {}),
    ...(options.onPoison !== undefined ? { onPoison: options.onPoison } : {}),
    ...(options.deleteRetentionMs !== undefined ? { deleteRetentionMs: options.deleteRetentionMs } : {}),
  });
  // The engine asks key() and filter() of one row at a time: { old: row } or { new: row }.
  const aggregate = Object.freeze({ key: options.key, reduce: add, subtract, ...(options.filter !== undefined ? { filter: options.filter } : {}) });
  return Object.freeze({ ...view, over: table, aggregate });
}

/**
 * Subscribes a Lambda function to a view's changes.
 *
 * @example
 * const nearlyFull = defineTrigger({
 *   view: classAttendance,
 *   function: 'notifyInstructor',
 *   when: ({ before, after }) => (before?.booked ?? 0) < 0.9 * after.capacity && after.booked >= 0.9 * after.capacity,
 * });
 */
export function defineTrigger<S>(options: TriggerOptions<S>): Trigger<S> {
  const view = options?.view;
  if (!view || view.kind !== 'view') {
    throw new DefinitionError(`trigger view must be a view from defineView(), received ${preview(view)}`);
  }
  const fn = options.function;
  if (typeof fn !== 'string' || !/^[A-Za-z0-9_:.-]{1,140}$/.test(fn)) {
    throw new DefinitionError(
      `trigger on view "${view.name}": function must be a Lambda function name, received ${preview(fn)}`,
      { view: view.name },
    );
  }
  const name = options.name ?? `${view.name}-${fn}`;
  const context = { view: view.name, trigger: name };
  if (options.when !== undefined) requireFunction(options.when, `trigger "${name}": when`, context);
  const batchSize = options.batchSize ?? DEFAULT_TRIGGER_BATCH_SIZE;
  requirePositiveInt(batchSize, `trigger "${name}": batchSize`, context);
  const maxBatchWaitMs = options.maxBatchWaitMs ?? DEFAULT_TRIGGER_MAX_BATCH_WAIT_MS;
  if (!Number.isInteger(maxBatchWaitMs) || maxBatchWaitMs < 0) {
    throw new DefinitionError(
      `trigger "${name}": maxBatchWaitMs must be a non-negative integer, received ${preview(maxBatchWaitMs)}`,
      context,
    );
  }
  const concurrency = options.concurrency ?? DEFAULT_TRIGGER_CONCURRENCY;
  requirePositiveInt(concurrency, `trigger "${name}": concurrency`, context);
  const changes = options.changes ?? DEFAULT_TRIGGER_CHANGES;
  if (changes !== 'every' && changes !== 'coalesced') {
    throw new DefinitionError(
      `trigger "${name}": changes must be 'every' (one change per event) or 'coalesced' (one change per item and batch), received ${preview(changes)}`,
      context,
    );
  }
  if (changes === 'every' && view.window?.kind === 'session' && view.window.emit === 'changes') {
    throw new DefinitionError(
      `trigger "${name}": view "${view.name}" is a session view, whose merges replace several items by one, so one change per event is not defined across them; set changes: 'coalesced' (one change per session and batch) or give the view emit: 'final' (one change per closed session)`,
      context,
    );
  }
  const retry = { ...DEFAULT_RETRY, ...options.retry };
  requirePositiveInt(retry.maxAttempts, `trigger "${name}": retry.maxAttempts`, context);
  requirePositiveInt(retry.initialBackoffMs, `trigger "${name}": retry.initialBackoffMs`, context);
  requirePositiveInt(retry.maxBackoffMs, `trigger "${name}": retry.maxBackoffMs`, context);
  if (retry.maxBackoffMs < retry.initialBackoffMs) {
    throw new DefinitionError(
      `trigger "${name}": retry.maxBackoffMs (${retry.maxBackoffMs}) is below retry.initialBackoffMs (${retry.initialBackoffMs}); raise maxBackoffMs`,
      context,
    );
  }
  return Object.freeze({
    kind: 'trigger',
    name,
    view,
    function: fn,
    when: options.when ?? (() => true),
    batchSize,
    maxBatchWaitMs,
    retry,
    concurrency,
    changes,
  });
}

/**
 * The internal topic a version of a view with `repartition: true` folds through: its source's
 * records, keyed by the view key. Version 1 folds `<app>.<view>.repartition`; each later version
 * has a topic of its own, `<app>.<view>.v<version>.repartition`, which its build fills from the
 * source's history (a new `key` or `filter` would not fit the old topic's partitioning), so a
 * version bump never mixes the copies of two versions (docs/architecture.md, "View lifecycle").
 *
 * @example repartitionTopic('gym', 'memberBookings') // 'gym.memberBookings.repartition'
 * @example repartitionTopic('gym', 'memberBookings', 2) // 'gym.memberBookings.v2.repartition'
 */
export function repartitionTopic(app: string, view: string, version = 1): string {
  return version === 1 ? `${app}.${view}.repartition` : `${app}.${view}.v${version}.repartition`;
}

/**
 * Defines the app: the one module the engine loads, the CDK app deploys and `npm run dev` runs.
 *
 * @example
 * export const app = defineApp({ name: 'gym', views: [classAttendance], triggers: [nearlyFull] });
 */
export function defineApp(options: AppOptions): App {
  const name = options?.name;
  if (typeof name !== 'string' || !APP_NAME.test(name)) {
    throw new DefinitionError(
      `app name must start with a letter and hold up to 40 letters, digits or "-", received ${preview(name)}`,
    );
  }
  if (!Array.isArray(options.views) || options.views.length === 0) {
    throw new DefinitionError(`app "${name}": views must be a non-empty array of defineView() results`);
  }
  const views = [...options.views];
  const seen = new Set<string>();
  for (const view of views) {
    if (!view || view.kind !== 'view') {
      throw new DefinitionError(`app "${name}": views holds ${preview(view)}, not a defineView() result`);
    }
    if (seen.has(view.name)) {
      throw new DefinitionError(`app "${name}": two views are named "${view.name}"; view names must be unique`);
    }
    seen.add(view.name);
  }
  for (const view of views) {
    for (const [as, lookup] of Object.entries(view.lookup ?? {}) as [string, Lookup<unknown, unknown>][]) {
      if (!views.includes(lookup.table)) {
        throw new DefinitionError(
          `app "${name}": view "${view.name}" looks up table "${lookup.table.name}" (as "${as}"), which is not in the app's views; add the table to views`,
          { view: view.name },
        );
      }
    }
    if (view.over !== undefined && !views.includes(view.over)) {
      throw new DefinitionError(
        `app "${name}": view "${view.name}" aggregates table "${view.over.name}", which is not in the app's views; add the table to views`,
        { view: view.name },
      );
    }
  }
  // Each live view carries its built-in fan-out trigger.
  const liveApp = compileLiveApp(views, options.live, defineTrigger);
  const triggers = [...(options.triggers ?? []), ...liveApp.triggers];
  const triggerNames = new Set<string>();
  for (const trigger of triggers) {
    if (!trigger || trigger.kind !== 'trigger') {
      throw new DefinitionError(`app "${name}": triggers holds ${preview(trigger)}, not a defineTrigger() result`);
    }
    if (!views.includes(trigger.view)) {
      throw new DefinitionError(
        `app "${name}": trigger "${trigger.name}" names view "${trigger.view.name}", which is not in the app's views; add it to views`,
        { trigger: trigger.name, view: trigger.view.name },
      );
    }
    if (triggerNames.has(trigger.name)) {
      throw new DefinitionError(
        `app "${name}": two triggers are named "${trigger.name}"; give one a distinct name`,
        { trigger: trigger.name },
      );
    }
    triggerNames.add(trigger.name);
  }
  const deadLetterTopic = options.deadLetterTopic ?? `${name}.dead-letter`;
  if (!TOPIC_NAME.test(deadLetterTopic)) {
    throw new DefinitionError(`app "${name}": deadLetterTopic is not a valid topic name: ${preview(deadLetterTopic)}`);
  }
  const sourceTopics = [...new Set(views.map((v) => v.source))];
  if (sourceTopics.includes(deadLetterTopic)) {
    throw new DefinitionError(
      `app "${name}": deadLetterTopic "${deadLetterTopic}" is also a view source; poison would loop. Choose another deadLetterTopic`,
    );
  }
  const internalTopics = views.filter((v) => v.repartition === true).map((v) => repartitionTopic(name, v.name, v.version));
  for (const topic of internalTopics) {
    if (topic.length > 249 || sourceTopics.includes(topic) || topic === deadLetterTopic) {
      throw new DefinitionError(
        `app "${name}": repartition topic "${topic}" is ${topic.length > 249 ? 'longer than Kafka allows (249)' : 'also a source or the dead-letter topic'}; rename the app or the view`,
      );
    }
  }
  return Object.freeze({
    kind: 'app',
    name,
    views,
    triggers,
    deadLetterTopic,
    sourceTopics,
    internalTopics,
    functions: [...new Set(triggers.map((t) => t.function))],
    ...(liveApp.live !== undefined ? { live: liveApp.live } : {}),
  });
}
