/**
 * One contender of the benchmark, in its own process so that its memory is its own: the
 * Tributary engine, or the naive baseline (one `UpdateItem` per event, the Kafka-triggered
 * Lambda pattern). Started by `bench/run.ts` with an IPC channel; configured by the
 * `BENCH_WORKER` environment variable (JSON {@link WorkerConfig}).
 *
 * Messages: parent -> worker `{ type: 'stats' }` and `{ type: 'stop' }`;
 * worker -> parent `{ type: 'started' }`, `{ type: 'stats', ... }`, `{ type: 'stopped' }`, `{ type: 'failed', message }`.
 */
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { InvokeCommand, LambdaClient } from '@aws-sdk/client-lambda';
import { Kafka, logLevel } from 'kafkajs';
import { decodeBookingEvent } from '../../functions/events.ts';
import { naiveUpdate } from './class-counts.ts';
import { countDynamoDbRequests, memoryNow, type DynamoDbRequestCounts, type MemorySample } from './metrics.ts';
import { meterCapacity, type CapacityCounts } from './cost.ts';
import { cpuNow, startCpuProfile, type CpuSample } from './engine-costs.ts';
import type { TriggerChanges } from '../../sdk/index.ts';

/** What the parent tells a worker. */
export interface WorkerConfig {
  readonly mode: 'engine' | 'naive';
  readonly brokers: readonly string[];
  readonly topic: string;
  readonly tableName: string;
  /** Consumer group (naive) or app name (engine, which derives its group from it). */
  readonly group: string;
  readonly region: string;
  readonly dynamodbEndpoint: string;
  readonly cacheMaxEntries: number | undefined;
  /** The engine's fetch size per partition (`maxBytesPerPartition`); undefined = its default. */
  readonly maxBytesPerPartition?: number;
  /**
   * Trigger scenario: the engine delivers every view change to this function; the naive worker
   * invokes it once per event, after that event's `UpdateItem`.
   */
  readonly triggerFunction: string | undefined;
  /** The engine trigger's `changes` (the SDK's default, `'every'`, when undefined). */
  readonly triggerChanges?: TriggerChanges;
  /** The engine's consumer session timeout (its default when undefined); the streams scenario sets both contenders' alike. */
  readonly sessionTimeoutMs?: number;
  readonly verbose: boolean;
  /** Write a CPU profile of the worker, from "started" to "stop", to this file. */
  readonly cpuProfileFile?: string;
}

/** A worker's answer to `{ type: 'stats' }`. */
export interface WorkerStats extends MemorySample {
  readonly type: 'stats';
  readonly counts: DynamoDbRequestCounts;
  /** Capacity units by the bench's cost model (bench/internal/cost.ts), and the sizes of the items put. */
  readonly capacity: CapacityCounts;
  /** Events the contender reports as applied, when it can tell. */
  readonly eventsApplied: number | undefined;
  /** The engine's own counters (`Engine.stats()`), engine only. */
  readonly engineStats?: unknown;
  /** CPU time of the worker process so far. */
  readonly cpu: CpuSample;
  /** `process.memoryUsage().arrayBuffers`: Buffers and typed arrays (Kafka fetches, sockets), part of external. */
  readonly arrayBuffersBytes: number;
}

/** A running contender. */
interface Running {
  eventsApplied(): number | undefined;
  engineStats?(): unknown;
  stop(): Promise<void>;
}

function send(message: unknown): void {
  process.send?.(message);
}

async function startNaive(config: WorkerConfig, dynamodb: DynamoDBClient): Promise<Running> {
  const kafka = new Kafka({ clientId: 'bench-naive', brokers: [...config.brokers], logLevel: config.verbose ? logLevel.INFO : logLevel.NOTHING });
  const consumer = kafka.consumer({ groupId: config.group });
  await consumer.connect();
  await consumer.subscribe({ topic: config.topic, fromBeginning: true });
  let applied = 0;
  // Standard AWS environment (AWS_ENDPOINT_URL_LAMBDA from the stack), like the engine's client.
  const lambda = config.triggerFunction === undefined ? undefined : new LambdaClient({});
  await consumer.run({
    // Like Lambda's Kafka event source: one batch per partition at a time, partitions in parallel.
    partitionsConsumedConcurrently: 64,
    eachBatchAutoResolve: false,
    autoCommit: true,
    eachBatch: async ({ batch, resolveOffset, heartbeat, commitOffsetsIfNecessary, isRunning, isStale }) => {
      for (const message of batch.messages) {
        if (!isRunning() || isStale()) break;
        // The function body of the naive pattern: decode, one UpdateItem, next record.
        const event = decodeBookingEvent(message.value ?? Buffer.alloc(0));
        const updated = await dynamodb.send(naiveUpdate(config.tableName, event, lambda !== undefined));
        if (lambda !== undefined) {
          // The naive trigger: one synchronous invocation per event, carrying that event's change.
          const change = { view: 'classCounts', key: event.classId, after: updated.Attributes ?? null };
          const response = await lambda.send(
            new InvokeCommand({
              FunctionName: config.triggerFunction,
              InvocationType: 'RequestResponse',
              Payload: Buffer.from(JSON.stringify({ trigger: 'naive', view: 'classCounts', changes: [change] })),
            }),
          );
          if (response.FunctionError) throw new Error(`naive trigger: function "${config.triggerFunction}" failed: ${response.FunctionError}`);
        }
        resolveOffset(message.offset);
        applied++;
        await heartbeat();
      }
      await commitOffsetsIfNecessary();
    },
  });
  return {
    eventsApplied: () => applied,
    stop: async () => {
      await consumer.disconnect();
    },
  };
}

async function startTributaryEngine(config: WorkerConfig, dynamodb: DynamoDBClient): Promise<Running> {
  const { startBenchEngine } = await import('./engine-adapter.ts');
  return startBenchEngine(config, dynamodb);
}

async function main(): Promise<void> {
  const raw = process.env.BENCH_WORKER;
  if (!raw) throw new Error('bench worker: BENCH_WORKER is not set; start it through bench/run.ts');
  const config = JSON.parse(raw) as WorkerConfig;
  const dynamodb = new DynamoDBClient({
    region: config.region,
    endpoint: config.dynamodbEndpoint,
    credentials: { accessKeyId: 'local', secretAccessKey: 'local' },
  });
  const counts = countDynamoDbRequests(dynamodb);
  const capacity = meterCapacity(dynamodb);
  const running = config.mode === 'naive' ? await startNaive(config, dynamodb) : await startTributaryEngine(config, dynamodb);
  const stopProfile = config.cpuProfileFile === undefined ? undefined : await startCpuProfile(config.cpuProfileFile);
  process.on('message', (message: { type?: string }) => {
    if (message?.type === 'stats') {
      const stats: WorkerStats = { type: 'stats', counts: counts(), capacity: capacity(), ...memoryNow(), eventsApplied: running.eventsApplied(), engineStats: running.engineStats?.(), cpu: cpuNow(), arrayBuffersBytes: process.memoryUsage().arrayBuffers };
      send(stats);
    } else if (message?.type === 'stop') {
      Promise.resolve(stopProfile?.())
        .then(() => running.stop())
        .then(() => send({ type: 'stopped' }))
        .catch((error: unknown) => send({ type: 'failed', message: `stop: ${String(error)}` }))
        .finally(() => setTimeout(() => process.exit(0), 50));
    }
  });
  // The parent died (Ctrl-C, crash): do not linger as an orphan consumer.
  process.on('disconnect', () => {
    void running.stop().finally(() => process.exit(0));
    setTimeout(() => process.exit(0), 5_000).unref();
  });
  send({ type: 'started' });
}

main().catch((error: unknown) => {
  send({ type: 'failed', message: error instanceof Error ? (error.stack ?? error.message) : String(error) });
  setTimeout(() => process.exit(1), 50);
});
