import { describe, expect, it } from 'vitest';
import { DefinitionError, defineApp, defineTrigger, defineView } from '../../sdk/index.ts';

interface Booking {
  classId: string;
  type: 'booked' | 'cancelled';
}

const view = () =>
  defineView({
    name: 'attendance',
    source: 'bookings',
    key: (e: Booking) => e.classId,
    initial: () => ({ booked: 0 }),
    reduce: (s, e) => ({ booked: s.booked + (e.type === 'booked' ? 1 : -1) }),
  });

function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (error) {
    expect(error).toBeInstanceOf(DefinitionError);
    return (error as DefinitionError).code;
  }
  return undefined;
}

describe('defineView', () => {
  it('fills defaults: JSON decoding, keep-all filter, state cap, dead-letter policy', () => {
    const v = view();
    expect(v.kind).toBe('view');
    expect(v.maxStateBytes).toBe(100_000);
    expect(v.onPoison).toBe('dead-letter');
    const event = v.decode(Buffer.from('{"classId":"c1","type":"booked"}'), {} as never);
    expect(event).toEqual({ classId: 'c1', type: 'booked' });
    expect(v.filter(event, {} as never)).toBe(true);
    expect(v.reduce(v.initial(), event, {} as never)).toEqual({ booked: 1 });
  });

  it('rejects invalid UTF-8 in the default decoder instead of folding mojibake', () => {
    expect(() => view().decode(Buffer.from([0x7b, 0xff, 0x7d]), {} as never)).toThrow();
  });

  it('rejects bad names, topics, callbacks and limits with a coded error naming the value', () => {
    const base = { name: 'v', source: 't', key: () => 'k', initial: () => 0, reduce: (s: number) => s };
    expect(codeOf(() => defineView({ ...base, name: 'has space' }))).toBe('INVALID_DEFINITION');
    expect(() => defineView({ ...base, source: 'bad topic!' })).toThrow(/source must be a Kafka topic name.*"bad topic!"/);
    expect(() => defineView({ ...base, reduce: 42 as never })).toThrow(/reduce must be a function, received 42/);
    expect(() => defineView({ ...base, maxStateBytes: 0 })).toThrow(/maxStateBytes must be a positive integer/);
    expect(() => defineView({ ...base, maxStateBytes: 399_000 })).toThrow(/400 KB/);
    expect(() => defineView({ ...base, onPoison: 'ignore' as never })).toThrow(/onPoison/);
  });
});

describe('defineTrigger', () => {
  it('names the trigger after view and function and fills retry defaults', () => {
    const t = defineTrigger({ view: view(), function: 'notifyInstructor', retry: { maxAttempts: 3 } });
    expect(t.name).toBe('attendance-notifyInstructor');
    expect(t.retry).toEqual({ maxAttempts: 3, initialBackoffMs: 100, maxBackoffMs: 5_000 });
    expect(t.batchSize).toBe(100);
    expect(t.when({} as never)).toBe(true);
  });

  it('rejects a backoff cap below the initial backoff', () => {
    expect(() =>
      defineTrigger({ view: view(), function: 'f', retry: { initialBackoffMs: 500, maxBackoffMs: 100 } }),
    ).toThrow(/maxBackoffMs \(100\) is below retry.initialBackoffMs \(500\)/);
  });

  it('rejects a view that is not a defineView() result', () => {
    expect(codeOf(() => defineTrigger({ view: { name: 'x' } as never, function: 'f' }))).toBe('INVALID_DEFINITION');
  });
});

describe('defineApp', () => {
  it('derives source topics, function names and the dead-letter topic', () => {
    const v = view();
    const app = defineApp({
      name: 'gym',
      views: [v],
      triggers: [defineTrigger({ view: v, function: 'a' }), defineTrigger({ view: v, function: 'b' })],
    });
    expect(app.sourceTopics).toEqual(['bookings']);
    expect(app.functions).toEqual(['a', 'b']);
    expect(app.deadLetterTopic).toBe('gym.dead-letter');
  });

  it('rejects duplicate views, triggers on foreign views and a dead-letter topic that is a source', () => {
    const v = view();
    expect(() => defineApp({ name: 'gym', views: [v, v] })).toThrow(/two views are named "attendance"/);
    expect(() => defineApp({ name: 'gym', views: [v], triggers: [defineTrigger({ view: view(), function: 'f' })] })).toThrow(
      /not in the app's views/,
    );
    expect(() => defineApp({ name: 'gym', views: [v], deadLetterTopic: 'bookings' })).toThrow(/poison would loop/);
    expect(() => defineApp({ name: '1gym', views: [v] })).toThrow(/app name must start with a letter/);
  });
});
