/**
 * A view build survives SIGKILL: version 2 of a view is built from 8k records over 3
 * partitions by engine processes killed at least three times mid-build; the last one finishes
 * the build, swaps once, and version 2 equals the reference fold of the new reducer (an
 * order-sensitive hash: a record applied twice, skipped or out of order shows). Version 1's
 * items are as they were.
 */
import { GetCommand, ScanCommand } from '@aws-sdk/lib-dynamodb';
import { describe, expect, it } from 'vitest';
import { createTable, createTopic, dynamoClient, stack, uniqueName, waitFor } from './helpers.ts';
import {
  connectProducer,
  fixtureEvents,
  highWatermarks,
  produceEvents,
  seededRandom,
  spawnEngine,
  testKafka,
  testStorage,
  waitForCheckpoints,
} from './fixtures/engine-support.ts';
import { HASH_MODULUS, type FixtureEvent } from './fixtures/engine-reference-app.ts';
import { multiplierOf } from './fixtures/lifecycle-app.ts';

const PARTITIONS = 3;
const EVENTS = 8_000;
const KILLS = 3;

function reference(events: readonly FixtureEvent[], version: number): Map<string, { count: number; hash: number }> {
  const out = new Map<string, { count: number; hash: number }>();
  for (const e of events) {
    const s = out.get(e.k) ?? { count: 0, hash: 0 };
    out.set(e.k, { count: s.count + 1, hash: (s.hash * multiplierOf(version) + e.seq) % HASH_MODULUS });
  }
  return out;
}

describe('view build crash safety', () => {
  it(`builds version 2 exactly through ${KILLS} SIGKILLs and swaps once`, async () => {
    const dynamodb = dynamoClient();
    const storage = testStorage(await createTable(uniqueName('life-crash'), dynamodb));
    const topic = await createTopic(stack().kafkaBrokers, uniqueName('life-crash'), PARTITIONS);
    const name = uniqueName('life-crash');
    const kafka = testKafka('lifecycle-crash');
    const events = fixtureEvents(EVENTS, 200, seededRandom(2026));
    const producer = await connectProducer(kafka);
    await produceEvents(producer, topic, events);
    await producer.disconnect();
    const env = (version: number) => ({
      TRIBUTARY_TABLE: storage.tableName,
      TRIBUTARY_APP_MODULE: 'test/integration/fixtures/lifecycle-app.ts',
      LIFECYCLE_TOPIC: topic,
      LIFECYCLE_APP: name,
      LIFECYCLE_VERSION: String(version),
      // Small fetches for the build: it takes many batches, so each kill lands in the middle of it.
      ...(version === 2 ? { TRIBUTARY_MAX_BYTES_PER_PARTITION: '16384' } : {}),
      // A killed member's partitions go to the next one after its session times out.
      TRIBUTARY_SESSION_TIMEOUT_MS: '4000',
      TRIBUTARY_HEARTBEAT_INTERVAL_MS: '500',
    });
    const items = async (segment: string) => {
      const out = new Map<string, unknown>();
      let start: Record<string, unknown> | undefined;
      do {
        const page = await storage.documentClient.send(
          new ScanCommand({
            TableName: storage.tableName,
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
    };
    const registry = async () =>
      (await storage.documentClient.send(new GetCommand({ TableName: storage.tableName, Key: { pk: '_tributary', sk: 'view#totals' }, ConsistentRead: true })))
        .Item as { live?: number; swappedAt?: string } | undefined;
    /** Records the version-2 build has checkpointed, over all partitions. */
    const built = async () => {
      let sum = 0n;
      for (let p = 0; p < PARTITIONS; p += 1) {
        const { Item } = await storage.documentClient.send(
          new GetCommand({ TableName: storage.tableName, Key: { pk: '_tributary', sk: `checkpoint#${topic}@totals@2#${p}` }, ConsistentRead: true }),
        );
        if (Item !== undefined) sum += BigInt(Item.offset as string);
      }
      return Number(sum);
    };

    try {
      // Version 1 folds the topic live, then stops cleanly.
      const v1 = spawnEngine(env(1));
      await v1.running;
      await waitForCheckpoints(storage, topic, await highWatermarks(kafka, topic), 120_000);
      v1.child.kill('SIGTERM');
      expect((await v1.exited).code).toBe(0);
      const v1Items = await items('totals');
      expect(v1Items).toEqual(reference(events, 1));

      // Version 2: killed mid-build each time the build has made some progress since the last kill.
      let last = 0;
      for (let kill = 0; kill < KILLS; kill += 1) {
        const engine = spawnEngine(env(2));
        try {
          await waitFor(async () => (await built()) > last, { timeoutMs: 60_000, intervalMs: 50, message: `build progress past ${last}` });
        } catch (error) {
          engine.child.kill('SIGKILL');
          throw new Error(`${(error as Error).message}; engine output:\n${engine.lines.slice(-20).join('\n')}`);
        }
        last = await built();
        engine.child.kill('SIGKILL');
        expect((await engine.exited).signal).toBe('SIGKILL');
        expect(last).toBeLessThan(EVENTS);
        expect((await registry())?.live).toBe(1);
      }

      const final = spawnEngine(env(2));
      await final.running;
      // The build runs beside live folding: the task is running before its swap.
      await waitFor(async () => (await registry())?.live === 2, { timeoutMs: 120_000, message: 'version 2 to be swapped in' });
      const swapped = await registry();
      expect(swapped?.live).toBe(2);
      expect(await items('totals@2')).toEqual(reference(events, 2));
      expect(await items('totals')).toEqual(v1Items);
      final.child.kill('SIGTERM');
      expect((await final.exited).code).toBe(0);

      // Another start finds version 2 live: no second build, no second swap.
      const again = spawnEngine(env(2));
      await again.running;
      expect((await registry())?.swappedAt).toBe(swapped?.swappedAt);
      again.child.kill('SIGTERM');
      await again.exited;
    } finally {
      dynamodb.destroy();
    }
  }, 300_000);
});
