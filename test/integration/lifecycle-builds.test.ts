/**
 * View builds on the real stack: a view added to a running app, and a view whose reducer
 * changed with a version bump, are built from the whole topic into their own items beside live
 * folding (the app's other view keeps changing meanwhile); the view's alias then names the new
 * version, readers follow it, and both the built view and the views that were there stay equal
 * to a reference fold of every record, those produced during the build included (asserted on a
 * Scan of the version's own items, not on the engine's reads).
 */
import { GetCommand, ScanCommand } from '@aws-sdk/lib-dynamodb';
import { afterAll, describe, expect, it } from 'vitest';
import { LambdaClient } from '@aws-sdk/client-lambda';
import { startEngine, type Engine, type EngineOptions } from '../../engine/index.ts';
import { startLambdaEndpoint } from '../../local/index.ts';
import { createViewReader, defineApp, defineTrigger, defineView, type App, type Change } from '../../sdk/index.ts';
import { createTable, createTopic, dynamoClient, lambdaClient, stack, uniqueName, waitFor } from './helpers.ts';
import { connectProducer, fixtureEvents, highWatermarks, produceEvents, seededRandom, testKafka, testStorage, waitForCheckpoints } from './fixtures/engine-support.ts';
import type { FixtureEvent } from './fixtures/engine-reference-app.ts';

const PARTITIONS = 3;

function sums(name: string, topic: string, options: { version?: number; factor?: number } = {}) {
  const factor = options.factor ?? 1;
  return defineView({
    name,
    source: topic,
    ...(options.version !== undefined ? { version: options.version } : {}),
    key: (e: FixtureEvent) => e.k,
    initial: () => ({ count: 0, sum: 0 }),
    reduce: factor === 1 ? (s, e) => ({ count: s.count + 1, sum: s.sum + e.n }) : (s, e) => ({ count: s.count + 1, sum: s.sum + 3 * e.n }),
  });
}

/** count/sum per key of `events`, with the reducer's factor. */
function reference(events: readonly FixtureEvent[], factor: number): Map<string, { count: number; sum: number }> {
  const out = new Map<string, { count: number; sum: number }>();
  for (const e of events) {
    const s = out.get(e.k) ?? { count: 0, sum: 0 };
    out.set(e.k, { count: s.count + 1, sum: s.sum + factor * e.n });
  }
  return out;
}

describe('view builds', () => {
  const dynamodb = dynamoClient();
  const kafka = testKafka('lifecycle-builds');
  const running: Engine[] = [];

  afterAll(async () => {
    await Promise.all(running.map((e) => e.stop().catch(() => {})));
    dynamodb.destroy();
  });

  function start(app: App, tableName: string, lambda?: LambdaClient, extra: Partial<EngineOptions> = {}): Engine {
    const engine = startEngine({
      ...extra,
      app,
      tableName,
      ...(lambda !== undefined ? { lambda } : {}),
      kafka: { clientId: 'lifecycle-builds', brokers: stack().kafkaBrokers },
      dynamodb,
      logLevel: 'error',
      logSink: () => {},
      metricsIntervalMs: 1_000,
    });
    running.push(engine);
    return engine;
  }

  /** Every item of one view version (its own pk segment), read by a consistent Scan. */
  async function items(tableName: string, segment: string): Promise<Map<string, unknown>> {
    const storage = testStorage(tableName);
    const out = new Map<string, unknown>();
    let start: Record<string, unknown> | undefined;
    do {
      const page = await storage.documentClient.send(
        new ScanCommand({
          TableName: tableName,
          FilterExpression: 'begins_with(pk, :prefix) AND attribute_exists(#version)',
          ExpressionAttributeNames: { '#version': 'version' },
          ExpressionAttributeValues: { ':prefix': `v#${segment}#` },
          ExclusiveStartKey: start,
          ConsistentRead: true,
        }),
      );
      for (const item of page.Items ?? []) out.set(item.key as string, item.state);
      start = page.LastEvaluatedKey;
    } while (start !== undefined);
    return out;
  }

  async function registryEntry(tableName: string, view: string) {
    const { Item } = await testStorage(tableName).documentClient.send(
      new GetCommand({ TableName: tableName, Key: { pk: '_tributary', sk: `view#${view}` }, ConsistentRead: true }),
    );
    return Item as { live?: number; versions: Record<string, { removedAt?: string }> } | undefined;
  }

  /**
   * Produces rounds of events (appended to `events`) until the registry records `view`'s swap to
   * `version`; returns what `watch` read after each round, for the rounds read before the swap.
   */
  async function produceDuringBuild(
    run: { table: string; topic: string; producer: Awaited<ReturnType<typeof connectProducer>>; events: FixtureEvent[]; random: () => number; keys: number },
    view: string,
    version: number,
    watch: () => Promise<unknown>,
  ): Promise<string[]> {
    const seen: string[] = [];
    const deadline = Date.now() + 90_000;
    const swapped = async () => ((await registryEntry(run.table, view))?.live ?? 0) >= version;
    while (!(await swapped())) {
      if (Date.now() > deadline) throw new Error(`view "${view}" was not swapped to version ${version} within 90 s`);
      const round = fixtureEvents(20, run.keys, run.random, run.events.length);
      run.events.push(...round);
      await produceEvents(run.producer, run.topic, round);
      const read = JSON.stringify(await watch());
      if (!(await swapped())) seen.push(read);
    }
    return seen;
  }

  /** The first page of a view's items, read consistently through its alias. */
  const firstPage = (table: string, view: ReturnType<typeof sums>) => async () =>
    (await createViewReader({ dynamodb, tableName: table, aliasCacheMs: 0 }).query(view, { prefix: 'k' }, { limit: 50, consistent: true })).items.map((i) => [i.key, i.state]);

  /** Small fetches make a build of a few thousand records last seconds, long enough to watch live folding beside it. */
  const SLOW_BUILD = { maxBytesPerPartition: 4_096 };

  async function caughtUp(tableName: string, topic: string): Promise<void> {
    await waitForCheckpoints(testStorage(tableName), topic, await highWatermarks(kafka, topic), 60_000);
  }

  it('a view added to a running app is built from the whole topic beside live folding; the first view keeps changing', async () => {
    const topic = await createTopic(stack().kafkaBrokers, uniqueName('life-add'), PARTITIONS);
    const table = await createTable(uniqueName('life-add'), dynamodb);
    const name = uniqueName('life-add');
    const producer = await connectProducer(kafka);
    const random = seededRandom(12);
    const events: FixtureEvent[] = [];
    try {
      const before = fixtureEvents(2_500, 40, random);
      events.push(...before);
      await produceEvents(producer, topic, before);
      const first = start(defineApp({ name, views: [sums('orders', topic)] }), table);
      await first.ready;
      await caughtUp(table, topic);
      await first.stop();

      const whileDown = fixtureEvents(500, 40, random, events.length);
      events.push(...whileDown);
      await produceEvents(producer, topic, whileDown);

      const second = start(defineApp({ name, views: [sums('orders', topic), sums('totalOrders', topic)] }), table, undefined, SLOW_BUILD);
      await second.ready;
      // While the new view builds, the first one folds the events produced meanwhile.
      const seen = await produceDuringBuild({ table, topic, producer, events, random, keys: 40 }, 'totalOrders', 1, firstPage(table, sums('orders', topic)));
      expect(new Set(seen).size).toBeGreaterThan(1);
      const after = fixtureEvents(500, 40, random, events.length);
      events.push(...after);
      await produceEvents(producer, topic, after);
      await caughtUp(table, topic);
      const expected = reference(events, 1);
      expect(await items(table, 'totalOrders')).toEqual(expected);
      expect(await items(table, 'orders')).toEqual(expected);
      const reader = createViewReader({ dynamodb, tableName: table });
      expect((await reader.get(sums('totalOrders', topic), 'k7'))?.state).toEqual(expected.get('k7'));
      await second.stop();
    } finally {
      await producer.disconnect();
    }
  });

  it('a reducer changed with a version bump is built, swapped, and read whole; the old version is removed after the swap', async () => {
    const topic = await createTopic(stack().kafkaBrokers, uniqueName('life-bump'), PARTITIONS);
    const table = await createTable(uniqueName('life-bump'), dynamodb);
    const name = uniqueName('life-bump');
    const producer = await connectProducer(kafka);
    const random = seededRandom(99);
    const events: FixtureEvent[] = [];
    try {
      const initial = fixtureEvents(2_000, 30, random);
      events.push(...initial);
      await produceEvents(producer, topic, initial);
      const v1 = start(defineApp({ name, views: [sums('revenue', topic), sums('other', topic)] }), table);
      await v1.ready;
      await caughtUp(table, topic);
      await v1.stop();
      const v1Items = await items(table, 'revenue');
      expect(v1Items).toEqual(reference(events, 1));

      // A reader polling throughout: every page it reads is wholly version 1's or wholly version 2's.
      const reader = createViewReader({ dynamodb, tableName: table, aliasCacheMs: 0 });
      const v2View = sums('revenue', topic, { version: 2, factor: 3 });
      const pages: { key: string; state: { count: number; sum: number } }[][] = [];
      let polling = true;
      const poller = (async () => {
        while (polling) {
          const page = await reader.query(v2View, { prefix: 'k' }, { limit: 100, consistent: true });
          pages.push(page.items.map((item) => ({ key: item.key, state: item.state })));
        }
      })();

      // Removal of version 1 starts 2 s after the swap (the default is a minute).
      const v2 = start(defineApp({ name, views: [v2View, sums('other', topic)] }), table, undefined, { replacedVersionGraceMs: 2_000, ...SLOW_BUILD });
      await v2.ready;
      // While version 2 builds (version 1 frozen), the other view folds the events produced meanwhile.
      const seen = await produceDuringBuild({ table, topic, producer, events, random, keys: 30 }, 'revenue', 2, firstPage(table, sums('other', topic)));
      expect(new Set(seen).size).toBeGreaterThan(1);
      const more = fixtureEvents(500, 30, random, events.length);
      events.push(...more);
      await produceEvents(producer, topic, more);
      await caughtUp(table, topic);
      const v2Expected = reference(events, 3);
      await waitFor(async () => JSON.stringify([...(await items(table, 'revenue@2'))].sort()) === JSON.stringify([...v2Expected].sort()), {
        timeoutMs: 30_000,
        message: 'version 2 to equal the reference fold of the new reducer',
      });
      polling = false;
      await poller;
      expect(await items(table, 'revenue@2')).toEqual(v2Expected);
      expect(await items(table, 'other')).toEqual(reference(events, 1));
      // Version 1's items go after the swap: all of them, and the registry says so.
      await waitFor(async () => (await items(table, 'revenue')).size === 0, { timeoutMs: 30_000, message: "version 1's items to be removed after the swap" });
      await waitFor(async () => (await registryEntry(table, 'revenue'))?.versions['1']?.removedAt !== undefined, {
        timeoutMs: 10_000,
        message: 'version 1 to be recorded as removed',
      });
      expect(await items(table, 'revenue@2')).toEqual(v2Expected);
      const info = await reader.viewInfo(v2View);
      expect(info).toMatchObject({ view: 'revenue', live: 2 });
      expect(info?.retainedFrom).toBeUndefined();
      expect(info?.versions[1]?.removedAt).toEqual(expect.any(String));
      expect(info?.versions[2]?.removedAt).toBeUndefined();
      // Prefix sums per key in partition order (a key stays in one partition): a state of n events
      // is version 1's when its sum is the first n events' sum, version 2's when it is 3 times it.
      const prefix = new Map<string, number[]>();
      for (const e of events) {
        const sums = prefix.get(e.k) ?? [0];
        sums.push(sums[sums.length - 1]! + e.n);
        prefix.set(e.k, sums);
      }
      const versionOf = (item: { key: string; state: { count: number; sum: number } }): number => {
        const base = prefix.get(item.key)?.[item.state.count];
        if (base !== undefined && base > 0 && item.state.sum === base) return 1;
        if (base !== undefined && base > 0 && item.state.sum === 3 * base) return 2;
        throw new Error(`key ${item.key} read as ${JSON.stringify(item.state)}: neither version's state`);
      };
      const versions = pages.filter((page) => page.length > 0).map((page) => new Set(page.map(versionOf)));
      for (const set of versions) expect(set.size).toBe(1);
      // Never removed before the swap (or under a read that began before it): every page of
      // version 1 the poller read held every one of its keys.
      const v1Pages = pages.filter((page) => page.length > 0 && page.every((item) => versionOf(item) === 1));
      expect(v1Pages.length).toBeGreaterThan(0);
      for (const page of v1Pages) expect(page.length).toBe(v1Items.size);
      expect(versions.some((set) => set.has(2))).toBe(true);
      expect((await reader.get(v2View, 'k3'))?.state).toEqual(v2Expected.get('k3'));
      await v2.stop();
    } finally {
      await producer.disconnect();
    }
  });

  it('a trigger on a rebuilt view: no changes for history, every later change once, from the new version', async () => {
    const topic = await createTopic(stack().kafkaBrokers, uniqueName('life-trig'), PARTITIONS);
    const table = await createTable(uniqueName('life-trig'), dynamodb);
    const name = uniqueName('life-trig');
    await createTopic(stack().kafkaBrokers, `${name}.dead-letter`, 1);
    const endpoint = await startLambdaEndpoint();
    const lambda = lambdaClient(endpoint.endpoint);
    const fn = uniqueName('lifeTrig');
    const received: Change<{ count: number; sum: number }>[] = [];
    endpoint.register(fn, async (event: { changes: Change<{ count: number; sum: number }>[] }) => {
      received.push(...event.changes);
    });
    const producer = await connectProducer(kafka);
    const random = seededRandom(5);
    try {
      const appOf = (view: ReturnType<typeof sums>) => defineApp({ name, views: [view], triggers: [defineTrigger({ view, function: fn, name: 'watch' })] });
      const history = fixtureEvents(800, 20, random);
      await produceEvents(producer, topic, history);
      const v1 = start(appOf(sums('watched', topic)), table, lambda);
      await v1.ready;
      await caughtUp(table, topic);
      await waitFor(() => received.length >= history.length, { timeoutMs: 30_000, message: 'version 1 changes' });
      await v1.stop();
      expect(received.length).toBe(history.length);
      received.length = 0;

      const v2 = start(appOf(sums('watched', topic, { version: 2, factor: 3 })), table, lambda);
      await v2.ready;
      // Built (in the background) and swapped: nothing was delivered for the 800 records of history.
      await waitFor(async () => (await registryEntry(table, 'watched'))?.live === 2, { timeoutMs: 60_000, message: 'version 2 to be swapped in' });
      expect(received).toEqual([]);
      const later = fixtureEvents(300, 20, random, history.length);
      await produceEvents(producer, topic, later);
      await caughtUp(table, topic);
      await waitFor(() => received.length >= later.length, { timeoutMs: 30_000, message: 'version 2 changes' });
      await v2.stop();

      // One change per later record (each changes its key's state), none twice, all from version 2.
      expect(new Set(received.map((c) => c.idempotencyKey)).size).toBe(received.length);
      expect(received.length).toBe(later.length);
      expect(received.every((c) => c.viewVersion === 2 && c.idempotencyKey.startsWith('watched@2#'))).toBe(true);
      // Per key, the changes continue from the state built from history: counts n+1..n+m, in order.
      const historyCount = reference(history, 3);
      const all = reference([...history, ...later], 3);
      for (const [key, expected] of all) {
        const changes = received.filter((c) => c.key === key);
        const first = (historyCount.get(key)?.count ?? 0) + 1;
        expect(changes.map((c) => c.after.count)).toEqual(Array.from({ length: expected.count - first + 1 }, (_, i) => first + i));
        if (changes.length > 0) expect(changes[changes.length - 1]!.after).toEqual(expected);
      }
    } finally {
      await producer.disconnect();
      lambda.destroy();
      await endpoint.stop();
    }
  });
});

// The embedded broker does not implement DeleteRecords; on Apache Kafka the early records are deleted for real.
const onApache = stack().kafkaKind === 'apache';
if (!onApache) console.log(`[lifecycle-builds] history-gone case skipped: the ${stack().kafkaKind} broker cannot delete records`);

describe.skipIf(!onApache)('view builds when history is gone', () => {
  it("stops with BUILD_HISTORY_INCOMPLETE, or with backfill: 'retained' builds from what is left and records it", async () => {
    const dynamodb = dynamoClient();
    const kafka = testKafka('lifecycle-history');
    const topic = await createTopic(stack().kafkaBrokers, uniqueName('life-gone'), 1);
    const table = await createTable(uniqueName('life-gone'), dynamodb);
    const name = uniqueName('life-gone');
    const events = fixtureEvents(300, 10, seededRandom(7));
    const producer = await connectProducer(kafka);
    const admin = kafka.admin();
    await admin.connect();
    const engines: Engine[] = [];
    const start = (app: App) => {
      const engine = startEngine({ app, tableName: table, kafka: { clientId: 'lifecycle-history', brokers: stack().kafkaBrokers }, dynamodb, logLevel: 'error', logSink: () => {} });
      engines.push(engine);
      return engine;
    };
    try {
      await produceEvents(producer, topic, events);
      const first = start(defineApp({ name, views: [sums('kept', topic)] }));
      await first.ready;
      await waitForCheckpoints(testStorage(table), topic, await highWatermarks(kafka, topic), 60_000);
      await first.stop();
      await admin.fetchTopicMetadata({ topics: [topic] }); // deleteTopicRecords needs the partition leaders
      await admin.deleteTopicRecords({ topic, partitions: [{ partition: 0, offset: '100' }] });

      const refused = start(defineApp({ name, views: [sums('kept', topic), sums('added', topic)] }));
      const error = await refused.ready.then(() => undefined, (e: unknown) => e as { code?: string; message: string });
      await refused.done.catch(() => {});
      expect(error?.code).toBe('BUILD_HISTORY_INCOMPLETE');
      expect(error?.message).toContain(`${topic}/0 starts at offset 100`);
      expect(error?.message).toContain("backfill: 'retained'");

      const retained = defineView({ ...sums('added', topic), backfill: 'retained' });
      const second = start(defineApp({ name, views: [sums('kept', topic), retained] }));
      await second.ready;
      const storage = testStorage(table);
      // The build runs beside live folding: the task is ready before its swap.
      await waitFor(
        async () => (await storage.documentClient.send(new GetCommand({ TableName: table, Key: { pk: '_tributary', sk: 'view#added' }, ConsistentRead: true }))).Item?.live === 1,
        { timeoutMs: 60_000, message: 'the retained build to be swapped in' },
      );
      await second.stop();
      const { Item } = await storage.documentClient.send(new GetCommand({ TableName: table, Key: { pk: '_tributary', sk: 'view#added' }, ConsistentRead: true }));
      expect(Item?.live).toBe(1);
      expect(Item?.versions['1'].retainedFrom).toEqual({ 0: '100' });
      // Reads can tell: the SDK reports where the live version's history starts.
      const info = await createViewReader({ dynamodb, tableName: table }).viewInfo(retained);
      expect(info).toMatchObject({ view: 'added', live: 1, retainedFrom: { 0: '100' } });
      expect((await createViewReader({ dynamodb, tableName: table }).viewInfo(sums('kept', topic)))?.retainedFrom).toBeUndefined();
      const page = await storage.documentClient.send(
        new ScanCommand({ TableName: table, FilterExpression: 'begins_with(pk, :p)', ExpressionAttributeValues: { ':p': 'v#added#' }, ConsistentRead: true }),
      );
      expect(new Map((page.Items ?? []).map((item) => [item.key as string, item.state]))).toEqual(reference(events.slice(100), 1));
    } finally {
      await Promise.all(engines.map((e) => e.stop().catch(() => {})));
      await admin.disconnect();
      await producer.disconnect();
      dynamodb.destroy();
    }
  });
});

