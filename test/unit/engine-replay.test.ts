/**
 * Dead-letter replay (engine/internal/replay.ts) through the in-memory driver's table: poison
 * records of one view are dead-lettered by a buggy reducer, the reducer is fixed, and replay
 * folds them into that view exactly once. Expected states are computed in the test from the
 * events; the other view's items must not change at all, and a second replay must change nothing.
 */
import { describe, expect, it } from 'vitest';
import { createTestDriver, encodeDeadLetter, replayLetters, replayTopicOfView, type DeadLetter, type StoredDeadLetter } from '../../engine/index.ts';
import type { ChangeSink, DeadLetterSink } from '../../engine/internal/change-sink.ts';
import { defineApp, defineTrigger, defineView, type Change } from '../../sdk/index.ts';

type Payment = { user: string; amount: number | string };

const counts = defineView({
  name: 'payments',
  source: 'payments',
  key: (e: Payment) => e.user,
  initial: () => ({ n: 0 }),
  reduce: (s) => ({ n: s.n + 1 }),
});
function totalsView(fixed: boolean) {
  return defineView({
    name: 'totals',
    source: 'payments',
    key: (e: Payment) => e.user,
    initial: () => ({ cents: 0 }),
    reduce: (s, e) => {
      // The bug: amounts sent as strings ("12") throw. The fix reads them as numbers.
      if (!fixed && typeof e.amount !== 'number') throw new Error(`amount is not a number: ${JSON.stringify(e.amount)}`);
      return { cents: s.cents + Number(e.amount) };
    },
  });
}
function appOf(fixed: boolean) {
  const totals = totalsView(fixed);
  const notify = defineTrigger({ view: totals, function: 'notify', name: 'notify' });
  return defineApp({ name: 'shop', views: [counts, totals], triggers: [notify] });
}

/** The letters as the dead-letter topic holds them: encoded, at consecutive offsets of partition 0. */
function topicOf(letters: readonly DeadLetter[], from = 0): StoredDeadLetter[] {
  return letters.map((letter, i) => ({
    partition: 0,
    offset: String(from + i),
    timestampMs: 1_000 + from + i,
    value: JSON.parse(encodeDeadLetter('shop', letter).value) as Record<string, unknown>,
  }));
}

function sinks() {
  const sent: DeadLetter[] = [];
  const delivered: { trigger: string; change: Change }[] = [];
  const deadLetters: DeadLetterSink = { send: async (letters) => void sent.push(...letters) };
  const changes: ChangeSink = {
    deliver: async (trigger, list) => list.map((change) => (delivered.push({ trigger: trigger.name, change: structuredClone(change) }), 'delivered' as const)),
  };
  return { sent, delivered, deadLetters, changes };
}

const events: Payment[] = [
  { user: 'ann', amount: 5 },
  { user: 'ann', amount: '12' },
  { user: 'bob', amount: 7 },
  { user: 'ann', amount: 3 },
  { user: 'cy', amount: '40' },
  { user: 'bob', amount: '1' },
  { user: 'bob', amount: 2 },
];

/** The fixed reducer's fold of every event, computed here. */
function reference(of: readonly Payment[]): Record<string, { cents: number }> {
  const out: Record<string, { cents: number }> = {};
  for (const e of of) out[e.user] = { cents: (out[e.user]?.cents ?? 0) + Number(e.amount) };
  return out;
}

describe('dead-letter replay', () => {
  it('folds a view\'s poison records once, leaves the other view untouched, and a second replay changes nothing', async () => {
    const driver = createTestDriver(appOf(false));
    await driver.send('payments', events.map((value) => ({ key: value.user, value })));
    const poison = driver.deadLetters.filter((l) => l.kind === 'poison');
    expect(poison.map((l) => l.code)).toEqual(['REDUCE_FAILED', 'REDUCE_FAILED', 'REDUCE_FAILED']);
    const topic = topicOf(driver.deadLetters);
    const countsBefore = ['ann', 'bob', 'cy'].map((k) => driver.item('payments', k));

    const fixed = appOf(true);
    const first = sinks();
    const summary = await replayLetters({ app: fixed, store: driver.store, deadLetters: first.deadLetters, changes: first.changes, deadLetterTopic: fixed.deadLetterTopic }, topic, { views: ['totals'] });
    expect(summary).toMatchObject({ selected: 3, replayed: 3, alreadyApplied: 0, stillPoison: 0, superseded: 0, unreplayable: [] });
    for (const [user, state] of Object.entries(reference(events))) expect(driver.state('totals', user)).toEqual(state);
    // The other view: not one attribute of its items changed.
    expect(['ann', 'bob', 'cy'].map((k) => driver.item('payments', k))).toEqual(countsBefore);
    // The fence: the replay topic's coordinates on the item.
    const cyLetter = topic.find((l) => l.value!.key === 'cy')!;
    expect(driver.item('totals', 'cy')!.offsets).toEqual({ [`${replayTopicOfView(fixed.deadLetterTopic, 'totals', 'REDUCE_FAILED')}/0`]: cyLetter.offset });
    // Triggers heard of each replayed change once: cy created (absent → 40), and one each for ann and bob.
    expect(first.delivered.map((d) => [d.change.key, d.change.before, d.change.after]).sort()).toEqual([
      ['ann', { cents: 8 }, { cents: 20 }],
      ['bob', { cents: 9 }, { cents: 10 }],
      ['cy', undefined, { cents: 40 }],
    ]);

    const after = ['ann', 'bob', 'cy'].map((k) => driver.item('totals', k));
    const second = sinks();
    const again = await replayLetters({ app: fixed, store: driver.store, deadLetters: second.deadLetters, changes: second.changes, deadLetterTopic: fixed.deadLetterTopic }, topic, { views: ['totals'] });
    expect(again).toMatchObject({ selected: 3, replayed: 0, alreadyApplied: 3, stillPoison: 0 });
    expect(['ann', 'bob', 'cy'].map((k) => driver.item('totals', k))).toEqual(after);
    expect(second.delivered).toEqual([]);

    // Live folding goes on from the replayed state, and owes no change of the replay again.
    driver.restart();
    await driver.send('payments', [{ key: 'cy', value: { user: 'cy', amount: 1 } }]);
    expect(driver.state('totals', 'cy')).toEqual({ cents: 41 });
    const cyChanges = driver.changes.filter((c) => c.change.key === 'cy').map((c) => c.change.after);
    expect(cyChanges).toEqual([{ cents: 41 }]);
  });

  it('dead-letters a record that is still poison again, once, and replays its later letter instead of the first', async () => {
    const driver = createTestDriver(appOf(false));
    const bad: Payment[] = [{ user: 'dee', amount: 4 }, { user: 'dee', amount: '5' }, { user: 'dee', amount: 'n/a' }];
    await driver.send('payments', bad.map((value) => ({ key: value.user, value })));
    const topic = topicOf(driver.deadLetters);
    expect(topic).toHaveLength(2);

    // Fixed for "5", still broken for "n/a" (NaN cannot be stored).
    const fixed = appOf(true);
    const first = sinks();
    const summary = await replayLetters({ app: fixed, store: driver.store, deadLetters: first.deadLetters, changes: first.changes, deadLetterTopic: fixed.deadLetterTopic }, topic, { views: ['totals'] });
    expect(summary).toMatchObject({ selected: 2, replayed: 1, stillPoison: 1 });
    expect(driver.state('totals', 'dee')).toEqual({ cents: 9 });
    expect(first.sent).toHaveLength(1);
    const again = first.sent[0]!;
    expect(again).toMatchObject({ kind: 'poison', code: 'STATE_NOT_STORABLE', view: 'totals', replayOf: { partition: 0, offset: '1' } });
    // The letter names the original record, not the replay's coordinates.
    expect(again.kind === 'poison' && again.record.topic).toBe('payments');
    expect(again.kind === 'poison' && again.record.offset).toBe('2');

    // The topic now holds the re-dead-lettered letter too: the first letter is superseded by it.
    const grown = [...topic, ...topicOf(first.sent, topic.length)];
    const second = sinks();
    const next = await replayLetters({ app: fixed, store: driver.store, deadLetters: second.deadLetters, changes: second.changes, deadLetterTopic: fixed.deadLetterTopic }, grown, { views: ['totals'] });
    expect(next).toMatchObject({ selected: 3, replayed: 0, superseded: 1, stillPoison: 1 });
    expect(driver.state('totals', 'dee')).toEqual({ cents: 9 });
  });

  it('replays only the chosen codes, and letters left out stay replayable', async () => {
    const keyed = defineView({
      name: 'totals',
      source: 'payments',
      key: (e: Payment & { region?: string }) => {
        if (e.region === undefined) throw new Error('no region');
        return e.region;
      },
      initial: () => ({ cents: 0 }),
      reduce: (s, e) => {
        if (typeof e.amount !== 'number') throw new Error('not a number');
        return { cents: s.cents + e.amount };
      },
    });
    const driver = createTestDriver(defineApp({ name: 'shop', views: [keyed] }));
    await driver.send('payments', [
      { value: { user: 'a', amount: 1, region: 'eu' } },
      { value: { user: 'b', amount: 2 } }, // KEY_FAILED
      { value: { user: 'c', amount: '3', region: 'eu' } }, // REDUCE_FAILED
    ]);
    const topic = topicOf(driver.deadLetters);
    expect(topic.map((l) => l.value!.code)).toEqual(['KEY_FAILED', 'REDUCE_FAILED']);
    const fixedView = defineView({
      name: 'totals',
      source: 'payments',
      key: (e: Payment & { region?: string }) => e.region ?? 'eu',
      initial: () => ({ cents: 0 }),
      reduce: (s, e) => ({ cents: s.cents + Number(e.amount) }),
    });
    const fixed = defineApp({ name: 'shop', views: [fixedView] });
    const deps = { app: fixed, store: driver.store, ...sinks(), deadLetterTopic: fixed.deadLetterTopic };
    expect(await replayLetters(deps, topic, { views: ['totals'], codes: ['REDUCE_FAILED'] })).toMatchObject({ selected: 1, replayed: 1 });
    expect(driver.state('totals', 'eu')).toEqual({ cents: 4 });
    // The KEY_FAILED letter lies below the REDUCE_FAILED one, but has a fence of its own.
    expect(await replayLetters(deps, topic, { views: ['totals'] })).toMatchObject({ selected: 2, replayed: 1, alreadyApplied: 1 });
    expect(driver.state('totals', 'eu')).toEqual({ cents: 6 });
  });

  it('delivers a dead-lettered trigger change again with its idempotency key, once', async () => {
    let failing = true;
    const driver = createTestDriver(appOf(true), { failDelivery: () => failing });
    await driver.send('payments', [{ key: 'ann', value: { user: 'ann', amount: 5 } }]);
    failing = false;
    const letters = driver.deadLetters.filter((l) => l.kind === 'trigger');
    expect(letters).toHaveLength(1);
    const topic = topicOf(letters);
    const app = appOf(true);
    const first = sinks();
    const deps = { app, store: driver.store, deadLetters: first.deadLetters, changes: first.changes, deadLetterTopic: app.deadLetterTopic };
    expect(await replayLetters(deps, topic, { views: ['totals'] })).toMatchObject({ selected: 1, delivered: 1, alreadyDelivered: 0 });
    const original = (letters[0] as { change: Change }).change;
    expect(first.delivered.map((d) => [d.trigger, d.change.idempotencyKey, d.change.after])).toEqual([['notify', original.idempotencyKey, { cents: 5 }]]);
    expect(await replayLetters(deps, topic, { views: ['totals'] })).toMatchObject({ delivered: 0, alreadyDelivered: 1 });
    expect(first.delivered).toHaveLength(1);
  });

  it('refuses a windowed view, and a view the app does not have, saying why', async () => {
    const windowed = defineView({
      name: 'daily',
      source: 'payments',
      key: (e: Payment) => e.user,
      initial: () => 0,
      reduce: (s: number) => s + 1,
      window: { kind: 'tumbling', sizeMs: 86_400_000 },
      graceMs: 0,
    });
    const app = defineApp({ name: 'shop', views: [windowed] });
    const driver = createTestDriver(app);
    const deps = { app, store: driver.store, ...sinks(), deadLetterTopic: app.deadLetterTopic };
    await expect(replayLetters(deps, [], { views: ['daily'] })).rejects.toMatchObject({ code: 'REPLAY_UNSUPPORTED' });
    await expect(replayLetters(deps, [], { views: ['nope'] })).rejects.toMatchObject({ code: 'INVALID_ARGUMENT', message: expect.stringContaining('daily') });
  });
});
