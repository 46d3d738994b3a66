/**
 * The pure core of the engine: route a consumer batch (decode -> filter -> key) to view items,
 * fold each item's events into its state behind the offset fence, classify poison, build the
 * conditional write, stamped with the trigger bookkeeping the ledger (`ledger.ts`) says it
 * carries. No I/O: the runtime and the test driver both drive these functions.
 */
import type { StandardSchemaV1 } from '@standard-schema/spec';
import { DELETE, type SourceRecord, type Trigger, type View, type WindowBounds } from '../../sdk/index.ts';
import { preview } from '../../sdk/contract/index.ts';
import {
  offsetsKey,
  parseState,
  reservedTagReason,
  stringifyState,
  viewIndexKey,
  viewItemKey,
  viewSegment,
  viewKeyProblem,
  viewKeyProblemMessage,
  type ItemKey,
  type ViewItem,
} from '../../sdk/contract/index.ts';
import { coordinates, type PoisonDeadLetter } from './dead-letter.ts';
import { errorInfo } from './errors.ts';
import { ABSENT_TAG, keptStatesBytes, MAX_ITEM_STATES_BYTES, storedBookkeeping, writeBookkeeping, type WrittenState } from './ledger.ts';
import { originKey } from './repartition.ts';
import { closeShardOf, closeTimeOf, eventTimeOf, isClosed, streamTimeKey, windowsOf, windowTtlSeconds, type StreamClock } from './windows.ts';

/**
 * Compares two non-negative decimal offsets (Kafka offsets are int64, so strings).
 * Returns a negative number, 0 or a positive number.
 */
export function compareOffsets(a: string, b: string): number {
  if (a.length !== b.length) return a.length - b.length;
  return a < b ? -1 : a > b ? 1 : 0;
}

/** One event routed to one view item. */
export interface RoutedEvent {
  readonly record: SourceRecord;
  readonly event: unknown;
  /** Event time of a windowed view's event (epoch ms). */
  readonly timeMs?: number;
  /** Stream time of its partition once it was read (session views: whether it bridges into a closed session). */
  readonly streamTimeMs?: number;
  /** The rows the view's lookups found for this event, by lookup name (tables.ts `attachLookups`). */
  readonly rows?: Readonly<Record<string, unknown>>;
  /**
   * A repartitioned view's event: where its repartition copy sits. `record` is then the original
   * record, and the fence is kept on its coordinates (repartition.ts).
   */
  readonly via?: { readonly partitionKey: string; readonly offset: string };
}

/** The events of one batch for one view item, in partition order. */
export interface ItemEvents {
  /** `pk` + "\n" + `sk`: unique per item of the table. */
  readonly id: string;
  readonly view: View<any, any>;
  /** View key in its stored string form. */
  readonly key: string;
  readonly itemKey: ItemKey;
  /** The item's window (tumbling and hopping views); undefined for unwindowed and session views. */
  readonly window?: WindowBounds;
  /**
   * Session views: the events of one key, whose sessions are found (and merged) when the key's
   * stored sessions are loaded; `itemKey` is then the key's item collection, not one item.
   */
  readonly session?: true;
  readonly events: RoutedEvent[];
}

/** A consumer batch routed to view items. */
export interface RoutedBatch {
  /** Items touched by the batch, in order of first appearance. */
  readonly items: Map<string, ItemEvents>;
  /** Records that were poison before reaching an item (decode, filter, key). */
  readonly deadLetters: PoisonDeadLetter[];
  /** Records dropped by a view's `filter` (counted per view and record). */
  readonly filtered: number;
  /** Late events per windowed view: their window(s) had closed, so they were not applied. */
  readonly late: Readonly<Record<string, number>>;
  /** Events of windowed views at or below the partition's decided offset: settled before a crash or rebalance. */
  readonly settled: number;
}

/** Id of a view item within the table. */
export function itemId(key: ItemKey): string {
  return `${key.pk}\n${key.sk}`;
}

function poison(
  view: View<any, any>,
  record: SourceRecord,
  code: PoisonDeadLetter['code'],
  reason: string,
  error?: unknown,
  key?: string,
): PoisonDeadLetter {
  return {
    kind: 'poison',
    code,
    reason,
    view: view.name,
    record,
    ...(key !== undefined ? { key } : {}),
    ...(error !== undefined ? { error: errorInfo(error) } : {}),
    // Replay applies a letter only to the version that found it poison (absent: version 1).
    ...(view.version > 1 ? { viewVersion: view.version } : {}),
  };
}

/** Longest schema issue list quoted in a dead letter's reason. */
const MAX_SCHEMA_ISSUES_SHOWN = 5;

function issuePath(path: StandardSchemaV1.Issue['path']): string {
  if (path === undefined || path.length === 0) return 'event';
  let out = 'event';
  for (const segment of path) {
    const key = typeof segment === 'object' && segment !== null ? segment.key : segment;
    out = typeof key === 'number' ? `${out}[${key}]` : pathOf(out, String(key));
  }
  return out;
}

/**
 * Validates a decoded event with the view's Standard Schema: the schema's output, or why it
 * failed (each issue as `path: message`). A Promise result is refused: routing is synchronous.
 */
function validateEvent(
  schema: StandardSchemaV1<unknown, unknown>,
  event: unknown,
): { ok: true; event: unknown } | { ok: false; reason: string; error?: unknown } {
  let result: StandardSchemaV1.Result<unknown> | Promise<StandardSchemaV1.Result<unknown>>;
  try {
    result = schema['~standard'].validate(event);
  } catch (error) {
    return { ok: false, reason: `the schema's validate() threw: ${errorInfo(error).message}`, error };
  }
  if (result instanceof Promise) {
    result.then(undefined, () => {}); // nobody awaits it: keep a rejection from crashing the process
    return {
      ok: false,
      reason: `the schema (${schema['~standard'].vendor}) validated asynchronously (returned a Promise), which Tributary does not support; drop async refinements/transforms from the schema, or check asynchronously in a trigger`,
    };
  }
  if (result.issues === undefined) return { ok: true, event: result.value };
  const shown = result.issues.slice(0, MAX_SCHEMA_ISSUES_SHOWN).map((issue) => `${issuePath(issue.path)}: ${issue.message}`);
  const more = result.issues.length > shown.length ? ` (+${result.issues.length - shown.length} more)` : '';
  return { ok: false, reason: `${shown.join('; ')}${more}` };
}

/**
 * Routes records to view items: for every view whose source is the record's topic, decode
 * (once per distinct decoder), filter, key. Poison records become dead letters naming the view.
 *
 * @example
 * const routed = routeRecords(app.views, records);
 * for (const item of routed.items.values()) console.log(item.view.name, item.key, item.events.length);
 */
export function routeRecords(views: readonly View<any, any>[], records: readonly SourceRecord[], clock?: StreamClock): RoutedBatch {
  const items = new Map<string, ItemEvents>();
  const deadLetters: PoisonDeadLetter[] = [];
  let filtered = 0;
  let settled = 0;
  const late: Record<string, number> = {};
  const byTopic = new Map<string, View<any, any>[]>();
  for (const view of views) {
    // A table aggregation's events are derived from the table's rows (tables.ts), not routed.
    if (view.over !== undefined) continue;
    const list = byTopic.get(view.source) ?? [];
    list.push(view);
    byTopic.set(view.source, list);
  }
  for (const record of records) {
    const topicViews = byTopic.get(record.topic);
    if (topicViews === undefined) continue;
    const decoded = new Map<unknown, { ok: true; event: unknown } | { ok: false; error: unknown }>();
    for (const view of topicViews) {
      const where = coordinates(record);
      // A tombstone becomes an event through the view's onTombstone (decoded once per hook).
      const tombstone = record.value === null;
      const decoder: unknown = tombstone ? (view.onTombstone ?? 'no-hook') : view.decode;
      let outcome = decoded.get(decoder);
      if (outcome === undefined) {
        if (record.value === null) {
          if (view.onTombstone === undefined) {
            outcome = { ok: false, error: new Error('record has no value (tombstone) and the view has no onTombstone') };
          } else {
            try {
              outcome = { ok: true, event: view.onTombstone(record) };
            } catch (error) {
              outcome = { ok: false, error: new Error(`onTombstone() threw: ${errorInfo(error).message}`) };
            }
          }
        } else {
          try {
            outcome = { ok: true, event: view.decode(record.value, record) };
          } catch (error) {
            outcome = { ok: false, error };
          }
        }
        decoded.set(decoder, outcome);
      }
      if (!outcome.ok) {
        const { message } = errorInfo(outcome.error);
        const valueStart = record.value === null ? 'null' : preview(record.value.subarray(0, 60).toString('utf8'));
        deadLetters.push(
          poison(
            view,
            record,
            'DECODE_FAILED',
            tombstone
              ? `view "${view.name}": tombstone (null value) at ${where} could not become an event (${message}); give the view an onTombstone(record) that returns an event for a deleted key, or keep tombstones out of its source`
              : `view "${view.name}": decode failed for record at ${where} (${message}); value starts ${valueStart}; produce values the view's decode() accepts or give the view a decode() for this format`,
            outcome.error,
          ),
        );
        continue;
      }
      let event = outcome.event;
      if (view.schema !== undefined && !tombstone) {
        const checked = validateEvent(view.schema, event);
        if (!checked.ok) {
          deadLetters.push(
            poison(
              view,
              record,
              'SCHEMA_FAILED',
              `view "${view.name}": event at ${where} fails the view's schema: ${checked.reason}; produce events the schema accepts, or widen the schema`,
              checked.error,
            ),
          );
          continue;
        }
        event = checked.event;
      }
      try {
        if (!view.filter(event, record)) {
          filtered += 1;
          continue;
        }
      } catch (error) {
        deadLetters.push(
          poison(
            view,
            record,
            'FILTER_FAILED',
            `view "${view.name}": filter() threw for record at ${where}: ${errorInfo(error).message}; make filter() return a boolean for every event`,
            error,
          ),
        );
        continue;
      }
      let rawKey: unknown;
      try {
        rawKey = view.key(event, record);
      } catch (error) {
        deadLetters.push(
          poison(
            view,
            record,
            'KEY_FAILED',
            `view "${view.name}": key() threw for record at ${where}: ${errorInfo(error).message}; make key() return a string, bigint or number for every event`,
            error,
          ),
        );
        continue;
      }
      const problem = viewKeyProblem(rawKey);
      if (problem === 'inexact') {
        deadLetters.push(
          poison(
            view,
            record,
            'KEY_NOT_EXACT',
            `view "${view.name}": key() returned ${String(rawKey)} for record at ${where}, a number past 2^53 that a double cannot hold exactly (it may stand for a neighbouring integer too); return the key as a bigint or a string (decode: 'json-bigint' reads such integers as bigint)`,
          ),
        );
        continue;
      }
      if (problem === 'too-long') {
        deadLetters.push(
          poison(view, record, 'KEY_TOO_LONG', `view "${view.name}": key() returned ${viewKeyProblemMessage(rawKey, problem)}, for record at ${where}`),
        );
        continue;
      }
      if (problem === 'missing') {
        deadLetters.push(
          poison(
            view,
            record,
            'KEY_MISSING',
            `view "${view.name}": key() returned ${preview(rawKey)} for record at ${where}; make key() return a string, a bigint or a finite number`,
          ),
        );
        continue;
      }
      const key = String(rawKey);
      const window = view.window;
      if (window === undefined) {
        addEvent(items, view, key, undefined, { record, event });
        continue;
      }
      // Windowed: the event's time, its windows, and whether they have closed in its version's stream time.
      const clockKey = streamTimeKey(view);
      if (clock?.decided(record.offset, clockKey)) {
        settled += 1;
        continue;
      }
      const time = eventTimeOf(view, event, record);
      if (!time.ok) {
        deadLetters.push(poison(view, record, time.code, `${time.reason} (record at ${where})`, time.error, key));
        continue;
      }
      const timeMs = time.timeMs;
      const streamTimeMs = clock?.observe(clockKey, timeMs) ?? timeMs;
      const windows = windowsOf(window, timeMs);
      const closed = windows.filter((bounds) => isClosed(window, bounds, streamTimeMs));
      if (closed.length > 0) {
        late[view.name] = (late[view.name] ?? 0) + 1;
        if (window.onLate === 'dead-letter') {
          const lateByMs = streamTimeMs - closeTimeOf(window, closed[closed.length - 1]!);
          deadLetters.push({
            ...poison(
              view,
              record,
              'LATE',
              `view "${view.name}": event at ${where} (time ${timeMs}) is late by ${lateByMs} ms: stream time ${streamTimeMs} is past the close (end + graceMs ${window.graceMs}) of ${closed.map((b) => `[${b.start}, ${b.end})`).join(', ')}; it was not applied there. Raise graceMs if such delays are normal, or set onLate: 'drop'`,
              undefined,
              key,
            ),
            late: { eventTimeMs: timeMs, streamTimeMs, windows: closed, lateByMs },
          });
        }
      }
      if (window.kind === 'session') {
        if (closed.length === 0) addEvent(items, view, key, 'session', { record, event, timeMs, streamTimeMs });
        continue;
      }
      for (const bounds of windows) {
        if (!closed.includes(bounds)) addEvent(items, view, key, bounds, { record, event, timeMs });
      }
    }
    clock?.pass(record.offset);
  }
  return { items, deadLetters, filtered, late, settled };
}

function addEvent(
  items: Map<string, ItemEvents>,
  view: View<any, any>,
  key: string,
  window: WindowBounds | 'session' | undefined,
  entry: RoutedEvent,
): void {
  // A session view's events are grouped per key: which session an event joins is known only
  // once the key's stored sessions are loaded.
  const segment = viewSegment(view.name, view.version);
  const itemKey = window === 'session' ? sessionCollectionKey(segment, key) : viewItemKey(segment, key, window);
  const id = itemId(itemKey);
  let item = items.get(id);
  if (item === undefined) {
    item = {
      id,
      view,
      key,
      itemKey,
      ...(window === 'session' ? { session: true as const } : window !== undefined ? { window } : {}),
      events: [],
    };
    items.set(id, item);
  }
  item.events.push(entry);
}

/** The key of a session view's key collection (its items share `pk`), as routing groups it. */
export function sessionCollectionKey(view: string, key: string): ItemKey {
  return { pk: viewItemKey(view, key, 0).pk, sk: 'w#' };
}

/**
 * What the engine knows of a stored item before folding: the state as JSON (the one form
 * that is both cached and compared), its version and offsets vector, and trigger bookkeeping.
 * `version` 0 means the item does not exist.
 */
export interface ItemSnapshot {
  readonly version: number;
  /** Undefined iff the item does not exist. */
  readonly stateJson: string | undefined;
  readonly offsets: Readonly<Record<string, string>>;
  readonly pending?: Readonly<Record<string, number>>;
  readonly befores?: Readonly<Record<string, unknown>>;
  /** A windowed item's window. */
  readonly window?: WindowBounds;
  /** Closing index attributes of an `emit: 'final'` item awaiting its final change. */
  readonly closing?: { readonly shard: string; readonly at: number };
}

/** The snapshot of an item that does not exist yet. */
export const ABSENT_ITEM: ItemSnapshot = Object.freeze({ version: 0, stateJson: undefined, offsets: Object.freeze({}) });

/** Snapshot of a stored item (as read from the table). */
export function snapshotOf(item: ViewItem | undefined): ItemSnapshot {
  if (item === undefined) return ABSENT_ITEM;
  return {
    version: item.version,
    // A tombstone (an item deleted by its reducer) has no state: absent for the fold, fence kept.
    stateJson: item.state === undefined ? undefined : JSON.stringify(item.state),
    offsets: item.offsets,
    ...storedBookkeeping(item),
    ...(item.windowStart !== undefined && item.windowEnd !== undefined ? { window: { start: item.windowStart, end: item.windowEnd } } : {}),
    ...(item.closeShard !== undefined && item.closeAt !== undefined ? { closing: { shard: item.closeShard, at: item.closeAt } } : {}),
  };
}

/** The conditional write that stores a fold. */
export interface ItemWrite {
  /** The whole new item. */
  readonly item: ViewItem;
  /** The write's condition: the version it was folded from; 0 = the item must not exist. */
  readonly expectedVersion: number;
  /** The new state as JSON (for the cache). */
  readonly snapshot: ItemSnapshot;
}

/** Result of {@link foldItem}. */
export interface FoldResult {
  /** The write to send; undefined when no event passed the fence and applied. */
  readonly write: ItemWrite | undefined;
  /** Events folded into the state. */
  readonly applied: number;
  /** Events at or below the stored offset of their partition: already applied earlier. */
  readonly skipped: number;
  readonly deadLetters: PoisonDeadLetter[];
  /**
   * Fresh events this write leaves for a later one: a trigger takes every change and the states
   * the item would keep passed {@link MAX_ITEM_STATES_BYTES}. Fold them once this write's
   * changes are delivered.
   */
  readonly deferred: RoutedEvent[];
}

/** Options of {@link foldItem}. */
export interface FoldOptions {
  /** Triggers subscribed to this item's view (they get `pending` bookkeeping). */
  readonly triggers?: readonly Trigger<any>[];
  /** Time of the write. @default new Date() */
  readonly now?: Date;
  /**
   * Defer even the first event when the states the item already keeps for undelivered changes
   * leave no room for it (see {@link FoldResult.deferred}): for a caller that then delivers the
   * item's owed changes and folds again without this option.
   * @default false: the first event of a write always applies
   */
  readonly deferWhenFull?: boolean;
  /** The item's window, for a windowed view (required for one). */
  readonly window?: WindowBounds;
}

type Step = { ok: true; state: unknown } | { ok: false; dead: PoisonDeadLetter };

/** The rows of a view without lookups. */
const NO_ROWS: Readonly<Record<string, unknown>> = Object.freeze({});

/**
 * Applies one event. `state` DELETE (the previous event deleted the item) starts the key again
 * from `initial()`; a returned DELETE is the deleted state.
 */
function applyEvent(
  view: View<any, any>,
  key: string,
  state: unknown,
  entry: RoutedEvent,
): Step {
  let next: unknown;
  try {
    next = (view.reduce as (s: unknown, e: unknown, r: SourceRecord, rows: unknown) => unknown)(
      state === DELETE ? view.initial() : state,
      entry.event,
      entry.record,
      entry.rows ?? NO_ROWS,
    );
  } catch (error) {
    return {
      ok: false,
      dead: poison(
        view,
        entry.record,
        'REDUCE_FAILED',
        `view "${view.name}": reduce() threw for key "${key}" on record at ${coordinates(entry.record)}: ${errorInfo(error).message}; fix reduce() or filter() such events out`,
        error,
        key,
      ),
    };
  }
  if (next === undefined) {
    return {
      ok: false,
      dead: poison(
        view,
        entry.record,
        'REDUCE_FAILED',
        `view "${view.name}": reduce() returned undefined for key "${key}" on record at ${coordinates(entry.record)}; return the new state`,
        undefined,
        key,
      ),
    };
  }
  if (next === DELETE && view.window?.kind === 'session') {
    return {
      ok: false,
      dead: poison(
        view,
        entry.record,
        'REDUCE_FAILED',
        `view "${view.name}": reduce() returned DELETE for key "${key}" on record at ${coordinates(entry.record)}, but a session view cannot delete a session (sessions merge); return a state, or use a tumbling or hopping window`,
        undefined,
        key,
      ),
    };
  }
  return { ok: true, state: next };
}

/** DynamoDB numbers: magnitudes from 1E-130 up to (not including) 1E+126. */
const DYNAMODB_MAX_MAGNITUDE = 1e126;
const DYNAMODB_MIN_MAGNITUDE = 1e-130;
/** DynamoDB nests at most 32 levels; the item's `state` attribute is the first. */
const MAX_STATE_DEPTH = 31;

function pathOf(parent: string, key: string | number): string {
  return typeof key === 'number' ? `${parent}[${key}]` : /^[A-Za-z_$][\w$]*$/.test(key) ? `${parent}.${key}` : `${parent}[${JSON.stringify(key)}]`;
}

/**
 * Why DynamoDB would refuse `value` (the state as JSON.stringify sees it), or undefined: a
 * number that is not finite (JSON would silently turn it into null) or outside DynamoDB's range,
 * an empty object key, the key reserved for bigints, or nesting deeper than DynamoDB allows.
 * Values JSON drops are skipped; a bigint of any size is storable (as its tagged decimal form).
 */
export function unstorableReason(value: unknown, path = 'state', depth = 0, key: string | number = ''): string | undefined {
  if (value !== null && typeof value === 'object' && typeof (value as { toJSON?: unknown }).toJSON === 'function') {
    value = (value as { toJSON: (key: string) => unknown }).toJSON(String(key));
  }
  if (typeof value === 'number') {
    if (!Number.isFinite(value)) return `${path} is ${value}, which JSON would store as null`;
    const magnitude = Math.abs(value);
    if (magnitude >= DYNAMODB_MAX_MAGNITUDE || (magnitude !== 0 && magnitude < DYNAMODB_MIN_MAGNITUDE)) {
      return `${path} is ${value}, outside DynamoDB's number range (magnitudes 1e-130 to below 1e126)`;
    }
    return undefined;
  }
  if (value === null || typeof value !== 'object') return undefined;
  const reserved = reservedTagReason(value);
  if (reserved !== undefined) return `${path} ${reserved}`;
  if (depth + 1 > MAX_STATE_DEPTH) return `${path} nests deeper than the ${MAX_STATE_DEPTH} levels DynamoDB can hold in a state`;
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) {
      const reason = unstorableReason(value[i], pathOf(path, i), depth + 1, i);
      if (reason !== undefined) return reason;
    }
    return undefined;
  }
  for (const [name, field] of Object.entries(value)) {
    if (field === undefined || typeof field === 'function' || typeof field === 'symbol') continue;
    if (name === '') return `${path} has an empty key, which DynamoDB cannot store`;
    const reason = unstorableReason(field, pathOf(path, name), depth + 1, name);
    if (reason !== undefined) return reason;
  }
  return undefined;
}

/** Serializes a state, or explains why it cannot be stored. */
function serialize(
  view: View<any, any>,
  key: string,
  state: unknown,
  record: SourceRecord,
): { ok: true; json: string } | { ok: false; dead: PoisonDeadLetter } {
  if (state !== null && typeof state === 'object' && !Array.isArray(state) && Object.prototype.hasOwnProperty.call(state, ABSENT_TAG)) {
    return {
      ok: false,
      dead: poison(
        view,
        record,
        'STATE_NOT_STORABLE',
        `view "${view.name}": state of key "${key}" after record at ${coordinates(record)} has the top-level key "${ABSENT_TAG}", which is reserved for deleted states; rename it`,
        undefined,
        key,
      ),
    };
  }
  let json: string | undefined;
  try {
    json = stringifyState(state);
  } catch (error) {
    return {
      ok: false,
      dead: poison(
        view,
        record,
        'STATE_NOT_SERIALIZABLE',
        `view "${view.name}": state of key "${key}" after record at ${coordinates(record)} is not JSON-serializable (${errorInfo(error).message}); keep state to plain objects, arrays, strings, numbers, bigints and booleans`,
        error,
        key,
      ),
    };
  }
  if (json === undefined) {
    return {
      ok: false,
      dead: poison(
        view,
        record,
        'STATE_NOT_SERIALIZABLE',
        `view "${view.name}": state of key "${key}" after record at ${coordinates(record)} is ${preview(state)}, which JSON cannot hold; return a plain value`,
        undefined,
        key,
      ),
    };
  }
  const unstorable = unstorableReason(state);
  if (unstorable !== undefined) {
    return {
      ok: false,
      dead: poison(
        view,
        record,
        'STATE_NOT_STORABLE',
        `view "${view.name}": state of key "${key}" after record at ${coordinates(record)} cannot be stored: ${unstorable}; keep numbers finite and within DynamoDB's range (store larger or more precise values as bigint or string), object keys non-empty and other than "$bigint", and nesting shallow`,
        undefined,
        key,
      ),
    };
  }
  const bytes = Buffer.byteLength(json);
  if (bytes > view.maxStateBytes) {
    return {
      ok: false,
      dead: poison(
        view,
        record,
        'STATE_TOO_LARGE',
        `view "${view.name}": state of key "${key}" would grow to ${bytes} bytes after record at ${coordinates(record)}, over maxStateBytes ${view.maxStateBytes}; bound the state (e.g. topK instead of collect) or raise maxStateBytes`,
        undefined,
        key,
      ),
    };
  }
  return { ok: true, json };
}

/**
 * Folds one item's events into its state, behind the offset fence: an event whose offset is at
 * or below the stored offset of its partition is skipped (already applied). A throwing reducer,
 * an unserializable or oversized state make that event poison: it is dead-lettered and the
 * state stays as before it. Returns the conditional write (at most one per item and batch) or
 * none when nothing applied.
 *
 * @example
 * const { write } = foldItem(item.view, item.key, snapshotOf(stored), item.events);
 * if (write) await store.putItem(write.item, write.expectedVersion); // an ItemStore; WRITE_CONFLICT when the version moved
 */
export function foldItem(
  view: View<any, any>,
  key: string,
  snapshot: ItemSnapshot,
  events: readonly RoutedEvent[],
  options: FoldOptions = {},
): FoldResult {
  const deadLetters: PoisonDeadLetter[] = [];
  const fresh: RoutedEvent[] = [];
  let skipped = 0;
  const seen: Record<string, string> = { ...snapshot.offsets };
  for (const entry of events) {
    // A repartitioned view fences by the original record's coordinates (repartition.ts).
    const partitionKey = entry.via !== undefined ? originKey(entry.record.topic, entry.record.partition) : offsetsKey(entry.record.topic, entry.record.partition);
    const stored = seen[partitionKey];
    if (stored !== undefined && compareOffsets(entry.record.offset, stored) <= 0) {
      skipped += 1;
      continue;
    }
    seen[partitionKey] = entry.record.offset;
    if (entry.via !== undefined) seen[entry.via.partitionKey] = entry.via.offset;
    fresh.push(entry);
  }
  const none = (letters: PoisonDeadLetter[], deferred: RoutedEvent[] = []): FoldResult => ({
    write: undefined,
    applied: 0,
    skipped,
    deadLetters: letters,
    deferred,
  });
  if (fresh.length === 0) return none(deadLetters);

  let initialState: unknown;
  if (snapshot.stateJson !== undefined) {
    initialState = parseState(snapshot.stateJson);
  } else {
    try {
      initialState = view.initial();
    } catch (error) {
      for (const entry of fresh) {
        deadLetters.push(
          poison(
            view,
            entry.record,
            'REDUCE_FAILED',
            `view "${view.name}": initial() threw for key "${key}": ${errorInfo(error).message}; make initial() return the empty state`,
            error,
            key,
          ),
        );
      }
      return none(deadLetters);
    }
  }

  // An `emit: 'final'` view's triggers hear of its windows only once they close (window-closer.ts).
  const triggers = view.window?.emit === 'final' ? [] : (options.triggers ?? []);
  const every = triggers.some((t) => t.changes === 'every');
  let stateJson: string | undefined;
  let applied = 0;
  /** Events of `fresh` this write covers (applied or poison); the rest are deferred. */
  let taken = fresh.length;
  const intermediates: WrittenState[] = [];

  // Fast path (no trigger takes every change): fold everything, check the final state once.
  let state = initialState;
  let slow = every;
  if (!every) {
    const fastDead: PoisonDeadLetter[] = [];
    for (const entry of fresh) {
      const step = applyEvent(view, key, state, entry);
      if (step.ok) {
        state = step.state;
        applied += 1;
      } else {
        fastDead.push(step.dead);
      }
    }
    // Every fresh event was poison: nothing to write.
    if (applied === 0) return none(fastDead);
    const final: { ok: true; json: string | undefined } | { ok: false } =
      state === DELETE ? { ok: true, json: undefined } : serialize(view, key, state, fresh[fresh.length - 1]!.record);
    if (final.ok) {
      deadLetters.push(...fastDead);
      stateJson = final.json;
    } else {
      slow = true;
    }
  }
  if (slow) {
    // Step by step: find which event made the state unstorable by checking after each event,
    // and keep each state a trigger taking every change is owed. After the fast path, re-parse
    // the start state: a reducer that mutated it would otherwise poison this pass.
    if (!every) state = snapshot.stateJson !== undefined ? parseState(snapshot.stateJson) : view.initial();
    applied = 0;
    let json = snapshot.stateJson;
    let lastKept = snapshot.stateJson;
    // The states a write stores are bounded (MAX_ITEM_STATES_BYTES): a burst past it is split,
    // the rest deferred to a write after this one's changes are delivered. The first event of
    // a write applies (unless `deferWhenFull`), so every write makes progress.
    let bytes = every ? keptStatesBytes(snapshot) : 0;
    // `bytes` counts the kept states and the intermediates; the new state is added per check.
    for (let i = 0; i < fresh.length; i++) {
      const entry = fresh[i]!;
      const step = applyEvent(view, key, state, entry);
      if (!step.ok) {
        deadLetters.push(step.dead);
        continue;
      }
      // A deleted state (DELETE) has no JSON: nothing to check.
      const checked: { ok: true; json: string | undefined } | { ok: false; dead: PoisonDeadLetter } =
        step.state === DELETE ? { ok: true, json: undefined } : serialize(view, key, step.state, entry.record);
      if (!checked.ok) {
        deadLetters.push(checked.dead);
        state = json !== undefined ? parseState(json) : applied > 0 ? DELETE : view.initial();
        continue;
      }
      if (every) {
        // The state before this event is an intermediate one (unless it is the write's start or
        // equals the state kept before it): a trigger taking every change is owed it. A deleted
        // one too (kept as the absent marker).
        const keepPrevious = applied > 0 && json !== lastKept;
        const previousBytes = keepPrevious ? (json === undefined ? ABSENT_TAG.length + 8 : Buffer.byteLength(json)) : 0;
        // Nothing applied yet: defer only on request, when the item's own undelivered states
        // crowd it (the caller delivers them first, then folds again without deferring).
        const mayDefer = applied > 0 || (options.deferWhenFull === true && snapshot.pending !== undefined);
        if (mayDefer && bytes + previousBytes + (checked.json === undefined ? 0 : Buffer.byteLength(checked.json)) > MAX_ITEM_STATES_BYTES) {
          // With nothing applied there is no write: every event (poison included) goes again later.
          if (applied === 0) return none([], fresh);
          taken = i;
          break;
        }
        if (keepPrevious) {
          intermediates.push({ version: snapshot.version + applied, stateJson: json });
          bytes += previousBytes;
          lastKept = json;
        }
      }
      json = checked.json;
      state = step.state;
      applied += 1;
    }
    if (applied === 0) return none(deadLetters);
    stateJson = json;
  }
  // stateJson undefined from here on: the last applied event deleted the item.
  if (applied === 0) return none(deadLetters);
  const deleted = stateJson === undefined;
  const offsets: Record<string, string> = { ...snapshot.offsets };
  for (const entry of fresh.slice(0, taken)) {
    if (entry.via === undefined) offsets[offsetsKey(entry.record.topic, entry.record.partition)] = entry.record.offset;
    else {
      offsets[originKey(entry.record.topic, entry.record.partition)] = entry.record.offset;
      offsets[entry.via.partitionKey] = entry.via.offset;
    }
  }

  // One version per applied event: every state a trigger taking every change sees has its own.
  const version = snapshot.version + applied;
  const bookkeeping = writeBookkeeping(snapshot, { version, stateJson, intermediates }, triggers);
  const bounds = options.window ?? snapshot.window;
  if (view.window !== undefined && bounds === undefined) {
    throw new TypeError(`foldItem: view "${view.name}" is windowed, but no window was given for key "${key}"`);
  }
  const windowed =
    view.window !== undefined && bounds !== undefined ? windowAttributes(view, bounds, snapshot, fresh[0]!.record, deleted) : undefined;
  const now = options.now ?? new Date();
  const item: ViewItem = {
    ...viewItemKey(viewSegment(view.name, view.version), key, bounds),
    // The `byKey` index attributes never change for an item, so only its first write costs an index write.
    ...viewIndexKey(viewSegment(view.name, view.version), key, bounds),
    view: view.name,
    key,
    // Stored in the tagged form: a bigint is `{ $bigint: "<decimal>" }`, as in the cache's JSON.
    // A deleted item is a tombstone: no state (reads hide it), its offsets still fence the key.
    ...(stateJson !== undefined ? { state: JSON.parse(stateJson) } : {}),
    version,
    offsets,
    updatedAt: now.toISOString(),
    ...bookkeeping,
    ...windowed?.attributes,
    // An unwindowed tombstone expires after the view's deleteRetentionMs (a windowed one with its window).
    ...(deleted && windowed === undefined ? { ttl: Math.ceil((now.getTime() + view.deleteRetentionMs) / 1000) } : {}),
  };
  return {
    write: {
      item,
      expectedVersion: snapshot.version,
      snapshot: {
        version,
        stateJson,
        offsets,
        ...bookkeeping,
        ...(bounds !== undefined ? { window: bounds } : {}),
        ...(windowed?.closing !== undefined ? { closing: windowed.closing } : {}),
      },
    },
    applied,
    skipped,
    deadLetters,
    deferred: fresh.slice(taken),
  };
}

/**
 * The window attributes of a windowed item's write: bounds, expiry (end + retention), and for an
 * `emit: 'final'` view the closing index attributes. Those are set when the item is created
 * (shard: the partition of the record that created it) and kept on every later write; once the
 * final change is delivered they are removed, and no write can follow (the window is closed).
 */
export function windowAttributes(
  view: View<any, any>,
  bounds: WindowBounds,
  snapshot: ItemSnapshot,
  creator: SourceRecord,
  deleted = false,
): { attributes: Pick<ViewItem, 'windowStart' | 'windowEnd' | 'ttl' | 'closeShard' | 'closeAt'>; closing?: { shard: string; at: number } } {
  const window = view.window!;
  // The shard never changes; the close time follows the bounds (a session grows).
  // A deleted window owes no final result (its tombstone leaves the closing index); one
  // re-created after that is created again.
  const closing = deleted
    ? undefined
    : snapshot.closing !== undefined
      ? { shard: snapshot.closing.shard, at: closeTimeOf(window, bounds) }
      : window.emit === 'final' && snapshot.stateJson === undefined
        ? { shard: closeShardOf(viewSegment(view.name, view.version), creator.topic, creator.partition), at: closeTimeOf(window, bounds) }
        : undefined;
  return {
    attributes: {
      windowStart: bounds.start,
      windowEnd: bounds.end,
      ttl: windowTtlSeconds(window, bounds),
      ...(closing !== undefined ? { closeShard: closing.shard, closeAt: closing.at } : {}),
    },
    ...(closing !== undefined ? { closing } : {}),
  };
}
