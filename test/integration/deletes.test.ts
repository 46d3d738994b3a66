/**
 * Deleting view items on the real stack (Kafka -> engine in process -> DynamoDB Local -> Lambda
 * endpoint in this process): a reducer that returns DELETE, and a tombstone (null value) that
 * the view's `onTombstone` turns into a delete. The reads (`get`, `getMany`, `query`) return
 * nothing for the deleted keys, the function gets the change with `deleted: true` and no
 * `after`, the stored tombstone keeps the offsets fence and expires, and a later event of a
 * deleted key starts from `initial()`. Expected values come from the events, folded here.
 */
import type { LambdaClient } from '@aws-sdk/client-lambda';
import { DynamoDBDocumentClient, GetCommand } from '@aws-sdk/lib-dynamodb';
import type { Producer } from 'kafkajs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startEngine, type Engine } from '../../engine/index.ts';
import { startLambdaEndpoint, type LambdaEndpoint } from '../../local/index.ts';
import { viewItemKey } from '../../sdk/contract/index.ts';
import { createViewReader, DELETE, defineApp, defineTrigger, defineView, type Change } from '../../sdk/index.ts';
import { connectProducer, testKafka } from './fixtures/engine-support.ts';
import { createTable, createTopic, dynamoClient, lambdaClient, stack, uniqueName, waitFor } from './helpers.ts';

type OrderEvent = { order: string; type: 'item' | 'cancelled' };
type Order = { items: number };

describe('deleted view items on the real stack', () => {
  const kafka = testKafka('deletes-test');
  const dynamodb = dynamoClient();
  const documents = DynamoDBDocumentClient.from(dynamodb);
  let endpoint: LambdaEndpoint;
  let lambda: LambdaClient;
  let producer: Producer;
  let engine: Engine | undefined;

  beforeAll(async () => {
    endpoint = await startLambdaEndpoint();
    lambda = lambdaClient(endpoint.endpoint);
    producer = await connectProducer(kafka);
  });

  afterAll(async () => {
    await engine?.stop();
    await producer?.disconnect();
    lambda?.destroy();
    await endpoint?.stop();
    dynamodb.destroy();
  });

  it('hides items deleted by reduce or by a tombstone, delivers the delete, keeps the fence and re-creates from initial()', async () => {
    const topic = uniqueName('del-src');
    const table = uniqueName('del-views');
    const appName = uniqueName('del');
    const fn = uniqueName('delFn');
    await Promise.all([
      createTopic(stack().kafkaBrokers, topic, 2),
      createTopic(stack().kafkaBrokers, `${appName}.dead-letter`, 1),
      createTable(table, dynamodb),
    ]);
    const orders = defineView({
      name: 'orders',
      source: topic,
      key: (e: OrderEvent) => e.order,
      initial: (): Order => ({ items: 0 }),
      reduce: (s, e) => (e.type === 'cancelled' ? DELETE : { items: s.items + 1 }),
      onTombstone: (record): OrderEvent => ({ order: record.key!.toString('utf8'), type: 'cancelled' }),
    });
    const trigger = defineTrigger({ view: orders, function: fn, name: 'ordersChanged' });
    const app = defineApp({ name: appName, views: [orders], triggers: [trigger] });
    const received: Change<Order>[] = [];
    endpoint.register(fn, async (event: { changes: Change<Order>[] }) => {
      received.push(...event.changes);
    });

    // o1: two items, then a tombstone; o2: an item, a cancel, an item; o3: three items.
    const script: [string, OrderEvent['type'] | 'tombstone'][] = [
      ['o1', 'item'], ['o2', 'item'], ['o3', 'item'], ['o1', 'item'], ['o2', 'cancelled'],
      ['o3', 'item'], ['o1', 'tombstone'], ['o2', 'item'], ['o3', 'item'],
    ];
    await producer.send({
      topic,
      acks: -1,
      messages: script.map(([order, type]) => ({ key: order, value: type === 'tombstone' ? null : JSON.stringify({ order, type }) })),
    });
    // The reference: per key, the changes 'every' owes (before, after, version).
    const expected = new Map<string, [Order | undefined, Order | undefined, number][]>();
    const states = new Map<string, Order | undefined>();
    for (const [order, type] of script) {
      const list = expected.get(order) ?? [];
      const version = (list.at(-1)?.[2] ?? 0) + 1;
      const before = states.get(order);
      const after = type === 'item' ? { items: (before?.items ?? 0) + 1 } : undefined;
      list.push([before, after, version]);
      expected.set(order, list);
      states.set(order, after);
    }

    engine = startEngine({
      app,
      tableName: table,
      kafka: { clientId: 'deletes-test', brokers: stack().kafkaBrokers },
      dynamodb,
      lambda,
      groupId: uniqueName('del-group'),
      healthPort: null,
      logLevel: 'warn',
      sessionTimeoutMs: 6_000,
      heartbeatIntervalMs: 1_000,
    });
    await engine.ready;
    await waitFor(() => received.length >= script.length, { timeoutMs: 30_000, message: 'every change at the function' });

    const byKey = new Map<string, [Order | undefined, Order | undefined, number][]>();
    for (const c of received) {
      const list = byKey.get(c.key) ?? [];
      list.push([c.before, c.after, c.version]);
      byKey.set(c.key, list);
      // A delete travels as JSON: no `after`, and `deleted: true`.
      expect(c.deleted === true).toBe(c.after === undefined);
    }
    expect(new Map([...byKey].sort())).toEqual(new Map([...expected].sort()));

    const reader = createViewReader({ dynamodb, tableName: table });
    expect(await reader.get(orders, 'o1', { consistent: true })).toBeUndefined();
    expect((await reader.getMany(orders, ['o1', 'o2', 'o3'], { consistent: true })).map((s) => s?.state)).toEqual([
      undefined,
      { items: 1 },
      { items: 3 },
    ]);
    await waitFor(async () => (await reader.query(orders, { prefix: '' }, { consistent: true })).items.length === 2, {
      timeoutMs: 10_000,
      message: 'the key index to list the two live keys',
    });
    expect((await reader.query(orders, { prefix: '' }, { consistent: true })).items.map((i) => i.key)).toEqual(['o2', 'o3']);

    // The tombstone: no state, the version and offsets of the last applied event, an expiry.
    const { Item: tombstone } = await documents.send(new GetCommand({ TableName: table, Key: viewItemKey('orders', 'o1'), ConsistentRead: true }));
    expect(tombstone?.state).toBeUndefined();
    expect(tombstone?.version).toBe(3);
    expect(Object.keys(tombstone?.offsets ?? {})).toHaveLength(1);
    expect(tombstone?.ttl).toBeGreaterThan(Date.now() / 1000 + orders.deleteRetentionMs / 1000 - 120);

    // A later event of the deleted key starts from initial(), at the next version.
    await producer.send({ topic, acks: -1, messages: [{ key: 'o1', value: JSON.stringify({ order: 'o1', type: 'item' }) }] });
    await waitFor(() => received.length > script.length, { timeoutMs: 30_000, message: 'the re-creating change' });
    const last = received.at(-1)!;
    expect([last.key, last.before, last.after, last.version]).toEqual(['o1', undefined, { items: 1 }, 4]);
    expect((await reader.get(orders, 'o1', { consistent: true }))?.state).toEqual({ items: 1 });
    expect(engine.stats().deadLetters).toBe(0);
  });
});
