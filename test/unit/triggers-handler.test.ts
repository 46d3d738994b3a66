import { describe, expect, it } from 'vitest';
import { onEachViewChange, onViewChange, type ViewChangeEvent } from '../../sdk/internal/handler.ts';
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
