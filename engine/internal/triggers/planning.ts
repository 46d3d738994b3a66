/**
 * Pure pieces of trigger delivery: item identity, coalescing, batch sizing, backoff and the
 * reading of an invocation's result. No I/O, no clocks; the dispatcher wires them together.
 */
import type { Change, RetryOptions } from '../../../sdk/index.ts';
import { backoffMs } from '../../../sdk/contract/index.ts';

/**
 * Lambda's synchronous (RequestResponse) payload cap is 6 MB (6,291,456 bytes); the
 * dispatcher measures payloads exactly, so a small margin for the HTTP framing is enough.
 */
export const DEFAULT_MAX_PAYLOAD_BYTES = 6 * 1024 * 1024 - 16 * 1024;

/** The identity of the item a change belongs to; changes of one item are delivered in order. */
export function itemIdOf(change: Pick<Change, 'view' | 'key' | 'window'>): string {
  return `${change.view}\u0000${change.key}\u0000${change.window?.start ?? ''}`;
}

/**
 * Merges consecutive changes of ONE item (in version order) into one: `before` of the first
 * (the state last delivered), everything else of the last. Its idempotency key is the last
 * change's, so a redelivery of the same coalesced change is recognised as a duplicate.
 */
export function coalesceChanges<S>(changes: readonly Change<S>[]): Change<S> {
  const first = changes[0];
  const last = changes[changes.length - 1];
  if (!first || !last) throw new RangeError('coalesceChanges needs at least one change');
  if (changes.length === 1) return first;
  return { ...last, before: first.before };
}

/** Bytes of `{"trigger":…,"view":…,"changes":[]}`: the part of a payload that does not grow with the batch. */
export function envelopeBytes(trigger: string, view: string): number {
  return Buffer.byteLength(JSON.stringify({ trigger, view, changes: [] }), 'utf8');
}

/** Bytes a change adds to the `changes` array of a payload (without the separating comma). */
export function changeBytes(change: Change): number {
  return Buffer.byteLength(JSON.stringify(change), 'utf8');
}

/** Limits of one invocation's batch. */
export interface BatchLimits {
  /** Changes per invocation (`trigger.batchSize`). */
  readonly batchSize: number;
  /** Largest payload, in bytes. */
  readonly maxPayloadBytes: number;
  /** {@link envelopeBytes} of the trigger. */
  readonly envelopeBytes: number;
}

/** Payload bytes of a batch of changes whose {@link changeBytes} are `sizes`. */
export function payloadBytes(sizes: readonly number[], envelope: number): number {
  if (sizes.length === 0) return envelope;
  return envelope + sizes.reduce((sum, size) => sum + size, 0) + sizes.length - 1;
}

/**
 * Whether a change of `size` bytes fits a batch that already holds `count` changes in
 * `bytes` payload bytes (envelope included).
 */
export function fitsInBatch(count: number, bytes: number, size: number, limits: BatchLimits): boolean {
  if (count >= limits.batchSize) return false;
  return bytes + size + (count > 0 ? 1 : 0) <= limits.maxPayloadBytes;
}

/** Whether a change of `size` bytes can be sent at all, alone in a batch. */
export function fitsAlone(size: number, limits: BatchLimits): boolean {
  return limits.envelopeBytes + size <= limits.maxPayloadBytes;
}

/**
 * Splits changes of sizes `sizes` (in send order) into batches that respect `limits`, keeping
 * the order. Sizes that cannot fit even alone are returned in `oversized` (indexes) and left out.
 */
export function planBatches(sizes: readonly number[], limits: BatchLimits): { batches: number[][]; oversized: number[] } {
  const batches: number[][] = [];
  const oversized: number[] = [];
  let current: number[] = [];
  let bytes = limits.envelopeBytes;
  sizes.forEach((size, index) => {
    if (!fitsAlone(size, limits)) {
      oversized.push(index);
      return;
    }
    if (!fitsInBatch(current.length, bytes, size, limits)) {
      batches.push(current);
      current = [];
      bytes = limits.envelopeBytes;
    }
    bytes += size + (current.length > 0 ? 1 : 0);
    current.push(index);
  });
  if (current.length > 0) batches.push(current);
  return { batches, oversized };
}

/**
 * Delay before the next attempt after `failedAttempts` failures (1 = after the first): the
 * shared full-jitter backoff with the trigger's bounds.
 */
export function backoffDelayMs(
  failedAttempts: number,
  retry: Required<Pick<RetryOptions, 'initialBackoffMs' | 'maxBackoffMs'>>,
  random: () => number = Math.random,
): number {
  return backoffMs(failedAttempts, { initialMs: retry.initialBackoffMs, maxMs: retry.maxBackoffMs }, random);
}

/** Why an invocation or a change failed, as recorded in a dead letter. */
export interface DeliveryErrorInfo {
  /** `FunctionError` kind, the handler's `errorType`, or the SDK error's name (e.g. `TooManyRequestsException`). */
  readonly type: string;
  readonly message: string;
}

/** How one invocation turned out for the changes it carried. */
export type InvocationResult =
  | { readonly kind: 'ok' }
  /** The function reported these idempotency keys as failed; the rest were delivered. */
  | { readonly kind: 'partial'; readonly failed: ReadonlySet<string>; readonly error: DeliveryErrorInfo }
  /** Nothing was delivered. */
  | { readonly kind: 'error'; readonly error: DeliveryErrorInfo };

const decoder = new TextDecoder();

/**
 * Reads a RequestResponse invocation's result: a `FunctionError` fails the whole batch;
 * a `{ batchItemFailures: [{ itemIdentifier }] }` body fails only the named changes. As in
 * Lambda's own event source mappings, a malformed failure list fails the whole batch, since
 * it cannot be known which changes were processed.
 */
export function readInvocationResult(
  response: { readonly FunctionError?: string | undefined; readonly Payload?: Uint8Array | undefined },
  sentIdempotencyKeys: ReadonlySet<string>,
): InvocationResult {
  const text = response.Payload && response.Payload.byteLength > 0 ? decoder.decode(response.Payload) : '';
  let body: unknown;
  try {
    body = text === '' ? undefined : JSON.parse(text);
  } catch {
    body = text;
  }
  if (response.FunctionError) {
    const error = body as { errorType?: unknown; errorMessage?: unknown } | undefined;
    return {
      kind: 'error',
      error: {
        type: typeof error?.errorType === 'string' ? error.errorType : `FunctionError:${response.FunctionError}`,
        message: typeof error?.errorMessage === 'string' ? error.errorMessage : truncate(text || response.FunctionError),
      },
    };
  }
  if (!body || typeof body !== 'object' || !('batchItemFailures' in body)) return { kind: 'ok' };
  const list = (body as { batchItemFailures: unknown }).batchItemFailures;
  if (list === null || list === undefined) return { kind: 'ok' };
  if (!Array.isArray(list)) {
    return malformed(`batchItemFailures is ${truncate(JSON.stringify(list))}, not an array`);
  }
  const failed = new Set<string>();
  for (const entry of list) {
    const id = (entry as { itemIdentifier?: unknown } | null)?.itemIdentifier;
    if (typeof id !== 'string' || !sentIdempotencyKeys.has(id)) {
      return malformed(
        `batchItemFailures names ${truncate(JSON.stringify(entry))}, which is not the idempotencyKey of a change in the batch`,
      );
    }
    failed.add(id);
  }
  if (failed.size === 0) return { kind: 'ok' };
  return {
    kind: 'partial',
    failed,
    error: { type: 'BatchItemFailure', message: 'the function reported this change in batchItemFailures' },
  };
}

function malformed(message: string): InvocationResult {
  return {
    kind: 'error',
    error: {
      type: 'InvalidBatchItemFailures',
      message: `${message}; report failures as { batchItemFailures: [{ itemIdentifier: change.idempotencyKey }] }`,
    },
  };
}

/** Reads a thrown SDK/network error. `tooLarge` marks a payload the endpoint refused for its size. */
export function readInvokeError(error: unknown): DeliveryErrorInfo & { readonly tooLarge: boolean } {
  const e = error as { name?: unknown; message?: unknown; $metadata?: { httpStatusCode?: number } } | undefined;
  const type = typeof e?.name === 'string' && e.name !== 'Error' ? e.name : 'InvokeError';
  const message = typeof e?.message === 'string' ? e.message : String(error);
  const tooLarge =
    type === 'RequestTooLargeException' ||
    type === 'RequestEntityTooLargeException' ||
    e?.$metadata?.httpStatusCode === 413;
  return { type, message: truncate(message), tooLarge };
}

function truncate(text: string, max = 1_000): string {
  return text.length > max ? `${text.slice(0, max)}…` : text;
}
