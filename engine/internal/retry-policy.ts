/**
 * What the engine does when a batch or a checkpoint fails: retry with capped backoff, or stop
 * the task. A DynamoDB outage of seconds to minutes is ridden out (bounded by an outage budget,
 * not by a count of attempts, which a short outage used up in about five seconds); other
 * retriable failures get a number of attempts; programming errors are never retried, since a
 * bug is not an outage (kafkajs' retrier draws the same line).
 */
import { backoffMs, isProgrammingError } from '../../sdk/contract/index.ts';
import { EngineError, errorInfo } from './errors.ts';

export { isProgrammingError };

/** Limits of {@link decideRetry}. */
export interface RetryPolicy {
  /** Attempts for retriable failures other than storage ones. */
  readonly maxAttempts: number;
  /** How long a retriable storage failure may last before the task stops. */
  readonly storageOutageBudgetMs: number;
  readonly initialBackoffMs: number;
  readonly maxBackoffMs: number;
}

/** Retry after `waitMs`, or stop the task with `error`. */
export type RetryDecision = { readonly retry: true; readonly waitMs: number } | { readonly retry: false; readonly error: EngineError };

/**
 * Normalizes a thrown value of a batch or checkpoint (`what`, e.g. `batch bookings/2`) into an
 * EngineError: programming errors become non-retriable `INTERNAL_ERROR`, anything else unknown
 * a retriable `STORAGE_FAILED` (the store translates AWS errors itself; what is left is the
 * network under the SDK).
 */
export function toEngineError(error: unknown, what: string): EngineError {
  if (isProgrammingError(error)) {
    const inner = error instanceof EngineError && error.cause !== undefined ? error.cause : error;
    return new EngineError(
      'INTERNAL_ERROR',
      `${what} failed with a programming error, not retried: ${errorInfo(inner).type}: ${errorInfo(inner).message}; this is a bug, report it with the stack trace`,
      { cause: error },
    );
  }
  if (error instanceof EngineError) return error;
  return new EngineError('STORAGE_FAILED', `${what} failed: ${errorInfo(error).message}`, { retriable: true, cause: error });
}

/**
 * Decides about the `attempt`-th failure (1-based) of one operation, `failingForMs` after its
 * first failure.
 *
 * @example
 * decideRetry(storageError, 7, 12_000, policy); // { retry: true, waitMs: 10_000 } within a 5-minute budget
 */
export function decideRetry(error: EngineError, attempt: number, failingForMs: number, policy: RetryPolicy): RetryDecision {
  if (!error.retriable) return { retry: false, error };
  if (error.code === 'STORAGE_FAILED') {
    if (failingForMs >= policy.storageOutageBudgetMs) {
      return {
        retry: false,
        error: new EngineError(
          'STORAGE_OUTAGE_BUDGET_EXCEEDED',
          `DynamoDB kept failing for ${failingForMs} ms (${attempt} attempts), past storageOutageBudgetMs ${policy.storageOutageBudgetMs}: ${error.message}; check the table and the endpoint, or raise TRIBUTARY_STORAGE_OUTAGE_BUDGET_MS`,
          { cause: error, context: { ...error.context, failingForMs, attempts: attempt } },
        ),
      };
    }
  } else if (attempt >= policy.maxAttempts) {
    return { retry: false, error };
  }
  return { retry: true, waitMs: backoffMs(attempt, { initialMs: policy.initialBackoffMs, maxMs: policy.maxBackoffMs }) };
}
