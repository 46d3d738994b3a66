/**
 * The gym-booking example app: the one module the engine loads (`TRIBUTARY_APP_MODULE`),
 * the CDK app deploys and `npm run dev` runs.
 *
 * Bookings and cancellations arrive on the `bookings` topic (Kafka key = classId) and are
 * folded into four views: `classAttendance` (per class), `memberBookings` (per member),
 * `dailyClassBookings` (per class and day, a final result once the day is over) and
 * `memberVisits` (per member and session of activity).
 */
import { defineApp } from 'tributary/sdk';
import { triggers } from './triggers.ts';
import { classAttendance, dailyClassBookings, memberBookings, memberVisits } from './views.ts';

export { BOOKINGS_TOPIC, decodeBookingEvent, parseBookingEvent, toMessage } from './events.ts';
export type { BookingEvent } from './events.ts';
export {
  bookingTime,
  classAttendance,
  dailyClassBookings,
  MAX_SESSION_CLASSES,
  MAX_UPCOMING,
  MAX_WAITLIST,
  memberBookings,
  memberVisits,
  reduceClassAttendance,
  reduceMemberBookings,
  VISIT_GAP_MS,
} from './views.ts';
export type { Attendee, ClassAttendance, DailyClassBookings, MemberBookings, MemberVisits, UpcomingClass } from './views.ts';
export { classFull, classNearlyFull, dailyAttendanceReport, waitlistPromoted } from './triggers.ts';

/** The gym app. Its triggers subscribe functions in `functions/handlers/` to view changes. */
export const app = defineApp({
  name: 'gym',
  views: [classAttendance, memberBookings, dailyClassBookings, memberVisits],
  triggers,
});
