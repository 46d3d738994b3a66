/**
 * Tells a class's instructor that the class crossed 90% of its capacity (trigger
 * `classNearlyFull` in functions/triggers.ts). The "notification" is a log line; it is sent
 * once per crossing, however often the change is redelivered, through the idempotency helper.
 */
import { once, onEachViewChange } from 'tributary/sdk';
import { classNearlyFull } from '../triggers.ts';
import type { ClassAttendance } from '../views.ts';

/** The notification text, e.g. `class yoga-3 is 90% full (18/20)`. */
export function nearlyFullMessage(classId: string, state: ClassAttendance): string {
  const percent = Math.floor((state.booked * 100) / state.capacity);
  return `class ${classId} is ${percent}% full (${state.booked}/${state.capacity})`;
}

/** Lambda entry point. */
export const handler = onEachViewChange(classNearlyFull, async (change, context) => {
  await once(
    `notifyInstructor:${change.idempotencyKey}`,
    () => {
      console.log(`[notifyInstructor] ${nearlyFullMessage(change.key, change.after)}`);
      return { notifiedAt: new Date().toISOString() };
    },
    { lambda: context.lambda },
  );
});
