import { describe, expect, it } from 'vitest';
import { DefinitionError, defineTrigger, defineView, hopping, session, tumbling } from '../../sdk/index.ts';

const base = {
  name: 'perDay',
  source: 'bookings',
  key: (e: { classId: string }) => e.classId,
  initial: () => 0,
  reduce: (s: number) => s + 1,
};
const DAY = 86_400_000;

function messageOf(fn: () => unknown): string {
  try {
    fn();
  } catch (error) {
    expect(error).toBeInstanceOf(DefinitionError);
    expect((error as DefinitionError).code).toBe('INVALID_DEFINITION');
    return (error as Error).message;
  }
  throw new Error('expected a DefinitionError');
}

describe('window helpers', () => {
  it('build the window specs', () => {
    expect(tumbling({ sizeMs: DAY })).toEqual({ kind: 'tumbling', sizeMs: DAY });
    expect(hopping({ sizeMs: 3_600_000, advanceMs: 600_000 })).toEqual({ kind: 'hopping', sizeMs: 3_600_000, advanceMs: 600_000 });
    expect(session({ gapMs: 1_800_000 })).toEqual({ kind: 'session', gapMs: 1_800_000 });
  });

  it('refuse sizes that are not positive integers, with the value received', () => {
    expect(messageOf(() => tumbling({ sizeMs: 0 }))).toMatch(/sizeMs must be a positive integer.*received 0/);
    expect(messageOf(() => tumbling({ sizeMs: 1.5 }))).toMatch(/received 1.5/);
    expect(messageOf(() => tumbling({ sizeMs: '60000' as never }))).toMatch(/received "60000"/);
    expect(messageOf(() => tumbling({ sizeMs: Number.POSITIVE_INFINITY }))).toMatch(/sizeMs/);
    expect(messageOf(() => session({ gapMs: -1 }))).toMatch(/gapMs must be a positive integer.*received -1/);
    expect(messageOf(() => tumbling(undefined as never))).toMatch(/sizeMs/);
  });

  it('refuse a hopping advance past its size, a size that is not a multiple of it, and more than 100 windows per event', () => {
    expect(messageOf(() => hopping({ sizeMs: 10, advanceMs: 20 }))).toMatch(/advanceMs \(20\) is larger than sizeMs \(10\)/);
    expect(messageOf(() => hopping({ sizeMs: 10_000, advanceMs: 3_000 }))).toMatch(/multiple of advanceMs.*e\.g\. advanceMs 2500/);
    expect(messageOf(() => hopping({ sizeMs: 1_000, advanceMs: 1 }))).toMatch(/1000.*at most 100/);
    expect(hopping({ sizeMs: 100, advanceMs: 100 })).toEqual({ kind: 'hopping', sizeMs: 100, advanceMs: 100 });
  });
});

describe('defineView with a window', () => {
  it('compiles the window with its defaults: changes, dead-letter late events, retention 2 × (size + grace), record time', () => {
    const view = defineView({ ...base, window: tumbling({ sizeMs: DAY }), graceMs: 3_600_000 });
    expect(view.window).toEqual({
      kind: 'tumbling',
      sizeMs: DAY,
      graceMs: 3_600_000,
      retentionMs: 2 * (DAY + 3_600_000),
      emit: 'changes',
      onLate: 'dead-letter',
      idleCloseMs: undefined,
      timestamp: undefined,
    });
    expect(view.merge).toBeUndefined();
    const visits = defineView({ ...base, window: session({ gapMs: 1_000 }), graceMs: 0, merge: (a, b) => a + b });
    expect(visits.window).toMatchObject({ kind: 'session', gapMs: 1_000, graceMs: 0, retentionMs: 2_000 });
    expect(visits.merge!(2, 3)).toBe(5);
  });

  it('keeps every option given', () => {
    const timestamp = (e: { at: number }) => e.at;
    const view = defineView({
      ...base,
      key: () => 'k',
      window: hopping({ sizeMs: 60_000, advanceMs: 10_000 }),
      graceMs: 5_000,
      timestamp,
      emit: 'final',
      onLate: 'drop',
      retentionMs: 600_000,
      idleCloseMs: 30_000,
    });
    expect(view.window).toEqual({
      kind: 'hopping',
      sizeMs: 60_000,
      advanceMs: 10_000,
      graceMs: 5_000,
      retentionMs: 600_000,
      emit: 'final',
      onLate: 'drop',
      idleCloseMs: 30_000,
      timestamp,
    });
  });

  it('requires graceMs and says why it has no default', () => {
    const message = messageOf(() => defineView({ ...base, window: tumbling({ sizeMs: DAY }) }));
    expect(message).toMatch(/needs graceMs/);
    expect(message).toMatch(/no default on purpose/);
    expect(messageOf(() => defineView({ ...base, window: tumbling({ sizeMs: DAY }), graceMs: -5 }))).toMatch(/graceMs must be a non-negative integer.*-5/);
  });

  it('refuses window options on an unwindowed view instead of ignoring them', () => {
    expect(messageOf(() => defineView({ ...base, graceMs: 1_000 }))).toMatch(/graceMs applies only to windowed views/);
    expect(messageOf(() => defineView({ ...base, emit: 'final', onLate: 'drop' }))).toMatch(/emit, onLate apply only to windowed views/);
  });

  it('requires merge for sessions and refuses it for other windows', () => {
    expect(messageOf(() => defineView({ ...base, window: session({ gapMs: 1_000 }), graceMs: 0 }))).toMatch(/session view needs merge\(a, b\)/);
    expect(messageOf(() => defineView({ ...base, window: session({ gapMs: 1_000 }), graceMs: 0, merge: 3 as never }))).toMatch(/merge must be a function, received 3/);
    expect(messageOf(() => defineView({ ...base, window: tumbling({ sizeMs: 1_000 }), graceMs: 0, merge: (a: number) => a }))).toMatch(
      /merge applies only to session windows/,
    );
  });

  it('validates the other window options', () => {
    const w = { ...base, window: tumbling({ sizeMs: 1_000 }), graceMs: 500 };
    expect(messageOf(() => defineView({ ...w, retentionMs: 100 }))).toMatch(/retentionMs \(100\) is shorter than graceMs \(500\)/);
    expect(messageOf(() => defineView({ ...w, emit: 'always' as never }))).toMatch(/emit must be "changes" or "final", received "always"/);
    expect(messageOf(() => defineView({ ...w, onLate: 'ignore' as never }))).toMatch(/onLate must be "dead-letter" or "drop"/);
    expect(messageOf(() => defineView({ ...w, idleCloseMs: 0 }))).toMatch(/idleCloseMs must be a positive integer/);
    expect(messageOf(() => defineView({ ...w, timestamp: 'at' as never }))).toMatch(/timestamp must be a function/);
    expect(messageOf(() => defineView({ ...base, window: { kind: 'sliding', sizeMs: 1 } as never, graceMs: 0 }))).toMatch(
      /window must come from tumbling\(\), hopping\(\) or session\(\)/,
    );
    // A plain object is checked like the helpers' result.
    expect(messageOf(() => defineView({ ...base, window: { kind: 'hopping', sizeMs: 10, advanceMs: 3 }, graceMs: 0 }))).toMatch(/multiple of advanceMs/);
  });
});

describe('defineTrigger on a session view', () => {
  it("refuses changes: 'every' on a session view that emits changes, and takes coalesced or final", () => {
    const visits = defineView({ ...base, window: session({ gapMs: 1_000 }), graceMs: 0, merge: (a: number, b: number) => a + b });
    expect(messageOf(() => defineTrigger({ view: visits, function: 'f' }))).toMatch(/session view.*changes: 'coalesced'.*emit: 'final'/);
    expect(defineTrigger({ view: visits, function: 'f', changes: 'coalesced' }).changes).toBe('coalesced');
    const finalVisits = defineView({ ...base, name: 'finalVisits', window: session({ gapMs: 1_000 }), graceMs: 0, emit: 'final', merge: (a: number, b: number) => a + b });
    expect(defineTrigger({ view: finalVisits, function: 'f' }).view).toBe(finalVisits);
  });
});
