/**
 * `Change.beforeVersion` (docs/architecture.md, invariant 4): the item version of a change's
 * `before`, as its trigger last judged it, so a consumer that holds version v knows a change with
 * `beforeVersion === v` follows it and anything else is a gap. Stated through the in-memory
 * driver for both change modes, deletes and redeliveries; expected versions are counted in the
 * test from the events sent, never read back from the engine.
 */
import { describe, expect, it } from 'vitest';
import { createTestDriver } from '../../engine/index.ts';
import { DELETE, defineApp, defineTrigger, defineView, type TriggerChanges } from '../../sdk/index.ts';

type Booking = { classId: string; type: 'booked' | 'cancelled' | 'closed' | 'noted' };

const attendance = defineView({
  name: 'attendance',
  source: 'bookings',
  key: (e: Booking) => e.classId,
  initial: () => ({ booked: 0 }),
  // 'noted' is an applied event that changes nothing; 'closed' deletes the item.
  reduce: (s, e: Booking) =>
    e.type === 'closed' ? DELETE : e.type === 'noted' ? s : { booked: s.booked + (e.type === 'booked' ? 1 : -1) },
});
const appWith = (changes: TriggerChanges, when?: (c: { after: { booked: number } | undefined }) => boolean) =>
  defineApp({
    name: 'gym',
    views: [attendance],
    triggers: [defineTrigger({ view: attendance, function: 'watch', changes, ...(when ? { when: when as never } : {}) })],
  });
const event = (classId: string, type: Booking['type']) => ({ value: { classId, type } });
const chain = (driver: ReturnType<typeof createTestDriver>, key = 'yoga') =>
  driver.changes.filter((c) => c.change.key === key).map(({ change }) => [change.beforeVersion, change.version]);

describe('Change.beforeVersion', () => {
  it("'coalesced': each change names the version of the change before it; versions skip within a batch", async () => {
    const driver = createTestDriver(appWith('coalesced'));
    const batches = [3, 1, 4];
    for (const size of batches) await driver.send('bookings', Array.from({ length: size }, () => event('yoga', 'booked')));
    // Version n after the n-th applied event: a batch's change is at the running total.
    const expected: [number | undefined, number][] = [];
    let total = 0;
    for (const size of batches) {
      expected.push([total === 0 ? undefined : total, total + size]);
      total += size;
    }
    expect(chain(driver)).toEqual(expected);
    // Absent, not undefined-valued, on a new item's first change (the field is left out of the JSON).
    expect(Object.hasOwn(driver.changes[0]!.change, 'beforeVersion')).toBe(false);
  });

  it("'every': one change per state, each chained to the one before; a no-op event is skipped by both", async () => {
    const driver = createTestDriver(appWith('every'));
    await driver.send('bookings', [event('yoga', 'booked'), event('yoga', 'noted'), event('yoga', 'booked')]);
    await driver.send('bookings', [event('yoga', 'cancelled')]);
    // Versions 1, 2 (no change), 3, 4: the change at 3 follows the one at 1.
    expect(chain(driver)).toEqual([
      [undefined, 1],
      [1, 3],
      [3, 4],
    ]);
  });

  it('chains past a change when() rejected: the trigger judged it, so the next starts there', async () => {
    const driver = createTestDriver(appWith('coalesced', ({ after }) => after?.booked !== 2));
    for (let i = 0; i < 3; i++) await driver.send('bookings', [event('yoga', 'booked')]);
    expect(chain(driver)).toEqual([
      [undefined, 1],
      [2, 3],
    ]);
  });

  it.each(['every', 'coalesced'] as const)('%s: a delete names the version it deleted, and a re-created item the delete', async (changes) => {
    const driver = createTestDriver(appWith(changes));
    await driver.send('bookings', [event('yoga', 'booked')]);
    await driver.send('bookings', [event('yoga', 'closed')]);
    await driver.send('bookings', [event('yoga', 'booked')]);
    const seen = driver.changes.map(({ change }) => [change.beforeVersion, change.version, change.deleted === true, change.before]);
    expect(seen).toEqual([
      [undefined, 1, false, undefined],
      [1, 2, true, { booked: 1 }],
      // before is undefined (the item was deleted), yet the version it follows is known.
      [2, 3, false, undefined],
    ]);
  });

  it('keeps the chain across a restart and a redelivered batch (nothing delivered twice breaks it)', async () => {
    const driver = createTestDriver(appWith('coalesced'), { cacheMaxEntries: 0 });
    await driver.send('bookings', [event('yoga', 'booked'), event('yoga', 'booked')]);
    driver.restart();
    await driver.redeliver('bookings', 0, 0);
    await driver.send('bookings', [event('yoga', 'booked')]);
    expect(chain(driver)).toEqual([
      [undefined, 2],
      [2, 3],
    ]);
  });

  it('keeps keys apart: each key chains its own versions', async () => {
    const driver = createTestDriver(appWith('coalesced'));
    await driver.send('bookings', [event('yoga', 'booked'), event('spin', 'booked'), event('yoga', 'booked')]);
    await driver.send('bookings', [event('spin', 'booked')]);
    expect(chain(driver, 'yoga')).toEqual([[undefined, 2]]);
    expect(chain(driver, 'spin')).toEqual([
      [undefined, 1],
      [1, 2],
    ]);
  });
});
