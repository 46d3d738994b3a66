import { describe, expect, it } from 'vitest';
import {
  backoffDelayMs,
  changeBytes,
  coalesceChanges,
  envelopeBytes,
  itemIdOf,
  payloadBytes,
  planBatches,
  readInvocationResult,
  readInvokeError,
} from '../../engine/internal/triggers/planning.ts';
import type { Change } from '../../sdk/index.ts';

function change(key: string, version: number, booked: number, extra: Partial<Change<{ booked: number }>> = {}): Change<{ booked: number }> {
  return {
    view: 'classAttendance',
    key,
    before: version === 1 ? undefined : { booked: booked - 1 },
    after: { booked },
    version,
    offsets: { 'bookings/0': String(version * 10) },
    idempotencyKey: `classAttendance#${key}##${version}`,
    ...extra,
  };
}

const encode = (value: unknown) => new TextEncoder().encode(JSON.stringify(value));

describe('itemIdOf', () => {
  it('separates view, key and window so that distinct items never collide', () => {
    expect(itemIdOf({ view: 'v', key: 'a' })).not.toBe(itemIdOf({ view: 'v', key: 'a', window: { start: 1_767_225_600_000, end: 1_767_312_000_000 } }));
    expect(itemIdOf({ view: 'v', key: 'ab' })).not.toBe(itemIdOf({ view: 'va', key: 'b' }));
    expect(itemIdOf({ view: 'v', key: 'a' })).toBe(itemIdOf({ view: 'v', key: 'a', window: undefined }));
  });
});

describe('coalesceChanges', () => {
  it('keeps the first before and the last after, version, offsets and idempotency key', () => {
    const merged = coalesceChanges([change('yoga', 3, 3), change('yoga', 4, 4), change('yoga', 5, 5)]);
    expect(merged.before).toEqual({ booked: 2 });
    expect(merged.after).toEqual({ booked: 5 });
    expect(merged.version).toBe(5);
    expect(merged.offsets).toEqual({ 'bookings/0': '50' });
    expect(merged.idempotencyKey).toBe('classAttendance#yoga##5');
  });

  it('returns a single change unchanged and refuses an empty list', () => {
    const only = change('yoga', 1, 1);
    expect(coalesceChanges([only])).toBe(only);
    expect(() => coalesceChanges([])).toThrow(RangeError);
  });

  it('keeps an undefined before of a new item', () => {
    expect(coalesceChanges([change('yoga', 1, 1), change('yoga', 2, 2)]).before).toBeUndefined();
  });
});

describe('payload sizing', () => {
  it('measures exactly the bytes JSON.stringify produces for the whole event', () => {
    const changes = [change('yoga', 1, 1), change('pilates-é', 2, 2), change('spin', 7, 7, { window: { start: 1_767_592_800_000, end: 1_767_596_400_000 } })];
    const envelope = envelopeBytes('t-ü', 'classAttendance');
    const measured = payloadBytes(changes.map(changeBytes), envelope);
    const actual = Buffer.byteLength(JSON.stringify({ trigger: 't-ü', view: 'classAttendance', changes }), 'utf8');
    expect(measured).toBe(actual);
    expect(payloadBytes([], envelope)).toBe(Buffer.byteLength(JSON.stringify({ trigger: 't-ü', view: 'classAttendance', changes: [] })));
  });
});

describe('planBatches', () => {
  const envelope = 50;

  it('cuts batches at batchSize', () => {
    const { batches, oversized } = planBatches(new Array(250).fill(10), { batchSize: 100, maxPayloadBytes: 1_000_000, envelopeBytes: envelope });
    expect(batches.map((b) => b.length)).toEqual([100, 100, 50]);
    expect(batches.flat()).toEqual([...Array(250).keys()]);
    expect(oversized).toEqual([]);
  });

  it('cuts batches by size so that no payload exceeds the cap, keeping order', () => {
    const sizes = [400, 400, 400, 100, 100, 900, 60, 40];
    const limits = { batchSize: 100, maxPayloadBytes: 1_000, envelopeBytes: envelope };
    const { batches } = planBatches(sizes, limits);
    expect(batches).toEqual([[0, 1], [2, 3, 4], [5], [6, 7]]);
    for (const batch of batches) {
      expect(payloadBytes(batch.map((i) => sizes[i]!), envelope)).toBeLessThanOrEqual(1_000);
    }
  });

  it('reports a change that cannot fit even alone', () => {
    const { batches, oversized } = planBatches([10, 2_000, 10], { batchSize: 100, maxPayloadBytes: 1_000, envelopeBytes: envelope });
    expect(oversized).toEqual([1]);
    expect(batches).toEqual([[0, 2]]);
  });

  it('splits a realistic 6 MB case: 100 changes of 100 KB go out in two invocations', () => {
    const { batches } = planBatches(new Array(100).fill(100_000), { batchSize: 100, maxPayloadBytes: 6 * 1024 * 1024 - 16 * 1024, envelopeBytes: envelope });
    expect(batches.map((b) => b.length)).toEqual([62, 38]);
  });
});

describe('backoffDelayMs', () => {
  const retry = { initialBackoffMs: 100, maxBackoffMs: 5_000 };

  it('draws below an exponentially growing ceiling (full jitter)', () => {
    const top = () => 0.999_999;
    expect(backoffDelayMs(1, retry, top)).toBe(99);
    expect(backoffDelayMs(2, retry, top)).toBe(199);
    expect(backoffDelayMs(3, retry, top)).toBe(399);
    expect(backoffDelayMs(4, retry, top)).toBe(799);
    expect(backoffDelayMs(1, retry, () => 0)).toBe(0);
    expect(backoffDelayMs(2, retry, () => 0.5)).toBe(100);
  });

  it('caps at maxBackoffMs, also for huge attempt counts', () => {
    expect(backoffDelayMs(7, retry, () => 0.999_999)).toBe(4_999);
    expect(backoffDelayMs(1_000, retry, () => 0.999_999)).toBe(4_999);
  });

  it('spreads delays over the whole window with a real random source', () => {
    const delays = Array.from({ length: 2_000 }, () => backoffDelayMs(3, retry));
    expect(Math.min(...delays)).toBeGreaterThanOrEqual(0);
    expect(Math.max(...delays)).toBeLessThan(400);
    expect(delays.filter((d) => d < 200).length).toBeGreaterThan(800);
    expect(delays.filter((d) => d >= 200).length).toBeGreaterThan(800);
  });
});

describe('readInvocationResult', () => {
  const sent = new Set(['a#1', 'b#4', 'c#2']);

  it('treats an empty, null or non-failure body as all delivered', () => {
    expect(readInvocationResult({}, sent)).toEqual({ kind: 'ok' });
    expect(readInvocationResult({ Payload: encode(null) }, sent)).toEqual({ kind: 'ok' });
    expect(readInvocationResult({ Payload: encode({ done: true }) }, sent)).toEqual({ kind: 'ok' });
    expect(readInvocationResult({ Payload: encode({ batchItemFailures: [] }) }, sent)).toEqual({ kind: 'ok' });
    expect(readInvocationResult({ Payload: encode('ok') }, sent)).toEqual({ kind: 'ok' });
  });

  it('fails only the changes named in batchItemFailures', () => {
    const result = readInvocationResult({ Payload: encode({ batchItemFailures: [{ itemIdentifier: 'b#4' }] }) }, sent);
    expect(result.kind).toBe('partial');
    if (result.kind !== 'partial') throw new Error('unreachable');
    expect([...result.failed]).toEqual(['b#4']);
  });

  it('fails the whole batch on a FunctionError, with the handler error type and message', () => {
    const result = readInvocationResult(
      { FunctionError: 'Unhandled', Payload: encode({ errorType: 'TypeError', errorMessage: 'x is undefined' }) },
      sent,
    );
    expect(result).toEqual({ kind: 'error', error: { type: 'TypeError', message: 'x is undefined' } });
    const bare = readInvocationResult({ FunctionError: 'Unhandled' }, sent);
    expect(bare.kind === 'error' && bare.error.type).toBe('FunctionError:Unhandled');
  });

  it('fails the whole batch when batchItemFailures is malformed or names an unknown change', () => {
    for (const body of [
      { batchItemFailures: 'a#1' },
      { batchItemFailures: [{ itemIdentifier: 'zzz' }] },
      { batchItemFailures: [{ id: 'a#1' }] },
      { batchItemFailures: [null] },
    ]) {
      const result = readInvocationResult({ Payload: encode(body) }, sent);
      expect(result.kind).toBe('error');
      expect(result.kind === 'error' && result.error.type).toBe('InvalidBatchItemFailures');
    }
  });
});

describe('readInvokeError', () => {
  it('names SDK errors by their name and spots payloads refused as too large', () => {
    const throttled = Object.assign(new Error('Rate exceeded'), { name: 'TooManyRequestsException' });
    expect(readInvokeError(throttled)).toEqual({ type: 'TooManyRequestsException', message: 'Rate exceeded', tooLarge: false });
    const big = Object.assign(new Error('too big'), { name: 'RequestTooLargeException' });
    expect(readInvokeError(big).tooLarge).toBe(true);
    const status413 = Object.assign(new Error('Payload Too Large'), { $metadata: { httpStatusCode: 413 } });
    expect(readInvokeError(status413)).toMatchObject({ type: 'InvokeError', tooLarge: true });
    expect(readInvokeError('boom')).toMatchObject({ type: 'InvokeError', message: 'boom' });
  });
});
