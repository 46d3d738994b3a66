/**
 * When a class fills up (trigger `classFull` in functions/triggers.ts), sends the instructor a
 * digest of who is coming: for each attendee, their bookings read from the `memberBookings`
 * view through the SDK's view reads (a second view, keyed by member). The digest is a log line.
 */
import { createViewReader, onEachViewChange, type ViewReader } from 'tributary/sdk';
import { classFull } from '../triggers.ts';
import { memberBookings, type ClassAttendance, type MemberBookings } from '../views.ts';

/** Members with at least this many bookings are called out as regulars. */
export const REGULAR_MIN_BOOKINGS = 5;

/** The digest text, e.g. `class yoga-3 is full (20/20): 20 attendees, 3 regulars (m-1, m-7, m-9), 4 first-timers`. */
export function digestMessage(
  classId: string,
  state: ClassAttendance,
  bookings: readonly (MemberBookings | undefined)[],
): string {
  const known = bookings.filter((b): b is MemberBookings => b !== undefined);
  const regulars = known.filter((b) => b.bookedCount >= REGULAR_MIN_BOOKINGS).map((b) => b.memberId);
  const firstTimers = known.filter((b) => b.bookedCount <= 1).length;
  const regularText = regulars.length === 0 ? '0 regulars' : `${regulars.length} regulars (${regulars.slice(0, 5).join(', ')}${regulars.length > 5 ? ', …' : ''})`;
  return `class ${classId} is full (${state.booked}/${state.capacity}): ${state.attendees.length} attendees, ${regularText}, ${firstTimers} first-timers, ${state.waitlist.length} waitlisted`;
}

// Created on first use: TRIBUTARY_TABLE and the AWS environment are read at the edge, once per container.
let reader: ViewReader | undefined;

/** Lambda entry point. */
export const handler = onEachViewChange(classFull, async (change) => {
  reader ??= createViewReader();
  const memberIds = change.after.attendees.map((a) => a.memberId);
  const items = await reader.getMany(memberBookings, memberIds);
  console.log(`[memberDigest] ${digestMessage(change.key, change.after, items.map((item) => item?.state))}`);
});
