// A windowed view built beside live folding (build.ts, docs/architecture.md "View lifecycle"):
// the build folds history under its own checkpoints and advances its version's stream time
// there; live folding takes that stream time at the handover (also after a restart), so every
// event is judged (applied, or dead-lettered as late) exactly once and exactly as one fold of the
// whole partition would. And the closer owes no final change for a window that closed in that
// history. Expected values come from a plain fold in the test.
import { describe, expect, it } from 'vitest';
import { MemoryItemStore, type PoisonDeadLetter } from '../../engine/index.ts';
import { buildsInBackground } from '../../engine/internal/build.ts';
import { BatchProcessor, buildCheckpointTopic, type ItemStore } from '../../engine/internal/processor.ts';
import { StateCache } from '../../engine/internal/state-cache.ts';
import { WindowCloser } from '../../engine/internal/window-closer.ts';
import { StreamClock, streamTimeKey } from '../../engine/internal/windows.ts';
import { defineApp, defineTrigger, defineView, tumbling, type App, type Change, type SourceRecord } from '../../sdk/index.ts';

type Visit = { member: string; at: number };
const options = {
  source: 'visits',
  key: (e: Visit) => e.member,
  timestamp: (e: Visit) => e.at,
  window: tumbling({ sizeMs: 1_000 }),
  graceMs: 500,
  initial: () => 0,
  reduce: (n: number) => n + 1,
};
const perSecond = defineView({ ...options, name: 'perSecond', version: 2 });
const finalPerSecond = defineView({ ...options, name: 'perSecond', version: 2, emit: 'final' });
const total = defineView({ name: 'total', source: 'visits', key: () => 'all', initial: () => 0, reduce: (n: number) => n + 1 });

const record = (offset: number, member: string, at: number): SourceRecord => ({
  topic: 'visits',
  partition: 0,
  offset: String(offset),
  key: null,
  value: Buffer.from(JSON.stringify({ member, at })),
  timestampMs: at,
  headers: {},
});

/** Event times with late ones: an early jump to 10 s makes later events at 2–4 s and 8.5 s late (8.5 s only by what came before offset 6). */
const times = [100, 900, 1_200, 10_000, 2_000, 10_400, 8_500, 3_100, 11_000, 9_900, 12_700, 10_200, 13_000, 11_900, 4_000, 14_200];
const records = times.map((at, i) => record(i, i % 2 === 0 ? 'ann' : 'bob', at));

/** The plain fold: per key and window, the events applied; and the offsets of late events. */
function reference(events: readonly SourceRecord[]): { counts: Map<string, number>; late: string[]; closeAt: Map<string, number> } {
  let streamTime = Number.NEGATIVE_INFINITY;
  const counts = new Map<string, number>();
  const closeAt = new Map<string, number>();
  const late: string[] = [];
  for (const r of events) {
    const { member, at } = JSON.parse(r.value!.toString()) as Visit;
    streamTime = Math.max(streamTime, at);
    const start = Math.floor(at / 1_000) * 1_000;
    if (streamTime > start + 1_000 + 500) {
      late.push(r.offset);
      continue;
    }
    const id = `${member}@${start}`;
    counts.set(id, (counts.get(id) ?? 0) + 1);
    closeAt.set(id, start + 1_000 + 500);
  }
  return { counts, late, closeAt };
}

/** The store a build folds through: checkpoints under `<topic>@<segment>` (as build.ts keeps them). */
function buildStore(store: MemoryItemStore, segment: string): ItemStore {
  const own = (t: string) => (t === 'visits' ? buildCheckpointTopic(t, segment) : t);
  return {
    readItems: (keys) => store.readItems(keys),
    readItem: (key) => store.readItem(key),
    putItem: (item, expected) => store.putItem(item, expected),
    writeCheckpoint: (t, p, next, streamTime) => store.writeCheckpoint(own(t), p, next, streamTime),
    readCheckpoint: (t, p) => store.readCheckpoint(own(t), p),
    readCheckpointState: (t, p) => store.readCheckpointState(own(t), p),
    readWindows: (pk, below, above) => store.readWindows(pk, below, above),
    writeAtomically: (puts, deletes) => store.writeAtomically(puts, deletes),
  };
}

function processor(app: App, store: ItemStore, letters: PoisonDeadLetter[], followsBuilds: boolean): BatchProcessor {
  return new BatchProcessor({
    app,
    store,
    cache: new StateCache({ maxEntries: 1_000, maxBytes: 1024 * 1024 }),
    deadLetters: { send: async (batch) => void letters.push(...batch.filter((l): l is PoisonDeadLetter => l.kind === 'poison')) },
    changes: { deliver: async (_t, batch) => batch.map(() => 'delivered' as const) },
    limits: { writeConcurrency: 4, maxConflictRetries: 10 },
    now: () => new Date(0),
    followsBuilds,
  });
}

async function fold(p: BatchProcessor, from: number, to: number, skip?: ReadonlySet<string>): Promise<void> {
  const batch = records.slice(from, to);
  await p.apply('visits', 0, batch, skip !== undefined ? { skipViews: skip } : {});
  await p.checkpoint('visits', 0, String(to));
}

function counts(store: MemoryItemStore, view: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const item of store.items.values()) {
    if (item.view === view && item.windowStart !== undefined && item.state !== undefined) out.set(`${item.key}@${item.windowStart}`, item.state as number);
  }
  return out;
}

/**
 * Live folds [0, handover) leaving the view to its build, the build folds [0, built), then live
 * folds from `handover` on (a restart at `restartAt` in between when given).
 */
async function scenario(view: typeof perSecond, handover: number, built: number, follows: boolean, restartAt?: number) {
  const store = new MemoryItemStore();
  const letters: PoisonDeadLetter[] = [];
  const liveApp = defineApp({ name: 'gym', views: [view, total] });
  let live = processor(liveApp, store, letters, follows);
  const build = processor(defineApp({ name: 'gym', views: [view] }), buildStore(store, streamTimeKey(view)), letters, false);
  await fold(live, 0, handover, new Set([view.name]));
  await fold(build, 0, built);
  if (restartAt === undefined) await fold(live, handover, records.length);
  else {
    await fold(live, handover, restartAt);
    live = processor(liveApp, store, letters, follows);
    await fold(live, restartAt, records.length);
  }
  return { store, letters };
}

describe('StreamClock.adopt', () => {
  it("takes a build's stream time and the offsets it decided for one view only", () => {
    const clock = new StreamClock({ decidedThrough: 4n, times: { other: 50 } });
    clock.adopt('v@2', 9n, 10_000);
    expect(clock.time('v@2')).toBe(10_000);
    expect(clock.decided('7', 'v@2')).toBe(true);
    expect(clock.decided('7', 'other')).toBe(false);
    expect(clock.decided('10', 'v@2')).toBe(false);
    expect(clock.state().viewDecided).toEqual({ 'v@2': 9n });
    // Once the partition is decided past it, the view's own mark is dropped.
    for (let o = 5; o <= 9; o++) clock.pass(String(o));
    expect(clock.state().viewDecided).toBeUndefined();
  });

  it('keeps version 1 under the view name and later versions under their segment', () => {
    expect(streamTimeKey(defineView({ ...options, name: 'perSecond' }))).toBe('perSecond');
    expect(streamTimeKey(perSecond)).toBe('perSecond@2');
  });
});

describe('a windowed view built beside live folding', () => {
  const expected = reference(records);

  it('is built in the background like an unwindowed view', () => {
    expect(buildsInBackground(defineApp({ name: 'gym', views: [perSecond, total] }), perSecond)).toBe(true);
    expect(buildsInBackground(defineApp({ name: 'gym', views: [finalPerSecond] }), finalPerSecond)).toBe(true);
  });

  it('equals one fold of the whole partition: each event applied or dead-lettered as late exactly once', async () => {
    // The build folded three records past the handover (a live batch read again): they are its.
    const { store, letters } = await scenario(perSecond, 6, 9, true);
    expect(counts(store, 'perSecond')).toEqual(expected.counts);
    expect(letters.filter((l) => l.code === 'LATE').map((l) => l.record.offset).sort()).toEqual([...expected.late].sort());
    expect(expected.late.some((o) => Number(o) >= 9)).toBe(true);
    // The other view folded every record, the build's time included.
    expect([...store.items.values()].find((i) => i.view === 'total')?.state).toBe(records.length);
    // Live checkpoints carry the version's stream time under its own key.
    const live = await store.readCheckpointState('visits', 0);
    expect(live?.streamTime['perSecond@2']).toBe(Math.max(...times));
  });

  it('after a restart between the handover and the end of what the build folded, too', async () => {
    const { store, letters } = await scenario(perSecond, 6, 12, true, 8);
    expect(counts(store, 'perSecond')).toEqual(expected.counts);
    expect(letters.filter((l) => l.code === 'LATE').map((l) => l.record.offset).sort()).toEqual([...expected.late].sort());
  });

  it("without the build's stream time, live folding would apply events the fold judges late (the check can fail)", async () => {
    const { store, letters } = await scenario(perSecond, 6, 6, false);
    expect(counts(store, 'perSecond')).not.toEqual(expected.counts);
    expect(letters.filter((l) => l.code === 'LATE').length).toBeLessThan(expected.late.length);
  });
});

describe('a partition live folding has not folded since the build', () => {
  it("closes by, and idly advances from, the stream time the build left there", async () => {
    const store = new MemoryItemStore();
    const build = processor(defineApp({ name: 'gym', views: [finalPerSecond] }), buildStore(store, streamTimeKey(finalPerSecond)), [], false);
    await fold(build, 0, 8);
    const builtTime = Math.max(...times.slice(0, 8));
    const closer = new WindowCloser({
      views: [finalPerSecond],
      triggers: [],
      store,
      changes: { deliver: async (_t, batch) => batch.map(() => 'delivered' as const) },
      deadLetters: { send: async () => {} },
      partitionCount: () => 1,
    });
    // No live checkpoint has the version's stream time yet: the build's stands for it.
    expect(await closer.closingTime(finalPerSecond)).toBe(builtTime);
    const live = processor(defineApp({ name: 'gym', views: [finalPerSecond, total] }), store, [], true);
    // An idle advance below it moves nothing: stream time never goes back below the build's.
    expect(await live.advanceStreamTime('visits', 0, 'perSecond@2', builtTime - 5_000)).toBeUndefined();
    expect((await live.streamTimeOf('visits', 0)).times['perSecond@2']).toBe(builtTime);
    expect(await live.advanceStreamTime('visits', 0, 'perSecond@2', builtTime + 5_000)).toBe('0');
  });
});

describe("final changes of a windowed view built from history (emit: 'final')", () => {
  it('owes no change for a window closed in history, one for each window closing after the swap, none while the build runs', async () => {
    const report = defineTrigger({ view: finalPerSecond, function: 'report' });
    const { store } = await scenario(finalPerSecond, 6, 8, true);
    const delivered: Change[] = [];
    const built = reference(records.slice(0, 8));
    // What the swap records: the build's closing stream time (one partition: its stream time).
    const finalsFrom = Math.max(...times.slice(0, 8));
    let from: number | undefined;
    const closer = new WindowCloser({
      views: [finalPerSecond],
      triggers: [report],
      store,
      changes: { deliver: async (_t, batch) => (delivered.push(...batch), batch.map(() => 'delivered' as const)) },
      deadLetters: { send: async () => {} },
      partitionCount: () => 1,
      finalsFrom: async () => from,
    });
    // While the build runs nothing closes.
    expect(await closer.closeDue('visits', 0)).toEqual({ closed: 0, delivered: 0 });
    from = finalsFrom;
    await closer.closeDue('visits', 0);
    const all = reference(records);
    const streamTime = Math.max(...times);
    const closedNow = [...all.closeAt].filter(([, at]) => at < streamTime).map(([id]) => id);
    const owed = closedNow.filter((id) => all.closeAt.get(id)! >= finalsFrom).sort();
    expect(owed.length).toBeGreaterThan(0);
    expect(closedNow.length).toBeGreaterThan(owed.length);
    // History: windows the build had closed are among those without a change.
    expect([...built.closeAt].some(([, at]) => at < finalsFrom)).toBe(true);
    expect(delivered.map((c) => `${c.key}@${c.window!.start}`).sort()).toEqual(owed);
    expect(delivered.every((c) => c.final === true && c.after === all.counts.get(`${c.key}@${c.window!.start}`))).toBe(true);
    // Every closed window was cleared: a second round delivers nothing again.
    expect(await closer.closeDue('visits', 0)).toEqual({ closed: 0, delivered: 0 });
    expect(delivered.length).toBe(owed.length);
  });
});
