/**
 * An enrichment lookup on the real stack while the looked-up table changes, under SIGKILLs:
 * bookings keyed by member record the member row's version their lookup saw, while the rows'
 * versions rise and engine processes (engine/main.ts on fixtures/lookups-app.ts) are killed
 * and restarted. Checked against the produced records alone: every booking applied exactly once,
 * in partition order; per member the versions seen never go back (a fold reads the table as it
 * is then, and the table only moves forward); none is above the highest version produced; and
 * bookings produced once the table is settled see its final row.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { createTable, createTopic, stack, uniqueName } from './helpers.ts';
import {
  connectProducer,
  highWatermarks,
  readView,
  seededRandom,
  spawnEngine,
  testKafka,
  testStorage,
  waitForCheckpoints,
  type EngineProcess,
} from './fixtures/engine-support.ts';
import type { MemberLog } from './fixtures/lookups-app.ts';

const MEMBERS = 20;
const ROUNDS = 6;
const KILLS = 2;

describe('an enrichment lookup under SIGKILL', () => {
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

  it('applies every booking once with a row version that never goes back, and the final row once settled', async () => {
    const membersTopic = uniqueName('lookups-members');
    const bookingsTopic = uniqueName('lookups-bookings');
    const table = uniqueName('lookups');
    const appName = uniqueName('lookups');
    await Promise.all([
      createTable(table),
      createTopic(stack().kafkaBrokers, membersTopic, 2),
      createTopic(stack().kafkaBrokers, bookingsTopic, 3),
      createTopic(stack().kafkaBrokers, `${appName}.dead-letter`, 1),
    ]);
    const env = {
      TRIBUTARY_TABLE: table,
      TRIBUTARY_APP_MODULE: 'test/integration/fixtures/lookups-app.ts',
      TRIBUTARY_GROUP_ID: uniqueName('lookups-group'),
      TRIBUTARY_SESSION_TIMEOUT_MS: '4000',
      TRIBUTARY_HEARTBEAT_INTERVAL_MS: '500',
      TRIBUTARY_MAX_BYTES_PER_PARTITION: String(8 * 1024),
      LOOKUPS_MEMBERS_TOPIC: membersTopic,
      LOOKUPS_BOOKINGS_TOPIC: bookingsTopic,
      LOOKUPS_APP: appName,
    };
    const kafka = testKafka('lookups-crash-test');
    const producer = await connectProducer(kafka);
    const random = seededRandom(77);
    const produced = new Map<string, number[]>(); // member -> booking seqs in production order
    let seq = 0;
    let version = 0;
    const bookings = async (count: number) => {
      const messages = [];
      for (let i = 0; i < count; i += 1) {
        const memberId = `m${Math.floor(random() * MEMBERS)}`;
        produced.set(memberId, [...(produced.get(memberId) ?? []), seq]);
        messages.push({ key: memberId, value: JSON.stringify({ memberId, seq }) });
        seq += 1;
      }
      await producer.send({ topic: bookingsTopic, acks: -1, messages });
    };
    const bumpRows = async () => {
      version += 1;
      await producer.send({
        topic: membersTopic,
        acks: -1,
        messages: Array.from({ length: MEMBERS }, (_, i) => ({ key: `m${i}`, value: JSON.stringify({ version }) })),
      });
    };
    const spawnOne = () => {
      const engine = spawnEngine(env);
      live.push(engine);
      return engine;
    };
    try {
      let engine = spawnOne();
      let kills = 0;
      for (let round = 0; round < ROUNDS; round += 1) {
        await bumpRows();
        await bookings(300);
        if (kills < KILLS && round % 2 === 1) {
          await engine.running;
          await new Promise((resolve) => setTimeout(resolve, 300 + Math.floor(random() * 900)));
          engine.child.kill('SIGKILL');
          expect((await engine.exited).signal).toBe('SIGKILL');
          kills += 1;
          engine = spawnOne();
        }
      }
      expect(kills).toBe(KILLS);
      const storage = testStorage(table);
      await waitForCheckpoints(storage, membersTopic, await highWatermarks(kafka, membersTopic), 120_000);
      // The table is settled: these bookings must see the final row.
      const settledFrom = seq;
      await bookings(60);
      await waitForCheckpoints(storage, bookingsTopic, await highWatermarks(kafka, bookingsTopic), 120_000);

      const logs = await readView(storage, 'memberLog');
      expect([...logs.keys()].sort()).toEqual([...produced.keys()].sort());
      for (const [memberId, seqs] of produced) {
        const { seen } = logs.get(memberId) as MemberLog;
        expect(seen.map(([s]) => s), `bookings of ${memberId}, once each, in order`).toEqual(seqs);
        const versions = seen.map(([, v]) => v);
        for (let i = 1; i < versions.length; i += 1) expect(versions[i]!, `${memberId} at ${i}`).toBeGreaterThanOrEqual(versions[i - 1]!);
        expect(Math.max(...versions)).toBeLessThanOrEqual(version);
        for (const [s, v] of seen) if (s >= settledFrom) expect(v, `booking ${s} after the table settled`).toBe(version);
      }
    } finally {
      await producer.disconnect();
    }
  }, 150_000);
});
