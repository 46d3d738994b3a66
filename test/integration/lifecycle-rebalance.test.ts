/**
 * A view build in a group of two engine tasks survives losing one (the rebalance case): version
 * 2 of a view (with a trigger) is built in the background by two tasks of one group while
 * events keep being produced; one task is SIGKILLed mid-build, after both held partitions of
 * the live group. The other takes its partitions (live and build) over, finishes the build and
 * swaps. Asserted: version 2 equals the reference fold of every record (order-sensitive hash),
 * version 1 is as the build found it, `live` is 2, every partition was handed over (by a live
 * batch, or by the swap at the build's target when the survivor's first batch of a partition
 * came after it), and the trigger got one distinct change per record at or past its partition's
 * handover offset and none before it, each exact (a change sent again after the kill is the
 * same change).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startLambdaEndpoint, type LambdaEndpoint } from '../../local/index.ts';
import type { Change } from '../../sdk/index.ts';
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
  type EngineProcess,
} from './fixtures/engine-support.ts';
import { checkLiveChanges, finalStates, segmentItems, totalsRegistry, type Totals } from './fixtures/lifecycle-support.ts';

const PARTITIONS = 3;
const HISTORY = 8_000;
const KEYS = 60;

/** The partitions of the live group's last assignment an engine logged (`joined consumer group`). */
function assigned(engine: EngineProcess, topic: string): number[] {
  const joins = engine.lines.filter((line) => line.includes('"msg":"joined consumer group"'));
  const last = joins[joins.length - 1];
  if (last === undefined) return [];
  return ((JSON.parse(last) as { assignment?: Record<string, number[]> }).assignment ?? {})[topic] ?? [];
}

describe('view build crash safety in a group of two tasks', () => {
  let endpoint: LambdaEndpoint;
  const engines: EngineProcess[] = [];

  beforeAll(async () => {
    endpoint = await startLambdaEndpoint();
  });

  afterAll(async () => {
    for (const engine of engines) {
      if (engine.child.exitCode === null && engine.child.signalCode === null) engine.child.kill('SIGKILL');
    }
    await Promise.all(engines.map((e) => e.exited));
    await endpoint?.stop();
  });

  it('one of two tasks SIGKILLed mid-build: the other finishes it, version 2 is exact, and the trigger misses nothing', async () => {
    const dynamodb = dynamoClient();
    const storage = testStorage(await createTable(uniqueName('life-rebal'), dynamodb));
    const topic = await createTopic(stack().kafkaBrokers, uniqueName('life-rebal'), PARTITIONS);
    const name = uniqueName('life-rebal');
    await createTopic(stack().kafkaBrokers, `${name}.dead-letter`, 1);
    const fn = uniqueName('lifeRebal');
    const received: Change<Totals>[] = [];
    endpoint.register(fn, async (event: { changes: Change<Totals>[] }) => {
      received.push(...event.changes);
    });
    const kafka = testKafka('lifecycle-rebalance');
    const random = seededRandom(777);
    const events = fixtureEvents(HISTORY, KEYS, random);
    const producer = await connectProducer(kafka);
    await produceEvents(producer, topic, events);
    const env = (version: number) => ({
      TRIBUTARY_TABLE: storage.tableName,
      TRIBUTARY_APP_MODULE: 'test/integration/fixtures/lifecycle-app.ts',
      LIFECYCLE_TOPIC: topic,
      LIFECYCLE_APP: name,
      LIFECYCLE_VERSION: String(version),
      ...(version === 2
        ? {
            LIFECYCLE_TRIGGER_FUNCTION: fn,
            AWS_ENDPOINT_URL_LAMBDA: endpoint.endpoint,
            // Small fetches: the build takes many batches, long enough for both tasks to join.
            TRIBUTARY_MAX_BYTES_PER_PARTITION: '4096',
          }
        : {}),
      // A killed member's partitions go to the other one after its session times out.
      TRIBUTARY_SESSION_TIMEOUT_MS: '4000',
      TRIBUTARY_HEARTBEAT_INTERVAL_MS: '500',
    });
    const spawn = (environment: Record<string, string>) => {
      const engine = spawnEngine(environment);
      engines.push(engine);
      return engine;
    };
    const output = (engine: EngineProcess) => engine.lines.slice(-20).join('\n');

    let producing = true;
    let rounds: Promise<void> = Promise.resolve();
    const produceRounds = async () => {
      while (producing) {
        const round = fixtureEvents(15, KEYS, random, events.length);
        events.push(...round);
        await produceEvents(producer, topic, round);
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    };

    try {
      // Version 1 folds the history live, then stops cleanly.
      const v1 = spawn(env(1));
      await v1.running;
      await waitForCheckpoints(storage, topic, await highWatermarks(kafka, topic), 60_000);
      v1.child.kill('SIGTERM');
      expect((await v1.exited).code).toBe(0);
      const v1Items = await segmentItems(storage, 'totals');
      expect(v1Items).toEqual(finalStates(events, 1));
      rounds = produceRounds();

      // Two tasks build version 2 beside live folding; once both hold live partitions, one dies.
      const doomed = spawn(env(2));
      const survivor = spawn(env(2));
      await waitFor(() => assigned(doomed, topic).length > 0 && assigned(survivor, topic).length > 0 && assigned(doomed, topic).length + assigned(survivor, topic).length === PARTITIONS, {
        timeoutMs: 60_000,
        intervalMs: 50,
        message: 'both tasks to hold live partitions',
      }).catch((error: Error) => {
        throw new Error(`${error.message}; output:\n${output(doomed)}\n---\n${output(survivor)}`);
      });
      expect((await totalsRegistry(storage))?.live).toBe(1);
      doomed.child.kill('SIGKILL');
      expect((await doomed.exited).signal).toBe('SIGKILL');
      expect((await totalsRegistry(storage))?.live).toBe(1);

      // The survivor takes the dead task's partitions over, finishes the build and swaps.
      await waitFor(async () => (await totalsRegistry(storage))?.live === 2, { timeoutMs: 90_000, message: 'version 2 to be swapped in' }).catch((error: Error) => {
        throw new Error(`${error.message}; output:\n${output(survivor)}`);
      });
      await waitFor(() => assigned(survivor, topic).length === PARTITIONS, { timeoutMs: 30_000, intervalMs: 50, message: 'the survivor to hold every live partition' });
      producing = false;
      await rounds;
      await waitForCheckpoints(storage, topic, await highWatermarks(kafka, topic), 60_000);

      expect(await segmentItems(storage, 'totals@2')).toEqual(finalStates(events, 2));
      expect(await segmentItems(storage, 'totals')).toEqual(v1Items);
      const registry = await totalsRegistry(storage);
      expect(registry?.live).toBe(2);
      expect(Object.keys(registry?.versions['2']?.handedOver ?? {}).sort()).toEqual(['0', '1', '2']);
      const changes = checkLiveChanges(received, events, registry?.versions['2']?.handedOver ?? {}, PARTITIONS, await highWatermarks(kafka, topic));
      console.log(
        `[lifecycle-rebalance] ${events.length} records (${events.length - HISTORY} during the build), ${changes.distinct} changes over ${changes.keys} keys, ${changes.sentAgain} sent again after the kill`,
      );

      survivor.child.kill('SIGTERM');
      expect((await survivor.exited).code).toBe(0);
    } finally {
      producing = false;
      await rounds.catch(() => {});
      await producer.disconnect();
      dynamodb.destroy();
    }
  }, 240_000);
});
