/**
 * `npm run bench -- --scenario joins`: what re-keying and an enrichment lookup cost. The same
 * generated bookings are folded, in one run, by three engine passes (own consumer group and
 * table each, so each is measured alone): the bench view keyed by class (the Kafka key), the
 * same reducer keyed by member (items gather several partitions), and the class view with a
 * lookup (cold and warm) of a `members` table (one row per member, folded by the same pass from its own topic
 * before the bookings are produced). Per pass: events/s, DynamoDB item reads per event (state
 * misses plus lookup rows: a cold lookup, `maxAgeMs: 0`, reads each batch's distinct rows once;
 * a warm one, the default, serves rows read or written in the last second from the row cache)
 * and item writes per event. The re-keyed view is also run with `repartition: true`, which
 * produces each record once more to its repartition topic and folds it from there.
 */
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { Kafka, logLevel } from 'kafkajs';
import { startEngine } from '../../engine/index.ts';
import { toMessage, type BookingEvent } from '../../functions/events.ts';
import { createBookingGenerator } from '../../functions/generator.ts';
import { ensureViewsTable, startLocalStack } from '../../local/index.ts';
import { defineApp, defineTable, defineView, type View } from '../../sdk/index.ts';
import { classCountsView } from './class-counts.ts';
import { num, renderGrid } from './metrics.ts';
import type { BenchOptions } from './options.ts';

const credentials = { accessKeyId: 'local', secretAccessKey: 'local' };
/** Members of the generator's default stream (its `members` option). */
const MEMBERS = 2_000;

type Pass = 'plain' | 're-keyed by member' | 're-keyed, repartitioned' | 'lookup, cache cold' | 'lookup, cache warm';
const PASSES: readonly Pass[] = ['plain', 're-keyed by member', 're-keyed, repartitioned', 'lookup, cache cold', 'lookup, cache warm'];

function passViews(pass: Pass, topic: string, membersTopic: string): View<any, any>[] {
  const base = classCountsView(topic);
  if (pass === 'plain') return [base];
  if (pass === 're-keyed by member' || pass === 're-keyed, repartitioned') {
    return [
      defineView({
        name: 'classCounts',
        source: topic,
        decode: base.decode,
        key: (e: BookingEvent) => e.memberId,
        initial: base.initial,
        reduce: base.reduce,
        ...(pass === 're-keyed, repartitioned' ? { repartition: true } : {}),
      }),
    ];
  }
  const members = defineTable<{ tier: string }>({ name: 'members', source: membersTopic });
  return [
    members,
    defineView({
      name: 'classCounts',
      source: topic,
      decode: base.decode,
      key: base.key,
      // Cold: every batch reads its rows (maxAgeMs 0). Warm: the default, rows cached for a second.
      lookup: { member: { table: members, key: (e: BookingEvent) => e.memberId, ...(pass === 'lookup, cache cold' ? { maxAgeMs: 0 } : {}) } },
      initial: base.initial,
      // The same fold as the plain pass: the row is read and handed over, the cost is the lookup.
      reduce: (s, e, record) => base.reduce(s, e, record),
    }),
  ];
}

/**
 * Runs the joins scenario on its own local stack and prints one row per pass.
 *
 * @example
 * await runJoinsScenario(parseBenchOptions(['--scenario', 'joins'], {}), console.log);
 */
export async function runJoinsScenario(options: BenchOptions, log: (line: string) => void): Promise<void> {
  const runId = Date.now().toString(36);
  const stack = await startLocalStack({ log: options.verbose ? (line) => log(`stack: ${line}`) : () => {} });
  const ddb = new DynamoDBClient({ region: stack.region, endpoint: stack.dynamodb.endpoint, credentials });
  const kafka = new Kafka({ clientId: 'bench-joins', brokers: [...stack.kafka.brokers], logLevel: logLevel.NOTHING });
  const topic = `bench-joins-${runId}`;
  const membersTopic = `bench-joins-members-${runId}`;
  const rows: string[][] = [];
  try {
    const admin = kafka.admin();
    await admin.connect();
    await admin.createTopics({
      topics: [
        { topic, numPartitions: options.partitions },
        { topic: membersTopic, numPartitions: 1 },
        { topic: `${topic}.dead-letter`, numPartitions: 1 },
      ],
      waitForLeaders: true,
    });
    await admin.disconnect();
    const producer = kafka.producer({ allowAutoTopicCreation: false });
    await producer.connect();
    const generator = createBookingGenerator({ seed: options.seed, classes: options.classes, members: MEMBERS, pick: 'uniform' });
    for (let produced = 0; produced < options.events; produced += 1_000) {
      const events = generator.take(Math.min(1_000, options.events - produced));
      await producer.send({ topic, acks: -1, messages: events.map(toMessage) });
    }
    const width = String(MEMBERS - 1).length;
    await producer.send({
      topic: membersTopic,
      acks: -1,
      messages: Array.from({ length: MEMBERS }, (_, i) => ({ key: `member-${String(i).padStart(width, '0')}`, value: JSON.stringify({ tier: ['gold', 'silver', 'basic'][i % 3] }) })),
    });
    await producer.disconnect();
    log(`produced ${num()(options.events)} events over ${options.classes} classes and ${num()(MEMBERS)} member rows`);

    for (const pass of PASSES) {
      const tableName = `bench-joins-${runId}-${rows.length}`;
      await ensureViewsTable(ddb, tableName);
      const name = `bench-joins-${runId}-${rows.length}`;
      const views = passViews(pass, topic, membersTopic);
      const engine = startEngine({
        app: defineApp({ name, views, deadLetterTopic: `${topic}.dead-letter` }),
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
      // The lookup pass also folds the member rows (read in parallel with the bookings).
      const expected = options.events + (pass.startsWith('lookup') ? MEMBERS : 0);
      const deadline = Date.now() + options.phaseTimeoutMs;
      while (engine.stats().eventsApplied < expected) {
        if (Date.now() > deadline) throw new Error(`${pass}: ${engine.stats().eventsApplied} of ${expected} applied after ${options.phaseTimeoutMs} ms`);
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
      const seconds = (performance.now() - started) / 1000;
      const stats = engine.stats();
      await engine.stop();
      rows.push([
        pass,
        num()(Math.round(options.events / seconds)),
        (stats.reads / options.events).toFixed(3),
        (stats.writes / options.events).toFixed(3),
      ]);
      log(`${pass}: ${rows[rows.length - 1]!.slice(1).join(' · ')}`);
    }
  } finally {
    ddb.destroy();
    await stack.stop();
  }
  log('');
  log(renderGrid(['view', 'events/s', 'item reads/event', 'item writes/event'], rows, 'label'));
}
