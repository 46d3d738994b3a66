import { describe, expect, it } from 'vitest';
import { createTestDriver } from '../../engine/index.ts';
import { defineApp, defineTrigger, defineView } from '../../sdk/index.ts';

type Booking = { classId: string; member: string; type: 'booked' | 'cancelled' };

const attendance = defineView({
  name: 'attendance',
  source: 'bookings',
  key: (e: Booking) => e.classId,
  initial: () => ({ booked: 0 }),
  reduce: (s, e) => ({ booked: s.booked + (e.type === 'booked' ? 1 : -1) }),
});
// Keyed differently from the class: items of this view collect events of every partition.
const perMember = defineView({
  name: 'perMember',
  source: 'bookings',
  key: (e: Booking) => e.member,
  initial: () => 0,
  reduce: (s: number) => s + 1,
});
const full = defineTrigger({
  view: attendance,
  function: 'notifyInstructor',
  when: ({ before, after }) => (before?.booked ?? 0) < 3 && after.booked >= 3,
  changes: 'coalesced',
});
// These tests are about batches: one change per item and batch ('every' has its own file).
const every = defineTrigger({ view: attendance, function: 'audit', changes: 'coalesced' });
const app = defineApp({ name: 'gym', views: [attendance, perMember], triggers: [full, every] });

const booked = (classId: string, member: string, partition = 0) => ({
  partition,
  value: { classId, member, type: 'booked' },
});

describe('createTestDriver', () => {
  it('folds records into view state with one write per changed item per batch', async () => {
    const driver = createTestDriver(app);
    const [result] = await driver.send('bookings', [booked('yoga', 'ann'), booked('yoga', 'bob'), booked('spin', 'ann')]);
    expect(driver.state('attendance', 'yoga')).toEqual({ booked: 2 });
    expect(driver.state('attendance', 'spin')).toEqual({ booked: 1 });
    expect(driver.state('perMember', 'ann')).toBe(2);
    expect(result).toMatchObject({ records: 3, applied: 6, writes: 4, nextOffset: '3' });
    expect(driver.checkpoint('bookings', 0)).toBe('3');
    // One version per applied event: two events, version 2.
    expect(driver.item('attendance', 'yoga')).toMatchObject({ version: 2, offsets: { 'bookings/0': '1' } });
  });

  it('commits the consumer offset only after the checkpoint, through the production commit pipeline', async () => {
    const driver = createTestDriver(app);
    await driver.send('bookings', [booked('yoga', 'ann', 0), booked('spin', 'bob', 1), booked('yoga', 'cy', 0)]);
    expect([driver.checkpoint('bookings', 0), driver.committed('bookings', 0)]).toEqual(['2', '2']);
    expect([driver.checkpoint('bookings', 1), driver.committed('bookings', 1)]).toEqual(['1', '1']);
    // A checkpoint that cannot be written fails the batch, and nothing is committed past it.
    driver.store.beforeCheckpoint = () => {
      throw new Error('checkpoint write refused');
    };
    await expect(driver.send('bookings', [booked('yoga', 'dee', 0)])).rejects.toThrow('checkpoint write refused');
    expect([driver.checkpoint('bookings', 0), driver.committed('bookings', 0)]).toEqual(['2', '2']);
    // The view item was written (durable before the checkpoint); a redelivery is fenced.
    driver.store.beforeCheckpoint = undefined;
    driver.restart();
    await driver.redeliver('bookings', 0, 2);
    expect(driver.state('attendance', 'yoga')).toEqual({ booked: 3 });
    expect([driver.checkpoint('bookings', 0), driver.committed('bookings', 0)]).toEqual(['3', '3']);
  });

  it('is exactly-once under redelivery and restarts (the fence)', async () => {
    const driver = createTestDriver(app);
    await driver.send('bookings', [booked('yoga', 'ann'), booked('yoga', 'bob', 1)]);
    await driver.send('bookings', [booked('yoga', 'cid'), booked('yoga', 'dan', 1)]);
    const again = await driver.redeliver('bookings', 0, 0);
    expect(again.skipped).toBe(4);
    expect(again.writes).toBe(0);
    driver.restart();
    await driver.redeliver('bookings', 1, 0);
    expect(driver.state('attendance', 'yoga')).toEqual({ booked: 4 });
    expect(driver.state('perMember', 'ann')).toBe(1);
  });

  it('re-reads and re-folds when another writer wins the conditional write', async () => {
    const driver = createTestDriver(app);
    await driver.send('bookings', [booked('yoga', 'ann')]);
    let interfered = false;
    driver.store.beforePut = (item) => {
      // A competing engine task applies partition 1's event to the same item first.
      if (interfered || item.view !== 'attendance') return;
      interfered = true;
      const id = `${item.pk}\n${item.sk}`;
      const stored = driver.store.items.get(id)!;
      driver.store.items.set(id, {
        ...stored,
        state: { booked: (stored.state as { booked: number }).booked + 1 },
        version: stored.version + 1,
        offsets: { ...stored.offsets, 'bookings/1': '0' },
      });
    };
    const [result] = await driver.send('bookings', [booked('yoga', 'bob')]);
    expect(result!.conflicts).toBe(1);
    expect(driver.state('attendance', 'yoga')).toEqual({ booked: 3 });
    expect(driver.item('attendance', 'yoga')?.offsets).toEqual({ 'bookings/0': '1', 'bookings/1': '0' });
  });

  it('delivers coalesced changes per trigger, filtered by when(), and clears the bookkeeping', async () => {
    const driver = createTestDriver(app);
    await driver.send('bookings', [booked('yoga', 'a'), booked('yoga', 'b')]);
    await driver.send('bookings', [booked('yoga', 'c'), booked('yoga', 'd')]);
    const audit = driver.changes.filter((c) => c.trigger === every.name).map((c) => c.change);
    expect(audit.map((c) => [c.before, c.after, c.version])).toEqual([
      [undefined, { booked: 2 }, 2],
      [{ booked: 2 }, { booked: 4 }, 4],
    ]);
    const notify = driver.changes.filter((c) => c.trigger === full.name);
    expect(notify).toHaveLength(1);
    expect(notify[0]!.change.after).toEqual({ booked: 4 });
    // The bookkeeping is settled by the checkpoints, without a write of its own: a restarted
    // engine re-reading every batch delivers nothing again.
    driver.restart();
    const delivered = driver.changes.length;
    await driver.redeliver('bookings', 0, 0);
    expect(driver.changes).toHaveLength(delivered);
  });

  it('redelivers changes left pending by a crash before delivery', async () => {
    const driver = createTestDriver(app);
    await driver.send('bookings', [booked('yoga', 'a')]);
    // Simulate a crash after the write and before delivery: put the bookkeeping back, and the
    // checkpoint, which the batch writes only after its deliveries, where it was before.
    const id = 'v#attendance#yoga\n_';
    const stored = driver.store.items.get(id)!;
    driver.store.items.set(id, { ...stored, pending: { [every.name]: 0 }, befores: {} });
    driver.store.checkpoints.delete('checkpoint#bookings#0');
    driver.restart();
    const before = driver.changes.length;
    await driver.redeliver('bookings', 0, 0);
    const redelivered = driver.changes.slice(before);
    expect(redelivered.map((c) => [c.trigger, c.change.version, c.change.before])).toEqual([[every.name, 1, undefined]]);
    // Delivered once more, then settled: another restart does not deliver it a third time.
    driver.restart();
    await driver.redeliver('bookings', 0, 0);
    expect(driver.changes).toHaveLength(before + 1);
  });

  it('dead-letters failed deliveries and poison records and keeps going', async () => {
    const driver = createTestDriver(app, { failDelivery: (t) => t.name === every.name });
    await driver.send('bookings', [booked('yoga', 'a'), { value: 'not json' }, { value: { member: 'x' } }, booked('yoga', 'b')]);
    expect(driver.state('attendance', 'yoga')).toEqual({ booked: 2 });
    expect(driver.deadLetters.map((d) => d.code).sort()).toEqual([
      'DECODE_FAILED',
      'DECODE_FAILED',
      'KEY_MISSING',
      'TRIGGER_DELIVERY_FAILED',
    ]);
  });

  it("stops on poison for a view with onPoison: 'stop'", async () => {
    const strict = defineView({
      name: 'strict',
      source: 'bookings',
      key: (e: Booking) => e.classId,
      initial: () => 0,
      reduce: (s: number) => s + 1,
      onPoison: 'stop',
    });
    const driver = createTestDriver(defineApp({ name: 'strict', views: [strict] }));
    await expect(driver.send('bookings', [{ value: '{oops' }])).rejects.toMatchObject({
      code: 'POISON_RECORD',
      context: { view: 'strict', topic: 'bookings', partition: 0, offset: '0' },
    });
  });

  it('equals a reference fold for random events across partitions, with redeliveries and a small cache', async () => {
    const driver = createTestDriver(app, { cacheMaxEntries: 5 });
    const expected = new Map<string, number>();
    const perMemberExpected = new Map<string, number>();
    let seed = 7;
    const random = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
    for (let round = 0; round < 20; round += 1) {
      const batch = Array.from({ length: 50 }, () => {
        const classId = `c${Math.floor(random() * 30)}`;
        const member = `m${Math.floor(random() * 40)}`;
        const type = random() < 0.7 ? 'booked' : 'cancelled';
        expected.set(classId, (expected.get(classId) ?? 0) + (type === 'booked' ? 1 : -1));
        perMemberExpected.set(member, (perMemberExpected.get(member) ?? 0) + 1);
        return { partition: Math.floor(random() * 3), value: { classId, member, type } };
      });
      await driver.send('bookings', batch);
      if (round % 5 === 4) await driver.redeliver('bookings', round % 3, 0);
    }
    for (const [classId, count] of expected) expect(driver.state('attendance', classId)).toEqual({ booked: count });
    for (const [member, count] of perMemberExpected) expect(driver.state('perMember', member)).toBe(count);
  });
});
