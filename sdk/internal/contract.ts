/**
 * What the engine, the SDK, the CDK app and the local stack must agree on, besides the table
 * layout (storage.ts): the table's key schema, environment variable names, metric names and
 * size limits. Each is spelled here once; docs/architecture.md ("Contract between the parts")
 * explains them.
 */

/** The views table's key schema: string partition key `pk`, string sort key `sk`. */
export const TABLE_KEY_SCHEMA = {
  partitionKey: 'pk',
  sortKey: 'sk',
} as const;

/**
 * The views table's global secondary indexes, both KEYS_ONLY (an index entry holds the table's
 * keys and its own, so an update of an item whose index attributes did not change writes no
 * index entry):
 * - `byKey`: every view item under `ixShard` = `v#<view>#<shard>` (one of
 *   {@link VIEW_INDEX_SHARDS} per view), sorted by `ixKey` = `k#<key>` (windowed items:
 *   `w#<pad15(start)>#<key>`); the scatter-gather behind `query` and `windowsAt`;
 * - `closing`: sparse, only items awaiting a final window result, under `closeShard` sorted by
 *   `closeAt` (epoch ms).
 * Every table creation (the CDK stack, `ensureViewsTable` for the local stack, tests and the
 * bench) takes its indexes from here.
 */
export const TABLE_INDEXES = {
  byKey: {
    indexName: 'byKey',
    partitionKey: { name: 'ixShard', type: 'S' },
    sortKey: { name: 'ixKey', type: 'S' },
    projection: 'KEYS_ONLY',
  },
  closing: {
    indexName: 'closing',
    partitionKey: { name: 'closeShard', type: 'S' },
    sortKey: { name: 'closeAt', type: 'N' },
    projection: 'KEYS_ONLY',
  },
} as const;

/** One of {@link TABLE_INDEXES}. */
export type TableIndex = (typeof TABLE_INDEXES)[keyof typeof TABLE_INDEXES];

/**
 * Shards of the `byKey` index per view: a view's index entries spread over this many partition
 * key values, so listing a view costs this many Queries per page. Part of the stored layout
 * (the shard of a key is written on its item): never changed without a migration.
 */
export const VIEW_INDEX_SHARDS = 16;

/** The views table's TTL attribute (epoch seconds): idempotency markers, high-water marks and windowed view items (their retention) set it. */
export const TABLE_TTL_ATTRIBUTE = 'ttl';

/**
 * Environment variables read at the edges (engine/main.ts, the Lambda handlers' SDK reads, the
 * dev script) and set by the CDK stack.
 */
export const ENV = {
  /** The views table. Set on the engine and every function. */
  table: 'TRIBUTARY_TABLE',
  /** The app's name. Set on the engine and every function; the engine checks it against the app it loaded. */
  app: 'TRIBUTARY_APP',
  /** The app's dead-letter topic. Set on the engine; it checks it against the app it loaded. */
  deadLetterTopic: 'TRIBUTARY_DEAD_LETTER_TOPIC',
  /** Module the engine loads its `defineApp()` from. */
  appModule: 'TRIBUTARY_APP_MODULE',
  /** JSON map of logical function name to deployed name or ARN. */
  functionNames: 'TRIBUTARY_FUNCTION_NAMES',
  groupId: 'TRIBUTARY_GROUP_ID',
  logLevel: 'TRIBUTARY_LOG_LEVEL',
  healthPort: 'TRIBUTARY_HEALTH_PORT',
  healthHost: 'TRIBUTARY_HEALTH_HOST',
  sessionTimeoutMs: 'TRIBUTARY_SESSION_TIMEOUT_MS',
  heartbeatIntervalMs: 'TRIBUTARY_HEARTBEAT_INTERVAL_MS',
  maxBytesPerPartition: 'TRIBUTARY_MAX_BYTES_PER_PARTITION',
  cacheMaxEntries: 'TRIBUTARY_CACHE_MAX_ENTRIES',
  cacheMaxBytes: 'TRIBUTARY_CACHE_MAX_BYTES',
  storageOutageBudgetMs: 'TRIBUTARY_STORAGE_OUTAGE_BUDGET_MS',
  /** Comma-separated view names whose changed definition the engine accepts without a version bump. */
  acceptDefinitionChanges: 'TRIBUTARY_ACCEPT_DEFINITION_CHANGES',
  /** Endpoint of the WebSocket API's `@connections` management API. Set on the live functions (fan-out, subscribe). */
  liveEndpoint: 'TRIBUTARY_LIVE_ENDPOINT',
  /** Issuer of the JWTs the live authorizer accepts (its JWKS at `<issuer>/.well-known/jwks.json` unless `liveJwksUrl`). */
  liveJwtIssuer: 'TRIBUTARY_LIVE_JWT_ISSUER',
  /** Audience the live authorizer requires of a JWT. */
  liveJwtAudience: 'TRIBUTARY_LIVE_JWT_AUDIENCE',
  /** JWKS URL of the JWT issuer. */
  liveJwksUrl: 'TRIBUTARY_LIVE_JWKS_URL',
  /** A shared HMAC secret (HS256) the live authorizer verifies tokens with instead of a JWKS: local dev and tests only. */
  liveHmacSecret: 'TRIBUTARY_LIVE_HMAC_SECRET',
} as const;

/** CloudWatch namespace of the engine's Embedded Metric Format lines; the CDK alarms read it. */
export const METRICS_NAMESPACE = 'Tributary';

/** Metric names the engine emits and the CDK app alarms and scales on. */
export const METRIC = {
  consumerLag: 'ConsumerLag',
  deadLetters: 'DeadLetters',
  /** Late events of a windowed view (not applied), per `App` and `View`. */
  lateEvents: 'LateEvents',
  /** Records a running view build still has to fold, per `App` and `View`. */
  buildRecordsRemaining: 'BuildRecordsRemaining',
} as const;

/**
 * Largest `maxStateBytes` of a view: its item also holds keys, version, offsets per source
 * partition and trigger bookkeeping, so the state gets at most this much of the 400 KB.
 */
export const MAX_STATE_BYTES = 350_000;

/**
 * Largest `maxStateBytes` of a view with triggers: while a change is undelivered the item holds
 * the state twice (current, and `before` for the change).
 */
export const MAX_TRIGGERED_STATE_BYTES = 190_000;
