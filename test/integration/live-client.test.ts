/**
 * `tributary/client` against the real stack: the WebSocket API emulator, the live handlers on a
 * Lambda Invoke API endpoint, an engine whose fan-out trigger pushes changes. A client whose
 * connection is cut mid-stream reconnects, resubscribes and converges to the exact view state:
 * compared with a read through `createViewReader` and with a fold of the produced events computed
 * here, never with the engine's own output alone.
 */
import { ApiGatewayManagementApiClient } from '@aws-sdk/client-apigatewaymanagementapi';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { createLiveClient, type LiveStatus, type LiveUpdate, type WebSocketConstructor } from '../../client/index.ts';
import { startEngine, type Engine } from '../../engine/index.ts';
import { createLiveHandlers, registerLiveHandlers, signLiveToken } from '../../live/index.ts';
import { startLambdaEndpoint, startWebSocketApi, type LambdaEndpoint, type WebSocketApi } from '../../local/index.ts';
import { LIVE_FUNCTIONS, LIVE_ROUTES } from '../../sdk/contract/index.ts';
import { createViewReader, defineApp, defineView } from '../../sdk/index.ts';
import { connectProducer, testKafka } from './fixtures/engine-support.ts';
import { createTable, createTopic, dynamoClient, lambdaClient, LOCAL_CREDENTIALS, stack, uniqueName, waitFor } from './helpers.ts';

type Booking = { k: string; n: number };
type Tally = { count: number; sum: number };
const SECRET = 'live-client-test-secret';
const KEYS = ['k0', 'k1', 'k2', 'k3', 'k4'];
const EVENTS = 300;

describe('tributary/client on the real stack', () => {
  const dynamodb = dynamoClient();
  let lambda: LambdaEndpoint;
  let api: WebSocketApi;
  let engine: Engine | undefined;
  let table: string;
  let topic: string;
  const view = () =>
    defineView({
      name: 'tallies',
      source: topic,
      key: (e: Booking) => e.k,
      initial: (): Tally => ({ count: 0, sum: 0 }),
      reduce: (s, e: Booking) => ({ count: s.count + 1, sum: s.sum + e.n }),
      live: true,
    });

  beforeAll(async () => {
    table = await createTable(uniqueName('live-client'));
    topic = await createTopic(stack().kafkaBrokers, uniqueName('live-client-events'), 2);
    const app = defineApp({ name: uniqueName('live-client-app').slice(0, 40), views: [view()], live: { batchSize: 50 } });
    lambda = await startLambdaEndpoint();
    api = await startWebSocketApi({ lambdaEndpoint: lambda.endpoint, routes: LIVE_ROUTES, authorizer: LIVE_FUNCTIONS.authorizer, region: stack().region });
    const management = new ApiGatewayManagementApiClient({ endpoint: api.managementEndpoint, region: stack().region, credentials: LOCAL_CREDENTIALS });
    registerLiveHandlers(lambda, createLiveHandlers(app, { dynamodb, tableName: table, management, auth: { hmacSecret: SECRET } }));
    engine = startEngine({
      app,
      tableName: table,
      kafka: { clientId: 'live-client', brokers: stack().kafkaBrokers },
      dynamodb,
      lambda: lambdaClient(lambda.endpoint),
      groupId: uniqueName('live-client-group'),
      healthPort: null,
      logLevel: 'warn',
      logSink: () => {},
      sessionTimeoutMs: 6_000,
      heartbeatIntervalMs: 1_000,
    });
    await engine.ready;
  });

  afterAll(async () => {
    await engine?.stop();
    await api?.stop();
    await lambda?.stop();
  });

  it('reconnects after its connection is cut mid-stream and converges to the exact view state', async () => {
    // The `ws` sockets the client opens, so the test can cut one as a network failure would.
    const sockets: WebSocket[] = [];
    const Tracked = class extends WebSocket {
      constructor(url: string) {
        super(url);
        sockets.push(this);
      }
    } as unknown as WebSocketConstructor;
    const statuses: LiveStatus[] = [];
    const token = await signLiveToken({ secret: SECRET, claims: { sub: 'client-test' } });
    const client = createLiveClient<{ tallies: Tally }>({ url: api.url, token, WebSocket: Tracked, reconnect: { initialDelayMs: 100, maxDelayMs: 400 }, onStatus: (s) => statuses.push(s) });
    const shown = new Map<string, LiveUpdate<Tally>[]>();
    client.subscribe('tallies', { prefix: 'k' }, (update) => shown.set(update.key, [...(shown.get(update.key) ?? []), update]));
    await waitFor(() => client.status === 'open', { timeoutMs: 10_000, message: 'the client connected' });

    const expected = new Map<string, Tally>();
    const producer = await connectProducer(testKafka('live-client-producer'));
    try {
      for (let i = 0; i < EVENTS; i += 1) {
        const event: Booking = { k: KEYS[i % KEYS.length]!, n: i };
        const before = expected.get(event.k) ?? { count: 0, sum: 0 };
        expected.set(event.k, { count: before.count + 1, sum: before.sum + event.n });
        await producer.send({ topic, messages: [{ key: event.k, value: JSON.stringify(event) }] });
        // Mid-stream, once changes flow, the connection drops without a close handshake.
        if (i === EVENTS / 3) {
          await waitFor(() => shown.size === KEYS.length, { timeoutMs: 15_000, message: 'changes of every key before the cut' });
          sockets.at(-1)!.terminate();
        }
      }
    } finally {
      await producer.disconnect();
    }
    const latest = (key: string) => shown.get(key)?.at(-1);
    await waitFor(() => KEYS.every((key) => latest(key)?.state?.count === expected.get(key)!.count), {
      timeoutMs: 30_000,
      message: `every key converged (shown ${KEYS.map((k) => `${k}:${latest(k)?.state?.count}`).join(' ')}, expected ${KEYS.map((k) => `${k}:${expected.get(k)!.count}`).join(' ')})`,
    });
    const reader = createViewReader({ dynamodb, tableName: table });
    const read = await reader.getMany(view(), KEYS);
    for (const [i, key] of KEYS.entries()) {
      const stored = read[i];
      expect(latest(key)?.state, key).toEqual(expected.get(key));
      expect(stored?.state, key).toEqual(expected.get(key));
      expect(latest(key)?.version, key).toBe(stored?.version);
      const versions = shown.get(key)!.map((u) => u.version);
      expect(versions.every((v, i) => i === 0 || v > versions[i - 1]!), `${key}: ${versions.join(',')}`).toBe(true);
    }
    expect(sockets.length).toBeGreaterThanOrEqual(2);
    expect(statuses).toContain('reconnecting');
    client.close();
  });
});
