/**
 * Ctrl-C drains: a terminal sends SIGINT to the whole process group, so an engine run through
 * `tsx` (or `npm run engine`) receives it directly and again relayed by its parent. One Ctrl-C
 * in the middle of a backlog must still end in a graceful stop: exit 0, every batch it made
 * durable committed, and after a restart the views equal the reference (nothing lost, nothing
 * applied twice).
 */
import { afterEach, describe, expect, it } from 'vitest';
import { GetItemCommand } from 'dynamodb-toolbox';
import { checkpointKey } from '../../sdk/contract/index.ts';
import { createTable, createTopic, stack, uniqueName, waitFor } from './helpers.ts';
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
/** Enough backlog that many small batches are still ahead when the signal arrives. */
const BACKLOG_EVENTS = 30_000;
const APP_MODULE = 'test/integration/fixtures/engine-reference-app.ts';

/**
 * How the engine is started locally, and how the one Ctrl-C reaches it: through npm, which
 * relays it to the engine a second time within a millisecond or so; and alone, with the relayed
 * copy arriving later, as it does from a parent such as tsx's CLI (30 ms and more) or from any
 * parent on a loaded machine.
 */
const LAUNCHERS: ReadonlyArray<{ name: string; command: readonly string[]; relayAfterMs?: number }> = [
  { name: 'npm run engine', command: ['npm', 'run', '--silent', 'engine'] },
  {
    name: 'node --import tsx engine/main.ts, relayed again 50 ms later',
    command: [process.execPath, '--import', 'tsx', 'engine/main.ts'],
    relayAfterMs: 50,
  },
];

describe('engine stop on Ctrl-C', () => {
  const live: EngineProcess[] = [];
  afterEach(async () => {
    await Promise.all(
      live.map(async (e) => {
        if (e.child.exitCode === null && e.child.signalCode === null) {
          // The whole group when it has one (the launcher and the engine under it).
          try {
            process.kill(-e.child.pid!, 'SIGKILL');
          } catch {
            e.child.kill('SIGKILL');
          }
          await e.exited;
        }
      }),
    );
    live.length = 0;
  });

  it.each(LAUNCHERS)('drains and exits 0 on one Ctrl-C (SIGINT to the process group) under `$name`', async ({ command, relayAfterMs }) => {
    const topic = uniqueName('engine-sigint');
    const table = uniqueName('engine-sigint');
    const groupId = uniqueName('sigint-group');
    const env = {
      TRIBUTARY_TABLE: table,
      TRIBUTARY_APP_MODULE: APP_MODULE,
      TRIBUTARY_GROUP_ID: groupId,
      TRIBUTARY_SESSION_TIMEOUT_MS: '6000',
      TRIBUTARY_HEARTBEAT_INTERVAL_MS: '500',
      // Small fetches: many batches, so the signal lands while one is in flight.
      TRIBUTARY_MAX_BYTES_PER_PARTITION: String(32 * 1024),
      ENGINE_FIXTURE_TOPIC: topic,
      ENGINE_FIXTURE_APP: uniqueName('sigint'),
    };
    await Promise.all([createTable(table), createTopic(stack().kafkaBrokers, topic, PARTITIONS)]);
    const kafka = testKafka('engine-sigint-test');
    const producer = await connectProducer(kafka);
    const reference = new ReferenceFold();
    const events = fixtureEvents(BACKLOG_EVENTS, KEYS, seededRandom(909));
    reference.add(events);
    try {
      await produceEvents(producer, topic, events);
    } finally {
      await producer.disconnect();
    }
    const watermarks = await highWatermarks(kafka, topic);
    const storage = testStorage(table);
    const checkpointOf = async (partition: number): Promise<bigint | undefined> => {
      const { Item } = await storage.checkpoints.build(GetItemCommand).key(checkpointKey(topic, partition)).send();
      return Item === undefined ? undefined : BigInt(Item.offset);
    };

    const engine = spawnEngine(env, { command, detached: true });
    live.push(engine);
    // The first durable batch: the engine is mid-backlog from here on.
    await waitFor(async () => (await checkpointOf(0)) !== undefined || (await checkpointOf(1)) !== undefined, {
      timeoutMs: 90_000,
      intervalMs: 50,
      message: `a first checkpoint of "${topic}"; engine output:\n${engine.lines.slice(-20).join('\n')}`,
    });
    process.kill(-engine.child.pid!, 'SIGINT');
    if (relayAfterMs !== undefined) {
      // The relayed copy of the same Ctrl-C; the timing is the scenario, not a wait for a condition.
      await new Promise((resolve) => setTimeout(resolve, relayAfterMs));
      const { exitCode, signalCode } = engine.child;
      expect({ exitCode, signalCode }, 'the engine was still draining when the relayed copy came').toEqual({ exitCode: null, signalCode: null });
      process.kill(engine.child.pid!, 'SIGINT');
    }

    const { code, signal } = await engine.exited;
    expect({ code, signal }, engine.lines.slice(-20).join('\n')).toEqual({ code: 0, signal: null });
    expect(engine.lines.some((l) => l.includes('"msg":"engine stopped"'))).toBe(true);

    // Drained: the group's commits are exactly where the durable checkpoints are, and the
    // stop came before the end of the backlog.
    const admin = kafka.admin();
    await admin.connect();
    const committed = await admin.fetchOffsets({ groupId, topics: [topic] }).finally(() => admin.disconnect());
    const positions = committed[0]!.partitions.map((p) => ({ partition: p.partition, committed: p.offset }));
    let behind = 0;
    for (const { partition, committed: offset } of positions) {
      const checkpoint = await checkpointOf(partition);
      expect(offset, `partition ${partition}`).toBe(checkpoint === undefined ? '-1' : String(checkpoint));
      if (BigInt(offset) < BigInt(watermarks.get(partition)!)) behind += 1;
    }
    expect(behind, `stopped mid-backlog: ${JSON.stringify(positions)} vs ${JSON.stringify([...watermarks])}`).toBeGreaterThan(0);

    // A restart finishes the backlog; the views equal the reference.
    const restarted = spawnEngine(env);
    live.push(restarted);
    await waitForCheckpoints(storage, topic, watermarks, 120_000);
    const totals = await readView(storage, 'totals');
    expect(totals.size).toBe(reference.totals.size);
    for (const [key, expected] of reference.totals) expect(totals.get(key), `totals ${key}`).toEqual(expected);
    expect(Object.fromEntries(await readView(storage, 'buckets'))).toEqual(Object.fromEntries(reference.buckets));
    restarted.child.kill('SIGTERM');
    expect((await restarted.exited).code).toBe(0);
  }, 180_000);
});
