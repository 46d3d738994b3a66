import { describe, expect, it } from 'vitest';
import { EngineError } from '../../engine/internal/errors.ts';
import { decideRetry, isProgrammingError, toEngineError, type RetryPolicy } from '../../engine/internal/retry-policy.ts';

const policy: RetryPolicy = { maxAttempts: 6, storageOutageBudgetMs: 60_000, initialBackoffMs: 200, maxBackoffMs: 10_000 };
const storage = new EngineError('STORAGE_FAILED', 'DynamoDB PutItem failed: connect ECONNREFUSED', { retriable: true });

describe('decideRetry', () => {
  it('retries a storage failure past maxAttempts while within the outage budget, backing off up to the cap', () => {
    // Full jitter (the one backoff of sdk/contract): a uniform draw below the 10 s cap.
    const waits = Array.from({ length: 200 }, () => decideRetry(storage, 40, 59_000, policy)).map((d) => (d.retry ? d.waitMs : -1));
    expect(waits.every((ms) => ms >= 0 && ms < 10_000)).toBe(true);
    expect(Math.max(...waits)).toBeGreaterThan(5_000);
  });

  it('stops with STORAGE_OUTAGE_BUDGET_EXCEEDED once the outage lasts the budget', () => {
    const decision = decideRetry(storage, 3, 60_000, policy);
    expect(decision.retry).toBe(false);
    if (!decision.retry) {
      expect(decision.error.code).toBe('STORAGE_OUTAGE_BUDGET_EXCEEDED');
      expect(decision.error.message).toContain('TRIBUTARY_STORAGE_OUTAGE_BUDGET_MS');
      expect(decision.error.cause).toBe(storage);
    }
  });

  it('bounds other retriable failures by maxAttempts', () => {
    const deadLetter = new EngineError('DEAD_LETTER_FAILED', 'could not write dead letters', { retriable: true });
    expect(decideRetry(deadLetter, 5, 1_000, policy).retry).toBe(true);
    expect(decideRetry(deadLetter, 6, 1_000, policy)).toEqual({ retry: false, error: deadLetter });
  });

  it('never retries a non-retriable error', () => {
    const validation = new EngineError('STORAGE_FAILED', 'ValidationException', { retriable: false });
    expect(decideRetry(validation, 1, 0, policy)).toEqual({ retry: false, error: validation });
  });
});

describe('toEngineError', () => {
  it('turns programming errors, bare or wrapped, into non-retriable INTERNAL_ERROR', () => {
    for (const bug of [new TypeError('x is not a function'), new RangeError('Invalid array length'), new ReferenceError('y is not defined')]) {
      const error = toEngineError(bug, 'batch bookings/0');
      expect(error.code).toBe('INTERNAL_ERROR');
      expect(error.retriable).toBe(false);
      const wrapped = toEngineError(new EngineError('STORAGE_FAILED', 'wrapped', { retriable: true, cause: bug }), 'batch bookings/0');
      expect(wrapped.code).toBe('INTERNAL_ERROR');
    }
    expect(isProgrammingError(new SyntaxError('Unexpected token'))).toBe(true);
  });

  it('keeps engine errors and makes other failures retriable STORAGE_FAILED', () => {
    expect(toEngineError(storage, 'batch bookings/0')).toBe(storage);
    const network = Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' });
    const error = toEngineError(network, 'checkpoint bookings/0');
    expect(error.code).toBe('STORAGE_FAILED');
    expect(error.retriable).toBe(true);
    expect(error.message).toContain('checkpoint bookings/0');
    expect(isProgrammingError(network)).toBe(false);
  });
});
