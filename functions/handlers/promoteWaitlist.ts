/**
 * Welcomes members promoted from a class's waitlist after a cancellation (trigger
 * `waitlistPromoted` in functions/triggers.ts). The `classAttendance` view already moved them
 * into the class; this function tells each of them, once per member and change, through the
 * idempotency helper, so redeliveries never notify twice.
 */
import { once, onEachViewChange } from 'tributary/sdk';
import { promotedMembers, waitlistPromoted } from '../triggers.ts';

/** Lambda entry point. */
export const handler = onEachViewChange(waitlistPromoted, async (change, context) => {
  const { after } = change;
  for (const member of promotedMembers(change.before, after)) {
    await once(
      `promoteWaitlist:${change.idempotencyKey}:${member.memberId}`,
      () => {
        console.log(
          `[promoteWaitlist] member ${member.memberId} promoted from the waitlist into class ${change.key} (${after.booked}/${after.capacity}, ${after.waitlist.length} still waiting)`,
        );
        return { memberId: member.memberId, bookingId: member.bookingId };
      },
      { lambda: context.lambda },
    );
  }
});
