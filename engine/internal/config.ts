/**
 * Engine options: the public {@link EngineOptions} (every field optional except the app and
 * table, documented with its default), the one function that fills defaults and validates them
 * into a readonly {@link EngineConfig}, and the helpers that read the standard environment
 * variables at the edge (engine/main.ts).
 */
import { isIP } from 'node:net';
import type { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import type { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import type { LambdaClient } from '@aws-sdk/client-lambda';
import type { Kafka, KafkaConfig, SASLOptions } from 'kafkajs';
import type { App } from '../../sdk/index.ts';
import { ENV, MAX_TRIGGERED_STATE_BYTES, preview } from '../../sdk/contract/index.ts';
import { EngineError } from './errors.ts';
import type { LogLevel } from './log.ts';
import { mskIamTokenProvider } from './msk-iam.ts';

/** Hot items stay cached; 100k small states fit well inside a Fargate task's memory. */
export const DEFAULT_CACHE_MAX_ENTRIES = 100_000;
/** Caps cache memory independently of state sizes; leaves room for Node and batches in a 1 GB task. */
export const DEFAULT_CACHE_MAX_BYTES = 256 * 1024 * 1024;
/** Partitions processed at once per task; each runs one batch at a time, so per-partition order holds. */
export const DEFAULT_PARTITIONS_CONSUMED_CONCURRENTLY = 4;
/** Conditional writes in flight per batch; DynamoDB scales with parallel requests, memory stays small. */
export const DEFAULT_WRITE_CONCURRENCY = 32;
/** BatchGetItem requests (of up to 100 keys) in flight per batch. */
export const DEFAULT_READ_CONCURRENCY = 8;
/** Two tasks writing one hot item conflict now and then; ten losses in a row means something is wrong. */
export const DEFAULT_MAX_CONFLICT_RETRIES = 10;
/** Retriable failures other than storage ones (a dead letter or trigger change that cannot be handed on) get this many batch attempts before the engine stops. */
export const DEFAULT_MAX_BATCH_ATTEMPTS = 6;
/**
 * A DynamoDB outage is ridden out this long before the task stops. Regional blips and throttling
 * storms last seconds to minutes; a task that retried longer would hide a real outage from the
 * orchestrator and the alarms, and an ECS replacement task starts over with the same budget.
 */
export const DEFAULT_STORAGE_OUTAGE_BUDGET_MS = 5 * 60_000;
/** Backoff between batch attempts starts here... */
export const DEFAULT_BATCH_RETRY_INITIAL_MS = 200;
/** ...and doubles up to this. */
export const DEFAULT_BATCH_RETRY_MAX_MS = 10_000;
/** kafkajs default; a task that stops heartbeating for this long loses its partitions. */
export const DEFAULT_SESSION_TIMEOUT_MS = 30_000;
/** A third of the session timeout or less, as Kafka recommends. */
export const DEFAULT_HEARTBEAT_INTERVAL_MS = 3_000;
/** Bytes fetched per partition and poll: large batches amortize reads and writes. */
export const DEFAULT_MAX_BYTES_PER_PARTITION = 1024 * 1024;
/** ECS waits 30 s between SIGTERM and SIGKILL by default; finish within that. */
export const DEFAULT_SHUTDOWN_GRACE_MS = 25_000;
/** CloudWatch metrics at one-minute resolution need at most one point per minute; 10 s keeps dashboards lively. */
export const DEFAULT_METRICS_INTERVAL_MS = 10_000;
/**
 * How often the engine looks for closed windows of `emit: 'final'` views and quiet partitions
 * (`idleCloseMs`): one closing-index Query per final view and owned partition. A final result
 * appears at most about this long after its window closed.
 */
export const DEFAULT_WINDOW_CLOSE_INTERVAL_MS = 1_000;
/** {@link EngineOptions.replacedVersionGraceMs}: a minute, twelve times a reader's default alias cache. */
export const DEFAULT_REPLACED_VERSION_GRACE_MS = 60_000;
/**
 * Start-up bound on reaching a broker. A broker that is up answers in milliseconds; kafkajs'
 * own connect retries take about 10 s to give up on refused connections and longer on a
 * blackholed address, and a task with a wrong KAFKA_BROKERS should say so before ECS gives up on it.
 */
export const DEFAULT_KAFKA_CONNECT_TIMEOUT_MS = 10_000;
/** The container health check port (docs/architecture.md, "Metrics, logs and health"). */
export const DEFAULT_HEALTH_PORT = 8080;
/**
 * Loopback: outside a container (`npm run dev`, `npm run engine`) the health endpoint is for this
 * machine only. The container image sets `TRIBUTARY_HEALTH_HOST=0.0.0.0`, where the container's
 * own network namespace is the boundary.
 */
export const DEFAULT_HEALTH_HOST = '127.0.0.1';

/** Options of {@link startEngine}. */
export interface EngineOptions {
  /** The app to run (`defineApp()` result). Required. */
  app?: App;
  /** Views table name. Required (`TRIBUTARY_TABLE` in the container). */
  tableName?: string;
  /**
   * A kafkajs `Kafka` instance or a `KafkaConfig` (pass one, not both).
   * @default a config from `KAFKA_BROKERS`, `KAFKA_AUTH`, `KAFKA_SSL`, `KAFKA_SASL_*`
   */
  kafka?: Kafka | KafkaConfig;
  /**
   * DynamoDB client (or document client).
   * @default `new DynamoDBClient({})` — region, endpoint and credentials from the standard AWS environment
   */
  dynamodb?: DynamoDBClient | DynamoDBDocumentClient;
  /**
   * Lambda client for triggers.
   * @default `new LambdaClient({})` from the standard AWS environment
   */
  lambda?: LambdaClient;
  /**
   * Consumer group id.
   * @default the app name
   */
  groupId?: string;
  /**
   * Logical function name -> deployed name or ARN.
   * @default identity
   */
  functionNames?: Readonly<Record<string, string>>;
  /** @default {@link DEFAULT_CACHE_MAX_ENTRIES} */
  cacheMaxEntries?: number;
  /** @default {@link DEFAULT_CACHE_MAX_BYTES} */
  cacheMaxBytes?: number;
  /** @default {@link DEFAULT_PARTITIONS_CONSUMED_CONCURRENTLY} */
  partitionsConsumedConcurrently?: number;
  /** @default {@link DEFAULT_WRITE_CONCURRENCY} */
  writeConcurrency?: number;
  /** @default {@link DEFAULT_READ_CONCURRENCY} */
  readConcurrency?: number;
  /** @default {@link DEFAULT_MAX_CONFLICT_RETRIES} */
  maxConflictRetries?: number;
  /**
   * Attempts of a batch or checkpoint failing with a retriable error other than a storage one
   * (dead letters that cannot be produced, trigger changes that cannot be handed on). Storage
   * errors are bounded by `storageOutageBudgetMs` instead; programming errors are never retried.
   * @default {@link DEFAULT_MAX_BATCH_ATTEMPTS}
   */
  maxBatchAttempts?: number;
  /**
   * How long a batch or checkpoint may keep failing with retriable DynamoDB errors (backing off
   * up to 10 s between attempts) before the task stops with `STORAGE_OUTAGE_BUDGET_EXCEEDED`.
   * Meanwhile the task is `degraded`: /health answers 200 with `"state":"degraded"` and the reason.
   * `TRIBUTARY_STORAGE_OUTAGE_BUDGET_MS` in the container.
   * @default {@link DEFAULT_STORAGE_OUTAGE_BUDGET_MS}
   */
  storageOutageBudgetMs?: number;
  /** @default {@link DEFAULT_SESSION_TIMEOUT_MS} */
  sessionTimeoutMs?: number;
  /** @default {@link DEFAULT_HEARTBEAT_INTERVAL_MS} */
  heartbeatIntervalMs?: number;
  /** @default {@link DEFAULT_MAX_BYTES_PER_PARTITION} */
  maxBytesPerPartition?: number;
  /** @default {@link DEFAULT_SHUTDOWN_GRACE_MS} */
  shutdownGraceMs?: number;
  /**
   * How long the start-up check waits for the brokers before failing with `KAFKA_UNREACHABLE`.
   * @default {@link DEFAULT_KAFKA_CONNECT_TIMEOUT_MS}
   */
  kafkaConnectTimeoutMs?: number;
  /**
   * Interval of the EMF metrics line and of the lag probe (high watermarks and committed offsets
   * of the assigned partitions, read from the brokers; also probed on every group join).
   * @default {@link DEFAULT_METRICS_INTERVAL_MS}
   */
  metricsIntervalMs?: number;
  /**
   * Interval of the closing scan of windowed views (final results, idle close).
   * @default {@link DEFAULT_WINDOW_CLOSE_INTERVAL_MS}
   */
  windowCloseIntervalMs?: number;
  /**
   * Port of the HTTP health endpoint (`GET /health`); 0 picks a free port; `null` serves none.
   * @default null (engine/main.ts passes `TRIBUTARY_HEALTH_PORT`, default 8080)
   */
  healthPort?: number | null;
  /**
   * Address the health endpoint binds to; `'0.0.0.0'` for every interface.
   * @default {@link DEFAULT_HEALTH_HOST} (engine/main.ts passes `TRIBUTARY_HEALTH_HOST`, which the container image sets to 0.0.0.0)
   */
  healthHost?: string;
  /**
   * Views whose definition may have changed without a `version` bump: the engine records the
   * new fingerprint instead of refusing to start with `VIEW_DEFINITION_CHANGED`. Only for a
   * change that cannot alter any state (a refactoring, a renamed variable); the view's items
   * are kept as they are. `TRIBUTARY_ACCEPT_DEFINITION_CHANGES` (comma-separated view names)
   * for engine/main.ts.
   * @default [] (every change needs a version bump)
   */
  acceptDefinitionChanges?: readonly string[];
  /**
   * How long after a view's alias flipped to a new version the items of the versions it
   * replaced start to be deleted (engine/internal/retire.ts): reads that resolved the alias
   * before the swap, and paged reads bound to the old version, finish on whole items first.
   * @default {@link DEFAULT_REPLACED_VERSION_GRACE_MS}
   */
  replacedVersionGraceMs?: number;
  /** @default 'info' */
  logLevel?: LogLevel;
  /**
   * Where log lines go (one JSON object per line).
   * @default process.stdout
   */
  logSink?: (line: string) => void;
  /**
   * Stop gracefully on SIGTERM and SIGINT. Repeats within `DEFAULT_FORCE_AFTER_MS` of the first
   * are the same request (Ctrl-C under `tsx` or `npm run` arrives twice); a later one exits at once.
   * @default false (engine/main.ts turns it on)
   */
  handleSignals?: boolean;
}

/** The validated, defaulted configuration of a running engine. */
export interface EngineConfig {
  readonly app: App;
  readonly tableName: string;
  readonly groupId: string;
  readonly functionNames: Readonly<Record<string, string>>;
  readonly cacheMaxEntries: number;
  readonly cacheMaxBytes: number;
  readonly partitionsConsumedConcurrently: number;
  readonly writeConcurrency: number;
  readonly readConcurrency: number;
  readonly maxConflictRetries: number;
  readonly maxBatchAttempts: number;
  readonly storageOutageBudgetMs: number;
  readonly sessionTimeoutMs: number;
  readonly heartbeatIntervalMs: number;
  readonly maxBytesPerPartition: number;
  readonly shutdownGraceMs: number;
  readonly kafkaConnectTimeoutMs: number;
  readonly metricsIntervalMs: number;
  readonly windowCloseIntervalMs: number;
  readonly healthPort: number | null;
  readonly healthHost: string;
  readonly logLevel: LogLevel;
  readonly handleSignals: boolean;
  readonly acceptDefinitionChanges: ReadonlySet<string>;
  readonly replacedVersionGraceMs: number;
}

const LOG_LEVELS: readonly LogLevel[] = ['debug', 'info', 'warn', 'error'];

function positiveInt(name: string, value: number | undefined, fallback: number, min = 1): number {
  const v = value ?? fallback;
  if (!Number.isInteger(v) || v < min) {
    throw new EngineError('INVALID_CONFIG', `${name} must be an integer >= ${min}, received ${preview(value)}`, {
      context: { option: name },
    });
  }
  return v;
}

/**
 * Fills defaults and validates options across fields.
 *
 * @example
 * const config = compileConfig({ app, tableName: 'gym-views' });
 */
export function compileConfig(options: EngineOptions): EngineConfig {
  const app = options.app;
  if (!app || app.kind !== 'app') {
    throw new EngineError('INVALID_CONFIG', `app must be a defineApp() result, received ${preview(app)}; pass { app }`);
  }
  const tableName = options.tableName;
  if (typeof tableName !== 'string' || !/^[A-Za-z0-9_.-]{3,255}$/.test(tableName)) {
    throw new EngineError(
      'INVALID_CONFIG',
      `tableName must be a DynamoDB table name (3-255 letters, digits, "_", "-", "."), received ${preview(tableName)}; set TRIBUTARY_TABLE or pass tableName`,
    );
  }
  for (const view of app.views) {
    // An item with undelivered trigger changes holds the state twice (current and `before`).
    const triggered = app.triggers.some((t) => t.view.name === view.name);
    if (triggered && view.maxStateBytes > MAX_TRIGGERED_STATE_BYTES) {
      throw new EngineError(
        'INVALID_CONFIG',
        `view "${view.name}" has triggers and maxStateBytes ${view.maxStateBytes}; an item with an undelivered change stores the state twice, which would pass DynamoDB's 400 KB item cap. Use maxStateBytes <= ${MAX_TRIGGERED_STATE_BYTES}`,
        { context: { view: view.name } },
      );
    }
  }
  const groupId = options.groupId ?? app.name;
  if (typeof groupId !== 'string' || groupId.length === 0) {
    throw new EngineError('INVALID_CONFIG', `groupId must be a non-empty string, received ${preview(groupId)}`);
  }
  const functionNames = options.functionNames ?? {};
  for (const [logical, deployed] of Object.entries(functionNames)) {
    if (typeof deployed !== 'string' || deployed.length === 0) {
      throw new EngineError(
        'INVALID_CONFIG',
        `functionNames["${logical}"] must be a function name or ARN, received ${preview(deployed)}`,
      );
    }
  }
  const sessionTimeoutMs = positiveInt('sessionTimeoutMs', options.sessionTimeoutMs, DEFAULT_SESSION_TIMEOUT_MS);
  const heartbeatIntervalMs = positiveInt('heartbeatIntervalMs', options.heartbeatIntervalMs, DEFAULT_HEARTBEAT_INTERVAL_MS);
  if (heartbeatIntervalMs >= sessionTimeoutMs) {
    throw new EngineError(
      'INVALID_CONFIG',
      `heartbeatIntervalMs (${heartbeatIntervalMs}) must be below sessionTimeoutMs (${sessionTimeoutMs}); use about a third of it`,
    );
  }
  const healthPort = options.healthPort === undefined ? null : options.healthPort;
  if (healthPort !== null && (!Number.isInteger(healthPort) || healthPort < 0 || healthPort > 65_535)) {
    throw new EngineError('INVALID_CONFIG', `healthPort must be 0-65535 or null, received ${preview(healthPort)}`);
  }
  const logLevel = options.logLevel ?? 'info';
  if (!LOG_LEVELS.includes(logLevel)) {
    throw new EngineError('INVALID_CONFIG', `logLevel must be one of ${LOG_LEVELS.join(', ')}, received ${preview(logLevel)}`);
  }
  const accepted = options.acceptDefinitionChanges ?? [];
  if (!Array.isArray(accepted)) {
    throw new EngineError('INVALID_CONFIG', `acceptDefinitionChanges must be an array of view names, received ${preview(accepted)}`);
  }
  for (const name of accepted) {
    if (!app.views.some((v) => v.name === name)) {
      throw new EngineError(
        'INVALID_CONFIG',
        `acceptDefinitionChanges names ${preview(name)}, which is not a view of app "${app.name}" (views: ${app.views.map((v) => v.name).join(', ')})`,
      );
    }
  }
  return Object.freeze({
    app,
    tableName,
    groupId,
    functionNames: Object.freeze({ ...functionNames }),
    cacheMaxEntries: positiveInt('cacheMaxEntries', options.cacheMaxEntries, DEFAULT_CACHE_MAX_ENTRIES, 0),
    cacheMaxBytes: positiveInt('cacheMaxBytes', options.cacheMaxBytes, DEFAULT_CACHE_MAX_BYTES, 0),
    partitionsConsumedConcurrently: positiveInt(
      'partitionsConsumedConcurrently',
      options.partitionsConsumedConcurrently,
      DEFAULT_PARTITIONS_CONSUMED_CONCURRENTLY,
    ),
    writeConcurrency: positiveInt('writeConcurrency', options.writeConcurrency, DEFAULT_WRITE_CONCURRENCY),
    readConcurrency: positiveInt('readConcurrency', options.readConcurrency, DEFAULT_READ_CONCURRENCY),
    maxConflictRetries: positiveInt('maxConflictRetries', options.maxConflictRetries, DEFAULT_MAX_CONFLICT_RETRIES),
    maxBatchAttempts: positiveInt('maxBatchAttempts', options.maxBatchAttempts, DEFAULT_MAX_BATCH_ATTEMPTS),
    storageOutageBudgetMs: positiveInt('storageOutageBudgetMs', options.storageOutageBudgetMs, DEFAULT_STORAGE_OUTAGE_BUDGET_MS),
    sessionTimeoutMs,
    heartbeatIntervalMs,
    maxBytesPerPartition: positiveInt('maxBytesPerPartition', options.maxBytesPerPartition, DEFAULT_MAX_BYTES_PER_PARTITION),
    shutdownGraceMs: positiveInt('shutdownGraceMs', options.shutdownGraceMs, DEFAULT_SHUTDOWN_GRACE_MS),
    kafkaConnectTimeoutMs: positiveInt('kafkaConnectTimeoutMs', options.kafkaConnectTimeoutMs, DEFAULT_KAFKA_CONNECT_TIMEOUT_MS),
    metricsIntervalMs: positiveInt('metricsIntervalMs', options.metricsIntervalMs, DEFAULT_METRICS_INTERVAL_MS),
    windowCloseIntervalMs: positiveInt('windowCloseIntervalMs', options.windowCloseIntervalMs, DEFAULT_WINDOW_CLOSE_INTERVAL_MS),
    healthPort,
    healthHost: options.healthHost ?? DEFAULT_HEALTH_HOST,
    logLevel,
    handleSignals: options.handleSignals ?? false,
    acceptDefinitionChanges: new Set<string>(accepted),
    replacedVersionGraceMs: positiveInt('replacedVersionGraceMs', options.replacedVersionGraceMs, DEFAULT_REPLACED_VERSION_GRACE_MS, 0),
  });
}

/** Environment variables, as `process.env`. */
export type Env = Readonly<Record<string, string | undefined>>;

function required(env: Env, name: string, hint: string): string {
  const value = env[name];
  if (value === undefined || value.trim() === '') {
    throw new EngineError('INVALID_CONFIG', `environment variable ${name} is not set; ${hint}`, { context: { variable: name } });
  }
  return value.trim();
}

/**
 * Builds a kafkajs config from the standard variables: `KAFKA_BROKERS` (comma-separated
 * host:port), `KAFKA_AUTH` (`none` | `scram-sha-512` | `msk-iam`), `KAFKA_SSL=true`,
 * `KAFKA_SASL_USERNAME` / `KAFKA_SASL_PASSWORD`. Both SASL kinds force TLS; `msk-iam` signs
 * OAUTHBEARER tokens for `AWS_REGION` with the default AWS credentials (see msk-iam.ts).
 *
 * @example
 * const kafka = new Kafka(kafkaConfigFromEnv(process.env));
 */
export function kafkaConfigFromEnv(env: Env, clientId = 'tributary-engine'): KafkaConfig {
  const brokers = required(env, 'KAFKA_BROKERS', 'set it to a comma-separated list of host:port, e.g. "127.0.0.1:9092"')
    .split(',')
    .map((b) => b.trim())
    .filter((b) => b.length > 0);
  for (const broker of brokers) {
    if (!/^[^\s:]+:\d{1,5}$/.test(broker)) {
      throw new EngineError('INVALID_CONFIG', `KAFKA_BROKERS entry ${preview(broker)} is not host:port; e.g. "b-1.msk.example.com:9096"`);
    }
  }
  const auth = (env.KAFKA_AUTH ?? 'none').trim() || 'none';
  const ssl = (env.KAFKA_SSL ?? '').trim().toLowerCase() === 'true';
  let sasl: SASLOptions | undefined;
  if (auth === 'scram-sha-512') {
    sasl = {
      mechanism: 'scram-sha-512',
      username: required(env, 'KAFKA_SASL_USERNAME', 'KAFKA_AUTH=scram-sha-512 needs the SASL user name'),
      password: required(env, 'KAFKA_SASL_PASSWORD', 'KAFKA_AUTH=scram-sha-512 needs the SASL password'),
    };
  } else if (auth === 'msk-iam') {
    const region = required(
      env,
      'AWS_REGION',
      'KAFKA_AUTH=msk-iam signs its auth token for the MSK cluster\'s region; set AWS_REGION to that region, e.g. "eu-west-1" (ECS sets it in tasks)',
    );
    sasl = { mechanism: 'oauthbearer', oauthBearerProvider: mskIamTokenProvider(region) };
  } else if (auth !== 'none') {
    throw new EngineError('INVALID_CONFIG', `KAFKA_AUTH must be none, scram-sha-512 or msk-iam, received ${preview(auth)}`);
  }
  return {
    clientId,
    brokers,
    ...(ssl || sasl !== undefined ? { ssl: true } : {}),
    ...(sasl !== undefined ? { sasl } : {}),
  };
}

/**
 * Parses `TRIBUTARY_FUNCTION_NAMES` (JSON object logical name -> deployed name or ARN).
 *
 * @example
 * functionNamesFromEnv({ TRIBUTARY_FUNCTION_NAMES: '{"notify":"gym-notify-abc"}' }); // { notify: 'gym-notify-abc' }
 */
export function functionNamesFromEnv(env: Env): Record<string, string> {
  const raw = env[ENV.functionNames];
  if (raw === undefined || raw.trim() === '') return {};
  let parsed: unknown;
  try {
    parsed = JSON.parse(raw);
  } catch (error) {
    throw new EngineError(
      'INVALID_CONFIG',
      `TRIBUTARY_FUNCTION_NAMES is not JSON (${(error as Error).message}), received ${preview(raw)}; set it to e.g. {"notifyInstructor":"gym-notifyInstructor"}`,
    );
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) {
    throw new EngineError('INVALID_CONFIG', `TRIBUTARY_FUNCTION_NAMES must be a JSON object, received ${preview(raw)}`);
  }
  return parsed as Record<string, string>;
}

/** Parses `TRIBUTARY_HEALTH_PORT` (default 8080; 0 = any free port). */
export function healthPortFromEnv(env: Env): number {
  const raw = env[ENV.healthPort];
  if (raw === undefined || raw.trim() === '') return DEFAULT_HEALTH_PORT;
  const port = Number(raw);
  if (!Number.isInteger(port) || port < 0 || port > 65_535) {
    throw new EngineError('INVALID_CONFIG', `TRIBUTARY_HEALTH_PORT must be a port number 0-65535, received ${preview(raw)}`);
  }
  return port;
}

/** Reads `TRIBUTARY_HEALTH_HOST`, the address the health endpoint binds to (default {@link DEFAULT_HEALTH_HOST}). */
export function healthHostFromEnv(env: Env): string {
  const raw = env[ENV.healthHost]?.trim();
  if (raw === undefined || raw === '') return DEFAULT_HEALTH_HOST;
  if (isIP(raw) === 0 && !/^[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?$/.test(raw)) {
    throw new EngineError(
      'INVALID_CONFIG',
      `TRIBUTARY_HEALTH_HOST must be an IP address or host name, received ${preview(raw)}; use e.g. 127.0.0.1 (this machine only) or 0.0.0.0 (every interface)`,
    );
  }
  return raw;
}

/** Parses `TRIBUTARY_LOG_LEVEL` (default info). */
export function logLevelFromEnv(env: Env): LogLevel {
  const raw = (env[ENV.logLevel] ?? '').trim().toLowerCase();
  if (raw === '') return 'info';
  if (!LOG_LEVELS.includes(raw as LogLevel)) {
    throw new EngineError('INVALID_CONFIG', `TRIBUTARY_LOG_LEVEL must be one of ${LOG_LEVELS.join(', ')}, received ${preview(raw)}`);
  }
  return raw as LogLevel;
}

/** Reads `TRIBUTARY_TABLE`. */
export function tableNameFromEnv(env: Env): string {
  return required(env, ENV.table, 'set it to the views table name (the CDK stack outputs it)');
}

/** Parses an optional positive integer variable (e.g. `TRIBUTARY_SESSION_TIMEOUT_MS`); undefined when unset. */
export function optionalIntFromEnv(env: Env, name: string): number | undefined {
  const raw = env[name];
  if (raw === undefined || raw.trim() === '') return undefined;
  const value = Number(raw);
  if (!Number.isInteger(value) || value <= 0) {
    throw new EngineError('INVALID_CONFIG', `${name} must be a positive integer, received ${preview(raw)}`, {
      context: { variable: name },
    });
  }
  return value;
}

/** Where a test can make the engine stop and wait (test-only, see {@link testPauseFromEnv}). */
export type TestPausePoint = 'before-swap' | 'after-swap';

/** Every {@link TestPausePoint}, in the order a build reaches them. */
export const TEST_PAUSE_POINTS: readonly TestPausePoint[] = ['before-swap', 'after-swap'];

/**
 * Test-only hooks of an engine task, passed by engine/main.ts from the environment (never an
 * {@link EngineOptions} field: production code has no way to set them by accident).
 */
export interface EngineTestHooks {
  /**
   * The build stops at this point, logs `test_pause` (with `point`, `view`, `version`) and waits
   * until the task is asked to stop, so a test can SIGKILL it there:
   * - `before-swap`: the build reached its target, before the alias write;
   * - `after-swap`: right after the alias write, before the build's group is deleted and the
   *   replaced version's removal is scheduled.
   * @default undefined (no pause)
   */
  readonly pauseAt?: TestPausePoint;
}

/**
 * Reads the test-only `TRIBUTARY_TEST_PAUSE_AT` (`before-swap` | `after-swap`). It counts only
 * with `TRIBUTARY_TEST_HOOKS=1` beside it; set without it, or to an unknown point, the start
 * fails with `INVALID_CONFIG`, so a stray variable never parks a production build.
 *
 * @example
 * testPauseFromEnv({ TRIBUTARY_TEST_HOOKS: '1', TRIBUTARY_TEST_PAUSE_AT: 'before-swap' }); // { pauseAt: 'before-swap' }
 */
export function testPauseFromEnv(env: Env): EngineTestHooks {
  const raw = env[TEST_PAUSE_AT_ENV]?.trim() ?? '';
  if (raw === '') return {};
  if (env[TEST_HOOKS_ENV]?.trim() !== '1') {
    throw new EngineError(
      'INVALID_CONFIG',
      `${TEST_PAUSE_AT_ENV}=${preview(raw)} is a test-only hook (the engine would stop at that point of a view build and wait forever); it counts only with ${TEST_HOOKS_ENV}=1. Unset ${TEST_PAUSE_AT_ENV} outside tests`,
      { context: { variable: TEST_PAUSE_AT_ENV } },
    );
  }
  if (!TEST_PAUSE_POINTS.includes(raw as TestPausePoint)) {
    throw new EngineError('INVALID_CONFIG', `${TEST_PAUSE_AT_ENV} must be one of ${TEST_PAUSE_POINTS.join(', ')}, received ${preview(raw)}`, {
      context: { variable: TEST_PAUSE_AT_ENV },
    });
  }
  return { pauseAt: raw as TestPausePoint };
}

/** The test-only pause point of a view build (see {@link testPauseFromEnv}). */
const TEST_PAUSE_AT_ENV = 'TRIBUTARY_TEST_PAUSE_AT';
/** Must be `1` for any test-only hook to count. */
const TEST_HOOKS_ENV = 'TRIBUTARY_TEST_HOOKS';
