/**
 * The gym-booking example app: the one module the engine loads (`TRIBUTARY_APP_MODULE`),
 * the CDK app deploys and `npm run dev` runs.
 *
 * Bookings and cancellations arrive on the `bookings` topic (Kafka key = classId) and are
 * folded into two views: `classAttendance` (per class) and `memberBookings` (per member).
 */
import { defineApp } from 'tributary/sdk';
import { triggers } from './triggers.ts';
import { classAttendance, memberBookings } from './views.ts';

export { BOOKINGS_TOPIC, decodeBookingEvent, parseBookingEvent, toMessage } from './events.ts';
export type { BookingEvent } from './events.ts';
export { classAttendance, memberBookings, MAX_UPCOMING, MAX_WAITLIST, reduceClassAttendance, reduceMemberBookings } from './views.ts';
export type { Attendee, ClassAttendance, MemberBookings, UpcomingClass } from './views.ts';
export { classFull, classNearlyFull, waitlistPromoted } from './triggers.ts';

/** The gym app. Its triggers subscribe functions in `functions/handlers/` to view changes. */
export const app = defineApp({
  name: 'gym',
  views: [classAttendance, memberBookings],
  triggers,
});
