/**
 * A trigger whose function does not exist (deleted, or a wrong TRIBUTARY_FUNCTION_NAMES entry)
 * at invocation time: Lambda answers ResourceNotFoundException, which no retry can fix, so the
 * dispatcher dead-letters the change after exactly one attempt instead of backing off through
 * all of them. Against the real Lambda Invoke API endpoint.
 */
import type { LambdaClient } from '@aws-sdk/client-lambda';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TriggerDispatcher, type TriggerDeadLetter } from '../../engine/internal/triggers/dispatcher.ts';
import { startLambdaEndpoint, type LambdaEndpoint } from '../../local/index.ts';
import { defineTrigger, defineView, type Change } from '../../sdk/index.ts';
import { lambdaClient, uniqueName } from './helpers.ts';

interface Counter {
  readonly n: number;
}

const counters = defineView({
  name: 'counters',
  source: 'counters-unused',
  key: (e: { key: string }) => e.key,
  initial: (): Counter => ({ n: 0 }),
  reduce: (s: Counter) => s,
});

function change(key: string, version: number): Change<Counter> {
  return {
    view: 'counters',
    key,
    before: version === 1 ? undefined : { n: version - 1 },
    after: { n: version },
    version,
    offsets: { 'counters-unused/0': String(version) },
    idempotencyKey: `counters#${key}##${version}`,
  };
}

describe('TriggerDispatcher with a function that does not exist', () => {
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

  it('dead-letters each change after exactly one attempt, with the ResourceNotFoundException', async () => {
    const deadLetters: TriggerDeadLetter[] = [];
    const invocations: string[] = [];
    const dispatcher = new TriggerDispatcher({
      lambda,
      functionNames: { notify: uniqueName('deletedFn') },
      deadLetter: async (entry) => {
        deadLetters.push(entry);
      },
      onInvocation: (record) => invocations.push(record.outcome),
    });
    // Backoffs long enough that a retry would show in the attempt count and the time taken.
    const trigger = defineTrigger({
      view: counters,
      function: 'notify',
      name: 'notifyCounter',
      retry: { maxAttempts: 5, initialBackoffMs: 2_000, maxBackoffMs: 2_000 },
    });
    const started = Date.now();
    try {
      const outcomes = await dispatcher.deliver(trigger, [change('a', 1), change('b', 1), change('a', 2)]);
      expect(outcomes.map((o) => [o.change.key, o.change.version, o.status, o.attempts])).toEqual([
        ['a', 1, 'dead-lettered', 1],
        ['b', 1, 'dead-lettered', 1],
        ['a', 2, 'dead-lettered', 1],
      ]);
    } finally {
      await dispatcher.close();
    }
    expect(deadLetters).toHaveLength(3);
    for (const letter of deadLetters) {
      expect(letter.attempts).toBe(1);
      expect(letter.error.type).toBe('ResourceNotFoundException');
    }
    // Two invocations for key "a" (its versions go in order), at least one for "b"; none repeated.
    expect(invocations.length).toBeLessThanOrEqual(3);
    expect(Date.now() - started).toBeLessThan(2_000);
  });
});
