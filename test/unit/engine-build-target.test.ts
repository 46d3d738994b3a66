// A build's target per partition (build.ts `partitionTarget`, docs/architecture.md "View
// lifecycle", steps 1 and 3): the live group's position or the skip, whichever is further, but
// never past a recorded handover offset, from which live folding folds every record (with its
// trigger changes) and the build none.
import { describe, expect, it } from 'vitest';
import { partitionTarget } from '../../engine/internal/build.ts';

describe('partitionTarget', () => {
  it('is the largest of the commit, the checkpoint and the skip', () => {
    expect(partitionTarget(10n, 12n, undefined, undefined)).toBe(12n);
    expect(partitionTarget(14n, 12n, undefined, undefined)).toBe(14n);
    expect(partitionTarget(10n, 12n, 20, undefined)).toBe(20n);
    expect(partitionTarget(0n, 0n, undefined, undefined)).toBe(0n);
  });

  it('stops at the handover offset of a handed-over partition', () => {
    // Live folding ran on past the handover at 15 (its checkpoint at 40): the build folds none of it.
    expect(partitionTarget(30n, 40n, 15, 15)).toBe(15n);
    expect(partitionTarget(10n, 12n, 20, 20)).toBe(20n);
    // A handover offset past the live position leaves the target where it is.
    expect(partitionTarget(10n, 12n, undefined, 50)).toBe(12n);
  });
});
