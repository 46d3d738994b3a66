/**
 * `npm run bench`: the Tributary engine against the naive baseline (one `UpdateItem` per
 * event, the Kafka-triggered-Lambda pattern), on the same generated events, in one run, on the
 * embedded local stack.
 *
 * Phases, per contender, each contender in its own process (so its memory is its own):
 * 1. throughput — all events are produced first; the contender consumes them from the start;
 *    events/s is measured from its first durable progress to the last event, and DynamoDB
 *    write requests are counted by a client middleware;
 * 2. agreement — the two contenders' views are compared on a sample of keys;
 * 3. latency — restarted on the caught-up topic, under a moderate background load, probe
 *    events are produced one at a time and timed until a read shows them; the probes of the
 *    first `--warmup-ms` (a fresh process: cold state cache, JIT and connections) are reported
 *    on rows of their own.
 *
 * @example
 * npm run bench                                   # ~2-3 minutes, 100k events
 * npm run bench -- --events 20000 --probes 30     # quicker
 * npm run bench -- --scenario keys                # 1M distinct keys, engine memory (long)
 * npm run bench -- --scenario triggers            # + a trigger: engine vs one Invoke per event
 * npm run bench -- --scenario windows             # unwindowed vs tumbling vs hopping windows
 * npm run bench -- --scenario joins               # plain vs re-keyed vs a table lookup
 * npm run bench -- --scenario rebuild             # a view build's rate, and live latency during it
 * npm run bench -- --scenario cardinality         # 50..50,000 keys: engine, batched naive, naive; a redelivery each
 * npm run bench -- --scenario streams             # Apache Kafka: engine vs Kafka Streams (exactly-once v2)
 * npm run bench -- --scenario live                # 500 WebSocket subscribers of every class, emulator memory
 */
import { fork, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { BatchGetItemCommand, type BatchGetItemCommandOutput, DynamoDBClient, GetItemCommand, QueryCommand } from '@aws-sdk/client-dynamodb';
import { Kafka, logLevel, type Admin, type Producer } from 'kafkajs';
import { toMessage, type BookingEvent } from '../functions/events.ts';
import { createBookingGenerator, type BookingGenerator } from '../functions/generator.ts';
import { ensureViewsTable, startLocalStack, type LocalStack } from '../local/index.ts';
import { createViewReader } from '../sdk/index.ts';
import { classCountsView, NAIVE_PK } from './internal/class-counts.ts';
import { mib, num, percentile, renderGrid, renderTable, type DynamoDbRequestCounts, type ResultRow } from './internal/metrics.ts';
import { BenchUsageError, parseBenchOptions, type BenchOptions, type Contender } from './internal/options.ts';
import type { WorkerConfig, WorkerStats } from './internal/worker.ts';
import { runJoinsScenario } from './internal/joins-scenario.ts';
import { runRebuildScenario } from './internal/rebuild-scenario.ts';
import { runLiveScenario } from './internal/live-scenario.ts';
import { runWindowsScenario } from './internal/windows-scenario.ts';
import { contenderCost, priceNote, priceUpdates, sizeDistributions, type CapacityCounts, type ContenderCost } from './internal/cost.ts';
import { runCardinalityScenario } from './internal/cardinality-scenario.ts';
import { runStreamsScenario } from './internal/streams-scenario.ts';
import { cpuSecondsPerMillion, renderBatchTimings, renderCpuProfile } from './internal/engine-costs.ts';

/** Events per produce request: big enough to keep the broker busy, small enough for a 1 MB request. */
const PRODUCE_BATCH = 1_000;
/** Produce requests in flight while loading the topic. */
const PRODUCE_IN_FLIGHT = 4;
/** How often progress is polled; bounds the error of the events/s timing. */
const PROGRESS_POLL_MS = 50;
/** How often outstanding latency probes are read (one batch read for all of them). */
const PROBE_POLL_MS = 10;
/** A probe not visible after this long counts as timed out. */
const PROBE_TIMEOUT_MS = 30_000;
/** Keys compared between the two contenders' views. */
const AGREEMENT_SAMPLE = 50;
/** The function the trigger scenario's changes go to, served by the local Lambda endpoint in this process. */
const TRIGGER_FUNCTION = 'benchChangeSink';

/** What the trigger scenario's function saw. */
interface TriggerSink {
  invocations: number;
  changes: number;
  /** Arrival time (performance.now()) of the first change of each probe key. */
  readonly probeArrivals: Map<string, number>;
}

/** Cap of the automatic background load while probing: "moderate" on any machine. */
const AUTO_BACKGROUND_MAX_RATE = 500;

const WORKER = fileURLToPath(new URL('./internal/worker.ts', import.meta.url));
const credentials = { accessKeyId: 'local', secretAccessKey: 'local' };

/** One memory reading of the engine worker during a `keys` run. */
interface MemoryPoint {
  readonly seconds: number;
  readonly keysFolded: number;
  readonly cacheEntries: number;
  readonly rssBytes: number;
  readonly peakRssBytes: number;
  readonly heapUsedBytes: number;
  readonly heapTotalBytes: number;
  readonly externalBytes: number;
  readonly arrayBuffersBytes: number;
}

/** How often the `keys` scenario reads the engine worker's memory. */
const MEMORY_SAMPLE_MS = 2_000;
/** Every this many readings, one goes to the progress log. */
const MEMORY_LOG_EVERY = 15;

/**
 * Reads `worker`'s memory every {@link MEMORY_SAMPLE_MS} until `stop()`; in a `keys` run each
 * event is a new key, so the engine's applied-event count is the number of distinct keys folded.
 */
function sampleMemory(worker: WorkerHandle): { points: MemoryPoint[]; stop: () => Promise<void> } {
  const points: MemoryPoint[] = [];
  const started = performance.now();
  let running = true;
  const loop = (async () => {
    while (running) {
      try {
        const stats = await worker.stats();
        const engine = stats.engineStats as { eventsApplied?: number; cache?: { entries?: number } } | undefined;
        points.push({
          seconds: (performance.now() - started) / 1000,
          keysFolded: engine?.eventsApplied ?? 0,
          cacheEntries: engine?.cache?.entries ?? 0,
          rssBytes: stats.rssBytes,
          peakRssBytes: stats.peakRssBytes,
          heapUsedBytes: stats.heapUsedBytes,
          heapTotalBytes: stats.heapTotalBytes,
          externalBytes: stats.externalBytes,
          arrayBuffersBytes: stats.arrayBuffersBytes,
        });
        const point = points[points.length - 1]!;
        if (points.length % MEMORY_LOG_EVERY === 1) {
          log(`  engine memory: ${num()(point.keysFolded)} keys folded, cache ${num()(point.cacheEntries)} entries, RSS ${mib(point.rssBytes)}, V8 heap used ${mib(point.heapUsedBytes)}`);
        }
      } catch {
        return; // the worker is gone; the phase reports why
      }
      await sleep(MEMORY_SAMPLE_MS);
    }
  })();
  return {
    points,
    stop: async () => {
      running = false;
      await loop;
    },
  };
}

/**
 * The memory timeline as a table: the first reading at or past 10k, 100k, 500k and 1M keys and
 * each tenth of the keys, so a flat RSS column shows memory bounded by the cache, not by the
 * number of keys; the V8 heap (used, reserved) and memory outside it (external, of which array
 * buffers) say where a growth is.
 */
function renderMemoryTimeline(points: readonly MemoryPoint[], totalKeys: number): string {
  const marks = [10_000, 100_000, 500_000, 1_000_000, ...Array.from({ length: 10 }, (_, i) => (totalKeys * (i + 1)) / 10)].filter((m) => m <= totalKeys);
  const rows = [...new Set(marks.flatMap((mark) => points.find((p) => p.keysFolded >= mark) ?? []))].sort((a, b) => a.keysFolded - b.keysFolded);
  const last = points[points.length - 1];
  if (last && !rows.includes(last)) rows.push(last);
  const header = ['distinct keys folded', 'elapsed (s)', 'cache entries', 'RSS', 'peak RSS so far', 'V8 heap used', 'V8 heap total', 'external', 'array buffers'];
  const body = rows.map((p) => [
    num()(p.keysFolded),
    num()(p.seconds),
    num()(p.cacheEntries),
    mib(p.rssBytes),
    mib(p.peakRssBytes),
    mib(p.heapUsedBytes),
    mib(p.heapTotalBytes),
    mib(p.externalBytes),
    mib(p.arrayBuffersBytes),
  ]);
  return renderGrid(header, body, 'number');
}

/** A latency probe: when it was produced, and whether in the warm-up (`BenchOptions.warmupMs`). */
interface Probe {
  readonly at: number;
  readonly cold: boolean;
}

/** The p50 and p99 rows of the warm-up probes' latencies (none without a warm-up). */
function warmupRows(what: string, warmupMs: number, engine: readonly number[] | undefined, naive: readonly number[] | undefined): ResultRow[] {
  if (warmupMs <= 0) return [];
  return ([50, 99] as const).map((p) => ({
    metric: `${what} p${p} (ms), first ${num(0)(warmupMs / 1000)} s (warm-up)`,
    engine: percentile(engine ?? [], p),
    naive: percentile(naive ?? [], p),
    format: num(1),
    better: 'lower',
  }));
}

/** Measured figures of one contender. */
interface ContenderResult {
  contender: Contender;
  eventsPerSecond?: number;
  eventsPerSecondSinceStart?: number;
  counts?: DynamoDbRequestCounts;
  /** Capacity units of the throughput phase (bench/internal/cost.ts) and what they cost. */
  capacity?: CapacityCounts;
  cost?: ContenderCost;
  events?: number;
  peakRssBytes?: number;
  /** Produce->view of the probes after the warm-up. */
  latenciesMs: number[];
  /** Produce->view of the probes of the warm-up: the first seconds of a fresh process. */
  coldLatenciesMs: number[];
  probeTimeouts: number;
  /** User+system CPU seconds of the contender's process per million events (throughput phase). */
  cpuPerMillion?: number;
  error?: string;
}

function log(message: string): void {
  process.stderr.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${message}\n`);
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** Produces `count` events from `generator`, a few requests in flight. */
async function produceAll(producer: Producer, topic: string, generator: BookingGenerator, count: number): Promise<void> {
  let sent = 0;
  let lastLog = Date.now();
  const inFlight = new Set<Promise<unknown>>();
  while (sent < count) {
    const events = generator.take(Math.min(PRODUCE_BATCH, count - sent));
    sent += events.length;
    const request = producer.send({ topic, acks: -1, messages: events.map(toMessage) });
    inFlight.add(request);
    void request.finally(() => inFlight.delete(request)).catch(() => {});
    if (inFlight.size >= PRODUCE_IN_FLIGHT) await Promise.race(inFlight);
    if (Date.now() - lastLog > 5_000) {
      log(`  produced ${num()(sent)} / ${num()(count)}`);
      lastLog = Date.now();
    }
  }
  await Promise.all(inFlight);
}

/** A contender process, driven over IPC. */
class WorkerHandle {
  private readonly child: ChildProcess;
  private readonly waiters: ((message: any) => boolean)[] = [];
  failure: string | undefined;

  constructor(config: WorkerConfig, verbose: boolean, stackEnv: Readonly<Record<string, string>>) {
    this.child = fork(WORKER, [], {
      execArgv: ['--import', 'tsx'],
      env: { ...process.env, ...stackEnv, BENCH_WORKER: JSON.stringify(config) },
      stdio: verbose ? 'inherit' : ['ignore', 'ignore', 'inherit', 'ipc'],
    });
    this.child.on('message', (message: any) => {
      if (message?.type === 'failed') this.failure = String(message.message);
      for (let i = 0; i < this.waiters.length; i++) {
        if (this.waiters[i]!(message)) this.waiters.splice(i--, 1);
      }
    });
    this.child.on('exit', (code) => {
      if (code !== 0 && !this.failure) this.failure = `worker exited with code ${code}`;
      for (const waiter of this.waiters.splice(0)) waiter({ type: 'exit' });
    });
  }

  private next<T>(type: string, timeoutMs: number): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`bench worker: no "${type}" within ${timeoutMs} ms`)), timeoutMs);
      this.waiters.push((message) => {
        if (message?.type === type) {
          clearTimeout(timer);
          resolve(message as T);
          return true;
        }
        if (message?.type === 'failed' || message?.type === 'exit') {
          clearTimeout(timer);
          reject(new Error(`bench worker failed: ${this.failure ?? 'exited'}`));
          return true;
        }
        return false;
      });
    });
  }

  started(): Promise<unknown> {
    return this.next('started', 120_000);
  }

  stats(): Promise<WorkerStats> {
    const answer = this.next<WorkerStats>('stats', 30_000);
    this.child.send({ type: 'stats' });
    return answer;
  }

  async stop(): Promise<void> {
    if (this.child.exitCode !== null) return;
    const exited = new Promise<void>((resolve) => this.child.once('exit', () => resolve()));
    this.child.send({ type: 'stop' });
    const timer = setTimeout(() => this.child.kill('SIGKILL'), 30_000);
    await exited;
    clearTimeout(timer);
  }
}

/**
 * Events durable in a contender's view, counted from offset 0: the engine's checkpoints (next
 * offset to consume per partition, docs/architecture.md "Storage layout"), or, for the naive
 * worker, the group's committed offsets before it started plus the events it has applied since.
 */
async function progressOf(
  contender: Contender,
  ddb: DynamoDBClient,
  tableName: string,
  topic: string,
  naiveBaseline: number,
  worker: WorkerHandle,
): Promise<number> {
  // Per event, not per batch: the worker counts each awaited UpdateItem.
  if (contender === 'naive') return naiveBaseline + ((await worker.stats()).eventsApplied ?? 0);
  let total = 0;
  let cursor: Record<string, any> | undefined;
  do {
    const out = await ddb.send(
      new QueryCommand({
        TableName: tableName,
        KeyConditionExpression: 'pk = :pk AND begins_with(sk, :prefix)',
        ExpressionAttributeValues: { ':pk': { S: '_tributary' }, ':prefix': { S: `checkpoint#${topic}#` } },
        ConsistentRead: true,
        ExclusiveStartKey: cursor,
      }),
    );
    for (const item of out.Items ?? []) total += Number(item.offset?.S ?? item.offset?.N ?? 0);
    cursor = out.LastEvaluatedKey;
  } while (cursor);
  return total;
}

async function committedTotal(admin: Admin, group: string, topic: string): Promise<number> {
  const [committed] = await admin.fetchOffsets({ groupId: group, topics: [topic] });
  return (committed?.partitions ?? []).reduce((sum, p) => sum + Math.max(0, Number(p.offset)), 0);
}

async function endOffsetsTotal(kafka: Kafka, topic: string): Promise<number> {
  const admin = kafka.admin();
  await admin.connect();
  try {
    return (await admin.fetchTopicOffsets(topic)).reduce((sum, p) => sum + Number(p.high), 0);
  } finally {
    await admin.disconnect();
  }
}

/** Throughput of a phase, two ways. */
interface Throughput {
  /** Events/s from the first durable progress seen to the last event: steady state, no startup. */
  readonly steady: number;
  /** Events/s from "joined the group" to the last event: includes the first fetch. */
  readonly sinceStart: number;
  readonly seconds: number;
}

/** Polls progress until `target` and times it; `fromEvents` is the progress before the contender started. */
async function waitForProgress(
  what: string,
  target: number,
  timeoutMs: number,
  progress: () => Promise<number>,
  startedAt: number = performance.now(),
  fromEvents = 0,
): Promise<Throughput> {
  const deadline = Date.now() + timeoutMs;
  let lastLog = Date.now();
  let first: { at: number; done: number } | undefined;
  for (;;) {
    const done = await progress();
    const at = performance.now();
    if (done > fromEvents && !first) first = { at, done };
    if (done >= target) {
      const sinceStart = ((done - fromEvents) / Math.max(1, at - startedAt)) * 1000;
      // Finished within one poll: there is no steady state to time, only the whole run.
      const steady = first && at > first.at ? ((done - first.done) / (at - first.at)) * 1000 : sinceStart;
      return { steady, sinceStart, seconds: (at - startedAt) / 1000 };
    }
    if (Date.now() > deadline) throw new Error(`${what}: ${done} of ${target} events after ${timeoutMs} ms`);
    if (Date.now() - lastLog > 5_000) {
      log(`  ${what}: ${num()(done)} / ${num()(target)}`);
      lastLog = Date.now();
    }
    await sleep(PROGRESS_POLL_MS);
  }
}

function probeEvent(runId: string, contender: Contender, i: number): BookingEvent {
  const at = new Date();
  return {
    type: 'booked',
    bookingId: `probe-${runId}-${contender}-${i}`,
    classId: `probe-${runId}-${contender}-${i}`,
    memberId: 'probe-member',
    classStartsAt: new Date(at.getTime() + 86_400_000).toISOString(),
    capacity: 10,
    at: at.toISOString(),
  };
}

/**
 * Produces probes under background load and times each until a read sees it. One shared poller
 * checks every outstanding probe with one batch read per tick, so the reads stay at a bounded
 * rate however slow the contender is (a poller per probe would load DynamoDB Local in proportion
 * to the latency it measures, and feed back into it).
 */
async function measureLatency(
  options: BenchOptions,
  contender: Contender,
  producer: Producer,
  topic: string,
  generator: BookingGenerator,
  visibleKeys: (classIds: string[]) => Promise<Set<string>>,
  runId: string,
  producedAt: Map<string, Probe>,
): Promise<{ latenciesMs: number[]; coldLatenciesMs: number[]; timeouts: number }> {
  let stopBackground = false;
  const background = (async () => {
    const perTick = Math.max(0, Math.round((options.backgroundRate ?? 0) / 10));
    while (!stopBackground && perTick > 0) {
      const tick = Date.now();
      await producer.send({ topic, acks: -1, messages: generator.take(perTick).map(toMessage) });
      await sleep(Math.max(0, 100 - (Date.now() - tick)));
    }
  })();
  const latenciesMs: number[] = [];
  const coldLatenciesMs: number[] = [];
  let timeouts = 0;
  /** Probe key -> when it was produced (performance.now() just before its produce request). */
  const outstanding = new Map<string, Probe>();
  let producing = true;
  const poller = (async () => {
    while (producing || outstanding.size > 0) {
      const keys = [...outstanding.keys()];
      if (keys.length > 0) {
        const seen = await visibleKeys(keys);
        const now = performance.now();
        for (const key of keys) {
          const probe = outstanding.get(key)!;
          if (seen.has(key)) {
            (probe.cold ? coldLatenciesMs : latenciesMs).push(now - probe.at);
            outstanding.delete(key);
          } else if (now - probe.at > PROBE_TIMEOUT_MS) {
            timeouts++;
            outstanding.delete(key);
          }
        }
      }
      await sleep(PROBE_POLL_MS);
    }
  })();
  const sends: Promise<unknown>[] = [];
  const warmupEnds = performance.now() + options.warmupMs;
  // Warm-up probes first (as many as fit in warmupMs), then the measured ones.
  for (let i = 0, measured = 0; measured < options.probes; i++) {
    const event = probeEvent(runId, contender, i);
    const at = performance.now();
    const probe: Probe = { at, cold: at < warmupEnds };
    if (!probe.cold) measured++;
    producedAt.set(event.classId, probe);
    outstanding.set(event.classId, probe);
    sends.push(producer.send({ topic, acks: -1, messages: [toMessage(event)] }));
    await sleep(options.probeIntervalMs);
  }
  await Promise.all(sends);
  producing = false;
  await poller;
  stopBackground = true;
  await background;
  return { latenciesMs, coldLatenciesMs, timeouts };
}

/** Which of `classIds` have an item in the naive table (consistent batch reads). */
async function naiveVisible(ddb: DynamoDBClient, tableName: string, classIds: string[]): Promise<Set<string>> {
  const seen = new Set<string>();
  for (let i = 0; i < classIds.length; i += 100) {
    let keys: Record<string, any>[] | undefined = classIds.slice(i, i + 100).map((id) => ({ pk: { S: NAIVE_PK }, sk: { S: `key#${id}` } }));
    while (keys && keys.length > 0) {
      const out: BatchGetItemCommandOutput = await ddb.send(
        new BatchGetItemCommand({ RequestItems: { [tableName]: { Keys: keys, ConsistentRead: true, ProjectionExpression: 'sk' } } }),
      );
      for (const item of out.Responses?.[tableName] ?? []) seen.add(String(item.sk?.S).slice('key#'.length));
      keys = out.UnprocessedKeys?.[tableName]?.Keys;
    }
  }
  return seen;
}

async function compareViews(ddb: DynamoDBClient, engineTable: string, naiveTable: string, classIds: string[]): Promise<string> {
  const reader = createViewReader({ dynamodb: ddb, tableName: engineTable });
  const view = classCountsView('unused');
  const engineItems = await reader.getMany(view, classIds, { consistent: true });
  let mismatches = 0;
  for (let i = 0; i < classIds.length; i++) {
    const out = await ddb.send(
      new GetItemCommand({ TableName: naiveTable, Key: { pk: { S: NAIVE_PK }, sk: { S: `key#${classIds[i]}` } }, ConsistentRead: true }),
    );
    const naive = out.Item;
    const engine = engineItems[i]?.state;
    const same =
      engine !== undefined &&
      naive !== undefined &&
      engine.booked === Number(naive.booked?.N) &&
      engine.cancelled === Number(naive.cancelled?.N) &&
      engine.net === Number(naive.net?.N) &&
      engine.lastEventAtMs === Number(naive.lastEventAtMs?.N);
    if (!same) {
      mismatches++;
      if (mismatches <= 3) {
        const n = naive && { booked: naive.booked?.N, cancelled: naive.cancelled?.N, net: naive.net?.N, lastEventAtMs: naive.lastEventAtMs?.N };
        log(`  key ${classIds[i]}: engine ${JSON.stringify(engine)} (version ${engineItems[i]?.version}) vs naive ${JSON.stringify(n)}`);
      }
    }
  }
  return mismatches === 0 ? `yes (${classIds.length} sampled keys equal)` : `NO: ${mismatches} of ${classIds.length} sampled keys differ`;
}

async function main(): Promise<void> {
  let options: BenchOptions;
  try {
    options = parseBenchOptions(process.argv.slice(2), process.env);
  } catch (error) {
    if (error instanceof BenchUsageError) {
      console.error(error.message);
      process.exit(2);
    }
    throw error;
  }
  if (options.scenario === 'windows') {
    await runWindowsScenario(options, log);
    return;
  }
  if (options.scenario === 'live') {
    await runLiveScenario(options, log);
    return;
  }
  if (options.scenario === 'joins') {
    await runJoinsScenario(options, log);
    return;
  }
  if (options.scenario === 'rebuild') {
    await runRebuildScenario(options, log);
    return;
  }
  if (options.scenario === 'cardinality') {
    await runCardinalityScenario(options, log);
    return;
  }
  if (options.scenario === 'streams') {
    await runStreamsScenario(options, log);
    return;
  }
  const runId = Date.now().toString(36);
  log(`scenario ${options.scenario}: ${num()(options.events)} events, ${num()(options.classes)} classes, ${options.partitions} partitions, contenders ${options.contenders.join(', ')}`);
  const stackStarted = Date.now();
  const stack: LocalStack = await startLocalStack({ log: options.verbose ? (line) => log(`stack: ${line}`) : () => {} });
  log(`local stack up in ${Date.now() - stackStarted} ms (DynamoDB Local ${stack.dynamodb.endpoint}, broker ${stack.kafka.brokers.join(',')})`);
  const ddb = new DynamoDBClient({ region: stack.region, endpoint: stack.dynamodb.endpoint, credentials });
  const sink: TriggerSink = { invocations: 0, changes: 0, probeArrivals: new Map() };
  stack.lambda.register(TRIGGER_FUNCTION, (event: { changes?: { key: string }[] }) => {
    const now = performance.now();
    sink.invocations++;
    for (const change of event.changes ?? []) {
      sink.changes++;
      if (change.key.startsWith('probe-') && !sink.probeArrivals.has(change.key)) sink.probeArrivals.set(change.key, now);
    }
    return { batchItemFailures: [] };
  });
  const triggerScenario = options.scenario === 'triggers';
  /** Per contender: what its throughput phase delivered to the function, and how long it took. */
  const triggerPhases = new Map<Contender, { invocations: number; changes: number; seconds: number }>();
  /** The engine's trigger phase again with `changes: 'coalesced'` (the engine contender runs the default, 'every'). */
  let coalescedPhase: { invocations: number; changes: number; seconds: number } | undefined;
  const functionLatenciesMs = new Map<Contender, number[]>();
  /** Produce->function of the warm-up probes. */
  const coldFunctionLatenciesMs = new Map<Contender, number[]>();
  const kafka = new Kafka({ clientId: 'bench', brokers: [...stack.kafka.brokers], logLevel: logLevel.NOTHING });
  const producer = kafka.producer({ allowAutoTopicCreation: false });
  const progressAdmin = kafka.admin();
  const results = new Map<Contender, ContenderResult>();
  let agreement = 'not checked';
  let backgroundRate = 0;
  let memoryTimeline: MemoryPoint[] = [];
  /** The engine's per-stage batch timings at the end of its latency phase. */
  let batchTimings: Parameters<typeof renderBatchTimings>[0] | undefined;
  let engineProfile: string | undefined;
  try {
    const topic = `bench-bookings-${runId}`;
    const admin = kafka.admin();
    await admin.connect();
    await admin.createTopics({ topics: [{ topic, numPartitions: options.partitions }, { topic: `${topic}.dead-letter`, numPartitions: 1 }], waitForLeaders: true });
    await admin.disconnect();
    await producer.connect();
    await progressAdmin.connect();

    const generatorOptions = {
      seed: options.seed,
      classes: options.classes,
      members: Math.max(100, Math.min(100_000, options.classes * 10)),
      pick: options.scenario === 'keys' ? ('sequential' as const) : ('uniform' as const),
      cancelRate: options.scenario === 'keys' ? 0 : undefined,
    };
    const generator = createBookingGenerator(generatorOptions);
    const produceStarted = Date.now();
    await produceAll(producer, topic, generator, options.events);
    log(`produced ${num()(options.events)} events in ${Date.now() - produceStarted} ms`);
    const target = await endOffsetsTotal(kafka, topic);

    const tables: Record<Contender, string> = { engine: `bench-engine-${runId}`, naive: `bench-naive-${runId}` };
    const groups: Record<Contender, string> = { engine: `bench-${runId}`, naive: `bench-naive-${runId}` };
    const workerConfig = (contender: Contender): WorkerConfig => ({
      mode: contender,
      brokers: [...stack.kafka.brokers],
      topic,
      tableName: tables[contender],
      group: groups[contender],
      region: stack.region,
      dynamodbEndpoint: stack.dynamodb.endpoint,
      cacheMaxEntries: options.cacheMaxEntries,
      ...(options.maxBytesPerPartition === undefined ? {} : { maxBytesPerPartition: options.maxBytesPerPartition }),
      triggerFunction: triggerScenario ? TRIGGER_FUNCTION : undefined,
      verbose: options.verbose,
    });

    // Phase 1: throughput, writes per event, peak memory.
    for (const contender of options.contenders) {
      const result: ContenderResult = { contender, latenciesMs: [], coldLatenciesMs: [], probeTimeouts: 0 };
      results.set(contender, result);
      await ensureViewsTable(ddb, tables[contender]);
      log(`${contender}: consuming ${num()(target)} events`);
      const baseline = contender === 'naive' ? await committedTotal(progressAdmin, groups.naive, topic) : 0;
      // BENCH_ENGINE_CPU_PROF=<dir>: a CPU profile of the engine's throughput phase, broken down below.
      const profile = contender === 'engine' && process.env.BENCH_ENGINE_CPU_PROF ? `${process.env.BENCH_ENGINE_CPU_PROF}/engine-throughput-${runId}.cpuprofile` : undefined;
      if (profile) engineProfile = profile;
      const worker = new WorkerHandle({ ...workerConfig(contender), ...(profile ? { cpuProfileFile: profile } : {}) }, options.verbose, stack.env);
      // Contenders run one after the other: the function's counters over this phase are this contender's.
      const sinkBefore = { invocations: sink.invocations, changes: sink.changes };
      try {
        await worker.started();
        // Both contenders report "started" once they joined their group: the clock starts there.
        const startedAt = performance.now();
        const cpuAtStart = (await worker.stats()).cpu;
        const sampler = options.scenario === 'keys' && contender === 'engine' ? sampleMemory(worker) : undefined;
        let throughput: Throughput;
        try {
          throughput = await waitForProgress(
            `${contender} throughput`,
            target,
            options.phaseTimeoutMs,
            () => progressOf(contender, ddb, tables[contender], topic, baseline, worker),
            startedAt,
            baseline,
          );
        } finally {
          await sampler?.stop();
          if (sampler) memoryTimeline = sampler.points;
        }
        result.eventsPerSecond = throughput.steady;
        result.eventsPerSecondSinceStart = throughput.sinceStart;
        // Commit after durability: the checkpoint only passes events whose changes were delivered.
        if (triggerScenario) {
          triggerPhases.set(contender, {
            invocations: sink.invocations - sinkBefore.invocations,
            changes: sink.changes - sinkBefore.changes,
            seconds: throughput.seconds,
          });
        }
        log(`${contender}: ${num(1)(throughput.seconds)} s from joining the group to the last event`);
        const stats = await worker.stats();
        // A fresh process: its counters hold exactly this phase's requests.
        result.counts = stats.counts;
        result.events = target;
        result.capacity = stats.capacity;
        result.cost = contenderCost(stats.capacity, await priceUpdates(ddb, stats.capacity.updates), target);
        result.peakRssBytes = stats.peakRssBytes;
        result.cpuPerMillion = cpuSecondsPerMillion(cpuAtStart, stats.cpu, target).total;
        if (stats.engineStats) {
          const e = stats.engineStats as { batches?: number; writes?: number; eventsApplied?: number; cache?: unknown };
          log(`${contender}: engine stats: batches ${e.batches}, writes ${e.writes}, eventsApplied ${e.eventsApplied}, cache ${JSON.stringify(e.cache)}`);
        }
        log(`${contender}: ${num()(throughput.steady)} events/s steady, ${result.counts.writeRequests} write requests, peak RSS ${mib(stats.peakRssBytes)}; requests ${JSON.stringify(result.counts.requests)}`);
      } catch (error) {
        result.error = error instanceof Error ? error.message : String(error);
        log(`${contender}: FAILED: ${result.error}`);
      } finally {
        await worker.stop();
      }
    }

    // Phase 1b (triggers): the engine once more on the same events, with changes: 'coalesced'
    // (the engine above ran the default, 'every'), for its invocations beside the default's.
    if (triggerScenario && results.get('engine')?.counts) {
      const table = `bench-coalesced-${runId}`;
      await ensureViewsTable(ddb, table);
      const worker = new WorkerHandle(
        { ...workerConfig('engine'), tableName: table, group: `bench-coalesced-${runId}`, triggerChanges: 'coalesced' },
        options.verbose,
        stack.env,
      );
      const sinkBefore = { invocations: sink.invocations, changes: sink.changes };
      try {
        await worker.started();
        const startedAt = performance.now();
        const throughput = await waitForProgress('engine (coalesced) throughput', target, options.phaseTimeoutMs, () => progressOf('engine', ddb, table, topic, 0, worker), startedAt, 0);
        coalescedPhase = { invocations: sink.invocations - sinkBefore.invocations, changes: sink.changes - sinkBefore.changes, seconds: throughput.seconds };
        log(`engine (changes: 'coalesced'): ${coalescedPhase.changes} changes in ${coalescedPhase.invocations} invocations, ${num(1)(throughput.seconds)} s`);
      } catch (error) {
        log(`engine (changes: 'coalesced'): FAILED: ${error instanceof Error ? error.message : String(error)}`);
      } finally {
        await worker.stop();
      }
    }

    // Phase 2: both contenders folded the same events into the same view.
    if (results.get('engine')?.counts && results.get('naive')?.counts) {
      const sample = createBookingGenerator(generatorOptions)
        .take(AGREEMENT_SAMPLE * 3)
        .map((e) => e.classId);
      agreement = await compareViews(ddb, tables.engine, tables.naive, [...new Set(sample)].slice(0, AGREEMENT_SAMPLE));
      log(`views agree: ${agreement}`);
    }

    // Phase 3: produce -> view-visible latency under moderate load.
    if (options.probes > 0) {
      const measuredRates = [...results.values()].map((r) => r.eventsPerSecond).filter((r): r is number => Number.isFinite(r));
      backgroundRate =
        options.backgroundRate ?? Math.min(AUTO_BACKGROUND_MAX_RATE, Math.round((Math.min(...measuredRates, Infinity) || 0) / 5));
      if (!Number.isFinite(backgroundRate)) backgroundRate = 0;
      const view = classCountsView(topic);
      const reader = createViewReader({ dynamodb: ddb, tableName: tables.engine });
      for (const contender of options.contenders) {
        const result = results.get(contender)!;
        if (result.error) continue;
        const baseline = contender === 'naive' ? await committedTotal(progressAdmin, groups.naive, topic) : 0;
        const worker = new WorkerHandle(workerConfig(contender), options.verbose, stack.env);
        try {
          await worker.started();
          // Resume where phase 1 stopped, plus what the other contender's probing added.
          const caughtUp = await endOffsetsTotal(kafka, topic);
          await waitForProgress(`${contender} catch-up`, caughtUp, options.phaseTimeoutMs, () =>
            progressOf(contender, ddb, tables[contender], topic, baseline, worker),
          );
          log(`${contender}: ${options.probes} latency probes at ${backgroundRate} events/s background load, after ${num(1)(options.warmupMs / 1000)} s of warm-up probes`);
          const visible =
            contender === 'engine'
              ? async (classIds: string[]) => {
                  const items = await reader.getMany(view, classIds, { consistent: true });
                  return new Set(items.filter((item) => item !== undefined).map((item) => item!.key));
                }
              : (classIds: string[]) => naiveVisible(ddb, tables.naive, classIds);
          const producedAt = new Map<string, Probe>();
          const measured = await measureLatency({ ...options, backgroundRate }, contender, producer, topic, generator, visible, runId, producedAt);
          if (triggerScenario) {
            // A change reaches the function after its write is durable; give stragglers a moment.
            const deadline = Date.now() + 10_000;
            while ([...producedAt.keys()].some((k) => !sink.probeArrivals.has(k)) && Date.now() < deadline) await sleep(20);
            const latencies: number[] = [];
            const cold: number[] = [];
            for (const [key, probe] of producedAt) {
              const arrived = sink.probeArrivals.get(key);
              if (arrived !== undefined) (probe.cold ? cold : latencies).push(arrived - probe.at);
            }
            functionLatenciesMs.set(contender, latencies);
            coldFunctionLatenciesMs.set(contender, cold);
            log(`${contender}: produce->function p50 ${percentile(latencies, 50)?.toFixed(1)} ms, p99 ${percentile(latencies, 99)?.toFixed(1)} ms (${latencies.length} of ${options.probes} probes arrived, ${cold.length} of ${producedAt.size - options.probes} in the warm-up)`);
          }
          if (contender === 'engine') batchTimings = ((await worker.stats()).engineStats as { batchTimings?: typeof batchTimings } | undefined)?.batchTimings;
          result.latenciesMs = measured.latenciesMs;
          result.coldLatenciesMs = measured.coldLatenciesMs;
          result.probeTimeouts = measured.timeouts;
          log(`${contender}: p50 ${percentile(measured.latenciesMs, 50)?.toFixed(1)} ms, p99 ${percentile(measured.latenciesMs, 99)?.toFixed(1)} ms, ${measured.timeouts} probes timed out`);
        } catch (error) {
          log(`${contender}: latency phase FAILED: ${error instanceof Error ? error.message : String(error)}`);
        } finally {
          await worker.stop();
        }
      }
    }
  } finally {
    await producer.disconnect().catch(() => {});
    await progressAdmin.disconnect().catch(() => {});
    await stack.stop();
  }

  const engine = results.get('engine');
  const naive = results.get('naive');
  const perEvent = (r: ContenderResult | undefined, pick: (c: DynamoDbRequestCounts) => number) =>
    r?.counts && r.events ? pick(r.counts) / r.events : undefined;
  const rows: ResultRow[] = [
    { metric: 'events/s, steady (1st durable batch -> last)', engine: engine?.eventsPerSecond, naive: naive?.eventsPerSecond, format: num(0), better: 'higher' },
    { metric: 'events/s, from group join -> last', engine: engine?.eventsPerSecondSinceStart, naive: naive?.eventsPerSecondSinceStart, format: num(0), better: 'higher' },
    { metric: 'DynamoDB write requests / event', engine: perEvent(engine, (c) => c.writeRequests), naive: perEvent(naive, (c) => c.writeRequests), format: num(4), better: 'lower' },
    { metric: 'DynamoDB item writes / event', engine: perEvent(engine, (c) => c.itemWrites), naive: perEvent(naive, (c) => c.itemWrites), format: num(4), better: 'lower' },
    { metric: 'DynamoDB read requests / event', engine: perEvent(engine, (c) => c.readRequests), naive: perEvent(naive, (c) => c.readRequests), format: num(4), better: 'lower' },
    { metric: 'write units / event (cost model)', engine: engine?.cost?.writeUnitsPerEvent, naive: naive?.cost?.writeUnitsPerEvent, format: num(4), better: 'lower' },
    { metric: 'read units / event (cost model)', engine: engine?.cost?.readUnitsPerEvent, naive: naive?.cost?.readUnitsPerEvent, format: num(4), better: 'lower' },
    { metric: 'on-demand USD / million events', engine: engine?.cost?.usdPerMillionEvents, naive: naive?.cost?.usdPerMillionEvents, format: num(4), better: 'lower' },
    { metric: 'produce->view p50 (ms)', engine: percentile(engine?.latenciesMs ?? [], 50), naive: percentile(naive?.latenciesMs ?? [], 50), format: num(1), better: 'lower' },
    { metric: 'produce->view p99 (ms)', engine: percentile(engine?.latenciesMs ?? [], 99), naive: percentile(naive?.latenciesMs ?? [], 99), format: num(1), better: 'lower' },
    ...warmupRows('produce->view', options.warmupMs, engine?.coldLatenciesMs, naive?.coldLatenciesMs),
    { metric: 'CPU s / million events (user+sys, throughput)', engine: engine?.cpuPerMillion, naive: naive?.cpuPerMillion, format: num(1), better: 'lower' },
    { metric: 'peak RSS (throughput phase)', engine: engine?.peakRssBytes, naive: naive?.peakRssBytes, format: mib, better: 'lower' },
  ];
  console.log('');
  const fetchNote = options.maxBytesPerPartition === undefined ? '' : `, engine maxBytesPerPartition ${num()(options.maxBytesPerPartition)}`;
  console.log(`Tributary bench — scenario ${options.scenario}: ${num()(options.events)} events, ${num()(options.classes)} classes (keys), ${options.partitions} partitions, seed ${options.seed}${fetchNote}`);
  console.log(renderTable(rows));
  console.log(priceNote());
  const sizeRows = [...results.values()].flatMap((r) =>
    r.capacity ? sizeDistributions(r.capacity).map((d) => [r.contender, d.kind, num()(d.writes), num()(d.p50), num()(d.p99), num()(d.max), String(d.unitsAtP50)]) : [],
  );
  if (sizeRows.length > 0) {
    console.log('');
    console.log('Sizes of the items written by PutItem (bytes; a view item carries its offsets per partition and trigger bookkeeping); UpdateItems are priced at their stored item size');
    console.log(renderGrid(['contender', 'item', 'puts', 'p50 B', 'p99 B', 'max B', 'write units at p50'], sizeRows, 'label'));
  }
  if (memoryTimeline.length > 0) {
    console.log('');
    console.log(`Engine memory while folding ${num()(options.events)} distinct keys (state cache limit: ${options.cacheMaxEntries === undefined ? 'engine default' : num()(options.cacheMaxEntries)} entries)`);
    console.log(renderMemoryTimeline(memoryTimeline, options.events));
  }
  if (batchTimings !== undefined) {
    console.log('');
    console.log('Engine batch stages during the latency phase (its last 1,000 batches at most; checkpoint and commit run behind the next fetch)');
    console.log(renderBatchTimings(batchTimings));
  }
  if (engineProfile !== undefined) {
    console.log('');
    console.log(renderCpuProfile(engineProfile) ?? `no CPU profile at ${engineProfile}`);
  }
  if (options.probes > 0) {
    console.log(`latency probes: ${options.probes} per contender, one every ${options.probeIntervalMs} ms, under ${backgroundRate} events/s background load`);
    if (options.warmupMs > 0) {
      // Each latency phase starts a fresh process: an empty state cache (the engine reads each key
      // at its first touch; the naive UpdateItem never reads), a cold JIT and new connections.
      console.log(`  each after ${num(1)(options.warmupMs / 1000)} s of the same load and probes in a fresh process; the rows marked (warm-up) time those probes (a cold state cache: the engine reads a key at its first touch)`);
    }
  }
  console.log(`views agree (engine vs naive): ${agreement}`);
  for (const r of results.values()) {
    if (r.counts) console.log(`${r.contender} DynamoDB requests: ${JSON.stringify(r.counts.requests)}`);
    if (r.latenciesMs.length || r.probeTimeouts) console.log(`${r.contender} latency probes: ${r.latenciesMs.length} measured, ${r.coldLatenciesMs.length} in the warm-up, ${r.probeTimeouts} timed out`);
    if (r.error) console.log(`${r.contender} FAILED: ${r.error}`);
  }
  if (triggerPhases.size > 0) {
    const phase = (c: Contender) => triggerPhases.get(c);
    const fromPhase = (c: Contender, pick: (p: { invocations: number; changes: number; seconds: number }) => number) => {
      const p = phase(c);
      return p === undefined ? undefined : pick(p);
    };
    const fn = (c: Contender, p: number) => percentile(functionLatenciesMs.get(c) ?? [], p);
    const triggerRows: ResultRow[] = [
      { metric: 'function invocations / change', engine: fromPhase('engine', (p) => p.invocations / Math.max(1, p.changes)), naive: fromPhase('naive', (p) => p.invocations / Math.max(1, p.changes)), format: num(4), better: 'lower' },
      { metric: "function invocations / change, changes: 'coalesced'", engine: coalescedPhase && coalescedPhase.invocations / Math.max(1, coalescedPhase.changes), naive: undefined, format: num(4), better: 'lower' },
      { metric: 'function invocations / event', engine: fromPhase('engine', (p) => p.invocations / options.events), naive: fromPhase('naive', (p) => p.invocations / options.events), format: num(4), better: 'lower' },
      { metric: "function invocations / event, changes: 'coalesced'", engine: coalescedPhase && coalescedPhase.invocations / options.events, naive: undefined, format: num(4), better: 'lower' },
      { metric: 'changes delivered / event', engine: fromPhase('engine', (p) => p.changes / options.events), naive: fromPhase('naive', (p) => p.changes / options.events), format: num(4), better: 'lower' },
      { metric: "changes delivered / event, changes: 'coalesced'", engine: coalescedPhase && coalescedPhase.changes / options.events, naive: undefined, format: num(4), better: 'lower' },
      { metric: 'changes / invocation', engine: fromPhase('engine', (p) => p.changes / Math.max(1, p.invocations)), naive: fromPhase('naive', (p) => p.changes / Math.max(1, p.invocations)), format: num(1), better: 'higher' },
      { metric: 'changes delivered / s (join -> last)', engine: fromPhase('engine', (p) => p.changes / p.seconds), naive: fromPhase('naive', (p) => p.changes / p.seconds), format: num(0), better: 'higher' },
      { metric: 'events/s with trigger (join -> last)', engine: fromPhase('engine', (p) => options.events / p.seconds), naive: fromPhase('naive', (p) => options.events / p.seconds), format: num(0), better: 'higher' },
      { metric: "events/s with trigger, changes: 'coalesced'", engine: coalescedPhase && options.events / coalescedPhase.seconds, naive: undefined, format: num(0), better: 'higher' },
      { metric: 'produce->function p50 (ms)', engine: fn('engine', 50), naive: fn('naive', 50), format: num(1), better: 'lower' },
      { metric: 'produce->function p99 (ms)', engine: fn('engine', 99), naive: fn('naive', 99), format: num(1), better: 'lower' },
      ...warmupRows('produce->function', options.warmupMs, coldFunctionLatenciesMs.get('engine'), coldFunctionLatenciesMs.get('naive')),
    ];
    console.log('');
    console.log(`Triggers — every change of the view delivered to "${TRIGGER_FUNCTION}" on the local Lambda endpoint`);
    console.log(renderTable(triggerRows));
    console.log("engine column: the trigger's default, changes: 'every' (one change per event that changed a class); rows marked 'coalesced': the engine on the same events once more with changes: 'coalesced' (at most one change per class and batch)");
    console.log('naive column: measured in this run; a kafkajs consumer that sends one UpdateItem and then one synchronous Invoke per event');
    for (const [c, latencies] of functionLatenciesMs) console.log(`${c} produce->function probes: ${latencies.length} arrived, ${coldFunctionLatenciesMs.get(c)?.length ?? 0} in the warm-up`);
  } else {
    console.log('trigger figures: run `npm run bench -- --scenario triggers`');
  }
  const failed = [...results.values()].some((r) => r.error);
  process.exit(failed ? 1 : 0);
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
