// Windowed views through the in-memory driver: lateness, hopping fan-out, final emission,
// durable stream time and idle close. Expected values are computed in the test from the events.
import { describe, expect, it } from 'vitest';
import { createTestDriver, type PoisonDeadLetter } from '../../engine/index.ts';
import { defineApp, defineTrigger, defineView, hopping, session, tumbling, type ViewOptions } from '../../sdk/index.ts';

type Visit = { member: string; at: number };
const base = {
  source: 'visits',
  key: (e: Visit) => e.member,
  timestamp: (e: Visit) => e.at,
  initial: () => ({ count: 0, ats: [] as number[] }),
  reduce: (s: { count: number; ats: number[] }, e: Visit) => ({ count: s.count + 1, ats: [...s.ats, e.at].sort((a, b) => a - b) }),
} satisfies Partial<ViewOptions<Visit, { count: number; ats: number[] }>>;

const visit = (member: string, at: number, partition = 0) => ({ partition, value: { member, at } });

/** A seeded PRNG (mulberry32), so a failure replays. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

describe('tumbling windows', () => {
  const perSecond = defineView({ ...base, name: 'perSecond', window: tumbling({ sizeMs: 1_000 }), graceMs: 500 });
  const dropping = defineView({ ...base, name: 'dropping', window: tumbling({ sizeMs: 1_000 }), graceMs: 500, onLate: 'drop' });
  const app = defineApp({ name: 'gym', views: [perSecond, dropping] });

  it('applies out-of-order events within grace and counts, dead-letters (or drops) the late ones with how late they were', async () => {
    const driver = createTestDriver(app);
    await driver.send('visits', [visit('ann', 100), visit('ann', 1_200), visit('ann', 900)]);
    // 900 came after 1200, but [0, 1000) closes only past 1000 + 500.
    expect(driver.state('perSecond', 'ann', 0)).toEqual({ count: 2, ats: [100, 900] });
    await driver.send('visits', [visit('ann', 2_100), visit('ann', 950), visit('ann', 1_999)]);
    // Stream time 2100 > 1500: 950 is late by 600; [1000, 2000) closes only past 2500.
    expect(driver.state('perSecond', 'ann', 0)).toEqual({ count: 2, ats: [100, 900] });
    expect(driver.state('perSecond', 'ann', 1_000)).toEqual({ count: 2, ats: [1_200, 1_999] });
    expect(driver.state('perSecond', 'ann', 2_000)).toEqual({ count: 1, ats: [2_100] });
    expect(driver.item('perSecond', 'ann', 1_000)).toMatchObject({ windowStart: 1_000, windowEnd: 2_000, ttl: Math.ceil((2_000 + 2 * 1_500) / 1000) });
    expect(driver.lateEvents).toEqual({ perSecond: 1, dropping: 1 });
    const late = driver.deadLetters as PoisonDeadLetter[];
    expect(late).toHaveLength(1);
    expect(late[0]).toMatchObject({
      code: 'LATE',
      view: 'perSecond',
      key: 'ann',
      record: { offset: '4' },
      late: { eventTimeMs: 950, streamTimeMs: 2_100, windows: [{ start: 0, end: 1_000 }], lateByMs: 600 },
    });
    expect(driver.state('dropping', 'ann', 0)).toEqual({ count: 2, ats: [100, 900] });
  });

  it('equals a reference computed from the events, for 3000 events with bounded disorder on two partitions', async () => {
    const random = prng(11);
    const members = ['ann', 'bob', 'cy', 'dee'];
    const sizeMs = 1_000;
    const graceMs = 300;
    const sent: { member: string; at: number; partition: number }[] = [];
    for (let i = 0; i < 3_000; i++) {
      // Time moves on ~10 ms per event; disorder up to 600 ms, so some events are late.
      const at = Math.max(0, i * 10 - Math.floor(random() * 600));
      const member = members[Math.floor(random() * members.length)]!;
      sent.push({ member, at, partition: member < 'c' ? 0 : 1 });
    }
    const view = defineView({ ...base, name: 'ref', window: tumbling({ sizeMs }), graceMs });
    const driver = createTestDriver(defineApp({ name: 'gym', views: [view] }));
    for (let i = 0; i < sent.length; i += 97) await driver.send('visits', sent.slice(i, i + 97).map((e) => visit(e.member, e.at, e.partition)));
    // Reference: per partition in order, an event is late iff the largest time seen so far is
    // past the end of its window plus grace.
    const expected = new Map<string, number[]>();
    let lateCount = 0;
    for (const partition of [0, 1]) {
      let max = -1;
      for (const e of sent.filter((x) => x.partition === partition)) {
        max = Math.max(max, e.at);
        const start = e.at - (e.at % sizeMs);
        if (max > start + sizeMs + graceMs) {
          lateCount += 1;
          continue;
        }
        const id = `${e.member}@${start}`;
        expected.set(id, [...(expected.get(id) ?? []), e.at]);
      }
    }
    expect(lateCount).toBeGreaterThan(10);
    expect(driver.lateEvents.ref).toBe(lateCount);
    for (const [id, ats] of expected) {
      const [member, start] = id.split('@');
      expect(driver.state('ref', member!, Number(start))).toEqual({ count: ats.length, ats: [...ats].sort((a, b) => a - b) });
    }
    const stored = members.flatMap((m) => driver.windows('ref', m));
    expect(stored).toHaveLength(expected.size);
  });

  it('keeps stream time across a restart: a late event stays late, a redelivery decides nothing twice', async () => {
    const driver = createTestDriver(app);
    await driver.send('visits', [visit('ann', 100), visit('ann', 2_100)]);
    expect(driver.store.streamTimes.get('checkpoint#visits#0')).toEqual({ perSecond: 2_100, dropping: 2_100 });
    driver.restart();
    await driver.send('visits', [visit('ann', 200)]);
    expect(driver.state('perSecond', 'ann', 0)).toEqual({ count: 1, ats: [100] });
    expect(driver.lateEvents.perSecond).toBe(1);
    // A crash before the commit: the partition is read again from the start.
    driver.restart();
    await driver.redeliver('visits', 0, 0);
    expect(driver.state('perSecond', 'ann', 0)).toEqual({ count: 1, ats: [100] });
    expect(driver.lateEvents.perSecond).toBe(1);
    expect(driver.deadLetters).toHaveLength(1);
  });

  it('makes an event whose time cannot be read poison, and carries on', async () => {
    const driver = createTestDriver(app);
    await driver.send('visits', [{ value: { member: 'ann', at: 'yesterday' } }, visit('ann', 10)]);
    expect(driver.deadLetters.map((d) => d.code)).toEqual(['TIMESTAMP_INVALID', 'TIMESTAMP_INVALID']);
    expect(driver.state('perSecond', 'ann', 0)).toEqual({ count: 1, ats: [10] });
  });
});

describe('hopping windows', () => {
  it('applies each event once to every window that covers it', async () => {
    const view = defineView({ ...base, name: 'lastMinute', window: hopping({ sizeMs: 60_000, advanceMs: 20_000 }), graceMs: 120_000 });
    const driver = createTestDriver(defineApp({ name: 'gym', views: [view] }));
    const random = prng(5);
    const ats = Array.from({ length: 300 }, () => Math.floor(random() * 200_000));
    ats.sort((a, b) => a - b);
    await driver.send('visits', ats.map((at) => visit('ann', at)));
    await driver.redeliver('visits', 0, 0);
    const windows = driver.windows<{ count: number; ats: number[] }>('lastMinute', 'ann');
    for (const { window, state } of windows) {
      const inside = ats.filter((at) => window.start <= at && at < window.end);
      expect(window.end - window.start).toBe(60_000);
      expect(state.ats).toEqual(inside);
    }
    // Every window k·20 s up to the last event that holds one.
    const starts = new Set(ats.flatMap((at) => [0, 1, 2].map((k) => (Math.floor(at / 20_000) - k) * 20_000)).filter((s) => s >= 0));
    expect(windows.map((w) => w.window.start)).toEqual([...starts].sort((a, b) => a - b));
    expect(windows.reduce((n, w) => n + w.state.count, 0)).toBe(ats.filter((at) => at >= 40_000).length * 3 + ats.filter((at) => at < 20_000).length + ats.filter((at) => at >= 20_000 && at < 40_000).length * 2);
  });
});

describe("emit: 'final'", () => {
  const daily = defineView({ ...base, name: 'daily', window: tumbling({ sizeMs: 1_000 }), graceMs: 200, emit: 'final' });
  const report = defineTrigger({ view: daily, function: 'report' });
  const app = defineApp({ name: 'gym', views: [daily], triggers: [report] });

  it('delivers exactly one change per window, with final: true, after it closes and never before', async () => {
    const driver = createTestDriver(app);
    await driver.send('visits', [visit('ann', 100), visit('bob', 500), visit('ann', 1_100)]);
    await driver.send('visits', [visit('ann', 1_150), visit('ann', 900)]);
    expect(driver.changes).toEqual([]); // stream time 1150 is not past 1000 + 200
    await driver.send('visits', [visit('bob', 1_200)]);
    expect(driver.changes).toEqual([]); // 1200 is not past 1200 either
    await driver.send('visits', [visit('bob', 1_201)]);
    expect(driver.changes.map((c) => c.change)).toEqual([
      {
        view: 'daily',
        key: 'ann',
        window: { start: 0, end: 1_000 },
        before: undefined,
        after: { count: 2, ats: [100, 900] },
        version: 2,
        offsets: { 'visits/0': '4' },
        idempotencyKey: 'daily#ann#0#2',
        final: true,
      },
      {
        view: 'daily',
        key: 'bob',
        window: { start: 0, end: 1_000 },
        before: undefined,
        after: { count: 1, ats: [500] },
        version: 1,
        offsets: { 'visits/0': '1' },
        idempotencyKey: 'daily#bob#0#1',
        final: true,
      },
    ]);
    expect(driver.item('daily', 'ann', 0)).not.toHaveProperty('closeShard');
    expect(driver.item('daily', 'ann', 1_000)).toMatchObject({ closeShard: 'daily#visits/0', closeAt: 2_200 });
    await driver.send('visits', [visit('ann', 950), visit('ann', 5_000)]);
    // 950 is late; [1000, 2000) closes now, once.
    expect(driver.changes.map((c) => [c.change.key, c.change.window?.start])).toEqual([
      ['ann', 0],
      ['bob', 0],
      ['ann', 1_000],
      ['bob', 1_000],
    ]);
    await driver.advanceStreamTime('visits', 0, 100_000);
    expect(driver.changes.map((c) => [c.change.key, c.change.window?.start])).toEqual([
      ['ann', 0],
      ['bob', 0],
      ['ann', 1_000],
      ['bob', 1_000],
      ['ann', 5_000],
    ]);
  });

  it('waits for the stream time of every partition of the source', async () => {
    const driver = createTestDriver(app, { partitions: { visits: 2 } });
    await driver.send('visits', [visit('ann', 100, 0), visit('ann', 50_000, 0)]);
    expect(driver.changes).toEqual([]); // partition 1 has no stream time yet
    await driver.send('visits', [visit('ann', 300, 1)]);
    expect(driver.changes).toEqual([]); // partition 1 is at 300
    expect(driver.state('daily', 'ann', 0)).toEqual({ count: 2, ats: [100, 300] });
    await driver.advanceStreamTime('visits', 1, 1_201);
    expect(driver.changes.map((c) => c.change.after)).toEqual([{ count: 2, ats: [100, 300] }]);
  });

  it('delivers a final result again after a crash before its closing attributes were removed, with the same idempotency key', async () => {
    const driver = createTestDriver(app);
    const clear = driver.store.clearClosing.bind(driver.store);
    let crash = true;
    driver.store.clearClosing = async (item) => {
      if (crash) throw new Error('crashed before clearing');
      return clear(item);
    };
    await driver.send('visits', [visit('ann', 100)]);
    await expect(driver.send('visits', [visit('ann', 2_000)])).rejects.toThrow('crashed before clearing');
    crash = false;
    driver.restart();
    await driver.advanceStreamTime('visits', 0, 2_000);
    const keys = driver.changes.map((c) => c.change.idempotencyKey);
    expect(keys).toEqual(['daily#ann#0#1', 'daily#ann#0#1']);
    await driver.advanceStreamTime('visits', 0, 3_000);
    expect(driver.changes).toHaveLength(2);
  });

  it("lets a trigger's when() filter final changes", async () => {
    const busy = defineTrigger({ view: daily, function: 'busy', when: (c) => c.after.count >= 2 });
    const driver = createTestDriver(defineApp({ name: 'gym', views: [daily], triggers: [busy] }));
    await driver.send('visits', [visit('ann', 1), visit('ann', 2), visit('bob', 3), visit('x', 10_000)]);
    expect(driver.changes.map((c) => c.change.key)).toEqual(['ann']);
    expect(driver.item('daily', 'bob', 0)).not.toHaveProperty('closeShard');
  });
});

describe("emit: 'changes' on a windowed view", () => {
  it('delivers every update with the window and a window-aware idempotency key', async () => {
    const perSecond = defineView({ ...base, name: 'perSecond', window: tumbling({ sizeMs: 1_000 }), graceMs: 0 });
    const audit = defineTrigger({ view: perSecond, function: 'audit' });
    const driver = createTestDriver(defineApp({ name: 'gym', views: [perSecond], triggers: [audit] }));
    await driver.send('visits', [visit('ann', 100)]);
    await driver.send('visits', [visit('ann', 1_100)]);
    expect(driver.changes.map((c) => [c.change.window, c.change.idempotencyKey, c.change.final])).toEqual([
      [{ start: 0, end: 1_000 }, 'perSecond#ann#0#1', undefined],
      [{ start: 1_000, end: 2_000 }, 'perSecond#ann#1000#1', undefined],
    ]);
  });
});

describe('idleCloseMs', () => {
  it("advances a quiet partition's stream time by wall clock, so its windows close", async () => {
    const quiet = defineView({ ...base, name: 'quiet', window: tumbling({ sizeMs: 1_000 }), graceMs: 0, emit: 'final', idleCloseMs: 10_000 });
    const report = defineTrigger({ view: quiet, function: 'report' });
    const driver = createTestDriver(defineApp({ name: 'gym', views: [quiet], triggers: [report] }));
    await driver.send('visits', [visit('ann', 500)]);
    await driver.advanceWallClock(9_999);
    expect(driver.changes).toEqual([]);
    await driver.advanceWallClock(1); // quiet for 10 s: stream time >= 10_000 - 10_000 = 0
    expect(driver.changes).toEqual([]);
    await driver.advanceWallClock(1_001); // stream time 1001 > 1000
    expect(driver.changes.map((c) => [c.change.key, c.change.after, c.change.final])).toEqual([['ann', { count: 1, ats: [500] }, true]]);
    expect(driver.store.streamTimes.get('checkpoint#visits#0')).toEqual({ quiet: 1_001 });
    // The advance is durable: after a restart an older event is late.
    driver.restart();
    await driver.send('visits', [visit('ann', 600)]);
    expect(driver.lateEvents.quiet).toBe(1);
    expect(driver.changes).toHaveLength(1);
  });
});

describe('session windows', () => {
  type Visits = { count: number; ats: number[] };
  const sessionBase = {
    ...base,
    window: session({ gapMs: 1_000 }),
    merge: (a: Visits, b: Visits) => ({ count: a.count + b.count, ats: [...a.ats, ...b.ats].sort((x, y) => x - y) }),
  };

  it('merges two sessions an event bridges, in one write that removes the absorbed one', async () => {
    const visits = defineView({ ...sessionBase, name: 'visits', graceMs: 10_000 });
    const driver = createTestDriver(defineApp({ name: 'gym', views: [visits] }));
    await driver.send('visits', [visit('ann', 100), visit('ann', 600)]);
    await driver.send('visits', [visit('ann', 3_000)]);
    expect(driver.windows('visits', 'ann')).toEqual([
      { window: { start: 100, end: 1_600 }, state: { count: 2, ats: [100, 600] } },
      { window: { start: 3_000, end: 4_000 }, state: { count: 1, ats: [3_000] } },
    ]);
    await driver.send('visits', [visit('ann', 1_500)]); // extends the first to [100, 2500)
    await driver.send('visits', [visit('ann', 2_400)]); // bridges [100, 2500) and [3000, 4000)
    expect(driver.windows('visits', 'ann')).toEqual([{ window: { start: 100, end: 4_000 }, state: { count: 5, ats: [100, 600, 1_500, 2_400, 3_000] } }]);
    // An event before the first: the session starts earlier, under a new item.
    await driver.send('visits', [visit('ann', 50), visit('bob', 7)]);
    expect(driver.windows('visits', 'ann')).toEqual([{ window: { start: 50, end: 4_000 }, state: { count: 6, ats: [50, 100, 600, 1_500, 2_400, 3_000] } }]);
    // A redelivery applies nothing twice.
    await driver.redeliver('visits', 0, 0);
    expect(driver.windows('visits', 'ann')).toHaveLength(1);
    expect(driver.state('visits', 'ann', 50)).toEqual({ count: 6, ats: [50, 100, 600, 1_500, 2_400, 3_000] });
  });

  it('equals sessions computed from the sorted event times, whatever the order and batching', async () => {
    const visits = defineView({ ...sessionBase, name: 'visits', graceMs: 1_000_000 });
    const driver = createTestDriver(defineApp({ name: 'gym', views: [visits] }));
    const random = prng(23);
    const sent = Array.from({ length: 600 }, () => ({ member: ['ann', 'bob', 'cy'][Math.floor(random() * 3)]!, at: Math.floor(random() * 120_000) }));
    for (let i = 0; i < sent.length; i += 37) await driver.send('visits', sent.slice(i, i + 37).map((e) => visit(e.member, e.at)));
    for (const member of ['ann', 'bob', 'cy']) {
      const times = sent.filter((e) => e.member === member).map((e) => e.at).sort((a, b) => a - b);
      const expected: { window: { start: number; end: number }; state: Visits }[] = [];
      for (const t of times) {
        const last = expected[expected.length - 1];
        if (last !== undefined && t < last.window.end) {
          last.window.end = t + 1_000;
          last.state.count += 1;
          last.state.ats.push(t);
        } else expected.push({ window: { start: t, end: t + 1_000 }, state: { count: 1, ats: [t] } });
      }
      expect(driver.windows('visits', member)).toEqual(expected);
    }
  });

  it('refuses an event that would join a closed session as late', async () => {
    const visits = defineView({ ...sessionBase, name: 'visits', graceMs: 0 });
    const driver = createTestDriver(defineApp({ name: 'gym', views: [visits] }));
    await driver.send('visits', [visit('ann', 100), visit('bob', 1_500)]);
    // Its own session [1000, 2000) is open at stream time 1500; [100, 1100) closed at 1100.
    await driver.send('visits', [visit('ann', 1_000)]);
    expect(driver.windows('visits', 'ann')).toEqual([{ window: { start: 100, end: 1_100 }, state: { count: 1, ats: [100] } }]);
    expect(driver.lateEvents.visits).toBe(1);
    expect(driver.deadLetters).toMatchObject([{ code: 'LATE', key: 'ann', late: { windows: [{ start: 100, end: 1_100 }], streamTimeMs: 1_500, lateByMs: 400 } }]);
  });

  it("delivers one final change per session once it closes, none for the sessions it absorbed", async () => {
    const visits = defineView({ ...sessionBase, name: 'visits', graceMs: 500, emit: 'final' });
    const digest = defineTrigger({ view: visits, function: 'digest' });
    const driver = createTestDriver(defineApp({ name: 'gym', views: [visits], triggers: [digest] }));
    await driver.send('visits', [visit('ann', 100), visit('ann', 1_500)]);
    await driver.send('visits', [visit('ann', 1_050)]); // bridges [100, 1100) and [1500, 2500)
    await driver.send('visits', [visit('bob', 3_000)]);
    expect(driver.changes).toEqual([]); // 3000 is not past 2500 + 500
    await driver.send('visits', [visit('bob', 3_001)]);
    expect(driver.changes.map((c) => [c.change.key, c.change.window, c.change.after, c.change.final])).toEqual([
      ['ann', { start: 100, end: 2_500 }, { count: 3, ats: [100, 1_050, 1_500] }, true],
    ]);
    await driver.advanceStreamTime('visits', 0, 1_000_000);
    expect(driver.changes.map((c) => [c.change.key, c.change.window])).toEqual([
      ['ann', { start: 100, end: 2_500 }],
      ['bob', { start: 3_000, end: 4_001 }],
    ]);
  });
});
