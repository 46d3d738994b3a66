/**
 * The views table layout, shared by the engine (which writes) and the SDK (which reads).
 *
 * One DynamoDB table per app, partition key `pk` (S), sort key `sk` (S), TTL attribute `ttl`,
 * two KEYS_ONLY global secondary indexes ({@link TABLE_INDEXES}):
 * - view items: `pk = "v#" + view + "#" + key` (numbers in decimal form), so one key is one
 *   item collection; `sk = "_"` for an unwindowed view, `sk = "w#" + pad15(window start)` for a
 *   windowed one, so a key's windows are one Query in time order. Each holds the view state, a
 *   `version` (+1 per applied event), the last applied offset per source partition, per-trigger
 *   bookkeeping of changes not yet delivered, and the `byKey` index attributes `ixShard` /
 *   `ixKey` ({@link viewIndexKey}), which never change for an item;
 * - engine bookkeeping under `pk = "_tributary"`: checkpoints `sk = "checkpoint#" + topic + "#" + partition`
 *   whose `offset` is the next offset to consume (everything below it is durable in every view).
 *
 * Everything except {@link createStorage} is pure: key encoding and item shapes.
 */
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { BatchGetCommand, DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { any, item, number, record, string } from 'dynamodb-toolbox';
import { Entity } from 'dynamodb-toolbox/entity';
import { Table } from 'dynamodb-toolbox/table';
import type { ViewKey, WindowBounds } from './define.ts';
import { preview } from './define-fns.ts';
import { ENV, TABLE_INDEXES, TABLE_KEY_SCHEMA, VIEW_INDEX_SHARDS } from './contract.ts';
import { SdkError } from './errors.ts';
import { createRetry } from './retry.ts';

/** Partition key prefix of view items (and of their `byKey` index shards): `v#<view>#…`. */
export const VIEW_PK_PREFIX = 'v#';
/** Sort key of the one item of an unwindowed view's key. */
export const VIEW_SK_UNWINDOWED = '_';
/** Sort key prefix of a windowed view's items (`w#<pad15(start)>`), and of their `ixKey`. */
export const VIEW_SK_WINDOW_PREFIX = 'w#';
/**
 * `ixKey` prefix of an unwindowed item (`k#<key>`): an index key attribute cannot be the empty
 * string, and `''` is a valid view key.
 */
export const INDEX_KEY_PREFIX = 'k#';
/** Digits of a window start in keys: epoch ms up to 10^15 − 1 (the year 33658). */
export const WINDOW_START_DIGITS = 15;
/** Largest window start (epoch ms) the layout can hold. */
export const MAX_WINDOW_START_MS = 10 ** WINDOW_START_DIGITS - 1;
/** Partition key of the engine's bookkeeping items. */
export const ENGINE_PK = '_tributary';
/** Sort key prefix of checkpoint items. */
export const CHECKPOINT_SK_PREFIX = 'checkpoint#';
/** Sort key prefix of the view registry items (one per view: its deployed versions and fingerprints). */
export const VIEW_REGISTRY_SK_PREFIX = 'view#';

/** Primary key of any item of the views table. */
export interface ItemKey {
  readonly pk: string;
  readonly sk: string;
}

/** A view item as stored. */
export interface ViewItem<S = unknown> extends ItemKey {
  /** View name (also encoded in `pk`). */
  readonly view: string;
  /** View key in its stored, string form (also encoded in `pk`). */
  readonly key: string;
  /** `byKey` index partition, `v#<view>#<shard>` ({@link viewIndexKey}); never changes for an item. */
  readonly ixShard: string;
  /** `byKey` index sort key: `k#<key>`, or `w#<pad15(start)>#<key>` for a windowed item. */
  readonly ixKey: string;
  /** Window start in epoch ms (inclusive), on windowed items only (also encoded in `sk`). */
  readonly windowStart?: number;
  /** Window end in epoch ms (exclusive), on windowed items only. */
  readonly windowEnd?: number;
  /**
   * The view state; absent on a tombstone (an item its reducer deleted), which reads treat as
   * no item and which keeps `version` and `offsets` as the key's exactly-once fence until its `ttl`.
   */
  readonly state?: S;
  /** +1 per applied event (so every state has its own); the condition of the next write. */
  readonly version: number;
  /** Last applied offset per source partition, `"topic/partition"` -> decimal offset. */
  readonly offsets: Readonly<Record<string, string>>;
  /** ISO time of the last write. */
  readonly updatedAt: string;
  /**
   * Trigger bookkeeping: trigger name -> version of the state that trigger last judged (its
   * next change's `before`; 0 = the item did not exist). A trigger is listed while a change is
   * written but not yet delivered; the engine removes it after delivery. Absent when all is delivered.
   */
  readonly pending?: Readonly<Record<string, number>>;
  /**
   * The states named by `pending`, by version (decimal string), shared by triggers; for a
   * `changes: 'every'` trigger also every intermediate state after the one it last judged.
   */
  readonly befores?: Readonly<Record<string, S>>;
  /**
   * Expiry in epoch seconds (DynamoDB TTL), if any: windowed items carry their window's
   * retention. DynamoDB deletes expired items lazily (up to days later); reads treat an item
   * past its `ttl` as gone.
   */
  readonly ttl?: number;
  /**
   * `closing` index partition (sparse): set while the item of an `emit: 'final'` view awaits its
   * final change, `<view>#<topic>/<partition>` of the partition whose record created it.
   */
  readonly closeShard?: string;
  /** `closing` index sort key: stream time past which the window is closed (`windowEnd + graceMs`). */
  readonly closeAt?: number;
}

/** A checkpoint item: everything below `offset` in `topic/partition` is durable in the views. */
export interface CheckpointItem extends ItemKey {
  readonly topic: string;
  readonly partition: number;
  /** Next offset to consume, decimal. */
  readonly offset: string;
  /** `offset` as a number, for the engine's "never move backwards" condition. */
  readonly position?: number;
  readonly updatedAt: string;
  /**
   * Stream time per windowed view of the topic (view -> epoch ms): the largest event time of
   * the records below `offset`. Restored at start, so a restart judges lateness as before.
   */
  readonly streamTime?: Readonly<Record<string, number>>;
}

/**
 * Longest view key, in UTF-8 bytes: DynamoDB caps a sort key attribute (here the index's
 * `ixKey`, `w#<15 digits>#<key>` on a windowed item) at 1,024 bytes, and a key past it would make
 * every write of its item fail; this leaves room for the prefix, rounded down.
 */
export const MAX_VIEW_KEY_BYTES = 1_000;

/**
 * Why `key` is not a usable view key, or undefined: keys are strings (`''` included: its
 * partition key `v#<view>#` is valid, as in ksqlDB) of at most {@link MAX_VIEW_KEY_BYTES} bytes,
 * bigints and finite numbers within ±(2^53−1). A larger number is refused, never rounded: a double cannot
 * tell 9007199254740992 from 9007199254740993, so two keys would silently share one item.
 */
export function viewKeyProblem(key: unknown): 'missing' | 'inexact' | 'too-long' | undefined {
  if (typeof key === 'string') {
    // A UTF-16 unit is at most 3 UTF-8 bytes: most keys need no byte count.
    return key.length * 3 <= MAX_VIEW_KEY_BYTES || Buffer.byteLength(key, 'utf8') <= MAX_VIEW_KEY_BYTES ? undefined : 'too-long';
  }
  if (typeof key === 'bigint') return undefined;
  if (typeof key === 'number' && Number.isFinite(key)) return Math.abs(key) <= Number.MAX_SAFE_INTEGER ? undefined : 'inexact';
  return 'missing';
}

/** The message of a {@link viewKeyProblem}, to follow "view key" or "key() returned". */
export function viewKeyProblemMessage(key: unknown, problem: 'missing' | 'inexact' | 'too-long'): string {
  if (problem === 'inexact') {
    return `${String(key)}, a number past 2^53, which a double cannot hold exactly (9007199254740992 and 9007199254740993 are the same double); pass the key as a bigint or a string`;
  }
  if (problem === 'too-long') {
    return `a string of ${Buffer.byteLength(key as string, 'utf8')} UTF-8 bytes (${preview(key)}), longer than ${MAX_VIEW_KEY_BYTES} bytes (DynamoDB caps key attributes at 1,024 bytes); use a shorter key, e.g. a hash of the long value`;
  }
  return `${preview(key)}, which is not a string, a bigint or a finite number`;
}

/**
 * Stored string form of a view key: strings as they are, bigints and numbers in decimal form
 * (so `5` and `5n` name the same item). Throws an {@link SdkError} `INVALID_ARGUMENT` for
 * anything else, for numbers past ±(2^53−1) and for strings past {@link MAX_VIEW_KEY_BYTES}.
 *
 * @example
 * encodeViewKey(42); // "42"
 * encodeViewKey(9007199254740993n); // "9007199254740993"
 */
export function encodeViewKey(key: ViewKey): string {
  const problem = viewKeyProblem(key);
  if (problem === undefined) return typeof key === 'string' ? key : String(key);
  throw new SdkError(
    'INVALID_ARGUMENT',
    problem === 'inexact'
      ? `view key ${String(key)} is a number past 2^53, which a double cannot hold exactly (9007199254740992 and 9007199254740993 are the same double); pass the key as a bigint or a string`
      : `view key is ${viewKeyProblemMessage(key, problem)}`,
    { context: { key: problem === 'too-long' ? preview(key) : String(key) } },
  );
}

/**
 * Why `start` is not a window start the layout can hold, or undefined: a non-negative integer
 * of epoch ms below 10^15 (times before 1970 are refused upstream).
 */
export function windowStartProblem(start: unknown): string | undefined {
  if (typeof start !== 'number' || !Number.isInteger(start)) return `must be an integer of epoch milliseconds, received ${preview(start)}`;
  if (start < 0) return `must not be negative (times before 1970 cannot be stored), received ${start}`;
  if (start > MAX_WINDOW_START_MS) return `must be at most ${MAX_WINDOW_START_MS} (15 digits of epoch ms), received ${start}`;
  return undefined;
}

/**
 * A window start as it appears in keys: 15-digit zero-padded decimal epoch ms, so string order
 * is time order. Throws `INVALID_ARGUMENT` for a start {@link windowStartProblem} refuses.
 *
 * @example
 * encodeWindowStart(1_764_547_200_000); // "001764547200000"
 */
export function encodeWindowStart(start: number): string {
  const problem = windowStartProblem(start);
  if (problem !== undefined) throw new SdkError('INVALID_ARGUMENT', `window start ${problem}`, { context: { windowStart: String(start) } });
  return String(start).padStart(WINDOW_START_DIGITS, '0');
}

/** The start of `window` (bounds or a start in epoch ms). */
function windowStartOf(window: WindowBounds | number): number {
  return typeof window === 'number' ? window : window?.start;
}

/**
 * Primary key of a view item: `pk = v#<view>#<key>`, `sk = _` (unwindowed) or
 * `sk = w#<pad15(start)>` (the window of `window`, bounds or a start in epoch ms).
 *
 * @example
 * viewItemKey('classAttendance', 'yoga-1'); // { pk: 'v#classAttendance#yoga-1', sk: '_' }
 * viewItemKey('dailyBookings', 'yoga-1', { start: 1_764_547_200_000, end: 1_764_633_600_000 });
 * // { pk: 'v#dailyBookings#yoga-1', sk: 'w#001764547200000' }
 */
export function viewItemKey(view: string, key: ViewKey, window?: WindowBounds | number): ItemKey {
  const pk = VIEW_PK_PREFIX + view + '#' + encodeViewKey(key);
  if (window === undefined) return { pk, sk: VIEW_SK_UNWINDOWED };
  return { pk, sk: VIEW_SK_WINDOW_PREFIX + encodeWindowStart(windowStartOf(window)) };
}

/**
 * The `byKey` index shard of an encoded key: FNV-1a (32 bit) of its UTF-8 bytes, modulo
 * {@link VIEW_INDEX_SHARDS}. Part of the stored layout: the engine writes it on every item and
 * readers rely on every key of a view being under one of the shards.
 *
 * @example
 * viewIndexShard('yoga-1'); // a number from 0 to 15, the same on every run
 */
export function viewIndexShard(encodedKey: string): number {
  let hash = 0x811c9dc5;
  for (const byte of Buffer.from(encodedKey, 'utf8')) {
    hash ^= byte;
    hash = Math.imul(hash, 0x01000193);
  }
  return (hash >>> 0) % VIEW_INDEX_SHARDS;
}

/** The `byKey` index partition key value of one shard of a view: `v#<view>#<shard>`. */
export function viewIndexPartition(view: string, shard: number): string {
  return `${VIEW_PK_PREFIX}${view}#${shard}`;
}

/** The `byKey` index sort key prefix of every key of one window: `w#<pad15(start)>#`. */
export function windowIndexPrefix(start: number): string {
  return `${VIEW_SK_WINDOW_PREFIX}${encodeWindowStart(start)}#`;
}

/** The `byKey` index attributes of a view item. */
export interface ViewIndexKey {
  readonly ixShard: string;
  readonly ixKey: string;
}

/**
 * The `byKey` index attributes of a view item: `ixShard = v#<view>#<shard>` and
 * `ixKey = k#<key>` (unwindowed; an index key cannot be `''`, a view key can) or
 * `w#<pad15(start)>#<key>` (windowed), so a view's keys are 16 ranges in key order and one
 * window's keys 16 ranges too. They never change for an item, so (KEYS_ONLY) only the item's
 * first write costs an index write.
 *
 * @example
 * viewIndexKey('classAttendance', 'yoga-1'); // { ixShard: 'v#classAttendance#<0-15>', ixKey: 'k#yoga-1' }
 */
export function viewIndexKey(view: string, key: ViewKey, window?: WindowBounds | number): ViewIndexKey {
  const encoded = encodeViewKey(key);
  const ixShard = viewIndexPartition(view, viewIndexShard(encoded));
  if (window === undefined) return { ixShard, ixKey: INDEX_KEY_PREFIX + encoded };
  return { ixShard, ixKey: windowIndexPrefix(windowStartOf(window)) + encoded };
}

/**
 * Primary key of the checkpoint of one source partition.
 *
 * @example
 * checkpointKey('bookings', 2); // { pk: '_tributary', sk: 'checkpoint#bookings#2' }
 */
export function checkpointKey(topic: string, partition: number): ItemKey {
  return { pk: ENGINE_PK, sk: `${CHECKPOINT_SK_PREFIX}${topic}#${partition}` };
}

/**
 * The view segment of a view version's items in `pk` and `ixShard`: the name for version 1
 * (the layout before versions existed), `<view>@<version>` from version 2 (`@` cannot occur in
 * a view name).
 *
 * @example
 * viewSegment('classAttendance', 1); // 'classAttendance'
 * viewSegment('classAttendance', 3); // 'classAttendance@3'
 */
export function viewSegment(view: string, version: number): string {
  return version === 1 ? view : `${view}@${version}`;
}

/**
 * Primary key of a view's registry item: the versions of its definition the engine has seen.
 *
 * @example
 * viewRegistryKey('classAttendance'); // { pk: '_tributary', sk: 'view#classAttendance' }
 */
export function viewRegistryKey(view: string): ItemKey {
  return { pk: ENGINE_PK, sk: `${VIEW_REGISTRY_SK_PREFIX}${view}` };
}

/**
 * Key of a source partition in a view item's `offsets` map.
 *
 * @example
 * offsetsKey('bookings', 2); // "bookings/2"
 */
export function offsetsKey(topic: string, partition: number): string {
  return `${topic}/${partition}`;
}

/** Builds the toolbox table; the name is given per command, so one definition serves any app. */
function buildTable(documentClient: DynamoDBDocumentClient, tableName: string) {
  return new Table({
    documentClient,
    name: tableName,
    partitionKey: { name: TABLE_KEY_SCHEMA.partitionKey, type: 'string' },
    sortKey: { name: TABLE_KEY_SCHEMA.sortKey, type: 'string' },
  });
}

function buildViewItemEntity(table: ReturnType<typeof buildTable>) {
  return new Entity({
    name: 'viewItem',
    table,
    // The layout is a contract (docs/architecture.md, "Storage layout"): no toolbox `_et`/`_ct`/`_md` attributes.
    entityAttribute: false,
    timestamps: false,
    schema: item({
      pk: string().key(),
      sk: string().key(),
      view: string(),
      key: string(),
      ixShard: string(),
      ixKey: string(),
      windowStart: number().optional(),
      windowEnd: number().optional(),
      // View state is whatever the view's reducer returns (JSON-like); the engine validates it.
      state: any().optional(),
      version: number(),
      offsets: record(string(), string()),
      updatedAt: string(),
      pending: record(string(), number()).optional(),
      befores: record(string(), any()).optional(),
      ttl: number().optional(),
      closeShard: string().optional(),
      closeAt: number().optional(),
    }),
  });
}

function buildCheckpointEntity(table: ReturnType<typeof buildTable>) {
  return new Entity({
    name: 'checkpoint',
    table,
    entityAttribute: false,
    timestamps: false,
    schema: item({
      pk: string().key(),
      sk: string().key(),
      topic: string(),
      partition: number(),
      offset: string(),
      // `offset` as a number, so a condition can refuse to move a checkpoint backwards.
      position: number().optional(),
      updatedAt: string(),
      streamTime: record(string(), number()).optional(),
    }),
  });
}

/** The toolbox table of an app's views table. */
export type ViewsTable = ReturnType<typeof buildTable>;
/** The toolbox entity of view items. */
export type ViewItemEntity = ReturnType<typeof buildViewItemEntity>;
/** The toolbox entity of checkpoint items. */
export type CheckpointEntity = ReturnType<typeof buildCheckpointEntity>;

/** Options of {@link createStorage}. */
export interface StorageOptions {
  /**
   * A DynamoDB client (wrapped in a document client with {@link DOCUMENT_CLIENT_OPTIONS}) or a
   * ready document client (used as is).
   * @default a DynamoDBClient from the standard AWS environment
   */
  dynamodb?: DynamoDBClient | DynamoDBDocumentClient;
  /** Views table name. Required. */
  tableName?: string;
}

/**
 * Marshalling of the document client: `undefined` fields disappear (as in JSON) instead of
 * failing the write, so any JSON-like state can be stored. States hold JavaScript numbers, so
 * numbers past 2^53 are stored as the double's exact decimal form (`allowImpreciseNumbers` only
 * lifts lib-dynamodb's guard; nothing is rounded that was not already a double) and read back
 * as numbers, never as BigInt, which JSON cannot hold.
 */
export const DOCUMENT_CLIENT_OPTIONS = {
  marshallOptions: { removeUndefinedValues: true, convertClassInstanceToMap: true, allowImpreciseNumbers: true },
  unmarshallOptions: { wrapNumbers: (value: string): number => Number(value) },
};

/** The views table of one app: clients, the toolbox table and its entities. */
export interface Storage {
  readonly tableName: string;
  readonly documentClient: DynamoDBDocumentClient;
  readonly table: ViewsTable;
  readonly viewItems: ViewItemEntity;
  readonly checkpoints: CheckpointEntity;
}

/**
 * Builds the storage layer of a views table from an injected client.
 *
 * @example
 * const storage = createStorage({ dynamodb: new DynamoDBClient({}), tableName: 'gym-views' });
 * const { Item } = await storage.viewItems.build(GetItemCommand).key(viewItemKey('classAttendance', 'yoga-1')).send();
 */
export function createStorage(options: StorageOptions): Storage {
  const tableName = options.tableName;
  if (typeof tableName !== 'string' || tableName.length < 3) {
    throw new SdkError(
      'INVALID_ARGUMENT',
      `tableName must be a DynamoDB table name (3-255 characters), received ${preview(tableName)}; pass the views table name (TRIBUTARY_TABLE)`,
    );
  }
  const client = options.dynamodb ?? new DynamoDBClient({});
  const documentClient =
    client instanceof DynamoDBDocumentClient ? client : DynamoDBDocumentClient.from(client, DOCUMENT_CLIENT_OPTIONS);
  const table = buildTable(documentClient, tableName);
  return {
    tableName,
    documentClient,
    table,
    viewItems: buildViewItemEntity(table),
    checkpoints: buildCheckpointEntity(table),
  };
}

/** BatchGetItem takes at most 100 keys per request. */
const BATCH_GET_MAX_KEYS = 100;
/**
 * Rounds for keys DynamoDB leaves unprocessed (throttling): 8 with capped backoff ride out
 * about 3 s of throttling before the caller's own retry takes over.
 */
export const DEFAULT_BATCH_GET_MAX_ROUNDS = 8;
const BATCH_GET_BACKOFF = { initialMs: 25, maxMs: 1_000 } as const;

/** Options of {@link batchGetItems}. */
export interface BatchGetItemsOptions {
  /** Strongly consistent reads. */
  readonly consistent: boolean;
  /**
   * Attributes to read (`ProjectionExpression` and its names).
   * @default every attribute
   */
  readonly projection?: { readonly expression: string; readonly names: Readonly<Record<string, string>> };
  /**
   * Requests of up to 100 keys in flight at once.
   * @default 1
   */
  readonly concurrency?: number;
  /** @default {@link DEFAULT_BATCH_GET_MAX_ROUNDS} */
  readonly maxRounds?: number;
}

/** Keys still unprocessed when a round is over: the retrier's cue to back off and ask again. */
class UnprocessedKeys {
  constructor(readonly keys: Record<string, unknown>[]) {}
}

/**
 * Reads `keys` of one table with BatchGetItem: 100 keys per request, keys DynamoDB leaves
 * unprocessed asked again with backoff. Resolves with the raw items found, keyed
 * `pk + "\n" + sk`. A failed request rejects with the AWS SDK's error, for the caller to
 * translate; keys still unprocessed after `maxRounds` reject with a retriable `READ_FAILED`.
 * (dynamodb-toolbox's batch `execute` asks again without waiting, which hammers a throttled
 * table; hence this loop.)
 *
 * @example
 * const items = await batchGetItems(storage.documentClient, storage.tableName, keys, { consistent: true });
 */
export async function batchGetItems(
  documentClient: DynamoDBDocumentClient,
  tableName: string,
  keys: readonly ItemKey[],
  options: BatchGetItemsOptions,
): Promise<Map<string, Record<string, unknown>>> {
  const found = new Map<string, Record<string, unknown>>();
  const chunks: ItemKey[][] = [];
  for (let i = 0; i < keys.length; i += BATCH_GET_MAX_KEYS) chunks.push(keys.slice(i, i + BATCH_GET_MAX_KEYS));
  const maxRounds = options.maxRounds ?? DEFAULT_BATCH_GET_MAX_ROUNDS;
  const retry = createRetry({ maxAttempts: maxRounds, ...BATCH_GET_BACKOFF, retriable: (error) => error instanceof UnprocessedKeys });
  const readChunk = async (chunk: readonly ItemKey[]): Promise<void> => {
    let pending: Record<string, unknown>[] = chunk.map((key) => ({ pk: key.pk, sk: key.sk }));
    try {
      await retry(async () => {
        const out = await documentClient.send(
          new BatchGetCommand({
            RequestItems: {
              [tableName]: {
                Keys: pending,
                ConsistentRead: options.consistent,
                ...(options.projection ? { ProjectionExpression: options.projection.expression, ExpressionAttributeNames: { ...options.projection.names } } : {}),
              },
            },
          }),
        );
        for (const raw of out.Responses?.[tableName] ?? []) found.set(`${String(raw.pk)}\n${String(raw.sk)}`, raw);
        pending = (out.UnprocessedKeys?.[tableName]?.Keys ?? []) as Record<string, unknown>[];
        if (pending.length > 0) throw new UnprocessedKeys(pending);
      });
    } catch (error) {
      if (!(error instanceof UnprocessedKeys)) throw error;
      throw new SdkError(
        'READ_FAILED',
        `DynamoDB BatchGetItem on table "${tableName}" left ${error.keys.length} keys unprocessed after ${maxRounds} rounds (throttling); retry later, read fewer keys at once, or check the table's capacity`,
        { retriable: true, context: { table: tableName, unprocessed: error.keys.length } },
      );
    }
  };
  const queue = [...chunks];
  const workers = Array.from({ length: Math.min(Math.max(1, options.concurrency ?? 1), queue.length) }, async () => {
    for (let chunk = queue.shift(); chunk !== undefined; chunk = queue.shift()) await readChunk(chunk);
  });
  await Promise.all(workers);
  return found;
}

/** How a function's helper reaches the views table: the client and the table name, resolved on first use. */
export interface FunctionTableAccess {
  /** A document client over the given client (or one from the standard AWS environment). */
  documentClient(): DynamoDBDocumentClient;
  /** The given table, else `TRIBUTARY_TABLE`; throws `CONFIG_MISSING` naming `who` when neither is set. */
  tableName(): string;
}

/**
 * The views table as the SDK's function-side helpers (`once`, high-water marks) reach it: both
 * resolved lazily, so a module-level helper costs nothing until a handler uses it, and reads the
 * environment the Lambda runtime set.
 *
 * @example
 * const access = functionTableAccess({ dynamodb, table }, 'idempotency');
 * await access.documentClient().send(new GetCommand({ TableName: access.tableName(), Key }));
 */
export function functionTableAccess(
  options: { readonly dynamodb?: DynamoDBClient | DynamoDBDocumentClient; readonly table?: string },
  who: string,
): FunctionTableAccess {
  let client: DynamoDBDocumentClient | undefined;
  return {
    documentClient(): DynamoDBDocumentClient {
      if (!client) {
        const base = options.dynamodb ?? new DynamoDBClient({});
        client = base instanceof DynamoDBDocumentClient ? base : DynamoDBDocumentClient.from(base, DOCUMENT_CLIENT_OPTIONS);
      }
      return client;
    },
    tableName(): string {
      const table = options.table ?? process.env[ENV.table];
      if (!table) {
        throw new SdkError('CONFIG_MISSING', `${who}: no table name; set the ${ENV.table} environment variable (the app's views table) or pass { table }`);
      }
      return table;
    },
  };
}
