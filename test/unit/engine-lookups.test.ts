/**
 * Enrichment lookups (a view's `lookup`: the row of a table, read when an event is folded)
 * through the in-memory driver: the row as the table holds it at that moment, `undefined` for a
 * missing or deleted row, a poison lookup key, and a replay that applies nothing again although
 * the table has changed since. Expected states are computed in the test from the sends.
 */
import { describe, expect, it } from 'vitest';
import { createTestDriver } from '../../engine/index.ts';
import { DEFAULT_LOOKUP_MAX_AGE_MS, defineApp, defineTable, defineView } from '../../sdk/index.ts';

type Member = { tier: string };
type Booking = { memberId: string; classId: string };
type Tiers = { seen: (string | null)[] };

const members = defineTable<Member>({ name: 'members', source: 'member-changes' });
const bookingTiersOptions = {
  name: 'bookingTiers',
  source: 'bookings',
  key: (e: Booking) => e.classId,
  lookup: { member: { table: members, key: (e: Booking) => (e.memberId === 'boom' ? Symbol('bad') as never : e.memberId) } },
  initial: (): Tiers => ({ seen: [] }),
  reduce: (s: Tiers, _e: Booking, _record: unknown, { member }: { readonly member: Member | undefined }): Tiers => ({ seen: [...s.seen, member?.tier ?? null] }),
};
const bookingTiers = defineView(bookingTiersOptions);
const app = defineApp({ name: 'gym', views: [members, bookingTiers] });

const book = (memberId: string) => ({ key: 'yoga', value: { memberId, classId: 'yoga' } });
const member = (id: string, tier: string | null) => ({ key: id, value: tier === null ? null : { tier } });

describe('enrichment lookups', () => {
  it('hands reduce the row as the table holds it when the event is folded; undefined when missing or deleted', async () => {
    const driver = createTestDriver(app);
    const expected: (string | null)[] = [];
    await driver.send('member-changes', [member('m1', 'gold')]);
    await driver.send('bookings', [book('m1'), book('m9')]);
    expected.push('gold', null);
    await driver.send('member-changes', [member('m1', 'silver')]);
    await driver.send('bookings', [book('m1')]);
    expected.push('silver');
    await driver.send('member-changes', [member('m1', null)]);
    await driver.send('bookings', [book('m1')]);
    expected.push(null);
    expect(driver.state('bookingTiers', 'yoga')).toEqual({ seen: expected });

    // A replay of every booking: the fence skips them all, the newer table changes nothing.
    await driver.send('member-changes', [member('m1', 'bronze')]);
    driver.restart();
    await driver.redeliver('bookings', 0, 0);
    expect(driver.state('bookingTiers', 'yoga')).toEqual({ seen: expected });
    // The batch reads its distinct rows once (the driver's store counts keys), the misses only:
    // m1 is cached by the replay's read (the driver's clock stands still), m2 is read.
    const readsBefore = driver.store.reads;
    await driver.send('bookings', [book('m1'), book('m1'), book('m2')]);
    expect(driver.state<Tiers>('bookingTiers', 'yoga')!.seen.slice(-3)).toEqual(['bronze', 'bronze', null]);
    expect(driver.store.reads - readsBefore).toBe(1);
  });

  it('serves a cached row for at most maxAgeMs when another task rewrites it; rows this task writes refresh it at once', async () => {
    const driver = createTestDriver(app);
    await driver.send('member-changes', [member('m1', 'gold')]);
    await driver.send('bookings', [book('m1')]);
    // Another engine task rewrites the row: this task's cache does not know.
    const stored = driver.item('members', 'm1')!;
    await driver.store.putItem({ ...stored, state: { tier: 'silver' }, version: stored.version + 1 }, stored.version);
    let reads = driver.store.reads;
    await driver.send('bookings', [book('m1')]);
    expect(driver.store.reads - reads, 'a warm row costs no read').toBe(0);
    await driver.advanceWallClock(DEFAULT_LOOKUP_MAX_AGE_MS); // at the bound: still served
    await driver.send('bookings', [book('m1')]);
    await driver.advanceWallClock(1);
    reads = driver.store.reads;
    await driver.send('bookings', [book('m1')]);
    expect(driver.store.reads - reads, 'past maxAgeMs the row is read again').toBe(1);
    // This task writes the row: the next lookup sees it without a read.
    await driver.send('member-changes', [member('m1', 'bronze')]);
    reads = driver.store.reads;
    await driver.send('bookings', [book('m1')]);
    expect(driver.store.reads - reads).toBe(0);
    expect(driver.state('bookingTiers', 'yoga')).toEqual({ seen: ['gold', 'gold', 'gold', 'silver', 'bronze'] });

    // maxAgeMs: 0 reads every batch.
    const uncached = defineView({ ...bookingTiersOptions, name: 'uncachedTiers', lookup: { member: { table: members, key: (e: Booking) => e.memberId, maxAgeMs: 0 } } });
    const cold = createTestDriver(defineApp({ name: 'gym3', views: [members, uncached] }));
    await cold.send('member-changes', [member('m1', 'gold')]);
    await cold.send('bookings', [book('m1')]); // the view item is cached from here on
    reads = cold.store.reads;
    await cold.send('bookings', [book('m1')]);
    await cold.send('bookings', [book('m1')]);
    expect(cold.store.reads - reads).toBe(2);
    expect(() => defineView({ ...bookingTiersOptions, name: 'bad', lookup: { member: { table: members, key: (e: Booking) => e.memberId, maxAgeMs: -1 } } })).toThrow(/maxAgeMs must be a non-negative integer/);
  });

  it('dead-letters an event whose lookup key is unusable and folds the others', async () => {
    const driver = createTestDriver(app);
    await driver.send('bookings', [book('boom'), book('m1')]);
    expect(driver.deadLetters.map((d) => d.code)).toEqual(['KEY_FAILED']);
    expect(driver.deadLetters[0]!.reason).toContain('lookup "member"');
    expect(driver.state('bookingTiers', 'yoga')).toEqual({ seen: [null] });
  });

  it('refuses a lookup of a table that is not in the app', () => {
    expect(() => defineApp({ name: 'gym2', views: [bookingTiers] })).toThrow(/looks up table "members" \(as "member"\), which is not in the app's views/);
  });
});
