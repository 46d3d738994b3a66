/**
 * A repartitioned view's version bump survives SIGKILLs mid-build: `recent` (fixtures/
 * repartition-app.ts) runs as version 1 in a spawned engine, then version 2 (another reducer) is
 * started with small fetches and SIGKILLed once while its build forwards the source's history
 * (its source build checkpoint has moved, nothing is swapped) and once while it folds the new
 * repartition topic (the ends are recorded, its fold checkpoint has moved, nothing is swapped).
 * A third start finishes the build and folds live. The result must equal the fold of the new
 * repartition topic read back with a plain consumer (each original record once, its first copy),
 * hold every booking once (counts and sums from what was produced), and be complete.
 */
import { GetCommand, ScanCommand } from '@aws-sdk/lib-dynamodb';
import { GetItemCommand } from 'dynamodb-toolbox';
import { afterEach, describe, expect, it } from 'vitest';
import { checkpointKey } from '../../sdk/contract/index.ts';
import { repartitionTopic } from '../../sdk/index.ts';
import { createTable, createTopic, stack, uniqueName, waitFor } from './helpers.ts';
import { connectProducer, highWatermarks, seededRandom, spawnEngine, testKafka, testStorage, waitForCheckpoints, type EngineProcess } from './fixtures/engine-support.ts';
import { foldV2, type RecentV2 } from './fixtures/repartition-app.ts';
import { foldRepartitionTopic, tallies, type Booking } from './fixtures/repartition-support.ts';

const MEMBERS = 20;
const CLASSES = 9;

describe('a repartitioned view build killed mid-way', () => {
  const live: EngineProcess[] = [];
  afterEach(async () => {
    await Promise.all(
      live.map(async (e) => {
        if (e.child.exitCode === null && e.child.signalCode === null) {
          e.child.kill('SIGKILL');
          await e.exited;
        }
      }),
    );
    live.length = 0;
  });

  it('gives the exact fold of its repartition topic after a SIGKILL in each leg', async () => {
    const source = uniqueName('repb-crash');
    const table = uniqueName('repb-crash');
    const appName = uniqueName('repb-crash');
    await Promise.all([createTable(table), createTopic(stack().kafkaBrokers, source, 3), createTopic(stack().kafkaBrokers, `${appName}.dead-letter`, 1)]);
    const groupId = uniqueName('repb-crash-group');
    const envOf = (version: number, maxBytes: number) => ({
      TRIBUTARY_TABLE: table,
      TRIBUTARY_APP_MODULE: 'test/integration/fixtures/repartition-app.ts',
      TRIBUTARY_GROUP_ID: groupId,
      TRIBUTARY_SESSION_TIMEOUT_MS: '4000',
      TRIBUTARY_HEARTBEAT_INTERVAL_MS: '500',
      TRIBUTARY_MAX_BYTES_PER_PARTITION: String(maxBytes),
      REPARTITION_SOURCE_TOPIC: source,
      REPARTITION_APP: appName,
      REPARTITION_VERSION: String(version),
    });
    const kafka = testKafka('repb-crash');
    const storage = testStorage(table);
    const producer = await connectProducer(kafka);
    const random = seededRandom(4242);
    const produced: Booking[] = [];
    const produce = async (count: number) => {
      const round = Array.from({ length: count }, (_, i) => ({ memberId: `m${Math.floor(random() * MEMBERS)}`, classId: `c${Math.floor(random() * CLASSES)}`, seq: produced.length + i }));
      produced.push(...round);
      await producer.send({ topic: source, acks: -1, messages: round.map((e) => ({ key: e.classId, value: JSON.stringify(e) })) });
    };
    const spawnOne = (version: number, maxBytes: number) => {
      const engine = spawnEngine(envOf(version, maxBytes));
      live.push(engine);
      return engine;
    };
    const registry = async () =>
      (await storage.documentClient.send(new GetCommand({ TableName: table, Key: { pk: '_tributary', sk: 'view#recent' }, ConsistentRead: true }))).Item as
        | { live?: number; versions: Record<string, { repartitionEnds?: Record<string, number> }> }
        | undefined;
    const checkpointSum = async (topic: string) => {
      let sum = 0n;
      for (const p of [0, 1, 2]) {
        const { Item } = await storage.checkpoints.build(GetItemCommand).key(checkpointKey(topic, p)).send();
        if (Item !== undefined) sum += BigInt(Item.offset);
      }
      return sum;
    };
    const kill = async (engine: EngineProcess, what: string) => {
      engine.child.kill('SIGKILL');
      expect((await engine.exited).signal).toBe('SIGKILL');
      expect((await registry())?.live, `killed before the swap (${what})`).not.toBe(2);
    };
    const v2Topic = repartitionTopic(appName, 'recent', 2);
    try {
      const v1 = spawnOne(1, 64 * 1024);
      await v1.running;
      await produce(1_500);
      await waitForCheckpoints(storage, source, await highWatermarks(kafka, source), 60_000);
      v1.child.kill('SIGTERM');
      await v1.exited;

      // Kill 1: forwarding (the source's build checkpoints have moved, no ends yet).
      const first = spawnOne(2, 2_048);
      await waitFor(async () => (await checkpointSum(`${source}@recent@2`)) > 0n, { timeoutMs: 60_000, intervalMs: 50, message: 'the forward leg to start' });
      expect((await registry())?.versions['2']?.repartitionEnds).toBeUndefined();
      await kill(first, 'forward leg');

      // Kill 2: folding (the ends recorded, the fold checkpoints have moved).
      const second = spawnOne(2, 2_048);
      await waitFor(async () => (await checkpointSum(`${v2Topic}@recent@2`)) > 0n, { timeoutMs: 60_000, intervalMs: 50, message: 'the fold leg to start' });
      const ends = (await registry())?.versions['2']?.repartitionEnds;
      expect(Object.values(ends ?? {}).reduce((a, b) => a + b, 0), 'the ends cover every booking of history (copies repeated by the kill included)').toBeGreaterThanOrEqual(1_500);
      await kill(second, 'fold leg');

      const third = spawnOne(2, 64 * 1024);
      await third.running;
      expect((await registry())?.live).toBe(2);
      expect((await registry())?.versions['2']?.repartitionEnds, 'recorded once, by the first task to finish forwarding').toEqual(ends);
      await produce(200);
      await waitForCheckpoints(storage, source, await highWatermarks(kafka, source), 60_000);
      await waitForCheckpoints(storage, v2Topic, await highWatermarks(kafka, v2Topic), 60_000);

      const reference = await foldRepartitionTopic<RecentV2>(kafka, v2Topic, { applied: 0, last: [], total: 0 }, foldV2);
      expect(reference.origins, 'every booking forwarded to the version 2 topic').toBe(produced.length);
      const stored = new Map<string, unknown>();
      let from: Record<string, unknown> | undefined;
      do {
        const page = await storage.documentClient.send(
          new ScanCommand({
            TableName: table,
            FilterExpression: 'begins_with(pk, :prefix) AND attribute_exists(#version)',
            ExpressionAttributeNames: { '#version': 'version' },
            ExpressionAttributeValues: { ':prefix': 'v#recent@2#' },
            ExclusiveStartKey: from,
            ConsistentRead: true,
          }),
        );
        for (const item of page.Items ?? []) stored.set(item.key as string, item.state);
        from = page.LastEvaluatedKey;
      } while (from !== undefined);
      const counts = tallies(produced);
      expect(stored.size).toBe(counts.size);
      for (const [member, tally] of counts) {
        expect(stored.get(member), `recent@2 ${member}`).toEqual(reference.states.get(member));
        expect(stored.get(member), `${member}: each booking once`).toMatchObject(tally);
      }
      const copies = [...(await highWatermarks(kafka, v2Topic)).values()].reduce((a, b) => a + Number(b), 0);
      console.log(`[repartition-builds-crash] ${produced.length} bookings, ${copies} copies in the version 2 topic (${copies - produced.length} repeated by the kills, fenced)`);
    } finally {
      await producer.disconnect();
    }
  }, 180_000);
});
