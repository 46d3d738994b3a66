/**
 * Reading views from functions: typed point reads, batch reads, key-range queries with
 * pagination, and read-your-writes waits on the engine's checkpoints.
 *
 * Read-only; the table layout comes from `storage.ts`, which the engine writes through. A key
 * is one item collection (`pk = v#<view>#<key>`), so `get` / `getMany` address items directly;
 * listing keys goes through the `byKey` index, a scatter-gather over its
 * {@link VIEW_INDEX_SHARDS} shards per view merged in key order.
 */
import type { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import {
  GetCommand,
  QueryCommand,
  type DynamoDBDocumentClient,
} from '@aws-sdk/lib-dynamodb';
import type { App, View, ViewKey, WindowBounds, WindowDefinition } from './define.ts';
import { preview } from './define-fns.ts';
import { SdkError } from './errors.ts';
import { decodeState } from './exact-json.ts';
import { classifyAwsError } from './retry.ts';
import {
  batchGetItems,
  checkpointKey,
  createStorage,
  encodeWindowStart,
  INDEX_KEY_PREFIX,
  MAX_WINDOW_START_MS,
  VIEW_PK_PREFIX,
  VIEW_SK_UNWINDOWED,
  VIEW_SK_WINDOW_PREFIX,
  viewIndexPartition,
  viewIndexShard,
  viewItemKey,
  viewRegistryKey,
  viewSegment,
  viewKeyProblem,
  viewKeyProblemMessage,
  WINDOW_START_DIGITS,
  windowIndexPrefix,
  windowStartProblem,
  type ItemKey,
} from './storage.ts';
import { ENV, TABLE_INDEXES, VIEW_INDEX_SHARDS } from './contract.ts';

/** Page size of `query`: large enough to be efficient, small enough for a Lambda's memory. */
export const DEFAULT_QUERY_LIMIT = 100;
/** Largest `query` page; DynamoDB caps a response at 1 MB anyway. */
export const MAX_QUERY_LIMIT = 1_000;
/**
 * How long `waitFor` waits by default: an engine batch takes well under a second; ten seconds
 * covers a rebalance without leaving a request hanging for the rest of a Lambda's life.
 */
export const DEFAULT_WAIT_TIMEOUT_MS = 10_000;
/** First pause between two checkpoint polls; doubled each time up to the cap. */
const WAIT_INITIAL_INTERVAL_MS = 10;
/** Poll cap: at most five strongly consistent reads per second per waiting caller. */
const WAIT_MAX_INTERVAL_MS = 200;
/**
 * Extra index entries each shard is asked for in a page's first round, beyond twice its share:
 * covers the spread of a small page over 16 shards without a second round trip.
 */
const SHARD_SLACK = 8;
/** Windows per Query of `latestWindow` while it skips expired ones (normally the first is live). */
const LATEST_WINDOW_PAGE = 10;
/** BatchGetItem requests of one `query` page in flight at once (a page of 1,000 is 10 requests). */
const QUERY_BATCH_GET_CONCURRENCY = 4;

/** Only these attributes are read: trigger bookkeeping stays out of reads. */
const ITEM_PROJECTION = '#key, #state, #version, #offsets, #updatedAt, #windowStart, #windowEnd, #ttl';
const ITEM_NAMES = {
  '#key': 'key',
  '#state': 'state',
  '#version': 'version',
  '#offsets': 'offsets',
  '#updatedAt': 'updatedAt',
  '#windowStart': 'windowStart',
  '#windowEnd': 'windowEnd',
  '#ttl': 'ttl',
} as const;
/** The same, with the primary key, by which a batch read matches items to index entries. */
const ITEM_PROJECTION_WITH_KEYS = `#pk, #sk, ${ITEM_PROJECTION}`;
const ITEM_NAMES_WITH_KEYS = { ...ITEM_NAMES, '#pk': 'pk', '#sk': 'sk' };

/** Options of {@link createViewReader}. */
export interface ViewReaderOptions {
  /**
   * DynamoDB client to read with.
   * @default a client built from the standard AWS environment (`AWS_REGION`, `AWS_ENDPOINT_URL_DYNAMODB`
   * or `AWS_ENDPOINT_URL`, credentials chain)
   */
  readonly dynamodb?: DynamoDBClient;
  /**
   * Views table name.
   * @default process.env[ENV.table] (the reader fails with `CONFIG_MISSING` when neither is set)
   */
  readonly tableName?: string;
  /**
   * How long the reader keeps the live version of a view (the alias in the view's registry item,
   * which the engine flips when a rebuilt version takes over) before reading it again. A read
   * within this time after a swap still reads the previous version, whole; the engine keeps a
   * replaced version's items well past it.
   * @default {@link DEFAULT_ALIAS_CACHE_MS}
   */
  readonly aliasCacheMs?: number;
}

/** How long a reader keeps a view's live version before reading the alias again (ms). */
export const DEFAULT_ALIAS_CACHE_MS = 5_000;

/** One view item as read: the state of a key plus the bookkeeping that says how fresh it is. */
export interface ViewSnapshot<S> {
  /** The view key, as a string (numbers in decimal form). */
  readonly key: string;
  readonly state: S;
  /** Item version, +1 per engine write. */
  readonly version: number;
  /** Last applied offset per source partition, e.g. `{ "bookings/0": "1841" }`. */
  readonly offsets: Readonly<Record<string, string>>;
  /** When the engine last wrote the item, ISO-8601. */
  readonly updatedAt: string;
}

/** Options of {@link ViewReader.get} and {@link ViewReader.getMany}. */
export interface ViewGetOptions {
  /**
   * Strongly consistent read: sees every write acknowledged before it (use after `waitFor`).
   * @default false (eventually consistent; half the read cost)
   */
  readonly consistent?: boolean;
}

/** Keys selected by {@link ViewReader.query}: every key starting with `prefix`, or a range. */
export type ViewKeyRange =
  | { readonly prefix: string }
  /** Inclusive bounds; either may be left out. Keys compare as strings (so "10" < "9"). */
  | { readonly from?: ViewKey; readonly to?: ViewKey };

/** Options of {@link ViewReader.query}. */
export interface ViewQueryOptions {
  /**
   * Most items per page.
   * @default 100 ({@link DEFAULT_QUERY_LIMIT}); at most 1000
   */
  readonly limit?: number;
  /**
   * `cursor` of the previous page, to read the next one.
   * @default the first page
   */
  readonly cursor?: string;
  /**
   * Strongly consistent reads of the items found. The index that finds them is always
   * eventually consistent: a key created a moment ago may be missing from a page.
   * @default false
   */
  readonly consistent?: boolean;
  /**
   * Key order.
   * @default 'asc'
   */
  readonly order?: 'asc' | 'desc';
}

/** One page of {@link ViewReader.query}. */
export interface ViewQueryPage<S> {
  readonly items: ViewSnapshot<S>[];
  /** Pass it as `cursor` to read the next page; undefined on the last page. */
  readonly cursor: string | undefined;
}

/** One window of one key of a windowed view, as read: the window's state and its bounds. */
export interface WindowSnapshot<S> extends ViewSnapshot<S> {
  /** The window: epoch ms, `start` inclusive, `end` exclusive. */
  readonly window: WindowBounds;
}

/** Options of {@link ViewReader.windows}. */
export interface ViewWindowsOptions {
  /**
   * Earliest window start, epoch ms, inclusive.
   * @default 0 (every retained window)
   */
  readonly from?: number;
  /**
   * Window starts before this, epoch ms, exclusive (as a window's `end`).
   * @default no upper bound
   */
  readonly to?: number;
  /**
   * Most windows per page.
   * @default 100 ({@link DEFAULT_QUERY_LIMIT}); at most 1000
   */
  readonly limit?: number;
  /** `cursor` of the previous page, to read the next one. */
  readonly cursor?: string;
  /**
   * Time order of the windows.
   * @default 'asc'
   */
  readonly order?: 'asc' | 'desc';
  /** @default false */
  readonly consistent?: boolean;
}

/** What a windowed read says about retention when its range reaches past it. */
export interface WindowRetention {
  /** The view's `window.retentionMs`. */
  readonly retentionMs: number;
  /**
   * Now minus `retentionMs`: every window that ended at or before this instant (epoch ms) has
   * expired and is never returned, even while DynamoDB has not yet deleted its item.
   */
  readonly expiredBefore: number;
}

/** One page of {@link ViewReader.windows}. */
export interface WindowsPage<S> {
  /** The key's windows in the range, in time order. */
  readonly items: WindowSnapshot<S>[];
  /** Pass it as `cursor` to read the next page; undefined on the last page. */
  readonly cursor: string | undefined;
  /**
   * Set when the range starts before retained data does (`from` < `expiredBefore`): windows
   * that ended before `expiredBefore` are gone, so the page is not the whole range.
   */
  readonly retention?: WindowRetention;
}

/** Options of {@link ViewReader.windowsAt}. */
export interface ViewWindowsAtOptions {
  /**
   * Only keys starting with this.
   * @default every key
   */
  readonly prefix?: string;
  /**
   * Most keys per page.
   * @default 100 ({@link DEFAULT_QUERY_LIMIT}); at most 1000
   */
  readonly limit?: number;
  /** `cursor` of the previous page, to read the next one. */
  readonly cursor?: string;
  /**
   * Key order.
   * @default 'asc'
   */
  readonly order?: 'asc' | 'desc';
  /** Strongly consistent reads of the items found (the index itself is eventually consistent). @default false */
  readonly consistent?: boolean;
}

/** One page of {@link ViewReader.windowsAt}: one window's keys, in key order. */
export interface WindowsAtPage<S> {
  readonly items: WindowSnapshot<S>[];
  /** Pass it as `cursor` to read the next page; undefined on the last page. */
  readonly cursor: string | undefined;
}

/** A position in a source topic, e.g. from a producer's send result. */
export interface SourcePosition {
  readonly topic: string;
  readonly partition: number;
  /** Offset of the record written (decimal string, number or bigint). */
  readonly offset: string | number | bigint;
}

/** Options of {@link ViewReader.waitFor}. */
export interface ViewWaitOptions {
  /**
   * Give up (with `VIEW_NOT_CAUGHT_UP`) after this long.
   * @default 10_000 ({@link DEFAULT_WAIT_TIMEOUT_MS})
   */
  readonly timeoutMs?: number;
}

/** Reads views of one app's table. Create it once per process (e.g. outside a Lambda handler). */
/** One version of a view's definition as the table records it ({@link ViewInfo}). */
export interface ViewVersionInfo {
  /** When the engine first saw this version (ISO). */
  readonly recordedAt: string;
  /**
   * Where this version's history starts, per source partition (partition → first offset), when
   * it was built with `backfill: 'retained'` from a topic whose early records were gone; absent
   * when it holds every record of its source.
   */
  readonly retainedFrom?: Readonly<Record<string, string>>;
  /** When this version's items were deleted after another version replaced it (ISO). */
  readonly removedAt?: string;
}

/** What the table records of a view's versions ({@link ViewReader.viewInfo}). */
export interface ViewInfo {
  readonly view: string;
  /** The version reads resolve to (the alias): 1 until a build swapped another one in. */
  readonly live: number;
  /** When the alias last flipped (ISO); absent while it never did. */
  readonly swappedAt?: string;
  /** The live version's `retainedFrom`: absent when it holds the source's whole history. */
  readonly retainedFrom?: Readonly<Record<string, string>>;
  /** Every version deployed on the table, by number. */
  readonly versions: Readonly<Record<number, ViewVersionInfo>>;
}

export interface ViewReader {
  /** The table read. */
  readonly tableName: string;
  /**
   * What the table records of a view's versions: the live one, whether it was built from part of
   * its source's history (`retainedFrom`, `backfill: 'retained'`), and every deployed version.
   * Undefined when no engine has run the view on this table. One consistent GetItem.
   */
  viewInfo(view: View<any, any>): Promise<ViewInfo | undefined>;
  /** The item of `key`, or undefined when no event has reached that key yet. */
  get<S>(view: View<any, S>, key: ViewKey, options?: ViewGetOptions): Promise<ViewSnapshot<S> | undefined>;
  /** The state of `key`, or `view.initial()` when no event has reached it yet. */
  getState<S>(view: View<any, S>, key: ViewKey, options?: ViewGetOptions): Promise<S>;
  /** Items of many keys (any number; duplicates allowed), aligned with `keys`; undefined where missing. */
  getMany<S>(view: View<any, S>, keys: readonly ViewKey[], options?: ViewGetOptions): Promise<(ViewSnapshot<S> | undefined)[]>;
  /**
   * One page of the items whose keys match `range`, in key order (DynamoDB's: UTF-8 bytes).
   * A scatter-gather: one Query per `byKey` index shard (16), merged in key order, then a
   * BatchGetItem of the page's items (strongly consistent with `consistent: true`). The index
   * is eventually consistent, so a key whose first event was applied a moment ago may be
   * missing for a short while (typically well under a second); an existing key's state is
   * always read from its item, never from the index.
   */
  query<S>(view: View<any, S>, range?: ViewKeyRange, options?: ViewQueryOptions): Promise<ViewQueryPage<S>>;
  /**
   * One window of `key` in a windowed view, by its start (epoch ms), or undefined when no event
   * reached it. A window past the view's retention (`window.retentionMs` after its end) rejects
   * with `WINDOW_EXPIRED` instead of reading as missing, also while DynamoDB (which deletes
   * expired items lazily, up to days later) still holds its item.
   */
  window<S>(view: View<any, S>, key: ViewKey, windowStart: number, options?: ViewGetOptions): Promise<WindowSnapshot<S> | undefined>;
  /**
   * The windows of `key` whose start is in `[from, to)`, in time order, paginated: one Query
   * on the key's item collection. Expired windows are never returned; when the range reaches
   * past retention the page says so in `retention`.
   */
  windows<S>(view: View<any, S>, key: ViewKey, options?: ViewWindowsOptions): Promise<WindowsPage<S>>;
  /** The newest retained window of `key` (the one with the latest start), or undefined. */
  latestWindow<S>(view: View<any, S>, key: ViewKey, options?: ViewGetOptions): Promise<WindowSnapshot<S> | undefined>;
  /**
   * Every key's item of one window (by start), in key order, paginated: a scatter-gather over
   * the `byKey` index like `query` (eventually consistent, 16 Queries per page). A window past
   * retention rejects with `WINDOW_EXPIRED`.
   */
  windowsAt<S>(view: View<any, S>, windowStart: number, options?: ViewWindowsAtOptions): Promise<WindowsAtPage<S>>;
  /**
   * Waits until the engine has made every record up to `position` durable in the views of the
   * table (its checkpoint for that partition is past `position.offset`). Then a `consistent`
   * read sees the record's effect. Rejects with `VIEW_NOT_CAUGHT_UP` at the deadline.
   */
  waitFor(target: View<any, any> | App, position: SourcePosition, options?: ViewWaitOptions): Promise<void>;
}

function requireKey(view: View<any, any>, key: unknown): string {
  const problem = viewKeyProblem(key);
  if (problem === undefined) return String(key);
  throw new SdkError('INVALID_ARGUMENT', `view "${view.name}": key is ${viewKeyProblemMessage(key, problem)}`, {
    context: { view: view.name, key: problem === 'too-long' ? preview(key) : String(key) },
  });
}

function requireView(view: unknown, method: string): asserts view is View<any, any> {
  if (!view || (view as View).kind !== 'view') {
    throw new SdkError('INVALID_ARGUMENT', `${method}: expected a view from defineView(), received ${preview(view)}`);
  }
}

function readFailed(error: unknown, what: string, context: Record<string, unknown>): SdkError {
  if (error instanceof SdkError) return error;
  const name = (error as { name?: string })?.name ?? 'Error';
  const message = error instanceof Error ? error.message : String(error);
  const hint =
    name === 'ResourceNotFoundException'
      ? `; check that table "${String(context.table)}" exists in this region (TRIBUTARY_TABLE, AWS_REGION)`
      : '';
  const { retriable } = classifyAwsError(error);
  return new SdkError('READ_FAILED', `${what} failed: ${name}: ${message}${hint}`, {
    retriable,
    context,
    cause: error,
  });
}

/** How a window definition reads in messages, e.g. "tumbling windows of 86400000 ms". */
function describeWindow(window: WindowDefinition): string {
  if (window.kind === 'session') return `session windows (gap ${window.gapMs} ms)`;
  if (window.kind === 'hopping') return `hopping windows of ${window.sizeMs} ms every ${window.advanceMs} ms`;
  return `tumbling windows of ${window.sizeMs} ms`;
}

/** `get`, `getMany` and `query` read one item per key: a windowed view has one per window. */
function requireUnwindowed(view: View<any, any>, method: string): void {
  if (view.window === undefined) return;
  throw new SdkError(
    'INVALID_ARGUMENT',
    `view "${view.name}" has ${describeWindow(view.window)}, so ${method}() cannot read it (a key has one item per window); use window(view, key, windowStart) for one window, windows(view, key, { from, to }) for a key's windows in time order, latestWindow(view, key) for the newest, or windowsAt(view, windowStart) for every key of one window`,
    { context: { view: view.name } },
  );
}

/** The window of a view read by a window method, or the error naming the methods that fit. */
function requireWindowed(view: View<any, any>, method: string): WindowDefinition {
  if (view.window !== undefined) return view.window;
  throw new SdkError(
    'INVALID_ARGUMENT',
    `view "${view.name}" has no window, so ${method}() cannot read it; use get(view, key) or getMany(view, keys) for keys and query(view, range) to list them (or give the view a window in defineView)`,
    { context: { view: view.name } },
  );
}

/** A window bound argument: finite, non-negative integer epoch ms that the layout can hold. */
function requireTime(view: View<any, any>, method: string, name: string, value: unknown): number {
  const problem = windowStartProblem(value);
  if (problem === undefined) return value as number;
  throw new SdkError('INVALID_ARGUMENT', `view "${view.name}": ${method} ${name} ${problem}`, {
    context: { view: view.name, [name]: String(value) },
  });
}

/**
 * Whether a stored item is still live: DynamoDB deletes an item past its `ttl` lazily (up to
 * days later), so a read must not take its existence as liveness.
 */
function isLive(raw: Record<string, unknown>, nowMs: number): boolean {
  return typeof raw.ttl !== 'number' || raw.ttl * 1000 > nowMs;
}

/**
 * Whether a stored item is a tombstone: its reducer deleted it (DELETE), so it has no state and
 * reads as no item; the engine keeps it only as the key's exactly-once fence.
 */
function isTombstone(raw: Record<string, unknown>): boolean {
  return raw.state === undefined;
}

/** The shortest window that can start at a given time: its length bounds when it expires. */
function shortestWindowMs(window: WindowDefinition): number {
  return window.kind === 'session' ? window.gapMs : window.sizeMs;
}

/** The retention horizon of a windowed view now. */
function retentionAt(window: WindowDefinition, nowMs: number): WindowRetention {
  return { retentionMs: window.retentionMs, expiredBefore: nowMs - window.retentionMs };
}

function windowExpired(view: View<any, any>, window: WindowDefinition, start: number, key: string | undefined, nowMs: number): SdkError {
  const { expiredBefore } = retentionAt(window, nowMs);
  const which = key === undefined ? 'window' : `window of key ${preview(key)}`;
  return new SdkError(
    'WINDOW_EXPIRED',
    `view "${view.name}": the ${which} starting ${new Date(start).toISOString()} (${start}) is past the view's retention: windows are kept ${window.retentionMs} ms (retentionMs) after they end, so every window that ended before ${new Date(expiredBefore).toISOString()} has expired; read a later window, or raise the view's window retentionMs to keep windows longer (it applies to windows written after the change)`,
    { context: { view: view.name, ...(key === undefined ? {} : { key }), windowStart: start, retentionMs: window.retentionMs, expiredBefore } },
  );
}

function toWindowItem<S>(raw: Record<string, any>): WindowSnapshot<S> {
  return { ...toItem<S>(raw), window: { start: Number(raw.windowStart), end: Number(raw.windowEnd) } };
}

/** Cursor of `windows()`: the view, the read, and the sort key of the last window returned. */
function encodeWindowsCursor(view: string, query: string, sk: string): string {
  return Buffer.from(JSON.stringify({ v: view, q: query, k: sk }), 'utf8').toString('base64url');
}

const WINDOW_SK = new RegExp(`^${VIEW_SK_WINDOW_PREFIX}\\d{${WINDOW_START_DIGITS}}$`);

function decodeWindowsCursor(view: string, query: string, cursor: unknown): string {
  if (typeof cursor === 'string') {
    try {
      const decoded = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8')) as { v?: unknown; q?: unknown; k?: unknown };
      if (decoded.v === view && decoded.q === query && typeof decoded.k === 'string' && WINDOW_SK.test(decoded.k)) return decoded.k;
    } catch {
      // fall through to the error below
    }
  }
  throw badCursor(view, 'windows', cursor);
}

function toItem<S>(raw: Record<string, any>): ViewSnapshot<S> {
  return {
    key: String(raw.key),
    state: decodeState<S>(raw.state),
    version: Number(raw.version ?? 0),
    offsets: (raw.offsets ?? {}) as Record<string, string>,
    updatedAt: String(raw.updatedAt ?? ''),
  };
}

/**
 * DynamoDB's order of string keys: by UTF-8 bytes, i.e. by code point. JavaScript's `<` compares
 * UTF-16 code units, which differs for characters past U+FFFF against U+E000–U+FFFF, so merged
 * shards must compare this way to come out in the order each shard returns.
 */
export function compareKeys(a: string, b: string): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const x = a.charCodeAt(i);
    const y = b.charCodeAt(i);
    if (x === y) continue;
    // Surrogates (U+D800–U+DFFF) stand for code points past U+FFFF: above every other unit.
    const xs = x >= 0xd800 && x <= 0xdfff;
    const ys = y >= 0xd800 && y <= 0xdfff;
    if (xs !== ys) return xs ? 1 : -1;
    return x - y;
  }
  return a.length - b.length;
}

/** One `byKey` index entry: the table keys of an item and its index sort key. */
interface IndexEntry {
  readonly pk: string;
  readonly sk: string;
  readonly ixKey: string;
}

/**
 * Position of a scatter-gather in one shard: `null` = from the start, `1` = exhausted, or the
 * `ixKey` of the last entry read from it (the next page reads after it).
 */
type ShardPosition = string | 1 | null;

/** A scatter-gather cursor: whose reads it continues, and where each shard stands. */
interface ScatterCursor {
  /** View name. */
  readonly v: string;
  /** Which read: the method and its selection, so a cursor cannot continue another read. */
  readonly q: string;
  /** One position per shard. */
  readonly s: readonly ShardPosition[];
}

function badCursor(view: string, method: string, cursor: unknown): SdkError {
  return new SdkError(
    'INVALID_ARGUMENT',
    `view "${view}": cursor ${preview(cursor)} is not a cursor returned by ${method}() on this view with the same selection and order; pass the cursor of the previous page unchanged, with the same arguments`,
    { context: { view } },
  );
}

function encodeCursor(cursor: ScatterCursor): string {
  return Buffer.from(JSON.stringify(cursor), 'utf8').toString('base64url');
}

/**
 * Decodes and checks a cursor: it belongs to this view and this read, and every shard position
 * names a key of its own shard (so a hand-edited cursor cannot skip or repeat keys silently).
 */
function decodeCursor(view: string, method: string, query: string, cursor: unknown, shardOf: (ixKey: string) => number | undefined): ShardPosition[] {
  if (typeof cursor !== 'string') throw badCursor(view, method, cursor);
  let decoded: Partial<ScatterCursor>;
  try {
    decoded = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8')) as Partial<ScatterCursor>;
  } catch {
    throw badCursor(view, method, cursor);
  }
  const positions = decoded?.s;
  if (
    decoded?.v !== view ||
    decoded.q !== query ||
    !Array.isArray(positions) ||
    positions.length !== VIEW_INDEX_SHARDS ||
    !positions.every((p, shard) => p === null || p === 1 || (typeof p === 'string' && shardOf(p) === shard))
  ) {
    throw badCursor(view, method, cursor);
  }
  return positions as ShardPosition[];
}

/** The key part of an `ixKey`: what follows `k#`, or `w#<pad15(start)>#`. */
function keyOfIndexKey(ixKey: string, windowed: boolean): string | undefined {
  if (!windowed) return ixKey.startsWith(INDEX_KEY_PREFIX) ? ixKey.slice(INDEX_KEY_PREFIX.length) : undefined;
  const prefixLength = VIEW_SK_WINDOW_PREFIX.length + WINDOW_START_DIGITS + 1;
  if (ixKey.length < prefixLength || !ixKey.startsWith(VIEW_SK_WINDOW_PREFIX) || ixKey[prefixLength - 1] !== '#') return undefined;
  return ixKey.slice(prefixLength);
}

/** The full index key of an entry (index and table keys), as `ExclusiveStartKey` wants it. */
function indexStartKey(view: string, shard: number, ixKey: string, windowed: boolean): Record<string, string> {
  const key = keyOfIndexKey(ixKey, windowed)!;
  const sk = windowed ? ixKey.slice(0, VIEW_SK_WINDOW_PREFIX.length + WINDOW_START_DIGITS) : VIEW_SK_UNWINDOWED;
  return { ixShard: viewIndexPartition(view, shard), ixKey, pk: `${VIEW_PK_PREFIX}${view}#${key}`, sk };
}

/** One scatter-gather over a view's `byKey` shards. */
interface ScatterRead {
  readonly view: string;
  /** The public method, for error messages. */
  readonly method: string;
  /** The method and its selection, bound into the cursor. */
  readonly query: string;
  /** Condition on `#ixKey` (`:…` values in `values`), or undefined for every entry of the shard. */
  readonly condition: string | undefined;
  readonly values: Readonly<Record<string, unknown>>;
  /** Whether `ixKey` values are `w#<start>#<key>`. */
  readonly windowed: boolean;
  readonly order: 'asc' | 'desc';
  readonly limit: number;
  readonly cursor: string | undefined;
}

/** Shard state while merging: entries read and not yet taken, and where the next Query starts. */
interface ShardState {
  readonly shard: number;
  buffer: IndexEntry[];
  /** ExclusiveStartKey of the next Query; undefined with `more` false = exhausted. */
  next: Record<string, unknown> | undefined;
  more: boolean;
  position: ShardPosition;
}

/**
 * Reads one page of index entries: one Query per shard not yet exhausted (in parallel, each for
 * about twice its share of the page), merged in key order; a shard that runs dry before the page
 * is full is asked again for the rest, so the merge never passes a key a shard has not yet
 * returned. The cursor holds every shard's position; there is none once every shard is exhausted.
 */
async function scatterGather(
  documents: DynamoDBDocumentClient,
  table: string,
  read: ScatterRead,
): Promise<{ entries: IndexEntry[]; cursor: string | undefined }> {
  const { view, windowed } = read;
  const shardOf = (ixKey: string): number | undefined => {
    const key = keyOfIndexKey(ixKey, windowed);
    return key === undefined ? undefined : viewIndexShard(key);
  };
  const start: ShardPosition[] =
    read.cursor === undefined
      ? Array.from({ length: VIEW_INDEX_SHARDS }, () => null)
      : decodeCursor(view, read.method, read.query, read.cursor, shardOf);
  const shards: ShardState[] = start.map((position, shard) => ({
    shard,
    buffer: [],
    next: typeof position === 'string' ? indexStartKey(view, shard, position, windowed) : undefined,
    more: position !== 1,
    position,
  }));
  const byKey = TABLE_INDEXES.byKey;
  const fetch = async (state: ShardState, limit: number): Promise<void> => {
    const out = await documents.send(
      new QueryCommand({
        TableName: table,
        IndexName: byKey.indexName,
        KeyConditionExpression: read.condition === undefined ? '#ixShard = :shard' : `#ixShard = :shard AND ${read.condition}`,
        ExpressionAttributeNames: read.condition === undefined ? { '#ixShard': byKey.partitionKey.name } : { '#ixShard': byKey.partitionKey.name, '#ixKey': byKey.sortKey.name },
        ExpressionAttributeValues: { ...read.values, ':shard': viewIndexPartition(view, state.shard) },
        ScanIndexForward: read.order === 'asc',
        Limit: limit,
        ExclusiveStartKey: state.next,
      }),
    );
    for (const raw of out.Items ?? []) state.buffer.push({ pk: String(raw.pk), sk: String(raw.sk), ixKey: String(raw.ixKey) });
    state.next = out.LastEvaluatedKey;
    state.more = out.LastEvaluatedKey !== undefined;
  };
  const sign = read.order === 'asc' ? 1 : -1;
  const entries: IndexEntry[] = [];
  let round = 0;
  while (entries.length < read.limit) {
    const dry = shards.filter((state) => state.buffer.length === 0 && state.more);
    if (dry.length > 0) {
      const remaining = read.limit - entries.length;
      // First round: about twice a shard's share of the page (keys spread evenly by hash), so
      // the index entries read stay near the page size; a shard that runs dry is asked for the rest.
      const limit = round === 0 ? Math.min(remaining, 2 * Math.ceil(remaining / VIEW_INDEX_SHARDS) + SHARD_SLACK) : remaining;
      await Promise.all(dry.map((state) => fetch(state, limit)));
      round += 1;
      continue;
    }
    let best: ShardState | undefined;
    for (const state of shards) {
      if (state.buffer.length === 0) continue;
      if (best === undefined || sign * compareKeys(state.buffer[0]!.ixKey, best.buffer[0]!.ixKey) < 0) best = state;
    }
    if (best === undefined) break;
    const entry = best.buffer.shift()!;
    best.position = entry.ixKey;
    entries.push(entry);
  }
  const positions = shards.map((state) => (state.buffer.length === 0 && !state.more ? 1 : state.position));
  const done = positions.every((position) => position === 1);
  return { entries, cursor: done ? undefined : encodeCursor({ v: view, q: read.query, s: positions }) };
}

function parseOffset(value: unknown): bigint | undefined {
  if (typeof value === 'bigint') return value;
  if (typeof value === 'number' && Number.isInteger(value)) return BigInt(value);
  if (typeof value === 'string' && /^-?\d+$/.test(value)) return BigInt(value);
  return undefined;
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/**
 * Creates a reader of the views in one app's table.
 *
 * @example
 * import { createViewReader } from '../sdk/index.ts';
 * import { classAttendance } from './views.ts';
 *
 * const views = createViewReader(); // TRIBUTARY_TABLE + the standard AWS environment
 * export const handler = async (event: { classId: string }) => {
 *   const item = await views.get(classAttendance, event.classId);
 *   return item ? { booked: item.state.booked, capacity: item.state.capacity } : { booked: 0 };
 * };
 */
export function createViewReader(options: ViewReaderOptions = {}): ViewReader {
  const tableName = options.tableName ?? process.env[ENV.table];
  if (typeof tableName !== 'string' || tableName.length < 3) {
    throw new SdkError(
      'CONFIG_MISSING',
      `createViewReader: no views table name (tableName option: ${preview(options.tableName)}, TRIBUTARY_TABLE: ${preview(process.env[ENV.table])}); set TRIBUTARY_TABLE or pass { tableName }`,
    );
  }
  const documents = createStorage({ dynamodb: options.dynamodb, tableName }).documentClient;
  const table = tableName;
  const aliasCacheMs = options.aliasCacheMs ?? DEFAULT_ALIAS_CACHE_MS;
  if (!Number.isInteger(aliasCacheMs) || aliasCacheMs < 0) {
    throw new SdkError('INVALID_ARGUMENT', `createViewReader: aliasCacheMs must be a non-negative integer of ms, received ${preview(options.aliasCacheMs)}`);
  }
  const aliases = new Map<string, { segment: string; untilMs: number }>();

  /**
   * The view segment a read goes to: the one its cursor was bound to (a paged read stays on the
   * version it started on), else the live version the view's alias names (version 1 while the
   * view has no alias: a table from before versions, or a view never rebuilt).
   */
  async function segmentOf(view: View<any, any>, cursor?: unknown, method?: string): Promise<string> {
    if (cursor !== undefined) {
      try {
        const bound = typeof cursor === 'string' ? (JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8')) as { v?: unknown }).v : undefined;
        if (typeof bound === 'string' && (bound === view.name || new RegExp(`^${view.name}@[1-9]\\d*$`).test(bound))) return bound;
      } catch {
        // not a cursor of ours: refused below
      }
      throw badCursor(view.name, method ?? 'query', cursor);
    }
    const cached = aliases.get(view.name);
    const now = Date.now();
    if (cached !== undefined && cached.untilMs > now) return cached.segment;
    let live: unknown;
    try {
      const out = await documents.send(
        new GetCommand({ TableName: table, Key: viewRegistryKey(view.name), ConsistentRead: true, ProjectionExpression: '#live', ExpressionAttributeNames: { '#live': 'live' } }),
      );
      live = out.Item?.live;
    } catch (error) {
      throw readFailed(error, `view "${view.name}": reading its live version`, { view: view.name, table });
    }
    const segment = viewSegment(view.name, typeof live === 'number' && Number.isInteger(live) && live > 0 ? live : 1);
    aliases.set(view.name, { segment, untilMs: now + aliasCacheMs });
    return segment;
  }

  async function get<S>(view: View<any, S>, key: ViewKey, opts: ViewGetOptions = {}): Promise<ViewSnapshot<S> | undefined> {
    requireView(view, 'get');
    requireUnwindowed(view, 'get');
    const k = requireKey(view, key);
    const segment = await segmentOf(view);
    try {
      const out = await documents.send(
        new GetCommand({
          TableName: table,
          Key: viewItemKey(segment, k),
          ConsistentRead: opts.consistent === true,
          ProjectionExpression: ITEM_PROJECTION,
          ExpressionAttributeNames: ITEM_NAMES,
        }),
      );
      return out.Item && !isTombstone(out.Item) ? toItem<S>(out.Item) : undefined;
    } catch (error) {
      throw readFailed(error, `view "${view.name}": get of key ${preview(k)}`, { view: view.name, key: k, table });
    }
  }

  /** The items of `keys` (distinct), keyed `pk + "\n" + sk`. */
  async function readItems(keys: readonly ItemKey[], consistent: boolean): Promise<Map<string, Record<string, unknown>>> {
    return batchGetItems(documents, table, keys, {
      consistent,
      projection: { expression: ITEM_PROJECTION_WITH_KEYS, names: ITEM_NAMES_WITH_KEYS },
      concurrency: QUERY_BATCH_GET_CONCURRENCY,
    });
  }

  async function getMany<S>(
    view: View<any, S>,
    keys: readonly ViewKey[],
    opts: ViewGetOptions = {},
  ): Promise<(ViewSnapshot<S> | undefined)[]> {
    requireView(view, 'getMany');
    requireUnwindowed(view, 'getMany');
    if (!Array.isArray(keys)) {
      throw new SdkError('INVALID_ARGUMENT', `view "${view.name}": getMany keys must be an array, received ${preview(keys)}`, {
        context: { view: view.name },
      });
    }
    const asStrings = keys.map((key) => requireKey(view, key));
    const distinct = [...new Set(asStrings)];
    const found = new Map<string, ViewSnapshot<S>>();
    let items: Map<string, Record<string, unknown>>;
    try {
      const segment = await segmentOf(view);
      items = await readItems(distinct.map((k) => viewItemKey(segment, k)), opts.consistent === true);
    } catch (error) {
      throw readFailed(error, `view "${view.name}": getMany of ${distinct.length} keys`, { view: view.name, table });
    }
    for (const raw of items.values()) {
      if (isTombstone(raw)) continue;
      const item = toItem<S>(raw);
      found.set(item.key, item);
    }
    return asStrings.map((k) => found.get(k));
  }

  function pageOptions(view: View<any, any>, method: string, opts: { limit?: number; order?: unknown }): { limit: number; order: 'asc' | 'desc' } {
    const context = { view: view.name, table };
    const limit = opts.limit ?? DEFAULT_QUERY_LIMIT;
    if (!Number.isInteger(limit) || limit < 1 || limit > MAX_QUERY_LIMIT) {
      throw new SdkError(
        'INVALID_ARGUMENT',
        `view "${view.name}": ${method} limit must be an integer from 1 to ${MAX_QUERY_LIMIT}, received ${preview(limit)}`,
        { context },
      );
    }
    const order = opts.order ?? 'asc';
    if (order !== 'asc' && order !== 'desc') {
      throw new SdkError('INVALID_ARGUMENT', `view "${view.name}": ${method} order must be "asc" or "desc", received ${preview(order)}`, {
        context,
      });
    }
    return { limit, order };
  }

  async function query<S>(view: View<any, S>, range: ViewKeyRange = { prefix: '' }, opts: ViewQueryOptions = {}): Promise<ViewQueryPage<S>> {
    requireView(view, 'query');
    requireUnwindowed(view, 'query');
    const context = { view: view.name, table };
    const { limit, order } = pageOptions(view, 'query', opts);
    const values: Record<string, unknown> = {};
    let condition: string | undefined;
    let selection: unknown;
    if (range && typeof range === 'object' && 'prefix' in range) {
      if (typeof range.prefix !== 'string') {
        throw new SdkError('INVALID_ARGUMENT', `view "${view.name}": query prefix must be a string, received ${preview(range.prefix)}`, {
          context,
        });
      }
      condition = 'begins_with(#ixKey, :prefix)';
      values[':prefix'] = INDEX_KEY_PREFIX + range.prefix;
      selection = { p: range.prefix };
    } else if (range && typeof range === 'object') {
      const from = range.from === undefined ? undefined : requireKey(view, range.from);
      const to = range.to === undefined ? undefined : requireKey(view, range.to);
      if (from !== undefined && to !== undefined) {
        if (compareKeys(from, to) > 0) {
          throw new SdkError(
            'INVALID_ARGUMENT',
            `view "${view.name}": query range from ${preview(from)} sorts after to ${preview(to)} (keys compare as strings); swap them or use order: 'desc'`,
            { context },
          );
        }
        condition = '#ixKey BETWEEN :from AND :to';
        values[':from'] = INDEX_KEY_PREFIX + from;
        values[':to'] = INDEX_KEY_PREFIX + to;
      } else if (from !== undefined) {
        condition = '#ixKey >= :from';
        values[':from'] = INDEX_KEY_PREFIX + from;
      } else if (to !== undefined) {
        // Every ixKey of the shard starts with k#, so the lower bound selects nothing less.
        condition = '#ixKey BETWEEN :prefix AND :to';
        values[':prefix'] = INDEX_KEY_PREFIX;
        values[':to'] = INDEX_KEY_PREFIX + to;
      }
      selection = { f: from ?? null, t: to ?? null };
    } else {
      throw new SdkError(
        'INVALID_ARGUMENT',
        `view "${view.name}": query range must be { prefix } or { from?, to? }, received ${preview(range)}`,
        { context },
      );
    }
    const read: ScatterRead = {
      view: await segmentOf(view, opts.cursor, 'query'),
      method: 'query',
      query: JSON.stringify(['query', order, selection]),
      condition,
      values,
      windowed: false,
      order,
      limit,
      cursor: opts.cursor,
    };
    try {
      const { entries, cursor } = await scatterGather(documents, table, read);
      const items = await readItems(entries, opts.consistent === true);
      const found: ViewSnapshot<S>[] = [];
      for (const entry of entries) {
        const raw = items.get(`${entry.pk}\n${entry.sk}`);
        if (raw !== undefined && !isTombstone(raw)) found.push(toItem<S>(raw));
      }
      return { items: found, cursor };
    } catch (error) {
      throw readFailed(error, `view "${view.name}": query`, context);
    }
  }

  async function window<S>(view: View<any, S>, key: ViewKey, windowStart: number, opts: ViewGetOptions = {}): Promise<WindowSnapshot<S> | undefined> {
    requireView(view, 'window');
    const definition = requireWindowed(view, 'window');
    const k = requireKey(view, key);
    const start = requireTime(view, 'window', 'windowStart', windowStart);
    let raw: Record<string, unknown> | undefined;
    try {
      const out = await documents.send(
        new GetCommand({
          TableName: table,
          Key: viewItemKey(await segmentOf(view), k, start),
          ConsistentRead: opts.consistent === true,
          ProjectionExpression: ITEM_PROJECTION,
          ExpressionAttributeNames: ITEM_NAMES,
        }),
      );
      raw = out.Item;
    } catch (error) {
      throw readFailed(error, `view "${view.name}": window ${start} of key ${preview(k)}`, { view: view.name, key: k, windowStart: start, table });
    }
    const now = Date.now();
    if (raw !== undefined) {
      if (isLive(raw, now)) return isTombstone(raw) ? undefined : toWindowItem<S>(raw);
      throw windowExpired(view, definition, start, k, now);
    }
    // No item: if even the shortest window starting there has expired, say so rather than "no events".
    if (start + shortestWindowMs(definition) <= retentionAt(definition, now).expiredBefore) {
      throw windowExpired(view, definition, start, k, now);
    }
    return undefined;
  }

  async function windows<S>(view: View<any, S>, key: ViewKey, opts: ViewWindowsOptions = {}): Promise<WindowsPage<S>> {
    requireView(view, 'windows');
    const definition = requireWindowed(view, 'windows');
    const k = requireKey(view, key);
    if (!opts || typeof opts !== 'object') {
      throw new SdkError('INVALID_ARGUMENT', `view "${view.name}": windows options must be an object { from?, to?, limit?, cursor?, order? }, received ${preview(opts)}`, {
        context: { view: view.name },
      });
    }
    const { limit, order } = pageOptions(view, 'windows', opts);
    const from = opts.from === undefined ? 0 : requireTime(view, 'windows', 'from', opts.from);
    const to = opts.to === undefined ? undefined : requireTime(view, 'windows', 'to', opts.to);
    if (to !== undefined && to < from) {
      throw new SdkError('INVALID_ARGUMENT', `view "${view.name}": windows from ${from} is after to ${to} (window starts in [from, to)); swap them or use order: 'desc'`, {
        context: { view: view.name, from, to },
      });
    }
    const now = Date.now();
    const retention = retentionAt(definition, now);
    const reported = from < retention.expiredBefore ? { retention } : {};
    // A tumbling or hopping window starting at or before expiredBefore − size has ended by then:
    // not worth reading. A session's length is known only from its item, so its ttl decides.
    const lowest = definition.kind === 'session' ? from : Math.max(from, retention.expiredBefore - definition.sizeMs + 1);
    const highest = to === undefined ? MAX_WINDOW_START_MS : to - 1;
    const query = JSON.stringify(['windows', k, order, from, to ?? null]);
    const segment = await segmentOf(view, opts.cursor, 'windows');
    let after = opts.cursor === undefined ? undefined : decodeWindowsCursor(segment, query, opts.cursor);
    if (lowest > highest) return { items: [], cursor: undefined, ...reported };
    const low = VIEW_SK_WINDOW_PREFIX + encodeWindowStart(lowest);
    const high = VIEW_SK_WINDOW_PREFIX + encodeWindowStart(highest);
    if (after !== undefined && after < low) {
      // Retention moved past the cursor while the caller paged: what lay between has expired.
      if (order === 'desc') return { items: [], cursor: undefined, ...reported };
      after = undefined;
    }
    const pk = viewItemKey(segment, k).pk;
    try {
      const out = await documents.send(
        new QueryCommand({
          TableName: table,
          KeyConditionExpression: '#pk = :pk AND #sk BETWEEN :low AND :high',
          ExpressionAttributeNames: { ...ITEM_NAMES, '#pk': 'pk', '#sk': 'sk' },
          ExpressionAttributeValues: { ':pk': pk, ':low': low, ':high': high },
          ProjectionExpression: ITEM_PROJECTION,
          ConsistentRead: opts.consistent === true,
          ScanIndexForward: order === 'asc',
          Limit: limit,
          ExclusiveStartKey: after === undefined ? undefined : { pk, sk: after },
        }),
      );
      const items = (out.Items ?? []).filter((raw) => isLive(raw, now) && !isTombstone(raw)).map((raw) => toWindowItem<S>(raw));
      const last = out.LastEvaluatedKey?.sk;
      return { items, cursor: typeof last === 'string' ? encodeWindowsCursor(segment, query, last) : undefined, ...reported };
    } catch (error) {
      throw readFailed(error, `view "${view.name}": windows of key ${preview(k)}`, { view: view.name, key: k, table });
    }
  }

  async function latestWindow<S>(view: View<any, S>, key: ViewKey, opts: ViewGetOptions = {}): Promise<WindowSnapshot<S> | undefined> {
    requireView(view, 'latestWindow');
    requireWindowed(view, 'latestWindow');
    const k = requireKey(view, key);
    const pk = viewItemKey(await segmentOf(view), k).pk;
    const now = Date.now();
    let start: Record<string, unknown> | undefined;
    try {
      // Newest first; expired items DynamoDB has not deleted yet are skipped (normally none, or
      // the few of a retention that was lowered).
      do {
        const out = await documents.send(
          new QueryCommand({
            TableName: table,
            KeyConditionExpression: '#pk = :pk AND begins_with(#sk, :windows)',
            ExpressionAttributeNames: { ...ITEM_NAMES, '#pk': 'pk', '#sk': 'sk' },
            ExpressionAttributeValues: { ':pk': pk, ':windows': VIEW_SK_WINDOW_PREFIX },
            ProjectionExpression: ITEM_PROJECTION,
            ConsistentRead: opts.consistent === true,
            ScanIndexForward: false,
            Limit: LATEST_WINDOW_PAGE,
            ExclusiveStartKey: start,
          }),
        );
        const live = (out.Items ?? []).find((raw) => isLive(raw, now) && !isTombstone(raw));
        if (live !== undefined) return toWindowItem<S>(live);
        start = out.LastEvaluatedKey;
      } while (start !== undefined);
      return undefined;
    } catch (error) {
      throw readFailed(error, `view "${view.name}": latestWindow of key ${preview(k)}`, { view: view.name, key: k, table });
    }
  }

  async function windowsAt<S>(view: View<any, S>, windowStart: number, opts: ViewWindowsAtOptions = {}): Promise<WindowsAtPage<S>> {
    requireView(view, 'windowsAt');
    const definition = requireWindowed(view, 'windowsAt');
    const start = requireTime(view, 'windowsAt', 'windowStart', windowStart);
    const context = { view: view.name, windowStart: start, table };
    if (!opts || typeof opts !== 'object') {
      throw new SdkError('INVALID_ARGUMENT', `view "${view.name}": windowsAt options must be an object { prefix?, limit?, cursor?, order? }, received ${preview(opts)}`, { context });
    }
    const prefix = opts.prefix ?? '';
    if (typeof prefix !== 'string') {
      throw new SdkError('INVALID_ARGUMENT', `view "${view.name}": windowsAt prefix must be a string, received ${preview(prefix)}`, { context });
    }
    const { limit, order } = pageOptions(view, 'windowsAt', opts);
    const now = Date.now();
    if (start + shortestWindowMs(definition) <= retentionAt(definition, now).expiredBefore) {
      throw windowExpired(view, definition, start, undefined, now);
    }
    const read: ScatterRead = {
      view: await segmentOf(view, opts.cursor, 'windowsAt'),
      method: 'windowsAt',
      query: JSON.stringify(['windowsAt', start, order, prefix]),
      condition: 'begins_with(#ixKey, :prefix)',
      values: { ':prefix': windowIndexPrefix(start) + prefix },
      windowed: true,
      order,
      limit,
      cursor: opts.cursor,
    };
    try {
      const { entries, cursor } = await scatterGather(documents, table, read);
      const items = await readItems(entries, opts.consistent === true);
      const found: WindowSnapshot<S>[] = [];
      for (const entry of entries) {
        const raw = items.get(`${entry.pk}\n${entry.sk}`);
        if (raw !== undefined && isLive(raw, now) && !isTombstone(raw)) found.push(toWindowItem<S>(raw));
      }
      return { items: found, cursor };
    } catch (error) {
      throw readFailed(error, `view "${view.name}": windowsAt ${start}`, context);
    }
  }

  async function waitFor(
    target: View<any, any> | App,
    position: SourcePosition,
    opts: ViewWaitOptions = {},
  ): Promise<void> {
    if (!target || (target.kind !== 'view' && target.kind !== 'app')) {
      throw new SdkError('INVALID_ARGUMENT', `waitFor: expected a view or an app, received ${preview(target)}`);
    }
    const topics = target.kind === 'view' ? [target.source] : target.sourceTopics;
    const { topic, partition } = position ?? ({} as SourcePosition);
    const context = { [target.kind]: target.name, topic, partition, offset: String(position?.offset), table };
    if (typeof topic !== 'string' || !topics.includes(topic)) {
      throw new SdkError(
        'INVALID_ARGUMENT',
        `waitFor: topic ${preview(topic)} is not a source of ${target.kind} "${target.name}" (sources: ${topics.join(', ')}); pass the topic the record was produced to`,
        { context },
      );
    }
    if (!Number.isInteger(partition) || partition < 0) {
      throw new SdkError('INVALID_ARGUMENT', `waitFor: partition must be a non-negative integer, received ${preview(partition)}`, {
        context,
      });
    }
    const offset = parseOffset(position.offset);
    if (offset === undefined || offset < 0n) {
      throw new SdkError(
        'INVALID_ARGUMENT',
        `waitFor: offset must be a non-negative integer (string, number or bigint), received ${preview(String(position.offset))}`,
        { context },
      );
    }
    const timeoutMs = opts.timeoutMs ?? DEFAULT_WAIT_TIMEOUT_MS;
    if (!Number.isFinite(timeoutMs) || timeoutMs < 0) {
      throw new SdkError('INVALID_ARGUMENT', `waitFor: timeoutMs must be a non-negative number, received ${preview(timeoutMs)}`, {
        context,
      });
    }
    const deadline = Date.now() + timeoutMs;
    let intervalMs = WAIT_INITIAL_INTERVAL_MS;
    let checkpoint: bigint | undefined;
    for (;;) {
      try {
        const out = await documents.send(
          new GetCommand({ TableName: table, Key: checkpointKey(topic, partition), ConsistentRead: true }),
        );
        checkpoint = parseOffset(out.Item?.offset);
      } catch (error) {
        throw readFailed(error, `waitFor ${topic}/${partition}@${offset}: checkpoint read`, context);
      }
      // The checkpoint is the next offset to consume: everything below it is durable.
      if (checkpoint !== undefined && checkpoint > offset) return;
      const remaining = deadline - Date.now();
      if (remaining <= 0) break;
      await sleep(Math.min(intervalMs, remaining));
      intervalMs = Math.min(WAIT_MAX_INTERVAL_MS, intervalMs * 2);
    }
    throw new SdkError(
      'VIEW_NOT_CAUGHT_UP',
      `waitFor: after ${timeoutMs} ms the engine's checkpoint for ${topic}/${partition} is ${checkpoint === undefined ? 'absent' : `at offset ${checkpoint}`}, not past offset ${offset}; the engine may be behind or stopped — retry, or raise timeoutMs`,
      { retriable: true, context: { ...context, checkpoint: checkpoint?.toString() } },
    );
  }

  async function viewInfo(view: View<any, any>): Promise<ViewInfo | undefined> {
    requireView(view, 'viewInfo');
    let item: Record<string, any> | undefined;
    try {
      item = (await documents.send(new GetCommand({ TableName: table, Key: viewRegistryKey(view.name), ConsistentRead: true }))).Item;
    } catch (error) {
      throw readFailed(error, `view "${view.name}": reading its registry item`, { view: view.name, table });
    }
    if (item === undefined) return undefined;
    const live = typeof item.live === 'number' && Number.isInteger(item.live) && item.live > 0 ? item.live : 1;
    const versions: Record<number, ViewVersionInfo> = {};
    for (const [version, recorded] of Object.entries((item.versions ?? {}) as Record<string, Record<string, any>>)) {
      versions[Number(version)] = {
        recordedAt: String(recorded.recordedAt),
        ...(recorded.retainedFrom !== undefined ? { retainedFrom: { ...recorded.retainedFrom } } : {}),
        ...(recorded.removedAt !== undefined ? { removedAt: String(recorded.removedAt) } : {}),
      };
    }
    const retainedFrom = versions[live]?.retainedFrom;
    return {
      view: view.name,
      live,
      ...(typeof item.swappedAt === 'string' ? { swappedAt: item.swappedAt } : {}),
      ...(retainedFrom !== undefined ? { retainedFrom } : {}),
      versions,
    };
  }

  return {
    tableName: table,
    viewInfo,
    get,
    async getState<S>(view: View<any, S>, key: ViewKey, opts?: ViewGetOptions): Promise<S> {
      const item = await get(view, key, opts);
      return item ? item.state : view.initial();
    },
    getMany,
    query,
    window,
    windows,
    latestWindow,
    windowsAt,
    waitFor,
  };
}
