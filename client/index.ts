/**
 * `tributary/client`: live subscriptions to views from browsers and services, over the live
 * WebSocket API (API Gateway on AWS, the local stack's emulator in development). No AWS SDK
 * inside. README.md ("Live subscriptions") shows it in use.
 */

// The client
export {
  createLiveClient,
  DEFAULT_RECONNECT_INITIAL_DELAY_MS,
  DEFAULT_RECONNECT_MAX_DELAY_MS,
  MAX_PENDING_CHANGES,
  reconnectDelayMs,
} from './internal/live-client.ts';
export type {
  LiveClient,
  LiveClientOptions,
  LiveKey,
  LiveStatus,
  LiveTarget,
  LiveUpdate,
  LiveView,
  LiveViews,
  LiveViewStates,
  ReconnectOptions,
  SubscribeOptions,
  Unsubscribe,
  WebSocketConstructor,
  WebSocketLike,
} from './internal/live-client.ts';

// The per-item rule (ordering, duplicates, gaps), for clients of other transports
export { ItemSequencer, MAX_BUFFERED_CHANGES } from './internal/sequencer.ts';
export type { SequencedChange, SequencedSnapshotItem, SequencedState, SequencerResult } from './internal/sequencer.ts';

// Wire protocol
export { decodeTaggedState, parseServerFrame } from './internal/protocol.ts';
export type {
  ChangeFrame,
  ErrorFrame,
  ResyncFrame,
  ServerFrame,
  SnapshotFrame,
  SnapshotItem,
  SubscribeFrame,
  UnsubscribedFrame,
  UnsubscribeFrame,
  WireWindow,
} from './internal/protocol.ts';

// Errors
export { ClientError } from './internal/errors.ts';
export type { ClientErrorCode, ClientErrorContext } from './internal/errors.ts';
