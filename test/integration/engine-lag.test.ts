/**
 * Consumer lag is measured from the brokers, not from finished batches: an engine that starts
 * behind a backlog reports it on /health and in the ConsumerLag metric before its first batch
 * ends, and reports 0 once it caught up.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { defineApp, defineView } from '../../sdk/index.ts';
import { startEngine, type Engine } from '../../engine/index.ts';
import { createTable, createTopic, dynamoClient, stack, uniqueName, waitFor } from './helpers.ts';
import {
  connectProducer,
  fixtureEvents,
  highWatermarks,
  produceEvents,
  seededRandom,
  testKafka,
  testStorage,
  waitForCheckpoints,
} from './fixtures/engine-support.ts';
import type { FixtureEvent } from './fixtures/engine-reference-app.ts';

const EVENTS = 32_000;
const KEYS = 4_000;
const PARTITIONS = 2;

/** Burns CPU in small slices: each item's fold yields to the event loop, so /health keeps answering. */
function spin(ms: number): void {
  const end = performance.now() + ms;
  while (performance.now() < end);
}

interface Sample {
  readonly batches: number;
  readonly lag: Record<string, number>;
}

describe('engine consumer lag', () => {
  const topic = uniqueName('engine-lag');
  const table = uniqueName('engine-lag');
  const view = defineView({
    name: 'slow',
    source: topic,
    key: (e: FixtureEvent) => e.k,
    initial: () => ({ count: 0 }),
    reduce: (s, _e) => {
      spin(0.1);
      return { count: s.count + 1 };
    },
  });
  const app = defineApp({ name: uniqueName('lag'), views: [view] });
  const kafka = testKafka('engine-lag-test');
  const emf: { consumerLag: number; batches: number }[] = [];
  let engine: Engine | undefined;

  beforeAll(async () => {
    await Promise.all([createTable(table), createTopic(stack().kafkaBrokers, topic, PARTITIONS)]);
    const producer = await connectProducer(kafka);
    try {
      await produceEvents(producer, topic, fixtureEvents(EVENTS, KEYS, seededRandom(9)));
    } finally {
      await producer.disconnect();
    }
  });

  afterAll(async () => {
    await engine?.stop();
  });

  it('reports the backlog before the first batch ends, and 0 once it is worked off', async () => {
    engine = startEngine({
      app,
      tableName: table,
      kafka: { clientId: 'engine-lag', brokers: stack().kafkaBrokers },
      dynamodb: dynamoClient(),
      healthPort: 0,
      healthHost: '127.0.0.1',
      logLevel: 'warn',
      metricsIntervalMs: 200,
      // One write at a time over thousands of keys: each batch takes seconds to drain.
      writeConcurrency: 1,
      logSink: (line) => {
        const parsed = JSON.parse(line) as { ConsumerLag?: number };
        if (typeof parsed.ConsumerLag === 'number') {
          emf.push({ consumerLag: parsed.ConsumerLag, batches: engine?.stats().batches ?? 0 });
        }
      },
      sessionTimeoutMs: 10_000,
      heartbeatIntervalMs: 1_000,
    });
    await engine.ready;
    const health = async (): Promise<Sample> => {
      const batches = engine!.stats().batches;
      const response = await fetch(`http://127.0.0.1:${engine!.healthPort}/health`);
      expect(response.status).toBe(200);
      const body = (await response.json()) as { lag: Record<string, number> };
      return { batches, lag: body.lag };
    };
    const total = (lag: Record<string, number>) => Object.values(lag).reduce((a, b) => a + b, 0);

    const behind = await waitFor(
      async () => {
        const sample = await health();
        return total(sample.lag) > 0 ? sample : undefined;
      },
      { timeoutMs: 10_000, intervalMs: 50, message: '/health to report lag' },
    );
    // Measured from the brokers: no batch had finished yet when the lag was read.
    expect(behind.batches).toBe(0);
    expect(Object.keys(behind.lag).sort()).toEqual(Array.from({ length: PARTITIONS }, (_, p) => `${topic}/${p}`).sort());
    for (const lag of Object.values(behind.lag)) expect(lag).toBeGreaterThan(0);
    expect(total(behind.lag)).toBeLessThanOrEqual(EVENTS);
    await waitFor(() => emf.some((line) => line.consumerLag > 0 && line.batches === 0), {
      timeoutMs: 5_000,
      message: 'an EMF line with ConsumerLag > 0 before the first batch ended',
    });
    for (const line of emf) expect(line.consumerLag).toBeLessThanOrEqual(EVENTS);

    await waitForCheckpoints(testStorage(table), topic, await highWatermarks(kafka, topic), 150_000);
    const caughtUp = await waitFor(
      async () => {
        const sample = await health();
        return Object.keys(sample.lag).length === PARTITIONS && total(sample.lag) === 0 ? sample : undefined;
      },
      { timeoutMs: 10_000, message: '/health lag to drop to 0' },
    );
    expect(Object.values(caughtUp.lag)).toEqual(Array(PARTITIONS).fill(0));
    const emitted = emf.length;
    await waitFor(() => emf.length > emitted && emf[emf.length - 1]!.consumerLag === 0, {
      timeoutMs: 5_000,
      message: 'an EMF line with ConsumerLag 0 after catching up',
    });
  });
});
