/**
 * Live subscriptions on the real stack (README, "Live subscriptions"): the shared broker and
 * DynamoDB Local, an engine in this process whose built-in fan-out trigger invokes the live
 * `fanout` handler through a Lambda Invoke API endpoint, and the WebSocket API emulator whose
 * routes invoke the other live handlers through that endpoint. Subscribers are plain `ws`
 * clients speaking the wire protocol. Expected states and versions are folded in the test from
 * the events produced, never read back from the engine.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import { startEngine, type Engine } from '../../engine/index.ts';
import { createLiveHandlers, LiveSubscriptions, registerLiveHandlers, signLiveToken } from '../../live/index.ts';
import { startLambdaEndpoint, startWebSocketApi, type LambdaEndpoint, type WebSocketApi } from '../../local/index.ts';
import { createStorage, LIVE_FUNCTIONS, LIVE_ROUTES } from '../../sdk/contract/index.ts';
import { createViewReader, defineApp, defineView, type LivePrincipal, type View } from '../../sdk/index.ts';
import { connectProducer, testKafka } from './fixtures/engine-support.ts';
import { createTable, createTopic, dynamoClient, lambdaClient, LOCAL_CREDENTIALS, stack, uniqueName, waitFor } from './helpers.ts';
import { ApiGatewayManagementApiClient } from '@aws-sdk/client-apigatewaymanagementapi';
import { QueryCommand } from '@aws-sdk/lib-dynamodb';

type Booking = { k: string; n: number };
type Tally = { count: number; sum: number };

const SECRET = 'live-subscriptions-test-secret';
const EVENTS = 10_000;
const HOUR = 3_600_000;
const KEYS = 20;

/** A frame the server sent, as JSON. */
type Frame = Record<string, any>;

/** A subscriber: a plain WebSocket client that records every frame. */
class Subscriber {
  readonly frames: Frame[] = [];
  private constructor(readonly socket: WebSocket) {
    socket.on('message', (data) => this.frames.push(JSON.parse(data.toString())));
  }

  static async connect(url: string, token: string): Promise<Subscriber> {
    const socket = new WebSocket(`${url}?token=${encodeURIComponent(token)}`);
    await new Promise<void>((resolve, reject) => {
      socket.once('open', () => resolve());
      socket.once('unexpected-response', (_req, res) => reject(new Error(`refused: ${res.statusCode}`)));
      socket.once('error', reject);
    });
    return new Subscriber(socket);
  }

  send(frame: unknown): void {
    this.socket.send(JSON.stringify(frame));
  }

  of(id: string, type?: string): Frame[] {
    return this.frames.filter((f) => f.id === id && (type === undefined || f.type === type));
  }

  async close(): Promise<void> {
    if (this.socket.readyState === WebSocket.CLOSED) return;
    const closed = new Promise((resolve) => this.socket.once('close', resolve));
    this.socket.close();
    await closed;
  }
}

/** Connecting with this token fails with the HTTP status the emulator answered. */
async function refusedStatus(url: string, token: string): Promise<number> {
  const socket = new WebSocket(`${url}?token=${encodeURIComponent(token)}`);
  return new Promise((resolve, reject) => {
    socket.once('open', () => reject(new Error('the connection was accepted')));
    socket.once('unexpected-response', (_req, res) => resolve(res.statusCode ?? 0));
  });
}

describe('live subscriptions', () => {
  const dynamodb = dynamoClient();
  let lambda: LambdaEndpoint;
  let api: WebSocketApi;
  let engine: Engine | undefined;
  let table: string;
  let topic: string;
  let hourly: View<Booking, Tally>;
  const subscribers: Subscriber[] = [];
  /** The emulator's lines, for failure messages. */
  const logs: string[] = [];

  beforeAll(async () => {
    table = await createTable(uniqueName('live'));
    topic = await createTopic(stack().kafkaBrokers, uniqueName('live-bookings'), 2);
    const view = defineView({
      name: 'tallies',
      source: topic,
      key: (e: Booking) => e.k,
      initial: (): Tally => ({ count: 0, sum: 0 }),
      reduce: (s, e: Booking) => ({ count: s.count + 1, sum: s.sum + e.n }),
      // Staff watch every key; anyone else only the key named after them.
      live: { authorize: (principal: LivePrincipal, key: string) => principal.role === 'staff' || key === principal.sub },
    });
    // A windowed view of the `w…` keys only (the last test's events, in this hour and the previous one).
    hourly = defineView({
      name: 'hourly',
      source: topic,
      key: (e: Booking) => e.k,
      filter: (e: Booking) => e.k.startsWith('w'),
      initial: (): Tally => ({ count: 0, sum: 0 }),
      reduce: (s, e: Booking) => ({ count: s.count + 1, sum: s.sum + e.n }),
      window: { kind: 'tumbling', sizeMs: HOUR },
      graceMs: 3 * HOUR,
      live: true,
    });
    const app = defineApp({ name: uniqueName('live-app').slice(0, 40), views: [view, hourly], live: { batchSize: 50 } });
    lambda = await startLambdaEndpoint();
    api = await startWebSocketApi({ lambdaEndpoint: lambda.endpoint, routes: LIVE_ROUTES, authorizer: LIVE_FUNCTIONS.authorizer, region: stack().region, log: (line) => logs.push(line) });
    const management = new ApiGatewayManagementApiClient({ endpoint: api.managementEndpoint, region: stack().region, credentials: LOCAL_CREDENTIALS });
    registerLiveHandlers(lambda, createLiveHandlers(app, { dynamodb, tableName: table, management, auth: { hmacSecret: SECRET } }));
    engine = startEngine({
      app,
      tableName: table,
      kafka: { clientId: 'live-subscriptions', brokers: stack().kafkaBrokers },
      dynamodb,
      lambda: lambdaClient(lambda.endpoint),
      groupId: uniqueName('live-group'),
      healthPort: null,
      logLevel: 'warn',
      logSink: () => {},
      sessionTimeoutMs: 6_000,
      heartbeatIntervalMs: 1_000,
    });
    await engine.ready;
  });

  afterAll(async () => {
    await Promise.allSettled(subscribers.map((s) => s.close()));
    await engine?.stop();
    await api?.stop();
    await lambda?.stop();
  });

  const connect = async (claims: Record<string, unknown>): Promise<Subscriber> => {
    const subscriber = await Subscriber.connect(api.url, await signLiveToken({ secret: SECRET, claims }));
    subscribers.push(subscriber);
    return subscriber;
  };

  it('refuses a connection without a valid token, and a subscription the view does not authorise', async () => {
    expect(await refusedStatus(api.url, 'not-a-jwt')).toBe(401);
    expect(await refusedStatus(api.url, await signLiveToken({ secret: 'another-secret-of-enough-length', claims: { sub: 'x' } }))).toBe(401);
    const member = await connect({ sub: 'k1', role: 'member' });
    member.send({ action: 'subscribe', id: 'theirs', view: 'tallies', keys: ['k2'] });
    member.send({ action: 'subscribe', id: 'all', view: 'tallies', prefix: 'k' });
    member.send({ action: 'subscribe', id: 'mine', view: 'tallies', keys: ['k1'] });
    member.send({ action: 'subscribe', id: 'nope', view: 'missing', keys: ['k1'] });
    await waitFor(() => member.of('theirs').length + member.of('all').length + member.of('mine').length + member.of('nope').length >= 4, {
      timeoutMs: 10_000,
      message: `answers to four subscribes (emulator: ${logs.slice(-5).join(' | ')})`,
    });
    expect(member.of('theirs')).toEqual([expect.objectContaining({ type: 'error', code: 'UNAUTHORIZED' })]);
    expect(member.of('all')).toEqual([expect.objectContaining({ type: 'error', code: 'UNAUTHORIZED' })]);
    expect(member.of('nope')).toEqual([expect.objectContaining({ type: 'error', code: 'UNKNOWN_VIEW' })]);
    // Its own key is allowed: a snapshot of an absent key, version 0.
    expect(member.of('mine')).toEqual([{ type: 'snapshot', id: 'mine', items: [{ key: 'k1', version: 0, state: null }], done: true }]);
    // A refused subscription wrote no rows: only "mine" is under the connection.
    await member.close();
  });

  it(`delivers the snapshot and then every change of the subscribed keys, in order and chained, while ${EVENTS} events flow; a prefix subscriber too`, async () => {
    const staff = await connect({ sub: 'staff-1', role: 'staff' });
    const watched = ['k0', 'k3', 'k7', 'k11'];
    staff.send({ action: 'subscribe', id: 'some', view: 'tallies', keys: watched });
    staff.send({ action: 'subscribe', id: 'ones', view: 'tallies', prefix: 'k1' });
    await waitFor(() => staff.of('some', 'snapshot').length > 0 && staff.of('ones', 'snapshot').some((f) => f.done), { timeoutMs: 10_000, message: 'both snapshots' });

    // The reference: each key's state and version (one per applied event) after every event.
    const events: Booking[] = Array.from({ length: EVENTS }, (_, i) => ({ k: `k${(i * 7) % KEYS}`, n: i % 13 }));
    const reference = new Map<string, { state: Tally; version: number }>();
    for (const e of events) {
      const prev = reference.get(e.k) ?? { state: { count: 0, sum: 0 }, version: 0 };
      reference.set(e.k, { state: { count: prev.state.count + 1, sum: prev.state.sum + e.n }, version: prev.version + 1 });
    }
    const producer = await connectProducer(testKafka('live-producer'));
    try {
      for (let i = 0; i < events.length; i += 500) {
        await producer.send({ topic, acks: -1, messages: events.slice(i, i + 500).map((e) => ({ key: e.k, value: JSON.stringify(e) })) });
      }
    } finally {
      await producer.disconnect();
    }

    const prefixKeys = [...reference.keys()].filter((k) => k.startsWith('k1'));
    const lastVersion = (id: string, key: string) => Math.max(0, ...staff.of(id, 'change').filter((f) => f.key === key).map((f) => f.version as number));
    await waitFor(
      () => watched.every((k) => lastVersion('some', k) === reference.get(k)!.version) && prefixKeys.every((k) => lastVersion('ones', k) === reference.get(k)!.version),
      { timeoutMs: 60_000, message: 'every subscribed key to reach its final version' },
    );

    const check = (id: string, keys: readonly string[]) => {
      const snapshot = new Map<string, number>();
      for (const frame of staff.of(id, 'snapshot')) for (const item of frame.items) snapshot.set(item.key, item.version);
      for (const key of keys) {
        // Subscribed before the first event: each key's snapshot is absent (version 0), or, for a
        // prefix, the key is not listed at all.
        let held = snapshot.get(key) ?? 0;
        expect(held).toBe(0);
        const changes = staff.of(id, 'change').filter((f) => f.key === key);
        for (const change of changes) {
          expect(change.view).toBe('tallies');
          // Coalesced: versions may skip, but each change names the version it follows.
          expect(change.version).toBeGreaterThan(held);
          expect(change.beforeVersion ?? 0).toBe(held);
          held = change.version;
        }
        expect(changes.at(-1)!.state).toEqual(reference.get(key)!.state);
      }
      expect(new Set(staff.of(id, 'change').map((f) => f.key))).toEqual(new Set(keys));
    };
    check('some', watched);
    check('ones', prefixKeys);
  });

  it('removes a closed connection’s rows on $disconnect, and a stale connection’s rows when a post finds it gone (410)', async () => {
    const rows = new LiveSubscriptions(createStorage({ dynamodb, tableName: table }).documentClient, table);
    const documents = createStorage({ dynamodb, tableName: table }).documentClient;
    // The connections with a subscription row of key k5 or a prefix (the earlier test's staff connection holds prefix "k1").
    const livePks = async (pks_ = ['live#s#tallies#k5', 'live#p#tallies']) => {
      const pks = new Set<string>();
      for (const pk of pks_) {
        const page = await documents.send(new QueryCommand({ TableName: table, KeyConditionExpression: 'pk = :pk', ExpressionAttributeValues: { ':pk': pk }, ConsistentRead: true }));
        for (const item of page.Items ?? []) pks.add(String(item.connectionId));
      }
      return pks;
    };
    const leaving = await connect({ sub: 'staff-2', role: 'staff' });
    leaving.send({ action: 'subscribe', id: 'k5', view: 'tallies', keys: ['k5'] });
    await waitFor(() => leaving.of('k5', 'snapshot').length > 0, { timeoutMs: 10_000, message: 'the snapshot' });
    expect((await livePks(['live#s#tallies#k5'])).size).toBe(1);
    await leaving.close();
    await waitFor(async () => (await livePks(['live#s#tallies#k5'])).size === 0, { timeoutMs: 10_000, message: '$disconnect to delete the rows' });

    // A connection whose $disconnect never ran (rows left behind): the fan-out's post gets 410 and deletes them.
    await rows.putConnection('gone-connection=', { sub: 'ghost' });
    await rows.putSubscription('gone-connection=', 'g', 'tallies', { keys: ['k5'] });
    await rows.putSubscription('gone-connection=', 'gp', 'tallies', { prefix: 'k' });
    expect(await livePks(['live#s#tallies#k5'])).toEqual(new Set(['gone-connection=']));
    expect((await livePks(['live#p#tallies'])).has('gone-connection=')).toBe(true);
    const producer = await connectProducer(testKafka('live-producer-410'));
    try {
      await producer.send({ topic, acks: -1, messages: [{ key: 'k5', value: JSON.stringify({ k: 'k5', n: 1 }) }] });
    } finally {
      await producer.disconnect();
    }
    await waitFor(async () => !(await livePks()).has('gone-connection=') && (await rows.subscriptionsOf('gone-connection=')).length === 0, {
      timeoutMs: 20_000,
      message: 'the 410 to delete the stale rows',
    });
    expect(await rows.principalOf('gone-connection=')).toBeUndefined();
  });
  it('subscribes to a windowed view: each key’s newest window first, then changes of every window; a prefix is refused', async () => {
    const reader = createViewReader({ dynamodb, tableName: table });
    // The previous hour's window and the current one (Kafka refuses timestamps over an hour
    // ahead; the grace of 3 h keeps the previous hour open).
    const base = Math.floor(Date.now() / HOUR) * HOUR - HOUR;
    const send = async (events: { k: string; n: number; at: number }[]) => {
      const producer = await connectProducer(testKafka('live-producer-windows'));
      try {
        await producer.send({ topic, acks: -1, messages: events.map((e) => ({ key: e.k, value: JSON.stringify({ k: e.k, n: e.n }), timestamp: String(e.at) })) });
      } finally {
        await producer.disconnect();
      }
    };
    await send([{ k: 'w1', n: 1, at: base + 1_000 }, { k: 'w1', n: 2, at: base + 2_000 }, { k: 'w2', n: 5, at: base + 3_000 }]);
    await waitFor(async () => (await reader.latestWindow(hourly, 'w2', { consistent: true }))?.version === 1 && (await reader.latestWindow(hourly, 'w1', { consistent: true }))?.version === 2, {
      timeoutMs: 30_000,
      message: 'the windowed view to fold the first events',
    });

    const staff = await connect({ sub: 'staff-w', role: 'staff' });
    staff.send({ action: 'subscribe', id: 'win', view: 'hourly', keys: ['w1', 'w2', 'w3'] });
    staff.send({ action: 'subscribe', id: 'winp', view: 'hourly', prefix: 'w' });
    await waitFor(() => staff.of('win', 'snapshot').length > 0 && staff.of('winp', 'error').length > 0, { timeoutMs: 10_000, message: 'the snapshot and the refusal' });
    const first = { start: base, end: base + HOUR };
    expect(staff.of('win', 'snapshot').flatMap((f) => f.items)).toEqual([
      { key: 'w1', version: 2, state: { count: 2, sum: 3 }, window: first },
      { key: 'w2', version: 1, state: { count: 1, sum: 5 }, window: first },
      { key: 'w3', version: 0, state: null },
    ]);
    expect(staff.of('winp', 'error')[0]).toMatchObject({ code: 'BAD_REQUEST' });

    // A new window of w1, and a late-but-within-grace event of w2's first window.
    await send([{ k: 'w1', n: 4, at: base + HOUR }, { k: 'w2', n: 1, at: base + 4_000 }]);
    await waitFor(() => staff.of('win', 'change').length >= 2, { timeoutMs: 30_000, message: 'both windows’ changes' });
    const changes = staff.of('win', 'change').map((f) => ({ key: f.key, window: f.window, version: f.version, beforeVersion: f.beforeVersion, state: f.state }));
    expect(changes).toEqual(
      expect.arrayContaining([
        { key: 'w1', window: { start: base + HOUR, end: base + 2 * HOUR }, version: 1, beforeVersion: undefined, state: { count: 1, sum: 4 } },
        { key: 'w2', window: first, version: 2, beforeVersion: 1, state: { count: 2, sum: 6 } },
      ]),
    );
    expect(changes).toHaveLength(2);
  });
});
