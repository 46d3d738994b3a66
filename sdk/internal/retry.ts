/**
 * How every part of Tributary decides whether to retry, and how long to wait: one classifier of
 * AWS SDK errors, one backoff, and one retrier in the style of kafkajs's `createRetry`. A bug is
 * not an outage: programming errors are never retried.
 */

/** Errors that mean the code is wrong, not the world: retrying cannot help. */
const PROGRAMMING_ERRORS = ['TypeError', 'RangeError', 'ReferenceError', 'SyntaxError'] as const;

/**
 * Whether `error` (or an error it wraps as `cause`) is a programming error: a `TypeError`,
 * `RangeError`, `ReferenceError` or `SyntaxError`.
 *
 * @example
 * isProgrammingError(new TypeError("Cannot read properties of undefined (reading 'pk')")); // true
 */
export function isProgrammingError(error: unknown): boolean {
  for (let e = error, depth = 0; e instanceof Error && depth < 8; e = e.cause, depth++) {
    // The AWS SDK rethrows a SyntaxError with the response attached when a body is not JSON
    // (an HTML 502 from a proxy, an emulator's error page): that is the network, not a bug.
    if (isServiceResponse(e)) return false;
    if (PROGRAMMING_ERRORS.some((name) => e instanceof globalThis[name])) return true;
  }
  return false;
}

function isServiceResponse(error: Error): boolean {
  const fields = error as { $metadata?: unknown; $response?: unknown; $responseBodyText?: unknown };
  return fields.$metadata !== undefined || fields.$response !== undefined || fields.$responseBodyText !== undefined;
}

/** What kind of failure an AWS SDK call (or the network under it) had. */
export type AwsErrorKind =
  /** A condition expression failed: the item changed; re-read, never retry blindly. */
  | 'condition-failed'
  /** Throttling or a request-rate limit: back off and retry. */
  | 'throttled'
  /** The table, function or resource does not exist: fails the same way every time. */
  | 'not-found'
  /** The request is malformed or too large: fails the same way every time. */
  | 'invalid-request'
  /** The caller may not do this: fails the same way until permissions change. */
  | 'access-denied'
  /** A bug in the caller (TypeError, ...): never retried. */
  | 'programming'
  /** Anything else: a 5xx, a timeout, a refused or reset connection. Worth retrying. */
  | 'transient';

/** The classification of one error. */
export interface AwsErrorClass {
  readonly kind: AwsErrorKind;
  readonly retriable: boolean;
  /** The error's name, e.g. `ProvisionedThroughputExceededException`, `TimeoutError`. */
  readonly name: string;
  readonly message: string;
}

const KINDS_BY_NAME: Readonly<Record<string, AwsErrorKind>> = {
  ConditionalCheckFailedException: 'condition-failed',
  ProvisionedThroughputExceededException: 'throttled',
  ThrottlingException: 'throttled',
  RequestLimitExceeded: 'throttled',
  TooManyRequestsException: 'throttled',
  LimitExceededException: 'throttled',
  ResourceNotFoundException: 'not-found',
  ValidationException: 'invalid-request',
  SerializationException: 'invalid-request',
  InvalidParameterValueException: 'invalid-request',
  InvalidRequestContentException: 'invalid-request',
  RequestTooLargeException: 'invalid-request',
  ItemCollectionSizeLimitExceededException: 'invalid-request',
  AccessDeniedException: 'access-denied',
  UnrecognizedClientException: 'access-denied',
  InvalidSignatureException: 'access-denied',
  MissingAuthenticationTokenException: 'access-denied',
};

/**
 * Classifies an error from an AWS SDK call. Known names decide; otherwise a client fault with
 * a 4xx status other than 408/429 is an invalid request, and everything else (5xx, timeouts,
 * refused or reset connections) is transient. Retriable: throttled and transient.
 *
 * @example
 * const { retriable, kind } = classifyAwsError(error); // { kind: 'throttled', retriable: true, ... }
 */
export function classifyAwsError(error: unknown): AwsErrorClass {
  const name = (error as { name?: unknown } | null)?.name;
  const errorName = typeof name === 'string' ? name : typeof error;
  const message = error instanceof Error ? error.message : String(error);
  const of = (kind: AwsErrorKind): AwsErrorClass => ({ kind, retriable: kind === 'throttled' || kind === 'transient', name: errorName, message });
  if (isProgrammingError(error)) return of('programming');
  const known = KINDS_BY_NAME[errorName];
  if (known !== undefined) return of(known);
  const meta = error as { $retryable?: { throttling?: boolean }; $fault?: string; $metadata?: { httpStatusCode?: number } } | null;
  if (meta?.$retryable?.throttling === true) return of('throttled');
  const status = meta?.$metadata?.httpStatusCode;
  if (meta?.$fault === 'client' && status !== undefined && status >= 400 && status < 500 && status !== 408 && status !== 429) return of('invalid-request');
  return of('transient');
}

/** Exponential backoff bounds. */
export interface BackoffOptions {
  /** Ceiling of the first wait. */
  readonly initialMs: number;
  /** Largest ceiling, however many attempts failed. */
  readonly maxMs: number;
}

/**
 * The wait before retry number `attempt` (1 after the first failure): exponential backoff with
 * full jitter, a uniform draw in `[0, min(maxMs, initialMs * 2^(attempt-1)))`, which spreads the
 * retries of many callers failing together (a throttle) over the window.
 *
 * @example
 * await delay(backoffMs(attempt, { initialMs: 100, maxMs: 5_000 }));
 */
export function backoffMs(attempt: number, bounds: BackoffOptions, random: () => number = Math.random): number {
  const exponent = Math.min(Math.max(0, attempt - 1), 30);
  const ceiling = Math.min(bounds.maxMs, bounds.initialMs * 2 ** exponent);
  return Math.floor(random() * ceiling);
}

/** Options of {@link createRetry}. */
export interface RetryPolicyOptions extends BackoffOptions {
  /** Attempts in all, the first included. */
  readonly maxAttempts: number;
  /**
   * Whether a failure is worth another attempt.
   * @default classifyAwsError(error).retriable (never a programming error)
   */
  readonly retriable?: (error: unknown) => boolean;
  /**
   * Random source in [0, 1) for the jitter.
   * @default Math.random
   */
  readonly random?: () => number;
}

/** Gives up at once with `error`: no further attempt. */
export type Bail = (error: unknown) => never;

/**
 * A retrier: `retry((bail, attempt) => work())` runs `work` until it resolves, it calls `bail`,
 * it fails with what `retriable` refuses, or `maxAttempts` ran out (then the last error is
 * thrown). Programming errors are never retried, whatever `retriable` says.
 *
 * @example
 * const retry = createRetry({ maxAttempts: 5, initialMs: 50, maxMs: 2_000 });
 * const item = await retry(async (bail) => {
 *   const out = await client.send(command);
 *   if (out.Item === undefined) bail(new Error('not there'));
 *   return out.Item;
 * });
 */
export function createRetry(options: RetryPolicyOptions): <T>(work: (bail: Bail, attempt: number) => Promise<T>) => Promise<T> {
  const retriable = options.retriable ?? ((error: unknown) => classifyAwsError(error).retriable);
  return async <T>(work: (bail: Bail, attempt: number) => Promise<T>): Promise<T> => {
    const bailed = new WeakSet<object>();
    for (let attempt = 1; ; attempt++) {
      try {
        return await work((error: unknown): never => {
          const marker = { error };
          bailed.add(marker);
          throw marker;
        }, attempt);
      } catch (thrown) {
        if (typeof thrown === 'object' && thrown !== null && bailed.has(thrown)) throw (thrown as { error: unknown }).error;
        if (isProgrammingError(thrown) || !retriable(thrown) || attempt >= options.maxAttempts) throw thrown;
        await new Promise((resolve) => setTimeout(resolve, backoffMs(attempt, options, options.random)));
      }
    }
  };
}
