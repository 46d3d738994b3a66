/**
 * Run a side effect once per idempotency key, even though triggers are delivered at least
 * once. A marker item in the views table (`pk = "_idempotency"`, `sk = <key>`) moves from
 * `in-progress` (with a lease) to `completed`; a conditional put decides who runs the side
 * effect. A crash mid-side-effect leaves an `in-progress` marker whose lease expires, so a
 * redelivery runs it again; a completed key is skipped and its stored result returned.
 */
import { randomUUID } from 'node:crypto';
import { ConditionalCheckFailedException, DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DeleteCommand, DynamoDBDocumentClient, GetCommand, PutCommand } from '@aws-sdk/lib-dynamodb';
import { preview } from './define-fns.ts';
import { SdkError } from './errors.ts';
import type { LambdaContextLike } from './handler.ts';
import { functionTableAccess } from './storage.ts';
import { classifyAwsError } from './retry.ts';

/** Partition key of idempotency markers in the views table. */
export const IDEMPOTENCY_PK = '_idempotency';
/**
 * Completed markers live 7 days: longer than Kafka's default retention, the longest window in
 * which the engine can redeliver a change.
 */
export const DEFAULT_IDEMPOTENCY_TTL_SECONDS = 7 * 24 * 3600;
/**
 * Lease of an in-progress marker when no Lambda context tells the remaining time: long enough
 * for a typical side effect, short enough that a crashed run is retried within the trigger's
 * retries after a restart.
 */
export const DEFAULT_IN_PROGRESS_TIMEOUT_MS = 60_000;
/** Largest stored result (JSON), far under DynamoDB's 400 KB item cap. */
export const MAX_STORED_RESULT_BYTES = 64 * 1024;

/** Options of {@link createIdempotency}. */
export interface IdempotencyOptions {
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
   * Seconds a completed marker is kept (DynamoDB TTL attribute `ttl`).
   * @default {@link DEFAULT_IDEMPOTENCY_TTL_SECONDS}
   */
  readonly ttlSeconds?: number;
  /**
   * Lease of an in-progress marker; after it, another run may take over.
   * @default the Lambda context's remaining time when passed to `once`, else {@link DEFAULT_IN_PROGRESS_TIMEOUT_MS}
   */
  readonly inProgressTimeoutMs?: number;
}

/** Per-call options of {@link Idempotency.once}. */
export interface OnceOptions {
  /**
   * Lambda context of the current invocation: the lease then ends when the invocation would time out.
   * @default none
   */
  readonly lambda?: LambdaContextLike;
}

/** An idempotency store bound to a table. */
export interface Idempotency {
  /**
   * Runs `sideEffect` unless it already completed for `key`; returns its result (for a
   * duplicate, the stored JSON round-tripped result). Throws `IDEMPOTENCY_IN_PROGRESS`
   * (retriable) while another run holds the key, and rethrows the side effect's error after
   * releasing the key so a retry can run it.
   */
  once<T>(key: string, sideEffect: () => Promise<T> | T, options?: OnceOptions): Promise<T>;
}

interface Marker {
  readonly status: 'in-progress' | 'completed';
  readonly token?: string;
  readonly leaseUntilMs?: number;
  readonly result?: string;
}

/**
 * Creates an idempotency store on the views table.
 *
 * @example
 * const idempotency = createIdempotency({ dynamodb: new DynamoDBClient({ endpoint }), table: 'gym-views' });
 * await idempotency.once(`notifyInstructor:${change.idempotencyKey}`, () => sendEmail(change.after));
 */
export function createIdempotency(options: IdempotencyOptions = {}): Idempotency {
  const ttlSeconds = options.ttlSeconds ?? DEFAULT_IDEMPOTENCY_TTL_SECONDS;
  requirePositiveInt(ttlSeconds, 'ttlSeconds');
  if (options.inProgressTimeoutMs !== undefined) requirePositiveInt(options.inProgressTimeoutMs, 'inProgressTimeoutMs');
  const { documentClient, tableName } = functionTableAccess(options, 'idempotency');

  async function claim(key: string, token: string, leaseMs: number): Promise<'claimed' | Marker> {
    const table = tableName();
    const nowMs = Date.now();
    try {
      await documentClient().send(
        new PutCommand({
          TableName: table,
          Item: {
            pk: IDEMPOTENCY_PK,
            sk: key,
            status: 'in-progress',
            token,
            leaseUntilMs: nowMs + leaseMs,
            ttl: Math.floor(nowMs / 1000) + ttlSeconds,
            updatedAt: new Date(nowMs).toISOString(),
          },
          ConditionExpression: 'attribute_not_exists(pk) OR (#status = :inProgress AND leaseUntilMs < :now)',
          ExpressionAttributeNames: { '#status': 'status' },
          ExpressionAttributeValues: { ':inProgress': 'in-progress', ':now': nowMs },
        }),
      );
      return 'claimed';
    } catch (error) {
      if (!(error instanceof ConditionalCheckFailedException) && (error as Error)?.name !== 'ConditionalCheckFailedException') {
        throw storeError(key, table, error);
      }
    }
    const existing = await documentClient()
      .send(new GetCommand({ TableName: table, Key: { pk: IDEMPOTENCY_PK, sk: key }, ConsistentRead: true }))
      .catch((error: unknown) => {
        throw storeError(key, table, error);
      });
    // Released between our put and our read (the other run failed): try again.
    return (existing.Item as Marker | undefined) ?? claim(key, token, leaseMs);
  }

  return {
    async once<T>(key: string, sideEffect: () => Promise<T> | T, callOptions: OnceOptions = {}): Promise<T> {
      if (typeof key !== 'string' || key.length === 0 || Buffer.byteLength(key) > 1024) {
        throw new SdkError(
          'INVALID_ARGUMENT',
          `idempotency: key must be a non-empty string of at most 1024 bytes, received ${preview(key)}; use change.idempotencyKey, prefixed with the side effect's name`,
        );
      }
      if (typeof sideEffect !== 'function') {
        throw new SdkError('INVALID_ARGUMENT', `idempotency: sideEffect must be a function, received ${preview(sideEffect)}`);
      }
      const remaining = callOptions.lambda?.getRemainingTimeInMillis?.();
      const leaseMs = options.inProgressTimeoutMs ?? (remaining && remaining > 0 ? remaining : DEFAULT_IN_PROGRESS_TIMEOUT_MS);
      const token = randomUUID();
      const claimed = await claim(key, token, leaseMs);
      if (claimed !== 'claimed') {
        if (claimed.status === 'completed') {
          return (claimed.result === undefined ? undefined : JSON.parse(claimed.result)) as T;
        }
        throw new SdkError(
          'IDEMPOTENCY_IN_PROGRESS',
          `idempotency: key ${preview(key)} is being processed by another run (lease until ${new Date(claimed.leaseUntilMs ?? 0).toISOString()}); retry later`,
          { retriable: true, context: { key } },
        );
      }
      const table = tableName();
      let result: T;
      try {
        result = await sideEffect();
      } catch (error) {
        // Release the key so that the redelivery runs the side effect again, at once.
        await documentClient()
          .send(
            new DeleteCommand({
              TableName: table,
              Key: { pk: IDEMPOTENCY_PK, sk: key },
              ConditionExpression: '#token = :token',
              ExpressionAttributeNames: { '#token': 'token' },
              ExpressionAttributeValues: { ':token': token },
            }),
          )
          .catch(() => {
            // Best effort: if the release fails, the lease expires on its own.
          });
        throw error;
      }
      const text = result === undefined ? undefined : JSON.stringify(result);
      const nowMs = Date.now();
      try {
        await documentClient().send(
          new PutCommand({
            TableName: table,
            Item: {
              pk: IDEMPOTENCY_PK,
              sk: key,
              status: 'completed',
              token,
              ttl: Math.floor(nowMs / 1000) + ttlSeconds,
              updatedAt: new Date(nowMs).toISOString(),
              ...(text !== undefined && Buffer.byteLength(text) <= MAX_STORED_RESULT_BYTES ? { result: text } : {}),
            },
          }),
        );
      } catch (error) {
        // The side effect ran but is not recorded: a redelivery after the lease runs it again.
        throw storeError(key, table, error);
      }
      return result;
    },
  };
}

let defaultIdempotency: Idempotency | undefined;

/**
 * Runs `sideEffect` once per `key`, on the views table named by `TRIBUTARY_TABLE` with clients
 * from the standard AWS environment. See {@link Idempotency.once}; use {@link createIdempotency}
 * to inject clients (tests).
 *
 * @example
 * export const handler = onEachViewChange(classNearlyFull, async (change, context) => {
 *   await once(`notifyInstructor:${change.idempotencyKey}`, () => sendEmail(change.after), { lambda: context.lambda });
 * });
 */
export function once<T>(key: string, sideEffect: () => Promise<T> | T, options?: OnceOptions): Promise<T> {
  defaultIdempotency ??= createIdempotency();
  return defaultIdempotency.once(key, sideEffect, options);
}

function storeError(key: string, table: string, cause: unknown): SdkError {
  const name = (cause as Error)?.name ?? 'Error';
  return new SdkError(
    'IDEMPOTENCY_FAILED',
    `idempotency: could not read or write the marker of key ${preview(key)} in table "${table}" (${name}: ${(cause as Error)?.message ?? String(cause)}); check the table exists and the function may read and write it`,
    { retriable: classifyAwsError(cause).retriable, context: { key, table }, cause },
  );
}

function requirePositiveInt(value: unknown, what: string): void {
  if (!Number.isInteger(value) || (value as number) <= 0) {
    throw new SdkError('INVALID_ARGUMENT', `idempotency: ${what} must be a positive integer, received ${preview(value)}`);
  }
}
