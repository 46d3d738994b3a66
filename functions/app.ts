/**
 * The gym-booking example app: the one module the engine loads (`TRIBUTARY_APP_MODULE`),
 * the CDK app deploys and `npm run dev` runs.
 *
 * Bookings and cancellations arrive on the `bookings` topic (Kafka key = classId) and are
 * folded into four views: `classAttendance` (per class), `memberBookings` (per member),
 * `dailyClassBookings` (per class and day, a final result once the day is over) and
 * `memberVisits` (per member and session of activity). The `members` topic (compacted, key =
 * memberId) is the `members` table, whose rows `classTiers` looks up to count a class's bookings
 * by member tier.
 */
import { defineApp } from 'tributary/sdk';
import { triggers } from './triggers.ts';
import { classAttendance, classTiers, dailyClassBookings, memberBookings, members, memberVisits } from './views.ts';

export { BOOKINGS_TOPIC, decodeBookingEvent, MEMBERS_TOPIC, parseBookingEvent, TIERS, toMemberMessage, toMessage } from './events.ts';
export type { BookingEvent, MemberRow } from './events.ts';
export {
  bookingTime,
  classAttendance,
  classTiers,
  dailyClassBookings,
  MAX_SESSION_CLASSES,
  MAX_UPCOMING,
  MAX_WAITLIST,
  memberBookings,
  members,
  memberVisits,
  reduceClassAttendance,
  reduceMemberBookings,
  VISIT_GAP_MS,
} from './views.ts';
export type { Attendee, ClassAttendance, ClassTiers, DailyClassBookings, MemberBookings, MemberVisits, UpcomingClass } from './views.ts';
export { classFull, classNearlyFull, dailyAttendanceReport, waitlistPromoted } from './triggers.ts';

/** The gym app. Its triggers subscribe functions in `functions/handlers/` to view changes. */
export const app = defineApp({
  name: 'gym',
  views: [classAttendance, memberBookings, dailyClassBookings, memberVisits, members, classTiers],
  triggers,
});
