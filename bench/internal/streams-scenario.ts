/**
 * `npm run bench -- --scenario streams`: the engine against Kafka Streams, on Apache Kafka, on
 * the same events, in one run. The Kafka Streams contender (bench/kafka-streams/) computes the
 * same aggregation as the engine's bench view (per class: booked, cancelled, net, last event
 * time) with `processing.guarantee=exactly_once_v2` and its default RocksDB store, and writes
 * each updated aggregate to an output topic.
 *
 * Per contender, one after the other, each in its own process:
 * 1. throughput: it folds the whole topic from the start; events/s from "ready" (the engine
 *    joined its group; Kafka Streams reported RUNNING) until its durable progress (engine:
 *    checkpoints; Kafka Streams: the group's transactionally committed offsets) reaches the end
 *    of the topic; CPU seconds of its process over the same span, per million events;
 * 2. latency: caught up, under a moderate background load, probe events (each a new key) are
 *    produced one at a time and timed until the result is visible: for the engine, a consistent
 *    read of the view shows the key; for Kafka Streams, a read-committed consumer of the output
 *    topic receives the key's record;
 * 3. restart: the process is killed with SIGKILL; Kafka Streams' state directory is deleted
 *    (Tributary keeps no local state); a new process is started and a probe produced at once;
 *    restart time is from the new process's spawn to that probe's result being visible. Both
 *    contenders' consumers use the same session timeout, so the rebalance that waits for the
 *    killed member costs both the same.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { Kafka, logLevel, type Producer } from 'kafkajs';
import { toMessage, type BookingEvent } from '../../functions/events.ts';
import { createBookingGenerator, type BookingGenerator } from '../../functions/generator.ts';
import { ensureViewsTable, startLocalStack } from '../../local/index.ts';
import { createViewReader } from '../../sdk/index.ts';
import { classCountsView } from './class-counts.ts';
import { checkpointTotal, forkEngine } from './engine-process.ts';
import { buildKafkaStreamsApp, processCpuSeconds, startKafkaStreams } from './kafka-streams.ts';
import { num, percentile, renderGrid } from './metrics.ts';
import type { BenchOptions } from './options.ts';
import type { WorkerConfig } from './worker.ts';

const credentials = { accessKeyId: 'local', secretAccessKey: 'local' };
const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
/** Both contenders' consumer session timeout: a killed member leaves the group after this long. */
const SESSION_TIMEOUT_MS = 10_000;
const PROBE_TIMEOUT_MS = 30_000;
const RESTART_TIMEOUT_MS = 300_000;

type Peer = 'tributary' | 'kafka streams';

interface PeerResult {
  eventsPerSecond?: number;
  cpuSecondsPerMillion?: number;
  latenciesMs: number[];
  probeTimeouts: number;
  restartMs?: number;
  /** Kafka Streams: spawn -> RUNNING after the restart (restore from the changelog included). */
  restartToRunningMs?: number;
  error?: string;
}

/** What a contender's phases need from it. */
interface Contender {
  /** Events durable in its result so far, counted from offset 0. */
  progress(): Promise<number>;
  /** Which of `keys` have a visible result. */
  visible(keys: readonly string[]): Promise<Set<string>>;
  cpuSeconds(): number | undefined;
  kill(): Promise<void>;
  stop(): Promise<void>;
}

function probe(tag: string, i: number): BookingEvent {
  const at = new Date();
  return {
    type: 'booked',
    bookingId: `probe-${tag}-${i}`,
    classId: `probe-${tag}-${i}`,
    memberId: 'probe-member',
    classStartsAt: new Date(at.getTime() + 86_400_000).toISOString(),
    capacity: 10,
    at: at.toISOString(),
  };
}

async function waitUntil(what: string, timeoutMs: number, check: () => Promise<boolean>, pollMs = 50): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`${what}: not reached within ${timeoutMs} ms`);
    await sleep(pollMs);
  }
}

/** Probes one every `intervalMs` under `backgroundRate` events/s; each timed until visible. */
async function measureLatency(
  producer: Producer,
  topic: string,
  generator: BookingGenerator,
  contender: Contender,
  tag: string,
  probes: number,
  intervalMs: number,
  backgroundRate: number,
): Promise<{ latenciesMs: number[]; timeouts: number }> {
  let stop = false;
  const background = (async () => {
    const perTick = Math.round(backgroundRate / 10);
    while (!stop && perTick > 0) {
      const tick = Date.now();
      await producer.send({ topic, acks: -1, messages: generator.take(perTick).map(toMessage) });
      await sleep(Math.max(0, 100 - (Date.now() - tick)));
    }
  })();
  const outstanding = new Map<string, number>();
  const latenciesMs: number[] = [];
  let timeouts = 0;
  let producing = true;
  const poller = (async () => {
    while (producing || outstanding.size > 0) {
      const keys = [...outstanding.keys()];
      if (keys.length > 0) {
        const seen = await contender.visible(keys);
        const now = performance.now();
        for (const key of keys) {
          const at = outstanding.get(key)!;
          if (seen.has(key)) {
            latenciesMs.push(now - at);
            outstanding.delete(key);
          } else if (now - at > PROBE_TIMEOUT_MS) {
            timeouts++;
            outstanding.delete(key);
          }
        }
      }
      await sleep(10);
    }
  })();
  const sends: Promise<unknown>[] = [];
  for (let i = 0; i < probes; i++) {
    const event = probe(tag, i);
    outstanding.set(event.classId, performance.now());
    sends.push(producer.send({ topic, acks: -1, messages: [toMessage(event)] }));
    await sleep(intervalMs);
  }
  await Promise.all(sends);
  producing = false;
  await poller;
  stop = true;
  await background;
  return { latenciesMs, timeouts };
}

/**
 * Runs the streams scenario on its own local stack with Apache Kafka and prints its table.
 *
 * @example
 * await runStreamsScenario(parseBenchOptions(['--scenario', 'streams'], {}), console.log);
 */
export async function runStreamsScenario(options: BenchOptions, log: (line: string) => void): Promise<void> {
  const runId = Date.now().toString(36);
  log(`scenario streams: ${num()(options.events)} events, ${num()(options.classes)} classes, ${options.partitions} partitions, on Apache Kafka; contenders tributary, kafka streams`);
  const [build, stack] = await Promise.all([
    buildKafkaStreamsApp(log),
    startLocalStack({ kafka: 'apache', log: options.verbose ? (line) => log(`stack: ${line}`) : () => {} }),
  ]);
  log(`local stack up (Apache Kafka ${stack.kafka.brokers.join(',')}, DynamoDB Local ${stack.dynamodb.endpoint})`);
  const ddb = new DynamoDBClient({ region: stack.region, endpoint: stack.dynamodb.endpoint, credentials });
  const kafka = new Kafka({ clientId: 'bench-streams', brokers: [...stack.kafka.brokers], logLevel: logLevel.NOTHING });
  const topic = `bench-streams-${runId}`;
  const outputTopic = `${topic}.class-counts`;
  const results = new Map<Peer, PeerResult>();
  const producer = kafka.producer({ allowAutoTopicCreation: false });
  const admin = kafka.admin();
  // Kafka Streams' results, as a reader of its output topic sees them: key -> first arrival.
  const arrivals = new Map<string, number>();
  const output = kafka.consumer({ groupId: `bench-streams-output-${runId}`, maxWaitTimeInMs: 10 });
  const endOffsets = async () => (await admin.fetchTopicOffsets(topic)).reduce((sum, p) => sum + Number(p.high), 0);
  try {
    await admin.connect();
    await admin.createTopics({
      topics: [
        { topic, numPartitions: options.partitions },
        { topic: `${topic}.dead-letter`, numPartitions: 1 },
        { topic: outputTopic, numPartitions: options.partitions },
      ],
      waitForLeaders: true,
    });
    await producer.connect();
    const generator = createBookingGenerator({ seed: options.seed, classes: options.classes, members: Math.max(100, Math.min(100_000, options.classes * 10)), pick: 'uniform' });
    const produceStarted = Date.now();
    for (let sent = 0; sent < options.events; sent += 1_000) {
      await producer.send({ topic, acks: -1, messages: generator.take(Math.min(1_000, options.events - sent)).map(toMessage) });
    }
    log(`produced ${num()(options.events)} events in ${Date.now() - produceStarted} ms`);
    await output.connect();
    await output.subscribe({ topic: outputTopic, fromBeginning: true });
    await output.run({
      eachBatch: async ({ batch }) => {
        const now = performance.now();
        for (const m of batch.messages) {
          const key = m.key?.toString() ?? '';
          if (key.startsWith('probe-') && !arrivals.has(key)) arrivals.set(key, now);
        }
      },
    });

    const view = classCountsView(topic);
    const reader = createViewReader({ dynamodb: ddb, tableName: `bench-streams-${runId}` });
    await ensureViewsTable(ddb, `bench-streams-${runId}`);
    const engineConfig: WorkerConfig = {
      mode: 'engine',
      brokers: [...stack.kafka.brokers],
      topic,
      tableName: `bench-streams-${runId}`,
      group: `bench-streams-${runId}`,
      region: stack.region,
      dynamodbEndpoint: stack.dynamodb.endpoint,
      cacheMaxEntries: undefined,
      triggerFunction: undefined,
      sessionTimeoutMs: SESSION_TIMEOUT_MS,
      verbose: false,
    };
    const applicationId = `bench-streams-ks-${runId}`;
    const stateDir = mkdtempSync(path.join(tmpdir(), 'bench-kafka-streams-'));
    const streamsConfig = { bootstrapServers: stack.kafka.brokers.join(','), inputTopic: topic, outputTopic, applicationId, stateDir, sessionTimeoutMs: SESSION_TIMEOUT_MS };

    const starters: Record<Peer, () => Promise<Contender & { spawnedAt: number; ready: Promise<void> }>> = {
      tributary: async () => {
        const spawnedAt = performance.now();
        const engine = forkEngine(engineConfig, stack.env);
        return {
          spawnedAt,
          ready: engine.started,
          progress: () => checkpointTotal(ddb, engineConfig.tableName, topic),
          visible: async (keys) => {
            const items = await reader.getMany(view, [...keys], { consistent: true });
            return new Set(items.filter((i) => i !== undefined).map((i) => i!.key));
          },
          cpuSeconds: () => processCpuSeconds(engine.pid),
          kill: () => engine.kill(),
          stop: () => engine.stop(),
        };
      },
      'kafka streams': async () => {
        const spawnedAt = performance.now();
        const app = startKafkaStreams(build.classpath, streamsConfig, log);
        return {
          spawnedAt,
          ready: app.running,
          progress: async () => {
            const [committed] = await admin.fetchOffsets({ groupId: applicationId, topics: [topic] });
            return (committed?.partitions ?? []).reduce((sum, p) => sum + Math.max(0, Number(p.offset)), 0);
          },
          visible: async (keys) => new Set(keys.filter((k) => arrivals.has(k))),
          cpuSeconds: () => app.cpuSeconds(),
          kill: () => app.kill(),
          stop: () => app.stop(),
        };
      },
    };

    for (const peer of ['tributary', 'kafka streams'] as const) {
      const result: PeerResult = { latenciesMs: [], probeTimeouts: 0 };
      results.set(peer, result);
      let contender: (Contender & { spawnedAt: number; ready: Promise<void> }) | undefined;
      try {
        contender = await starters[peer]();
        await contender.ready;
        const target = await endOffsets();
        const started = performance.now();
        const cpuBefore = contender.cpuSeconds();
        let lastLog = Date.now();
        const c = contender;
        await waitUntil(`${peer} throughput`, options.phaseTimeoutMs, async () => {
          const done = await c.progress();
          if (Date.now() - lastLog > 10_000) {
            log(`  ${peer}: ${num()(done)} / ${num()(target)}`);
            lastLog = Date.now();
          }
          return done >= target;
        });
        const seconds = (performance.now() - started) / 1000;
        const cpuAfter = contender.cpuSeconds();
        result.eventsPerSecond = target / seconds;
        if (cpuBefore !== undefined && cpuAfter !== undefined) result.cpuSecondsPerMillion = ((cpuAfter - cpuBefore) / target) * 1_000_000;
        log(`${peer}: ${num()(target)} events in ${num(1)(seconds)} s, ${num(1)(cpuAfter! - cpuBefore!)} CPU s`);

        if (options.probes > 0) {
          const measured = await measureLatency(producer, topic, generator, contender, `${runId}-${peer.replace(' ', '-')}`, options.probes, options.probeIntervalMs, options.backgroundRate ?? 0);
          result.latenciesMs = measured.latenciesMs;
          result.probeTimeouts = measured.timeouts;
          log(`${peer}: produce->result p50 ${percentile(measured.latenciesMs, 50)?.toFixed(1)} ms, p99 ${percentile(measured.latenciesMs, 99)?.toFixed(1)} ms, ${measured.timeouts} timed out`);
        }

        // Crash, lose local state, start again: how long until a new event's result is visible.
        await contender.kill();
        contender = undefined;
        if (peer === 'kafka streams') rmSync(stateDir, { recursive: true, force: true });
        const restarted = await starters[peer]();
        contender = restarted;
        const restartProbe = probe(`${runId}-${peer.replace(' ', '-')}-restart`, 0);
        await producer.send({ topic, acks: -1, messages: [toMessage(restartProbe)] });
        void restarted.ready.then(() => (result.restartToRunningMs = performance.now() - restarted.spawnedAt)).catch(() => {});
        await waitUntil(`${peer} restart`, RESTART_TIMEOUT_MS, async () => (await restarted.visible([restartProbe.classId])).has(restartProbe.classId), 20);
        result.restartMs = performance.now() - restarted.spawnedAt;
        // Kafka Streams may process a restored task before the instance reports RUNNING.
        await Promise.race([restarted.ready.catch(() => {}), sleep(15_000)]);
        log(`${peer}: restart after kill -9 (state wiped): first new result after ${num()(result.restartMs)} ms`);
      } catch (error) {
        result.error = error instanceof Error ? error.message : String(error);
        log(`${peer}: FAILED: ${result.error}`);
      } finally {
        await contender?.stop();
      }
    }
    rmSync(stateDir, { recursive: true, force: true });
  } finally {
    await output.disconnect().catch(() => {});
    await producer.disconnect().catch(() => {});
    await admin.disconnect().catch(() => {});
    ddb.destroy();
    await stack.stop();
  }

  const t = results.get('tributary');
  const k = results.get('kafka streams');
  const fmt = (v: number | undefined, digits: number) => (v === undefined ? 'n/a' : num(digits)(v));
  const ratio = (a: number | undefined, b: number | undefined) => (a !== undefined && b ? `${(a / b).toFixed(2)}x` : 'n/a');
  const rows: [string, number | undefined, number | undefined, number][] = [
    ['events/s (ready -> last event durable)', t?.eventsPerSecond, k?.eventsPerSecond, 0],
    ['CPU s / million events (contender process)', t?.cpuSecondsPerMillion, k?.cpuSecondsPerMillion, 1],
    ['produce->result p50 (ms)', percentile(t?.latenciesMs ?? [], 50), percentile(k?.latenciesMs ?? [], 50), 1],
    ['produce->result p99 (ms)', percentile(t?.latenciesMs ?? [], 99), percentile(k?.latenciesMs ?? [], 99), 1],
    [`restart after kill -9, state wiped, ${num()(options.events)} events of history (ms)`, t?.restartMs, k?.restartMs, 0],
    ['  of which spawn -> ready (ms)', t?.restartToRunningMs, k?.restartToRunningMs, 0],
  ];
  console.log('');
  console.log(`Tributary vs Kafka Streams — scenario streams on Apache Kafka: ${num()(options.events)} events, ${num()(options.classes)} classes (keys), ${options.partitions} partitions, seed ${options.seed}`);
  console.log(renderGrid(['metric', 'tributary', 'kafka streams', 'tributary/kafka streams'], rows.map(([m, a, b, d]) => [m, fmt(a, d), fmt(b, d), ratio(a, b)]), 'label'));
  console.log(
    `result: tributary = a consistent read of the view in DynamoDB Local shows the key; kafka streams = its output topic's record reaches a read-committed consumer (exactly_once_v2, commit interval 100 ms, RocksDB store). ` +
      `latency: ${options.probes} probes, one every ${options.probeIntervalMs} ms, under ${options.backgroundRate ?? 0} events/s background load. ` +
      `restart: from spawning the new process to the result of an event produced right then; both consumers' session timeout ${SESSION_TIMEOUT_MS / 1000} s (the killed member's partitions wait for it).`,
  );
  for (const [peer, r] of results) {
    if (r.probeTimeouts) console.log(`${peer}: ${r.probeTimeouts} latency probes timed out`);
    if (r.error) console.log(`${peer} FAILED: ${r.error}`);
  }
  if ([...results.values()].some((r) => r.error)) process.exitCode = 1;
}
