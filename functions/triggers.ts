/**
 * Triggers of the gym-booking example app: which view changes reach which function in
 * `functions/handlers/`. `app.ts` lists them in `defineApp({ triggers })`; each handler wraps
 * its trigger with `onViewChange` / `onEachViewChange`, so its changes are typed by the view.
 *
 * The `when` predicates are plain exported functions, unit-tested without any I/O.
 */
import { defineTrigger } from 'tributary/sdk';
import { classAttendance, dailyClassBookings, type Attendee, type ClassAttendance } from './views.ts';

/** A class is "nearly full" from 90% of its capacity on: 18 of 20 spots. */
export const NEARLY_FULL_PERCENT = 90;

/** Whether a class holds at least {@link NEARLY_FULL_PERCENT} of its capacity (integer math: no 0.9 rounding). */
export function isNearlyFull(state: ClassAttendance | undefined): boolean {
  return !!state && state.capacity > 0 && state.booked * 100 >= state.capacity * NEARLY_FULL_PERCENT;
}

/** Whether every spot of a class is taken. */
export function isFull(state: ClassAttendance | undefined): boolean {
  return !!state && state.capacity > 0 && state.booked >= state.capacity;
}

/** Members who were on the waitlist before and hold a spot after: promoted by a cancellation. */
export function promotedMembers(before: ClassAttendance | undefined, after: ClassAttendance): Attendee[] {
  if (!before) return [];
  const waiting = new Set(before.waitlist.map((a) => a.memberId));
  const attending = new Set(before.attendees.map((a) => a.memberId));
  return after.attendees.filter((a) => waiting.has(a.memberId) && !attending.has(a.memberId));
}

/**
 * A class crosses 90% of its capacity: tell the instructor. Fires once per crossing (a class
 * that drops below and climbs back fires again), not on every booking above the mark.
 */
export const classNearlyFull = defineTrigger({
  view: classAttendance,
  function: 'notifyInstructor',
  name: 'classNearlyFull',
  when: ({ before, after }) => !isNearlyFull(before) && isNearlyFull(after),
});

/**
 * A cancellation in a full class gave waitlisted members a spot (the view promotes them):
 * tell each promoted member, exactly once.
 */
export const waitlistPromoted = defineTrigger({
  view: classAttendance,
  function: 'promoteWaitlist',
  name: 'waitlistPromoted',
  when: ({ before, after }) => promotedMembers(before, after).length > 0,
});

/**
 * A class just filled up: send the instructor a digest of who is coming, read from the
 * `memberBookings` view (a second view, read through the SDK).
 */
export const classFull = defineTrigger({
  view: classAttendance,
  function: 'memberDigest',
  name: 'classFull',
  when: ({ before, after }) => !isFull(before) && isFull(after),
  // Each invocation reads one memberBookings item per attendee; smaller batches keep it short.
  batchSize: 10,
});

/**
 * A class's day is over (the window of `dailyClassBookings` closed): one report per class and
 * day, exactly the day's final counts. Days without any booking activity have no window, so no
 * report.
 */
export const dailyAttendanceReport = defineTrigger({
  view: dailyClassBookings,
  function: 'attendanceReport',
  name: 'dailyAttendanceReport',
});

/** All triggers of the app, for `defineApp({ triggers })`. */
export const triggers = [classNearlyFull, waitlistPromoted, classFull, dailyAttendanceReport] as const;
