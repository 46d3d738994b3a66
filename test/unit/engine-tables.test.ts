/**
 * Tables (`defineTable`: a topic read as a changelog) and views that aggregate them (adder
 * `reduce`, subtractor `subtract`), through the in-memory driver. The expected groups are
 * computed in the test from the latest value per row key, never from the engine's output; a
 * crash between the group writes and the row write, and a full replay, change nothing.
 */
import { describe, expect, it } from 'vitest';
import { createTestDriver } from '../../engine/index.ts';
import { count, DefinitionError, DELETE, defineApp, defineTable, defineTrigger, defineView } from '../../sdk/index.ts';

type Member = { name: string; tier: 'gold' | 'silver' | 'bronze'; visits: number };
type TierStats = { members: number; visits: number };

const members = defineTable<Member>({ name: 'members', source: 'member-changes' });
const tiers = defineView({
  name: 'tiers',
  source: members,
  key: (m) => m.tier,
  initial: (): TierStats => ({ members: 0, visits: 0 }),
  reduce: (s, m) => ({ members: count(s.members, 1), visits: s.visits + m.visits }),
  // The undo of reduce; an empty tier disappears.
  subtract: (s, m) => (s.members === 1 ? DELETE : { members: count(s.members, -1), visits: s.visits - m.visits }),
});
const tierChanged = defineTrigger({ view: tiers, function: 'report', name: 'tierChanged' });
const app = defineApp({ name: 'gym', views: [members, tiers], triggers: [tierChanged] });

type Op = [key: string, row: Member | null];
const row = (key: string, tier: Member['tier'], visits: number, name = key): Op => [key, { name, tier, visits }];
const send = (ops: readonly Op[]) => ops.map(([key, value]) => ({ key, value }));

/** The reference: the latest value per key (null deletes), then grouped by tier. */
function expectedTiers(ops: readonly Op[]): Map<string, TierStats> {
  const latest = new Map<string, Member>();
  for (const [key, value] of ops) {
    if (value === null) latest.delete(key);
    else latest.set(key, value);
  }
  const groups = new Map<string, TierStats>();
  for (const m of latest.values()) {
    const g = groups.get(m.tier) ?? { members: 0, visits: 0 };
    groups.set(m.tier, { members: g.members + 1, visits: g.visits + m.visits });
  }
  return groups;
}

function readTiers(driver: ReturnType<typeof createTestDriver>): Map<string, TierStats> {
  const out = new Map<string, TierStats>();
  for (const tier of ['gold', 'silver', 'bronze']) {
    const state = driver.state<TierStats>('tiers', tier);
    if (state !== undefined) out.set(tier, state);
  }
  return out;
}

const OPS: Op[] = [
  row('m1', 'gold', 3),
  row('m2', 'gold', 5),
  row('m3', 'bronze', 1),
  row('m1', 'silver', 4), // moves gold -> silver
  ['m2', null], // deleted: gold empties
  row('m3', 'bronze', 2, 'M3'), // stays in its group, new value
  row('m4', 'silver', 7),
  ['m4', null],
  ['m9', null], // delete of a row that never existed
];

describe('tables', () => {
  it('stores the latest value per key, deletes on a tombstone, and aggregates with adder and subtractor', async () => {
    const driver = createTestDriver(app);
    // Row by row, each its own batch, then the same ops in one batch on a fresh driver.
    for (const op of OPS) await driver.send('member-changes', send([op]));
    expect(readTiers(driver)).toEqual(expectedTiers(OPS));
    expect(driver.state('members', 'm1')).toEqual({ name: 'm1', tier: 'silver', visits: 4 });
    expect(driver.state('members', 'm2')).toBeUndefined();
    expect(driver.deadLetters).toEqual([]);

    const oneBatch = createTestDriver(app);
    await oneBatch.send('member-changes', send(OPS));
    expect(readTiers(oneBatch)).toEqual(expectedTiers(OPS));

    // The gold tier's changes: created, grown, shrunk, deleted (after undefined).
    const gold = driver.changes.filter((c) => c.change.key === 'gold').map((c) => [c.change.before, c.change.after]);
    expect(gold).toEqual([
      [undefined, { members: 1, visits: 3 }],
      [{ members: 1, visits: 3 }, { members: 2, visits: 8 }],
      [{ members: 2, visits: 8 }, { members: 1, visits: 5 }],
      [{ members: 1, visits: 5 }, undefined],
    ]);
  });

  it('reads and folds an aggregation of version 2 in its own segment (tiers@2), row by row across restarts and in one batch', async () => {
    const tiers2 = defineView({
      name: 'tiers',
      source: members,
      version: 2,
      key: (m) => m.tier,
      initial: (): TierStats => ({ members: 0, visits: 0 }),
      reduce: (s, m) => ({ members: count(s.members, 1), visits: s.visits + m.visits }),
      subtract: (s, m) => (s.members === 1 ? DELETE : { members: count(s.members, -1), visits: s.visits - m.visits }),
    });
    expect(tiers2.version).toBe(2);
    for (const batches of [OPS.map((op) => [op]), [OPS]]) {
      const driver = createTestDriver(defineApp({ name: 'gym', views: [members, tiers2] }));
      for (const batch of batches) {
        const results = await driver.send('member-changes', send(batch));
        // The group items are read from their own segment: no write is refused for a stale read.
        expect(results.reduce((sum, r) => sum + r.conflicts, 0)).toBe(0);
        // A restart empties the state cache: the next batch reads the group items from the table.
        driver.restart();
      }
      const read = new Map<string, TierStats>();
      for (const tier of ['gold', 'silver', 'bronze']) {
        const state = driver.state<TierStats>('tiers@2', tier);
        if (state !== undefined) read.set(tier, state);
        // Nothing under version 1's segment.
        expect(driver.state('tiers', tier)).toBeUndefined();
      }
      expect(read).toEqual(expectedTiers(OPS));
      expect(driver.deadLetters).toEqual([]);
    }
  });

  it('applies each row change once when the engine crashes between the group writes and the row write, and on a full replay', async () => {
    const driver = createTestDriver(app);
    await driver.send('member-changes', send(OPS.slice(0, 3)));
    // The next batch dies at its first row write: the group items are already written.
    let crashed = false;
    driver.store.beforePut = (item) => {
      if (!crashed && item.view === 'members') {
        crashed = true;
        throw new Error('process killed');
      }
    };
    await expect(driver.send('member-changes', send(OPS.slice(3)))).rejects.toThrow('process killed');
    expect(driver.state('tiers', 'silver')).toEqual({ members: 1, visits: 4 }); // the group moved, the row not yet
    expect(driver.state('members', 'm1')).toEqual({ name: 'm1', tier: 'gold', visits: 3 });
    driver.store.beforePut = undefined;
    driver.restart();
    await driver.redeliver('member-changes', 0, 3);
    expect(readTiers(driver)).toEqual(expectedTiers(OPS));
    expect(driver.state('members', 'm1')).toEqual({ name: 'm1', tier: 'silver', visits: 4 });

    const changes = driver.changes.length;
    driver.restart();
    await driver.redeliver('member-changes', 0, 0);
    expect(readTiers(driver)).toEqual(expectedTiers(OPS));
    expect(driver.changes.length).toBe(changes);
  });

  it('keeps rows of records without a key out (KEY_MISSING), and refuses an aggregation of a table not in the app', async () => {
    const driver = createTestDriver(app);
    await driver.send('member-changes', [{ value: { name: 'x', tier: 'gold', visits: 1 } }]);
    expect(driver.deadLetters.map((d) => d.code)).toEqual(['KEY_MISSING']);
    expect(readTiers(driver)).toEqual(new Map());
    expect(() => defineApp({ name: 'gym2', views: [tiers] })).toThrow(/aggregates table "members", which is not in the app's views/);
    expect(() => defineView({ ...{ name: 'bad', key: (m: Member) => m.tier, initial: () => 0, reduce: (s: number) => s }, source: members } as never)).toThrow(
      DefinitionError,
    );
  });
});
