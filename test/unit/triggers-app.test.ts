import { describe, expect, it } from 'vitest';
import { digestMessage } from '../../functions/handlers/memberDigest.ts';
import { nearlyFullMessage } from '../../functions/handlers/notifyInstructor.ts';
import { classFull, classNearlyFull, isNearlyFull, promotedMembers, triggers, waitlistPromoted } from '../../functions/triggers.ts';
import { classAttendance, reduceClassAttendance, type ClassAttendance, type MemberBookings } from '../../functions/views.ts';
import type { BookingEvent } from '../../functions/events.ts';
import type { Change } from '../../sdk/index.ts';

const startsAt = '2026-01-06T18:00:00.000Z';

function booking(type: BookingEvent['type'], member: number, capacity = 20): BookingEvent {
  return {
    type,
    bookingId: `b-${member}`,
    classId: 'yoga-3',
    memberId: `m-${member}`,
    classStartsAt: startsAt,
    capacity,
    at: '2026-01-05T10:00:00.000Z',
  };
}

/** Folds events one by one and returns every state, like an engine writing once per event. */
function states(events: BookingEvent[]): ClassAttendance[] {
  const out: ClassAttendance[] = [];
  let state = classAttendance.initial();
  for (const event of events) {
    state = reduceClassAttendance(state, event);
    out.push(state);
  }
  return out;
}

function changeOf(before: ClassAttendance | undefined, after: ClassAttendance, version = 1): Change<ClassAttendance> {
  return { view: 'classAttendance', key: 'yoga-3', before, after, version, offsets: {}, idempotencyKey: `classAttendance#yoga-3##${version}` };
}

/** Versions (1-based) at which a trigger fires over a stream of single-event changes. */
function firing(when: (c: Change<ClassAttendance>) => boolean, events: BookingEvent[]): number[] {
  const all = states(events);
  return all.flatMap((after, i) => (when(changeOf(i === 0 ? undefined : all[i - 1], after, i + 1)) ? [i + 1] : []));
}

const bookings = (from: number, to: number, capacity = 20) =>
  Array.from({ length: to - from + 1 }, (_, i) => booking('booked', from + i, capacity));

describe('classNearlyFull', () => {
  it('fires once when a class of 20 reaches 18 bookings, not on later bookings', () => {
    expect(firing(classNearlyFull.when, bookings(1, 20))).toEqual([18]);
  });

  it('fires again after the class dropped below 90% and climbed back', () => {
    expect(firing(classNearlyFull.when, [...bookings(1, 18), booking('cancelled', 2), booking('booked', 30)])).toEqual([18, 20]);
  });

  it('uses exact integer math (9 of 10 is 90%, 13 of 15 is not)', () => {
    expect(isNearlyFull({ ...classAttendance.initial(), capacity: 10, booked: 9 })).toBe(true);
    expect(isNearlyFull({ ...classAttendance.initial(), capacity: 15, booked: 13 })).toBe(false);
    expect(isNearlyFull(undefined)).toBe(false);
  });

  it('formats the instructor notification', () => {
    const after = states(bookings(1, 18)).at(-1)!;
    expect(nearlyFullMessage('yoga-3', after)).toBe('class yoga-3 is 90% full (18/20)');
  });
});

describe('waitlistPromoted', () => {
  it('fires on a cancellation in a full class with a waitlist, naming the promoted member', () => {
    const events = [...bookings(1, 5, 4), booking('cancelled', 2, 4)];
    const all = states(events);
    expect(firing(waitlistPromoted.when, events)).toEqual([6]);
    expect(promotedMembers(all[4], all[5]!).map((a) => a.memberId)).toEqual(['m-5']);
  });

  it('does not fire on a cancellation without a waitlist', () => {
    expect(firing(waitlistPromoted.when, [...bookings(1, 3, 4), booking('cancelled', 2, 4)])).toEqual([]);
  });
});

describe('classFull', () => {
  it('fires when the last spot is taken, and the digest summarizes attendees from memberBookings', () => {
    const events = bookings(1, 5, 4);
    expect(firing(classFull.when, events)).toEqual([4]);
    const full = states(events)[3]!;
    const member = (id: number, bookedCount: number): MemberBookings => ({
      memberId: `m-${id}`,
      upcoming: [],
      bookedCount,
      cancelledCount: 0,
      lastActivity: null,
    });
    expect(digestMessage('yoga-3', full, [member(1, 7), member(2, 1), member(3, 5), undefined])).toBe(
      'class yoga-3 is full (4/4): 4 attendees, 2 regulars (m-1, m-3), 1 first-timers, 0 waitlisted',
    );
  });
});

describe('triggers', () => {
  it('names distinct functions in functions/handlers', () => {
    expect(triggers.map((t) => t.function)).toEqual(['notifyInstructor', 'promoteWaitlist', 'memberDigest', 'attendanceReport']);
    expect(new Set(triggers.map((t) => t.name)).size).toBe(4);
  });
});
