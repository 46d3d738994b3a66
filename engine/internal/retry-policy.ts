/**
 * What the engine does when a batch or a checkpoint fails: retry with capped backoff, or stop
 * the task. A DynamoDB outage of seconds to minutes is ridden out (bounded by an outage budget,
 * not by a count of attempts, which a short outage used up in about five seconds); other
 * retriable failures get a number of attempts; programming errors are never retried, since a
 * bug is not an outage (kafkajs' retrier draws the same line).
 */
import { backoffMs, isProgrammingError } from '../../sdk/contract/index.ts';
import { EngineError, errorInfo } from './errors.ts';
import type { Logger } from './log.ts';

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

/** What {@link retrying} needs from the task it retries for. */
export interface RetryingHooks {
  readonly policy: RetryPolicy;
  readonly log: Logger;
  /** The log line of a failure that is retried, e.g. `batch failed; retrying`. */
  readonly message: string;
  /** Fields of that log line (topic, partition). */
  readonly fields: Readonly<Record<string, unknown>>;
  /** Marks the operation as retrying (the task reports degraded meanwhile), or done retrying. */
  degraded(operation: string, failing: { sinceMs: number; error: EngineError } | undefined): void;
  /** Stops the task with the error the policy gave up on. */
  fail(error: EngineError): void;
  /** Waits before the next attempt. */
  wait(ms: number): Promise<void>;
  /** Before attempt `attempt`: false gives up without an error (the task failed or is stopping). */
  proceed?(attempt: number): boolean;
  /** After a failure, before the policy decides: true gives up without an error (the caller handled it). */
  handled?(error: EngineError): boolean | Promise<boolean>;
}

/**
 * Runs `work` (a batch, a checkpoint) under the task's retry policy: each failure becomes an
 * EngineError, a retriable one is retried after the policy's backoff while the task reports
 * degraded, and one the policy gives up on fails the task. Resolves with the value, or
 * `undefined` when it gave up.
 *
 * @example
 * const done = await retrying(`checkpoint ${topic}/${partition}`, () => store.writeCheckpoint(topic, partition, next), hooks);
 * if (done === undefined) return; // the task failed, or stopped
 */
export async function retrying<T>(operation: string, work: () => Promise<T>, hooks: RetryingHooks): Promise<{ value: T } | undefined> {
  let firstFailureMs: number | undefined;
  try {
    for (let attempt = 1; ; attempt += 1) {
      if (hooks.proceed !== undefined && !hooks.proceed(attempt)) return undefined;
      try {
        return { value: await work() };
      } catch (error) {
        firstFailureMs ??= Date.now();
        const engineError = toEngineError(error, operation);
        if (hooks.handled !== undefined && (await hooks.handled(engineError))) return undefined;
        const decision = decideRetry(engineError, attempt, Date.now() - firstFailureMs, hooks.policy);
        if (!decision.retry) {
          hooks.fail(decision.error);
          return undefined;
        }
        hooks.degraded(operation, { sinceMs: firstFailureMs, error: engineError });
        hooks.log.warn(hooks.message, { ...hooks.fields, attempt, waitMs: decision.waitMs, error: engineError });
        await hooks.wait(decision.waitMs);
      }
    }
  } finally {
    hooks.degraded(operation, undefined);
  }
}
