import { TributaryError, type TributaryErrorOptions } from '../../sdk/index.ts';
import type { ViewItem } from '../../sdk/contract/index.ts';

/** Error codes of the engine. Stable: match on them, not on messages. */
export type EngineErrorCode =
  /** An option or environment variable is missing or malformed. */
  | 'INVALID_CONFIG'
  /** The app module could not be loaded or does not export a `defineApp()` result. */
  | 'APP_LOAD_FAILED'
  /** A poison record hit a view whose `onPoison` is `'stop'`. */
  | 'POISON_RECORD'
  /** A conditional write lost: the item changed since it was read (translated `ConditionalCheckFailedException`). */
  | 'WRITE_CONFLICT'
  /** An item kept changing under the engine for every retry of one batch. */
  | 'CONFLICT_RETRIES_EXHAUSTED'
  /** A DynamoDB call failed (anything but a lost condition). */
  | 'STORAGE_FAILED'
  /** A dead-letter record could not be produced; offsets are not committed. */
  | 'DEAD_LETTER_FAILED'
  /** Records of a repartitioned view could not be produced to its repartition topic; offsets are not committed. */
  | 'REPARTITION_FAILED'
  /** Trigger delivery failed in a way that is not a dead letter; offsets are not committed. */
  | 'TRIGGER_DELIVERY_FAILED'
  /**
   * The task may no longer own the partition of a batch (rebalanced, expelled, or paused past
   * its session timeout) while its changes were in hand: they were not delivered, the batch is
   * abandoned uncommitted, and the partition's owner delivers them.
   */
  | 'PARTITION_LOST'
  /** Start-up check: the views table (`TRIBUTARY_TABLE`) does not exist. */
  | 'TABLE_NOT_FOUND'
  /** Start-up check: the table exists but its keys are not the views table's (`pk` HASH S, `sk` RANGE S). */
  | 'TABLE_SCHEMA_MISMATCH'
  /** Start-up check: a trigger's function (through `TRIBUTARY_FUNCTION_NAMES`) does not exist. */
  | 'FUNCTION_NOT_FOUND'
  /**
   * Start-up check: a view's definition changed (its fingerprint) while its `version` did not;
   * bump the version, or accept the change with `acceptDefinitionChanges`.
   */
  | 'VIEW_DEFINITION_CHANGED'
  /** Start-up check: a view's `version` is below one already deployed on the table. */
  | 'VIEW_VERSION_OLDER'
  /**
   * A view build needs records the source topic no longer has (retention, deleted records);
   * the message says where history starts. `backfill: 'retained'` builds from there.
   */
  | 'BUILD_HISTORY_INCOMPLETE'
  /** A view build failed (Kafka or DynamoDB); the next start resumes it. */
  | 'BUILD_FAILED'
  /** Start-up check: a source topic does not exist on the brokers. */
  | 'TOPIC_NOT_FOUND'
  /** Start-up check: no broker of `KAFKA_BROKERS` answered within the connect timeout. */
  | 'KAFKA_UNREACHABLE'
  /** DynamoDB kept failing (retriable errors) for longer than `storageOutageBudgetMs`. */
  | 'STORAGE_OUTAGE_BUDGET_EXCEEDED'
  /** A programming error (TypeError, RangeError, ReferenceError, SyntaxError): a bug, never retried. */
  | 'INTERNAL_ERROR'
  /** Kafka (connect, consume, commit or admin) failed. */
  | 'KAFKA_FAILED'
  /** The engine was stopped while the operation was in progress. */
  | 'ENGINE_STOPPED'
  /** A test-driver call received something malformed. */
  | 'INVALID_ARGUMENT'
  /** Dead-letter replay: the view's letters cannot be replayed exactly (windowed, or aggregating a table); the message says what to do instead. */
  | 'REPLAY_UNSUPPORTED'
  /** Dead-letter replay: the view's version in the code is not the live one on the table (a build is pending or the code is older). */
  | 'REPLAY_VERSION_NOT_LIVE';

/** Context that explains an engine error. */
export interface EngineErrorContext {
  readonly view?: string;
  readonly key?: string;
  readonly trigger?: string;
  readonly topic?: string;
  readonly partition?: number;
  readonly offset?: string;
  readonly [field: string]: unknown;
}

declare module '../../sdk/index.ts' {
  interface TributaryErrorCodes {
    engine: EngineErrorCode;
  }
}

/**
 * Error of the engine: a stable `code`, whether retrying the same operation can succeed
 * (`retriable`), and the view/record coordinates that explain it.
 */
export class EngineError extends TributaryError<'engine', EngineErrorCode, EngineErrorContext> {
  override readonly name: string = 'EngineError';

  constructor(code: EngineErrorCode, message: string, options: TributaryErrorOptions<EngineErrorContext> = {}) {
    super('engine', code, message, options);
  }
}

/**
 * A conditional item write that lost (`WRITE_CONFLICT`), with the item as it was stored when the
 * condition failed when the store could tell (DynamoDB returns it with
 * `ReturnValuesOnConditionCheckFailure`): `stored.item` undefined means no item was stored.
 * A writer folds again from it instead of reading the item once more.
 */
export class WriteConflictError extends EngineError {
  constructor(
    message: string,
    readonly stored: { readonly item: ViewItem | undefined } | undefined,
    options: TributaryErrorOptions<EngineErrorContext> = {},
  ) {
    super('WRITE_CONFLICT', message, options);
  }
}

/** What a dead letter or a log line says of a thrown value. */
export interface ErrorInfo {
  readonly type: string;
  readonly message: string;
  /** The error's string `code`, when it has one (a {@link TributaryError}'s, e.g. `INVALID_ARGUMENT`; Node's). */
  readonly code?: string;
}

/**
 * Name, message and code of any thrown value, for logs and dead letters: a reducer that throws
 * a coded error (the built-in reducers throw `SdkError`s) leaves the code in the letter, to
 * match on instead of the message.
 *
 * @example
 * errorInfo(new SdkError('INVALID_ARGUMENT', 'min(): ...')); // { type: 'SdkError', message: 'min(): ...', code: 'INVALID_ARGUMENT' }
 */
export function errorInfo(error: unknown): ErrorInfo {
  if (error instanceof Error) {
    const code = (error as { code?: unknown }).code;
    return { type: error.name, message: error.message, ...(typeof code === 'string' && code !== '' ? { code } : {}) };
  }
  return { type: typeof error, message: String(error) };
}
