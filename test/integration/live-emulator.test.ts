/**
 * The WebSocket API emulator (local/internal/websocket/emulator.ts) as API Gateway behaves: the
 * REQUEST authorizer and `$connect` decide on a connection, frames route by `action`, the
 * `@connections` management API answers through the AWS SDK's own client (410 GoneException for
 * a closed connection), and a client that does not read never grows the emulator's queue past
 * its bound: the overflowing subscription's changes are dropped and one `resync` is sent.
 * Route functions run on a Lambda Invoke API endpoint this file starts.
 */
import { ApiGatewayManagementApiClient, DeleteConnectionCommand, GetConnectionCommand, GoneException, PostToConnectionCommand } from '@aws-sdk/client-apigatewaymanagementapi';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import { startLambdaEndpoint, startWebSocketApi, type LambdaEndpoint, type WebSocketApi } from '../../local/index.ts';
import { LOCAL_CREDENTIALS, waitFor } from './helpers.ts';

const MAX_QUEUED = 20;

describe('WebSocket API emulator', () => {
  let lambda: LambdaEndpoint;
  let api: WebSocketApi;
  let management: ApiGatewayManagementApiClient;
  const events: { route: string; event: any }[] = [];

  beforeAll(async () => {
    lambda = await startLambdaEndpoint({
      functions: {
        auth: async (event: any) => ({
          principalId: 'u1',
          policyDocument: { Version: '2012-10-17', Statement: [{ Action: 'execute-api:Invoke', Effect: event.queryStringParameters.token === 'allow' ? 'Allow' : 'Deny', Resource: event.methodArn }] },
          context: { principal: '{"sub":"u1"}' },
        }),
        connect: async (event: any) => {
          events.push({ route: '$connect', event });
          return { statusCode: event.queryStringParameters.refuse === '1' ? 403 : 200 };
        },
        disconnect: async (event: any) => {
          events.push({ route: '$disconnect', event });
          return { statusCode: 200 };
        },
        echo: async (event: any) => {
          events.push({ route: 'echo', event });
          return { statusCode: 200 };
        },
      },
    });
    api = await startWebSocketApi({
      lambdaEndpoint: lambda.endpoint,
      authorizer: 'auth',
      routes: { $connect: 'connect', $disconnect: 'disconnect', echo: 'echo' },
      maxQueuedMessages: MAX_QUEUED,
    });
    management = new ApiGatewayManagementApiClient({ endpoint: api.managementEndpoint, region: 'us-east-1', credentials: LOCAL_CREDENTIALS, maxAttempts: 1 });
  });

  afterAll(async () => {
    await api?.stop();
    await lambda?.stop();
  });

  const open = async (query: string): Promise<{ socket: WebSocket; frames: string[] }> => {
    const socket = new WebSocket(`${api.url}?${query}`);
    const frames: string[] = [];
    socket.on('message', (data) => frames.push(data.toString()));
    await new Promise<void>((resolve, reject) => {
      socket.once('open', () => resolve());
      socket.once('unexpected-response', (_req, res) => reject(new Error(String(res.statusCode))));
    });
    return { socket, frames };
  };
  const status = (query: string) => open(query).then(() => 101, (error: Error) => Number(error.message));

  it('admits a connection only when the authorizer allows it and $connect answers 2xx', async () => {
    expect(await status('token=deny')).toBe(403);
    expect(await status('token=allow&refuse=1')).toBe(403);
    const { socket } = await open('token=allow');
    const connect = events.filter((e) => e.route === '$connect').at(-1)!.event;
    // The authorizer's context reaches the route, as on API Gateway.
    expect(connect.requestContext).toMatchObject({ routeKey: '$connect', eventType: 'CONNECT', authorizer: { principalId: 'u1', principal: '{"sub":"u1"}' } });
    socket.close();
  });

  it('routes frames by action, answers an unrouted one with Forbidden, and serves @connections until the connection goes (410)', async () => {
    const { socket, frames } = await open('token=allow');
    const id = events.filter((e) => e.route === '$connect').at(-1)!.event.requestContext.connectionId as string;
    socket.send(JSON.stringify({ action: 'echo', n: 1 }));
    socket.send(JSON.stringify({ action: 'nowhere' }));
    await waitFor(() => events.some((e) => e.route === 'echo') && frames.length > 0, { timeoutMs: 5_000, message: 'the echo route and the Forbidden frame' });
    expect(events.find((e) => e.route === 'echo')!.event).toMatchObject({ body: '{"action":"echo","n":1}', requestContext: { routeKey: 'echo', eventType: 'MESSAGE', connectionId: id } });
    expect(JSON.parse(frames[0]!)).toMatchObject({ message: 'Forbidden', connectionId: id });

    await management.send(new PostToConnectionCommand({ ConnectionId: id, Data: '{"type":"hello"}' }));
    await waitFor(() => frames.includes('{"type":"hello"}'), { timeoutMs: 5_000, message: 'the posted frame' });
    const described = await management.send(new GetConnectionCommand({ ConnectionId: id }));
    expect(described.ConnectedAt).toBeInstanceOf(Date);
    expect(described.Identity?.SourceIp).toBe('127.0.0.1');

    await management.send(new DeleteConnectionCommand({ ConnectionId: id }));
    await waitFor(() => events.some((e) => e.route === '$disconnect' && e.event.requestContext.connectionId === id), { timeoutMs: 5_000, message: '$disconnect' });
    await expect(management.send(new PostToConnectionCommand({ ConnectionId: id, Data: 'x' }))).rejects.toBeInstanceOf(GoneException);
    await expect(management.send(new PostToConnectionCommand({ ConnectionId: 'never-was=', Data: 'x' }))).rejects.toBeInstanceOf(GoneException);
  });

  it('bounds the queue of a client that does not read: the subscription’s changes are dropped and one resync sent', async () => {
    const { socket, frames } = await open('token=allow');
    const id = events.filter((e) => e.route === '$connect').at(-1)!.event.requestContext.connectionId as string;
    // The client stops reading: the kernel's buffers fill, then the emulator's queue.
    (socket as unknown as { _socket: { pause(): void } })._socket.pause();
    const padding = 'x'.repeat(60_000);
    const POSTS = 400;
    let peak = 0;
    for (let version = 1; version <= POSTS; version++) {
      await management.send(new PostToConnectionCommand({ ConnectionId: id, Data: JSON.stringify({ type: 'change', id: 's1', key: 'k', version, padding }) }));
      peak = Math.max(peak, api.stats().queuedMessages);
    }
    // Never more than the bound (plus the resync frame that replaced the dropped ones).
    expect(peak).toBeLessThanOrEqual(MAX_QUEUED + 1);
    expect(api.stats().dropped).toBeGreaterThan(0);
    (socket as unknown as { _socket: { resume(): void } })._socket.resume();
    await waitFor(() => frames.some((f) => f.includes('"resync"')), { timeoutMs: 20_000, message: 'the resync frame' });
    await waitFor(() => api.stats().queuedMessages === 0, { timeoutMs: 20_000, message: 'the queue to drain' });
    const received = frames.map((f) => JSON.parse(f));
    const changes = received.filter((f) => f.type === 'change');
    expect(received.filter((f) => f.type === 'resync')[0]).toMatchObject({ type: 'resync', id: 's1' });
    // Some changes were dropped, and those that came are in order.
    expect(changes.length).toBeLessThan(POSTS);
    expect(changes.map((c) => c.version)).toEqual([...changes.map((c) => c.version)].sort((a, b) => a - b));
    socket.close();
  });
});
