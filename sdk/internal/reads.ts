/**
 * Reading views from functions: typed point reads, batch reads, key-range queries with
 * pagination, and read-your-writes waits on the engine's checkpoints.
 *
 * Read-only; the table layout comes from `storage.ts`, which the engine writes through.
 */
import type { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import {
  GetCommand,
  QueryCommand,
  type QueryCommandInput,
} from '@aws-sdk/lib-dynamodb';
import type { App, View, ViewKey } from './define.ts';
import { preview } from './define-fns.ts';
import { SdkError } from './errors.ts';
import { decodeState } from './exact-json.ts';
import { classifyAwsError } from './retry.ts';
import { batchGetItems, checkpointKey, createStorage, VIEW_PK_PREFIX, VIEW_SK_PREFIX, viewItemKey, viewKeyProblem } from './storage.ts';
import { ENV } from './contract.ts';

const KEY_PREFIX = VIEW_SK_PREFIX;

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

/** Only these attributes are read: trigger bookkeeping stays out of reads. */
const ITEM_PROJECTION = '#sk, #state, #version, #offsets, #updatedAt';
const ITEM_NAMES = {
  '#sk': 'sk',
  '#state': 'state',
  '#version': 'version',
  '#offsets': 'offsets',
  '#updatedAt': 'updatedAt',
} as const;

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
/** The same, with the partition key, by which a batch read matches items to keys. */
const ITEM_PROJECTION_WITH_PK = `#pk, ${ITEM_PROJECTION}`;
const ITEM_NAMES_WITH_PK = { ...ITEM_NAMES, '#pk': 'pk' };

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
  /** @default false */
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
  /** One page of the items whose keys match `range`, in key order. */
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
  const sk = String(raw.sk);
  return {
    key: sk.startsWith(KEY_PREFIX) ? sk.slice(KEY_PREFIX.length) : sk,
    state: decodeState<S>(raw.state),
    version: Number(raw.version ?? 0),
    offsets: (raw.offsets ?? {}) as Record<string, string>,
    updatedAt: String(raw.updatedAt ?? ''),
  };
}

/** Cursor: the view it belongs to plus DynamoDB's LastEvaluatedKey, base64url JSON. */
function encodeCursor(view: string, lastKey: Record<string, unknown>): string {
  return Buffer.from(JSON.stringify({ v: view, k: lastKey }), 'utf8').toString('base64url');
}

function decodeCursor(view: string, cursor: string): Record<string, unknown> {
  try {
    const decoded = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8')) as { v?: unknown; k?: unknown };
    if (decoded.v === view && decoded.k && typeof decoded.k === 'object') return decoded.k as Record<string, unknown>;
  } catch {
    // fall through to the error below
  }
  throw new SdkError(
    'INVALID_ARGUMENT',
    `view "${view}": cursor ${preview(cursor)} is not a cursor returned by query() on this view; pass the cursor of the previous page unchanged`,
    { context: { view } },
  );
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
      items = await batchGetItems(
        documents,
        table,
        distinct.map((k) => viewItemKey(view.name, k)),
        { consistent: opts.consistent === true, projection: { expression: ITEM_PROJECTION_WITH_PK, names: ITEM_NAMES_WITH_PK } },
      );
    } catch (error) {
      throw readFailed(error, `view "${view.name}": getMany of ${distinct.length} keys`, { view: view.name, table });
    }
    for (const raw of items.values()) {
      const item = toItem<S>(raw);
      found.set(item.key, item);
    }
    return asStrings.map((k) => found.get(k));
  }

  async function query<S>(view: View<any, S>, range: ViewKeyRange = { prefix: '' }, opts: ViewQueryOptions = {}): Promise<ViewQueryPage<S>> {
    requireView(view, 'query');
    const context = { view: view.name, table };
    const limit = opts.limit ?? DEFAULT_QUERY_LIMIT;
    if (!Number.isInteger(limit) || limit < 1 || limit > MAX_QUERY_LIMIT) {
      throw new SdkError(
        'INVALID_ARGUMENT',
        `view "${view.name}": query limit must be an integer from 1 to ${MAX_QUERY_LIMIT}, received ${preview(limit)}`,
        { context },
      );
    }
    const order = opts.order ?? 'asc';
    if (order !== 'asc' && order !== 'desc') {
      throw new SdkError('INVALID_ARGUMENT', `view "${view.name}": query order must be "asc" or "desc", received ${preview(order)}`, {
        context,
      });
    }
    const values: Record<string, unknown> = { ':pk': VIEW_PK_PREFIX + view.name };
    let condition: string;
    if (range && typeof range === 'object' && 'prefix' in range) {
      if (typeof range.prefix !== 'string') {
        throw new SdkError('INVALID_ARGUMENT', `view "${view.name}": query prefix must be a string, received ${preview(range.prefix)}`, {
          context,
        });
      }
      condition = '#pk = :pk AND begins_with(#sk, :prefix)';
      values[':prefix'] = KEY_PREFIX + range.prefix;
    } else if (range && typeof range === 'object') {
      const from = range.from === undefined ? undefined : requireKey(view, range.from);
      const to = range.to === undefined ? undefined : requireKey(view, range.to);
      if (from !== undefined && to !== undefined) {
        if (from > to) {
          throw new SdkError(
            'INVALID_ARGUMENT',
            `view "${view.name}": query range from ${preview(from)} sorts after to ${preview(to)} (keys compare as strings); swap them or use order: 'desc'`,
            { context },
          );
        }
        condition = '#pk = :pk AND #sk BETWEEN :from AND :to';
        values[':from'] = KEY_PREFIX + from;
        values[':to'] = KEY_PREFIX + to;
      } else if (from !== undefined) {
        condition = '#pk = :pk AND #sk >= :from';
        values[':from'] = KEY_PREFIX + from;
      } else if (to !== undefined) {
        // The lower bound keeps the range inside this view's keys.
        condition = '#pk = :pk AND #sk BETWEEN :prefix AND :to';
        values[':prefix'] = KEY_PREFIX;
        values[':to'] = KEY_PREFIX + to;
      } else {
        condition = '#pk = :pk AND begins_with(#sk, :prefix)';
        values[':prefix'] = KEY_PREFIX;
      }
    } else {
      throw new SdkError(
        'INVALID_ARGUMENT',
        `view "${view.name}": query range must be { prefix } or { from?, to? }, received ${preview(range)}`,
        { context },
      );
    }
    const input: QueryCommandInput = {
      TableName: table,
      KeyConditionExpression: condition,
      ExpressionAttributeNames: { ...ITEM_NAMES, '#pk': 'pk' },
      ExpressionAttributeValues: values,
      ProjectionExpression: ITEM_PROJECTION,
      ConsistentRead: opts.consistent === true,
      ScanIndexForward: order === 'asc',
      Limit: limit,
      ExclusiveStartKey: opts.cursor === undefined ? undefined : decodeCursor(view.name, opts.cursor),
    };
    try {
      const out = await documents.send(new QueryCommand(input));
      const items = (out.Items ?? []).map((raw) => toItem<S>(raw));
      return { items, cursor: out.LastEvaluatedKey ? encodeCursor(view.name, out.LastEvaluatedKey) : undefined };
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
