import { describe, expect, it } from 'vitest';
import { partitionLag } from '../../engine/internal/lag.ts';

const watermarks = { partition: 0, high: '27500', low: '0' };

describe('partitionLag', () => {
  it('counts from the low watermark when the group has no committed offset', () => {
    expect(partitionLag({ watermarks })).toBe(27_500);
    expect(partitionLag({ watermarks, committed: '-1' })).toBe(27_500);
    expect(partitionLag({ watermarks: { ...watermarks, low: '500' } })).toBe(27_000);
  });

  it('counts from the committed offset or the durable position, whichever is further', () => {
    expect(partitionLag({ watermarks, committed: '1000' })).toBe(26_500);
    expect(partitionLag({ watermarks, committed: '1000', processed: 4_000n })).toBe(23_500);
    expect(partitionLag({ watermarks, committed: '5000', processed: 4_000n })).toBe(22_500);
  });

  it('is 0 at the end of the log and never negative', () => {
    expect(partitionLag({ watermarks, committed: '27500' })).toBe(0);
    expect(partitionLag({ watermarks, processed: 27_501n })).toBe(0);
  });

  it('ignores a committed offset below the low watermark (records deleted by retention)', () => {
    expect(partitionLag({ watermarks: { partition: 0, high: '100', low: '60' }, committed: '10' })).toBe(40);
  });
});
