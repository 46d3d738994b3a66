// The gym app's windowed views through the in-memory driver: daily bookings per class (final,
// with its attendance report) and members' visit sessions. Expected values come from the events.
import { describe, expect, it } from 'vitest';
import { createTestDriver } from '../../engine/index.ts';
import { attendanceReportMessage } from '../../functions/handlers/attendanceReport.ts';
import { app, BOOKINGS_TOPIC, toMessage, VISIT_GAP_MS, type BookingEvent } from '../../functions/app.ts';

const DAY = 86_400_000;
const MONDAY = Date.parse('2026-01-05T00:00:00.000Z');
let n = 0;
function booking(classId: string, memberId: string, atMs: number, type: BookingEvent['type'] = 'booked'): { key: string; value: string } {
  n++;
  return toMessage({ type, bookingId: `b-${n}`, classId, memberId, classStartsAt: '2026-02-01T09:00:00.000Z', capacity: 20, at: new Date(atMs).toISOString() });
}
const send = (messages: { key: string; value: string }[]) => messages.map((m) => ({ key: m.key, value: m.value }));

describe('gym: dailyClassBookings and its attendance report', () => {
  it('reports each class day once, with its final counts, an hour after midnight', async () => {
    const driver = createTestDriver(app);
    await driver.send(BOOKINGS_TOPIC, send([
      booking('yoga', 'ann', MONDAY + 9 * 3_600_000),
      booking('yoga', 'bob', MONDAY + 10 * 3_600_000),
      booking('spin', 'ann', MONDAY + 11 * 3_600_000),
      booking('yoga', 'bob', MONDAY + 12 * 3_600_000, 'cancelled'),
    ]));
    // Tuesday 00:30: Monday is over but within its hour of grace; a late Monday booking still counts.
    await driver.send(BOOKINGS_TOPIC, send([booking('spin', 'cy', MONDAY + DAY + 1_800_000), booking('yoga', 'dee', MONDAY + 23 * 3_600_000)]));
    const reports = () => driver.changes.filter((c) => c.trigger === 'dailyAttendanceReport').map((c) => attendanceReportMessage(c.change.key, c.change.window!, c.change.after as never));
    expect(reports()).toEqual([]);
    await driver.send(BOOKINGS_TOPIC, send([booking('spin', 'cy', MONDAY + DAY + 3_600_001)]));
    expect(reports().sort()).toEqual(['class spin on 2026-01-05: 1 booking, 0 cancellations', 'class yoga on 2026-01-05: 3 bookings, 1 cancellation']);
    // Too late for Monday now: dead-lettered, the report stays as sent.
    await driver.send(BOOKINGS_TOPIC, send([booking('yoga', 'eve', MONDAY + 20 * 3_600_000)]));
    expect(driver.deadLetters.filter((d) => d.code === 'LATE' && d.view === 'dailyClassBookings')).toHaveLength(1);
    expect(reports()).toHaveLength(2);
    expect(driver.state('dailyClassBookings', 'yoga', MONDAY)).toEqual({ booked: 3, cancelled: 1 });
  });
});

describe('gym: memberVisits', () => {
  it('groups a member’s bookings less than two hours apart into one visit session, merging sessions a booking bridges', async () => {
    const driver = createTestDriver(app);
    const t0 = MONDAY + 8 * 3_600_000;
    const later = t0 + VISIT_GAP_MS + 5 * 60_000; // just past the gap: a second session
    await driver.send(BOOKINGS_TOPIC, send([booking('yoga', 'ann', t0), booking('spin', 'ann', later)]));
    expect(driver.windows('memberVisits', 'ann').map((w) => w.window)).toEqual([
      { start: t0, end: t0 + VISIT_GAP_MS },
      { start: later, end: later + VISIT_GAP_MS },
    ]);
    // Within 10 minutes of grace the first session is still open: a booking in between bridges both.
    await driver.send(BOOKINGS_TOPIC, send([booking('pilates', 'ann', t0 + 3_600_000)]));
    expect(driver.windows('memberVisits', 'ann')).toEqual([
      { window: { start: t0, end: later + VISIT_GAP_MS }, state: { actions: 3, classes: ['yoga', 'spin', 'pilates'] } },
    ]);
    // Once stream time is past a session's end plus grace, an activity that would join it is late.
    await driver.send(BOOKINGS_TOPIC, send([booking('yoga', 'ann', later + 5 * VISIT_GAP_MS), booking('spin', 'ann', later + VISIT_GAP_MS - 1)]));
    expect(driver.windows<{ actions: number }>('memberVisits', 'ann').map((w) => w.state.actions)).toEqual([3, 1]);
    expect(driver.deadLetters.filter((d) => d.code === 'LATE' && d.view === 'memberVisits')).toHaveLength(1);
  });
});
