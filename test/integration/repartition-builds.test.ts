/**
 * Builds of a repartitioned view on the real stack (engine/internal/repartition-build.ts):
 * (a) `recent` (keyed by member, bookings Kafka-keyed by class over 3 partitions, an
 * order-sensitive capped list) added to a running app whose source has history; (b) a version
 * bump of it with a changed reducer and a trigger. The reference is computed independently: the
 * version's repartition topic is read back with a plain kafkajs consumer and folded per member,
 * each original record (by its origin headers) once, its first copy, in the topic's order; every
 * produced booking must be in it once, and the members' counts and sums must equal the produced
 * bookings. Reads through the alias during the bump's build must each be one whole version,
 * never a mix, and the trigger must hear nothing of history and every later booking once.
 */
import { GetCommand, ScanCommand } from '@aws-sdk/lib-dynamodb';
import { afterAll, describe, expect, it } from 'vitest';
import type { LambdaClient } from '@aws-sdk/client-lambda';
import { startEngine, type Engine } from '../../engine/index.ts';
import { startLambdaEndpoint } from '../../local/index.ts';
import { createViewReader, defineApp, defineTrigger, defineView, repartitionTopic, type App, type Change } from '../../sdk/index.ts';
import { createTable, createTopic, dynamoClient, lambdaClient, stack, uniqueName, waitFor } from './helpers.ts';
import { connectProducer, highWatermarks, seededRandom, testKafka, testStorage, waitForCheckpoints } from './fixtures/engine-support.ts';
import { foldRepartitionTopic, tallies, type Booking } from './fixtures/repartition-support.ts';

const PARTITIONS = 3;
const MEMBERS = 20;
const CLASSES = 9;

interface RecentV1 {
  readonly applied: number;
  readonly last: number[];
}
interface RecentV2 {
  readonly applied: number;
  readonly last: number[];
  readonly total: number;
}

/** Version 1 keeps the last four bookings; version 2 the last two and the sum of their seqs. */
const fold1 = (s: RecentV1, e: Booking): RecentV1 => ({ applied: s.applied + 1, last: [...s.last, e.seq].slice(-4) });
const fold2 = (s: RecentV2, e: Booking): RecentV2 => ({ applied: s.applied + 1, last: [...s.last, e.seq].slice(-2), total: s.total + e.seq });

const recentV1 = (topic: string) => defineView({ name: 'recent', source: topic, repartition: true, key: (e: Booking) => e.memberId, initial: (): RecentV1 => ({ applied: 0, last: [] }), reduce: fold1 });
const recentV2 = (topic: string) =>
  defineView({ name: 'recent', source: topic, version: 2, repartition: true, key: (e: Booking) => e.memberId, initial: (): RecentV2 => ({ applied: 0, last: [], total: 0 }), reduce: fold2 });

/** A view folded directly (keyed like the Kafka message), so the live group has folded the source before `recent` exists. */
function perClassView(topic: string) {
  return defineView({ name: 'perClass', source: topic, key: (e: Booking) => e.classId, initial: () => ({ n: 0 }), reduce: (s: { n: number }) => ({ n: s.n + 1 }) });
}

/** JSON with every object's keys sorted (a stored map's attribute order is not the reducer's). */
function canonical(value: unknown): string {
  return JSON.stringify(value, (_, v: unknown) =>
    v !== null && typeof v === 'object' && !Array.isArray(v) ? Object.fromEntries(Object.entries(v as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) : v,
  );
}

describe('builds of a repartitioned view', () => {
  const dynamodb = dynamoClient();
  const kafka = testKafka('repartition-builds');
  const running: Engine[] = [];

  afterAll(async () => {
    await Promise.all(running.map((e) => e.stop().catch(() => {})));
    dynamodb.destroy();
  });

  function start(app: App, tableName: string, lambda?: LambdaClient, maxBytesPerPartition?: number): Engine {
    const engine = startEngine({
      app,
      tableName,
      ...(lambda !== undefined ? { lambda } : {}),
      ...(maxBytesPerPartition !== undefined ? { maxBytesPerPartition } : {}),
      kafka: { clientId: 'repartition-builds', brokers: stack().kafkaBrokers },
      dynamodb,
      logLevel: 'error',
      logSink: () => {},
      metricsIntervalMs: 1_000,
    });
    running.push(engine);
    return engine;
  }

  /** Bookings of random members and classes, Kafka-keyed by class, appended to `produced`. */
  async function produce(producer: Awaited<ReturnType<typeof connectProducer>>, topic: string, produced: Booking[], random: () => number, count: number): Promise<Booking[]> {
    const round = Array.from({ length: count }, (_, i) => ({ memberId: `m${Math.floor(random() * MEMBERS)}`, classId: `c${Math.floor(random() * CLASSES)}`, seq: produced.length + i }));
    produced.push(...round);
    await producer.send({ topic, acks: -1, messages: round.map((e) => ({ key: e.classId, value: JSON.stringify(e) })) });
    return round;
  }

  /** Every item of one view version (its own pk segment), read by a consistent Scan. */
  async function items(tableName: string, segment: string): Promise<Map<string, unknown>> {
    const out = new Map<string, unknown>();
    let from: Record<string, unknown> | undefined;
    do {
      const page = await testStorage(tableName).documentClient.send(
        new ScanCommand({
          TableName: tableName,
          FilterExpression: 'begins_with(pk, :prefix) AND attribute_exists(#version)',
          ExpressionAttributeNames: { '#version': 'version' },
          ExpressionAttributeValues: { ':prefix': `v#${segment}#` },
          ExclusiveStartKey: from,
          ConsistentRead: true,
        }),
      );
      for (const item of page.Items ?? []) out.set(item.key as string, item.state);
      from = page.LastEvaluatedKey;
    } while (from !== undefined);
    return out;
  }

  async function registry(tableName: string) {
    const { Item } = await testStorage(tableName).documentClient.send(new GetCommand({ TableName: tableName, Key: { pk: '_tributary', sk: 'view#recent' }, ConsistentRead: true }));
    return Item as { live?: number; versions: Record<string, { repartitionEnds?: Record<string, number> }> } | undefined;
  }

  /** Waits until the engine's live checkpoints of `topic` reach its high watermarks. */
  async function caughtUp(tableName: string, topic: string): Promise<void> {
    await waitForCheckpoints(testStorage(tableName), topic, await highWatermarks(kafka, topic), 60_000);
  }

  it('a repartitioned view added to an app whose source has history equals the fold of its repartition topic, each booking once', async () => {
    const topic = await createTopic(stack().kafkaBrokers, uniqueName('repb-add'), PARTITIONS);
    const table = await createTable(uniqueName('repb-add'), dynamodb);
    const name = uniqueName('repb-add');
    await createTopic(stack().kafkaBrokers, `${name}.dead-letter`, 1);
    const producer = await connectProducer(kafka);
    const random = seededRandom(77);
    const produced: Booking[] = [];
    try {
      await produce(producer, topic, produced, random, 400);
      const before = start(defineApp({ name, views: [perClassView(topic)] }), table);
      await before.ready;
      await caughtUp(table, topic);
      await before.stop();

      const after = start(defineApp({ name, views: [perClassView(topic), recentV1(topic)] }), table);
      await after.ready;
      const entry = await registry(table);
      expect(entry?.live, 'built and swapped before the task joined its group').toBe(1);
      expect(Object.values(entry?.versions['1']?.repartitionEnds ?? {}).reduce((a, b) => a + b, 0), 'ends recorded for the 400 records of history').toBe(400);
      await produce(producer, topic, produced, random, 100);
      await caughtUp(table, topic);
      const internal = repartitionTopic(name, 'recent');
      await caughtUp(table, internal);
      await after.stop();

      const reference = await foldRepartitionTopic<RecentV1>(kafka, internal, { applied: 0, last: [] }, fold1);
      expect(reference.origins, 'every booking forwarded').toBe(produced.length);
      const stored = await items(table, 'recent');
      const counts = tallies(produced);
      expect(stored.size).toBe(counts.size);
      for (const [member, tally] of counts) {
        expect(stored.get(member), `recent ${member}`).toEqual(reference.states.get(member));
        expect((stored.get(member) as RecentV1).applied, `${member} applied once each`).toBe(tally.applied);
      }
    } finally {
      await producer.disconnect();
    }
  });

  it('a version bump with a changed reducer builds its own repartition topic; reads see one whole version; the trigger hears only later bookings, once', async () => {
    const topic = await createTopic(stack().kafkaBrokers, uniqueName('repb-bump'), PARTITIONS);
    const table = await createTable(uniqueName('repb-bump'), dynamodb);
    const name = uniqueName('repb-bump');
    await createTopic(stack().kafkaBrokers, `${name}.dead-letter`, 1);
    const endpoint = await startLambdaEndpoint();
    const lambda = lambdaClient(endpoint.endpoint);
    const fn = uniqueName('repbWatch');
    const received: Change<RecentV2>[] = [];
    endpoint.register(fn, async (event: { changes: Change<RecentV2>[] }) => {
      received.push(...event.changes);
    });
    const producer = await connectProducer(kafka);
    const random = seededRandom(91);
    const produced: Booking[] = [];
    try {
      // Version 1 runs from the start (swapped at once: nothing to build), folding live.
      const v1View = recentV1(topic);
      const v1 = start(defineApp({ name, views: [v1View] }), table);
      await v1.ready;
      await produce(producer, topic, produced, random, 600);
      await caughtUp(table, topic);
      await caughtUp(table, repartitionTopic(name, 'recent'));
      await v1.stop();
      const v1Reference = await foldRepartitionTopic<RecentV1>(kafka, repartitionTopic(name, 'recent'), { applied: 0, last: [] }, fold1);
      const v1Items = await items(table, 'recent');
      expect(v1Items).toEqual(v1Reference.states);

      // Version 2, with small fetches so the build takes a while; reads go through the alias meanwhile.
      const v2View = recentV2(topic);
      const v2 = start(defineApp({ name, views: [v2View], triggers: [defineTrigger({ view: v2View, function: fn, name: 'watch' })] }), table, lambda, 4_096);
      const reader = createViewReader({ dynamodb, tableName: table, aliasCacheMs: 0 });
      const members = [...v1Reference.states.keys()].sort();
      const reads: Map<string, unknown>[] = [];
      const readAll = async () => new Map((await reader.getMany(v2View, members, { consistent: true })).map((s, i) => [members[i]!, s?.state]));
      let ready = false;
      void v2.ready.then(() => (ready = true));
      while (!ready) reads.push(await readAll());
      await v2.ready;
      expect((await registry(table))?.live).toBe(2);
      reads.push(await readAll());
      const internal = repartitionTopic(name, 'recent', 2);
      expect(internal).toBe(`${name}.recent.v2.repartition`);
      const v2History = await foldRepartitionTopic<RecentV2>(kafka, internal, { applied: 0, last: [], total: 0 }, fold2);
      expect(v2History.origins, 'the build forwarded every booking of history to the new topic').toBe(produced.length);
      // Each read is the frozen version 1 or the whole version 2 of history: never a mix.
      const v1Whole = canonical(members.map((m) => [m, v1Reference.states.get(m)]));
      const v2Whole = canonical(members.map((m) => [m, v2History.states.get(m)]));
      const kinds = reads.map((read) => canonical([...read]));
      for (const kind of kinds) expect([v1Whole, v2Whole]).toContain(kind);
      expect(kinds[kinds.length - 1]).toBe(v2Whole);
      console.log(`[repartition-builds] ${reads.length} reads during the bump: ${kinds.filter((k) => k === v1Whole).length} of version 1, ${kinds.filter((k) => k === v2Whole).length} of version 2`);

      // History delivered nothing; every later booking exactly one change, from version 2.
      expect(received).toEqual([]);
      const historyCount = tallies(produced);
      const later = await produce(producer, topic, produced, random, 150);
      await caughtUp(table, topic);
      await caughtUp(table, internal);
      await waitFor(() => received.length >= later.length, { timeoutMs: 30_000, message: 'version 2 changes' });
      await v2.stop();
      expect(received.length).toBe(later.length);
      expect(new Set(received.map((c) => c.idempotencyKey)).size).toBe(received.length);
      expect(received.every((c) => c.viewVersion === 2)).toBe(true);

      const reference = await foldRepartitionTopic<RecentV2>(kafka, internal, { applied: 0, last: [], total: 0 }, fold2);
      expect(reference.origins).toBe(produced.length);
      const stored = await items(table, 'recent@2');
      const counts = tallies(produced);
      expect(stored.size).toBe(counts.size);
      for (const [member, tally] of counts) {
        expect(stored.get(member), `recent@2 ${member}`).toEqual(reference.states.get(member));
        expect(stored.get(member), `${member}: each booking once`).toMatchObject(tally);
        // Its changes continue from the state built from history, one per later booking, in order.
        const first = (historyCount.get(member)?.applied ?? 0) + 1;
        expect(received.filter((c) => c.key === member).map((c) => c.after.applied)).toEqual(Array.from({ length: tally.applied - first + 1 }, (_, i) => first + i));
      }
    } finally {
      await producer.disconnect();
      lambda.destroy();
      await endpoint.stop();
    }
  });
});
