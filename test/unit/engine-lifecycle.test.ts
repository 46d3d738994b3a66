/**
 * Definition identity: `defineView`'s `version`, the fingerprint of a definition (what it covers
 * and what it leaves out) and the verdict of the start-up check against the recorded versions.
 */
import { describe, expect, it } from 'vitest';
import { judgeDefinition, viewFingerprint, type ViewRegistryEntry } from '../../engine/index.ts';
import { DefinitionError, defineView, tumbling, type ViewOptions } from '../../sdk/index.ts';

interface Booking {
  classId: string;
  type: 'booked' | 'cancelled';
}

const base: ViewOptions<Booking, { booked: number }> = {
  name: 'attendance',
  source: 'bookings',
  key: (e) => e.classId,
  initial: () => ({ booked: 0 }),
  reduce: (s, e) => ({ booked: s.booked + (e.type === 'booked' ? 1 : -1) }),
};

const recorded = (versions: Record<string, string>): ViewRegistryEntry => ({
  view: 'attendance',
  versions: Object.fromEntries(Object.entries(versions).map(([v, fingerprint]) => [v, { fingerprint, recordedAt: '2026-01-01T00:00:00.000Z' }])),
});

describe('defineView version', () => {
  it('defaults to 1 and keeps a given integer', () => {
    expect(defineView(base).version).toBe(1);
    expect(defineView({ ...base, version: 3 }).version).toBe(3);
  });

  it.each([0, -1, 1.5, '2', Number.NaN])('refuses version %s, naming the value', (version) => {
    expect(() => defineView({ ...base, version: version as number })).toThrow(DefinitionError);
    expect(() => defineView({ ...base, version: version as number })).toThrow(/view "attendance": version must be a positive integer/);
  });
});

describe('viewFingerprint', () => {
  const fp = (options: Partial<ViewOptions<Booking, any>>) => viewFingerprint(defineView({ ...base, ...options }));

  it('is the same for the same definition, built twice, and for re-indented code', () => {
    expect(fp({})).toBe(viewFingerprint(defineView(base)));
    expect(fp({ key: (e) =>   e.classId })).toBe(fp({}));
    expect(fp({})).toMatch(/^sha256:[0-9a-f]{64}$/);
  });

  it('changes with the reducer, key, initial state, filter, source, maxStateBytes and window', () => {
    const original = fp({});
    const changed = [
      fp({ reduce: (s, e) => ({ booked: s.booked + (e.type === 'booked' ? 2 : -1) }) }),
      fp({ key: (e) => e.type }),
      fp({ initial: () => ({ booked: 1 }) }),
      fp({ filter: (e) => e.type === 'booked' }),
      fp({ source: 'other' }),
      fp({ maxStateBytes: 1000 }),
      fp({ window: tumbling({ sizeMs: 60_000 }), graceMs: 0 }),
    ];
    for (const c of changed) expect(c).not.toBe(original);
    expect(new Set(changed).size).toBe(changed.length);
  });

  it('does not depend on the version, retention or what triggers hear', () => {
    const windowed = { window: tumbling({ sizeMs: 60_000 }), graceMs: 0 };
    expect(fp({ version: 2 })).toBe(fp({}));
    expect(fp({ ...windowed, retentionMs: 3_600_000 })).toBe(fp({ ...windowed, retentionMs: 7_200_000 }));
    expect(fp({ ...windowed, emit: 'final' })).toBe(fp(windowed));
    expect(fp({ onPoison: 'stop' })).toBe(fp({}));
  });
});

describe('judgeDefinition', () => {
  it('a view never recorded is new', () => {
    expect(judgeDefinition(1, 'sha256:a', undefined)).toEqual({ kind: 'new' });
  });

  it('the same version and fingerprint is the same', () => {
    expect(judgeDefinition(1, 'sha256:a', recorded({ 1: 'sha256:a' }))).toEqual({ kind: 'same' });
  });

  it('the same version with another fingerprint changed', () => {
    expect(judgeDefinition(2, 'sha256:b', recorded({ 1: 'sha256:a', 2: 'sha256:c' }))).toEqual({ kind: 'changed', recorded: 'sha256:c' });
  });

  it('a higher version is an upgrade from the newest recorded one', () => {
    expect(judgeDefinition(3, 'sha256:b', recorded({ 1: 'sha256:a', 2: 'sha256:c' }))).toEqual({ kind: 'upgrade', from: 2 });
  });

  it('a version below the newest recorded is older, recorded itself or not', () => {
    expect(judgeDefinition(2, 'sha256:b', recorded({ 1: 'sha256:a', 3: 'sha256:c' }))).toEqual({ kind: 'older', newest: 3 });
    expect(judgeDefinition(1, 'sha256:a', recorded({ 1: 'sha256:a', 3: 'sha256:c' }))).toEqual({ kind: 'older', newest: 3 });
  });
});
