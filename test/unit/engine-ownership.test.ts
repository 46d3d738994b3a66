/**
 * The delivery fence of a paused or expelled engine task: PartitionOwnership's verdicts from
 * joins, heartbeats and the clock, and changeSuperseded's reading of stored trigger bookkeeping.
 */
import { describe, expect, it } from 'vitest';
import { changeSuperseded } from '../../engine/internal/ledger.ts';
import { PartitionOwnership } from '../../engine/internal/ownership.ts';

function ownership(sessionTimeoutMs = 3_000) {
  const clock = { ms: 1_000_000 };
  const owner = new PartitionOwnership({ sessionTimeoutMs, now: () => clock.ms });
  return { owner, clock };
}

describe('PartitionOwnership', () => {
  it('owns the assigned partitions of the current generation while heartbeats succeed', () => {
    const { owner, clock } = ownership();
    const generation = owner.joined({ bookings: [0, 2] });
    expect(generation).toBe(1);
    expect(owner.verdict('bookings', 0, generation).right).toBe('owned');
    expect(owner.verdict('bookings', 1, generation).right).toBe('lost');
    clock.ms += 1_000;
    owner.heartbeatSucceeded();
    clock.ms += 1_000;
    expect(owner.verdict('bookings', 2, generation).right).toBe('owned');
  });

  it('is doubtful past half a session without a heartbeat and lost at the session timeout (a paused task)', () => {
    const { owner, clock } = ownership(3_000);
    const generation = owner.joined({ bookings: [0] });
    clock.ms += 1_501;
    expect(owner.verdict('bookings', 0, generation).right).toBe('doubtful');
    clock.ms += 1_499;
    expect(owner.verdict('bookings', 0, generation)).toMatchObject({ right: 'lost', reason: expect.stringContaining('3000 ms') });
    // A heartbeat accepted in the same generation proves the coordinator never expelled it.
    owner.heartbeatSucceeded();
    expect(owner.verdict('bookings', 0, generation).right).toBe('owned');
  });

  it('loses everything on a heartbeat error that proves a rebalance or an expulsion, until the next join', () => {
    const { owner } = ownership();
    const first = owner.joined({ bookings: [0] });
    owner.heartbeatFailed(Object.assign(new Error('socket closed'), { type: 'NETWORK_EXCEPTION' }));
    expect(owner.verdict('bookings', 0, first).right).toBe('owned');
    owner.heartbeatFailed(Object.assign(new Error('The coordinator is not aware of this member'), { type: 'UNKNOWN_MEMBER_ID' }));
    expect(owner.verdict('bookings', 0, first)).toMatchObject({ right: 'lost', reason: expect.stringContaining('UNKNOWN_MEMBER_ID') });
    const second = owner.joined({ bookings: [0] });
    // Changes of a batch fetched before the rejoin stay lost, even if the partition came back.
    expect(owner.verdict('bookings', 0, first).right).toBe('lost');
    expect(owner.verdict('bookings', 0, second).right).toBe('owned');
    owner.heartbeatFailed(Object.assign(new Error('rebalancing'), { type: 'REBALANCE_IN_PROGRESS' }));
    expect(owner.verdict('bookings', 0, second).right).toBe('lost');
  });

  it('owns nothing before the first join', () => {
    const { owner } = ownership();
    expect(owner.verdict('bookings', 0, 0).right).toBe('lost');
  });
});

describe('changeSuperseded', () => {
  it('is true once a later write records the trigger judged the change version or later', () => {
    // Another task delivered v40 and wrote v41 from bookkeeping cleared up to v40.
    expect(changeSuperseded({ version: 41, pending: { notify: 40 } }, 'notify', 40)).toBe(true);
    expect(changeSuperseded({ version: 42, pending: { notify: 41 } }, 'notify', 40)).toBe(true);
    // Nothing owed to the trigger any more.
    expect(changeSuperseded({ version: 42 }, 'notify', 40)).toBe(true);
    expect(changeSuperseded({ version: 42, pending: { other: 3 } }, 'notify', 40)).toBe(true);
  });

  it('is false while the change is still owed, or the item is not past it', () => {
    // v41 written while v40 was still owed: the bookkeeping keeps the trigger at v39.
    expect(changeSuperseded({ version: 41, pending: { notify: 39 } }, 'notify', 40)).toBe(false);
    expect(changeSuperseded({ version: 40, pending: { notify: 39 } }, 'notify', 40)).toBe(false);
    expect(changeSuperseded({ version: 40 }, 'notify', 40)).toBe(false);
    expect(changeSuperseded(undefined, 'notify', 40)).toBe(false);
  });
});
