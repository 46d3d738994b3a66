/**
 * `npm run bench -- --scenario live`: N local subscribers (500 unless `BENCH_SUBSCRIBERS`) each
 * watch every class of the bench view over the loopback WebSocket API while the events flow, and
 * every one must end at each key's final version (counted from the events produced). Prints the
 * time until the last subscriber converged, the frames delivered per second, the emulator's
 * peak queue (frames and bytes held for slow sockets) and this process's memory (the emulator,
 * the handlers and the engine share it) before and at its peak.
 */
import { ApiGatewayManagementApiClient } from '@aws-sdk/client-apigatewaymanagementapi';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { LambdaClient } from '@aws-sdk/client-lambda';
import { Kafka, logLevel } from 'kafkajs';
import { WebSocket } from 'ws';
import { startEngine } from '../../engine/index.ts';
import { toMessage } from '../../functions/events.ts';
import { createBookingGenerator } from '../../functions/generator.ts';
import { createLiveHandlers, registerLiveHandlers, signLiveToken } from '../../live/index.ts';
import { ensureViewsTable, startLocalStack } from '../../local/index.ts';
import { defineApp, defineView } from '../../sdk/index.ts';
import { classCountsView } from './class-counts.ts';
import { num } from './metrics.ts';
import type { BenchOptions } from './options.ts';

const credentials = { accessKeyId: 'local', secretAccessKey: 'local' };
/** The figure: 500 concurrent local subscribers. */
const DEFAULT_SUBSCRIBERS = 500;
const SECRET = 'bench-live-subscriptions-secret';

/**
 * Runs the live scenario on its own local stack and prints its figures.
 *
 * @example
 * await runLiveScenario(parseBenchOptions(['--scenario', 'live'], {}), console.log);
 */
export async function runLiveScenario(options: BenchOptions, log: (line: string) => void): Promise<void> {
  const subscriberCount = Number(process.env.BENCH_SUBSCRIBERS ?? DEFAULT_SUBSCRIBERS);
  if (!Number.isInteger(subscriberCount) || subscriberCount <= 0) throw new Error(`BENCH_SUBSCRIBERS must be a positive integer, received ${process.env.BENCH_SUBSCRIBERS}`);
  const classes = Math.min(options.classes, 100);
  const runId = Date.now().toString(36);
  const stack = await startLocalStack({ log: options.verbose ? (line) => log(`stack: ${line}`) : () => {} });
  const live = stack.live!;
  const dynamodb = new DynamoDBClient({ region: stack.region, endpoint: stack.dynamodb.endpoint, credentials });
  const kafka = new Kafka({ clientId: 'bench-live', brokers: stack.kafka.brokers, logLevel: logLevel.NOTHING });
  const sockets: WebSocket[] = [];
  try {
    const topic = `bench-live-${runId}`;
    const table = `bench-live-${runId}`;
    await ensureViewsTable(dynamodb, table);
    const admin = kafka.admin();
    await admin.connect();
    await admin.createTopics({ topics: [{ topic, numPartitions: options.partitions }], waitForLeaders: true });
    await admin.disconnect();
    const base = classCountsView(topic);
    const view = defineView({ name: 'classCounts', source: topic, decode: base.decode, key: base.key, initial: base.initial, reduce: base.reduce, live: true });
    const app = defineApp({ name: `bench-live-${runId}`.slice(0, 40), views: [view] });
    const management = new ApiGatewayManagementApiClient({ endpoint: live.managementEndpoint, region: stack.region, credentials });
    registerLiveHandlers(stack.lambda, createLiveHandlers(app, { dynamodb, tableName: table, management, auth: { hmacSecret: SECRET } }));
    const engine = startEngine({
      app,
      tableName: table,
      kafka: { clientId: 'bench-live-engine', brokers: stack.kafka.brokers },
      dynamodb,
      lambda: new LambdaClient({ region: stack.region, endpoint: stack.lambda.endpoint, credentials, maxAttempts: 1 }),
      groupId: `bench-live-${runId}`,
      healthPort: null,
      logLevel: 'warn',
      logSink: options.verbose ? (line) => log(`engine: ${line}`) : () => {},
    });
    await engine.ready;

    // The events and, from them, each class's final version (one per applied event).
    const generator = createBookingGenerator({ seed: options.seed, classes });
    const events = Array.from({ length: options.events }, () => generator.next());
    const finalVersion = new Map<string, number>();
    for (const e of events) finalVersion.set(e.classId, (finalVersion.get(e.classId) ?? 0) + 1);
    const keys = [...finalVersion.keys()];

    const token = await signLiveToken({ secret: SECRET, claims: { sub: 'bench' } });
    const held: Map<string, number>[] = [];
    let frames = 0;
    let gaps = 0;
    for (let i = 0; i < subscriberCount; i++) {
      const versions = new Map<string, number>();
      held.push(versions);
      const socket = new WebSocket(`${live.url}?token=${token}`);
      sockets.push(socket);
      socket.on('message', (data) => {
        frames++;
        const frame = JSON.parse(data.toString()) as { type: string; key?: string; version?: number; beforeVersion?: number; items?: { key: string; version: number }[] };
        if (frame.type === 'snapshot') for (const item of frame.items ?? []) versions.set(item.key, Math.max(versions.get(item.key) ?? 0, item.version));
        if (frame.type === 'change') {
          const v = versions.get(frame.key!) ?? 0;
          if (frame.version! <= v) return;
          if ((frame.beforeVersion ?? 0) !== v) gaps++;
          versions.set(frame.key!, frame.version!);
        }
      });
      await new Promise<void>((resolve, reject) => {
        socket.once('open', () => resolve());
        socket.once('error', reject);
      });
      socket.send(JSON.stringify({ action: 'subscribe', id: 'all', view: 'classCounts', keys }));
    }
    log(`live: ${num()(subscriberCount)} subscribers connected, each watching ${keys.length} classes`);
    const memoryBefore = process.memoryUsage();
    let peakRss = memoryBefore.rss;
    let peakHeap = memoryBefore.heapUsed;
    let peakQueued = 0;
    let peakQueuedBytes = 0;
    const sampler = setInterval(() => {
      const m = process.memoryUsage();
      peakRss = Math.max(peakRss, m.rss);
      peakHeap = Math.max(peakHeap, m.heapUsed);
      const s = live.stats();
      peakQueued = Math.max(peakQueued, s.queuedMessages);
      peakQueuedBytes = Math.max(peakQueuedBytes, s.queuedBytes);
    }, 100);
    const started = Date.now();
    const producer = kafka.producer();
    await producer.connect();
    for (let i = 0; i < events.length; i += 1_000) await producer.send({ topic, acks: -1, messages: events.slice(i, i + 1_000).map(toMessage) });
    await producer.disconnect();
    const converged = () => held.every((versions) => keys.every((k) => versions.get(k) === finalVersion.get(k)));
    const deadline = Date.now() + options.phaseTimeoutMs;
    while (!converged()) {
      if (Date.now() > deadline) throw new Error(`live: subscribers did not converge within ${options.phaseTimeoutMs} ms`);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    const elapsedMs = Date.now() - started;
    clearInterval(sampler);
    const stats = live.stats();
    const mb = (bytes: number) => `${(bytes / 1_048_576).toFixed(0)} MB`;
    console.log(`Tributary bench — scenario live: ${num()(options.events)} events, ${keys.length} classes, ${options.partitions} partitions, ${num()(subscriberCount)} subscribers`);
    console.log(`  every subscriber at every key's final version after ${(elapsedMs / 1000).toFixed(1)} s (produce start to last subscriber)`);
    console.log(`  frames received ${num()(frames)} (${num()(Math.round(frames / (elapsedMs / 1000)))}/s), posted ${num()(stats.posted)}, gaps seen ${gaps}, dropped ${stats.dropped}, resyncs ${stats.resyncs}`);
    console.log(`  emulator queue peak ${num()(peakQueued)} frames / ${mb(peakQueuedBytes)} (bound per connection: 1,000 frames or 1 MiB)`);
    console.log(`  process memory (emulator, handlers, engine): rss ${mb(memoryBefore.rss)} before → peak ${mb(peakRss)}; heap ${mb(memoryBefore.heapUsed)} → peak ${mb(peakHeap)}`);
    await engine.stop();
  } finally {
    for (const socket of sockets) socket.terminate();
    await stack.stop();
  }
}
