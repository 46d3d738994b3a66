import { randomUUID } from 'node:crypto';
import { existsSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { LocalStackError } from '../errors.ts';
import { isValidPort } from '../ports.ts';
import { createLambdaContext, type LambdaCallback, type LocalHandler } from './context.ts';
import {
  functionNotFound,
  invalidRequestContent,
  requestTooLarge,
  serviceUnavailable,
  toFunctionErrorPayload,
  tooManyRequests,
  validationError,
  type FunctionErrorPayload,
  type ServiceErrorReply,
} from './errors.ts';
import { formatLogTail, LogCapture } from './log-capture.ts';

/** Per-function settings, like a deployed function's configuration. */
export interface LocalFunctionOptions {
  /**
   * Invocation timeout; the caller gets a `Sandbox.Timedout` function error after it.
   * @default the endpoint's `timeoutMs`
   */
  timeoutMs?: number;
  /**
   * Reported as `context.memoryLimitInMB` (not enforced: handlers share this process).
   * @default the endpoint's `memorySizeMb`
   */
  memorySizeMb?: number;
}

/** Options of {@link startLambdaEndpoint}. Development and tests only. */
export interface LambdaEndpointOptions {
  /**
   * Interface to listen on. Loopback keeps the dev endpoint private to this machine.
   * @default '127.0.0.1'
   */
  host?: string;
  /**
   * TCP port; 0 picks a free one.
   * @default 0
   */
  port?: number;
  /**
   * Handlers by function name, registered at start (more with `register()`).
   * @default {}
   */
  functions?: Record<string, LocalHandler>;
  /**
   * Directory of handler modules: function `name` is `<dir>/<name>.ts` (or .mts/.js/.mjs)
   * exporting `handler`, imported on its first invocation. Registered functions win.
   * @default undefined (only registered functions)
   */
  functionsDir?: string;
  /**
   * Default invocation timeout.
   * @default DEFAULT_LAMBDA_TIMEOUT_MS (30 s)
   */
  timeoutMs?: number;
  /**
   * Default `context.memoryLimitInMB`.
   * @default 128 (AWS's default)
   */
  memorySizeMb?: number;
  /**
   * Region used in ARNs (`invokedFunctionArn`, error messages).
   * @default 'us-east-1'
   */
  region?: string;
  /**
   * Account id used in ARNs.
   * @default '000000000000'
   */
  accountId?: string;
  /**
   * Invocations running at once (all functions); more get `429 TooManyRequestsException`,
   * which the AWS SDK retries, like a throttled function.
   * @default DEFAULT_MAX_CONCURRENCY (1000, AWS's default account limit)
   */
  maxConcurrency?: number;
  /**
   * How long `stop()` waits for running invocations before closing connections.
   * @default 5_000
   */
  stopGraceMs?: number;
  /**
   * Receives one line per invocation and lifecycle lines.
   * @default no logging
   */
  log?: (line: string) => void;
}

/** A running local Lambda Invoke API endpoint. */
export interface LambdaEndpoint {
  /** Base URL for `AWS_ENDPOINT_URL_LAMBDA`, e.g. `http://127.0.0.1:40125`. */
  readonly endpoint: string;
  readonly host: string;
  readonly port: number;
  /** Registers (or replaces) the handler of function `name`. */
  register(name: string, handler: LocalHandler, options?: LocalFunctionOptions): void;
  /** Stops accepting invocations, waits for running ones (up to `stopGraceMs`) and closes. Idempotent. */
  stop(): Promise<void>;
}

/**
 * Generous for handlers that call DynamoDB Local on a loaded dev machine; set lower (AWS's
 * default is 3 s) to exercise timeouts.
 */
export const DEFAULT_LAMBDA_TIMEOUT_MS = 30_000;
/** AWS's default account-level concurrency limit. */
export const DEFAULT_MAX_CONCURRENCY = 1_000;
/** AWS's default function memory; only reported, never enforced. */
const DEFAULT_MEMORY_SIZE_MB = 128;
/** Enough for an Event invocation's follow-up work to finish in tests, short enough for Ctrl-C. */
const DEFAULT_STOP_GRACE_MS = 5_000;
/** AWS limits: 6 MB synchronous request, 6 MB + 100 B response, 1 MB asynchronous request. */
export const MAX_SYNC_REQUEST_BYTES = 6_291_456;
export const MAX_RESPONSE_BYTES = 6_291_556;
export const MAX_ASYNC_REQUEST_BYTES = 1_048_576;
/** Past this we stop draining an oversized request and drop the connection. */
const MAX_DRAIN_BYTES = 64 * 1_048_576;

const INVOKE_PATH = /^\/2015-03-31\/functions\/([^/]+)\/invocations\/?$/;
const FUNCTION_NAME = /^[A-Za-z0-9_-]{1,140}$/;
const HANDLER_EXTENSIONS = ['.ts', '.mts', '.js', '.mjs'] as const;

type InvocationType = 'RequestResponse' | 'Event' | 'DryRun';

interface LocalFunction {
  readonly handler: LocalHandler;
  readonly timeoutMs: number;
  readonly memorySizeMb: number;
}

/** The outcome of resolving a function name: a handler, a load failure, or nothing. */
type Resolved = { kind: 'found'; fn: LocalFunction } | { kind: 'loadFailed'; error: FunctionErrorPayload; timeoutMs: number; memorySizeMb: number };

interface Config {
  host: string;
  port: number;
  functionsDir: string | undefined;
  timeoutMs: number;
  memorySizeMb: number;
  region: string;
  accountId: string;
  maxConcurrency: number;
  stopGraceMs: number;
  log: (line: string) => void;
}

function compileOptions(options: LambdaEndpointOptions): Config {
  const fail = (message: string): never => {
    throw new LocalStackError('INVALID_OPTION', `Lambda endpoint: ${message}`, { context: { component: 'lambda' } });
  };
  const positive = (name: string, value: number | undefined, fallback: number): number => {
    const v = value ?? fallback;
    if (!Number.isFinite(v) || v <= 0) fail(`${name} must be a positive number, got ${JSON.stringify(value)}`);
    return v;
  };
  const port = options.port ?? 0;
  if (!isValidPort(port)) fail(`port must be an integer 0..65535 (0 = random), got ${JSON.stringify(options.port)}`);
  const functionsDir = options.functionsDir === undefined ? undefined : path.resolve(options.functionsDir);
  if (functionsDir !== undefined && !existsSync(functionsDir)) {
    fail(`functionsDir ${functionsDir} does not exist; create it or leave functionsDir unset`);
  }
  const maxConcurrency = positive('maxConcurrency', options.maxConcurrency, DEFAULT_MAX_CONCURRENCY);
  if (!Number.isInteger(maxConcurrency)) fail(`maxConcurrency must be an integer, got ${maxConcurrency}`);
  return {
    host: options.host ?? '127.0.0.1',
    port,
    functionsDir,
    timeoutMs: positive('timeoutMs', options.timeoutMs, DEFAULT_LAMBDA_TIMEOUT_MS),
    memorySizeMb: positive('memorySizeMb', options.memorySizeMb, DEFAULT_MEMORY_SIZE_MB),
    region: options.region ?? 'us-east-1',
    accountId: options.accountId ?? '000000000000',
    maxConcurrency,
    stopGraceMs: options.stopGraceMs ?? DEFAULT_STOP_GRACE_MS,
    log: options.log ?? (() => {}),
  };
}

/**
 * Starts a local Lambda Invoke API endpoint (`POST /2015-03-31/functions/{name}/invocations`)
 * serving in-process handlers, so `@aws-sdk/client-lambda`'s `InvokeCommand` works unchanged
 * with `endpoint` set. Supports RequestResponse (200), Event (202, runs after the reply),
 * DryRun (204), function errors (`X-Amz-Function-Error: Unhandled`), timeouts
 * (`Sandbox.Timedout`), 404 `ResourceNotFoundException`, the 6 MB limits (413 / function
 * error), `LogType: Tail`, and throttling past `maxConcurrency` (429).
 * **For development and tests only**: handlers share this process, so memory is not isolated
 * and a timed-out handler keeps running in the background.
 *
 * @example
 * const lambda = await startLambdaEndpoint({ functions: { hello: async (event) => ({ hi: event }) } });
 * const client = new LambdaClient({ endpoint: lambda.endpoint, region: 'us-east-1',
 *   credentials: { accessKeyId: 'local', secretAccessKey: 'local' } });
 * const res = await client.send(new InvokeCommand({ FunctionName: 'hello', Payload: JSON.stringify('you') }));
 * await lambda.stop();
 */
export async function startLambdaEndpoint(options: LambdaEndpointOptions = {}): Promise<LambdaEndpoint> {
  const config = compileOptions(options);
  const registered = new Map<string, LocalFunction>();
  const loaded = new Map<string, Promise<Resolved | undefined>>();
  const inFlight = new Set<Promise<unknown>>();
  const logCapture = new LogCapture();
  let stopping = false;

  const register = (name: string, handler: LocalHandler, fnOptions: LocalFunctionOptions = {}): void => {
    if (!FUNCTION_NAME.test(name)) {
      throw new LocalStackError(
        'INVALID_OPTION',
        `Lambda endpoint: function name ${JSON.stringify(name)} is invalid; use 1-140 letters, digits, "-" or "_"`,
        { context: { component: 'lambda', functionName: name } },
      );
    }
    if (typeof handler !== 'function') {
      throw new LocalStackError('INVALID_OPTION', `Lambda endpoint: handler of "${name}" must be a function, got ${typeof handler}`, {
        context: { component: 'lambda', functionName: name },
      });
    }
    registered.set(name, {
      handler,
      timeoutMs: fnOptions.timeoutMs ?? config.timeoutMs,
      memorySizeMb: fnOptions.memorySizeMb ?? config.memorySizeMb,
    });
  };
  for (const [name, handler] of Object.entries(options.functions ?? {})) register(name, handler);

  const resolveFunction = (name: string): Promise<Resolved | undefined> => {
    const fn = registered.get(name);
    if (fn) return Promise.resolve({ kind: 'found', fn });
    if (config.functionsDir === undefined) return Promise.resolve(undefined);
    let pending = loaded.get(name);
    if (!pending) {
      pending = loadFromDir(config, name);
      loaded.set(name, pending);
    }
    return pending;
  };

  const arnOf = (name: string, qualifier?: string): string =>
    `arn:aws:lambda:${config.region}:${config.accountId}:function:${name}${qualifier === undefined ? '' : `:${qualifier}`}`;

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const requestId = randomUUID();
    const url = new URL(req.url ?? '/', 'http://local');
    const match = INVOKE_PATH.exec(url.pathname);
    if (req.method !== 'POST' || !match) {
      await drain(req);
      return sendServiceError(res, requestId, {
        status: 404,
        errorType: 'UnknownOperationException',
        type: 'User',
        message: `The local Lambda endpoint only serves POST /2015-03-31/functions/{name}/invocations, got ${req.method} ${url.pathname}`,
      });
    }
    const invocationType = (header(req, 'x-amz-invocation-type') ?? 'RequestResponse') as InvocationType;
    if (!['RequestResponse', 'Event', 'DryRun'].includes(invocationType)) {
      await drain(req);
      return sendServiceError(res, requestId, validationError(`InvocationType must be RequestResponse, Event or DryRun, got ${invocationType}`));
    }
    const logType = header(req, 'x-amz-log-type') ?? 'None';
    const limit = invocationType === 'Event' ? MAX_ASYNC_REQUEST_BYTES : MAX_SYNC_REQUEST_BYTES;
    const body = await readBody(req, limit);
    if (body === 'tooLarge') {
      return sendServiceError(res, requestId, requestTooLarge(limit, invocationType === 'Event' ? 'InvokeAsync' : 'Invoke'));
    }
    if (stopping) return sendServiceError(res, requestId, serviceUnavailable());

    const parsed = parseFunctionName(decodeURIComponent(match[1] ?? ''), url.searchParams.get('Qualifier') ?? undefined);
    if (!parsed) {
      return sendServiceError(
        res,
        requestId,
        validationError(`FunctionName ${JSON.stringify(match[1])} is not a function name, name:qualifier or function ARN`),
      );
    }
    const resolved = await resolveFunction(parsed.name);
    if (!resolved) {
      config.log(`lambda: ${parsed.name} not found (404)`);
      return sendServiceError(res, requestId, functionNotFound(arnOf(parsed.name, parsed.qualifier)));
    }

    let event: unknown = {};
    if (body.length > 0) {
      try {
        event = JSON.parse(body.toString('utf8'));
      } catch (error) {
        return sendServiceError(res, requestId, invalidRequestContent((error as Error).message));
      }
    }
    if (invocationType === 'DryRun') {
      res.writeHead(204, { 'x-amzn-RequestId': requestId }).end();
      return;
    }
    if (inFlight.size >= config.maxConcurrency) return sendServiceError(res, requestId, tooManyRequests(config.maxConcurrency));

    const clientContext = decodeClientContext(header(req, 'x-amz-client-context'));
    const timeoutMs = resolved.kind === 'found' ? resolved.fn.timeoutMs : resolved.timeoutMs;
    const memorySizeMb = resolved.kind === 'found' ? resolved.fn.memorySizeMb : resolved.memorySizeMb;
    const started = Date.now();
    const context = createLambdaContext({
      functionName: parsed.name,
      qualifier: parsed.qualifier,
      region: config.region,
      accountId: config.accountId,
      memorySizeMb,
      deadline: started + timeoutMs,
      clientContext,
      requestId,
    });
    const run = (): Promise<Outcome> =>
      resolved.kind === 'found'
        ? invokeHandler(resolved.fn.handler, event, context, timeoutMs, requestId)
        : Promise.resolve({ ok: false, error: resolved.error });

    if (invocationType === 'Event') {
      res.writeHead(202, { 'x-amzn-RequestId': requestId, 'Content-Length': 0 }).end();
      const task = run().then((outcome) => {
        const ms = Date.now() - started;
        if (outcome.ok) config.log(`lambda: ${parsed.name} Event ok ${ms} ms`);
        else config.log(`lambda: ${parsed.name} Event failed in ${ms} ms: ${outcome.error.errorType}: ${outcome.error.errorMessage}`);
      });
      track(inFlight, task);
      return;
    }

    const task = (async () => {
      let outcome: Outcome;
      let logLines: string[] = [];
      if (logType === 'Tail') {
        const captured = await logCapture.run(requestId, run);
        logLines = captured.lines;
        outcome = captured.result.status === 'fulfilled' ? captured.result.value : { ok: false, error: toFunctionErrorPayload(captured.result.reason) };
      } else {
        outcome = await run();
      }
      let payload: Buffer;
      let functionError = !outcome.ok;
      if (outcome.ok) {
        const serialized = serializeResult(outcome.result);
        if (typeof serialized === 'string') {
          payload = Buffer.from(serialized, 'utf8');
          if (payload.length > MAX_RESPONSE_BYTES) {
            functionError = true;
            payload = jsonBuffer({
              errorMessage: `Response payload size exceeded maximum allowed payload size (${MAX_RESPONSE_BYTES} bytes).`,
              errorType: 'Function.ResponseSizeTooLarge',
            });
          }
        } else {
          functionError = true;
          payload = jsonBuffer(serialized);
        }
      } else {
        payload = jsonBuffer(outcome.error);
      }
      const durationMs = Date.now() - started;
      config.log(`lambda: ${parsed.name} RequestResponse ${functionError ? 'function error' : 'ok'} ${durationMs} ms`);
      const headers: Record<string, string | number> = {
        'Content-Type': 'application/json',
        'Content-Length': payload.length,
        'X-Amz-Executed-Version': '$LATEST',
        'x-amzn-RequestId': requestId,
      };
      if (functionError) headers['X-Amz-Function-Error'] = 'Unhandled';
      if (logType === 'Tail') {
        const errorLine = functionError ? `${new Date().toISOString()}\t${requestId}\tERROR\t${payload.toString('utf8')}` : undefined;
        headers['X-Amz-Log-Result'] = formatLogTail({ requestId, lines: logLines, durationMs, memorySizeMb, ...(errorLine ? { errorLine } : {}) });
      }
      res.writeHead(200, headers).end(payload);
    })();
    track(inFlight, task);
    await task;
  };

  const server: Server = createServer((req, res) => {
    handle(req, res).catch((error: unknown) => {
      config.log(`lambda: internal error: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`);
      if (!res.headersSent) {
        sendServiceError(res, 'unknown', {
          status: 500,
          errorType: 'ServiceException',
          type: 'Service',
          message: `local Lambda endpoint failed: ${error instanceof Error ? error.message : String(error)}`,
        });
      } else {
        res.destroy();
      }
    });
  });
  // Requests may carry 6 MB; don't let Node's defaults cut slow, large uploads short.
  server.requestTimeout = 0;
  server.headersTimeout = 60_000;

  await new Promise<void>((resolve, reject) => {
    const onError = (error: NodeJS.ErrnoException): void => {
      reject(
        new LocalStackError(
          'LAMBDA_START_FAILED',
          `Lambda endpoint could not listen on ${config.host}:${config.port}: ${error.message}` +
            (error.code === 'EADDRINUSE' ? '; pick another port, or 0 for a random one' : ''),
          { context: { component: 'lambda', port: config.port }, cause: error },
        ),
      );
    };
    server.once('error', onError);
    server.listen({ host: config.host, port: config.port }, () => {
      server.off('error', onError);
      resolve();
    });
  });
  const address = server.address();
  const port = typeof address === 'object' && address !== null ? address.port : config.port;
  const endpoint = `http://${config.host.includes(':') ? `[${config.host}]` : config.host}:${port}`;
  config.log(
    `lambda: Invoke API endpoint at ${endpoint}` +
      (config.functionsDir ? ` serving ${config.functionsDir}` : '') +
      ' (development and tests only)',
  );

  let stopped: Promise<void> | undefined;
  return {
    endpoint,
    host: config.host,
    port,
    register,
    stop(): Promise<void> {
      stopped ??= (async () => {
        stopping = true;
        const closed = new Promise<void>((resolve) => server.close(() => resolve()));
        server.closeIdleConnections();
        let timer: NodeJS.Timeout | undefined;
        await Promise.race([
          Promise.allSettled([...inFlight]),
          new Promise((resolve) => {
            timer = setTimeout(resolve, config.stopGraceMs);
          }),
        ]);
        clearTimeout(timer);
        server.closeAllConnections();
        await closed;
        config.log('lambda: stopped');
      })();
      return stopped;
    },
  };
}

type Outcome = { ok: true; result: unknown } | { ok: false; error: FunctionErrorPayload };

/** Runs one handler with a timeout; never rejects. */
async function invokeHandler(
  handler: LocalHandler,
  event: unknown,
  context: ReturnType<typeof createLambdaContext>,
  timeoutMs: number,
  requestId: string,
): Promise<Outcome> {
  let timer: NodeJS.Timeout | undefined;
  const timedOut = new Promise<Outcome>((resolve) => {
    timer = setTimeout(
      () =>
        resolve({
          ok: false,
          error: {
            errorType: 'Sandbox.Timedout',
            errorMessage: `RequestId: ${requestId} Error: Task timed out after ${(timeoutMs / 1000).toFixed(2)} seconds`,
          },
        }),
      timeoutMs,
    );
  });
  const ran = callHandler(handler, event, context).then(
    (result): Outcome => ({ ok: true, result }),
    (error: unknown): Outcome => ({ ok: false, error: toFunctionErrorPayload(error) }),
  );
  try {
    return await Promise.race([ran, timedOut]);
  } finally {
    clearTimeout(timer);
  }
}

/** Calls an async handler, or a callback-style one (three parameters), as the Node.js runtime does. */
function callHandler(handler: LocalHandler, event: unknown, context: ReturnType<typeof createLambdaContext>): Promise<unknown> {
  if (handler.length >= 3) {
    return new Promise((resolve, reject) => {
      const callback: LambdaCallback = (error, result) => (error ? reject(error) : resolve(result));
      try {
        const returned = handler(event, context, callback);
        if (isPromiseLike(returned)) returned.then(resolve, reject);
      } catch (error) {
        reject(error);
      }
    });
  }
  try {
    return Promise.resolve(handler(event, context));
  } catch (error) {
    return Promise.reject(error);
  }
}

function isPromiseLike(value: unknown): value is PromiseLike<unknown> {
  return typeof (value as PromiseLike<unknown> | null)?.then === 'function';
}

/** JSON text of a handler's result (`undefined` is `null`, as on AWS), or the error it causes. */
function serializeResult(result: unknown): string | FunctionErrorPayload {
  try {
    return JSON.stringify(result === undefined ? null : result) ?? 'null';
  } catch (error) {
    return {
      errorType: 'Runtime.MarshalError',
      errorMessage: `Unable to marshal response: ${(error as Error).message}`,
    };
  }
}

/** Imports `<dir>/<name>.<ext>` and returns its `handler`, a load failure, or nothing if absent. */
async function loadFromDir(config: Config, name: string): Promise<Resolved | undefined> {
  const dir = config.functionsDir;
  if (dir === undefined) return undefined;
  const file = HANDLER_EXTENSIONS.map((ext) => path.join(dir, `${name}${ext}`)).find((candidate) => existsSync(candidate));
  if (file === undefined) return undefined;
  const base = { timeoutMs: config.timeoutMs, memorySizeMb: config.memorySizeMb };
  let module: Record<string, unknown>;
  try {
    module = (await import(pathToFileURL(file).href)) as Record<string, unknown>;
  } catch (error) {
    config.log(`lambda: cannot import ${file}: ${error instanceof Error ? error.message : String(error)}`);
    const payload = toFunctionErrorPayload(error);
    return { kind: 'loadFailed', ...base, error: { ...payload, errorType: 'Runtime.ImportModuleError', errorMessage: `${payload.errorType}: ${payload.errorMessage}` } };
  }
  const handler = module.handler;
  if (typeof handler !== 'function') {
    return {
      kind: 'loadFailed',
      ...base,
      error: {
        errorType: 'Runtime.HandlerNotFound',
        errorMessage: `${path.basename(file)}: handler is undefined or not exported; export \`handler\` from ${file}`,
      },
    };
  }
  return { kind: 'found', fn: { handler: handler as LocalHandler, ...base } };
}

/**
 * Accepts `name`, `name:qualifier`, `123456789012:function:name[:qualifier]` and
 * `arn:aws:lambda:region:account:function:name[:qualifier]`. Any qualifier is accepted: the
 * local endpoint has no versions or aliases, everything runs `$LATEST`.
 */
function parseFunctionName(raw: string, queryQualifier: string | undefined): { name: string; qualifier: string | undefined } | undefined {
  const marker = ':function:';
  const at = raw.indexOf(marker);
  const tail = at >= 0 ? raw.slice(at + marker.length) : raw;
  const [name, qualifier, ...rest] = tail.split(':');
  if (name === undefined || !FUNCTION_NAME.test(name) || rest.length > 0) return undefined;
  if (at < 0 && raw.startsWith('arn:')) return undefined;
  return { name, qualifier: qualifier ?? queryQualifier };
}

function header(req: IncomingMessage, name: string): string | undefined {
  const value = req.headers[name];
  return Array.isArray(value) ? value[0] : value;
}

function decodeClientContext(value: string | undefined): unknown {
  if (!value) return undefined;
  try {
    return JSON.parse(Buffer.from(value, 'base64').toString('utf8'));
  } catch {
    return undefined;
  }
}

/** Reads the body up to `limit` bytes; beyond that keeps draining (so the client sees our 413) and answers 'tooLarge'. */
function readBody(req: IncomingMessage, limit: number): Promise<Buffer | 'tooLarge'> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size <= limit) chunks.push(chunk);
      else if (size > MAX_DRAIN_BYTES) req.destroy();
    });
    req.once('end', () => resolve(size > limit ? 'tooLarge' : Buffer.concat(chunks, size)));
    req.once('error', reject);
    req.once('close', () => {
      if (!req.complete) reject(new Error('client closed the connection before sending the whole request'));
    });
  });
}

async function drain(req: IncomingMessage): Promise<void> {
  await readBody(req, 0).catch(() => undefined);
}

function sendServiceError(res: ServerResponse, requestId: string, reply: ServiceErrorReply): void {
  const body = jsonBuffer({ Type: reply.type, message: reply.message, ...reply.extra });
  res
    .writeHead(reply.status, {
      'Content-Type': 'application/json',
      'Content-Length': body.length,
      'x-amzn-errortype': reply.errorType,
      'x-amzn-RequestId': requestId,
    })
    .end(body);
}

function jsonBuffer(value: unknown): Buffer {
  return Buffer.from(JSON.stringify(value), 'utf8');
}

function track(set: Set<Promise<unknown>>, task: Promise<unknown>): void {
  const settled = task.catch(() => undefined).finally(() => set.delete(settled));
  set.add(settled);
}
