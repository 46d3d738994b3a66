/**
 * Final results of closed windows across crashes: the engine process is SIGKILLed four times
 * while final results are being delivered, restarted each time; every closed window's final
 * result still reaches the function at least once, with the complete state (so never early),
 * the item's last version and one idempotency key, and nothing else does.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { startLambdaEndpoint, type LambdaEndpoint } from '../../local/index.ts';
import { waitFor } from './helpers.ts';
import { highWatermarks, seededRandom, testStorage, waitForCheckpoints, type EngineProcess } from './fixtures/engine-support.ts';
import { disorderedEvents, expectFinals, flushEvents, readWindows, referenceWindows, setUp, type Produced } from './fixtures/windows-support.ts';

const KILLS = 4;

describe('final results across SIGKILLs', () => {
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

  it('delivers every final result at least once, complete and never early, across SIGKILLs while windows close', async () => {
    const { topic, table, received, produce, spawn, kafka, producer } = await setUp(endpoint, live, 'windows-crash', {
      // Small fetches: many batches and checkpoints, so kills land between and during them.
      TRIBUTARY_MAX_BYTES_PER_PARTITION: String(64 * 1024),
    });
    const random = seededRandom(777);
    const produced: Produced[] = [];
    const wave = async (count: number) => {
      const events = disorderedEvents(random, count, produced.length);
      produced.push(...events);
      await produce(events);
    };
    let engine = spawn();
    let kills = 0;
    try {
      await wave(4_000);
      for (let round = 0; round < KILLS; round++) {
        await engine.running;
        // Kill once final results are flowing: some delivered, more due.
        const before = received.length;
        await waitFor(() => received.length > before, { timeoutMs: 60_000, message: 'final results flowing before a kill' });
        await new Promise((resolve) => setTimeout(resolve, Math.floor(random() * 400)));
        engine.child.kill('SIGKILL');
        expect((await engine.exited).signal).toBe('SIGKILL');
        kills += 1;
        await wave(3_000);
        engine = spawn();
      }
      const flush = flushEvents(produced.length);
      produced.push(...flush);
      await produce(flush);
    } finally {
      await producer.disconnect();
    }
    expect(kills).toBe(KILLS);
    await waitForCheckpoints(testStorage(table), topic, await highWatermarks(kafka, topic), 120_000);
    const reference = referenceWindows(produced);
    expect(Object.fromEntries([...(await readWindows(table, 'perSecond'))].map(([id, i]) => [id, i.state]))).toEqual(Object.fromEntries(reference.tumbling));
    const expectedFinals = new Map([...reference.tumbling].filter(([id]) => !id.startsWith('flush')));
    await waitFor(() => new Set(received.map((c) => `${c.key}@${c.window!.start}`)).size >= expectedFinals.size, {
      timeoutMs: 60_000,
      message: `${expectedFinals.size} final results`,
    });
    const { windows, deliveries } = await expectFinals(table, received, expectedFinals);
    console.info(`[windows-crash] ${produced.length} events, ${kills} kills; ${windows} final windows, ${deliveries} deliveries (${deliveries - windows} redelivered)`);
  }, 180_000);
});
