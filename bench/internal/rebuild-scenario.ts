/**
 * `npm run bench -- --scenario rebuild`: what a view build costs beside live folding. On one
 * local stack and topic:
 * 1. live folding: an engine with the bench view folds the produced events (records/s);
 * 2. latency with no build: probes produced one by one, each timed until the live view has it;
 * 3. a build: the engine restarts with a second view added, which is built from the topic's
 *    history (records/s of the build, from its progress), while probes go on being produced
 *    and timed against the first, live view.
 * Whether live folding ran during the build is observed, not assumed: the build is "in the
 * background" only if the engine was running (in its group) while the build was in progress.
 * When it was not, the during-build latency is the wait for the build, and the note says so.
 */
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { Kafka, logLevel, type Producer } from 'kafkajs';
import { startEngine, type Engine } from '../../engine/index.ts';
import { toMessage, type BookingEvent } from '../../functions/events.ts';
import { createBookingGenerator } from '../../functions/generator.ts';
import { ensureViewsTable, startLocalStack } from '../../local/index.ts';
import { createViewReader, defineApp, defineView } from '../../sdk/index.ts';
import { classCountsView } from './class-counts.ts';
import { num, percentile, renderGrid } from './metrics.ts';
import type { BenchOptions } from './options.ts';

const credentials = { accessKeyId: 'local', secretAccessKey: 'local' };
/** How often outstanding probes are read, and the engine's progress sampled. */
const POLL_MS = 25;
/** A probe not visible after this long counts as timed out. */
const PROBE_TIMEOUT_MS = 120_000;

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

function probeEvent(runId: string, phase: string, i: number): BookingEvent {
  const at = new Date();
  return {
    type: 'booked',
    bookingId: `probe-${runId}-${phase}-${i}`,
    classId: `probe-${runId}-${phase}-${i}`,
    memberId: 'probe-member',
    classStartsAt: new Date(at.getTime() + 86_400_000).toISOString(),
    capacity: 10,
    at: at.toISOString(),
  };
}

interface Probes {
  readonly latenciesMs: number[];
  timeouts: number;
}

/**
 * Produces a probe every `intervalMs` while `more()` says so (at most `max`), and times each
 * until `visible` sees its key.
 */
async function probe(
  producer: Producer,
  topic: string,
  runId: string,
  phase: string,
  max: number,
  intervalMs: number,
  more: () => boolean,
  visible: (key: string) => Promise<boolean>,
): Promise<Probes> {
  const result: Probes = { latenciesMs: [], timeouts: 0 };
  const outstanding = new Map<string, number>();
  let producing = true;
  const poller = (async () => {
    while (producing || outstanding.size > 0) {
      for (const [key, started] of [...outstanding]) {
        if (await visible(key)) {
          result.latenciesMs.push(performance.now() - started);
          outstanding.delete(key);
        } else if (performance.now() - started > PROBE_TIMEOUT_MS) {
          result.timeouts += 1;
          outstanding.delete(key);
        }
      }
      await sleep(POLL_MS);
    }
  })();
  for (let i = 0; i < max && more(); i++) {
    const event = probeEvent(runId, phase, i);
    outstanding.set(event.classId, performance.now());
    await producer.send({ topic, acks: -1, messages: [toMessage(event)] });
    await sleep(intervalMs);
  }
  producing = false;
  await poller;
  return result;
}

async function waitApplied(engine: Engine, expected: number, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (engine.stats().eventsApplied < expected) {
    if (Date.now() > deadline) throw new Error(`${what}: ${engine.stats().eventsApplied} of ${expected} applied after ${timeoutMs} ms`);
    await sleep(POLL_MS);
  }
}

const ms = (value: number | undefined): string => (value === undefined ? '–' : `${value.toFixed(1)} ms`);

/**
 * Runs the rebuild scenario on its own local stack and prints its table.
 *
 * @example
 * await runRebuildScenario(parseBenchOptions(['--scenario', 'rebuild'], {}), console.log);
 */
export async function runRebuildScenario(options: BenchOptions, log: (line: string) => void): Promise<void> {
  const runId = Date.now().toString(36);
  const stack = await startLocalStack({ log: options.verbose ? (line) => log(`stack: ${line}`) : () => {} });
  const ddb = new DynamoDBClient({ region: stack.region, endpoint: stack.dynamodb.endpoint, credentials });
  const kafka = new Kafka({ clientId: 'bench-rebuild', brokers: [...stack.kafka.brokers], logLevel: logLevel.NOTHING });
  const topic = `bench-rebuild-${runId}`;
  const name = `bench-rebuild-${runId}`;
  const tableName = name;
  const live = classCountsView(topic);
  // The view added later: the same fold under another name, so the build does the same work per record.
  const added = defineView({ name: 'classCountsAdded', source: topic, decode: live.decode, key: live.key, initial: live.initial, reduce: live.reduce });
  const engineOptions = (views: readonly (typeof live)[]) => ({
    app: defineApp({ name, views: [...views], deadLetterTopic: `${topic}.dead-letter` }),
    tableName,
    groupId: name,
    kafka: { brokers: [...stack.kafka.brokers] },
    dynamodb: ddb,
    healthPort: null,
    logLevel: options.verbose ? ('info' as const) : ('warn' as const),
    logSink: (line: string) => process.stderr.write(`[engine] ${line}\n`),
  });
  const reader = createViewReader({ tableName, dynamodb: ddb, aliasCacheMs: 0 });
  const visible = async (key: string) => (await reader.get(live, key, { consistent: true })) !== undefined;
  const producer = kafka.producer({ allowAutoTopicCreation: false });
  let liveRate = 0;
  let buildRate: number | undefined;
  let idle: Probes = { latenciesMs: [], timeouts: 0 };
  let during: Probes = { latenciesMs: [], timeouts: 0 };
  let background = false;
  let buildRecords = 0;
  try {
    const admin = kafka.admin();
    await admin.connect();
    await admin.createTopics({
      topics: [
        { topic, numPartitions: options.partitions },
        { topic: `${topic}.dead-letter`, numPartitions: 1 },
      ],
      waitForLeaders: true,
    });
    await admin.disconnect();
    await ensureViewsTable(ddb, tableName);
    await producer.connect();
    const generator = createBookingGenerator({ seed: options.seed, classes: options.classes, pick: 'uniform' });
    for (let produced = 0; produced < options.events; produced += 1_000) {
      await producer.send({ topic, acks: -1, messages: generator.take(Math.min(1_000, options.events - produced)).map(toMessage) });
    }
    log(`produced ${num()(options.events)} events over ${options.classes} classes, ${options.partitions} partitions`);

    // 1. Live folding of the backlog.
    const first = startEngine(engineOptions([live]));
    await first.ready;
    const started = performance.now();
    await waitApplied(first, options.events, options.phaseTimeoutMs, 'live folding');
    liveRate = options.events / ((performance.now() - started) / 1000);
    log(`live folding: ${num()(Math.round(liveRate))} records/s`);

    // 2. Latency with no build running.
    idle = await probe(producer, topic, runId, 'idle', options.probes, options.probeIntervalMs, () => true, visible);
    log(`no build: p50 ${ms(percentile(idle.latenciesMs, 50))}, p99 ${ms(percentile(idle.latenciesMs, 99))} (${idle.latenciesMs.length} probes)`);
    await first.stop();

    // 3. A view added: its build folds the topic's history while probes go to the live view.
    const second = startEngine(engineOptions([live, added]));
    const secondStarted = performance.now();
    let building = true;
    let lastRate: number | undefined;
    const sampler = (async () => {
      while (building) {
        const state = second.state();
        if (state === 'failed' || state === 'stopped') throw new Error(`the engine ${state} during the build`);
        const progress = second.stats().builds[added.name];
        const inGroup = state === 'running' || state === 'degraded';
        if (progress !== undefined) {
          buildRecords = progress.total;
          if (progress.rate > 0) lastRate = progress.rate;
          if (inGroup) background = true;
        } else if (inGroup) {
          // No build in progress and the task in its group: the build is over.
          building = false;
          break;
        }
        await sleep(POLL_MS);
      }
    })();
    // Probes from the start until the build is over (at most --probes).
    during = await probe(producer, topic, runId, 'build', options.probes, options.probeIntervalMs, () => building, visible);
    await sampler;
    // The build's own rate (its progress), else the records over the whole start, build included.
    buildRate = lastRate ?? (buildRecords > 0 ? buildRecords / ((performance.now() - secondStarted) / 1000) : undefined);
    await second.ready;
    log(`build: ${buildRate === undefined ? 'not seen' : `${num()(Math.round(buildRate))} records/s`}; live during it: p50 ${ms(percentile(during.latenciesMs, 50))}, p99 ${ms(percentile(during.latenciesMs, 99))} (${during.latenciesMs.length} probes)`);
    await second.stop();
  } finally {
    await producer.disconnect().catch(() => undefined);
    ddb.destroy();
    await stack.stop();
  }
  log('');
  const probesCell = (p: Probes) => `${p.latenciesMs.length}${p.timeouts > 0 ? ` (+${p.timeouts} timed out)` : ''}`;
  log(
    renderGrid(
      ['phase', 'records/s', 'produce→view p50', 'produce→view p99', 'probes'],
      [
        [`live folding (${num()(options.events)} records)`, num()(Math.round(liveRate)), '–', '–', '–'],
        ['live view, no build running', '–', ms(percentile(idle.latenciesMs, 50)), ms(percentile(idle.latenciesMs, 99)), probesCell(idle)],
        [`build of an added view (${num()(buildRecords)} records)`, buildRate === undefined ? '–' : num()(Math.round(buildRate)), '–', '–', '–'],
        ['live view, build running', '–', ms(percentile(during.latenciesMs, 50)), ms(percentile(during.latenciesMs, 99)), probesCell(during)],
      ],
      'label',
    ),
  );
  log(
    background
      ? 'note: the build ran in the background: the engine was in its group, folding live, while the build was in progress.'
      : 'note: the build ran before the engine joined its group, so live folding waited for it: the "build running" latency is the wait for the build to finish, not the cost of a background build.',
  );
}
