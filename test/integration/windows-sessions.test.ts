/**
 * Session windows on the real stack: events of keys produced in random order and in small
 * batches (so sessions form, extend and merge across batches, written with TransactWriteItems
 * against DynamoDB Local) end as exactly the sessions computed here from the sorted event times,
 * with no absorbed session left behind. The view is keyed unlike the Kafka key, so every
 * partition writes each key's sessions.
 */
import { ScanCommand } from '@aws-sdk/lib-dynamodb';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startEngine, type Engine } from '../../engine/index.ts';
import { defineApp, defineView, session } from '../../sdk/index.ts';
import { createTable, createTopic, dynamoClient, stack, uniqueName } from './helpers.ts';
import { connectProducer, highWatermarks, seededRandom, testKafka, testStorage, waitForCheckpoints } from './fixtures/engine-support.ts';

const PARTITIONS = 3;
const GAP_MS = 1_000;
const EVENTS = 2_000;
const MEMBERS = ['ann', 'bob', 'cy', 'dee', 'eve'];

interface Visit {
  readonly member: string;
  readonly at: number;
  readonly seq: number;
}
interface Visits {
  readonly count: number;
  readonly seqs: number;
}

describe('session windows on the real stack', () => {
  const topic = uniqueName('windows-sessions');
  const table = uniqueName('windows-sessions');
  const visits = defineView({
    name: 'visits',
    source: topic,
    key: (e: Visit) => e.member,
    timestamp: (e: Visit) => e.at,
    window: session({ gapMs: GAP_MS }),
    // Large enough that no event is late: the result does not depend on arrival order.
    graceMs: 10_000_000,
    initial: (): Visits => ({ count: 0, seqs: 0 }),
    reduce: (s, e) => ({ count: s.count + 1, seqs: s.seqs + e.seq }),
    merge: (a, b) => ({ count: a.count + b.count, seqs: a.seqs + b.seqs }),
  });
  const app = defineApp({ name: uniqueName('sessions'), views: [visits] });
  let engine: Engine | undefined;

  beforeAll(async () => {
    await Promise.all([createTable(table), createTopic(stack().kafkaBrokers, topic, PARTITIONS)]);
  });
  afterAll(async () => {
    await engine?.stop();
  });

  it('ends as the sessions of the sorted event times, merged across batches and partitions', async () => {
    const random = seededRandom(9090);
    const events: Visit[] = Array.from({ length: EVENTS }, (_, seq) => ({
      member: MEMBERS[Math.floor(random() * MEMBERS.length)]!,
      at: 1_767_225_600_000 + Math.floor(random() * 200_000),
      seq,
    }));
    engine = startEngine({
      app,
      tableName: table,
      kafka: { clientId: 'windows-sessions', brokers: stack().kafkaBrokers },
      dynamodb: dynamoClient(),
      healthPort: null,
      logLevel: 'warn',
      logSink: () => {},
      // Small fetches: many batches, so sessions grow and merge across them.
      maxBytesPerPartition: 8 * 1024,
      sessionTimeoutMs: 6_000,
      heartbeatIntervalMs: 1_000,
    });
    await engine.ready;
    const kafka = testKafka('windows-sessions-test');
    const producer = await connectProducer(kafka);
    try {
      for (let i = 0; i < events.length; i += 200) {
        await producer.send({
          topic,
          acks: -1,
          // Round-robin over partitions: each member's sessions are written from every partition.
          messages: events.slice(i, i + 200).map((e) => ({ partition: e.seq % PARTITIONS, value: JSON.stringify(e) })),
        });
      }
    } finally {
      await producer.disconnect();
    }
    const storage = testStorage(table);
    await waitForCheckpoints(storage, topic, await highWatermarks(kafka, topic), 120_000);

    const stored = new Map<string, { start: number; end: number; state: Visits }[]>();
    let start: Record<string, unknown> | undefined;
    do {
      const page = await storage.documentClient.send(
        new ScanCommand({ TableName: table, FilterExpression: '#view = :view', ExpressionAttributeNames: { '#view': 'view' }, ExpressionAttributeValues: { ':view': 'visits' }, ExclusiveStartKey: start, ConsistentRead: true }),
      );
      for (const item of page.Items ?? []) {
        const list = stored.get(item.key as string) ?? [];
        list.push({ start: item.windowStart as number, end: item.windowEnd as number, state: item.state as Visits });
        stored.set(item.key as string, list);
      }
      start = page.LastEvaluatedKey;
    } while (start !== undefined);

    let sessions = 0;
    for (const member of MEMBERS) {
      const mine = events.filter((e) => e.member === member).sort((a, b) => a.at - b.at);
      const expected: { start: number; end: number; state: { count: number; seqs: number } }[] = [];
      for (const e of mine) {
        const last = expected[expected.length - 1];
        if (last !== undefined && e.at < last.end) {
          last.end = e.at + GAP_MS;
          last.state.count += 1;
          last.state.seqs += e.seq;
        } else expected.push({ start: e.at, end: e.at + GAP_MS, state: { count: 1, seqs: e.seq } });
      }
      sessions += expected.length;
      expect((stored.get(member) ?? []).sort((a, b) => a.start - b.start), member).toEqual(expected);
    }
    expect(sessions).toBeGreaterThan(20);
    expect(sessions, 'sessions merged many events').toBeLessThan(EVENTS / 4);
    console.info(`[windows-sessions] ${EVENTS} events, ${sessions} sessions, ${engine.stats().writes} writes`);
  }, 150_000);
});
