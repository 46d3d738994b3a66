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
  session,
  topK,
  tumbling,
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

const HOUR_MS = 3_600_000;
const DAY_MS = 24 * HOUR_MS;

/** Time of a booking event, for the windowed views: when it happened (`at`), not when it reached Kafka. */
export function bookingTime(event: BookingEvent): number {
  return Date.parse(event.at);
}

/** State of {@link dailyClassBookings}: one item per class and UTC day. */
export interface DailyClassBookings {
  readonly booked: number;
  readonly cancelled: number;
}

/**
 * Bookings and cancellations per class per UTC day (by when they happened), delivered once per
 * day, when the day is over: `emit: 'final'`. A booking may reach Kafka late (a phone offline
 * for a while); `graceMs` keeps a day open for an hour past midnight for it. Later ones are
 * dead-lettered as `LATE`, not silently folded into a report already sent.
 */
export const dailyClassBookings = defineView({
  name: 'dailyClassBookings',
  source: BOOKINGS_TOPIC,
  decode: decodeBookingEvent,
  key: (event: BookingEvent) => event.classId,
  timestamp: bookingTime,
  window: tumbling({ sizeMs: DAY_MS }),
  graceMs: HOUR_MS,
  emit: 'final',
  initial: (): DailyClassBookings => ({ booked: 0, cancelled: 0 }),
  reduce: (state, event) => (event.type === 'booked' ? { ...state, booked: state.booked + 1 } : { ...state, cancelled: state.cancelled + 1 }),
});

/** Classes listed per visit session; more are counted, not listed. */
export const MAX_SESSION_CLASSES = 20;
/** A member's activity pauses this long before a new visit session starts. */
export const VISIT_GAP_MS = 2 * HOUR_MS;

/** State of {@link memberVisits}: one item per member and session of activity. */
export interface MemberVisits {
  /** Bookings and cancellations in the session. */
  readonly actions: number;
  /** Classes touched, in first-touch order, at most {@link MAX_SESSION_CLASSES}. */
  readonly classes: readonly string[];
}

function addClasses(classes: readonly string[], more: readonly string[]): readonly string[] {
  const out = [...classes];
  for (const c of more) if (!out.includes(c) && out.length < MAX_SESSION_CLASSES) out.push(c);
  return out;
}

/**
 * A member's visits: bookings and cancellations less than {@link VISIT_GAP_MS} apart form one
 * session. A booking that fills the gap between two sessions merges them through `merge`.
 */
export const memberVisits = defineView({
  name: 'memberVisits',
  source: BOOKINGS_TOPIC,
  decode: decodeBookingEvent,
  key: (event: BookingEvent) => event.memberId,
  timestamp: bookingTime,
  window: session({ gapMs: VISIT_GAP_MS }),
  graceMs: 10 * 60_000,
  initial: (): MemberVisits => ({ actions: 0, classes: [] }),
  reduce: (state, event) => ({ actions: state.actions + 1, classes: addClasses(state.classes, [event.classId]) }),
  merge: (a, b) => ({ actions: a.actions + b.actions, classes: addClasses(a.classes, b.classes) }),
});

/** The app's views, in the order the engine lists them. */
export const views = [classAttendance, memberBookings, dailyClassBookings, memberVisits] as const;
