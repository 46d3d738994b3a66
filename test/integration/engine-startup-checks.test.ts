/**
 * Start-up checks: a missing or foreign table, a trigger function that does not exist, a source
 * topic that does not exist and unreachable brokers stop the engine before it joins its group,
 * quickly, each with its own code and the setting to fix.
 */
import { createServer } from 'node:net';
import { CreateTableCommand } from '@aws-sdk/client-dynamodb';
import type { LambdaClient } from '@aws-sdk/client-lambda';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startEngine, type Engine, type EngineOptions } from '../../engine/index.ts';
import { startLambdaEndpoint, type LambdaEndpoint } from '../../local/index.ts';
import { defineApp, defineTrigger, defineView, type App } from '../../sdk/index.ts';
import { createTable, createTopic, dynamoClient, lambdaClient, stack, uniqueName } from './helpers.ts';
import { spawnEngine } from './fixtures/engine-support.ts';
import { fixtureApp, type FixtureEvent } from './fixtures/engine-reference-app.ts';

/** Each check must end the task well before an orchestrator's health-check grace period. */
const FAIL_FAST_MS = 15_000;

async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

describe('engine start-up checks', () => {
  const dynamodb = dynamoClient();
  let endpoint: LambdaEndpoint;
  let lambda: LambdaClient;
  const engines: Engine[] = [];

  beforeAll(async () => {
    endpoint = await startLambdaEndpoint();
    lambda = lambdaClient(endpoint.endpoint);
  });

  afterAll(async () => {
    await Promise.all(engines.map((e) => e.stop()));
    lambda?.destroy();
    await endpoint?.stop();
    dynamodb.destroy();
  });

  /** Starts an engine and returns the error `ready` and `done` reject with, and how long it took. */
  async function startFailing(options: Partial<EngineOptions> & { app: App; tableName: string }) {
    const started = Date.now();
    const engine = startEngine({
      kafka: { clientId: 'engine-startup', brokers: stack().kafkaBrokers },
      dynamodb,
      lambda,
      logLevel: 'error',
      logSink: () => {},
      healthPort: 0,
      healthHost: '127.0.0.1',
      ...options,
    });
    engines.push(engine);
    const error = await engine.ready.then(
      () => undefined,
      (e: unknown) => e as { code?: string; message: string },
    );
    const done = await engine.done.then(
      () => undefined,
      (e: unknown) => e as { code?: string },
    );
    expect(engine.state()).toBe('failed');
    return { error, done, elapsedMs: Date.now() - started };
  }

  async function topicAndTable(prefix: string): Promise<{ topic: string; table: string }> {
    const topic = uniqueName(prefix);
    const table = uniqueName(prefix);
    await Promise.all([createTopic(stack().kafkaBrokers, topic, 1), createTable(table, dynamodb)]);
    return { topic, table };
  }

  it('fails with TABLE_NOT_FOUND when the views table does not exist', async () => {
    const topic = await createTopic(stack().kafkaBrokers, uniqueName('startup-notable'), 1);
    const table = uniqueName('startup-missing');
    const { error, done, elapsedMs } = await startFailing({ app: fixtureApp(topic, uniqueName('startup')), tableName: table });
    expect(error?.code).toBe('TABLE_NOT_FOUND');
    expect(done?.code).toBe('TABLE_NOT_FOUND');
    expect(error?.message).toContain('TRIBUTARY_TABLE');
    expect(error?.message).toContain(table);
    expect(elapsedMs).toBeLessThan(FAIL_FAST_MS);
  });

  it('fails with TABLE_SCHEMA_MISMATCH when the table has other keys', async () => {
    const topic = await createTopic(stack().kafkaBrokers, uniqueName('startup-schema'), 1);
    const table = uniqueName('startup-foreign');
    await dynamodb.send(
      new CreateTableCommand({
        TableName: table,
        BillingMode: 'PAY_PER_REQUEST',
        AttributeDefinitions: [{ AttributeName: 'id', AttributeType: 'S' }],
        KeySchema: [{ AttributeName: 'id', KeyType: 'HASH' }],
      }),
    );
    const { error, elapsedMs } = await startFailing({ app: fixtureApp(topic, uniqueName('startup')), tableName: table });
    expect(error?.code).toBe('TABLE_SCHEMA_MISMATCH');
    expect(error?.message).toContain('TRIBUTARY_TABLE');
    expect(error?.message).toContain(table);
    expect(elapsedMs).toBeLessThan(FAIL_FAST_MS);
  });

  it('fails with TABLE_SCHEMA_MISMATCH when the table lacks the indexes (made for the earlier layout)', async () => {
    const topic = await createTopic(stack().kafkaBrokers, uniqueName('startup-index'), 1);
    const table = uniqueName('startup-v1');
    await dynamodb.send(
      new CreateTableCommand({
        TableName: table,
        BillingMode: 'PAY_PER_REQUEST',
        AttributeDefinitions: [
          { AttributeName: 'pk', AttributeType: 'S' },
          { AttributeName: 'sk', AttributeType: 'S' },
        ],
        KeySchema: [
          { AttributeName: 'pk', KeyType: 'HASH' },
          { AttributeName: 'sk', KeyType: 'RANGE' },
        ],
      }),
    );
    const { error, elapsedMs } = await startFailing({ app: fixtureApp(topic, uniqueName('startup')), tableName: table });
    expect(error?.code).toBe('TABLE_SCHEMA_MISMATCH');
    expect(error?.message).toMatch(/index byKey .* is missing/);
    expect(error?.message).toContain('earlier storage layout');
    expect(elapsedMs).toBeLessThan(FAIL_FAST_MS);
  });

  it('fails with FUNCTION_NOT_FOUND when a trigger names a function that does not exist', async () => {
    const { topic, table } = await topicAndTable('startup-fn');
    const present = uniqueName('presentFn');
    endpoint.register(present, async () => ({}));
    const view = defineView({
      name: 'totals',
      source: topic,
      key: (e: FixtureEvent) => e.k,
      initial: () => ({ count: 0 }),
      reduce: (s) => ({ count: s.count + 1 }),
    });
    const app = defineApp({
      name: uniqueName('startup'),
      views: [view],
      triggers: [
        defineTrigger({ view, function: 'present', name: 'fine' }),
        defineTrigger({ view, function: 'absent', name: 'broken' }),
      ],
    });
    const functionNames = { present, absent: uniqueName('noSuchFn') };
    const { error, elapsedMs } = await startFailing({ app, tableName: table, functionNames });
    expect(error?.code).toBe('FUNCTION_NOT_FOUND');
    expect(error?.message).toContain('TRIBUTARY_FUNCTION_NAMES');
    expect(error?.message).toContain(functionNames.absent);
    expect(error?.message).not.toContain(`deployed as "${present}"`);
    expect(elapsedMs).toBeLessThan(FAIL_FAST_MS);
  });

  it('fails with TOPIC_NOT_FOUND when a source topic does not exist', async () => {
    const table = await createTable(uniqueName('startup-topic'), dynamodb);
    const topic = uniqueName('startup-no-topic');
    const { error, elapsedMs } = await startFailing({ app: fixtureApp(topic, uniqueName('startup')), tableName: table });
    expect(error?.code).toBe('TOPIC_NOT_FOUND');
    expect(error?.message).toContain(topic);
    expect(error?.message).toContain('KAFKA_BROKERS');
    expect(elapsedMs).toBeLessThan(FAIL_FAST_MS);
  });

  it('fails with KAFKA_UNREACHABLE when no broker answers', async () => {
    const table = await createTable(uniqueName('startup-kafka'), dynamodb);
    const broker = `127.0.0.1:${await closedPort()}`;
    const { error, elapsedMs } = await startFailing({
      app: fixtureApp(uniqueName('startup-unreachable'), uniqueName('startup')),
      tableName: table,
      kafka: { clientId: 'engine-startup', brokers: [broker] },
    });
    expect(error?.code).toBe('KAFKA_UNREACHABLE');
    expect(error?.message).toContain(`KAFKA_BROKERS="${broker}"`);
    expect(elapsedMs).toBeLessThan(FAIL_FAST_MS);
  });

  it('engine/main.ts exits non-zero and logs the code and the setting to fix', async () => {
    const topic = await createTopic(stack().kafkaBrokers, uniqueName('startup-main'), 1);
    const table = uniqueName('startup-main-missing');
    const engine = spawnEngine({
      TRIBUTARY_TABLE: table,
      TRIBUTARY_APP_MODULE: 'test/integration/fixtures/engine-reference-app.ts',
      ENGINE_FIXTURE_TOPIC: topic,
      ENGINE_FIXTURE_APP: uniqueName('startup-main'),
    });
    const exit = await engine.exited;
    expect(exit.code).not.toBe(0);
    expect(exit.code).not.toBeNull();
    const failure = engine.lines
      .filter((line) => line.startsWith('{'))
      .map((line) => JSON.parse(line) as { level?: string; code?: string; error?: { message?: string } })
      .find((entry) => entry.level === 'error' && entry.code === 'TABLE_NOT_FOUND');
    expect(failure?.error?.message).toContain(`TRIBUTARY_TABLE`);
    expect(failure?.error?.message).toContain(table);
  }, 30_000);
});
