/**
 * A table source and its aggregation on the real stack, under SIGKILLs (docs/architecture.md,
 * "Tables"): row changes over 3 partitions, keyed by member, move members between tiers and
 * delete them, while engine processes (engine/main.ts on fixtures/tables-app.ts) are killed and
 * restarted. At the end the table holds the latest value per member and every tier equals the
 * grouping of those rows, both computed here from the produced records alone; an emptied tier
 * reads as nothing. A crash between a batch's group writes and its row writes must neither lose
 * nor repeat a row's move.
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
import type { MemberRow, TierStats } from './fixtures/tables-app.ts';

const PARTITIONS = 3;
const MEMBERS = 150;
const TIERS = ['gold', 'silver', 'bronze', 'trial'];
const CHUNK = 1_500;
const KILLS = 3;

describe('a table and its aggregation under SIGKILL', () => {
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

  it('ends at the latest row per key and its grouping, rows moving between groups and deleted', async () => {
    const topic = uniqueName('tables-crash');
    const table = uniqueName('tables-crash');
    const appName = uniqueName('tables');
    await Promise.all([
      createTable(table),
      createTopic(stack().kafkaBrokers, topic, PARTITIONS),
      createTopic(stack().kafkaBrokers, `${appName}.dead-letter`, 1),
    ]);
    const env = {
      TRIBUTARY_TABLE: table,
      TRIBUTARY_APP_MODULE: 'test/integration/fixtures/tables-app.ts',
      TRIBUTARY_GROUP_ID: uniqueName('tables-group'),
      TRIBUTARY_SESSION_TIMEOUT_MS: '4000',
      TRIBUTARY_HEARTBEAT_INTERVAL_MS: '500',
      // Small fetches: many batches, so kills land between a batch's group and row writes.
      TRIBUTARY_MAX_BYTES_PER_PARTITION: String(8 * 1024),
      TABLES_FIXTURE_TOPIC: topic,
      TABLES_FIXTURE_APP: appName,
    };
    const kafka = testKafka('tables-crash-test');
    const producer = await connectProducer(kafka);
    const random = seededRandom(1414);
    const latest = new Map<string, MemberRow>();
    const produce = async (count: number, fixed: [string, MemberRow | null][] = []) => {
      const ops: [string, MemberRow | null][] = [];
      for (let i = 0; i < count; i += 1) {
        const member = `m${Math.floor(random() * MEMBERS)}`;
        ops.push([member, random() < 0.1 ? null : { tier: TIERS[Math.floor(random() * TIERS.length)]!, visits: Math.floor(random() * 50) }]);
      }
      ops.push(...fixed);
      for (const [member, row] of ops) {
        if (row === null) latest.delete(member);
        else latest.set(member, row);
      }
      await producer.send({
        topic,
        acks: -1,
        messages: ops.map(([member, row]) => ({ key: member, value: row === null ? null : JSON.stringify(row) })),
      });
    };
    const spawnOne = () => {
      const engine = spawnEngine(env);
      live.push(engine);
      return engine;
    };
    try {
      // One member moves from gold to silver and is then deleted; an own tier that empties.
      await produce(CHUNK, [['mover', { tier: 'gold', visits: 5 }], ['lonely', { tier: 'solo', visits: 1 }]]);
      let engine = spawnOne();
      for (let round = 0; round < KILLS; round += 1) {
        await engine.running;
        await new Promise((resolve) => setTimeout(resolve, 400 + Math.floor(random() * 1_200)));
        engine.child.kill('SIGKILL');
        expect((await engine.exited).signal).toBe('SIGKILL');
        const fixed: [string, MemberRow | null][] =
          round === 0 ? [['mover', { tier: 'silver', visits: 6 }]] : round === 1 ? [['mover', null], ['lonely', null]] : [];
        await produce(CHUNK, fixed);
        engine = spawnOne();
      }
      const storage = testStorage(table);
      await waitForCheckpoints(storage, topic, await highWatermarks(kafka, topic), 120_000);

      const rows = new Map([...(await readView(storage, 'members'))].filter(([, state]) => state !== undefined));
      expect(Object.fromEntries(rows)).toEqual(Object.fromEntries(latest));
      expect(latest.has('mover')).toBe(false);

      const expected = new Map<string, TierStats>();
      for (const row of latest.values()) {
        const g = expected.get(row.tier) ?? { members: 0, visits: 0 };
        expected.set(row.tier, { members: g.members + 1, visits: g.visits + row.visits });
      }
      const stored = await readView(storage, 'tiers');
      const live = new Map([...stored].filter(([, state]) => state !== undefined));
      expect(Object.fromEntries(live)).toEqual(Object.fromEntries(expected));
      // The emptied tier is a tombstone: present in the table as a fence, without state.
      expect(stored.has('solo')).toBe(true);
      expect(stored.get('solo')).toBeUndefined();
    } finally {
      await producer.disconnect();
    }
  }, 150_000);
});
