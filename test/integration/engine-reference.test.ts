/**
 * Invariants 1 and 3 (docs/architecture.md) on the real embedded stack: 100k random events over 3
 * partitions and 1k keys fold to exactly the reference (including a view keyed unlike the Kafka
 * message), and a restarted engine resumes from committed offsets without re-reading history.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startEngine, type Engine } from '../../engine/index.ts';
import { createTable, createTopic, dynamoClient, stack, uniqueName } from './helpers.ts';
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

const EVENTS = 100_000;
const KEYS = 1_000;
const PARTITIONS = 3;

describe('engine reference check', () => {
  const topic = uniqueName('engine-ref');
  const table = uniqueName('engine-ref');
  const app = fixtureApp(topic, uniqueName('ref'));
  const kafka = testKafka('engine-ref-test');
  const reference = new ReferenceFold();
  const random = seededRandom(20261123);
  const engines: Engine[] = [];
  const logs: string[] = [];

  const start = () => {
    const engine = startEngine({
      app,
      tableName: table,
      kafka: { clientId: 'engine-ref', brokers: stack().kafkaBrokers },
      dynamodb: dynamoClient(),
      healthPort: 0,
      healthHost: '127.0.0.1',
      logLevel: 'warn',
      logSink: (line) => logs.push(line),
      // Big fetches: the whole backlog folds in few batches, so few writes.
      maxBytesPerPartition: 8 * 1024 * 1024,
      sessionTimeoutMs: 6_000,
      heartbeatIntervalMs: 1_000,
    });
    engines.push(engine);
    return engine;
  };

  beforeAll(async () => {
    await Promise.all([createTable(table), createTopic(stack().kafkaBrokers, topic, PARTITIONS)]);
  });

  afterAll(async () => {
    await Promise.all(engines.map((e) => e.stop()));
  });

  it('folds 100k events across 3 partitions and 1k keys exactly like the reference', async () => {
    const producer = await connectProducer(kafka);
    try {
      const events = fixtureEvents(EVENTS, KEYS, random);
      reference.add(events);
      await produceEvents(producer, topic, events);
    } finally {
      await producer.disconnect();
    }
    const engine = start();
    await engine.ready;
    const health = await fetch(`http://127.0.0.1:${engine.healthPort}/health`);
    expect(health.status).toBe(200);
    const storage = testStorage(table);
    await waitForCheckpoints(storage, topic, await highWatermarks(kafka, topic), 150_000);

    const totals = await readView(storage, 'totals');
    expect(totals.size).toBe(reference.totals.size);
    for (const [key, expected] of reference.totals) expect(totals.get(key), `totals ${key}`).toEqual(expected);
    const buckets = await readView(storage, 'buckets');
    expect(Object.fromEntries(buckets)).toEqual(Object.fromEntries(reference.buckets));

    const stats = engine.stats();
    expect(stats.recordsConsumed).toBe(EVENTS);
    expect(stats.eventsApplied).toBe(2 * EVENTS);
    expect(stats.deadLetters).toBe(0);
    // Batching: far fewer writes than events (the naive pattern pays one per event and view).
    expect(stats.writes).toBeLessThan(EVENTS / 5);
    await engine.stop();
    expect(engine.state()).toBe('stopped');
    const down = await fetch(`http://127.0.0.1:${engine.healthPort ?? 1}/health`).catch(() => undefined);
    expect(down?.status ?? 503).not.toBe(200);
  });

  it('restarts without replaying history: a new engine reads only the new events', async () => {
    const producer = await connectProducer(kafka);
    const fresh = fixtureEvents(300, KEYS, random, EVENTS);
    try {
      reference.add(fresh);
      await produceEvents(producer, topic, fresh);
    } finally {
      await producer.disconnect();
    }
    const engine = start();
    await engine.ready;
    const storage = testStorage(table);
    await waitForCheckpoints(storage, topic, await highWatermarks(kafka, topic), 30_000);
    const stats = engine.stats();
    // Only the 300 new records were fetched: nothing of the 100k history was re-read or re-applied.
    expect(stats.recordsConsumed).toBe(fresh.length);
    expect(stats.eventsSkipped).toBe(0);
    expect(stats.eventsApplied).toBe(2 * fresh.length);
    const totals = await readView(storage, 'totals');
    for (const [key, expected] of reference.totals) expect(totals.get(key), `totals ${key}`).toEqual(expected);
    expect(Object.fromEntries(await readView(storage, 'buckets'))).toEqual(Object.fromEntries(reference.buckets));
    await engine.stop();
  });
});
