import { describe, expect, it } from 'vitest';
import { onEachViewChange, onViewChange, type ViewChangeEvent } from '../../sdk/internal/handler.ts';
import { HIGH_WATER_MARK_SK_PREFIX, highWaterMarkSortKey, type HighWaterMark } from '../../sdk/internal/high-water-mark.ts';
import { defineTrigger, defineView, SdkError, type Change } from '../../sdk/index.ts';

interface Seats {
  readonly booked: number;
}

const seats = defineView({
  name: 'seats',
  source: 'bookings',
  key: (e: { classId: string }) => e.classId,
  initial: (): Seats => ({ booked: 0 }),
  reduce: (s: Seats) => ({ booked: s.booked + 1 }),
});
const trigger = defineTrigger({ view: seats, function: 'seatsFn' });

function change(key: string, version: number): Change<Seats> {
  return {
    view: 'seats',
    key,
    before: { booked: version - 1 },
    after: { booked: version },
    version,
    offsets: {},
    idempotencyKey: `seats#${key}##${version}`,
  };
}

const event = (...changes: Change<Seats>[]): ViewChangeEvent<Seats> => ({ trigger: trigger.name, view: 'seats', changes });

describe('onViewChange', () => {
  it('passes the typed changes and context, and reports no failures when the handler returns nothing', async () => {
    const seen: string[] = [];
    const handler = onViewChange(trigger, async (changes, context) => {
      for (const c of changes) seen.push(`${context.trigger}/${context.view}/${c.key}:${c.after.booked}`);
    });
    const response = await handler(event(change('a', 1), change('b', 4)), { functionName: 'seatsFn' });
    expect(seen).toEqual(['seats-seatsFn/seats/a:1', 'seats-seatsFn/seats/b:4']);
    expect(response).toEqual({ batchItemFailures: [] });
  });

  it('lets a thrown error through so the whole batch is retried', async () => {
    const handler = onViewChange(trigger, () => {
      throw new RangeError('downstream down');
    });
    await expect(handler(event(change('a', 1)))).rejects.toThrow(RangeError);
  });

  it('passes a returned batchItemFailures through and rejects a malformed return value', async () => {
    const partial = onViewChange(trigger, (changes) => ({ batchItemFailures: [{ itemIdentifier: changes[0]!.idempotencyKey }] }));
    expect(await partial(event(change('a', 1), change('b', 1)))).toEqual({ batchItemFailures: [{ itemIdentifier: 'seats#a##1' }] });
    const wrong = onViewChange(trigger, () => ({ failed: ['a'] }) as never);
    await expect(wrong(event(change('a', 1)))).rejects.toMatchObject({ code: 'HANDLER_FAILED' });
  });

  it('refuses events that are not view change events of the trigger view, with INVALID_ARGUMENT', async () => {
    const handler = onViewChange(trigger, () => {});
    await expect(handler({ hello: 'world' })).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
    await expect(handler({ trigger: 'x', view: 'other', changes: [] })).rejects.toThrow(/handles view "seats" but received changes of view "other"/);
  });

  it('refuses a non-trigger at definition time', () => {
    expect(() => onViewChange(seats as never, () => {})).toThrow(SdkError);
    expect(() => onViewChange(trigger, 'nope' as never)).toThrow(/handler must be a function/);
  });
});

describe('bigints in changes', () => {
  it('reach both wrappers as bigint, not in the tagged form the JSON payload carries', async () => {
    // As the engine sends them: JSON, a bigint as { $bigint: "<decimal>" }.
    const wire = JSON.parse(
      JSON.stringify(
        event({ ...change('a', 2), before: { booked: { $bigint: '9007199254740992' } } as never, after: { booked: { $bigint: '9007199254740993' } } as never }),
      ),
    );
    const batch: unknown[] = [];
    await onViewChange(trigger, async (changes) => {
      for (const c of changes) batch.push([c.before?.booked, c.after.booked]);
    })(wire);
    const each: unknown[] = [];
    await onEachViewChange(trigger, async (c) => {
      each.push([c.before?.booked, c.after.booked]);
    })(wire);
    expect(batch).toEqual([[2n ** 53n, 2n ** 53n + 1n]]);
    expect(each).toEqual(batch);
  });
});

describe('onEachViewChange', () => {
  it('reports only the changes whose handler threw, so only those are retried', async () => {
    const processed: string[] = [];
    const errors: string[] = [];
    const handler = onEachViewChange(
      trigger,
      async (c) => {
        if (c.key === 'bad') throw new Error('nope');
        processed.push(c.idempotencyKey);
      },
      { onError: (error, c) => errors.push(`${c.key}:${(error as Error).message}`) },
    );
    const response = await handler(event(change('a', 1), change('bad', 2), change('c', 3)));
    expect(response).toEqual({ batchItemFailures: [{ itemIdentifier: 'seats#bad##2' }] });
    expect(processed.sort()).toEqual(['seats#a##1', 'seats#c##3']);
    expect(errors).toEqual(['bad:nope']);
  });

  it('runs changes of distinct keys in parallel up to concurrency', async () => {
    let inFlight = 0;
    let maxInFlight = 0;
    const handler = onEachViewChange(
      trigger,
      async () => {
        inFlight++;
        maxInFlight = Math.max(maxInFlight, inFlight);
        await new Promise((resolve) => setImmediate(resolve));
        inFlight--;
      },
      { concurrency: 3 },
    );
    const changes = Array.from({ length: 10 }, (_, i) => change(`k${i}`, 1));
    expect(await handler(event(...changes))).toEqual({ batchItemFailures: [] });
    expect(maxInFlight).toBe(3);
  });

  it('runs two changes of one key in order, and fails the later one too when the earlier one fails', async () => {
    const order: number[] = [];
    const handler = onEachViewChange(
      trigger,
      async (c) => {
        order.push(c.version);
        if (c.version === 1) throw new Error('first fails');
      },
      { onError: () => {} },
    );
    const response = await handler(event(change('a', 1), change('a', 2)));
    expect(order).toEqual([1]);
    expect(response.batchItemFailures.map((f) => f.itemIdentifier)).toEqual(['seats#a##1', 'seats#a##2']);
  });

  it('validates concurrency', () => {
    expect(() => onEachViewChange(trigger, () => {}, { concurrency: 0 })).toThrow(/concurrency must be a positive integer/);
  });
});

/** The high-water mark's rule without its table: the highest version accepted per (trigger, item). */
class MemoryHighWaterMark implements HighWaterMark {
  readonly marks = new Map<string, number>();
  calls = 0;
  async accept(trigger: string, c: Pick<Change, 'view' | 'key' | 'window' | 'version'>): Promise<boolean> {
    this.calls++;
    const sk = highWaterMarkSortKey(trigger, c);
    if ((this.marks.get(sk) ?? 0) > c.version) return false;
    this.marks.set(sk, c.version);
    return true;
  }
}

describe('the per-key high-water mark of the handler wrappers', () => {
  it('is off by default: a stale older version still reaches the handler', async () => {
    const seen: number[] = [];
    const handler = onEachViewChange(trigger, (c) => void seen.push(c.version));
    await handler(event(change('a', 2)));
    await handler(event(change('a', 1)));
    expect(seen).toEqual([2, 1]);
  });

  it('onEachViewChange refuses a change older than the newest accepted for its key, as processed, and reports it to onStale', async () => {
    const marks = new MemoryHighWaterMark();
    const seen: string[] = [];
    const stale: string[] = [];
    const handler = onEachViewChange(trigger, (c) => void seen.push(`${c.key}@${c.version}`), {
      highWaterMark: marks,
      onStale: (c) => stale.push(`${c.key}@${c.version}`),
    });
    expect(await handler(event(change('a', 41), change('b', 1)))).toEqual({ batchItemFailures: [] });
    // The paused task's v40 arrives after the new owner's v41; a redelivery of v41 still passes.
    expect(await handler(event(change('a', 40), change('b', 2)))).toEqual({ batchItemFailures: [] });
    expect(await handler(event(change('a', 41)))).toEqual({ batchItemFailures: [] });
    expect(seen).toEqual(['a@41', 'b@1', 'b@2', 'a@41']);
    expect(stale).toEqual(['a@40']);
  });

  it('onEachViewChange reports a change whose mark cannot be raised as failed, without running the handler', async () => {
    const failing: HighWaterMark = {
      accept: async () => {
        throw new SdkError('HIGH_WATER_MARK_FAILED', 'table unreachable', { retriable: true });
      },
    };
    let runs = 0;
    const handler = onEachViewChange(trigger, () => void runs++, { highWaterMark: failing, onError: () => {} });
    expect(await handler(event(change('a', 1)))).toEqual({ batchItemFailures: [{ itemIdentifier: 'seats#a##1' }] });
    expect(runs).toBe(0);
  });

  it('onViewChange hands the batch handler only the changes at or above their key\'s mark, and skips it when none is left', async () => {
    const marks = new MemoryHighWaterMark();
    const batches: string[][] = [];
    const handler = onViewChange(trigger, (changes) => void batches.push(changes.map((c) => `${c.key}@${c.version}`)), {
      highWaterMark: marks,
    });
    await handler(event(change('a', 5), change('b', 5)));
    await handler(event(change('a', 4), change('b', 6)));
    expect(await handler(event(change('a', 3), change('b', 2)))).toEqual({ batchItemFailures: [] });
    expect(batches).toEqual([['a@5', 'b@5'], ['b@6']]);
  });

  it('keeps one mark per trigger and item, under its own sort-key prefix', () => {
    expect(highWaterMarkSortKey('notify', { view: 'seats', key: 'a' })).toBe(`${HIGH_WATER_MARK_SK_PREFIX}notify#seats##a`);
    expect(highWaterMarkSortKey('notify', { view: 'seats', key: 'a' })).not.toBe(highWaterMarkSortKey('audit', { view: 'seats', key: 'a' }));
    // DynamoDB caps a sort key at 1024 bytes: a longer one is named by its hash.
    const long = highWaterMarkSortKey('notify', { view: 'seats', key: 'k'.repeat(2_000) });
    expect(long).toMatch(new RegExp(`^${HIGH_WATER_MARK_SK_PREFIX}sha256:[0-9a-f]{64}$`));
  });

  it('validates highWaterMark and onStale', () => {
    expect(() => onEachViewChange(trigger, () => {}, { highWaterMark: {} as HighWaterMark })).toThrow(
      expect.objectContaining({ code: 'INVALID_ARGUMENT', message: expect.stringContaining('createHighWaterMark()') }),
    );
    expect(() => onViewChange(trigger, () => {}, { onStale: 'log' as never })).toThrow(/onStale must be a function/);
  });
});
