/**
 * A per-key high-water mark for trigger handlers: the highest change version a handler accepted
 * for each key, so a change older than it is refused and a handler never sees a key's versions
 * go backwards. The engine already fences its own deliveries by partition ownership; this is
 * the function-side belt for what no engine can fence (a stale task's invocation that was
 * already on the wire when the task was paused). Marks live in the views table beside the
 * `once()` markers, under `pk = "_idempotency"` (the only partition key functions may write)
 * with sort keys starting `_hwm#`.
 */
import { createHash } from 'node:crypto';
import { ConditionalCheckFailedException, DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DynamoDBDocumentClient, PutCommand } from '@aws-sdk/lib-dynamodb';
import type { Change } from './define.ts';
import { preview } from './define-fns.ts';
import { SdkError } from './errors.ts';
import { DEFAULT_IDEMPOTENCY_TTL_SECONDS, IDEMPOTENCY_PK } from './idempotency.ts';
import { functionTableAccess } from './storage.ts';
import { classifyAwsError } from './retry.ts';

/** Sort-key prefix of high-water marks under {@link IDEMPOTENCY_PK}; `once()` keys are the caller's own. */
export const HIGH_WATER_MARK_SK_PREFIX = '_hwm#';
/** DynamoDB's cap on a sort key; longer marks are named by a hash of the item instead. */
const MAX_SORT_KEY_BYTES = 1024;

/** Where a handler wrapper records and checks the highest version accepted per key. */
export interface HighWaterMark {
  /**
   * Accepts `change` for `trigger` when its version is at or above the highest accepted for its
   * key (equal: a redelivery of the same change, e.g. after a failed attempt), and raises the
   * mark to it; resolves false, changing nothing, when a newer version was accepted already.
   */
  accept(trigger: string, change: Pick<Change, 'view' | 'key' | 'window' | 'version' | 'viewVersion'>): Promise<boolean>;
}

/** Options of {@link createHighWaterMark}. */
export interface HighWaterMarkOptions {
  /**
   * DynamoDB client (plain or document client).
   * @default a client from the standard AWS environment (`AWS_REGION`, `AWS_ENDPOINT_URL_DYNAMODB`, …)
   */
  readonly dynamodb?: DynamoDBClient | DynamoDBDocumentClient;
  /**
   * Views table name.
   * @default the `TRIBUTARY_TABLE` environment variable, read on first use
   */
  readonly table?: string;
  /**
   * Seconds a mark is kept after its last raise (DynamoDB TTL attribute `ttl`).
   * @default {@link DEFAULT_IDEMPOTENCY_TTL_SECONDS} (the longest window in which the engine redelivers a change)
   */
  readonly ttlSeconds?: number;
}

/** Sort key of the mark of one trigger's item. */
export function highWaterMarkSortKey(trigger: string, change: Pick<Change, 'view' | 'key' | 'window' | 'viewVersion'>): string {
  // A rebuilt view version counts item versions afresh: its marks are its own.
  const view = change.viewVersion === undefined || change.viewVersion === 1 ? change.view : `${change.view}@${change.viewVersion}`;
  const sk = `${HIGH_WATER_MARK_SK_PREFIX}${trigger}#${view}#${change.window?.start ?? ''}#${change.key}`;
  if (Buffer.byteLength(sk) <= MAX_SORT_KEY_BYTES) return sk;
  return `${HIGH_WATER_MARK_SK_PREFIX}sha256:${createHash('sha256').update(sk).digest('hex')}`;
}

/**
 * Creates a high-water mark on the views table: one conditional PutItem per accepted change.
 *
 * @example
 * const highWaterMark = createHighWaterMark({ dynamodb: new DynamoDBClient({ endpoint }), table: 'gym-views' });
 * export const handler = onEachViewChange(classNearlyFull, notify, { highWaterMark });
 */
export function createHighWaterMark(options: HighWaterMarkOptions = {}): HighWaterMark {
  const ttlSeconds = options.ttlSeconds ?? DEFAULT_IDEMPOTENCY_TTL_SECONDS;
  if (!Number.isInteger(ttlSeconds) || ttlSeconds <= 0) {
    throw new SdkError('INVALID_ARGUMENT', `high-water mark: ttlSeconds must be a positive integer, received ${preview(ttlSeconds)}`);
  }
  const { documentClient, tableName } = functionTableAccess(options, 'high-water mark');
  return {
    async accept(trigger, change) {
      const table = tableName();
      const nowMs = Date.now();
      try {
        await documentClient().send(
          new PutCommand({
            TableName: table,
            Item: {
              pk: IDEMPOTENCY_PK,
              sk: highWaterMarkSortKey(trigger, change),
              version: change.version,
              ttl: Math.floor(nowMs / 1000) + ttlSeconds,
              updatedAt: new Date(nowMs).toISOString(),
            },
            ConditionExpression: 'attribute_not_exists(pk) OR #version <= :version',
            ExpressionAttributeNames: { '#version': 'version' },
            ExpressionAttributeValues: { ':version': change.version },
          }),
        );
        return true;
      } catch (error) {
        if (error instanceof ConditionalCheckFailedException || (error as Error)?.name === 'ConditionalCheckFailedException') return false;
        const name = (error as Error)?.name ?? 'Error';
        throw new SdkError(
          'HIGH_WATER_MARK_FAILED',
          `trigger "${trigger}": could not raise the high-water mark of key ${preview(change.key)} to version ${change.version} in table "${table}" (${name}: ${(error as Error)?.message ?? String(error)}); check the table exists and the function may write items under pk "${IDEMPOTENCY_PK}"`,
          {
            retriable: classifyAwsError(error).retriable,
            context: { trigger, view: change.view, key: change.key, table },
            cause: error,
          },
        );
      }
    },
  };
}

let defaultHighWaterMark: HighWaterMark | undefined;

/** The high-water mark on the table named by `TRIBUTARY_TABLE`, for `highWaterMark: true`. */
export function defaultHighWaterMarkStore(): HighWaterMark {
  defaultHighWaterMark ??= createHighWaterMark();
  return defaultHighWaterMark;
}
