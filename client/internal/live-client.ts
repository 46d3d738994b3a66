import { ClientError } from './errors.ts';
import {
  parseServerFrame,
  type ChangeFrame,
  type ServerFrame,
  type SnapshotItem,
  type SubscribeFrame,
  type WireWindow,
} from './protocol.ts';
import { ItemSequencer, type SequencedState, type SequencerResult } from './sequencer.ts';

/**
 * What the client needs of a WebSocket: the browser's and Node's global `WebSocket` and the `ws`
 * package's all have it.
 */
export interface WebSocketLike {
  readonly readyState: number;
  send(data: string): void;
  close(code?: number, reason?: string): void;
  onopen: ((event: unknown) => void) | null;
  onmessage: ((event: { readonly data: unknown }) => void) | null;
  onclose: ((event: { readonly code?: number; readonly reason?: string }) => void) | null;
  onerror: ((event: unknown) => void) | null;
}

/** A WebSocket constructor (the global `WebSocket`, or `ws`'s default export on Node 20). */
export type WebSocketConstructor = new (url: string) => WebSocketLike;

/**
 * A view as the client sees it: the shape of a `defineView` result, matched structurally so a
 * browser bundle can name a view's type (`import type`) without loading the SDK.
 */
export interface LiveView<S = unknown> {
  readonly kind: 'view';
  readonly name: string;
  readonly initial: () => S;
}

/** View name → state type: what a client is typed by. */
export type LiveViews = Readonly<Record<string, unknown>>;

/**
 * The {@link LiveViews} of a record of views, e.g. of a views module's namespace
 * (`import type * as views from './views.ts'`; `LiveViewStates<typeof views>`), whose export
 * names are the view names; exports that are not views are left out.
 */
export type LiveViewStates<T> = {
  readonly [K in keyof T as T[K] extends LiveView<any> ? K : never]: T[K] extends LiveView<infer S> ? S : never;
};

/** A view key as the SDK takes it; numbers and bigints are sent in decimal. */
export type LiveKey = string | number | bigint;

/** What to subscribe to: one key, several keys, or every key starting with a prefix. */
export type LiveTarget = LiveKey | readonly LiveKey[] | { readonly prefix: string };

/** One state of one item, as a subscription shows it. */
export interface LiveUpdate<S> {
  readonly view: string;
  readonly key: string;
  /** The item's window, for windowed views. */
  readonly window?: WireWindow;
  /** The item's version (0: the key has no item). Strictly increasing per item and subscription. */
  readonly version: number;
  /** The state; undefined when the key has no item or it was deleted. */
  readonly state: S | undefined;
  /** True when this update is the item's deletion. */
  readonly deleted: boolean;
  /** `'snapshot'` for a state read when (re)subscribing, `'change'` for a pushed change. */
  readonly source: 'snapshot' | 'change';
}

/** Ends a subscription (idempotent). */
export type Unsubscribe = () => void;

/** Where the client's connection is. */
export type LiveStatus = 'idle' | 'connecting' | 'open' | 'reconnecting' | 'closed';

/** Options of one subscription. */
export interface SubscribeOptions {
  /**
   * Called when the server refuses the subscription (`ClientError` `SUBSCRIBE_REFUSED`, its
   * `context.serverCode` e.g. `UNAUTHORIZED`); the subscription is then ended.
   * @default - the client's `onError`
   */
  readonly onError?: (error: ClientError) => void;
}

/** Reconnection backoff: full jitter over an exponential ceiling. */
export interface ReconnectOptions {
  /** Ceiling of the first delay. @default 500 */
  readonly initialDelayMs?: number;
  /** Largest ceiling. @default 30_000 */
  readonly maxDelayMs?: number;
}

/** Options of {@link createLiveClient}. */
export interface LiveClientOptions {
  /** The WebSocket URL, `wss://…` on AWS (the stack output), `ws://127.0.0.1:…` locally. */
  readonly url: string;
  /**
   * Token the connection's authorizer checks, sent as the `token` query parameter. A function is
   * called for every (re)connection, so a refreshed token is used.
   * @default - no token
   */
  readonly token?: string | (() => string | Promise<string>);
  /**
   * WebSocket implementation, for runtimes without a global one (Node 20: the `ws` package).
   * @default globalThis.WebSocket
   */
  readonly WebSocket?: WebSocketConstructor;
  readonly reconnect?: ReconnectOptions;
  /**
   * Called for errors that belong to no one call: a malformed frame, a refused subscription
   * without its own `onError`, a token function that threw.
   * @default - nothing (errors are dropped)
   */
  readonly onError?: (error: ClientError) => void;
  /** Called when the connection's status changes. @default - nothing */
  readonly onStatus?: (status: LiveStatus) => void;
}

/** A live client: subscriptions over one WebSocket connection. */
export interface LiveClient<Views extends LiveViews = LiveViews> {
  /**
   * Subscribes to keys of a view: `onChange` gets a snapshot of each key first (version 0 and
   * no state for a key without an item), then every later state, in version order per key,
   * never one older than a state already shown. A gap (a lost message, a reconnection) is
   * repaired from a fresh snapshot.
   */
  subscribe<N extends keyof Views & string>(
    view: N,
    target: LiveTarget,
    onChange: (update: LiveUpdate<Views[N]>) => void,
    options?: SubscribeOptions,
  ): Unsubscribe;
  subscribe<S>(view: LiveView<S>, target: LiveTarget, onChange: (update: LiveUpdate<S>) => void, options?: SubscribeOptions): Unsubscribe;
  /** Where the connection is. */
  readonly status: LiveStatus;
  /** Closes the connection and ends every subscription. */
  close(): void;
}

/** The first reconnection waits up to this long: quick after a blip. */
export const DEFAULT_RECONNECT_INITIAL_DELAY_MS = 500;
/** The longest wait between reconnection attempts (the protocol's cap). */
export const DEFAULT_RECONNECT_MAX_DELAY_MS = 30_000;
/**
 * Changes held while a subscription's snapshot is still arriving (they are judged against it
 * once it is complete). Past it the subscription starts over with a fresh snapshot.
 */
export const MAX_PENDING_CHANGES = 10_000;

/**
 * Delay before reconnection attempt `attempt` (0 for the first): a uniform draw between 0 and
 * `min(maxDelayMs, initialDelayMs * 2^attempt)` ("full jitter"), so clients dropped together do
 * not come back together.
 */
export function reconnectDelayMs(attempt: number, options: ReconnectOptions = {}, random: () => number = Math.random): number {
  const initial = options.initialDelayMs ?? DEFAULT_RECONNECT_INITIAL_DELAY_MS;
  const max = options.maxDelayMs ?? DEFAULT_RECONNECT_MAX_DELAY_MS;
  const ceiling = Math.min(max, initial * 2 ** Math.min(attempt, 30));
  return Math.floor(random() * ceiling);
}

/** One subscription as the client keeps it across connections. */
interface Subscription {
  readonly view: string;
  readonly target: { readonly keys: readonly string[] } | { readonly prefix: string };
  readonly onChange: (update: LiveUpdate<unknown>) => void;
  readonly onError: ((error: ClientError) => void) | undefined;
  /** Per item (`key`, or `key` and window start). */
  readonly items: Map<string, { readonly key: string; readonly window?: WireWindow; readonly sequencer: ItemSequencer }>;
  /** Wire id of the subscription on the current connection, if subscribed. */
  mainId: string | undefined;
  /** Whether the main subscription's snapshot is complete on this connection. */
  snapshotDone: boolean;
  /** Changes that arrived before the snapshot was complete. */
  pending: ChangeFrame[];
  ended: boolean;
}

/** Where a wire id's frames go: a subscription's main id, or a one-key resubscription of it. */
interface Route {
  readonly subscription: Subscription;
  /** Set for a one-key resubscription after a gap. */
  readonly key?: string;
}

const itemId = (key: string, window: WireWindow | undefined): string => (window === undefined ? key : `${key}\u0000${window.start}`);

function keyProblem(key: unknown): string | undefined {
  if (typeof key === 'string') return undefined;
  if (typeof key === 'bigint') return undefined;
  if (typeof key === 'number' && Number.isFinite(key)) return undefined;
  return `a key must be a string, a finite number or a bigint, got ${typeof key === 'number' ? String(key) : typeof key}`;
}

function compileTarget(view: string, target: LiveTarget): Subscription['target'] {
  if (typeof target === 'object' && target !== null && !Array.isArray(target) && 'prefix' in target) {
    const prefix = (target as { prefix: unknown }).prefix;
    if (typeof prefix !== 'string') {
      throw new ClientError('INVALID_ARGUMENT', `subscribe("${view}"): { prefix } must be a string, got ${typeof prefix}`, { context: { view } });
    }
    return { prefix };
  }
  const keys = (Array.isArray(target) ? target : [target]) as readonly unknown[];
  if (keys.length === 0) {
    throw new ClientError('INVALID_ARGUMENT', `subscribe("${view}"): no keys given; pass a key, an array of keys or { prefix }`, { context: { view } });
  }
  for (const key of keys) {
    const problem = keyProblem(key);
    if (problem !== undefined) throw new ClientError('INVALID_ARGUMENT', `subscribe("${view}"): ${problem}`, { context: { view } });
  }
  return { keys: [...new Set(keys.map(String))] };
}

function textOf(data: unknown): string {
  if (typeof data === 'string') return data;
  if (data instanceof ArrayBuffer) return new TextDecoder().decode(data);
  if (ArrayBuffer.isView(data)) return new TextDecoder().decode(data as Uint8Array);
  return String(data);
}

const OPEN = 1;

/**
 * Creates a live client: one WebSocket connection (opened with the first subscription), its
 * subscriptions resubscribed after every reconnection (exponential backoff with full jitter,
 * capped at 30 s). Runs in browsers and in Node (22+ has a global `WebSocket`; on Node 20 pass
 * `WebSocket` from the `ws` package). Type it by the app's views to get typed states.
 *
 * @example
 * import { createLiveClient, type LiveViewStates } from 'tributary/client';
 * import type * as views from './views.ts';
 *
 * const live = createLiveClient<LiveViewStates<typeof views>>({ url: 'ws://127.0.0.1:3002', token });
 * const stop = live.subscribe('classAttendance', 'class-03', ({ state, version }) => {
 *   console.log(`v${version}: ${state?.booked ?? 0}/${state?.capacity ?? '?'} booked`);
 * });
 */
export function createLiveClient<Views extends LiveViews = LiveViews>(options: LiveClientOptions): LiveClient<Views> {
  const WebSocketImpl = options.WebSocket ?? (globalThis as { WebSocket?: WebSocketConstructor }).WebSocket;
  if (WebSocketImpl === undefined) {
    throw new ClientError(
      'NO_WEBSOCKET',
      'createLiveClient: this runtime has no global WebSocket (Node 20); pass one: createLiveClient({ url, WebSocket }) with `import WebSocket from "ws"`',
    );
  }
  let base: URL;
  try {
    base = new URL(options.url);
  } catch {
    throw new ClientError('INVALID_ARGUMENT', `createLiveClient: url ${JSON.stringify(options.url)} is not a URL; pass e.g. "wss://abc.execute-api.eu-west-1.amazonaws.com/live"`);
  }
  if (base.protocol !== 'ws:' && base.protocol !== 'wss:') {
    throw new ClientError('INVALID_ARGUMENT', `createLiveClient: url ${JSON.stringify(options.url)} is not a ws:// or wss:// URL`);
  }
  const reconnect = options.reconnect ?? {};
  for (const field of ['initialDelayMs', 'maxDelayMs'] as const) {
    const value = reconnect[field];
    if (value !== undefined && !(Number.isFinite(value) && value >= 0)) {
      throw new ClientError('INVALID_ARGUMENT', `createLiveClient: reconnect.${field} must be a number >= 0, got ${String(value)}`);
    }
  }

  const subscriptions = new Set<Subscription>();
  const routes = new Map<string, Route>();
  let socket: WebSocketLike | undefined;
  let status: LiveStatus = 'idle';
  let attempt = 0;
  let timer: ReturnType<typeof setTimeout> | undefined;
  let nextWireId = 0;
  let closed = false;

  const setStatus = (next: LiveStatus) => {
    if (status === next) return;
    status = next;
    options.onStatus?.(next);
  };
  const report = (error: ClientError, subscription?: Subscription) => {
    (subscription?.onError ?? options.onError)?.(error);
  };
  const send = (frame: object) => {
    if (socket !== undefined && socket.readyState === OPEN) socket.send(JSON.stringify(frame));
  };

  const sendSubscribe = (subscription: Subscription, key?: string): void => {
    const id = `w${++nextWireId}`;
    routes.set(id, key === undefined ? { subscription } : { subscription, key });
    if (key === undefined) {
      subscription.mainId = id;
      subscription.snapshotDone = false;
      subscription.pending = [];
    }
    const frame: SubscribeFrame =
      key !== undefined
        ? { action: 'subscribe', id, view: subscription.view, keys: [key] }
        : 'prefix' in subscription.target
          ? { action: 'subscribe', id, view: subscription.view, prefix: subscription.target.prefix }
          : { action: 'subscribe', id, view: subscription.view, keys: subscription.target.keys };
    send(frame);
  };
  const dropRoute = (id: string) => {
    if (routes.delete(id)) send({ action: 'unsubscribe', id });
  };

  const itemOf = (subscription: Subscription, key: string, window: WireWindow | undefined) => {
    const id = itemId(key, window);
    let item = subscription.items.get(id);
    if (item === undefined) {
      item = window === undefined ? { key, sequencer: new ItemSequencer() } : { key, window, sequencer: new ItemSequencer() };
      subscription.items.set(id, item);
    }
    return item;
  };
  const show = (subscription: Subscription, key: string, window: WireWindow | undefined, result: SequencerResult) => {
    if (subscription.ended) return;
    for (const shown of result.show) {
      subscription.onChange(toUpdate(subscription.view, key, window, shown));
    }
    // A gap: fetch this key afresh on its own, leaving the subscription's other keys alone.
    if (result.resync) sendSubscribe(subscription, key);
  };

  const applyChange = (subscription: Subscription, frame: ChangeFrame) => {
    const item = itemOf(subscription, frame.key, frame.window);
    show(subscription, frame.key, frame.window, item.sequencer.offerChange(frame));
  };
  const applySnapshotItem = (subscription: Subscription, snapshotItem: SnapshotItem) => {
    const item = itemOf(subscription, snapshotItem.key, snapshotItem.window);
    show(subscription, snapshotItem.key, snapshotItem.window, item.sequencer.offerSnapshot(snapshotItem));
  };

  const onFrame = (frame: ServerFrame) => {
    if (frame.type === 'error' && frame.id === undefined) {
      report(new ClientError('BAD_FRAME', `live server error ${frame.code}: ${frame.message}`, { context: { serverCode: frame.code } }));
      return;
    }
    if (frame.type === 'unsubscribed') return; // routes are dropped when the unsubscribe is sent
    const route = routes.get(frame.id as string);
    if (route === undefined) return; // a frame of a subscription already ended
    const { subscription } = route;
    switch (frame.type) {
      case 'snapshot': {
        for (const snapshotItem of frame.items) applySnapshotItem(subscription, snapshotItem);
        if (!frame.done) return;
        if (route.key !== undefined) {
          // The key's fresh snapshot is in: its own subscription has done its work.
          for (const item of subscription.items.values()) if (item.key === route.key) item.sequencer.resetResync();
          dropRoute(frame.id);
          return;
        }
        if (frame.id === subscription.mainId && !subscription.snapshotDone) {
          subscription.snapshotDone = true;
          const pending = subscription.pending;
          subscription.pending = [];
          for (const change of pending) applyChange(subscription, change);
        }
        return;
      }
      case 'change': {
        if (route.key === undefined && frame.id === subscription.mainId && !subscription.snapshotDone) {
          subscription.pending.push(frame);
          if (subscription.pending.length > MAX_PENDING_CHANGES) resubscribe(subscription);
          return;
        }
        applyChange(subscription, frame);
        return;
      }
      case 'resync':
        if (route.key !== undefined) {
          dropRoute(frame.id);
          sendSubscribe(subscription, route.key);
        } else {
          resubscribe(subscription);
        }
        return;
      case 'error': {
        const error = new ClientError(
          'SUBSCRIBE_REFUSED',
          `subscription to view "${subscription.view}" refused: ${frame.code}: ${frame.message}`,
          { context: { view: subscription.view, subscription: frame.id, serverCode: frame.code } },
        );
        end(subscription);
        report(error, subscription);
        return;
      }
    }
  };

  /** Starts a subscription over on this connection: a new wire id, a fresh snapshot. */
  const resubscribe = (subscription: Subscription) => {
    if (subscription.mainId !== undefined) dropRoute(subscription.mainId);
    for (const item of subscription.items.values()) item.sequencer.resetResync();
    sendSubscribe(subscription);
  };

  const end = (subscription: Subscription) => {
    if (subscription.ended) return;
    subscription.ended = true;
    subscriptions.delete(subscription);
    // The connection stays open with nothing to watch: a new subscription reuses it.
    for (const [id, route] of [...routes]) if (route.subscription === subscription) dropRoute(id);
  };

  const connect = async () => {
    setStatus(attempt === 0 && status !== 'reconnecting' ? 'connecting' : 'reconnecting');
    let url = base;
    if (options.token !== undefined) {
      let token: string;
      try {
        token = typeof options.token === 'function' ? await options.token() : options.token;
      } catch (cause) {
        report(new ClientError('INVALID_ARGUMENT', `createLiveClient: the token function threw: ${(cause as Error).message}`, { cause }));
        scheduleReconnect();
        return;
      }
      url = new URL(base);
      url.searchParams.set('token', token);
    }
    if (closed) return;
    const ws = new WebSocketImpl(url.toString());
    socket = ws;
    ws.onopen = () => {
      if (socket !== ws) return;
      attempt = 0;
      setStatus('open');
      for (const subscription of subscriptions) sendSubscribe(subscription);
    };
    ws.onmessage = (event) => {
      if (socket !== ws) return;
      const frame = parseServerFrame(textOf(event.data));
      if (typeof frame === 'string') {
        report(new ClientError('BAD_FRAME', `live server sent a malformed frame: ${frame}`));
        return;
      }
      onFrame(frame);
    };
    ws.onerror = () => {
      // A close event follows every error; reconnection starts there.
    };
    ws.onclose = () => {
      if (socket !== ws) return;
      socket = undefined;
      routes.clear();
      for (const subscription of subscriptions) {
        subscription.mainId = undefined;
        subscription.snapshotDone = false;
        subscription.pending = [];
        for (const item of subscription.items.values()) item.sequencer.resetResync();
      }
      scheduleReconnect();
    };
  };

  const scheduleReconnect = () => {
    if (closed) return;
    setStatus('reconnecting');
    const delay = reconnectDelayMs(attempt, reconnect);
    attempt += 1;
    timer = setTimeout(() => {
      timer = undefined;
      void connect();
    }, delay);
  };

  const subscribe = (
    view: string | LiveView<unknown>,
    target: LiveTarget,
    onChange: (update: LiveUpdate<unknown>) => void,
    subscribeOptions: SubscribeOptions = {},
  ): Unsubscribe => {
    if (closed) throw new ClientError('INVALID_ARGUMENT', 'subscribe: the client is closed; create a new one');
    const name = typeof view === 'string' ? view : view?.name;
    if (typeof name !== 'string' || name === '') {
      throw new ClientError('INVALID_ARGUMENT', `subscribe: view must be a view name or a view definition, got ${JSON.stringify(view)}`);
    }
    if (typeof onChange !== 'function') {
      throw new ClientError('INVALID_ARGUMENT', `subscribe("${name}"): onChange must be a function, got ${typeof onChange}`, { context: { view: name } });
    }
    const subscription: Subscription = {
      view: name,
      target: compileTarget(name, target),
      onChange,
      onError: subscribeOptions.onError,
      items: new Map(),
      mainId: undefined,
      snapshotDone: false,
      pending: [],
      ended: false,
    };
    subscriptions.add(subscription);
    if (socket === undefined && timer === undefined) void connect();
    else if (socket !== undefined && socket.readyState === OPEN) sendSubscribe(subscription);
    return () => end(subscription);
  };

  return {
    subscribe: subscribe as LiveClient<Views>['subscribe'],
    get status() {
      return status;
    },
    close() {
      if (closed) return;
      closed = true;
      if (timer !== undefined) clearTimeout(timer);
      timer = undefined;
      for (const subscription of [...subscriptions]) end(subscription);
      const open = socket;
      socket = undefined;
      routes.clear();
      open?.close(1000, 'client closed');
      setStatus('closed');
    },
  };
}

function toUpdate(view: string, key: string, window: WireWindow | undefined, shown: SequencedState): LiveUpdate<unknown> {
  return {
    view,
    key,
    ...(window === undefined ? {} : { window }),
    version: shown.version,
    state: shown.state,
    deleted: shown.deleted,
    source: shown.source,
  };
}
