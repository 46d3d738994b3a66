/**
 * Invariants 1 and 3 (docs/architecture.md) under rebalances: a second engine task joins the group
 * mid-stream and the first leaves mid-stream (graceful stop); both did work, and the final state
 * is exact.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { startEngine, type Engine } from '../../engine/index.ts';
import { createTable, createTopic, dynamoClient, stack, uniqueName, waitFor } from './helpers.ts';
import {
  connectProducer,
  fixtureEvents,
  highWatermarks,
  produceEvents,
  readView,
  ReferenceFold,
  seededRandom,
  testKafka,
  testStorage,
  waitForCheckpoints,
} from './fixtures/engine-support.ts';
import { fixtureApp } from './fixtures/engine-reference-app.ts';

const KEYS = 400;
const STEP = 6_000;

describe('engine scaling', () => {
  const engines: Engine[] = [];
  afterAll(async () => {
    await Promise.all(engines.map((e) => e.stop()));
  });

  it('keeps state exact while a task joins and another leaves mid-stream', async () => {
    const topic = uniqueName('engine-scale');
    const table = uniqueName('engine-scale');
    const app = fixtureApp(topic, uniqueName('scale'));
    await Promise.all([createTable(table), createTopic(stack().kafkaBrokers, topic, 3)]);
    const kafka = testKafka('engine-scale-test');
    const producer = await connectProducer(kafka);
    const random = seededRandom(3303);
    const reference = new ReferenceFold();
    let seq = 0;
    const produce = async (count: number) => {
      const events = fixtureEvents(count, KEYS, random, seq);
      seq += count;
      reference.add(events);
      // Small chunks: the stream keeps flowing while the group rebalances.
      await produceEvents(producer, topic, events, 500);
    };
    const start = (clientId: string) => {
      const engine = startEngine({
        app,
        tableName: table,
        kafka: { clientId, brokers: stack().kafkaBrokers },
        dynamodb: dynamoClient(),
        logLevel: 'error',
        logSink: () => {},
        sessionTimeoutMs: 6_000,
        heartbeatIntervalMs: 500,
        maxBytesPerPartition: 64 * 1024,
      });
      engines.push(engine);
      return engine;
    };
    try {
      const first = start('engine-a');
      await first.ready;
      await produce(STEP);
      await waitFor(() => first.stats().eventsApplied > 0, { timeoutMs: 30_000, message: 'first task applied events' });

      const second = start('engine-b');
      const producing = produce(STEP);
      await second.ready;
      await producing;
      // The first task may drain the step before the rebalance hands the second its partitions;
      // keep the stream flowing until the second has consumed from them.
      await waitFor(
        async () => {
          if (second.stats().recordsConsumed > 0) return true;
          await produce(300);
          return false;
        },
        { timeoutMs: 60_000, intervalMs: 200, message: 'second task got partitions and consumed from them' },
      );

      const leaving = produce(STEP);
      await first.stop();
      expect(first.state()).toBe('stopped');
      await leaving;
      await produce(STEP / 2);

      const storage = testStorage(table);
      await waitForCheckpoints(storage, topic, await highWatermarks(kafka, topic), 90_000);
      const totals = await readView(storage, 'totals');
      expect(totals.size).toBe(reference.totals.size);
      for (const [key, expected] of reference.totals) expect(totals.get(key), `totals ${key}`).toEqual(expected);
      expect(Object.fromEntries(await readView(storage, 'buckets'))).toEqual(Object.fromEntries(reference.buckets));
      expect(first.stats().recordsConsumed).toBeGreaterThan(0);
      expect(second.stats().recordsConsumed).toBeGreaterThan(0);
    } finally {
      await producer.disconnect();
    }
  }, 150_000);
});
