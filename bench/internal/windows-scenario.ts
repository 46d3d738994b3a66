/**
 * `npm run bench -- --scenario windows`: what windows cost. The same generated bookings are
 * folded, in one run, by the engine into five views of the same reducer, one pass each (own
 * consumer group and table, so each is measured alone): unwindowed, a 1-hour tumbling window,
 * and 1-hour hopping windows advancing every 30, 15 and 7.5 minutes (2, 4 and 8 windows per
 * event). Per pass: events/s and DynamoDB item writes per event (keys repeat within a batch, so
 * writes coalesce per item and batch; a hopping event is one write per covering window).
 */
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { Kafka, logLevel } from 'kafkajs';
import { startEngine } from '../../engine/index.ts';
import { toMessage, type BookingEvent } from '../../functions/events.ts';
import { createBookingGenerator } from '../../functions/generator.ts';
import { ensureViewsTable, startLocalStack } from '../../local/index.ts';
import { defineApp, defineView, hopping, tumbling, type WindowSpec } from '../../sdk/index.ts';
import { classCountsView } from './class-counts.ts';
import { num, renderGrid } from './metrics.ts';
import type { BenchOptions } from './options.ts';

const HOUR_MS = 3_600_000;
const credentials = { accessKeyId: 'local', secretAccessKey: 'local' };

/** One pass: a view shape and the windows each event lands in. */
interface Pass {
  readonly label: string;
  readonly window: WindowSpec | undefined;
  readonly windowsPerEvent: number;
}

const PASSES: readonly Pass[] = [
  { label: 'unwindowed', window: undefined, windowsPerEvent: 1 },
  { label: 'tumbling 1 h', window: tumbling({ sizeMs: HOUR_MS }), windowsPerEvent: 1 },
  { label: 'hopping 1 h / 30 min', window: hopping({ sizeMs: HOUR_MS, advanceMs: HOUR_MS / 2 }), windowsPerEvent: 2 },
  { label: 'hopping 1 h / 15 min', window: hopping({ sizeMs: HOUR_MS, advanceMs: HOUR_MS / 4 }), windowsPerEvent: 4 },
  { label: 'hopping 1 h / 7.5 min', window: hopping({ sizeMs: HOUR_MS, advanceMs: HOUR_MS / 8 }), windowsPerEvent: 8 },
];

/** The view of one pass: the bench reducer, windowed by the booking's own time when asked. */
function passView(topic: string, pass: Pass) {
  const base = classCountsView(topic);
  if (pass.window === undefined) return base;
  return defineView({
    name: 'classCounts',
    source: topic,
    decode: base.decode,
    key: base.key,
    initial: base.initial,
    reduce: base.reduce,
    window: pass.window,
    timestamp: (e: BookingEvent) => Date.parse(e.at),
    // The generator's events are in time order: nothing is late; grace only delays closing.
    graceMs: HOUR_MS,
  });
}

/**
 * Runs the windows scenario on its own local stack and prints one row per pass.
 *
 * @example
 * await runWindowsScenario(parseBenchOptions(['--scenario', 'windows'], {}), console.log);
 */
export async function runWindowsScenario(options: BenchOptions, log: (line: string) => void): Promise<void> {
  const runId = Date.now().toString(36);
  const stack = await startLocalStack({ log: options.verbose ? (line) => log(`stack: ${line}`) : () => {} });
  const ddb = new DynamoDBClient({ region: stack.region, endpoint: stack.dynamodb.endpoint, credentials });
  const kafka = new Kafka({ clientId: 'bench-windows', brokers: [...stack.kafka.brokers], logLevel: logLevel.NOTHING });
  const topic = `bench-windows-${runId}`;
  const rows: string[][] = [];
  try {
    const admin = kafka.admin();
    await admin.connect();
    await admin.createTopics({ topics: [{ topic, numPartitions: options.partitions }, { topic: `${topic}.dead-letter`, numPartitions: 1 }], waitForLeaders: true });
    await admin.disconnect();
    // One event per second of event time: with 200 classes a key repeats ~18 times per hour window.
    const generator = createBookingGenerator({ seed: options.seed, classes: options.classes, pick: 'uniform' });
    const producer = kafka.producer({ allowAutoTopicCreation: false });
    await producer.connect();
    for (let produced = 0; produced < options.events; produced += 1_000) {
      const events = generator.take(Math.min(1_000, options.events - produced));
      await producer.send({ topic, acks: -1, messages: events.map(toMessage) });
    }
    await producer.disconnect();
    log(`produced ${num()(options.events)} events over ${options.classes} classes`);

    for (const pass of PASSES) {
      const tableName = `bench-windows-${runId}-${rows.length}`;
      await ensureViewsTable(ddb, tableName);
      const name = `bench-windows-${runId}-${rows.length}`;
      const engine = startEngine({
        app: defineApp({ name, views: [passView(topic, pass)], deadLetterTopic: `${topic}.dead-letter` }),
        tableName,
        groupId: name,
        kafka: { brokers: [...stack.kafka.brokers] },
        dynamodb: ddb,
        healthPort: null,
        logLevel: options.verbose ? 'info' : 'warn',
        logSink: (line) => process.stderr.write(`[engine] ${line}\n`),
      });
      await engine.ready;
      const started = performance.now();
      const expected = options.events * pass.windowsPerEvent;
      const deadline = Date.now() + options.phaseTimeoutMs;
      while (engine.stats().eventsApplied < expected) {
        if (Date.now() > deadline) throw new Error(`${pass.label}: ${engine.stats().eventsApplied} of ${expected} applications after ${options.phaseTimeoutMs} ms`);
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
      const seconds = (performance.now() - started) / 1000;
      const stats = engine.stats();
      await engine.stop();
      rows.push([
        pass.label,
        String(pass.windowsPerEvent),
        num()(Math.round(options.events / seconds)),
        (stats.writes / options.events).toFixed(3),
        num()(stats.writes),
      ]);
      log(`${pass.label}: ${rows[rows.length - 1]!.slice(2).join(' · ')}`);
    }
  } finally {
    ddb.destroy();
    await stack.stop();
  }
  log('');
  log(renderGrid(['view', 'windows/event', 'events/s', 'writes/event', 'item writes'], rows, 'label'));
}
