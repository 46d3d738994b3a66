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
import type { App, View, ViewKey } from './define.ts';
import { preview } from './define-fns.ts';
import { SdkError } from './errors.ts';
import { decodeState } from './exact-json.ts';
import { classifyAwsError } from './retry.ts';
import {
  batchGetItems,
  checkpointKey,
  createStorage,
  INDEX_KEY_PREFIX,
  VIEW_PK_PREFIX,
  VIEW_SK_UNWINDOWED,
  VIEW_SK_WINDOW_PREFIX,
  viewIndexPartition,
  viewIndexShard,
  viewItemKey,
  viewKeyProblem,
  WINDOW_START_DIGITS,
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
}

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
export interface ViewReader {
  /** The table read. */
  readonly tableName: string;
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
   * Waits until the engine has made every record up to `position` durable in the views of the
   * table (its checkpoint for that partition is past `position.offset`). Then a `consistent`
   * read sees the record's effect. Rejects with `VIEW_NOT_CAUGHT_UP` at the deadline.
   */
  waitFor(target: View<any, any> | App, position: SourcePosition, options?: ViewWaitOptions): Promise<void>;
}

function requireKey(view: View<any, any>, key: unknown): string {
  const problem = viewKeyProblem(key);
  if (problem === undefined) return String(key);
  throw new SdkError(
    'INVALID_ARGUMENT',
    problem === 'inexact'
      ? `view "${view.name}": key ${String(key)} is a number past 2^53, which a double cannot hold exactly (9007199254740992 and 9007199254740993 are the same double); pass the key as a bigint or a string`
      : `view "${view.name}": key must be a string, a bigint or a finite number, received ${preview(key)}`,
    { context: { view: view.name, key: String(key) } },
  );
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
 * Reads one page of index entries: one Query per shard not yet exhausted (in parallel, each
 * for at most the rest of the page), merged in key order; a shard that runs dry before the page
 * is full is asked again, so the merge never passes a key a shard has not yet returned. The
 * cursor holds every shard's position; there is none once every shard is exhausted.
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
  while (entries.length < read.limit) {
    const dry = shards.filter((state) => state.buffer.length === 0 && state.more);
    if (dry.length > 0) {
      await Promise.all(dry.map((state) => fetch(state, read.limit - entries.length)));
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

  async function get<S>(view: View<any, S>, key: ViewKey, opts: ViewGetOptions = {}): Promise<ViewSnapshot<S> | undefined> {
    requireView(view, 'get');
    const k = requireKey(view, key);
    try {
      const out = await documents.send(
        new GetCommand({
          TableName: table,
          Key: viewItemKey(view.name, k),
          ConsistentRead: opts.consistent === true,
          ProjectionExpression: ITEM_PROJECTION,
          ExpressionAttributeNames: ITEM_NAMES,
        }),
      );
      return out.Item ? toItem<S>(out.Item) : undefined;
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
      items = await readItems(distinct.map((k) => viewItemKey(view.name, k)), opts.consistent === true);
    } catch (error) {
      throw readFailed(error, `view "${view.name}": getMany of ${distinct.length} keys`, { view: view.name, table });
    }
    for (const raw of items.values()) {
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
      view: view.name,
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
        if (raw !== undefined) found.push(toItem<S>(raw));
      }
      return { items: found, cursor };
    } catch (error) {
      throw readFailed(error, `view "${view.name}": query`, context);
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

  return {
    tableName: table,
    get,
    async getState<S>(view: View<any, S>, key: ViewKey, opts?: ViewGetOptions): Promise<S> {
      const item = await get(view, key, opts);
      return item ? item.state : view.initial();
    },
    getMany,
    query,
    waitFor,
  };
}
