// Window assignment, event time and stream time (engine/internal/windows.ts): pure rules.
import { describe, expect, it } from 'vitest';
import { closingStreamTime, eventTimeOf, idleAdvances, isClosed, StreamClock, windowsOf, windowTtlSeconds } from '../../engine/internal/windows.ts';
import { defineView, hopping, session, tumbling, type SourceRecord, type WindowSpec } from '../../sdk/index.ts';

const record = (timestampMs: number): SourceRecord => ({ topic: 't', partition: 0, offset: '0', key: null, value: null, timestampMs, headers: {} });
const viewWith = (window: WindowSpec, extra: Record<string, unknown> = {}) =>
  defineView({ name: 'v', source: 't', key: () => 'k', initial: () => 0, reduce: (s: number) => s + 1, window, graceMs: 5, ...extra });

describe('windowsOf', () => {
  it('puts an event in the one epoch-aligned tumbling window [start, end) that holds it', () => {
    const w = viewWith(tumbling({ sizeMs: 1_000 })).window!;
    expect(windowsOf(w, 0)).toEqual([{ start: 0, end: 1_000 }]);
    expect(windowsOf(w, 999)).toEqual([{ start: 0, end: 1_000 }]);
    expect(windowsOf(w, 1_000)).toEqual([{ start: 1_000, end: 2_000 }]);
    expect(windowsOf(w, 1_767_225_600_123)).toEqual([{ start: 1_767_225_600_000, end: 1_767_225_601_000 }]);
  });

  it('puts an event in every hopping window that covers it, earliest first, none before the epoch', () => {
    const w = viewWith(hopping({ sizeMs: 30, advanceMs: 10 })).window!;
    expect(windowsOf(w, 45)).toEqual([
      { start: 20, end: 50 },
      { start: 30, end: 60 },
      { start: 40, end: 70 },
    ]);
    expect(windowsOf(w, 40)).toEqual([
      { start: 20, end: 50 },
      { start: 30, end: 60 },
      { start: 40, end: 70 },
    ]);
    expect(windowsOf(w, 15)).toEqual([
      { start: 0, end: 30 },
      { start: 10, end: 40 },
    ]);
    // Brute force: every window k·advance that holds t, for many t.
    for (let t = 0; t < 200; t++) {
      const expected = [];
      for (let start = 0; start <= t; start += 10) if (start <= t && t < start + 30) expected.push({ start, end: start + 30 });
      expect(windowsOf(w, t)).toEqual(expected);
    }
  });

  it("gives a session event its own session [t, t + gap) before any merge", () => {
    const w = viewWith(session({ gapMs: 100 }), { merge: (a: number, b: number) => a + b }).window!;
    expect(windowsOf(w, 250)).toEqual([{ start: 250, end: 350 }]);
  });
});

describe('closing and retention', () => {
  it('closes a window once stream time is past end + grace, not at it', () => {
    const w = viewWith(tumbling({ sizeMs: 10 })).window!; // grace 5
    const bounds = { start: 0, end: 10 };
    expect(isClosed(w, bounds, undefined)).toBe(false);
    expect(isClosed(w, bounds, 15)).toBe(false);
    expect(isClosed(w, bounds, 16)).toBe(true);
  });

  it('expires a window end + retention later, in epoch seconds', () => {
    const w = viewWith(tumbling({ sizeMs: 10_000 }), { retentionMs: 60_000 }).window!;
    expect(windowTtlSeconds(w, { start: 0, end: 10_000 })).toBe(70);
  });

  it('closes final results on the least stream time of the source partitions, nothing while one is unknown', () => {
    expect(closingStreamTime([100, 250, 90])).toBe(90);
    expect(closingStreamTime([100, undefined])).toBeUndefined();
    expect(closingStreamTime([])).toBeUndefined();
  });
});

describe('eventTimeOf', () => {
  it('takes the record timestamp by default, or the view timestamp()', () => {
    expect(eventTimeOf(viewWith(tumbling({ sizeMs: 10 })), {}, record(1234))).toEqual({ ok: true, timeMs: 1234 });
    const byEvent = viewWith(tumbling({ sizeMs: 10 }), { timestamp: (e: { at: string }) => Date.parse(e.at) });
    expect(eventTimeOf(byEvent, { at: '2026-01-01T00:00:00Z' }, record(0))).toEqual({ ok: true, timeMs: 1_767_225_600_000 });
  });

  it('makes an unreadable, negative, fractional or non-finite time poison with a clear code', () => {
    const throwing = viewWith(tumbling({ sizeMs: 10 }), {
      timestamp: () => {
        throw new Error('no time');
      },
    });
    expect(eventTimeOf(throwing, {}, record(0))).toMatchObject({ ok: false, code: 'TIMESTAMP_FAILED', reason: expect.stringMatching(/no time/) });
    for (const bad of [Number.NaN, -1, 1.5, Number.POSITIVE_INFINITY, '100', undefined, 1e16]) {
      const view = viewWith(tumbling({ sizeMs: 10 }), { timestamp: () => bad });
      expect(eventTimeOf(view, {}, record(0))).toMatchObject({ ok: false, code: 'TIMESTAMP_INVALID' });
    }
    expect(eventTimeOf(viewWith(tumbling({ sizeMs: 10 })), {}, record(-5))).toMatchObject({
      ok: false,
      code: 'TIMESTAMP_INVALID',
      reason: expect.stringMatching(/the record timestamp gave -5/),
    });
  });
});

describe('StreamClock', () => {
  it('keeps the largest event time per view and what was decided', () => {
    const clock = new StreamClock();
    expect(clock.time('a')).toBeUndefined();
    expect(clock.observe('a', 50)).toBe(50);
    expect(clock.observe('a', 20)).toBe(50);
    expect(clock.observe('b', 10)).toBe(10);
    clock.pass('7');
    expect(clock.decided('7')).toBe(true);
    expect(clock.decided('8')).toBe(false);
    expect(clock.state()).toEqual({ decidedThrough: 7n, times: { a: 50, b: 10 } });
    const restored = new StreamClock(clock.state());
    expect(restored.advance('a', 40)).toBe(false);
    expect(restored.advance('a', 60)).toBe(true);
    expect(restored.time('a')).toBe(60);
  });
});

describe('idleAdvances', () => {
  it('advances a quiet partition to the wall clock minus idleCloseMs, for views that ask for it', () => {
    const idle = viewWith(tumbling({ sizeMs: 10 }), { idleCloseMs: 1_000 });
    const other = defineView({ ...{ name: 'w', source: 't', key: () => 'k', initial: () => 0, reduce: (s: number) => s }, window: tumbling({ sizeMs: 10 }), graceMs: 0 });
    expect(idleAdvances([idle, other], 't', 5_000, 5_999)).toEqual([]);
    expect(idleAdvances([idle, other], 't', 5_000, 6_000)).toEqual([{ view: 'v', timeMs: 5_000 }]);
    expect(idleAdvances([idle, other], 'elsewhere', 5_000, 9_000)).toEqual([]);
  });
});
