/**
 * A source topic written by transactional producers (Kafka Streams, Flink, Debezium and any
 * exactly-once pipeline upstream write this way): the log holds commit and abort markers
 * between the records, and aborted records that a read-committed consumer never sees. The
 * views must fold exactly the committed events, and the engine's checkpoints and the group's
 * committed offsets must reach the end of the log, markers included, or lag never reads 0.
 * Only Apache Kafka writes transactions; the embedded broker does not serve them.
 */
import { describe, expect, it } from 'vitest';
import { startEngine } from '../../engine/index.ts';
import { createTable, createTopic, dynamoClient, stack, uniqueName, waitFor } from './helpers.ts';
import {
  fixtureEvents,
  highWatermarks,
  readView,
  ReferenceFold,
  seededRandom,
  testKafka,
  testStorage,
  waitForCheckpoints,
} from './fixtures/engine-support.ts';
import { fixtureApp, type FixtureEvent } from './fixtures/engine-reference-app.ts';

const PARTITIONS = 2;
const TRANSACTIONS = 12;
const EVENTS_PER_TRANSACTION = 50;

const onApache = stack().kafkaKind === 'apache';
if (!onApache) console.log(`[engine-transactions] skipped: the suite runs on the ${stack().kafkaKind} broker, which has no transactions`);

describe.skipIf(!onApache)('engine on a transactionally written source topic', () => {
  it('folds exactly the committed events, skips aborted ones and markers, and checkpoints and commits to the end of the log', async () => {
    const topic = uniqueName('engine-txn');
    const table = uniqueName('engine-txn');
    const app = fixtureApp(topic, uniqueName('txn'));
    await Promise.all([createTable(table), createTopic(stack().kafkaBrokers, topic, PARTITIONS)]);
    const kafka = testKafka('engine-txn-test');
    const producer = kafka.producer({ transactionalId: uniqueName('txn-producer'), idempotent: true, maxInFlightRequests: 1 });
    await producer.connect();
    const reference = new ReferenceFold();
    const random = seededRandom(20261201);
    const send = async (events: readonly FixtureEvent[], commit: boolean): Promise<void> => {
      const transaction = await producer.transaction();
      await transaction.send({ topic, acks: -1, messages: events.map((e) => ({ key: e.k, value: JSON.stringify(e) })) });
      if (commit) await transaction.commit();
      else await transaction.abort();
    };
    for (let t = 0; t < TRANSACTIONS; t++) {
      const events = fixtureEvents(EVENTS_PER_TRANSACTION, 40, random, t * EVENTS_PER_TRANSACTION);
      // Every third transaction aborts; the last one commits, so the log ends on a commit marker.
      const commit = t % 3 !== 1;
      await send(events, commit);
      if (commit) reference.add(events);
    }
    await producer.disconnect();

    const engine = startEngine({
      app,
      tableName: table,
      kafka: { clientId: 'engine-txn', brokers: stack().kafkaBrokers },
      dynamodb: dynamoClient(),
      logLevel: 'error',
      logSink: () => {},
      sessionTimeoutMs: 6_000,
      heartbeatIntervalMs: 1_000,
    });
    try {
      await engine.ready;
      const storage = testStorage(table);
      const watermarks = await highWatermarks(kafka, topic);
      await waitForCheckpoints(storage, topic, watermarks, 60_000);
      expect(Object.fromEntries(await readView(storage, 'totals'))).toEqual(Object.fromEntries(reference.totals));
      expect(Object.fromEntries(await readView(storage, 'buckets'))).toEqual(Object.fromEntries(reference.buckets));

      const admin = kafka.admin();
      await admin.connect();
      try {
        await waitFor(
          async () => {
            const [committed] = await admin.fetchOffsets({ groupId: app.name, topics: [topic] });
            return committed!.partitions.every((p) => p.offset === watermarks.get(p.partition));
          },
          { timeoutMs: 30_000, message: `group offsets of "${topic}" at the high watermarks ${JSON.stringify([...watermarks])}` },
        );
      } finally {
        await admin.disconnect();
      }

      // Caught up, then a transaction that aborts: the next fetches hold only aborted records and
      // a marker, which kafkajs never hands to eachBatch. The engine still moves past them.
      await producer.connect();
      await send(fixtureEvents(EVENTS_PER_TRANSACTION, 40, random, 1_000_000), false);
      await producer.disconnect();
      const afterAbort = await highWatermarks(kafka, topic);
      expect([...afterAbort.values()]).not.toEqual([...watermarks.values()]);
      await waitForCheckpoints(storage, topic, afterAbort, 30_000);
      expect(Object.fromEntries(await readView(storage, 'totals'))).toEqual(Object.fromEntries(reference.totals));
    } finally {
      await engine.stop();
    }
  });
});
