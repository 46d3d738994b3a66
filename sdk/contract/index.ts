/**
 * The contract the engine, the SDK, the CDK app and the local stack share: the views table's
 * layout and key encoding, its key schema and indexes, environment variable names, metric
 * names, limits, and how values are shown in error messages. Tributary's own modules import it from here;
 * function code never needs it. docs/architecture.md ("Storage layout", "Contract between the
 * parts") describes it.
 */

// Table layout and key encoding
export {
  CHECKPOINT_SK_PREFIX,
  DEFAULT_BATCH_GET_MAX_ROUNDS,
  DOCUMENT_CLIENT_OPTIONS,
  ENGINE_PK,
  INDEX_KEY_PREFIX,
  MAX_VIEW_KEY_BYTES,
  MAX_WINDOW_START_MS,
  VIEW_PK_PREFIX,
  VIEW_REGISTRY_SK_PREFIX,
  VIEW_SK_UNWINDOWED,
  VIEW_SK_WINDOW_PREFIX,
  WINDOW_START_DIGITS,
  batchGetItems,
  checkpointKey,
  createStorage,
  encodeViewKey,
  encodeWindowStart,
  offsetsKey,
  viewIndexKey,
  viewIndexPartition,
  viewIndexShard,
  viewItemKey,
  viewKeyProblem,
  viewKeyProblemMessage,
  viewRegistryKey,
  viewSegment,
  windowIndexPrefix,
  windowStartProblem,
} from '../internal/storage.ts';
export type {
  BatchGetItemsOptions,
  CheckpointEntity,
  CheckpointItem,
  ItemKey,
  Storage,
  StorageOptions,
  ViewIndexKey,
  ViewItem,
  ViewItemEntity,
  ViewsTable,
} from '../internal/storage.ts';
export { IDEMPOTENCY_PK } from '../internal/idempotency.ts';

// Consumer groups of view builds (the engine names them; the CDK app grants them)
export { buildGroupId, buildGroupIds, repartitionFoldGroupId } from '../internal/consumer-groups.ts';
export { HIGH_WATER_MARK_SK_PREFIX } from '../internal/high-water-mark.ts';

// Live subscriptions: function names, routes, the fan-out trigger's name, the `live#` rows
export {
  LIVE_FUNCTIONS,
  LIVE_PK_PREFIX,
  LIVE_ROUTES,
  LIVE_ROW_TTL_S,
  connectionPk,
  keySubscriptionsPk,
  liveTriggerName,
  prefixSubscriptionsPk,
} from '../internal/live.ts';

// Exact numbers: the tagged form of a bigint in JSON and in the table
export { BIGINT_TAG, decodeState, parseState, reservedTagReason, stringifyState } from '../internal/exact-json.ts';
export type { TaggedBigint } from '../internal/exact-json.ts';

// Key schema, environment, metrics, limits
export {
  ENV,
  MAX_STATE_BYTES,
  MAX_TRIGGERED_STATE_BYTES,
  METRIC,
  METRICS_NAMESPACE,
  TABLE_INDEXES,
  TABLE_KEY_SCHEMA,
  TABLE_TTL_ATTRIBUTE,
  VIEW_INDEX_SHARDS,
} from '../internal/contract.ts';
export type { TableIndex } from '../internal/contract.ts';

// Retries: one classifier of AWS errors, one backoff, one retrier
export { backoffMs, classifyAwsError, createRetry, isProgrammingError } from '../internal/retry.ts';
export type { AwsErrorClass, AwsErrorKind, BackoffOptions, Bail, RetryPolicyOptions } from '../internal/retry.ts';

// Error messages
export { preview } from '../internal/define-fns.ts';
