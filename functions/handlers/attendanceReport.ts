/**
 * When a class's day is over (trigger `dailyAttendanceReport` in functions/triggers.ts, on the
 * final result of a `dailyClassBookings` window), reports the day's bookings and cancellations.
 * The report is a log line; a real app would mail it or store it. A final result may come again
 * after an engine crash, with the same idempotency key: wrap a side effect in `once()` then.
 */
import { onEachViewChange, type WindowBounds } from 'tributary/sdk';
import { dailyAttendanceReport } from '../triggers.ts';
import type { DailyClassBookings } from '../views.ts';

/** The report text, e.g. `class yoga-3 on 2026-01-05: 14 bookings, 2 cancellations`. */
export function attendanceReportMessage(classId: string, window: WindowBounds, day: DailyClassBookings): string {
  const date = new Date(window.start).toISOString().slice(0, 10);
  return `class ${classId} on ${date}: ${day.booked} booking${day.booked === 1 ? '' : 's'}, ${day.cancelled} cancellation${day.cancelled === 1 ? '' : 's'}`;
}

/** Lambda entry point. */
export const handler = onEachViewChange(dailyAttendanceReport, async (change) => {
  if (change.window === undefined) return; // never for this windowed view; narrows the type
  console.log(`[attendanceReport] ${attendanceReportMessage(change.key, change.window, change.after)}`);
});
