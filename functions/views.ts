/**
 * Views of the gym-booking example app.
 *
 * They live apart from `app.ts` so that `triggers.ts` can import them without an import cycle
 * (`app.ts` imports both).
 */
import {
  collect,
  count,
  defineTable,
  defineView,
  removeWhere,
  session,
  tumbling,
  type LatestState,
} from 'tributary/sdk';
import { BOOKINGS_TOPIC, decodeBookingEvent, MAX_CAPACITY, MEMBERS_TOPIC, type BookingEvent, type MemberRow } from './events.ts';

/**
 * Longest waitlist kept per class. Past it a booking is turned away (and counted), not added:
 * dropping the oldest waitlisted member, as a plain capped list would, would be unfair.
 */
export const MAX_WAITLIST = 50;

/**
 * Classes a reader shows of a member's `upcoming` (soonest first). The state keeps them all: a
 * capped list fed by cancellations would depend on the order in which the partitions of
 * several classes interleave, and this view is keyed unlike its Kafka key (see memberBookings).
 */
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
  // Live: browsers watch a class's attendance (the dashboard of `npm run dev`); any connected
  // principal may, attendance figures are not personal.
  live: true,
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
   * Booked, not cancelled classes that start after the member's newest event time, soonest
   * first (ties by booking id). Includes waitlisted bookings: this view does not see class
   * capacity. Readers show the first {@link MAX_UPCOMING}.
   */
  readonly upcoming: readonly UpcomingClass[];
  readonly bookedCount: number;
  readonly cancelledCount: number;
  /**
   * The member's action with the newest event time, and that time; on equal times the greater
   * booking id, then a cancellation over a booking (never arrival order).
   */
  readonly lastActivity: (LatestState<BookingEvent['type']> & { readonly bookingId: string }) | null;
}

const byStart = (a: UpcomingClass, b: UpcomingClass): number =>
  Date.parse(a.classStartsAt) - Date.parse(b.classStartsAt) || (a.bookingId < b.bookingId ? -1 : a.bookingId > b.bookingId ? 1 : 0);

/** The tie-break of lastActivity on equal times. */
const activityRank = (bookingId: string, type: BookingEvent['type']): string => `${bookingId}\u0000${type === 'cancelled' ? 1 : 0}`;

/**
 * Folds one booking event into a member's bookings. Bookings reach this view from the
 * partitions of several classes in an interleaving that is not defined, so every part of the
 * state commutes across classes (one right answer whatever the order; README, "Views keyed
 * unlike their Kafka key"): counts; the newest event time (a maximum) and the activity at it
 * (with a total tie-break); and `upcoming`, the bookings not cancelled that start after that
 * newest time. A booking's own cancellation comes from its class's partition, after it. "Upcoming" is judged
 * against event times, not the wall clock, so the fold stays deterministic on replay.
 */
export function reduceMemberBookings(state: MemberBookings, event: BookingEvent): MemberBookings {
  const atMs = Date.parse(event.at);
  const previous = state.lastActivity;
  const newer =
    previous === null ||
    atMs > previous.atMs ||
    (atMs === previous.atMs && activityRank(event.bookingId, event.type) > activityRank(previous.bookingId, previous.value));
  const lastActivity = newer ? { value: event.type, atMs, bookingId: event.bookingId } : previous;
  const newestMs = lastActivity.atMs;
  let upcoming = removeWhere(state.upcoming, (c) => Date.parse(c.classStartsAt) <= newestMs);
  let { bookedCount, cancelledCount } = state;
  if (event.type === 'booked') {
    bookedCount = count(bookedCount);
    if (Date.parse(event.classStartsAt) > newestMs) {
      const entry = { classId: event.classId, bookingId: event.bookingId, classStartsAt: event.classStartsAt };
      // A set by booking id: a repeated booking event replaces its entry.
      upcoming = [...removeWhere(upcoming, (c) => c.bookingId === event.bookingId), entry].sort(byStart);
    }
  } else {
    cancelledCount = count(cancelledCount);
    upcoming = removeWhere(upcoming, (c) => c.bookingId === event.bookingId);
  }
  return { memberId: event.memberId, upcoming, bookedCount, cancelledCount, lastActivity };
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

/** The members table: each member's latest row (tier) from the compacted `members` topic. */
export const members = defineTable<MemberRow>({ name: 'members', source: MEMBERS_TOPIC });

/** State of {@link classTiers}: a class's bookings by the booking member's tier at booking time. */
export interface ClassTiers {
  readonly gold: number;
  readonly silver: number;
  readonly basic: number;
  /** Bookings of members the table had no row for. */
  readonly unknown: number;
}

/**
 * Bookings per class by member tier: each booking enriched with its member's row through a
 * lookup of {@link members} (the tier the table holds when the booking is folded). Keyed by
 * class like the Kafka key, so it has one order.
 */
export const classTiers = defineView({
  name: 'classTiers',
  source: BOOKINGS_TOPIC,
  decode: decodeBookingEvent,
  filter: (event: BookingEvent) => event.type === 'booked',
  key: (event: BookingEvent) => event.classId,
  lookup: { member: { table: members, key: (event: BookingEvent) => event.memberId } },
  initial: (): ClassTiers => ({ gold: 0, silver: 0, basic: 0, unknown: 0 }),
  reduce: (state, _event, _record, { member }): ClassTiers => {
    const tier = member?.tier ?? 'unknown';
    return { ...state, [tier]: count(state[tier]) };
  },
});
