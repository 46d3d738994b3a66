/**
 * The live Lambda handlers, built from the app definition: the `$connect` authorizer, `connect`,
 * `disconnect`, `subscribe` (routes `subscribe` and `unsubscribe`) and `fanout` (the built-in
 * trigger of the live views). They talk to the views table and to the WebSocket API's
 * `@connections` management API by endpoint alone, so AWS and the local emulator differ in
 * configuration only.
 */
import { ApiGatewayManagementApiClient, GoneException, PostToConnectionCommand } from '@aws-sdk/client-apigatewaymanagementapi';
import type { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { createStorage, ENV, LIVE_FUNCTIONS, stringifyState } from '../../sdk/contract/index.ts';
import { createViewReader, type App, type LivePrincipal, type View, type ViewChangeEvent, type ViewReader } from '../../sdk/index.ts';
import { allowPolicy, createTokenVerifier, type LiveAuthOptions } from './auth.ts';
import { LiveError } from './errors.ts';
import {
  changeFrame,
  errorFrame,
  MAX_FRAME_BYTES,
  MAX_SUBSCRIPTIONS_PER_CONNECTION,
  parseRequest,
  resyncFrame,
  snapshotFrames,
  type LiveTarget,
  type SnapshotItem,
} from './protocol.ts';
import { LiveSubscriptions, type Subscriber } from './subscriptions.ts';

/** Options of {@link createLiveHandlers}; every field defaults from the Lambda environment on first use. */
export interface LiveHandlersOptions {
  /** @default a client from the standard AWS environment */
  readonly dynamodb?: DynamoDBClient;
  /** @default process.env.TRIBUTARY_TABLE */
  readonly tableName?: string;
  /**
   * The management API client; or its endpoint.
   * @default a client for process.env.TRIBUTARY_LIVE_ENDPOINT
   */
  readonly management?: ApiGatewayManagementApiClient;
  readonly managementEndpoint?: string;
  /**
   * How the authorizer checks tokens.
   * @default from the environment: TRIBUTARY_LIVE_HMAC_SECRET, else TRIBUTARY_LIVE_JWT_ISSUER / _AUDIENCE (/ TRIBUTARY_LIVE_JWKS_URL)
   */
  readonly auth?: LiveAuthOptions;
  /**
   * Posts in flight at once per fan-out invocation (and per snapshot).
   * @default 32
   */
  readonly postConcurrency?: number;
}

/** The handlers; register them under {@link LIVE_FUNCTIONS}' names. */
export interface LiveHandlers {
  readonly authorizer: (event: any) => Promise<unknown>;
  readonly connect: (event: any) => Promise<{ statusCode: number; body?: string }>;
  readonly disconnect: (event: any) => Promise<{ statusCode: number }>;
  readonly subscribe: (event: any) => Promise<{ statusCode: number }>;
  readonly fanout: (event: ViewChangeEvent) => Promise<{ batchItemFailures: { itemIdentifier: string }[] }>;
}

/** Enough posts in flight to hide API Gateway's latency, few enough for one Lambda's sockets. */
export const DEFAULT_POST_CONCURRENCY = 32;

/**
 * Builds the live handlers of an app (only `subscribe` reads the app: `undefined` serves the others).
 *
 * @example
 * export const { authorizer, connect, disconnect, subscribe, fanout } = createLiveHandlers(app);
 */
export function createLiveHandlers(app: App | undefined, options: LiveHandlersOptions = {}): LiveHandlers {
  if (app !== undefined && (!app || app.kind !== 'app')) {
    throw new LiveError('INVALID_ARGUMENT', `createLiveHandlers needs a defineApp() result (or undefined for the handlers that need no app), received ${String(app)}`);
  }
  const concurrency = options.postConcurrency ?? DEFAULT_POST_CONCURRENCY;
  if (!Number.isInteger(concurrency) || concurrency <= 0) {
    throw new LiveError('INVALID_ARGUMENT', `createLiveHandlers: postConcurrency must be a positive integer, received ${String(options.postConcurrency)}`);
  }
  const liveViews = new Map((app?.views ?? []).filter((v) => v.live !== undefined).map((v) => [v.name, v]));
  let rows: LiveSubscriptions | undefined;
  let reader: ViewReader | undefined;
  let management: ApiGatewayManagementApiClient | undefined;
  let verify: ((token: string) => Promise<LivePrincipal>) | undefined;

  const tableName = (): string => {
    const name = options.tableName ?? process.env[ENV.table];
    if (!name) throw new LiveError('CONFIG_MISSING', `live handlers: no views table (tableName option or ${ENV.table}); set ${ENV.table}`);
    return name;
  };
  const subscriptions = (): LiveSubscriptions =>
    (rows ??= new LiveSubscriptions(createStorage({ dynamodb: options.dynamodb, tableName: tableName() }).documentClient, tableName()));
  const views = (): ViewReader => (reader ??= createViewReader({ ...(options.dynamodb ? { dynamodb: options.dynamodb } : {}), tableName: tableName() }));
  const api = (): ApiGatewayManagementApiClient => {
    if (management !== undefined) return management;
    if (options.management !== undefined) return (management = options.management);
    const endpoint = options.managementEndpoint ?? process.env[ENV.liveEndpoint];
    if (!endpoint) {
      throw new LiveError('CONFIG_MISSING', `live handlers: no management API endpoint (managementEndpoint option or ${ENV.liveEndpoint}); set ${ENV.liveEndpoint} to the WebSocket API's https://…/{stage} URL`);
    }
    return (management = new ApiGatewayManagementApiClient({ endpoint }));
  };
  const verifier = (): ((token: string) => Promise<LivePrincipal>) => {
    if (verify !== undefined) return verify;
    const env = process.env;
    const auth: LiveAuthOptions | undefined =
      options.auth ??
      (env[ENV.liveHmacSecret]
        ? { hmacSecret: env[ENV.liveHmacSecret]! }
        : env[ENV.liveJwtIssuer]
          ? { jwt: { issuer: env[ENV.liveJwtIssuer]!, audience: env[ENV.liveJwtAudience] ?? '', ...(env[ENV.liveJwksUrl] ? { jwksUrl: env[ENV.liveJwksUrl] } : {}) } }
          : undefined);
    if (auth === undefined) {
      throw new LiveError('CONFIG_MISSING', `live authorizer: no token check configured; set ${ENV.liveJwtIssuer} and ${ENV.liveJwtAudience} (or, locally, ${ENV.liveHmacSecret})`);
    }
    return (verify = createTokenVerifier(auth));
  };

  /** Posts one frame; false when the connection is gone (its rows are then deleted). */
  const post = async (connectionId: string, frame: string): Promise<boolean> => {
    try {
      await api().send(new PostToConnectionCommand({ ConnectionId: connectionId, Data: frame }));
      return true;
    } catch (error) {
      if (error instanceof GoneException || (error as { name?: string }).name === 'GoneException') {
        await subscriptions().deleteConnection(connectionId);
        return false;
      }
      throw error;
    }
  };

  /** Who the event's connection is, from the authorizer's context or (IAM auth) the caller's identity. */
  const principalInEvent = (event: any): LivePrincipal | undefined => {
    const context = event?.requestContext;
    const fromAuthorizer = context?.authorizer?.principal;
    if (typeof fromAuthorizer === 'string') return JSON.parse(fromAuthorizer) as LivePrincipal;
    const arn = context?.identity?.userArn;
    return typeof arn === 'string' ? { iam: arn } : undefined;
  };
  const principalOf = async (event: any): Promise<LivePrincipal | undefined> =>
    principalInEvent(event) ?? (await subscriptions().principalOf(String(event?.requestContext?.connectionId)));

  const snapshotOf = async (view: View<any, any>, target: LiveTarget, id: string, connectionId: string): Promise<boolean> => {
    const reads = views();
    const tagged = (state: unknown): unknown => JSON.parse(stringifyState(state) ?? 'null');
    if ('keys' in target && view.window !== undefined) {
      // A windowed view has one item per window: a key's snapshot is its newest window; changes
      // of every window follow (the client keeps one sequence per key and window).
      const newest = await Promise.all(target.keys.map((key) => reads.latestWindow(view, key, { consistent: true })));
      const items: SnapshotItem[] = target.keys.map((key, i) => {
        const found = newest[i];
        return found === undefined
          ? { key, version: 0, state: null }
          : { key, version: found.version, state: tagged(found.state), window: { start: found.window.start, end: found.window.end } };
      });
      const { frames, tooLarge } = snapshotFrames(id, items);
      for (const frame of [...tooLarge, ...frames]) if (!(await post(connectionId, frame))) return false;
      return true;
    }
    if ('keys' in target) {
      const found = await reads.getMany(view, target.keys, { consistent: true });
      const items: SnapshotItem[] = target.keys.map((key, i) => {
        const item = found[i];
        return item === undefined ? { key, version: 0, state: null } : { key, version: item.version, state: tagged(item.state) };
      });
      const { frames, tooLarge } = snapshotFrames(id, items);
      for (const frame of [...tooLarge, ...frames]) if (!(await post(connectionId, frame))) return false;
      return true;
    }
    let cursor: string | undefined;
    do {
      const page = await reads.query(view, { prefix: target.prefix }, { consistent: true, limit: 1_000, ...(cursor !== undefined ? { cursor } : {}) });
      cursor = page.cursor;
      const items = page.items.map((item) => ({ key: item.key, version: item.version, state: tagged(item.state) }));
      const { frames, tooLarge } = snapshotFrames(id, items, cursor === undefined);
      for (const frame of [...tooLarge, ...frames]) if (!(await post(connectionId, frame))) return false;
    } while (cursor !== undefined);
    return true;
  };

  return {
    async authorizer(event) {
      const token = event?.queryStringParameters?.token ?? String(event?.headers?.authorization ?? event?.headers?.Authorization ?? '').replace(/^Bearer\s+/i, '');
      if (!token) throw new Error('Unauthorized');
      let principal: LivePrincipal;
      try {
        principal = await verifier()(token);
      } catch (error) {
        if (error instanceof LiveError) throw error;
        // API Gateway answers 401 to exactly this message.
        throw new Error('Unauthorized');
      }
      return allowPolicy(principal, String(event?.methodArn ?? '*'));
    },

    async connect(event) {
      const principal = principalInEvent(event);
      if (principal === undefined) return { statusCode: 401, body: 'Unauthorized: no authorizer principal and no IAM identity' };
      await subscriptions().putConnection(String(event.requestContext.connectionId), principal);
      return { statusCode: 200 };
    },

    async disconnect(event) {
      await subscriptions().deleteConnection(String(event?.requestContext?.connectionId));
      return { statusCode: 200 };
    },

    async subscribe(event) {
      const connectionId = String(event?.requestContext?.connectionId);
      const parsed = parseRequest(typeof event?.body === 'string' ? event.body : undefined);
      if ('error' in parsed) {
        await post(connectionId, errorFrame(parsed.error.id, 'BAD_REQUEST', parsed.error.message));
        return { statusCode: 200 };
      }
      const request = parsed.request;
      if (app === undefined) throw new LiveError('CONFIG_MISSING', 'live subscribe handler: built without an app; pass the app to createLiveHandlers(app)');
      if (request.action === 'unsubscribe') {
        await subscriptions().deleteSubscription(connectionId, request.id);
        await post(connectionId, JSON.stringify({ type: 'unsubscribed', id: request.id }));
        return { statusCode: 200 };
      }
      const view = liveViews.get(request.view);
      if (view === undefined) {
        const names = [...liveViews.keys()];
        await post(connectionId, errorFrame(request.id, 'UNKNOWN_VIEW', `view "${request.view}" is not a live view of app "${app.name}"; live views: ${names.length > 0 ? names.join(', ') : 'none (set live on a view)'}`));
        return { statusCode: 200 };
      }
      if (view.window !== undefined && 'prefix' in request.target) {
        await post(connectionId, errorFrame(request.id, 'BAD_REQUEST', `view "${view.name}" is windowed: subscribe to its keys (each key's newest window first, then changes of every window); a prefix subscription is for unwindowed views`));
        return { statusCode: 200 };
      }
      const principal = await principalOf(event);
      const asked = 'keys' in request.target ? request.target.keys : [request.target.prefix];
      const refused: string[] = [];
      for (const key of asked) if (principal === undefined || (await view.live!.authorize(principal, key)) !== true) refused.push(key);
      if (refused.length > 0) {
        const what = 'keys' in request.target ? `key${refused.length === 1 ? '' : 's'} ${refused.map((k) => JSON.stringify(k)).join(', ')}` : `prefix ${JSON.stringify(request.target.prefix)}`;
        await post(connectionId, errorFrame(request.id, 'UNAUTHORIZED', `view "${view.name}": this connection may not watch ${what}`));
        return { statusCode: 200 };
      }
      const existing = await subscriptions().subscriptionsOf(connectionId);
      if (!existing.includes(request.id) && existing.length >= MAX_SUBSCRIPTIONS_PER_CONNECTION) {
        await post(connectionId, errorFrame(request.id, 'TOO_MANY_SUBSCRIPTIONS', `this connection holds ${existing.length} subscriptions, the most one may; unsubscribe some first`));
        return { statusCode: 200 };
      }
      // Rows first, snapshot after: a change between the two reaches the client as well (it drops duplicates by version).
      await subscriptions().putSubscription(connectionId, request.id, view.name, request.target);
      await snapshotOf(view, request.target, request.id, connectionId);
      return { statusCode: 200 };
    },

    async fanout(event) {
      const failures: { itemIdentifier: string }[] = [];
      const prefixes = new Map<string, Promise<Subscriber[]>>();
      const gone = new Set<string>();
      const posts: { connectionId: string; frame: string; change: string }[] = [];
      await Promise.all(
        (event?.changes ?? []).map(async (change) => {
          try {
            const byPrefix = prefixes.get(change.view) ?? subscriptions().prefixSubscribers(change.view);
            prefixes.set(change.view, byPrefix);
            const [byKey, prefixed] = await Promise.all([subscriptions().keySubscribers(change.view, change.key), byPrefix]);
            for (const subscriber of [...byKey, ...prefixed.filter((s) => change.key.startsWith(s.prefix ?? ''))]) {
              let frame = changeFrame(subscriber.subscription, change);
              if (Buffer.byteLength(frame) > MAX_FRAME_BYTES) frame = resyncFrame(subscriber.subscription, `the change of key "${change.key}" is larger than one frame`);
              posts.push({ connectionId: subscriber.connectionId, frame, change: change.idempotencyKey });
            }
          } catch {
            failures.push({ itemIdentifier: change.idempotencyKey });
          }
        }),
      );
      const failed = new Set<string>();
      let next = 0;
      const worker = async (): Promise<void> => {
        while (next < posts.length) {
          const item = posts[next++]!;
          if (gone.has(item.connectionId) || failed.has(item.change)) continue;
          try {
            if (!(await post(item.connectionId, item.frame))) gone.add(item.connectionId);
          } catch {
            failed.add(item.change);
          }
        }
      };
      await Promise.all(Array.from({ length: Math.min(concurrency, posts.length) }, worker));
      for (const change of failed) failures.push({ itemIdentifier: change });
      return { batchItemFailures: failures };
    },
  };
}

/** Something that registers Lambda handlers by name: the local stack's Lambda endpoint. */
export interface LambdaRegistry {
  register(name: string, handler: (event: any, context: any) => unknown): void;
}

/**
 * Registers the live handlers on a local Lambda endpoint under their function names, where
 * the local WebSocket API's routes and the engine's fan-out trigger invoke them.
 *
 * @example
 * registerLiveHandlers(stack.lambda, createLiveHandlers(app, { auth: { hmacSecret } }));
 */
export function registerLiveHandlers(lambda: LambdaRegistry, handlers: LiveHandlers): void {
  lambda.register(LIVE_FUNCTIONS.authorizer, handlers.authorizer);
  lambda.register(LIVE_FUNCTIONS.connect, handlers.connect);
  lambda.register(LIVE_FUNCTIONS.disconnect, handlers.disconnect);
  lambda.register(LIVE_FUNCTIONS.subscribe, handlers.subscribe);
  lambda.register(LIVE_FUNCTIONS.fanout, handlers.fanout);
}
