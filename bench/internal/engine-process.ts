/**
 * The engine as a bench worker process of its own (bench/internal/worker.ts), for the phases
 * that kill it like a crashed container, and the durable progress of its checkpoints.
 */
import { fork } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { QueryCommand, type DynamoDBClient } from '@aws-sdk/client-dynamodb';
import type { WorkerConfig } from './worker.ts';

const WORKER = fileURLToPath(new URL('./worker.ts', import.meta.url));

/** A forked engine worker. */
export interface EngineProcess {
  readonly pid: number;
  readonly started: Promise<void>;
  stats(): Promise<{ eventsApplied?: number }>;
  /** SIGKILL: no checkpoint, no commit, no leave-group. */
  kill(): Promise<void>;
  stop(): Promise<void>;
}

/** Events durable in the engine's table: the sum of its checkpoints' next offsets over `topic`'s partitions. */
export async function checkpointTotal(ddb: DynamoDBClient, table: string, topic: string): Promise<number> {
  const out = await ddb.send(
    new QueryCommand({
      TableName: table,
      KeyConditionExpression: 'pk = :pk AND begins_with(sk, :prefix)',
      ExpressionAttributeValues: { ':pk': { S: '_tributary' }, ':prefix': { S: `checkpoint#${topic}#` } },
      ConsistentRead: true,
    }),
  );
  return (out.Items ?? []).reduce((sum, item) => sum + Number(item.offset?.S ?? item.offset?.N ?? 0), 0);
}

/** The engine in a bench worker process, so it can be killed like a crashed container. */
export function forkEngine(config: WorkerConfig, stackEnv: Readonly<Record<string, string>> = {}): EngineProcess {
  const child = fork(WORKER, [], { execArgv: ['--import', 'tsx'], env: { ...process.env, ...stackEnv, BENCH_WORKER: JSON.stringify(config) }, stdio: ['ignore', 'ignore', 'inherit', 'ipc'] });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const started = new Promise<void>((resolve, reject) => {
    child.on('message', (m: { type?: string; message?: string }) => {
      if (m?.type === 'started') resolve();
      if (m?.type === 'failed') reject(new Error(`engine worker failed: ${m.message}`));
    });
    void exited.then(() => reject(new Error('engine worker exited before it started')));
  });
  const stats = () =>
    new Promise<{ eventsApplied?: number }>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('engine worker: no stats within 30 s')), 30_000);
      const onMessage = (m: { type?: string; eventsApplied?: number }) => {
        if (m?.type !== 'stats') return;
        clearTimeout(timer);
        child.off('message', onMessage);
        resolve(m);
      };
      child.on('message', onMessage);
      child.send({ type: 'stats' });
    });
  return {
    pid: child.pid!,
    started,
    stats,
    kill: async () => {
      child.kill('SIGKILL');
      await exited;
    },
    stop: async () => {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.send({ type: 'stop' });
      const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
      await exited;
      clearTimeout(timer);
    },
  };
}

