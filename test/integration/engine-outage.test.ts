/**
 * A DynamoDB outage of 15 s, cut with a TCP proxy between the engine and DynamoDB Local while
 * events keep arriving: the task stays up, /health says degraded (200, with the reason) during
 * the outage and running after, and the views end exactly at the reference fold.
 */
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import type { Producer } from 'kafkajs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startEngine, type Engine } from '../../engine/index.ts';
import { createTable, createTopic, LOCAL_CREDENTIALS, stack, uniqueName, waitFor } from './helpers.ts';
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
import { startTcpProxy, type TcpProxy } from './fixtures/tcp-proxy.ts';

const KEYS = 200;
const PARTITIONS = 2;
/** Longer than the old retry schedule (six attempts, about 5 s), far inside the outage budget. */
const OUTAGE_MS = 15_000;

describe('engine during a DynamoDB outage', () => {
  const topic = uniqueName('engine-outage');
  const table = uniqueName('engine-outage');
  const app = fixtureApp(topic, uniqueName('outage'));
  const kafka = testKafka('engine-outage-test');
  const reference = new ReferenceFold();
  const random = seededRandom(20261201);
  let proxy: TcpProxy | undefined;
  let producer: Producer | undefined;
  let engine: Engine | undefined;
  let seq = 0;

  const produce = async (count: number) => {
    const events = fixtureEvents(count, KEYS, random, seq);
    seq += count;
    reference.add(events);
    await produceEvents(producer!, topic, events);
  };

  beforeAll(async () => {
    await Promise.all([createTable(table), createTopic(stack().kafkaBrokers, topic, PARTITIONS)]);
    const target = new URL(stack().dynamodbEndpoint);
    proxy = await startTcpProxy({ host: target.hostname, port: Number(target.port) });
    producer = await connectProducer(kafka);
  });

  afterAll(async () => {
    await engine?.stop();
    await producer?.disconnect();
    await proxy?.close();
  });

  it('rides out 15 s without DynamoDB, reports degraded meanwhile, and folds exactly like the reference', async () => {
    const health = async () => {
      const response = await fetch(`http://127.0.0.1:${engine!.healthPort}/health`);
      return { status: response.status, body: (await response.json()) as { state: string; reason?: string; code?: string } };
    };
    engine = startEngine({
      app,
      tableName: table,
      kafka: { clientId: 'engine-outage', brokers: stack().kafkaBrokers },
      dynamodb: new DynamoDBClient({
        endpoint: `http://127.0.0.1:${proxy!.port}`,
        region: stack().region,
        credentials: LOCAL_CREDENTIALS,
      }),
      healthPort: 0,
      healthHost: '127.0.0.1',
      logLevel: 'error',
      logSink: () => {},
      sessionTimeoutMs: 10_000,
      heartbeatIntervalMs: 1_000,
    });
    await engine.ready;
    const storage = testStorage(table);
    await produce(2_000);
    await waitForCheckpoints(storage, topic, await highWatermarks(kafka, topic), 30_000);
    expect((await health()).body.state).toBe('running');

    await proxy!.stop();
    const outageEnds = Date.now() + OUTAGE_MS;
    const samples: Awaited<ReturnType<typeof health>>[] = [];
    // Events keep arriving during the outage; the engine must keep trying, not give up.
    await waitFor(
      async () => {
        await produce(100);
        samples.push(await health());
        return Date.now() >= outageEnds;
      },
      { timeoutMs: OUTAGE_MS + 10_000, intervalMs: 500, message: 'the outage to last its 15 s' },
    );
    expect(samples.length).toBeGreaterThan(5);
    for (const { status, body } of samples) {
      expect(status).toBe(200);
      expect(['running', 'degraded']).toContain(body.state);
      if (body.state === 'degraded') {
        expect(body.code).toBe('STORAGE_FAILED');
        expect(body.reason).toMatch(/failing for \d+ ms, retrying/);
      }
    }
    // Degraded from the first failed write to the end of the outage.
    expect(samples[samples.length - 1]!.body.state).toBe('degraded');
    expect(engine.state()).toBe('degraded');
    await proxy!.start();

    await produce(500);
    await waitForCheckpoints(storage, topic, await highWatermarks(kafka, topic), 60_000);
    await waitFor(async () => (await health()).body.state === 'running', { timeoutMs: 15_000, message: '/health back to running' });
    expect(engine.state()).toBe('running');

    const totals = await readView(storage, 'totals');
    expect(totals.size).toBe(reference.totals.size);
    for (const [key, expected] of reference.totals) expect(totals.get(key), `totals ${key}`).toEqual(expected);
    expect(Object.fromEntries(await readView(storage, 'buckets'))).toEqual(Object.fromEntries(reference.buckets));
  });

  it('stops with STORAGE_OUTAGE_BUDGET_EXCEEDED once an outage outlasts storageOutageBudgetMs', async () => {
    const budgetTopic = await createTopic(stack().kafkaBrokers, uniqueName('engine-budget'), 1);
    const budgetTable = await createTable(uniqueName('engine-budget'));
    const target = new URL(stack().dynamodbEndpoint);
    const cut = await startTcpProxy({ host: target.hostname, port: Number(target.port) });
    const budgetEngine = startEngine({
      app: fixtureApp(budgetTopic, uniqueName('budget')),
      tableName: budgetTable,
      kafka: { clientId: 'engine-budget', brokers: stack().kafkaBrokers },
      dynamodb: new DynamoDBClient({ endpoint: `http://127.0.0.1:${cut.port}`, region: stack().region, credentials: LOCAL_CREDENTIALS }),
      storageOutageBudgetMs: 3_000,
      healthPort: 0,
      healthHost: '127.0.0.1',
      logLevel: 'error',
      logSink: () => {},
      sessionTimeoutMs: 10_000,
      heartbeatIntervalMs: 1_000,
    });
    try {
      await budgetEngine.ready;
      await cut.stop();
      await produceEvents(producer!, budgetTopic, fixtureEvents(50, 10, random));
      const started = Date.now();
      const error = await budgetEngine.done.then(
        () => undefined,
        (e: unknown) => e as { code?: string; message: string },
      );
      expect(error?.code).toBe('STORAGE_OUTAGE_BUDGET_EXCEEDED');
      expect(error?.message).toContain('TRIBUTARY_STORAGE_OUTAGE_BUDGET_MS');
      // The budget, plus at most one capped backoff and the SDK's own attempts.
      expect(Date.now() - started).toBeLessThan(20_000);
      expect(budgetEngine.state()).toBe('failed');
    } finally {
      await budgetEngine.stop();
      await cut.close();
    }
  });
});
