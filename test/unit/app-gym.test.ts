import { describe, expect, it } from 'vitest';
import {
  app,
  classAttendance,
  decodeBookingEvent,
  MAX_UPCOMING,
  MAX_WAITLIST,
  memberBookings,
  toMessage,
  type BookingEvent,
  type ClassAttendance,
  type MemberBookings,
} from '../../functions/app.ts';
import { createBookingGenerator } from '../../functions/generator.ts';
import type { Delete, SourceRecord } from '../../sdk/index.ts';
import { DELETE, SdkError } from '../../sdk/index.ts';

const record: SourceRecord = {
  topic: 'bookings',
  partition: 0,
  offset: '0',
  key: null,
  value: null,
  timestampMs: 0,
  headers: {},
};

let seq = 0;
function event(partial: Partial<BookingEvent> & Pick<BookingEvent, 'type' | 'memberId'>): BookingEvent {
  seq++;
  return {
    bookingId: `b-${partial.memberId}`,
    classId: 'yoga-1',
    classStartsAt: '2026-02-01T09:00:00.000Z',
    capacity: 2,
    at: new Date(Date.parse('2026-01-20T00:00:00.000Z') + seq * 60_000).toISOString(),
    ...partial,
  };
}

/** A state of a view that never deletes (`reduce` is typed to return DELETE too). */
const kept = <S>(next: S | Delete): S => {
  if (next === DELETE) throw new Error('reduce returned DELETE, which these views never do');
  return next;
};
const foldClass = (events: BookingEvent[], from: ClassAttendance = classAttendance.initial()) =>
  events.reduce((s, e) => kept(classAttendance.reduce(s, e, record)), from);
const foldMember = (events: BookingEvent[], from: MemberBookings = memberBookings.initial()) =>
  events.reduce((s, e) => kept(memberBookings.reduce(s, e, record)), from);

describe('classAttendance', () => {
  it('keys by classId and fills spots up to capacity, then the waitlist', () => {
    const s = foldClass(['ann', 'bob', 'cid', 'dan'].map((m) => event({ type: 'booked', memberId: m })));
    expect(classAttendance.key(event({ type: 'booked', memberId: 'x' }), record)).toBe('yoga-1');
    expect(s.booked).toBe(2);
    expect(s.capacity).toBe(2);
    expect(s.attendees.map((a) => a.memberId)).toEqual(['ann', 'bob']);
    expect(s.waitlist.map((a) => a.memberId)).toEqual(['cid', 'dan']);
    expect(s.classStartsAt).toBe('2026-02-01T09:00:00.000Z');
  });

  it('gives a freed spot to the first waitlisted member', () => {
    const full = foldClass(['ann', 'bob', 'cid', 'dan'].map((m) => event({ type: 'booked', memberId: m })));
    const s = foldClass([event({ type: 'cancelled', memberId: 'ann' })], full);
    expect(s.attendees.map((a) => a.memberId)).toEqual(['bob', 'cid']);
    expect(s.waitlist.map((a) => a.memberId)).toEqual(['dan']);
    expect(s.booked).toBe(2);
    expect(s.cancellations).toBe(1);
  });

  it('removes a waitlisted cancellation without touching attendees; ignores unknown cancellations', () => {
    const full = foldClass(['ann', 'bob', 'cid'].map((m) => event({ type: 'booked', memberId: m })));
    const s = foldClass(
      [event({ type: 'cancelled', memberId: 'cid' }), event({ type: 'cancelled', memberId: 'zed' })],
      full,
    );
    expect(s.attendees.map((a) => a.memberId)).toEqual(['ann', 'bob']);
    expect(s.waitlist).toEqual([]);
    expect(s.cancellations).toBe(1);
  });

  it('ignores a second booking by the same member', () => {
    const s = foldClass([
      event({ type: 'booked', memberId: 'ann' }),
      event({ type: 'booked', memberId: 'ann', bookingId: 'b-ann-again' }),
    ]);
    expect(s.booked).toBe(1);
    expect(s.waitlist).toEqual([]);
  });

  it('promotes waitlisted members when capacity grows', () => {
    const full = foldClass(['ann', 'bob', 'cid'].map((m) => event({ type: 'booked', memberId: m })));
    const s = foldClass([event({ type: 'booked', memberId: 'dan', capacity: 4 })], full);
    expect(s.attendees.map((a) => a.memberId)).toEqual(['ann', 'bob', 'cid', 'dan']);
    expect(s.waitlist).toEqual([]);
  });

  it('turns bookings away once the waitlist is full', () => {
    const members = Array.from({ length: 2 + MAX_WAITLIST + 3 }, (_, i) => `m${i}`);
    const s = foldClass(members.map((m) => event({ type: 'booked', memberId: m })));
    expect(s.booked).toBe(2);
    expect(s.waitlist).toHaveLength(MAX_WAITLIST);
    expect(s.waitlist[0]?.memberId).toBe('m2');
    expect(s.turnedAway).toBe(3);
  });

  it('does not mutate the previous state', () => {
    const before = foldClass([event({ type: 'booked', memberId: 'ann' })]);
    const snapshot = structuredClone(before);
    foldClass([event({ type: 'cancelled', memberId: 'ann' })], before);
    expect(before).toEqual(snapshot);
  });
});

describe('memberBookings', () => {
  it('keys by memberId, which differs from the Kafka key', () => {
    const e = event({ type: 'booked', memberId: 'ann' });
    expect(memberBookings.key(e, record)).toBe('ann');
    expect(toMessage(e).key).toBe('yoga-1');
  });

  it('lists upcoming classes soonest first and counts bookings and cancellations', () => {
    const s = foldMember([
      event({ type: 'booked', memberId: 'ann', bookingId: 'b1', classId: 'late', classStartsAt: '2026-02-03T09:00:00Z' }),
      event({ type: 'booked', memberId: 'ann', bookingId: 'b2', classId: 'soon', classStartsAt: '2026-02-01T09:00:00Z' }),
      event({ type: 'booked', memberId: 'ann', bookingId: 'b3', classId: 'mid', classStartsAt: '2026-02-02T09:00:00Z' }),
      event({ type: 'cancelled', memberId: 'ann', bookingId: 'b3', classId: 'mid', classStartsAt: '2026-02-02T09:00:00Z' }),
    ]);
    expect(s.memberId).toBe('ann');
    expect(s.upcoming.map((c) => c.classId)).toEqual(['soon', 'late']);
    expect(s.bookedCount).toBe(3);
    expect(s.cancelledCount).toBe(1);
    expect(s.lastActivity?.value).toBe('cancelled');
  });

  it('drops classes that started before the newest event and keeps every other one (no cap: the list must commute)', () => {
    const bookings = Array.from({ length: MAX_UPCOMING + 5 }, (_, i) =>
      event({
        type: 'booked',
        memberId: 'bob',
        bookingId: `b${i}`,
        classId: `c${i}`,
        classStartsAt: new Date(Date.parse('2026-03-01T00:00:00Z') + i * 3_600_000).toISOString(),
      }),
    );
    const s = foldMember(bookings);
    expect(s.upcoming).toHaveLength(MAX_UPCOMING + 5);
    expect(s.upcoming[0]?.classId).toBe('c0');
    const later = foldMember(
      [event({ type: 'booked', memberId: 'bob', bookingId: 'late', classId: 'x', classStartsAt: '2026-04-01T00:00:00Z', at: '2026-03-01T02:30:00Z' })],
      s,
    );
    expect(later.upcoming[0]?.classId).toBe('c3');
    expect(later.upcoming.at(-1)?.classId).toBe('x');
    expect(later.bookedCount).toBe(MAX_UPCOMING + 6);
  });

  it('has one right answer whatever the interleaving of the classes\' partitions', () => {
    // Three classes (three partitions: bookings are keyed by class), each in its own order; the
    // member's events of each class interleave at random, as batches of partitions would.
    let n = 0;
    const classEvents = ['a', 'b', 'c'].map((classId, c) =>
      Array.from({ length: 12 }, (_, i) => {
        n += 1;
        const bookingId = `${classId}${Math.floor(i / 2)}`;
        return event({
          type: i % 2 === 0 || i % 5 === 0 ? 'booked' : 'cancelled',
          memberId: 'zoe',
          bookingId,
          classId,
          classStartsAt: new Date(Date.parse('2026-01-20T00:20:00Z') + (c * 12 + i) * 120_000).toISOString(),
          // Some events share a time across classes: the tie-break must not be arrival order.
          at: new Date(Date.parse('2026-01-20T00:00:00Z') + (i % 4 === 0 ? 0 : n) * 60_000).toISOString(),
        });
      }),
    );
    // The reference, from the events alone: counts; the newest time; bookings not cancelled
    // (a cancel follows its booking within its class) starting after it, soonest first.
    const all = classEvents.flat();
    const newest = Math.max(...all.map((e) => Date.parse(e.at)));
    const live = new Map<string, BookingEvent>();
    for (const events of classEvents) for (const e of events) e.type === 'booked' ? live.set(e.bookingId, e) : live.delete(e.bookingId);
    const upcoming = [...live.values()]
      .filter((e) => Date.parse(e.classStartsAt) > newest)
      .sort((x, y) => Date.parse(x.classStartsAt) - Date.parse(y.classStartsAt) || (x.bookingId < y.bookingId ? -1 : 1))
      .map((e) => e.bookingId);
    let random = 12345;
    const next = () => (random = (random * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
    const answers = new Set<string>();
    for (let trial = 0; trial < 50; trial += 1) {
      const cursors = [0, 0, 0];
      const order: BookingEvent[] = [];
      while (order.length < all.length) {
        const open = cursors.map((at, c) => (at < classEvents[c]!.length ? c : -1)).filter((c) => c >= 0);
        const c = open[Math.floor(next() * open.length)]!;
        order.push(classEvents[c]![cursors[c]!++]!);
      }
      const s = foldMember(order);
      expect(s.upcoming.map((u) => u.bookingId)).toEqual(upcoming);
      expect(s.bookedCount).toBe(all.filter((e) => e.type === 'booked').length);
      expect(s.lastActivity?.atMs).toBe(newest);
      answers.add(JSON.stringify(s));
    }
    expect(answers.size).toBe(1);
  });
});

describe('decodeBookingEvent', () => {
  it('decodes a produced message and rejects malformed ones with INVALID_ARGUMENT', () => {
    const e = event({ type: 'booked', memberId: 'ann' });
    expect(decodeBookingEvent(Buffer.from(toMessage(e).value))).toEqual(e);
    const bad = { ...e, capacity: 0 };
    expect(() => decodeBookingEvent(Buffer.from(JSON.stringify(bad)))).toThrow(SdkError);
    try {
      decodeBookingEvent(Buffer.from(JSON.stringify({ ...e, type: 'moved' })));
    } catch (error) {
      expect((error as SdkError).code).toBe('INVALID_ARGUMENT');
    }
    expect(() => decodeBookingEvent(Buffer.from([0xff, 0xfe]))).toThrow();
  });
});

describe('app and generator', () => {
  it('defines the gym app over the bookings topic', () => {
    expect(app.name).toBe('gym');
    expect(app.views.map((v) => v.name)).toEqual(['classAttendance', 'memberBookings', 'dailyClassBookings', 'memberVisits', 'members', 'classTiers']);
    expect(app.sourceTopics).toEqual(['bookings', 'members']);
  });

  it('generates the same valid stream for the same seed, with cancellations of earlier bookings', () => {
    const a = createBookingGenerator({ seed: 42, classes: 20, members: 50 }).take(2_000);
    const b = createBookingGenerator({ seed: 42, classes: 20, members: 50 }).take(2_000);
    expect(a).toEqual(b);
    expect(createBookingGenerator({ seed: 43, classes: 20, members: 50 }).take(50)).not.toEqual(a.slice(0, 50));
    const booked = new Set<string>();
    let cancels = 0;
    for (const e of a) {
      decodeBookingEvent(Buffer.from(JSON.stringify(e)));
      if (e.type === 'booked') booked.add(e.bookingId);
      else {
        expect(booked.has(e.bookingId)).toBe(true);
        booked.delete(e.bookingId);
        cancels++;
      }
    }
    expect(cancels / a.length).toBeGreaterThan(0.08);
    expect(cancels / a.length).toBeLessThan(0.25);
    // Folding the whole stream keeps every class within its capacity.
    const byClass = new Map<string, ClassAttendance>();
    for (const e of a) byClass.set(e.classId, kept(classAttendance.reduce(byClass.get(e.classId) ?? classAttendance.initial(), e, record)));
    for (const s of byClass.values()) expect(s.booked).toBeLessThanOrEqual(s.capacity);
    expect([...byClass.values()].some((s) => s.waitlist.length > 0)).toBe(true);
  });

  it('sequential pick gives every event its own class', () => {
    const events = createBookingGenerator({ pick: 'sequential', classes: 1_000, cancelRate: 0 }).take(1_000);
    expect(new Set(events.map((e) => e.classId)).size).toBe(1_000);
  });
});

describe('members table and classTiers', () => {
  it('counts a class\'s bookings by the tier the members table holds when each booking is folded', async () => {
    const { createTestDriver } = await import('../../engine/index.ts');
    const { MEMBERS_TOPIC, BOOKINGS_TOPIC, toMemberMessage } = await import('../../functions/app.ts');
    const driver = createTestDriver(app);
    const rows = (id: string, tier: 'gold' | 'silver' | 'basic' | null) => [toMemberMessage(id, tier === null ? null : { memberId: id, tier })];
    const book = (memberId: string, cancelled = false) => [toMessage(event({ type: cancelled ? 'cancelled' : 'booked', memberId, bookingId: `b-${memberId}-${seq}` }))];
    await driver.send(MEMBERS_TOPIC, [...rows('ann', 'gold'), ...rows('bob', 'basic')]);
    await driver.send(BOOKINGS_TOPIC, [...book('ann'), ...book('bob'), ...book('cid')]);
    await driver.send(MEMBERS_TOPIC, rows('ann', 'silver'));
    await driver.send(BOOKINGS_TOPIC, [...book('ann'), ...book('bob', true)]);
    await driver.send(MEMBERS_TOPIC, rows('bob', null));
    await driver.send(BOOKINGS_TOPIC, book('bob'));
    // By hand: ann gold then silver; bob basic, his cancel not counted, then no row; cid never had one.
    expect(driver.state('classTiers', 'yoga-1')).toEqual({ gold: 1, silver: 1, basic: 1, unknown: 2 });
    expect(driver.state('members', 'ann')).toEqual({ memberId: 'ann', tier: 'silver' });
    expect(driver.state('members', 'bob')).toBeUndefined();
  });
});
