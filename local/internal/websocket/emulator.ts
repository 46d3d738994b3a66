/**
 * A loopback emulator of an API Gateway WebSocket API, so the live handlers (live/) and the
 * client library run against `npm run dev` and the tests exactly as against AWS, by endpoint
 * alone. It accepts WebSocket connections, runs the `$connect` route (after the REQUEST
 * authorizer, when one is configured), routes each frame by its `action` (API Gateway's
 * `$request.body.action` selection expression), runs `$disconnect` on close, and serves the
 * `@connections` management API (POST, GET, DELETE; 410 GoneException for unknown connections)
 * on the same port, so `@aws-sdk/client-apigatewaymanagementapi` works against it unchanged.
 * Route functions are invoked through the local Lambda Invoke API endpoint, as API Gateway
 * invokes Lambda. **For development and tests only.**
 *
 * Outgoing frames of a connection queue in front of the socket up to a bound (messages and
 * bytes); past it, the queued `change` frames of the subscription that overflowed are dropped
 * and one `resync` frame tells the client to take a fresh snapshot, so a slow or dead client
 * never grows this process's memory without limit.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import { WebSocket, WebSocketServer } from 'ws';
import { LocalStackError } from '../errors.ts';
import { isValidPort } from '../ports.ts';

/** Route keys of a WebSocket API: `$connect`, `$disconnect`, `$default` and the `action` values. */
export type RouteKey = string;

/** Options of {@link startWebSocketApi}. */
export interface WebSocketApiOptions {
  /** Base URL of the Lambda Invoke API endpoint the route functions are invoked through. */
  readonly lambdaEndpoint: string;
  /**
   * Route key → function name. A frame whose `action` names no route goes to `$default`, or
   * gets API Gateway's `{"message":"Forbidden"}` frame when there is none. Without a
   * `$connect` route every connection is accepted (after the authorizer).
   * @default {} (no routes)
   */
  readonly routes?: Readonly<Record<RouteKey, string>>;
  /**
   * Function name of a REQUEST authorizer run before `$connect` with the query string and
   * headers. It returns an IAM policy (`principalId`, `policyDocument`, `context`); an Allow
   * admits the connection and its `context` is every later event's `requestContext.authorizer`,
   * a Deny refuses it with 403, a throw (or an `Unauthorized` error) with 401.
   * @default undefined (no authorizer)
   */
  readonly authorizer?: string;
  /** @default '127.0.0.1' */
  readonly host?: string;
  /** @default 0 (a free port) */
  readonly port?: number;
  /** @default 'us-east-1' */
  readonly region?: string;
  /** Stage name in `methodArn` and `requestContext.stage`. @default 'local' */
  readonly stage?: string;
  /**
   * Outgoing frames queued per connection before the socket takes them; past it the
   * overflowing subscription's changes are dropped and a `resync` frame sent instead.
   * @default 1_000 (DEFAULT_MAX_QUEUED_MESSAGES)
   */
  readonly maxQueuedMessages?: number;
  /** Bytes queued per connection, as `maxQueuedMessages`. @default 1 MiB (DEFAULT_MAX_QUEUED_BYTES) */
  readonly maxQueuedBytes?: number;
  /** @default lines dropped */
  readonly log?: (line: string) => void;
}

/** What the emulator holds right now: for the bench's memory figures and for tests. */
export interface WebSocketApiStats {
  readonly connections: number;
  /** Frames queued in front of sockets, all connections. */
  readonly queuedMessages: number;
  readonly queuedBytes: number;
  /** Frames posted through the management API since start. */
  readonly posted: number;
  /** Change frames dropped by the queue bound since start (each drop sent a `resync`). */
  readonly dropped: number;
  readonly resyncs: number;
}

/** A running emulator. */
export interface WebSocketApi {
  /** Where clients connect, e.g. `ws://127.0.0.1:40127`. */
  readonly url: string;
  /** Endpoint of the `@connections` management API (`ApiGatewayManagementApiClient({ endpoint })`). */
  readonly managementEndpoint: string;
  readonly port: number;
  stats(): WebSocketApiStats;
  /** Closes every connection (running `$disconnect` for each) and the server. Idempotent. */
  stop(): Promise<void>;
}

/** API Gateway's frame limit is 128 KB; its management API refuses larger posts the same way. */
export const MAX_FRAME_BYTES = 128 * 1024;
/** The spec's bound: enough for a burst of changes, small enough that 500 slow clients stay in memory. */
export const DEFAULT_MAX_QUEUED_MESSAGES = 1_000;
export const DEFAULT_MAX_QUEUED_BYTES = 1024 * 1024;
/** Bytes handed to a socket before more wait in the connection's queue (where the bound applies). */
const SOCKET_HIGH_WATER_BYTES = 64 * 1024;
/** The account id local ARNs carry (as the local Lambda endpoint's). */
const LOCAL_ACCOUNT_ID = '000000000000';
const MANAGEMENT_PATH = /^(?:\/[^/@]+)?\/@connections\/([^/]+)\/?$/;

interface Frame {
  readonly data: string;
  readonly bytes: number;
  /** The subscription a `change` frame belongs to (what a drop resyncs). */
  readonly subscription: string | undefined;
  /** Set on a `resync` frame the emulator queued: the subscription it resyncs. */
  readonly resync?: string;
}

interface Connection {
  readonly id: string;
  readonly socket: WebSocket;
  readonly connectedAt: number;
  lastActiveAt: number;
  readonly sourceIp: string;
  readonly userAgent: string | undefined;
  readonly authorizer: Record<string, unknown> | undefined;
  readonly queue: Frame[];
  queuedBytes: number;
  closed: boolean;
}

/** Failure of a route or authorizer invocation, as API Gateway maps it. */
class IntegrationError extends Error {}

/**
 * Starts the emulator on loopback.
 *
 * @example
 * const api = await startWebSocketApi({ lambdaEndpoint: stack.lambda.endpoint, routes: { $connect: 'connect', subscribe: 'subscribe' } });
 * const socket = new WebSocket(`${api.url}?token=…`);
 * await api.stop();
 */
export async function startWebSocketApi(options: WebSocketApiOptions): Promise<WebSocketApi> {
  const host = options.host ?? '127.0.0.1';
  const port = options.port ?? 0;
  if (!isValidPort(port)) {
    throw new LocalStackError('INVALID_OPTION', `WebSocket API: port must be an integer in 0..65535, got ${JSON.stringify(port)}`, {
      context: { component: 'stack' },
    });
  }
  if (typeof options.lambdaEndpoint !== 'string' || !/^https?:\/\//.test(options.lambdaEndpoint)) {
    throw new LocalStackError(
      'INVALID_OPTION',
      `WebSocket API: lambdaEndpoint must be the Lambda endpoint's http URL, got ${JSON.stringify(options.lambdaEndpoint)}`,
      { context: { component: 'stack' } },
    );
  }
  const maxQueuedMessages = positiveInteger(options.maxQueuedMessages ?? DEFAULT_MAX_QUEUED_MESSAGES, 'maxQueuedMessages');
  const maxQueuedBytes = positiveInteger(options.maxQueuedBytes ?? DEFAULT_MAX_QUEUED_BYTES, 'maxQueuedBytes');
  const routes = { ...(options.routes ?? {}) };
  const region = options.region ?? 'us-east-1';
  const stage = options.stage ?? 'local';
  const apiId = randomBytes(5).toString('hex');
  const log = options.log ?? (() => {});
  const connections = new Map<string, Connection>();
  const disconnects = new Set<Promise<void>>();
  const counters = { posted: 0, dropped: 0, resyncs: 0 };
  let domainName = '';
  let stopping: Promise<void> | undefined;

  const invoke = async (functionName: string, event: unknown): Promise<unknown> => {
    let response: Response;
    try {
      response = await fetch(`${options.lambdaEndpoint}/2015-03-31/functions/${encodeURIComponent(functionName)}/invocations`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(event),
      });
    } catch (error) {
      throw new IntegrationError(`function "${functionName}" could not be invoked: ${(error as Error).message}`);
    }
    const text = await response.text();
    if (response.status === 404) {
      throw new IntegrationError(`function "${functionName}" is not registered on the Lambda endpoint; register it (for the live routes: createLiveHandlers)`);
    }
    if (response.status !== 200) throw new IntegrationError(`function "${functionName}" invoke failed with ${response.status}: ${text.slice(0, 300)}`);
    const payload = text === '' ? undefined : (JSON.parse(text) as unknown);
    if (response.headers.get('x-amz-function-error') !== null) {
      const message = (payload as { errorMessage?: unknown } | undefined)?.errorMessage;
      throw new IntegrationError(String(message ?? text));
    }
    return payload;
  };

  const requestContext = (
    connectionId: string,
    routeKey: string,
    eventType: 'CONNECT' | 'MESSAGE' | 'DISCONNECT',
    connection: Pick<Connection, 'connectedAt' | 'sourceIp' | 'userAgent' | 'authorizer'>,
    extra: Record<string, unknown> = {},
  ) => ({
    routeKey,
    eventType,
    messageDirection: 'IN',
    connectionId,
    connectedAt: connection.connectedAt,
    requestId: randomUUID(),
    extendedRequestId: randomUUID(),
    requestTimeEpoch: Date.now(),
    domainName,
    stage,
    apiId,
    identity: { sourceIp: connection.sourceIp, ...(connection.userAgent !== undefined ? { userAgent: connection.userAgent } : {}) },
    ...(connection.authorizer !== undefined ? { authorizer: connection.authorizer } : {}),
    ...extra,
  });

  /** Hands queued frames to the socket while it has room; called again when a send completes. */
  const pump = (connection: Connection): void => {
    while (!connection.closed && connection.queue.length > 0 && connection.socket.bufferedAmount < SOCKET_HIGH_WATER_BYTES) {
      const frame = connection.queue.shift()!;
      connection.queuedBytes -= frame.bytes;
      connection.socket.send(frame.data, (error) => {
        if (error === undefined || error === null) pump(connection);
      });
    }
  };

  const push = (connection: Connection, frame: Frame): void => {
    connection.queue.push(frame);
    connection.queuedBytes += frame.bytes;
  };

  const enqueue = (connection: Connection, data: string): void => {
    const frame: Frame = { data, bytes: Buffer.byteLength(data), subscription: changeSubscription(data) };
    // A subscription told to resync takes a fresh snapshot: its changes until then are moot.
    if (frame.subscription !== undefined && connection.queue.some((f) => f.resync === frame.subscription)) {
      counters.dropped += 1;
      return;
    }
    if (connection.queue.length + 1 <= maxQueuedMessages && connection.queuedBytes + frame.bytes <= maxQueuedBytes) {
      push(connection, frame);
      return pump(connection);
    }
    // Past the bound: the subscription that overflowed loses its queued changes and is told to resync.
    const subscription = frame.subscription ?? connection.queue.find((f) => f.subscription !== undefined)?.subscription;
    if (subscription === undefined) {
      // Nothing of a subscription to drop (snapshots, errors): the oldest frame goes.
      const oldest = connection.queue.shift();
      if (oldest !== undefined) connection.queuedBytes -= oldest.bytes;
      counters.dropped += 1;
      push(connection, frame);
      return pump(connection);
    }
    const kept = connection.queue.filter((f) => f.subscription !== subscription);
    counters.dropped += connection.queue.length - kept.length + (frame.subscription === subscription ? 1 : 0);
    connection.queue.length = 0;
    connection.queuedBytes = 0;
    for (const f of kept) push(connection, f);
    const resync = JSON.stringify({ type: 'resync', id: subscription, reason: `more than ${maxQueuedMessages} frames or ${maxQueuedBytes} bytes were waiting for this connection` });
    push(connection, { data: resync, bytes: Buffer.byteLength(resync), subscription: undefined, resync: subscription });
    counters.resyncs += 1;
    if (frame.subscription !== subscription) push(connection, frame);
    pump(connection);
  };

  const disconnect = (connection: Connection, statusCode: number, reason: string): void => {
    if (connection.closed) return;
    connection.closed = true;
    connection.queue.length = 0;
    connection.queuedBytes = 0;
    connections.delete(connection.id);
    const route = routes.$disconnect;
    if (route === undefined) return;
    const running = invoke(route, {
      requestContext: requestContext(connection.id, '$disconnect', 'DISCONNECT', connection, {
        disconnectStatusCode: statusCode,
        disconnectReason: reason,
      }),
      headers: {},
      isBase64Encoded: false,
    })
      .then(() => undefined)
      .catch((error: unknown) => log(`websocket: $disconnect of ${connection.id} failed: ${(error as Error).message}`));
    disconnects.add(running);
    void running.finally(() => disconnects.delete(running));
  };

  const onMessage = async (connection: Connection, data: string): Promise<void> => {
    connection.lastActiveAt = Date.now();
    let action: unknown;
    try {
      action = (JSON.parse(data) as { action?: unknown } | null)?.action;
    } catch {
      action = undefined;
    }
    const routeKey = typeof action === 'string' && routes[action] !== undefined ? action : routes.$default !== undefined ? '$default' : undefined;
    const context = requestContext(connection.id, routeKey ?? '$default', 'MESSAGE', connection, { messageId: randomBytes(8).toString('base64') });
    if (routeKey === undefined) {
      enqueue(connection, JSON.stringify({ message: 'Forbidden', connectionId: connection.id, requestId: context.requestId }));
      return;
    }
    try {
      await invoke(routes[routeKey]!, { requestContext: context, body: data, isBase64Encoded: false });
    } catch (error) {
      log(`websocket: route ${routeKey} of ${connection.id} failed: ${(error as Error).message}`);
      if (!connection.closed) {
        enqueue(connection, JSON.stringify({ message: 'Internal server error', connectionId: connection.id, requestId: context.requestId }));
      }
    }
  };

  const refuse = (socket: Duplex, status: number, message: string): void => {
    const body = JSON.stringify({ message });
    socket.end(
      `HTTP/1.1 ${status} ${status === 401 ? 'Unauthorized' : status === 403 ? 'Forbidden' : 'Error'}\r\n` +
        `Content-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
    );
  };

  const wss = new WebSocketServer({ noServer: true, maxPayload: MAX_FRAME_BYTES });

  const onUpgrade = async (req: IncomingMessage, socket: Duplex, head: Buffer): Promise<void> => {
    const url = new URL(req.url ?? '/', 'http://local');
    const query = Object.fromEntries(url.searchParams);
    const multiQuery: Record<string, string[]> = {};
    for (const [name, value] of url.searchParams) (multiQuery[name] ??= []).push(value);
    const headers = Object.fromEntries(Object.entries(req.headers).map(([name, value]) => [name, Array.isArray(value) ? value.join(',') : String(value)]));
    const id = `${randomBytes(9).toString('base64url')}=`;
    const base = {
      connectedAt: Date.now(),
      sourceIp: req.socket.remoteAddress ?? '127.0.0.1',
      userAgent: req.headers['user-agent'],
    };
    let authorizer: Record<string, unknown> | undefined;
    if (options.authorizer !== undefined) {
      let policy: AuthorizerResult;
      try {
        policy = (await invoke(options.authorizer, {
          type: 'REQUEST',
          methodArn: `arn:aws:execute-api:${region}:${LOCAL_ACCOUNT_ID}:${apiId}/${stage}/$connect`,
          headers,
          queryStringParameters: query,
          multiValueQueryStringParameters: multiQuery,
          stageVariables: {},
          requestContext: requestContext(id, '$connect', 'CONNECT', { ...base, authorizer: undefined }),
        })) as AuthorizerResult;
      } catch (error) {
        log(`websocket: authorizer refused a connection: ${(error as Error).message}`);
        return refuse(socket, 401, 'Unauthorized');
      }
      if (!allows(policy)) return refuse(socket, 403, 'Forbidden');
      authorizer = { principalId: policy.principalId, ...(policy.context ?? {}) };
    }
    const connect = routes.$connect;
    if (connect !== undefined) {
      try {
        const result = (await invoke(connect, {
          requestContext: requestContext(id, '$connect', 'CONNECT', { ...base, authorizer }),
          headers,
          multiValueHeaders: Object.fromEntries(Object.entries(headers).map(([name, value]) => [name, [value]])),
          queryStringParameters: query,
          multiValueQueryStringParameters: multiQuery,
          isBase64Encoded: false,
        })) as { statusCode?: unknown } | undefined;
        const status = typeof result?.statusCode === 'number' ? result.statusCode : 200;
        if (status < 200 || status > 299) return refuse(socket, status, status === 401 ? 'Unauthorized' : 'Forbidden');
      } catch (error) {
        log(`websocket: $connect failed: ${(error as Error).message}`);
        return refuse(socket, 500, 'Internal server error');
      }
    }
    if (stopping !== undefined) return refuse(socket, 503, 'Service Unavailable');
    wss.handleUpgrade(req, socket, head, (ws) => {
      const connection: Connection = { id, socket: ws, ...base, lastActiveAt: Date.now(), authorizer, queue: [], queuedBytes: 0, closed: false };
      connections.set(id, connection);
      ws.on('message', (data, isBinary) => {
        if (isBinary) return; // API Gateway routes text frames; a binary one has no action.
        void onMessage(connection, data.toString('utf8'));
      });
      ws.on('close', (code, reason) => disconnect(connection, code, reason.toString('utf8') || 'Client closed the connection'));
      ws.on('error', (error) => {
        log(`websocket: connection ${id}: ${error.message}`);
        ws.terminate();
      });
    });
  };

  const handleManagement = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const match = MANAGEMENT_PATH.exec(new URL(req.url ?? '/', 'http://local').pathname);
    const reply = (status: number, body?: unknown, errorType?: string): void => {
      const text = body === undefined ? '' : JSON.stringify(body);
      res.writeHead(status, {
        'content-type': 'application/json',
        'x-amzn-requestid': randomUUID(),
        ...(errorType !== undefined ? { 'x-amzn-errortype': errorType } : {}),
      });
      res.end(text);
    };
    if (!match) {
      await drain(req);
      return reply(404, { message: `the WebSocket API emulator serves /@connections/{connectionId}, not ${req.url}` }, 'NotFoundException');
    }
    const connection = connections.get(decodeURIComponent(match[1]!));
    if (req.method === 'POST') {
      const body = await readBody(req, MAX_FRAME_BYTES);
      if (body === undefined) return reply(413, { message: `Message too long: at most ${MAX_FRAME_BYTES} bytes` }, 'PayloadTooLargeException');
      if (connection === undefined || connection.closed) return reply(410, { message: null }, 'GoneException');
      counters.posted += 1;
      enqueue(connection, body.toString('utf8'));
      return reply(200);
    }
    await drain(req);
    if (connection === undefined || connection.closed) return reply(410, { message: null }, 'GoneException');
    if (req.method === 'GET') {
      return reply(200, {
        connectedAt: new Date(connection.connectedAt).toISOString(),
        lastActiveAt: new Date(connection.lastActiveAt).toISOString(),
        identity: { sourceIp: connection.sourceIp, ...(connection.userAgent !== undefined ? { userAgent: connection.userAgent } : {}) },
      });
    }
    if (req.method === 'DELETE') {
      connection.socket.close(1000, 'Going away');
      disconnect(connection, 1000, 'Connection deleted through the management API');
      return reply(204);
    }
    return reply(405, { message: `method ${req.method} is not allowed on /@connections/{connectionId}` }, 'BadRequestException');
  };

  const server: Server = createServer((req, res) => {
    handleManagement(req, res).catch((error: unknown) => {
      log(`websocket: management request failed: ${(error as Error).message}`);
      if (!res.headersSent) res.writeHead(500);
      res.end();
    });
  });
  server.on('upgrade', (req, socket, head) => {
    onUpgrade(req, socket, head).catch((error: unknown) => {
      log(`websocket: upgrade failed: ${(error as Error).message}`);
      socket.destroy();
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', (error) =>
      reject(
        new LocalStackError('STACK_START_FAILED', `WebSocket API: could not listen on ${host}:${port}: ${error.message}; choose another port`, {
          context: { component: 'stack', port },
          cause: error,
        }),
      ),
    );
    server.listen({ host, port }, () => resolve());
  });
  const address = server.address();
  const boundPort = typeof address === 'object' && address !== null ? address.port : port;
  domainName = `${host}:${boundPort}`;
  log(`websocket: API on ws://${host}:${boundPort} (management http://${host}:${boundPort}/@connections)`);

  return {
    url: `ws://${host}:${boundPort}`,
    managementEndpoint: `http://${host}:${boundPort}`,
    port: boundPort,
    stats() {
      let queuedMessages = 0;
      let queuedBytes = 0;
      for (const connection of connections.values()) {
        queuedMessages += connection.queue.length;
        queuedBytes += connection.queuedBytes;
      }
      return { connections: connections.size, queuedMessages, queuedBytes, ...counters };
    },
    stop() {
      stopping ??= (async () => {
        for (const connection of [...connections.values()]) {
          connection.socket.close(1001, 'Going away');
          disconnect(connection, 1001, 'Server stopping');
        }
        await Promise.allSettled([...disconnects]);
        for (const client of wss.clients) client.terminate();
        await new Promise<void>((resolve) => {
          server.close(() => resolve());
          server.closeAllConnections();
        });
        wss.close();
      })();
      return stopping;
    },
  };
}

interface AuthorizerResult {
  readonly principalId?: unknown;
  readonly policyDocument?: { readonly Statement?: readonly { readonly Effect?: unknown; readonly Action?: unknown }[] };
  readonly context?: Record<string, unknown>;
}

/** Whether an authorizer's policy allows the connection (an explicit Deny wins, as in IAM). */
function allows(policy: AuthorizerResult | undefined): boolean {
  const statements = policy?.policyDocument?.Statement;
  if (!Array.isArray(statements) || statements.length === 0) return false;
  if (statements.some((s) => s.Effect === 'Deny')) return false;
  return statements.some((s) => s.Effect === 'Allow');
}

/** The subscription id of a `change` frame (the frames a queue overflow drops), else undefined. */
function changeSubscription(data: string): string | undefined {
  // Cheap check first: most frames a fan-out posts are changes, and parsing each costs little more.
  if (!data.includes('"change"')) return undefined;
  try {
    const frame = JSON.parse(data) as { type?: unknown; id?: unknown };
    return frame?.type === 'change' && typeof frame.id === 'string' ? frame.id : undefined;
  } catch {
    return undefined;
  }
}

function positiveInteger(value: number, name: string): number {
  if (!Number.isInteger(value) || value <= 0) {
    throw new LocalStackError('INVALID_OPTION', `WebSocket API: ${name} must be a positive integer, got ${JSON.stringify(value)}`, {
      context: { component: 'stack' },
    });
  }
  return value;
}

/** The request body, or undefined when it is longer than `limit` bytes (the rest is drained). */
async function readBody(req: IncomingMessage, limit: number): Promise<Buffer | undefined> {
  const chunks: Buffer[] = [];
  let bytes = 0;
  let tooLong = false;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    bytes += chunk.length;
    if (bytes > limit) tooLong = true;
    else chunks.push(chunk);
  }
  return tooLong ? undefined : Buffer.concat(chunks);
}

async function drain(req: IncomingMessage): Promise<void> {
  for await (const _chunk of req as AsyncIterable<Buffer>) {
    // discard
  }
}
