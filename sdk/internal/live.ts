/**
 * What the app definition says about live subscriptions (README, "Live subscriptions"): which
 * views browsers and services may watch, who may watch which keys, and the built-in fan-out
 * trigger that carries a live view's changes to its subscribers. The handlers themselves are in
 * `live/`; the function names and the storage rows here are what the engine, the handlers, the
 * local stack and the CDK app share.
 */
import type { Trigger, View } from './define.ts';
import { DefinitionError } from './errors.ts';

/**
 * Who a connection is: what the `$connect` authorizer admitted it as (a JWT's claims, an IAM
 * identity, or what a local authorizer returned). Plain JSON.
 */
export type LivePrincipal = Readonly<Record<string, unknown>>;

/** Options of a live view (`defineView({ live })`). */
export interface LiveViewOptions {
  /**
   * Whether `principal` may watch `key` (a prefix subscription asks with the prefix). Runs in
   * the subscribe handler for each key; a refusal is the `UNAUTHORIZED` error frame.
   * @default every connected principal may watch every key
   */
  readonly authorize?: (principal: LivePrincipal, key: string) => boolean | Promise<boolean>;
}

/** A view's compiled live options. */
export interface LiveView {
  readonly authorize: (principal: LivePrincipal, key: string) => boolean | Promise<boolean>;
}

/** Options of `defineApp({ live })`: the fan-out trigger's batching. */
export interface LiveAppOptions {
  /**
   * Changes per fan-out invocation.
   * @default 100
   */
  readonly batchSize?: number;
  /**
   * Fan-out invocations in flight at once per live view.
   * @default 8
   */
  readonly concurrency?: number;
}

/** The live part of a compiled app. */
export interface LiveApp {
  /** Names of the live views. */
  readonly views: readonly string[];
}

/**
 * Logical names of the live Lambda functions: the engine resolves `fanout` like any trigger's
 * function (`TRIBUTARY_FUNCTION_NAMES`), the local stack registers and routes to these names,
 * the CDK app deploys them.
 */
export const LIVE_FUNCTIONS = {
  authorizer: 'tributary-live-authorizer',
  connect: 'tributary-live-connect',
  disconnect: 'tributary-live-disconnect',
  subscribe: 'tributary-live-subscribe',
  fanout: 'tributary-live-fanout',
} as const;

/** The WebSocket API's routes (route key → function), as the local emulator and the CDK app wire them. */
export const LIVE_ROUTES: Readonly<Record<string, string>> = Object.freeze({
  $connect: LIVE_FUNCTIONS.connect,
  $disconnect: LIVE_FUNCTIONS.disconnect,
  subscribe: LIVE_FUNCTIONS.subscribe,
  unsubscribe: LIVE_FUNCTIONS.subscribe,
});

/** Name of the built-in fan-out trigger of a live view. */
export function liveTriggerName(view: string): string {
  return `live-${view}`;
}

const allowEveryone = (): boolean => true;

/** Compiles `defineView({ live })`, or throws why it is wrong; undefined for a view that is not live. */
export function compileLiveView(name: string, live: true | LiveViewOptions | undefined): LiveView | undefined {
  if (live === undefined) return undefined;
  if (live === true) return Object.freeze({ authorize: allowEveryone });
  if (live === null || typeof live !== 'object') {
    throw new DefinitionError(`view "${name}": live must be true or { authorize }, received ${JSON.stringify(live)}`, { view: name });
  }
  if (live.authorize !== undefined && typeof live.authorize !== 'function') {
    throw new DefinitionError(`view "${name}": live.authorize must be a function (principal, key) => boolean, received ${typeof live.authorize}`, {
      view: name,
    });
  }
  return Object.freeze({ authorize: live.authorize ?? allowEveryone });
}

/**
 * The built-in fan-out triggers of an app's live views (`changes: 'coalesced'`: a subscriber
 * wants the latest state, and `beforeVersion` lets it tell a skip from a gap).
 */
export function compileLiveApp(
  views: readonly View<any, any>[],
  options: LiveAppOptions | undefined,
  defineTrigger: (options: { view: View<any, any>; function: string; name: string; changes: 'coalesced'; batchSize?: number; concurrency?: number }) => Trigger<any>,
): { live: LiveApp | undefined; triggers: Trigger<any>[] } {
  const live = views.filter((view) => view.live !== undefined);
  if (live.length === 0) return { live: undefined, triggers: [] };
  const triggers = live.map((view) =>
    defineTrigger({
      view,
      function: LIVE_FUNCTIONS.fanout,
      name: liveTriggerName(view.name),
      changes: 'coalesced',
      ...(options?.batchSize !== undefined ? { batchSize: options.batchSize } : {}),
      ...(options?.concurrency !== undefined ? { concurrency: options.concurrency } : {}),
    }),
  );
  return { live: Object.freeze({ views: live.map((v) => v.name) }), triggers };
}

/**
 * Prefix of every live row's `pk` in the views table (docs/architecture.md, "Storage layout"):
 * only the live handlers write under it.
 */
export const LIVE_PK_PREFIX = 'live#';
/** API Gateway closes a WebSocket connection after 2 h; live rows outlive it, then TTL removes them. */
export const LIVE_ROW_TTL_S = 24 * 60 * 60;
/** The pk of a connection's rows (`sk = "_"`: the connection; `sk = "s#<id>"`: what a subscription wrote). */
export const connectionPk = (connectionId: string): string => `${LIVE_PK_PREFIX}c#${connectionId}`;
/** The pk of a (view, key)'s subscriptions (`sk = <connectionId>#<subscription>`). */
export const keySubscriptionsPk = (view: string, key: string): string => `${LIVE_PK_PREFIX}s#${view}#${key}`;
/** The pk of a view's prefix subscriptions (`sk = <prefix>#<connectionId>#<subscription>`). */
export const prefixSubscriptionsPk = (view: string): string => `${LIVE_PK_PREFIX}p#${view}`;
