import { describe, expect, it } from 'vitest';
import { DEFAULT_FORCE_AFTER_MS, decideShutdownSignal } from '../../engine/index.ts';

describe('decideShutdownSignal', () => {
  it('starts the graceful stop on the first signal', () => {
    expect(decideShutdownSignal(undefined, 5_000, DEFAULT_FORCE_AFTER_MS)).toBe('stop');
  });

  it('treats a repeat soon after the first as the same request (the relayed copy of one Ctrl-C)', () => {
    expect(decideShutdownSignal(5_000, 5_000, DEFAULT_FORCE_AFTER_MS)).toBe('repeat');
    expect(decideShutdownSignal(5_000, 5_000 + DEFAULT_FORCE_AFTER_MS - 1, DEFAULT_FORCE_AFTER_MS)).toBe('repeat');
  });

  it('forces on a repeat given deliberately later', () => {
    expect(decideShutdownSignal(5_000, 5_000 + DEFAULT_FORCE_AFTER_MS, DEFAULT_FORCE_AFTER_MS)).toBe('force');
    expect(decideShutdownSignal(5_000, 60_000, DEFAULT_FORCE_AFTER_MS)).toBe('force');
  });

  it('waits at least a second before a repeat can force', () => {
    expect(DEFAULT_FORCE_AFTER_MS).toBeGreaterThanOrEqual(1_000);
  });
});
