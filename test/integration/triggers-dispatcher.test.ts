/**
 * The trigger dispatcher against the real Lambda Invoke API endpoint: each test starts its own
 * endpoint with in-test handlers (observed in process) and a real LambdaClient pointed at it.
 */
import type { LambdaClient } from '@aws-sdk/client-lambda';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TriggerDispatcher, type TriggerDeadLetter, type TriggerDispatcherOptions } from '../../engine/internal/triggers/dispatcher.ts';
import { TriggerError } from '../../engine/internal/triggers/errors.ts';
import { startLambdaEndpoint, type LambdaEndpoint } from '../../local/index.ts';
import { defineTrigger, defineView, type Change, type Trigger, type TriggerOptions } from '../../sdk/index.ts';
import { lambdaClient, uniqueName, waitFor } from './helpers.ts';

interface Counter {
  readonly n: number;
  readonly pad?: string;
}
type Event = { trigger: string; view: string; changes: Change<Counter>[] };

const counters = defineView({
  name: 'counters',
  source: 'counters-unused',
  key: (e: { key: string }) => e.key,
  initial: (): Counter => ({ n: 0 }),
  reduce: (s: Counter) => s,
});

/** Changes of `keys` for versions from..to, interleaved by version like an engine batch. */
function changesFor(keys: readonly string[], from: number, to: number, pad?: string): Change<Counter>[] {
  const changes: Change<Counter>[] = [];
  for (let version = from; version <= to; version++) {
    for (const key of keys) {
      changes.push({
        view: 'counters',
        key,
        before: version === 1 ? undefined : { n: version - 1 },
        after: pad === undefined ? { n: version } : { n: version, pad },
        version,
        offsets: { 'counters-unused/0': String(version) },
        idempotencyKey: `counters#${key}##${version}`,
      });
    }
  }
  return changes;
}

const keysOf = (count: number, prefix = 'k') => Array.from({ length: count }, (_, i) => `${prefix}-${i}`);

/** What a test function saw: per key the versions processed, batch sizes and concurrency. */
class Recorder {
  readonly seen = new Map<string, Change<Counter>[]>();
  readonly acked = new Map<string, number>();
  readonly violations: string[] = [];
  readonly batchSizes: number[] = [];
  inFlight = 0;
  maxInFlight = 0;

  enter(event: Event): void {
    this.inFlight++;
    this.maxInFlight = Math.max(this.maxInFlight, this.inFlight);
    this.batchSizes.push(event.changes.length);
    const keys = new Set<string>();
    for (const change of event.changes) {
      if (keys.has(change.key)) this.violations.push(`two changes of ${change.key} in one batch`);
      keys.add(change.key);
      // Ordering: a version may be sent only after every earlier version of its key was acknowledged.
      const acked = this.acked.get(change.key) ?? 0;
      if (change.version <= acked) this.violations.push(`${change.key} v${change.version} resent after v${acked} was acknowledged`);
    }
  }

  ack(change: Change<Counter>): void {
    const list = this.seen.get(change.key) ?? [];
    list.push(change);
    this.seen.set(change.key, list);
    this.acked.set(change.key, change.version);
  }

  leave(): void {
    this.inFlight--;
  }

  get total(): number {
    let total = 0;
    for (const list of this.seen.values()) total += list.length;
    return total;
  }
}

let endpoint: LambdaEndpoint;
let lambda: LambdaClient;

beforeAll(async () => {
  endpoint = await startLambdaEndpoint();
  lambda = lambdaClient(endpoint.endpoint);
});

afterAll(async () => {
  lambda?.destroy();
  await endpoint?.stop();
});

function triggerFor(fn: string, options: Partial<TriggerOptions<Counter>> = {}): Trigger<Counter> {
  return defineTrigger({ view: counters, function: fn, ...options });
}

function dispatcherWith(deadLetters: TriggerDeadLetter[], options: Partial<TriggerDispatcherOptions> = {}): TriggerDispatcher {
  return new TriggerDispatcher({
    lambda,
    deadLetter: async (entry) => {
      deadLetters.push(entry);
    },
    ...options,
  });
}

describe('TriggerDispatcher over the local Lambda endpoint', () => {
  it('delivers 20k changes over 500 keys in version order per key, batched across keys, within the concurrency bound', async () => {
    const fn = uniqueName('order');
    const recorder = new Recorder();
    endpoint.register(fn, async (event: Event) => {
      recorder.enter(event);
      await new Promise((resolve) => setImmediate(resolve));
      for (const change of event.changes) recorder.ack(change);
      recorder.leave();
    });
    const trigger = triggerFor(fn, { batchSize: 100, concurrency: 8 });
    const deadLetters: TriggerDeadLetter[] = [];
    const dispatcher = dispatcherWith(deadLetters);
    const keys = keysOf(500);
    // Four overlapping deliver() calls: an item's versions from a later call wait for the earlier ones.
    const calls = [0, 1, 2, 3].map((i) => dispatcher.deliver(trigger, changesFor(keys, 10 * i + 1, 10 * i + 10)));
    const outcomes = (await Promise.all(calls)).flat();

    expect(outcomes).toHaveLength(20_000);
    expect(outcomes.every((o) => o.status === 'delivered' && o.attempts === 1)).toBe(true);
    expect(deadLetters).toEqual([]);
    expect(recorder.violations).toEqual([]);
    for (const key of keys) {
      expect(recorder.seen.get(key)?.map((c) => c.version)).toEqual(Array.from({ length: 40 }, (_, i) => i + 1));
    }
    expect(recorder.maxInFlight).toBeLessThanOrEqual(8);
    expect(Math.max(...recorder.batchSizes)).toBeLessThanOrEqual(100);
    // Batched across keys: 20k changes in a few hundred invocations, not 20k.
    expect(dispatcher.stats.invocations).toBeLessThanOrEqual(400);
    expect(dispatcher.stats.pendingChanges).toBe(0);
  });

  it('coalesces queued changes of a key when enabled: before is the state last delivered, nothing skipped', async () => {
    const fn = uniqueName('coalesce');
    const recorder = new Recorder();
    endpoint.register(fn, async (event: Event) => {
      recorder.enter(event);
      for (const change of event.changes) recorder.ack(change);
      recorder.leave();
    });
    const trigger = triggerFor(fn, { batchSize: 100, concurrency: 4 });
    const dispatcher = dispatcherWith([], { coalesce: true });
    const keys = keysOf(500);
    const changes = changesFor(keys, 1, 40);
    const outcomes = await dispatcher.deliver(trigger, changes);

    expect(recorder.violations).toEqual([]);
    for (const key of keys) {
      const seen = recorder.seen.get(key) ?? [];
      expect(seen.at(-1)?.version).toBe(40);
      let last: Counter | undefined;
      for (const change of seen) {
        expect(change.before).toEqual(last);
        last = change.after;
      }
    }
    expect(recorder.total).toBeLessThan(20_000);
    expect(dispatcher.stats.coalescedChanges).toBe(20_000 - recorder.total);
    expect(outcomes.every((o) => o.status === 'delivered')).toBe(true);
    const merged = outcomes.filter((o) => o.deliveredAs !== undefined);
    expect(merged.length).toBe(20_000 - recorder.total);
    expect(merged.every((o) => Number(o.deliveredAs!.split('##')[1]) > o.change.version)).toBe(true);
  });

  it('retries transient failures of 10% of keys (partial batch failures and thrown errors) until all are delivered', async () => {
    const fn = uniqueName('transient');
    const recorder = new Recorder();
    const keys = keysOf(100);
    const flaky = new Set(keys.slice(0, 10)); // reported in batchItemFailures twice per change
    const throwing = new Set(keys.slice(10, 15)); // make the whole invocation throw once per change
    const sightings = new Map<string, number>();
    endpoint.register(fn, async (event: Event) => {
      recorder.enter(event);
      try {
        for (const change of event.changes) {
          if (throwing.has(change.key)) {
            const n = (sightings.get(change.idempotencyKey) ?? 0) + 1;
            sightings.set(change.idempotencyKey, n);
            if (n === 1) throw new Error(`transient failure on ${change.idempotencyKey}`);
          }
        }
        const failed: { itemIdentifier: string }[] = [];
        for (const change of event.changes) {
          if (flaky.has(change.key)) {
            const n = (sightings.get(change.idempotencyKey) ?? 0) + 1;
            sightings.set(change.idempotencyKey, n);
            if (n <= 2) {
              failed.push({ itemIdentifier: change.idempotencyKey });
              continue;
            }
          }
          recorder.ack(change);
        }
        return { batchItemFailures: failed };
      } finally {
        recorder.leave();
      }
    });
    const trigger = triggerFor(fn, { batchSize: 50, concurrency: 4, retry: { maxAttempts: 5, initialBackoffMs: 5, maxBackoffMs: 50 } });
    const deadLetters: TriggerDeadLetter[] = [];
    const dispatcher = dispatcherWith(deadLetters);
    const outcomes = await dispatcher.deliver(trigger, changesFor(keys, 1, 10));

    expect(deadLetters).toEqual([]);
    expect(recorder.violations).toEqual([]);
    expect(outcomes.every((o) => o.status === 'delivered')).toBe(true);
    for (const key of keys) {
      expect(recorder.seen.get(key)?.map((c) => c.version)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    }
    const flakyOutcomes = outcomes.filter((o) => flaky.has(o.change.key));
    expect(flakyOutcomes.every((o) => o.attempts === 3)).toBe(true);
    expect(dispatcher.stats.invocationErrors).toBeGreaterThan(0);
  });

  it('dead-letters every change of a key the function always fails, while the other keys flow', async () => {
    const fn = uniqueName('poison');
    const recorder = new Recorder();
    const keys = keysOf(50);
    const poison = 'k-7';
    endpoint.register(fn, async (event: Event) => {
      recorder.enter(event);
      const failed = [];
      for (const change of event.changes) {
        if (change.key === poison) failed.push({ itemIdentifier: change.idempotencyKey });
        else recorder.ack(change);
      }
      recorder.leave();
      return { batchItemFailures: failed };
    });
    const trigger = triggerFor(fn, { batchSize: 20, concurrency: 4, retry: { maxAttempts: 3, initialBackoffMs: 100, maxBackoffMs: 400 } });
    const deadLetters: TriggerDeadLetter[] = [];
    let deadLettersWhenOthersDone = -1;
    const others = keys.filter((k) => k !== poison);
    const dispatcher = dispatcherWith(deadLetters);
    const started = Date.now();
    const delivering = dispatcher.deliver(trigger, changesFor(keys, 1, 10));
    await waitFor(() => others.every((k) => recorder.acked.get(k) === 10), { timeoutMs: 10_000, message: 'the healthy keys' });
    deadLettersWhenOthersDone = deadLetters.length;
    const othersMs = Date.now() - started;
    const outcomes = await delivering;

    // The healthy keys did not wait for the poison key's retries (10 changes x 3 attempts with backoff).
    expect(deadLettersWhenOthersDone).toBeLessThan(10);
    expect(othersMs).toBeLessThan(5_000);
    expect(deadLetters.map((d) => d.change.version)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    for (const letter of deadLetters) {
      expect(letter).toMatchObject({
        trigger: trigger.name,
        view: 'counters',
        function: fn,
        functionName: fn,
        attempts: 3,
        error: { type: 'BatchItemFailure' },
      });
      expect(letter.change.key).toBe(poison);
      expect(letter.idempotencyKeys).toEqual([letter.change.idempotencyKey]);
    }
    expect(outcomes.filter((o) => o.status === 'dead-lettered').map((o) => o.change.key)).toEqual(new Array(10).fill(poison));
    expect(outcomes.filter((o) => o.status === 'delivered')).toHaveLength(490);
    expect(recorder.violations).toEqual([]);
  });

  it('isolates a change whose function throws for the whole batch (bisecting), dead-letters only it', async () => {
    const fn = uniqueName('throws');
    const recorder = new Recorder();
    const keys = keysOf(40);
    const poison = 'k-13';
    endpoint.register(fn, async (event: Event) => {
      recorder.enter(event);
      try {
        if (event.changes.some((c) => c.key === poison)) {
          throw Object.assign(new Error(`cannot handle ${poison}`), { name: 'PoisonError' });
        }
        for (const change of event.changes) recorder.ack(change);
      } finally {
        recorder.leave();
      }
    });
    const trigger = triggerFor(fn, { batchSize: 40, concurrency: 2, retry: { maxAttempts: 3, initialBackoffMs: 5, maxBackoffMs: 20 } });
    const deadLetters: TriggerDeadLetter[] = [];
    const dispatcher = dispatcherWith(deadLetters);
    const outcomes = await dispatcher.deliver(trigger, changesFor(keys, 1, 3));

    expect(deadLetters.map((d) => [d.change.key, d.change.version])).toEqual([
      [poison, 1],
      [poison, 2],
      [poison, 3],
    ]);
    expect(deadLetters.every((d) => d.error.type === 'PoisonError' && d.error.message === `cannot handle ${poison}` && d.attempts === 3)).toBe(true);
    expect(outcomes.filter((o) => o.status === 'delivered')).toHaveLength(39 * 3);
    for (const key of keys.filter((k) => k !== poison)) {
      expect(recorder.seen.get(key)?.map((c) => c.version)).toEqual([1, 2, 3]);
    }
    expect(recorder.violations).toEqual([]);
  });

  it('rides out throttling (429 TooManyRequestsException) with backoff', async () => {
    const throttled = await startLambdaEndpoint({ maxConcurrency: 2 });
    const client = lambdaClient(throttled.endpoint);
    try {
      const fn = uniqueName('throttled');
      const recorder = new Recorder();
      throttled.register(fn, async (event: Event) => {
        recorder.enter(event);
        await new Promise((resolve) => setTimeout(resolve, 20)); // the function's own work
        for (const change of event.changes) recorder.ack(change);
        recorder.leave();
      });
      const errors: string[] = [];
      // Four senders race for two slots, so one change can lose many times in a row on a loaded
      // machine; the attempt budget is generous because this test is about backoff, not about
      // exhausting retries (the dead-letter tests cover that).
      const trigger = triggerFor(fn, { batchSize: 5, concurrency: 4, retry: { maxAttempts: 40, initialBackoffMs: 10, maxBackoffMs: 200 } });
      const deadLetters: TriggerDeadLetter[] = [];
      const dispatcher = dispatcherWith(deadLetters, {
        lambda: client,
        onInvocation: (r) => r.error && errors.push(r.error.type),
      });
      const keys = keysOf(40);
      const outcomes = await dispatcher.deliver(trigger, changesFor(keys, 1, 3));
      expect(deadLetters).toEqual([]);
      expect(outcomes.every((o) => o.status === 'delivered')).toBe(true);
      expect(errors.length).toBeGreaterThan(0);
      expect(new Set(errors)).toEqual(new Set(['TooManyRequestsException']));
      for (const key of keys) expect(recorder.seen.get(key)?.map((c) => c.version)).toEqual([1, 2, 3]);
    } finally {
      client.destroy();
      await throttled.stop();
    }
  });

  it('keeps invocations in flight bounded with a slow (200 ms) function, per trigger and overall', async () => {
    const fnA = uniqueName('slow-a');
    const fnB = uniqueName('slow-b');
    const recorder = new Recorder();
    const slow = async (event: Event) => {
      recorder.enter(event);
      await new Promise((resolve) => setTimeout(resolve, 200));
      for (const change of event.changes) recorder.ack(change);
      recorder.leave();
    };
    endpoint.register(fnA, slow);
    endpoint.register(fnB, slow);
    const dispatcher = dispatcherWith([], { maxInFlightInvocations: 3 });
    const samples: number[] = [];
    const a = triggerFor(fnA, { name: 'slow-a', batchSize: 10, concurrency: 2 });
    const b = triggerFor(fnB, { name: 'slow-b', batchSize: 10, concurrency: 2 });
    const sampler = setInterval(() => samples.push(dispatcher.stats.inFlightInvocations), 10);
    const [outA, outB] = await Promise.all([
      dispatcher.deliver(a, changesFor(keysOf(60, 'a'), 1, 2)),
      dispatcher.deliver(b, changesFor(keysOf(60, 'b'), 1, 2)),
    ]).finally(() => clearInterval(sampler));
    expect([...outA, ...outB].every((o) => o.status === 'delivered')).toBe(true);
    expect(recorder.maxInFlight).toBe(3); // bounded, and the bound is actually used
    expect(Math.max(...samples)).toBeLessThanOrEqual(3);
    expect(dispatcher.stats.invocations).toBe(24); // 240 changes, 10 per batch
  });

  it('splits batches by payload size under the 6 MB invocation cap', async () => {
    const fn = uniqueName('large');
    const recorder = new Recorder();
    endpoint.register(fn, async (event: Event) => {
      recorder.enter(event);
      for (const change of event.changes) recorder.ack(change);
      recorder.leave();
    });
    const trigger = triggerFor(fn, { batchSize: 100 });
    const records: number[] = [];
    const dispatcher = dispatcherWith([], { onInvocation: (r) => records.push(r.payloadBytes) });
    const outcomes = await dispatcher.deliver(trigger, changesFor(keysOf(20), 1, 1, 'x'.repeat(1_000_000)));
    expect(outcomes.every((o) => o.status === 'delivered')).toBe(true);
    expect(recorder.total).toBe(20);
    expect(records.length).toBeGreaterThanOrEqual(4);
    expect(Math.max(...records)).toBeLessThanOrEqual(6 * 1024 * 1024);
  });

  it('gathers changes of separate deliver() calls into one invocation within maxBatchWaitMs; a full batch does not wait', async () => {
    const fn = uniqueName('window');
    const recorder = new Recorder();
    endpoint.register(fn, async (event: Event) => {
      recorder.enter(event);
      for (const change of event.changes) recorder.ack(change);
      recorder.leave();
    });
    const deadLetters: TriggerDeadLetter[] = [];
    const dispatcher = dispatcherWith(deadLetters);
    // Three calls, as three partitions' batches would make them, each with one key's change.
    const windowed = triggerFor(fn, { batchSize: 10, maxBatchWaitMs: 1_000 });
    const calls = ['a', 'b', 'c'].map((key) => dispatcher.deliver(windowed, changesFor([key], 1, 1)));
    expect((await Promise.all(calls)).flat().every((o) => o.status === 'delivered')).toBe(true);
    expect(recorder.batchSizes).toEqual([3]);

    // Without a window each call goes out on its own.
    const immediate = triggerFor(fn, { name: 'immediate', batchSize: 10 });
    recorder.batchSizes.length = 0;
    await Promise.all(['d', 'e', 'f'].map((key) => dispatcher.deliver(immediate, changesFor([key], 1, 1))));
    expect(recorder.batchSizes).toEqual([1, 1, 1]);

    // A full batch goes at once, even under a window far longer than the test's deadline.
    const full = triggerFor(fn, { name: 'full', batchSize: 5, maxBatchWaitMs: 600_000 });
    recorder.batchSizes.length = 0;
    const outcomes = await dispatcher.deliver(full, changesFor(keysOf(5, 'full'), 1, 1));
    expect(outcomes.map((o) => o.status)).toEqual(Array(5).fill('delivered'));
    expect(recorder.batchSizes).toEqual([5]);
    expect(deadLetters).toEqual([]);
    expect(recorder.violations).toEqual([]);
    await dispatcher.close();
  });

  it('applies when(): skipped changes are not sent; a throwing when() dead-letters that change only', async () => {
    const fn = uniqueName('when');
    const recorder = new Recorder();
    endpoint.register(fn, async (event: Event) => {
      recorder.enter(event);
      for (const change of event.changes) recorder.ack(change);
      recorder.leave();
    });
    const trigger = triggerFor(fn, {
      when: (c) => {
        if (c.key === 'k-3' && c.version === 2) throw new TypeError('bad state');
        return c.after.n % 2 === 0;
      },
    });
    const deadLetters: TriggerDeadLetter[] = [];
    const outcomes = await dispatcherWith(deadLetters).deliver(trigger, changesFor(keysOf(5), 1, 4));
    expect(outcomes.filter((o) => o.status === 'skipped')).toHaveLength(10);
    expect(recorder.seen.get('k-0')?.map((c) => c.version)).toEqual([2, 4]);
    expect(recorder.seen.get('k-3')?.map((c) => c.version)).toEqual([4]);
    expect(deadLetters).toHaveLength(1);
    expect(deadLetters[0]).toMatchObject({ attempts: 0, error: { type: 'WhenThrew' }, change: { key: 'k-3', version: 2 } });
  });

  it('dead-letters changes for a function that does not exist, with the error type', async () => {
    const trigger = triggerFor(uniqueName('missing'), { retry: { maxAttempts: 2, initialBackoffMs: 1, maxBackoffMs: 5 } });
    const deadLetters: TriggerDeadLetter[] = [];
    const outcomes = await dispatcherWith(deadLetters).deliver(trigger, changesFor(['a', 'b'], 1, 1));
    expect(outcomes.map((o) => o.status)).toEqual(['dead-lettered', 'dead-lettered']);
    expect(deadLetters.map((d) => d.error.type)).toEqual(['ResourceNotFoundException', 'ResourceNotFoundException']);
  });

  it('rejects with DEAD_LETTER_FAILED when a change can be neither delivered nor dead-lettered', async () => {
    const fn = uniqueName('dlq-down');
    const recorder = new Recorder();
    endpoint.register(fn, async (event: Event) => {
      recorder.enter(event);
      const failed = event.changes.filter((c) => c.key === 'bad').map((c) => ({ itemIdentifier: c.idempotencyKey }));
      for (const change of event.changes) if (change.key !== 'bad') recorder.ack(change);
      recorder.leave();
      return { batchItemFailures: failed };
    });
    const trigger = triggerFor(fn, { retry: { maxAttempts: 2, initialBackoffMs: 1, maxBackoffMs: 5 } });
    const dispatcher = new TriggerDispatcher({
      lambda,
      deadLetter: async () => {
        throw new Error('dead-letter topic unavailable');
      },
    });
    const error = await dispatcher.deliver(trigger, changesFor(['good', 'bad'], 1, 2)).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(TriggerError);
    expect((error as TriggerError).code).toBe('DEAD_LETTER_FAILED');
    expect((error as TriggerError).context).toMatchObject({ key: 'bad', version: 1 });
    // The healthy key was still delivered; the bad key's later change was held back (order).
    expect(recorder.seen.get('good')?.map((c) => c.version)).toEqual([1, 2]);
    expect(recorder.seen.get('bad')).toBeUndefined();
    expect(dispatcher.stats.pendingChanges).toBe(0);
  });
  it('close() waits for in-flight invocations and rejects what is left with DISPATCHER_CLOSED (retriable)', async () => {
    const fn = uniqueName('closing');
    const recorder = new Recorder();
    let entered!: () => void;
    const inFlight = new Promise<void>((resolve) => (entered = resolve));
    endpoint.register(fn, async (event: Event) => {
      recorder.enter(event);
      entered();
      await new Promise((resolve) => setTimeout(resolve, 100)); // the function's own work
      for (const change of event.changes) recorder.ack(change);
      recorder.leave();
    });
    const dispatcher = dispatcherWith([]);
    const delivering = dispatcher.deliver(triggerFor(fn), changesFor(['only'], 1, 3));
    const settled = delivering.catch((error: unknown) => error);
    await inFlight;
    await dispatcher.close();
    const error = await settled;
    expect(error).toBeInstanceOf(TriggerError);
    expect(error).toMatchObject({ code: 'DISPATCHER_CLOSED', retriable: true });
    // The in-flight change finished; the later ones were never sent.
    expect(recorder.seen.get('only')?.map((c) => c.version)).toEqual([1]);
    await expect(dispatcher.deliver(triggerFor(fn), changesFor(['x'], 1, 1))).rejects.toMatchObject({ code: 'DISPATCHER_CLOSED' });
  });
  it('refuses changes of another view with INVALID_ARGUMENT, before sending anything', async () => {
    const dispatcher = dispatcherWith([]);
    const foreign = { ...changesFor(['a'], 1, 1)[0]!, view: 'other' };
    await expect(dispatcher.deliver(triggerFor(uniqueName('never')), [foreign])).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
    expect(dispatcher.stats.invocations).toBe(0);
  });

  it('fences every invocation by the call\'s delivery right: lost changes fail with PARTITION_LOST unsent, doubtful ones the item moved past settle as superseded', async () => {
    const fn = uniqueName('fence');
    const invoked: string[] = [];
    let release!: () => void;
    const released = new Promise<void>((resolve) => (release = resolve));
    endpoint.register(fn, async (event: Event) => {
      for (const change of event.changes) invoked.push(change.idempotencyKey);
      if (invoked.length === 1) await released;
    });
    const trigger = triggerFor(fn, { batchSize: 1, concurrency: 1 });
    const asked: string[][] = [];
    const dispatcher = dispatcherWith([], {
      // The stored bookkeeping of key b moved past v1: another task delivered it.
      superseded: async (_trigger, changes) => {
        asked.push(changes.map((c) => c.idempotencyKey));
        return changes.map((c) => c.key === 'b');
      },
    });
    let stale: 'owned' | 'lost' = 'owned';
    // The first call's changes: one in flight, the others in hand when its right is lost.
    const lostCall = dispatcher.deliver(trigger, changesFor(['x', 'y', 'z'], 1, 1), { right: () => ({ right: stale, reason: 'test' }) });
    const doubtfulCall = dispatcher.deliver(trigger, changesFor(['a', 'b'], 1, 1), { right: () => ({ right: 'doubtful' }) });
    await waitFor(() => invoked.length === 1, { message: 'the first invocation held' });
    stale = 'lost';
    release();

    await expect(lostCall).rejects.toMatchObject({ code: 'PARTITION_LOST' });
    const outcomes = await doubtfulCall;
    expect(outcomes.map((o) => [o.change.key, o.status])).toEqual([
      ['a', 'delivered'],
      ['b', 'superseded'],
    ]);
    // Only the change already in flight went out of the lost call; b was checked, not sent.
    expect(invoked).toEqual(['counters#x##1', 'counters#a##1']);
    expect(asked.flat()).toEqual(['counters#a##1', 'counters#b##1']);
    expect(dispatcher.stats.pendingChanges).toBe(0);
  });
});
