/**
 * Views of the gym-booking example app.
 *
 * They live apart from `app.ts` so that `triggers.ts` can import them without an import cycle
 * (`app.ts` imports both).
 */
import {
  collect,
  count,
  defineView,
  latestByTime,
  removeWhere,
  topK,
  type LatestState,
} from 'tributary/sdk';
import { BOOKINGS_TOPIC, decodeBookingEvent, MAX_CAPACITY, type BookingEvent } from './events.ts';

/**
 * Longest waitlist kept per class. Past it a booking is turned away (and counted), not added:
 * dropping the oldest waitlisted member, as a plain capped list would, would be unfair.
 */
export const MAX_WAITLIST = 50;

/** Classes listed in a member's `upcoming`, soonest first; older bookings are still counted. */
export const MAX_UPCOMING = 20;

/** A member holding a spot (or a place in line) in a class. */
export interface Attendee {
  readonly memberId: string;
  readonly bookingId: string;
  /** When they booked, ISO-8601. */
  readonly bookedAt: string;
}

/** State of {@link classAttendance}: one item per class. */
export interface ClassAttendance {
  readonly classId: string;
  /** ISO-8601 start, from the latest event. */
  readonly classStartsAt: string;
  /** Spots, from the latest event. */
  readonly capacity: number;
  /** Members holding a spot; always `attendees.length`. */
  readonly booked: number;
  /** Members holding a spot, in booking order. */
  readonly attendees: readonly Attendee[];
  /** Members waiting for a spot, first in line first; at most {@link MAX_WAITLIST}. */
  readonly waitlist: readonly Attendee[];
  /** Cancellations of a spot or a waitlist place. */
  readonly cancellations: number;
  /** Bookings refused because the waitlist was full. */
  readonly turnedAway: number;
}

/** Fills free spots from the head of the waitlist (after a cancellation or a capacity increase). */
function promoteWaitlisted(
  attendees: readonly Attendee[],
  waitlist: readonly Attendee[],
  capacity: number,
): { attendees: readonly Attendee[]; waitlist: readonly Attendee[] } {
  const free = Math.max(0, capacity - attendees.length);
  if (free === 0 || waitlist.length === 0) return { attendees, waitlist };
  let promoted = attendees;
  for (const member of waitlist.slice(0, free)) {
    promoted = collect(promoted, member, { max: MAX_CAPACITY });
  }
  return { attendees: promoted, waitlist: waitlist.slice(free) };
}

/**
 * Folds one booking event into a class: a booking takes a spot or, when the class is full,
 * joins the waitlist; a cancellation frees a spot, which goes to the first waitlisted member.
 * A member books a class at most once: a second booking by the same member is ignored.
 */
export function reduceClassAttendance(state: ClassAttendance, event: BookingEvent): ClassAttendance {
  const capacity = event.capacity;
  let { cancellations, turnedAway } = state;
  // A capacity increase serves the waitlist before this event's member.
  let { attendees, waitlist } = promoteWaitlisted(state.attendees, state.waitlist, capacity);
  if (event.type === 'booked') {
    const already = [...attendees, ...waitlist].some((a) => a.memberId === event.memberId);
    if (!already) {
      const member: Attendee = { memberId: event.memberId, bookingId: event.bookingId, bookedAt: event.at };
      if (attendees.length < capacity) attendees = collect(attendees, member, { max: MAX_CAPACITY });
      else if (waitlist.length < MAX_WAITLIST) waitlist = collect(waitlist, member, { max: MAX_WAITLIST });
      else turnedAway = count(turnedAway);
    }
  } else {
    const isBooking = (a: Attendee) => a.bookingId === event.bookingId;
    if (attendees.some(isBooking)) {
      attendees = removeWhere(attendees, isBooking);
      cancellations = count(cancellations);
    } else if (waitlist.some(isBooking)) {
      waitlist = removeWhere(waitlist, isBooking);
      cancellations = count(cancellations);
    }
    // A cancellation of an unknown booking (e.g. produced twice) changes nothing.
  }
  ({ attendees, waitlist } = promoteWaitlisted(attendees, waitlist, capacity));
  return {
    classId: event.classId,
    classStartsAt: event.classStartsAt,
    capacity,
    booked: attendees.length,
    attendees,
    waitlist,
    cancellations,
    turnedAway,
  };
}

/**
 * Who attends each class, keyed by `classId` (the Kafka key): booked count, capacity,
 * attendees and waitlist.
 */
export const classAttendance = defineView({
  name: 'classAttendance',
  source: BOOKINGS_TOPIC,
  decode: decodeBookingEvent,
  key: (event: BookingEvent) => event.classId,
  initial: (): ClassAttendance => ({
    classId: '',
    classStartsAt: '',
    capacity: 0,
    booked: 0,
    attendees: [],
    waitlist: [],
    cancellations: 0,
    turnedAway: 0,
  }),
  reduce: (state, event) => reduceClassAttendance(state, event),
});

/** One class a member booked (holding a spot or waitlisted). */
export interface UpcomingClass {
  readonly classId: string;
  readonly bookingId: string;
  readonly classStartsAt: string;
}

/** State of {@link memberBookings}: one item per member. */
export interface MemberBookings {
  readonly memberId: string;
  /**
   * Booked classes that had not started at the member's latest event, soonest first, at most
   * {@link MAX_UPCOMING}. Includes waitlisted bookings: this view does not see class capacity.
   */
  readonly upcoming: readonly UpcomingClass[];
  readonly bookedCount: number;
  readonly cancelledCount: number;
  /** The member's action with the newest event time, and that time. */
  readonly lastActivity: LatestState<BookingEvent['type']> | null;
}

const upcomingOptions = {
  k: MAX_UPCOMING,
  score: (c: UpcomingClass) => Date.parse(c.classStartsAt),
  id: (c: UpcomingClass) => c.bookingId,
  order: 'asc',
} as const;

/**
 * Folds one booking event into a member's bookings. "Upcoming" is judged against the event's
 * own time, not the wall clock, so the fold stays deterministic on replay.
 */
export function reduceMemberBookings(state: MemberBookings, event: BookingEvent): MemberBookings {
  const nowMs = Date.parse(event.at);
  let upcoming = removeWhere(state.upcoming, (c) => Date.parse(c.classStartsAt) <= nowMs);
  let { bookedCount, cancelledCount } = state;
  if (event.type === 'booked') {
    bookedCount = count(bookedCount);
    if (Date.parse(event.classStartsAt) > nowMs) {
      const entry = { classId: event.classId, bookingId: event.bookingId, classStartsAt: event.classStartsAt };
      upcoming = topK(upcoming, entry, upcomingOptions);
    }
  } else {
    cancelledCount = count(cancelledCount);
    upcoming = removeWhere(upcoming, (c) => c.bookingId === event.bookingId);
  }
  return {
    memberId: event.memberId,
    upcoming,
    bookedCount,
    cancelledCount,
    lastActivity: latestByTime(state.lastActivity, event.type, event.at),
  };
}

/**
 * Each member's bookings, keyed by `memberId`: a key that differs from the Kafka key, so one
 * item is written from several partitions (the engine fences this with per-partition offsets).
 */
export const memberBookings = defineView({
  name: 'memberBookings',
  source: BOOKINGS_TOPIC,
  decode: decodeBookingEvent,
  key: (event: BookingEvent) => event.memberId,
  initial: (): MemberBookings => ({
    memberId: '',
    upcoming: [],
    bookedCount: 0,
    cancelledCount: 0,
    lastActivity: null,
  }),
  reduce: (state, event) => reduceMemberBookings(state, event),
});

/** The app's views, in the order the engine lists them. */
export const views = [classAttendance, memberBookings] as const;
