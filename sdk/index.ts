// Definitions
export {
  DEFAULT_DELETE_RETENTION_MS,
  DEFAULT_LOOKUP_MAX_AGE_MS,
  DEFAULT_RETENTION_FACTOR,
  defineApp,
  defineTable,
  defineTrigger,
  defineView,
  hopping,
  jsonBigintDecoder,
  jsonDecoder,
  MAX_HOPPING_WINDOWS_PER_EVENT,
  MAX_WINDOW_DURATION_MS,
  repartitionTopic,
  session,
  tumbling,
} from './internal/define-fns.ts';
export type {
  App,
  AppOptions,
  Change,
  Decoder,
  EventOf,
  EventSchema,
  EventTime,
  JsonDecoding,
  LatePolicy,
  LookedUp,
  Lookup,
  Lookups,
  PoisonPolicy,
  RetryOptions,
  RowChange,
  Table,
  TableOptions,
  TableViewOptions,
  SourceRecord,
  StateOf,
  Trigger,
  TriggerChanges,
  TriggerOptions,
  View,
  ViewKey,
  ViewOptions,
  WindowBounds,
  WindowCommon,
  WindowDefinition,
  WindowEmit,
  WindowSpec,
} from './internal/define.ts';

export { DELETE } from './internal/define.ts';
export type { Delete } from './internal/define.ts';

// Live subscriptions (a view's `live` option; the handlers are in tributary/live)
export type { LiveApp, LiveAppOptions, LivePrincipal, LiveView, LiveViewOptions } from './internal/live.ts';

// Exact numbers past 2^53 (bigint in state, keys and decoding)
export { BIGINT_TAG, decodeState, parseJsonExact, parseJsonStrict } from './internal/exact-json.ts';
export type { TaggedBigint } from './internal/exact-json.ts';

// Errors
export { DefinitionError, SdkError, TributaryError, isTributaryError } from './internal/errors.ts';
export type {
  ErrorModule,
  SdkErrorCode,
  SdkErrorContext,
  TributaryErrorCode,
  TributaryErrorCodes,
  TributaryErrorOptions,
} from './internal/errors.ts';

// Built-in reducers (plain functions composed into a view's reduce)
export {
  avg,
  avgValue,
  collect,
  count,
  countDistinct,
  countDistinctValue,
  DEFAULT_COLLECT_MAX,
  DEFAULT_COUNT_DISTINCT_MAX,
  earliest,
  earliestByTime,
  histogram,
  HLL_REGISTERS,
  latest,
  latestByTime,
  max,
  min,
  removeWhere,
  stddev,
  stddevValue,
  sum,
  topK,
  varianceValue,
} from './internal/reducers.ts';
export type {
  AggregateNulls,
  AggregateOptions,
  ApproxDistinctState,
  AvgState,
  CollectOptions,
  CountDistinctOptions,
  DistinctState,
  DistinctValue,
  HistogramOptions,
  LatestOptions,
  LatestState,
  Ordered,
  OrderedInput,
  OrderOptions,
  SpreadKind,
  StddevState,
  Timestamp,
  TopKOptions,
  ValueNulls,
} from './internal/reducers.ts';

// View reads (get / getMany / query, windowed reads, read-your-writes waitFor)
export { createViewReader, DEFAULT_QUERY_LIMIT, DEFAULT_WAIT_TIMEOUT_MS, MAX_QUERY_LIMIT } from './internal/reads.ts';
export type {
  SourcePosition,
  ViewGetOptions,
  ViewInfo,
  ViewKeyRange,
  ViewQueryOptions,
  ViewQueryPage,
  ViewReader,
  ViewReaderOptions,
  ViewSnapshot,
  ViewVersionInfo,
  ViewWaitOptions,
  ViewWindowsAtOptions,
  ViewWindowsOptions,
  WindowRetention,
  WindowSnapshot,
  WindowsAtPage,
  WindowsPage,
} from './internal/reads.ts';

// Trigger functions (Lambda handlers of view changes) and their idempotency helper
export { DEFAULT_ON_EACH_CONCURRENCY, onEachViewChange, onViewChange } from './internal/handler.ts';
export type {
  BatchItemFailure,
  LambdaContextLike,
  OnEachViewChangeOptions,
  OnViewChangeOptions,
  ViewChangeBatchHandler,
  ViewChangeContext,
  ViewChangeEvent,
  ViewChangeItemHandler,
  ViewChangeLambdaHandler,
  ViewChangeResponse,
} from './internal/handler.ts';
export { createIdempotency, IDEMPOTENCY_PK, once } from './internal/idempotency.ts';
export type { Idempotency, IdempotencyOptions, OnceOptions } from './internal/idempotency.ts';
export { createHighWaterMark, HIGH_WATER_MARK_SK_PREFIX } from './internal/high-water-mark.ts';
export type { HighWaterMark, HighWaterMarkOptions } from './internal/high-water-mark.ts';
