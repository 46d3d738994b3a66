/**
 * Enrichment lookups (a view's `lookup`: the row of a table, read when an event is folded)
 * through the in-memory driver: the row as the table holds it at that moment, `undefined` for a
 * missing or deleted row, a poison lookup key, and a replay that applies nothing again although
 * the table has changed since. Expected states are computed in the test from the sends.
 */
import { describe, expect, it } from 'vitest';
import { createTestDriver } from '../../engine/index.ts';
import { defineApp, defineTable, defineView } from '../../sdk/index.ts';

type Member = { tier: string };
type Booking = { memberId: string; classId: string };
type Tiers = { seen: (string | null)[] };

const members = defineTable<Member>({ name: 'members', source: 'member-changes' });
const bookingTiers = defineView({
  name: 'bookingTiers',
  source: 'bookings',
  key: (e: Booking) => e.classId,
  lookup: { member: { table: members, key: (e: Booking) => (e.memberId === 'boom' ? Symbol('bad') as never : e.memberId) } },
  initial: (): Tiers => ({ seen: [] }),
  reduce: (s, _e, _record, { member }) => ({ seen: [...s.seen, member?.tier ?? null] }),
});
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
    // The batch reads its distinct rows once (the driver's store counts keys): m1 for two events, m2.
    const readsBefore = driver.store.reads;
    await driver.send('bookings', [book('m1'), book('m1'), book('m2')]);
    expect(driver.state<Tiers>('bookingTiers', 'yoga')!.seen.slice(-3)).toEqual(['bronze', 'bronze', null]);
    expect(driver.store.reads - readsBefore).toBe(2);
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
