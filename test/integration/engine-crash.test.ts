/**
 * Invariants 1 and 2 (docs/architecture.md) under crashes: engine processes (engine/main.ts,
 * spawned like the container) are SIGKILLed at random points while events flow, restarted each
 * time, and the final state still equals the reference exactly — with one process, and with two
 * processes of one consumer group killed alternately (items written from several partitions and
 * processes).
 */
import { afterEach, describe, expect, it } from 'vitest';
import { createTable, createTopic, stack, uniqueName } from './helpers.ts';
import {
  connectProducer,
  fixtureEvents,
  highWatermarks,
  produceEvents,
  readView,
  ReferenceFold,
  seededRandom,
  spawnEngine,
  testKafka,
  testStorage,
  waitForCheckpoints,
  type EngineProcess,
} from './fixtures/engine-support.ts';

const PARTITIONS = 3;
const KEYS = 100;
const CHUNK = 2_000;
/** Events before the first engine starts; one more chunk follows every kill. */
const INITIAL_EVENTS = 8_000;
const KILLS = 5;
const APP_MODULE = 'test/integration/fixtures/engine-reference-app.ts';

/** The kill point: a random moment after the engine reported running (not a wait for a condition). */
function randomPause(random: () => number, minMs: number, maxMs: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, minMs + Math.floor(random() * (maxMs - minMs))));
}

/** Waits for the engine's "engine running" line, failing with its output after a deadline. */
async function untilRunning(engine: EngineProcess, timeoutMs = 60_000): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new Error(`engine not running after ${timeoutMs} ms; output:\n${engine.lines.slice(-20).join('\n')}`)),
      timeoutMs,
    );
  });
  const died = engine.exited.then(({ code, signal }) => {
    throw new Error(`engine exited (${code ?? signal}) before running; output:\n${engine.lines.slice(-20).join('\n')}`);
  });
  try {
    await Promise.race([engine.running, deadline, died]);
  } finally {
    clearTimeout(timer);
  }
}

async function kill(engine: EngineProcess): Promise<void> {
  engine.child.kill('SIGKILL');
  const { signal } = await engine.exited;
  expect(signal).toBe('SIGKILL');
}

async function terminate(engine: EngineProcess): Promise<number | null> {
  engine.child.kill('SIGTERM');
  return (await engine.exited).code;
}

describe('engine crash safety', () => {
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

  async function scenario(seed: number, processes: 1 | 2): Promise<void> {
    const topic = uniqueName('engine-crash');
    const table = uniqueName('engine-crash');
    const env = {
      TRIBUTARY_TABLE: table,
      TRIBUTARY_APP_MODULE: APP_MODULE,
      TRIBUTARY_GROUP_ID: uniqueName('crash-group'),
      TRIBUTARY_SESSION_TIMEOUT_MS: '4000',
      TRIBUTARY_HEARTBEAT_INTERVAL_MS: '500',
      // Small fetches: many batches and commits, so kills land before, during and after commits.
      TRIBUTARY_MAX_BYTES_PER_PARTITION: String(48 * 1024),
      ENGINE_FIXTURE_TOPIC: topic,
      ENGINE_FIXTURE_APP: uniqueName('crash'),
    };
    await Promise.all([createTable(table), createTopic(stack().kafkaBrokers, topic, PARTITIONS)]);
    const kafka = testKafka('engine-crash-test');
    const producer = await connectProducer(kafka);
    const random = seededRandom(seed);
    const reference = new ReferenceFold();
    let seq = 0;
    const produce = async (count: number) => {
      const events = fixtureEvents(count, KEYS, random, seq);
      seq += count;
      reference.add(events);
      await produceEvents(producer, topic, events, CHUNK);
    };
    const spawnOne = () => {
      const engine = spawnEngine(env);
      live.push(engine);
      return engine;
    };
    try {
      await produce(INITIAL_EVENTS);
      const engines: EngineProcess[] = [];
      for (let i = 0; i < processes; i += 1) engines.push(spawnOne());
      let kills = 0;
      for (let round = 0; round < KILLS; round += 1) {
        const index = round % processes;
        await untilRunning(engines[index]!);
        // Alternate early kills (often mid-batch) and late ones (after some commits).
        await (round % 2 === 0 ? randomPause(random, 300, 1_500) : randomPause(random, 2_500, 5_000));
        await kill(engines[index]!);
        kills += 1;
        await produce(CHUNK);
        engines[index] = spawnOne();
      }
      expect(kills).toBe(KILLS);

      const storage = testStorage(table);
      await waitForCheckpoints(storage, topic, await highWatermarks(kafka, topic), 120_000);
      const totals = await readView(storage, 'totals');
      expect(totals.size).toBe(reference.totals.size);
      for (const [key, expected] of reference.totals) expect(totals.get(key), `totals ${key}`).toEqual(expected);
      expect(Object.fromEntries(await readView(storage, 'buckets'))).toEqual(Object.fromEntries(reference.buckets));
      // Graceful shutdown: SIGTERM ends the process cleanly.
      for (const engine of engines) expect(await terminate(engine)).toBe(0);
      // How much re-read work the kills caused (records re-consumed, events the fence skipped).
      const finalStats = engines.map((engine) => {
        const line = engine.lines.find((l) => l.includes('"msg":"engine stopped"'));
        return line === undefined ? undefined : JSON.parse(line).stats;
      });
      console.info(
        `[engine-crash] ${processes} process(es), ${kills} kills, ${seq} events; final tasks: ${JSON.stringify(
          finalStats.map((s) => s && { consumed: s.recordsConsumed, skipped: s.eventsSkipped, conflicts: s.conflicts }),
        )}`,
      );
    } finally {
      await producer.disconnect();
    }
  }

  it('keeps state exact when one engine process is SIGKILLed repeatedly', async () => {
    await scenario(1101, 1);
  }, 180_000);

  it('keeps state exact when two engine processes of one group are SIGKILLed alternately', async () => {
    await scenario(2202, 2);
  }, 180_000);
});
