/**
 * A view build survives SIGKILL during its swap. Version 2 of a view (with a trigger) is built
 * in the background beside live folding while events keep being produced. The engine is
 * SIGKILLed at the test-only pause points (`TRIBUTARY_TEST_PAUSE_AT`, docs/architecture.md
 * "Environment variables"): once when the build has reached its target but before the alias
 * write (`before-swap`), once right after the alias write (`after-swap`); then it runs without
 * a pause. Asserted:
 * - version 2 equals the reference fold of every record produced (an order-sensitive hash: a
 *   record applied twice, skipped or out of order shows), version 1's items are as the build
 *   found them (frozen, not yet removed);
 * - the swap happened once: `live` is 1 when the engine paused before the swap, 2 with
 *   `swappedAt` = S when it paused after it, and still 2 with `swappedAt` = S at the end (the
 *   restarted engine starts no build and writes no alias);
 * - live folding went on: while each engine was paused in its build, and after each restart,
 *   the live checkpoints passed the records produced meanwhile;
 * - every partition was handed over (`versions.2.handedOver`), and the trigger got, per key,
 *   one distinct change (by idempotency key) per record folded live after its partition's
 *   handover, each with the reference state of that record, none missing up to the last; a
 *   change sent again after a kill (at least once, invariant 4) is the same change.
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
const HISTORY = 3_000;
const KEYS = 60;

describe('view build crash safety during the swap', () => {
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

  it('SIGKILLed before and after the alias write, version 2 is exact, swapped once, live folding goes on and the trigger misses nothing', async () => {
    const dynamodb = dynamoClient();
    const storage = testStorage(await createTable(uniqueName('life-swap'), dynamodb));
    const topic = await createTopic(stack().kafkaBrokers, uniqueName('life-swap'), PARTITIONS);
    const name = uniqueName('life-swap');
    await createTopic(stack().kafkaBrokers, `${name}.dead-letter`, 1);
    const fn = uniqueName('lifeSwap');
    const received: Change<Totals>[] = [];
    endpoint.register(fn, async (event: { changes: Change<Totals>[] }) => {
      received.push(...event.changes);
    });
    const kafka = testKafka('lifecycle-swap-crash');
    const random = seededRandom(4242);
    const events = fixtureEvents(HISTORY, KEYS, random);
    const producer = await connectProducer(kafka);
    await produceEvents(producer, topic, events);
    const env = (version: number, pauseAt?: 'before-swap' | 'after-swap') => ({
      TRIBUTARY_TABLE: storage.tableName,
      TRIBUTARY_APP_MODULE: 'test/integration/fixtures/lifecycle-app.ts',
      LIFECYCLE_TOPIC: topic,
      LIFECYCLE_APP: name,
      LIFECYCLE_VERSION: String(version),
      ...(version === 2 ? { LIFECYCLE_TRIGGER_FUNCTION: fn, AWS_ENDPOINT_URL_LAMBDA: endpoint.endpoint } : {}),
      ...(pauseAt !== undefined ? { TRIBUTARY_TEST_HOOKS: '1', TRIBUTARY_TEST_PAUSE_AT: pauseAt } : {}),
      // A killed member's partitions go to the next one after its session times out.
      TRIBUTARY_SESSION_TIMEOUT_MS: '4000',
      TRIBUTARY_HEARTBEAT_INTERVAL_MS: '500',
    });
    const spawn = (environment: Record<string, string>) => {
      const engine = spawnEngine(environment);
      engines.push(engine);
      return engine;
    };
    const output = (engine: EngineProcess) => engine.lines.slice(-20).join('\n');
    const items = (segment: string) => segmentItems(storage, segment);
    const registry = () => totalsRegistry(storage);
    const pausedAt = (engine: EngineProcess, point: string) =>
      waitFor(() => engine.lines.some((line) => line.includes('"msg":"test_pause"') && line.includes(`"point":"${point}"`)), {
        timeoutMs: 90_000,
        intervalMs: 50,
        message: `the engine to pause at ${point}`,
      }).catch((error: Error) => {
        throw new Error(`${error.message}; engine output:\n${output(engine)}`);
      });
    /** Live folding reaches every record produced so far (the live checkpoints pass the ends read now). */
    const liveCatchesUp = async (engine: EngineProcess) =>
      waitForCheckpoints(storage, topic, await highWatermarks(kafka, topic), 60_000).catch((error: Error) => {
        throw new Error(`${error.message}; engine output:\n${output(engine)}`);
      });

    // Events keep coming while version 2 is built, killed and swapped: a round every 100 ms.
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
      const v1Items = await items('totals');
      expect(v1Items).toEqual(finalStates(events, 1));
      rounds = produceRounds();

      // Paused with the build at its target, before the alias write: live folding goes on (all
      // partitions hand over to it), then the kill.
      const beforeSwap = spawn(env(2, 'before-swap'));
      await pausedAt(beforeSwap, 'before-swap');
      expect((await registry())?.live).toBe(1);
      expect((await registry())?.versions['2']?.closing).toEqual(expect.any(String));
      await liveCatchesUp(beforeSwap);
      beforeSwap.child.kill('SIGKILL');
      expect((await beforeSwap.exited).signal).toBe('SIGKILL');
      expect((await registry())?.live).toBe(1);
      expect(received.every((c) => c.viewVersion === 2)).toBe(true);

      // Restarted, it reaches the swap again (the live group moved on: the build's target did too),
      // writes the alias, and is killed right after it.
      const afterSwap = spawn(env(2, 'after-swap'));
      await pausedAt(afterSwap, 'after-swap');
      const swapped = await registry();
      expect(swapped?.live).toBe(2);
      expect(swapped?.swappedAt).toEqual(expect.any(String));
      await liveCatchesUp(afterSwap);
      afterSwap.child.kill('SIGKILL');
      expect((await afterSwap.exited).signal).toBe('SIGKILL');
      // Every partition was handed over to live folding before the swap.
      expect(Object.keys(swapped?.versions['2']?.handedOver ?? {}).sort()).toEqual(['0', '1', '2']);

      // Without a pause: version 2 is live, so no build and no second alias write; live folding goes on.
      const last = spawn(env(2));
      await last.running;
      await liveCatchesUp(last);
      producing = false;
      await rounds;
      await liveCatchesUp(last);
      expect(last.lines.some((line) => line.includes('"msg":"view build starting"') || line.includes('"msg":"test_pause"'))).toBe(false);
      const end = await registry();
      expect(end?.live).toBe(2);
      expect(end?.swappedAt).toBe(swapped?.swappedAt);
      expect(events.length).toBeGreaterThan(HISTORY + 3 * 15);

      expect(await items('totals@2')).toEqual(finalStates(events, 2));
      // Version 1 stopped at the history (frozen during the build; removed only a minute after the swap).
      expect(await items('totals')).toEqual(v1Items);

      // The trigger: every change of version 2 was delivered before its batch's checkpoint.
      const changes = checkLiveChanges(received, events, swapped?.versions['2']?.handedOver ?? {}, PARTITIONS, await highWatermarks(kafka, topic));
      console.log(
        `[lifecycle-swap-crash] ${events.length} records (${events.length - HISTORY} during the build), ${changes.distinct} changes over ${changes.keys} keys, ${changes.sentAgain} sent again after a kill`,
      );

      last.child.kill('SIGTERM');
      expect((await last.exited).code).toBe(0);
    } finally {
      producing = false;
      await rounds.catch(() => {});
      await producer.disconnect();
      dynamodb.destroy();
    }
  }, 240_000);
});
