/**
 * Windowed views on the real stack (Kafka, an engine/main.ts process, DynamoDB Local, a Lambda
 * endpoint): 50k out-of-order events with bounded disorder (some beyond the grace period) fold
 * into tumbling and hopping windows exactly as the reference computed here from the events, and
 * every closed window's final result reaches the function with the complete state.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { startLambdaEndpoint, type LambdaEndpoint } from '../../local/index.ts';
import { waitFor } from './helpers.ts';
import { highWatermarks, seededRandom, testStorage, waitForCheckpoints, type EngineProcess } from './fixtures/engine-support.ts';
import { disorderedEvents, expectFinals, flushEvents, PARTITIONS, readWindows, referenceWindows, setUp } from './fixtures/windows-support.ts';

describe('windowed views against a reference', () => {
  let endpoint: LambdaEndpoint;
  const live: EngineProcess[] = [];
  beforeAll(async () => {
    endpoint = await startLambdaEndpoint();
  });
  afterEach(async () => {
    for (const e of live) if (e.child.exitCode === null && e.child.signalCode === null) e.child.kill('SIGKILL');
    await Promise.all(live.map((e) => e.exited));
    live.length = 0;
  });
  afterAll(async () => {
    await endpoint?.stop();
  });

  it('folds 50k out-of-order events into tumbling and hopping windows as the reference does, and delivers every final result', async () => {
    const { topic, table, received, produce, spawn, kafka, producer } = await setUp(endpoint, live, 'windows-ref');
    const random = seededRandom(4242);
    const events = disorderedEvents(random, 50_000, 0);
    const flush = flushEvents(events.length);
    try {
      await produce(events);
      await produce(flush);
    } finally {
      await producer.disconnect();
    }
    const reference = referenceWindows([...events, ...flush]);
    const started = Date.now();
    spawn();
    await waitForCheckpoints(testStorage(table), topic, await highWatermarks(kafka, topic), 120_000);
    const folded = Date.now() - started;
    const late = events.length - ([...reference.tumbling.values()].reduce((n, s) => n + s.count, 0) - PARTITIONS);
    expect(late, 'some events are late for their tumbling window').toBeGreaterThan(20);
    expect(Object.fromEntries([...(await readWindows(table, 'perSecond'))].map(([id, i]) => [id, i.state]))).toEqual(Object.fromEntries(reference.tumbling));
    expect(Object.fromEntries([...(await readWindows(table, 'lastThree'))].map(([id, i]) => [id, i.state]))).toEqual(Object.fromEntries(reference.hopping));
    const expectedFinals = new Map([...reference.tumbling].filter(([id]) => !id.startsWith('flush')));
    await waitFor(() => new Set(received.map((c) => `${c.key}@${c.window!.start}`)).size >= expectedFinals.size, {
      timeoutMs: 60_000,
      message: `${expectedFinals.size} final results`,
    });
    const { windows, deliveries } = await expectFinals(table, received, expectedFinals);
    console.info(`[windows-reference] 50k events folded in ${folded} ms; ${late} late; ${windows} final windows, ${deliveries} deliveries`);
  }, 180_000);
});
