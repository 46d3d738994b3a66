/**
 * Starts the Tributary engine inside a bench worker, on the bench app, with the worker's
 * instrumented DynamoDB client. Kept apart from `worker.ts` so the naive path runs even when
 * the engine cannot be loaded.
 */
import type { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { startEngine } from '../../engine/index.ts';
import { classCountsApp } from './class-counts.ts';
import type { WorkerConfig } from './worker.ts';

/** A running engine, as the worker drives it. */
export interface BenchEngine {
  eventsApplied(): number | undefined;
  engineStats(): unknown;
  stop(): Promise<void>;
}

/**
 * Starts the engine on the bench app and resolves once it joined its consumer group.
 *
 * @example
 * const engine = await startBenchEngine(config, instrumentedClient);
 */
export async function startBenchEngine(config: WorkerConfig, dynamodb: DynamoDBClient): Promise<BenchEngine> {
  const engine = startEngine({
    app: classCountsApp(config.group, config.topic, config.triggerFunction, config.triggerChanges),
    tableName: config.tableName,
    groupId: config.group,
    kafka: { brokers: [...config.brokers] },
    dynamodb,
    healthPort: null,
    // BENCH_ENGINE_LOG_LEVEL=debug shows each batch's timings (load/write/deliver) when profiling.
    logLevel: (process.env.BENCH_ENGINE_LOG_LEVEL as 'debug' | 'info' | 'warn' | undefined) ?? (config.verbose ? 'info' : 'warn'),
    // Metric lines (CloudWatch EMF) would bury the bench's progress log.
    logSink: (line) => {
      if (!line.startsWith('{"_aws"')) process.stderr.write(`[engine] ${line}\n`);
    },
    ...(config.cacheMaxEntries === undefined ? {} : { cacheMaxEntries: config.cacheMaxEntries }),
    ...(config.maxBytesPerPartition === undefined ? {} : { maxBytesPerPartition: config.maxBytesPerPartition }),
    ...(config.sessionTimeoutMs === undefined ? {} : { sessionTimeoutMs: config.sessionTimeoutMs, heartbeatIntervalMs: Math.floor(config.sessionTimeoutMs / 10) }),
  });
  engine.done.catch((error: unknown) => process.stderr.write(`[engine] stopped with ${String(error)}\n`));
  await engine.ready;
  return {
    eventsApplied: () => engine.stats().eventsApplied,
    engineStats: () => engine.stats(),
    stop: () => engine.stop(),
  };
}
