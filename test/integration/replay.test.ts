/**
 * Dead-letter replay on the real stack (issue: view lifecycle): a reducer dead-letters records
 * it cannot handle; the fixed reducer is deployed (an accepted definition change) and keeps
 * folding live; `replayDeadLetters` folds the dead-lettered records into that view while the
 * engine runs. The view then equals a reference fold of every event computed here; a second
 * replay changes no item (versions included); the app's other view is not touched by either.
 */
import { isDeepStrictEqual } from 'node:util';
import { ScanCommand } from '@aws-sdk/lib-dynamodb';
import { afterAll, describe, expect, it } from 'vitest';
import { replayDeadLetters, startEngine, type Engine } from '../../engine/index.ts';
import { defineApp, defineView } from '../../sdk/index.ts';
import { createTable, createTopic, dynamoClient, stack, uniqueName, waitFor } from './helpers.ts';
import { connectProducer, testKafka, testStorage } from './fixtures/engine-support.ts';

type Payment = { user: string; amount: number | string };

function appOf(name: string, topic: string, fixed: boolean) {
  const totals = defineView({
    name: 'totals',
    source: topic,
    key: (e: Payment) => e.user,
    initial: () => ({ cents: 0 }),
    reduce: (s, e) => {
      if (!fixed && typeof e.amount !== 'number') throw new Error(`amount ${JSON.stringify(e.amount)} is not a number`);
      return { cents: s.cents + Number(e.amount) };
    },
  });
  const counts = defineView({ name: 'counts', source: topic, key: (e: Payment) => e.user, initial: () => ({ n: 0 }), reduce: (s) => ({ n: s.n + 1 }) });
  return defineApp({ name, views: [totals, counts] });
}

const engines: Engine[] = [];
afterAll(async () => {
  await Promise.all(engines.map((e) => e.stop()));
});

function start(app: ReturnType<typeof defineApp>, table: string, accept: string[] = []): Engine {
  const engine = startEngine({
    app,
    tableName: table,
    kafka: { clientId: 'replay-test', brokers: stack().kafkaBrokers },
    dynamodb: dynamoClient(),
    logLevel: 'error',
    logSink: () => {},
    sessionTimeoutMs: 6_000,
    heartbeatIntervalMs: 1_000,
    acceptDefinitionChanges: accept,
  });
  engines.push(engine);
  return engine;
}

/** Every item of a view as stored: key → { state, version }. */
async function items(table: string, view: string): Promise<Map<string, { state: unknown; version: number }>> {
  const storage = testStorage(table);
  const out = new Map<string, { state: unknown; version: number }>();
  let start: Record<string, unknown> | undefined;
  do {
    const page = await storage.documentClient.send(
      new ScanCommand({
        TableName: table,
        FilterExpression: '#view = :view AND attribute_exists(#version)',
        ExpressionAttributeNames: { '#view': 'view', '#version': 'version' },
        ExpressionAttributeValues: { ':view': view },
        ExclusiveStartKey: start,
        ConsistentRead: true,
      }),
    );
    for (const item of page.Items ?? []) out.set(item.key as string, { state: item.state, version: item.version as number });
    start = page.LastEvaluatedKey;
  } while (start !== undefined);
  return out;
}

function reference(events: readonly Payment[]) {
  const totals: Record<string, { cents: number }> = {};
  const counts: Record<string, { n: number }> = {};
  for (const e of events) {
    totals[e.user] = { cents: (totals[e.user]?.cents ?? 0) + Number(e.amount) };
    counts[e.user] = { n: (counts[e.user]?.n ?? 0) + 1 };
  }
  return { totals, counts };
}

const states = (m: Map<string, { state: unknown }>) => Object.fromEntries([...m].map(([k, v]) => [k, v.state]));

describe('dead-letter replay', () => {
  it('folds the dead-lettered records into the fixed view once, beside live folding; a second replay changes nothing; the other view is untouched', async () => {
    const topic = uniqueName('replay');
    const table = uniqueName('replay');
    await Promise.all([createTable(table), createTopic(stack().kafkaBrokers, topic, 2)]);
    const name = uniqueName('replay');
    const users = ['ann', 'bob', 'cy', 'dee', 'eve'];
    // Every fifth amount is sent as a string: the first reducer throws on it.
    const before: Payment[] = Array.from({ length: 40 }, (_, i) => ({ user: users[i % users.length]!, amount: i % 5 === 2 ? String(i) : i }));
    const poison = before.filter((e) => typeof e.amount === 'string').length;
    const kafka = testKafka('replay-test');
    const producer = await connectProducer(kafka);
    try {
      await producer.send({ topic, acks: -1, messages: before.map((e) => ({ key: e.user, value: JSON.stringify(e) })) });

      // The buggy reducer: the string amounts are dead-lettered, counts takes every event.
      const buggy = start(appOf(name, topic, false), table);
      await buggy.ready;
      await waitFor(async () => isDeepStrictEqual(states(await items(table, 'counts')), reference(before).counts), {
        timeoutMs: 20_000,
        message: 'counts folded every event',
      });
      await waitFor(() => buggy.stats().deadLetters >= poison, { timeoutMs: 20_000, message: `${poison} dead letters` });
      await buggy.stop();

      // The fix is deployed as an accepted definition change (the reducer's output for every
      // record it took is the same), and live folding goes on with it.
      const fixedApp = appOf(name, topic, true);
      const fixed = start(fixedApp, table, ['totals']);
      await fixed.ready;
      const after: Payment[] = [{ user: 'ann', amount: '1000' }, { user: 'fay', amount: 5 }];
      await producer.send({ topic, acks: -1, messages: after.map((e) => ({ key: e.user, value: JSON.stringify(e) })) });
      const all = [...before, ...after];
      const expected = reference(all);
      await waitFor(async () => isDeepStrictEqual(states(await items(table, 'counts')), expected.counts), { timeoutMs: 20_000, message: 'live events folded' });
      const countsBefore = await items(table, 'counts');

      const options = { app: fixedApp, view: 'totals', tableName: table, kafka: { brokers: stack().kafkaBrokers }, dynamodb: dynamoClient() };
      const first = await replayDeadLetters(options);
      expect(first).toMatchObject({ selected: poison, replayed: poison, alreadyApplied: 0, stillPoison: 0, unreplayable: [] });
      const totals = await items(table, 'totals');
      expect(states(totals)).toEqual(expected.totals);
      expect(await items(table, 'counts')).toEqual(countsBefore);

      const second = await replayDeadLetters(options);
      expect(second).toMatchObject({ selected: poison, replayed: 0, alreadyApplied: poison, stillPoison: 0 });
      expect(await items(table, 'totals')).toEqual(totals);
      expect(await items(table, 'counts')).toEqual(countsBefore);

      // Live folding still owns the items the replay wrote.
      await producer.send({ topic, acks: -1, messages: [{ key: 'ann', value: JSON.stringify({ user: 'ann', amount: 1 }) }] });
      const annAfter = { cents: expected.totals.ann!.cents + 1 };
      await waitFor(async () => isDeepStrictEqual((await items(table, 'totals')).get('ann')?.state, annAfter), { timeoutMs: 20_000, message: 'ann folded after the replay' });
    } finally {
      await producer.disconnect();
    }
  });
});
