/**
 * The live wire protocol's pure parts (live/internal/protocol.ts): requests are checked with a
 * clear BAD_REQUEST, snapshots are split under the frame limits without losing an item, and a
 * change frame carries what a client needs to detect gaps.
 */
import { describe, expect, it } from 'vitest';
import { LIVE_FUNCTIONS } from '../../sdk/contract/index.ts';
import { defineApp, defineView } from '../../sdk/index.ts';
import { changeFrame, MAX_FRAME_BYTES, MAX_KEYS_PER_SUBSCRIPTION, parseRequest, SNAPSHOT_FRAME_BYTES, snapshotFrames } from '../../live/index.ts';

describe('live protocol', () => {
  it('parses subscribe by keys or prefix and unsubscribe', () => {
    expect(parseRequest('{"action":"subscribe","id":"s1","view":"v","keys":["a",2,"a"]}')).toEqual({
      request: { action: 'subscribe', id: 's1', view: 'v', target: { keys: ['a', '2'] } },
    });
    expect(parseRequest('{"action":"subscribe","id":"s2","view":"v","prefix":""}')).toEqual({ request: { action: 'subscribe', id: 's2', view: 'v', target: { prefix: '' } } });
    expect(parseRequest('{"action":"unsubscribe","id":"s1"}')).toEqual({ request: { action: 'unsubscribe', id: 's1' } });
  });

  it.each([
    ['not json', /must be JSON/],
    ['[1]', /JSON object/],
    ['{"action":"subscribe","view":"v","keys":["a"]}', /"id" must be/],
    ['{"action":"subscribe","id":"s","view":"v"}', /exactly one of "keys"/],
    ['{"action":"subscribe","id":"s","view":"v","keys":["a"],"prefix":"a"}', /exactly one of "keys"/],
    ['{"action":"subscribe","id":"s","view":"v","keys":[]}', /non-empty list/],
    ['{"action":"subscribe","id":"s","view":"v","keys":[{"x":1}]}', /non-empty list/],
    ['{"action":"subscribe","id":"s","keys":["a"]}', /"view" must be/],
    ['{"action":"publish","id":"s"}', /"action" must be/],
    [JSON.stringify({ action: 'subscribe', id: 's', view: 'v', keys: Array.from({ length: MAX_KEYS_PER_SUBSCRIPTION + 1 }, (_, i) => `k${i}`) }), /at most 100/],
  ])('refuses %s with BAD_REQUEST', (body, message) => {
    const parsed = parseRequest(body);
    expect(parsed).toMatchObject({ error: { code: 'BAD_REQUEST' } });
    expect('error' in parsed && parsed.error.message).toMatch(message);
  });

  it('splits a snapshot into frames under the chunk size, every item once, done on the last', () => {
    const items = Array.from({ length: 50 }, (_, i) => ({ key: `k${i}`, version: i + 1, state: { text: 'x'.repeat(3_000) } }));
    const { frames, tooLarge } = snapshotFrames('s1', items);
    expect(tooLarge).toEqual([]);
    expect(frames.length).toBeGreaterThan(1);
    for (const frame of frames) expect(Buffer.byteLength(frame)).toBeLessThanOrEqual(SNAPSHOT_FRAME_BYTES);
    const parsed = frames.map((f) => JSON.parse(f));
    expect(parsed.map((f) => f.done)).toEqual([...Array(frames.length - 1).fill(false), true]);
    expect(parsed.flatMap((f) => f.items)).toEqual(items);
  });

  it('sends one large item alone, and one past a frame as TOO_LARGE', () => {
    const { frames, tooLarge } = snapshotFrames('s1', [
      { key: 'big', version: 1, state: 'x'.repeat(60_000) },
      { key: 'huge', version: 1, state: 'x'.repeat(MAX_FRAME_BYTES) },
      { key: 'small', version: 2, state: 1 },
    ]);
    expect(frames.map((f) => JSON.parse(f).items.map((i: { key: string }) => i.key))).toEqual([['big'], ['small']]);
    expect(tooLarge.map((f) => JSON.parse(f))).toEqual([expect.objectContaining({ type: 'error', id: 's1', code: 'TOO_LARGE' })]);
  });

  it('puts version, beforeVersion and the state (or deleted) into a change frame', () => {
    const base = { view: 'v', key: 'k', offsets: {}, idempotencyKey: 'v#k##3', before: { n: 1 } };
    expect(JSON.parse(changeFrame('s1', { ...base, after: { n: 2 }, version: 3, beforeVersion: 1 }))).toEqual({
      type: 'change', id: 's1', view: 'v', key: 'k', version: 3, beforeVersion: 1, state: { n: 2 },
    });
    expect(JSON.parse(changeFrame('s1', { ...base, after: undefined, deleted: true, version: 4, beforeVersion: 3, window: { start: 0, end: 10 } }))).toEqual({
      type: 'change', id: 's1', view: 'v', key: 'k', version: 4, beforeVersion: 3, window: { start: 0, end: 10 }, deleted: true,
    });
  });
});

describe('live views in the app definition', () => {
  const base = { source: 'bookings', key: (e: { k: string }) => e.k, initial: () => 0, reduce: (s: number) => s + 1 };

  it('gives each live view a built-in coalesced fan-out trigger, and none to other views', () => {
    const watched = defineView({ ...base, name: 'watched', live: { authorize: (p, key) => p.sub === key } });
    const open = defineView({ ...base, name: 'open', live: true });
    const quiet = defineView({ ...base, name: 'quiet' });
    const app = defineApp({ name: 'gym', views: [watched, open, quiet], live: { batchSize: 25 } });
    expect(app.live).toEqual({ views: ['watched', 'open'] });
    expect(app.triggers.map((t) => [t.name, t.view.name, t.function, t.changes, t.batchSize])).toEqual([
      ['live-watched', 'watched', LIVE_FUNCTIONS.fanout, 'coalesced', 25],
      ['live-open', 'open', LIVE_FUNCTIONS.fanout, 'coalesced', 25],
    ]);
    expect(app.functions).toEqual([LIVE_FUNCTIONS.fanout]);
    expect(watched.live!.authorize({ sub: 'a' }, 'a')).toBe(true);
    expect(watched.live!.authorize({ sub: 'a' }, 'b')).toBe(false);
    expect(open.live!.authorize({}, 'anything')).toBe(true);
    expect(quiet.live).toBeUndefined();
    expect(defineApp({ name: 'gym', views: [quiet] }).live).toBeUndefined();
  });

  it('refuses a live option that is not true or { authorize }', () => {
    expect(() => defineView({ ...base, name: 'bad', live: 'yes' as never })).toThrow(/live must be true or \{ authorize \}, received "yes"/);
    expect(() => defineView({ ...base, name: 'bad', live: { authorize: 1 as never } })).toThrow(/live.authorize must be a function/);
  });
});
