import { describe, expect, it } from 'vitest';
import {
  ClientError,
  createLiveClient,
  ItemSequencer,
  parseServerFrame,
  reconnectDelayMs,
  type LiveUpdate,
  type LiveViewStates,
} from '../../client/index.ts';
import { isTributaryError } from '../../sdk/index.ts';
import type * as gymViews from '../../functions/views.ts';
import { MemoryLiveServer, settleUntil } from './fixtures/memory-live-server.ts';

interface Counter {
  readonly n: number;
}

/** A client on the in-memory server, recording every update it shows per key. */
function setup(options: { token?: string | (() => string) } = {}) {
  const server = new MemoryLiveServer();
  const errors: ClientError[] = [];
  const statuses: string[] = [];
  const client = createLiveClient<{ counters: Counter }>({
    url: 'ws://127.0.0.1:1/live',
    WebSocket: server.WebSocket,
    reconnect: { initialDelayMs: 2, maxDelayMs: 8 },
    onError: (error) => errors.push(error),
    onStatus: (status) => statuses.push(status),
    ...(options.token === undefined ? {} : { token: options.token }),
  });
  const shown = new Map<string, LiveUpdate<Counter>[]>();
  const record = (update: LiveUpdate<Counter>) => {
    const list = shown.get(update.key) ?? [];
    list.push(update);
    shown.set(update.key, list);
  };
  const last = (key: string) => shown.get(key)?.at(-1);
  return { server, client, errors, statuses, shown, record, last };
}

/** No key ever shows a version at or below one it showed before. */
function expectStrictlyIncreasing(shown: Map<string, LiveUpdate<Counter>[]>) {
  for (const [key, updates] of shown) {
    const versions = updates.map((u) => u.version);
    for (let i = 1; i < versions.length; i += 1) {
      expect(versions[i], `key ${key}: versions ${versions.join(',')}`).toBeGreaterThan(versions[i - 1] as number);
    }
  }
}

describe('ItemSequencer (the client rule)', () => {
  it('applies a change that follows what is shown, drops a duplicate, and asks for a snapshot on a gap', () => {
    const item = new ItemSequencer();
    expect(item.offerSnapshot({ version: 3, state: { n: 3 } }).show.map((s) => s.version)).toEqual([3]);
    expect(item.offerChange({ version: 4, beforeVersion: 3, state: { n: 4 } }).show.map((s) => s.version)).toEqual([4]);
    // The same change again, and an older one: dropped.
    expect(item.offerChange({ version: 4, beforeVersion: 3, state: { n: 4 } })).toEqual({ show: [], resync: false });
    expect(item.offerChange({ version: 2, beforeVersion: 1, state: { n: 2 } })).toEqual({ show: [], resync: false });
    // Version 5 never arrived: 6 (from 5) is a gap, asked once however many follow.
    expect(item.offerChange({ version: 6, beforeVersion: 5, state: { n: 6 } })).toEqual({ show: [], resync: true });
    expect(item.offerChange({ version: 7, beforeVersion: 6, state: { n: 7 } })).toEqual({ show: [], resync: false });
    expect(item.version).toBe(4);
    // A snapshot older than what is shown is not shown; the buffered 6 and 7 still wait for 5,
    // so it asks again.
    expect(item.offerSnapshot({ version: 4, state: { n: 4 } })).toEqual({ show: [], resync: true });
    // A snapshot at 5: shown, then the buffered 6 and 7 follow it.
    const result = item.offerSnapshot({ version: 5, state: { n: 5 } });
    expect(result.show.map((s) => [s.version, s.source])).toEqual([
      [5, 'snapshot'],
      [6, 'change'],
      [7, 'change'],
    ]);
    expect(result.resync).toBe(false);
  });

  it('starts an absent key from no state, and a re-created item after a delete without a resync', () => {
    const item = new ItemSequencer();
    expect(item.offerSnapshot({ version: 0, state: null }).show).toEqual([
      { version: 0, state: undefined, deleted: false, source: 'snapshot', viewVersion: 1 },
    ]);
    expect(item.offerChange({ version: 1, state: { n: 1 } }).show.map((s) => s.version)).toEqual([1]);
    expect(item.offerChange({ version: 2, beforeVersion: 1, deleted: true }).show).toEqual([
      { version: 2, state: undefined, deleted: true, source: 'change', viewVersion: 1 },
    ]);
    // Re-created: no beforeVersion, and no state shown: it follows.
    expect(item.offerChange({ version: 3, state: { n: 1 } }).show.map((s) => s.version)).toEqual([3]);
    // No beforeVersion while a state is shown: something was missed.
    expect(item.offerChange({ version: 5, state: { n: 1 } }).resync).toBe(true);
  });

  it('applies changes that overtook one another in order, once the missing one arrives', () => {
    const item = new ItemSequencer();
    item.offerSnapshot({ version: 1, state: { n: 1 } });
    expect(item.offerChange({ version: 3, beforeVersion: 2, state: { n: 3 } }).show).toEqual([]);
    expect(item.offerChange({ version: 2, beforeVersion: 1, state: { n: 2 } }).show.map((s) => s.version)).toEqual([2, 3]);
  });

  it('starts over for a rebuilt view version, whose item versions count from 1 again', () => {
    const item = new ItemSequencer();
    item.offerSnapshot({ version: 40, state: { n: 40 } });
    // A change of version 2 of the view: not a duplicate of 2 <= 40, a gap into the new version.
    expect(item.offerChange({ version: 2, beforeVersion: 1, state: { n: 2 }, viewVersion: 2 }).resync).toBe(true);
    expect(item.offerSnapshot({ version: 2, state: { n: 2 }, viewVersion: 2 }).show.map((s) => s.version)).toEqual([2]);
    // And one of the old version, late: stale.
    expect(item.offerChange({ version: 41, beforeVersion: 40, state: { n: 41 } }).show).toEqual([]);
  });
});

describe('createLiveClient', () => {
  it('shows the snapshot of each key (an absent key as version 0 without state), then each change in order', async () => {
    const { server, client, record, shown } = setup();
    server.change('counters', 'a', { n: 1 });
    server.change('counters', 'a', { n: 2 });
    client.subscribe('counters', ['a', 'b'], record);
    await settleUntil(server, () => shown.size === 2);
    expect(shown.get('a')?.map((u) => [u.version, u.state, u.source])).toEqual([[2, { n: 2 }, 'snapshot']]);
    expect(shown.get('b')?.map((u) => [u.version, u.state, u.source])).toEqual([[0, undefined, 'snapshot']]);
    expect(server.current.received[0]).toEqual({ action: 'subscribe', id: 'w1', view: 'counters', keys: ['a', 'b'] });

    for (let n = 3; n <= 6; n += 1) server.change('counters', 'a', { n });
    server.change('counters', 'b', { n: 1 });
    server.settle();
    expect(shown.get('a')?.map((u) => u.version)).toEqual([2, 3, 4, 5, 6]);
    expect(shown.get('a')?.at(-1)?.state).toEqual(server.truth('counters', 'a').state);
    expect(shown.get('b')?.map((u) => [u.version, u.state, u.source])).toEqual([
      [0, undefined, 'snapshot'],
      [1, { n: 1 }, 'change'],
    ]);
    client.close();
  });

  it('drops duplicated frames', async () => {
    const { server, client, record, shown } = setup();
    client.subscribe('counters', 'a', record);
    await settleUntil(server, () => shown.has('a'));
    server.change('counters', 'a', { n: 1 });
    server.change('counters', 'a', { n: 2 });
    const outbox = server.current.outbox;
    outbox.splice(0, outbox.length, outbox[0]!, outbox[0]!, outbox[1]!, outbox[0]!, outbox[1]!);
    server.settle();
    expect(shown.get('a')?.map((u) => u.version)).toEqual([0, 1, 2]);
    client.close();
  });

  it('notices a lost change by its beforeVersion, fetches that key afresh and converges without showing anything older', async () => {
    const { server, client, record, shown } = setup();
    client.subscribe('counters', ['a', 'b'], record);
    await settleUntil(server, () => shown.size === 2);
    server.change('counters', 'a', { n: 1 });
    server.change('counters', 'a', { n: 2 });
    server.change('counters', 'b', { n: 1 });
    server.current.outbox.splice(1, 1); // a's version 2 is lost
    server.change('counters', 'a', { n: 3 });
    server.settle();
    // The gap asked for a one-key subscription of "a" alone, which was ended once its snapshot came.
    const sent = server.current.received;
    expect(sent.filter((f) => f.action === 'subscribe').map((f) => f.keys)).toEqual([['a', 'b'], ['a']]);
    expect(sent.at(-1)).toMatchObject({ action: 'unsubscribe' });
    expect(shown.get('a')?.map((u) => [u.version, u.source])).toEqual([
      [0, 'snapshot'],
      [1, 'change'],
      [3, 'snapshot'],
    ]);
    expect(shown.get('b')?.map((u) => u.version)).toEqual([0, 1]);
    // Later changes of "a" follow the snapshot.
    server.change('counters', 'a', { n: 4 });
    server.settle();
    expect(shown.get('a')?.at(-1)).toMatchObject({ version: 4, state: { n: 4 }, source: 'change' });
    client.close();
  });

  it('follows coalesced changes whose versions skip, since beforeVersion names the state last delivered', async () => {
    const { server, client, record, shown } = setup();
    server.change('counters', 'a', { n: 1 });
    client.subscribe('counters', 'a', record);
    await settleUntil(server, () => shown.has('a'));
    server.change('counters', 'a', { n: 7 }, 5);
    server.change('counters', 'a', { n: 9 }, 1);
    server.settle();
    expect(shown.get('a')?.map((u) => u.version)).toEqual([1, 7, 9]);
    expect(server.current.received.filter((f) => f.action === 'subscribe')).toHaveLength(1);
    client.close();
  });

  it('reconnects with backoff after the connection drops, resubscribes, and converges on what changed meanwhile', async () => {
    const { server, client, record, shown, statuses } = setup({ token: 'secret token' });
    client.subscribe('counters', ['a', 'b'], record);
    client.subscribe('counters', { prefix: 'p-' }, record);
    server.change('counters', 'p-1', { n: 1 });
    await settleUntil(server, () => shown.size === 3);
    expect(server.current.url.searchParams.get('token')).toBe('secret token');

    server.change('counters', 'a', { n: 1 });
    server.disconnect(server.current);
    // Changes while the client is away reach no one.
    server.change('counters', 'a', { n: 2 });
    server.change('counters', 'p-2', { n: 1 });
    server.refuseConnections = true; // the first attempts fail
    await settleUntil(server, () => server.connections.length >= 3);
    server.refuseConnections = false;
    await settleUntil(server, () => client.status === 'open' && shown.get('a')?.at(-1)?.version === 2 && shown.has('p-2'));

    expect(statuses).toContain('reconnecting');
    expect(shown.get('a')?.map((u) => u.version)).toEqual([0, 2]);
    expect(shown.get('p-2')?.map((u) => u.version)).toEqual([1]);
    expect(server.current.received.filter((f) => f.action === 'subscribe').map((f) => f.keys ?? f.prefix)).toEqual([['a', 'b'], 'p-']);
    // After the reconnection, changes flow again.
    server.change('counters', 'b', { n: 1 });
    server.settle();
    expect(shown.get('b')?.map((u) => u.version)).toEqual([0, 1]);
    expectStrictlyIncreasing(shown);
    client.close();
  });

  it('asks the token function again for every connection', async () => {
    let calls = 0;
    const { server, client, record, shown } = setup({ token: () => `t${++calls}` });
    client.subscribe('counters', 'a', record);
    await settleUntil(server, () => shown.has('a'));
    server.disconnect(server.current);
    await settleUntil(server, () => server.connections.length === 2 && client.status === 'open');
    expect(server.connections.map((c) => c.url.searchParams.get('token'))).toEqual(['t1', 't2']);
    client.close();
  });

  it('starts a subscription over from a fresh snapshot on a resync frame', async () => {
    const { server, client, record, shown } = setup();
    client.subscribe('counters', 'a', record);
    await settleUntil(server, () => shown.has('a'));
    server.change('counters', 'a', { n: 1 });
    server.change('counters', 'a', { n: 2 });
    server.current.outbox.length = 0; // the server dropped them (its queue bound) ...
    server.push({ type: 'resync', id: 'w1', reason: 'queue bound' }); // ... and says so
    server.settle();
    const sent = server.current.received;
    expect(sent.slice(1)).toEqual([
      { action: 'unsubscribe', id: 'w1' },
      { action: 'subscribe', id: 'w2', view: 'counters', keys: ['a'] },
    ]);
    expect(shown.get('a')?.map((u) => [u.version, u.source])).toEqual([
      [0, 'snapshot'],
      [2, 'snapshot'],
    ]);
    client.close();
  });

  it('holds changes that arrive before the snapshot is complete and judges them against it', async () => {
    const { server, client, record, shown } = setup();
    server.change('counters', 'p-1', { n: 1 });
    server.change('counters', 'p-2', { n: 1 });
    client.subscribe('counters', { prefix: 'p-' }, record);
    // Open the connection; the subscription is sent and answered in two snapshot frames.
    server.openPending();
    expect(server.current.outbox).toHaveLength(2);
    // A change written after the subscription but before the snapshot's second frame is read.
    server.change('counters', 'p-2', { n: 2 });
    const [first, second, change] = server.current.outbox.splice(0);
    server.current.outbox.push(first!, change!, second!);
    server.settle();
    expect(shown.get('p-2')?.map((u) => [u.version, u.source])).toEqual([
      [1, 'snapshot'],
      [2, 'change'],
    ]);
    client.close();
  });

  it('reports a refused subscription with its server code and ends it', async () => {
    const { server, client, record, shown, errors } = setup();
    server.refusedViews.set('counters', 'UNAUTHORIZED');
    const refusals: ClientError[] = [];
    client.subscribe('counters', 'a', record, { onError: (error) => refusals.push(error) });
    await settleUntil(server, () => refusals.length === 1);
    expect(refusals[0]).toBeInstanceOf(ClientError);
    expect(isTributaryError(refusals[0], 'client', 'SUBSCRIBE_REFUSED')).toBe(true);
    expect(refusals[0]?.context).toMatchObject({ view: 'counters', serverCode: 'UNAUTHORIZED' });
    expect(errors).toEqual([]);
    expect(shown.size).toBe(0);
    // Ended: not resubscribed after a reconnection.
    server.refusedViews.clear();
    server.disconnect(server.current);
    await settleUntil(server, () => server.connections.length === 2 && client.status === 'open');
    expect(server.current.received).toEqual([]);
    client.close();
  });

  it('stops calling onChange and unsubscribes on the wire once unsubscribed', async () => {
    const { server, client, record, shown } = setup();
    const stop = client.subscribe('counters', 'a', record);
    await settleUntil(server, () => shown.has('a'));
    stop();
    stop();
    server.change('counters', 'a', { n: 1 });
    server.settle();
    expect(shown.get('a')).toHaveLength(1);
    expect(server.current.received.filter((f) => f.action === 'unsubscribe')).toEqual([{ action: 'unsubscribe', id: 'w1' }]);
    client.close();
    expect(client.status).toBe('closed');
  });

  it('keeps the windows of one key apart', async () => {
    const { server, client, shown } = setup();
    const windows: LiveUpdate<Counter>[] = [];
    client.subscribe('counters', 'a', (update) => windows.push(update));
    await settleUntil(server, () => windows.length === 1);
    const day = (start: number) => ({ start, end: start + 86_400_000 });
    server.push({ type: 'change', id: 'w1', view: 'counters', key: 'a', version: 1, state: { n: 1 }, window: day(0) });
    server.push({ type: 'change', id: 'w1', view: 'counters', key: 'a', version: 1, state: { n: 1 }, window: day(86_400_000) });
    server.push({ type: 'change', id: 'w1', view: 'counters', key: 'a', version: 2, beforeVersion: 1, state: { n: 2 }, window: day(0) });
    server.settle();
    expect(windows.slice(1).map((u) => [u.window?.start, u.version])).toEqual([
      [0, 1],
      [86_400_000, 1],
      [0, 2],
    ]);
    void shown;
    client.close();
  });

  it('converges to every key\u2019s exact state whatever is lost, duplicated or reordered, never showing an older state', async () => {
    // A deterministic generator, so a failure replays.
    let seed = 0x2545f491;
    const random = () => {
      seed ^= seed << 13;
      seed ^= seed >>> 17;
      seed ^= seed << 5;
      return (seed >>> 0) / 2 ** 32;
    };
    const { server, client, record: recordByKeys, shown: shownByKeys } = setup();
    const { record: recordByPrefix, shown: shownByPrefix } = setup();
    const keys = ['k0', 'k1', 'k2', 'k3', 'k4'];
    client.subscribe('counters', keys.slice(0, 3), recordByKeys);
    client.subscribe('counters', { prefix: 'k' }, recordByPrefix);
    await settleUntil(server, () => shownByKeys.size === 3);
    const expected = new Map<string, number>();
    for (let step = 0; step < 400; step += 1) {
      const key = keys[Math.floor(random() * keys.length)] as string;
      const n = (expected.get(key) ?? 0) + 1;
      expected.set(key, n);
      server.change('counters', key, { n }, random() < 0.2 ? 2 : 0);
      const outbox = server.current.outbox;
      const roll = random();
      if (roll < 0.1 && outbox.length > 0) outbox.splice(Math.floor(random() * outbox.length), 1);
      else if (roll < 0.2 && outbox.length > 0) outbox.push(outbox[Math.floor(random() * outbox.length)]!);
      else if (roll < 0.3 && outbox.length > 1) outbox.reverse();
      if (random() < 0.3) server.settle();
      if (random() < 0.02) server.disconnect(server.current);
      if (random() < 0.05) await settleUntil(server, () => client.status === 'open');
    }
    // One last change per key shows whether a gap is still open; then everything converges.
    for (const key of keys) {
      const n = (expected.get(key) ?? 0) + 1;
      expected.set(key, n);
      server.change('counters', key, { n });
    }
    const latest = (shown: Map<string, LiveUpdate<Counter>[]>, key: string) => shown.get(key)?.at(-1);
    await settleUntil(
      server,
      () =>
        keys.slice(0, 3).every((key) => latest(shownByKeys, key)?.state?.n === expected.get(key)) &&
        keys.every((key) => latest(shownByPrefix, key)?.state?.n === expected.get(key)),
    );
    for (const key of keys) {
      expect(latest(shownByPrefix, key)?.version).toBe(server.truth('counters', key).version);
      if (keys.indexOf(key) < 3) expect(latest(shownByKeys, key)?.version).toBe(server.truth('counters', key).version);
    }
    expect(shownByKeys.has('k3')).toBe(false);
    // The run did what it set out to: connections were cut, and gaps were repaired key by key.
    const subscribes = server.connections.flatMap((c) => c.received).filter((f) => f.action === 'subscribe');
    expect(server.connections.length).toBeGreaterThan(2);
    expect(subscribes.filter((f) => Array.isArray(f.keys) && f.keys.length === 1).length).toBeGreaterThan(5);
    expectStrictlyIncreasing(shownByKeys);
    expectStrictlyIncreasing(shownByPrefix);
    client.close();
  });

  it('refuses bad arguments with what was wrong', () => {
    const server = new MemoryLiveServer();
    const code = (fn: () => unknown) => {
      try {
        fn();
      } catch (error) {
        expect(error).toBeInstanceOf(ClientError);
        return (error as ClientError).code;
      }
      return undefined;
    };
    expect(code(() => createLiveClient({ url: 'http://example', WebSocket: server.WebSocket }))).toBe('INVALID_ARGUMENT');
    expect(code(() => createLiveClient({ url: 'nope', WebSocket: server.WebSocket }))).toBe('INVALID_ARGUMENT');
    expect(code(() => createLiveClient({ url: 'ws://x', WebSocket: server.WebSocket, reconnect: { maxDelayMs: -1 } }))).toBe(
      'INVALID_ARGUMENT',
    );
    const client = createLiveClient({ url: 'ws://x', WebSocket: server.WebSocket });
    expect(code(() => client.subscribe('v', [], () => {}))).toBe('INVALID_ARGUMENT');
    expect(code(() => client.subscribe('v', { prefix: 3 as unknown as string }, () => {}))).toBe('INVALID_ARGUMENT');
    expect(code(() => client.subscribe('', 'a', () => {}))).toBe('INVALID_ARGUMENT');
    expect(code(() => client.subscribe('v', Number.NaN, () => {}))).toBe('INVALID_ARGUMENT');
    client.close();
    const hadWebSocket = Object.getOwnPropertyDescriptor(globalThis, 'WebSocket');
    Object.defineProperty(globalThis, 'WebSocket', { value: undefined, configurable: true, writable: true });
    try {
      expect(code(() => createLiveClient({ url: 'ws://x' }))).toBe('NO_WEBSOCKET');
    } finally {
      if (hadWebSocket === undefined) delete (globalThis as { WebSocket?: unknown }).WebSocket;
      else Object.defineProperty(globalThis, 'WebSocket', hadWebSocket);
    }
  });

  it('reports a malformed frame and goes on', async () => {
    const { server, client, record, shown, errors } = setup();
    client.subscribe('counters', 'a', record);
    await settleUntil(server, () => shown.has('a'));
    server.push({ type: 'change', id: 'w1', key: 'a' });
    server.change('counters', 'a', { n: 1 });
    server.settle();
    expect(errors.map((e) => e.code)).toEqual(['BAD_FRAME']);
    expect(shown.get('a')?.map((u) => u.version)).toEqual([0, 1]);
    expect(typeof parseServerFrame('{"type":"snapshot","id":"x","items":[{"key":1}]}')).toBe('string');
    // An unsubscribe's answer is a frame of the protocol, not an error.
    server.push({ type: 'unsubscribed', id: 'w1' });
    server.settle();
    expect(errors).toHaveLength(1);
    client.close();
  });

  it('turns tagged bigints of states back into bigints', () => {
    const frame = parseServerFrame(
      JSON.stringify({ type: 'change', id: 'w1', view: 'v', key: 'k', version: 1, state: { total: { $bigint: '9007199254740993' }, list: [{ $bigint: '-2' }], other: { $bigint: 'x' } } }),
    );
    expect(frame).toMatchObject({ state: { total: 9007199254740993n, list: [-2n], other: { $bigint: 'x' } } });
  });

  it('types states by view name', () => {
    const server = new MemoryLiveServer();
    const client = createLiveClient<LiveViewStates<typeof gymViews>>({ url: 'ws://x', WebSocket: server.WebSocket });
    const stop = client.subscribe('classAttendance', 'class-01', (update) => {
      // Compiles only if the state is the view's state type.
      const booked: number | undefined = update.state?.booked;
      void booked;
    });
    // @ts-expect-error not a view of the app
    client.subscribe('noSuchView', 'x', () => {});
    stop();
    client.close();
  });
});

describe('reconnectDelayMs', () => {
  it('draws uniformly below an exponential ceiling capped at 30 s', () => {
    const ceiling = (attempt: number) => reconnectDelayMs(attempt, {}, () => 0.999_999);
    expect([0, 1, 2, 3].map(ceiling)).toEqual([499, 999, 1_999, 3_999]);
    expect(ceiling(10)).toBe(29_999);
    expect(ceiling(1_000)).toBe(29_999);
    expect(reconnectDelayMs(5, {}, () => 0)).toBe(0);
    expect(reconnectDelayMs(2, { initialDelayMs: 10, maxDelayMs: 25 }, () => 0.5)).toBe(12);
  });
});
