/**
 * Container / CLI entry of the engine: reads the standard environment variables
 * (docs/architecture.md, "Environment variables"), loads the app module, starts one engine task
 * and stops it gracefully on SIGTERM/SIGINT.
 *
 * Usage: `node --import tsx engine/main.ts` (or `npm run engine`) with `KAFKA_BROKERS`,
 * `TRIBUTARY_TABLE` and optionally `TRIBUTARY_APP_MODULE`, `TRIBUTARY_FUNCTION_NAMES`,
 * `TRIBUTARY_HEALTH_PORT`, `TRIBUTARY_HEALTH_HOST` (default 127.0.0.1; the image sets 0.0.0.0),
 * `TRIBUTARY_LOG_LEVEL`, `TRIBUTARY_GROUP_ID`, `TRIBUTARY_SESSION_TIMEOUT_MS`,
 * `TRIBUTARY_HEARTBEAT_INTERVAL_MS`, `TRIBUTARY_MAX_BYTES_PER_PARTITION`, `TRIBUTARY_CACHE_MAX_ENTRIES`,
 * `TRIBUTARY_CACHE_MAX_BYTES`, `TRIBUTARY_STORAGE_OUTAGE_BUDGET_MS`; for tests only,
 * `TRIBUTARY_TEST_PAUSE_AT` with `TRIBUTARY_TEST_HOOKS=1` (`testPauseFromEnv`).
 */
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import type { App } from '../sdk/index.ts';
import {
  functionNamesFromEnv,
  healthHostFromEnv,
  healthPortFromEnv,
  kafkaConfigFromEnv,
  logLevelFromEnv,
  optionalIntFromEnv,
  tableNameFromEnv,
  testPauseFromEnv,
} from './internal/config.ts';
import { ENV } from '../sdk/contract/index.ts';
import { EngineError, errorInfo } from './internal/errors.ts';
import { startEngine } from './internal/runtime.ts';

/** The app module the container runs unless TRIBUTARY_APP_MODULE says otherwise. */
const DEFAULT_APP_MODULE = 'functions/app.ts';

async function loadApp(modulePath: string): Promise<App> {
  const absolute = path.resolve(process.cwd(), modulePath);
  let loaded: Record<string, unknown>;
  try {
    loaded = (await import(pathToFileURL(absolute).href)) as Record<string, unknown>;
  } catch (error) {
    throw new EngineError(
      'APP_LOAD_FAILED',
      `could not load the app module "${absolute}" (TRIBUTARY_APP_MODULE=${JSON.stringify(modulePath)}): ${errorInfo(error).message}; point TRIBUTARY_APP_MODULE at a module exporting \`app\``,
      { cause: error },
    );
  }
  const app = (loaded.app ?? (loaded.default as Record<string, unknown> | undefined)?.app ?? loaded.default) as App | undefined;
  if (!app || app.kind !== 'app') {
    throw new EngineError(
      'APP_LOAD_FAILED',
      `the module "${absolute}" does not export \`app\` (a defineApp() result); it exports ${JSON.stringify(Object.keys(loaded))}. Add \`export const app = defineApp({...})\``,
    );
  }
  return app;
}

/**
 * The CDK stack names the app and dead-letter topic it granted and alarms on; an image built
 * from another app module would write where nothing watches. Unset (outside the stack), no check.
 */
function assertDeployedApp(app: App, env: NodeJS.ProcessEnv): void {
  const expected = [
    [ENV.app, env[ENV.app]?.trim(), app.name],
    [ENV.deadLetterTopic, env[ENV.deadLetterTopic]?.trim(), app.deadLetterTopic],
  ] as const;
  for (const [name, deployed, loaded] of expected) {
    if (deployed && deployed !== loaded) {
      throw new EngineError(
        'INVALID_CONFIG',
        `${name}=${JSON.stringify(deployed)} but the app module loaded defines ${JSON.stringify(loaded)}; the engine image was built from another app than the stack deployed. Rebuild the image from the app module the stack names (${ENV.appModule}), or redeploy`,
      );
    }
  }
}

async function main(): Promise<number> {
  const env = process.env;
  const logLevel = logLevelFromEnv(env);
  const tableName = tableNameFromEnv(env);
  const kafka = kafkaConfigFromEnv(env);
  const functionNames = functionNamesFromEnv(env);
  const healthPort = healthPortFromEnv(env);
  const healthHost = healthHostFromEnv(env);
  const testHooks = testPauseFromEnv(env);
  const app = await loadApp(env[ENV.appModule]?.trim() || DEFAULT_APP_MODULE);
  assertDeployedApp(app, env);
  const groupId = env[ENV.groupId]?.trim() || undefined;
  const sessionTimeoutMs = optionalIntFromEnv(env, ENV.sessionTimeoutMs);
  const heartbeatIntervalMs = optionalIntFromEnv(env, ENV.heartbeatIntervalMs);
  const maxBytesPerPartition = optionalIntFromEnv(env, ENV.maxBytesPerPartition);
  const cacheMaxEntries = optionalIntFromEnv(env, ENV.cacheMaxEntries);
  const cacheMaxBytes = optionalIntFromEnv(env, ENV.cacheMaxBytes);
  const storageOutageBudgetMs = optionalIntFromEnv(env, ENV.storageOutageBudgetMs);
  const acceptDefinitionChanges = (env[ENV.acceptDefinitionChanges] ?? '')
    .split(',')
    .map((name) => name.trim())
    .filter((name) => name !== '');
  const engine = startEngine({
    app,
    tableName,
    kafka,
    functionNames,
    healthPort,
    healthHost,
    logLevel,
    handleSignals: true,
    ...(groupId !== undefined ? { groupId } : {}),
    ...(sessionTimeoutMs !== undefined ? { sessionTimeoutMs } : {}),
    ...(heartbeatIntervalMs !== undefined ? { heartbeatIntervalMs } : {}),
    ...(maxBytesPerPartition !== undefined ? { maxBytesPerPartition } : {}),
    ...(cacheMaxEntries !== undefined ? { cacheMaxEntries } : {}),
    ...(cacheMaxBytes !== undefined ? { cacheMaxBytes } : {}),
    ...(storageOutageBudgetMs !== undefined ? { storageOutageBudgetMs } : {}),
    ...(acceptDefinitionChanges.length > 0 ? { acceptDefinitionChanges } : {}),
  }, testHooks);
  try {
    await engine.ready;
    await engine.done;
    return 0;
  } catch (error) {
    await engine.done.catch(() => {});
    return error instanceof EngineError && error.code === 'INVALID_CONFIG' ? 2 : 1;
  }
}

main().then(
  (code) => process.exit(code),
  (error) => {
    const info = errorInfo(error);
    process.stderr.write(
      `${JSON.stringify({
        level: 'error',
        time: new Date().toISOString(),
        msg: info.message,
        code: error instanceof EngineError ? error.code : undefined,
        type: info.type,
      })}\n`,
    );
    process.exit(error instanceof EngineError && error.code === 'INVALID_CONFIG' ? 2 : 1);
  },
);
