/**
 * Live subscriptions, server side (README, "Live subscriptions"): the Lambda handlers of the
 * WebSocket API (authorizer, connect, disconnect, subscribe) and of the live views' fan-out
 * trigger, built from the app definition, and the wire protocol's frames.
 */

// Handlers
export { createLiveHandlers, registerLiveHandlers, DEFAULT_POST_CONCURRENCY } from './internal/handlers.ts';
export type { LambdaRegistry, LiveHandlers, LiveHandlersOptions } from './internal/handlers.ts';

// Tokens
export { signLiveToken } from './internal/auth.ts';
export type { LiveAuthOptions, SignLiveTokenOptions, AuthorizerPolicy } from './internal/auth.ts';

// Wire protocol
export {
  MAX_FRAME_BYTES,
  MAX_KEYS_PER_SUBSCRIPTION,
  MAX_SUBSCRIPTIONS_PER_CONNECTION,
  SNAPSHOT_FRAME_BYTES,
  changeFrame,
  parseRequest,
  snapshotFrames,
} from './internal/protocol.ts';
export type { LiveErrorFrameCode, LiveRequest, LiveTarget, SnapshotItem } from './internal/protocol.ts';

// Storage rows (under `live#`)
export { LiveSubscriptions } from './internal/subscriptions.ts';
export type { Subscriber } from './internal/subscriptions.ts';

// Errors
export { LiveError } from './internal/errors.ts';
export type { LiveErrorCode } from './internal/errors.ts';
