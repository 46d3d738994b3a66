/**
 * Windowed views built beside live folding, on the real stack (Kafka, DynamoDB Local, a Lambda
 * endpoint; the engine in process): an `emit: 'final'` tumbling view added to a running app, and
 * then its version bump, are built from the whole topic while the app's other view keeps folding
 * (asserted: it changed during each build). Each version's windows equal the reference computed
 * here from the events in partition order (out of order beyond grace, so some are late), and its
 * final changes are: none for windows that closed in the history its build folded (below the
 * `finalsFrom` its swap recorded), exactly one for every window that closes after the swap.
 */
import { GetCommand, ScanCommand } from '@aws-sdk/lib-dynamodb';
import { afterAll, describe, expect, it } from 'vitest';
import { readStreamTimes } from '../../cli/internal/windows.ts';
import { startEngine, type Engine } from '../../engine/index.ts';
import { startLambdaEndpoint } from '../../local/index.ts';
import { createViewReader, defineApp, defineTrigger, defineView, tumbling, type Change } from '../../sdk/index.ts';
import { createTable, createTopic, dynamoClient, lambdaClient, stack, uniqueName, waitFor } from './helpers.ts';
import { connectProducer, highWatermarks, seededRandom, testKafka, testStorage, waitForCheckpoints } from './fixtures/engine-support.ts';
import { GRACE_MS, SIZE_MS, type WindowEvent, type WindowState } from './fixtures/windows-app.ts';
import { disorderedEvents, PARTITIONS, referenceWindows, type Produced } from './fixtures/windows-support.ts';

/** The windows of the disordered events are in 2026: keep them readable. */
const RETENTION_MS = 2 * 365 * 24 * 3_600_000;

function windowed(topic: string, version: 1 | 2) {
  return defineView({
    name: 'perSecond',
    source: topic,
    version,
    key: (e: WindowEvent) => e.k,
    timestamp: (e: WindowEvent) => e.at,
    window: tumbling({ sizeMs: SIZE_MS }),
    graceMs: GRACE_MS,
    retentionMs: RETENTION_MS,
    onLate: 'drop',
    emit: 'final',
    initial: (): WindowState => ({ count: 0, sum: 0, seqs: 0 }),
    // Version 2 counts `n` twice: its windows are told apart from version 1's.
    reduce:
      version === 1
        ? (s: WindowState, e: WindowEvent): WindowState => ({ count: s.count + 1, sum: s.sum + e.n, seqs: s.seqs + e.seq })
        : (s: WindowState, e: WindowEvent): WindowState => ({ count: s.count + 1, sum: s.sum + 2 * e.n, seqs: s.seqs + e.seq }),
  });
}

const counts = (topic: string) => defineView({ name: 'counts', source: topic, key: (e: WindowEvent) => e.k, initial: () => 0, reduce: (n: number) => n + 1 });

/** The reference windows of a version: version 2's sums are twice version 1's. */
function expectedWindows(events: readonly Produced[], version: 1 | 2): Map<string, WindowState> {
  const out = new Map<string, WindowState>();
  for (const [id, s] of referenceWindows(events).tumbling) out.set(id, version === 1 ? s : { ...s, sum: 2 * s.sum });
  return out;
}

/** The stream time that closes windows once the engine folded `events`: the least over partitions of their largest event time. */
function closingTime(events: readonly Produced[]): number {
  return Math.min(...Array.from({ length: PARTITIONS }, (_, p) => Math.max(...events.filter((e) => e.partition === p).map((e) => e.at))));
}

describe('windowed view builds beside live folding', () => {
  const dynamodb = dynamoClient();
  const kafka = testKafka('lifecycle-window-builds');
  const running: Engine[] = [];
  afterAll(async () => {
    await Promise.all(running.map((e) => e.stop().catch(() => {})));
    dynamodb.destroy();
  });

  it("an emit: 'final' view added to a running app, then bumped: built exactly while the other view folds; finals only for windows closing after each swap, once", async () => {
    const topic = await createTopic(stack().kafkaBrokers, uniqueName('life-win'), PARTITIONS);
    const table = await createTable(uniqueName('life-win'), dynamodb);
    const name = uniqueName('life-win');
    await createTopic(stack().kafkaBrokers, `${name}.dead-letter`, 1);
    const endpoint = await startLambdaEndpoint();
    const lambda = lambdaClient(endpoint.endpoint);
    const fn = uniqueName('lifeWin').replace(/-/g, '');
    const received: Change<WindowState>[] = [];
    endpoint.register(fn, async (event: { changes: Change<WindowState>[] }) => {
      received.push(...event.changes);
    });
    const producer = await connectProducer(kafka);
    const random = seededRandom(2027);
    const events: Produced[] = [];
    const produce = async (count: number) => {
      const round = disorderedEvents(random, count, events.length);
      events.push(...round);
      await producer.send({ topic, acks: -1, messages: round.map((e) => ({ key: e.k, partition: e.partition, value: JSON.stringify(e) })) });
    };
    const storage = testStorage(table);
    const start = (views: ReturnType<typeof windowed>[]) => {
      const triggers = views.map((view) => defineTrigger({ view, function: fn, name: 'windowFinal', batchSize: 50 }));
      const engine = startEngine({
        app: defineApp({ name, views: [counts(topic), ...views], triggers }),
        tableName: table,
        lambda,
        kafka: { clientId: 'lifecycle-window-builds', brokers: stack().kafkaBrokers },
        dynamodb,
        logLevel: 'error',
        logSink: () => {},
        metricsIntervalMs: 1_000,
        // Small fetches: a build of a few thousand records lasts long enough to watch live folding beside it.
        maxBytesPerPartition: 4_096,
      });
      running.push(engine);
      return engine;
    };
    const registry = async () =>
      (await storage.documentClient.send(new GetCommand({ TableName: table, Key: { pk: '_tributary', sk: 'view#perSecond' }, ConsistentRead: true }))).Item as
        | { live?: number; versions: Record<string, { finalsFrom?: number }> }
        | undefined;
    /** Every window item of one version's segment. */
    const windowItems = async (segment: string) => {
      const out = new Map<string, { state?: WindowState; closeAt?: number }>();
      let from: Record<string, unknown> | undefined;
      do {
        const page = await storage.documentClient.send(
          new ScanCommand({ TableName: table, FilterExpression: 'begins_with(pk, :p)', ExpressionAttributeValues: { ':p': `v#${segment}#` }, ExclusiveStartKey: from, ConsistentRead: true }),
        );
        for (const item of page.Items ?? []) out.set(`${item.key}@${item.windowStart}`, { state: item.state as WindowState, closeAt: item.closeAt as number | undefined });
        from = page.LastEvaluatedKey;
      } while (from !== undefined);
      return out;
    };
    const otherState = async () => JSON.stringify([...(await windowItemsOfCounts())].sort());
    const windowItemsOfCounts = async () => {
      const out = new Map<string, unknown>();
      let from: Record<string, unknown> | undefined;
      do {
        const page = await storage.documentClient.send(
          new ScanCommand({ TableName: table, FilterExpression: 'begins_with(pk, :p)', ExpressionAttributeValues: { ':p': 'v#counts#' }, ExclusiveStartKey: from, ConsistentRead: true }),
        );
        for (const item of page.Items ?? []) out.set(item.key as string, item.state);
        from = page.LastEvaluatedKey;
      } while (from !== undefined);
      return out;
    };
    /**
     * Produces rounds of events while `version` builds, until the other view was read in three
     * states before the swap (it folds beside the build), then waits for the swap; returns how
     * many states of the other view were read before it.
     */
    const produceDuringBuild = async (version: number) => {
      const swapped = async () => ((await registry())?.live ?? 0) >= version;
      const seen = new Set<string>();
      while (seen.size < 3 && !(await swapped())) {
        await produce(20);
        const read = await otherState();
        if (!(await swapped())) seen.add(read);
      }
      await waitFor(swapped, { timeoutMs: 60_000, message: `version ${version} to be swapped in` });
      return seen.size;
    };
    const caughtUp = async () => waitForCheckpoints(storage, topic, await highWatermarks(kafka, topic), 60_000);
    /**
     * Once caught up and every window closed by `events` has been settled by the closer (its
     * closing attributes gone), the finals of `segment` received: exactly one per owed window
     * (closeAt at or past finalsFrom), with the reference state; none for the others.
     */
    const expectFinals = async (segment: string, version: 1 | 2, finalsFrom: number) => {
      const expected = expectedWindows(events, version);
      const closing = closingTime(events);
      const closed = [...expected.keys()].filter((id) => Number(id.split('@')[1]) + SIZE_MS + GRACE_MS < closing);
      await waitFor(
        async () => {
          const items = await windowItems(segment);
          return closed.every((id) => items.has(id) && items.get(id)!.closeAt === undefined);
        },
        { timeoutMs: 30_000, message: `the closer to settle the ${closed.length} closed windows of ${segment}` },
      );
      const owed = closed.filter((id) => Number(id.split('@')[1]) + SIZE_MS + GRACE_MS >= finalsFrom).sort();
      const mine = received.filter((c) => (version === 1 ? c.viewVersion === undefined : c.viewVersion === 2));
      expect(mine.map((c) => `${c.key}@${c.window!.start}`).sort()).toEqual(owed);
      for (const change of mine) expect(change.after).toEqual(expected.get(`${change.key}@${change.window!.start}`));
      return { closed: closed.length, owed: owed.length };
    };
    try {
      // An app with one unwindowed view folds the history.
      await produce(3_000);
      const first = start([]);
      await first.ready;
      await caughtUp();
      await first.stop();

      // The windowed view is added: it builds while `counts` folds the events produced meanwhile.
      const second = start([windowed(topic, 1)]);
      await second.ready;
      expect(await produceDuringBuild(1)).toBeGreaterThan(1);
      const v1From = (await registry())!.versions['1']!.finalsFrom!;
      await produce(1_500);
      await caughtUp();
      const applied = [...expectedWindows(events, 1).values()].reduce((n, w) => n + w.count, 0);
      expect(applied, 'some events are late for their window').toBeLessThan(events.length);
      expect(Object.fromEntries([...(await windowItems('perSecond'))].map(([id, i]) => [id, i.state]))).toEqual(Object.fromEntries(expectedWindows(events, 1)));
      const v1 = await expectFinals('perSecond', 1, v1From);
      // History closed windows with no change; windows closing after the swap each got one.
      expect(v1.owed).toBeGreaterThan(0);
      expect(v1.closed).toBeGreaterThan(v1.owed);
      // Readers of version 1 read its windows.
      const reader = createViewReader({ dynamodb, tableName: table, aliasCacheMs: 0 });
      const inTimeOrder = (id: string) => Number(id.split('@')[1]);
      const m3 = [...expectedWindows(events, 1)].filter(([id]) => id.startsWith('m3@')).sort(([a], [b]) => inTimeOrder(a) - inTimeOrder(b));
      expect((await reader.windows(windowed(topic, 1), 'm3', { limit: 1_000 })).items.map((w) => [`m3@${w.window.start}`, w.state])).toEqual(m3);
      await second.stop();

      // Version 2 (another reducer) builds while `counts` folds; version 1 is frozen meanwhile.
      const third = start([windowed(topic, 2)]);
      await third.ready;
      expect(await produceDuringBuild(2)).toBeGreaterThan(1);
      const v2From = (await registry())!.versions['2']!.finalsFrom!;
      // Nothing of version 1's history is owed again: version 2's finals start past where version 1's stood.
      expect(v2From).toBeGreaterThan(v1From);
      await produce(1_500);
      await caughtUp();
      expect(Object.fromEntries([...(await windowItems('perSecond@2'))].map(([id, i]) => [id, i.state]))).toEqual(Object.fromEntries(expectedWindows(events, 2)));
      const v2 = await expectFinals('perSecond@2', 2, v2From);
      expect(v2.owed).toBeGreaterThan(0);
      expect(v2.closed).toBeGreaterThan(v2.owed);
      const m5 = [...expectedWindows(events, 2)].filter(([id]) => id.startsWith('m5@')).sort(([a], [b]) => inTimeOrder(a) - inTimeOrder(b));
      expect((await reader.windows(windowed(topic, 2), 'm5', { limit: 1_000 })).items.map((w) => [`m5@${w.window.start}`, w.state])).toEqual(m5);
      // The other view folded every record, throughout.
      const perKey = new Map<string, number>();
      for (const e of events) perKey.set(e.k, (perKey.get(e.k) ?? 0) + 1);
      expect(await windowItemsOfCounts()).toEqual(perKey);
      // Each version's stream time is its own on the live checkpoints: version 1's under the view name.
      const checkpoint = (await storage.documentClient.send(new GetCommand({ TableName: table, Key: { pk: '_tributary', sk: `checkpoint#${topic}#0` }, ConsistentRead: true }))).Item;
      expect(Object.keys(checkpoint?.streamTime ?? {}).sort()).toEqual(['perSecond', 'perSecond@2']);
      // What `tributary dev` and `tributary views windows` show is the live version's stream time:
      // per partition the largest event time produced to it.
      const shown = await readStreamTimes(storage.documentClient, table, windowed(topic, 2), Array.from({ length: PARTITIONS }, (_, p) => p));
      const largest = (p: number) => Math.max(...events.filter((e) => e.partition === p).map((e) => e.at));
      expect(Object.fromEntries(shown)).toEqual(Object.fromEntries(Array.from({ length: PARTITIONS }, (_, p) => [`${topic}/${p}`, largest(p)])));
      await third.stop();
    } finally {
      await producer.disconnect();
      lambda.destroy();
      await endpoint.stop();
    }
  }, 150_000);
});
