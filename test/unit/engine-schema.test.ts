/**
 * A view's Standard Schema (here valibot) validates each decoded event: the event type comes
 * from the schema, a failing event is poison (SCHEMA_FAILED) with the schema's message and
 * path, the schema's output is what the view folds, and a replay changes nothing.
 */
import * as v from 'valibot';
import { describe, expect, it } from 'vitest';
import { createTestDriver } from '../../engine/index.ts';
import { defineApp, defineView, DefinitionError, type EventOf } from '../../sdk/index.ts';
import type { PoisonDeadLetter } from '../../engine/internal/dead-letter.ts';

const Score = v.object({
  user: v.pipe(v.string(), v.minLength(1)),
  points: v.number(),
  // The default is the schema's output: the view folds 1 for an event without `weight`.
  weight: v.optional(v.number(), 1),
  tags: v.optional(v.array(v.string()), []),
});

const scores = defineView({
  name: 'scores',
  source: 'scores',
  schema: Score,
  // No annotation: the event type is inferred from the schema.
  key: (e) => e.user,
  initial: () => ({ total: 0, tags: [] as string[] }),
  reduce: (s, e) => ({ total: s.total + e.points * e.weight, tags: [...s.tags, ...e.tags] }),
});

// Compile-time check: the view's event type is the schema's output.
const typed: EventOf<typeof scores> = { user: 'a', points: 1, weight: 1, tags: [] };
void typed;

function letters(driver: ReturnType<typeof createTestDriver>): PoisonDeadLetter[] {
  return driver.deadLetters as PoisonDeadLetter[];
}

describe('view schema', () => {
  it('folds the events the schema accepts (with its defaults) and dead-letters the others as SCHEMA_FAILED', async () => {
    const driver = createTestDriver(defineApp({ name: 'game', views: [scores] }));
    await driver.send('scores', [
      { value: { user: 'ann', points: 3 } },
      { value: { user: 'ann', points: 'ten' } },
      { value: { user: 'ann', points: 2, weight: 5, tags: ['x'] } },
      { value: { user: 'ann', points: 1, tags: ['y', 7] } },
      { value: { points: 1 } },
    ]);
    // 3*1 + 2*5: the records at 1, 3 and 4 are poison; every other event is applied.
    expect(driver.state('scores', 'ann')).toEqual({ total: 13, tags: ['x'] });
    expect(letters(driver).map((l) => [l.record.offset, l.code])).toEqual([
      ['1', 'SCHEMA_FAILED'],
      ['3', 'SCHEMA_FAILED'],
      ['4', 'SCHEMA_FAILED'],
    ]);
    const [points, tag, user] = letters(driver).map((l) => l.reason);
    // valibot's own message, at the path of the failing field.
    expect(points).toContain('event.points: Invalid type: Expected number but received "ten"');
    expect(tag).toContain('event.tags[1]: Invalid type: Expected string but received 7');
    expect(user).toContain('event.user: Invalid key: Expected "user" but received undefined');
    expect(points).toContain('scores/0@1');

    // A replay judges the same records the same way and applies nothing twice.
    const item = driver.item('scores', 'ann')!;
    driver.restart();
    const replay = await driver.redeliver('scores', 0, 0);
    expect(replay).toMatchObject({ applied: 0, writes: 0 });
    expect(driver.item('scores', 'ann')!.version).toBe(item.version);
    expect(driver.state('scores', 'ann')).toEqual({ total: 13, tags: ['x'] });
  });

  it('validates what the decoder returns, bigints included', async () => {
    const Payment = v.object({ account: v.bigint(), amount: v.union([v.number(), v.bigint()]) });
    const payments = defineView({
      name: 'payments',
      source: 'payments',
      decode: 'json-bigint',
      schema: Payment,
      key: (e) => e.account,
      initial: () => 0n,
      reduce: (s, e) => s + BigInt(e.amount),
    });
    const driver = createTestDriver(defineApp({ name: 'bank', views: [payments] }));
    await driver.send('payments', [
      { value: '{"account":9007199254740993,"amount":9007199254740993}' },
      { value: '{"account":12,"amount":1}' }, // a safe integer decodes to a number, not a bigint
      { value: '{"account":9007199254740993,"amount":1}' },
    ]);
    expect(driver.state('payments', 9007199254740993n)).toBe(9007199254740994n);
    expect(letters(driver).map((l) => [l.record.offset, l.code])).toEqual([['1', 'SCHEMA_FAILED']]);
    expect(letters(driver)[0]!.reason).toContain('event.account: Invalid type: Expected bigint but received 12');
  });

  it('dead-letters the events of a schema that validates asynchronously, and never waits for it', async () => {
    const Async = v.pipeAsync(
      v.object({ user: v.string() }),
      v.checkAsync(async () => true, 'never reached'),
    );
    const view = defineView({
      name: 'asyncScores',
      source: 'scores',
      schema: Async,
      key: (e) => e.user,
      initial: () => 0,
      reduce: (s: number) => s + 1,
    });
    const driver = createTestDriver(defineApp({ name: 'game', views: [view] }));
    await driver.send('scores', [{ value: { user: 'ann' } }]);
    expect(letters(driver).map((l) => l.code)).toEqual(['SCHEMA_FAILED']);
    expect(letters(driver)[0]!.reason).toContain('validated asynchronously');
    expect(driver.state('asyncScores', 'ann')).toBeUndefined();
  });

  it('refuses a schema that does not implement Standard Schema v1 at definition', () => {
    const define = (schema: unknown) =>
      defineView({ name: 'x', source: 't', schema: schema as never, key: () => 'k', initial: () => 0, reduce: (s: number) => s });
    for (const schema of [{}, { parse: () => 1 }, { '~standard': { version: 2, validate: () => ({ value: 1 }) } }, 'zod']) {
      expect(() => define(schema)).toThrow(DefinitionError);
      expect(() => define(schema)).toThrow(/Standard Schema v1/);
    }
  });
});
