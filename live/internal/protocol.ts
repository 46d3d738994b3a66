/**
 * The live wire protocol (README, "Live subscriptions"), as pure functions: what a client's
 * frame asks for, and the frames the server sends (snapshots split under API Gateway's frame
 * limits, changes, errors). No I/O here; the handlers send what these build.
 */
import type { Change } from '../../sdk/index.ts';

/** What a subscription watches: a list of keys, or every key starting with a prefix. */
export type LiveTarget = { readonly keys: readonly string[] } | { readonly prefix: string };

/** A client's request, parsed and checked. */
export type LiveRequest =
  | { readonly action: 'subscribe'; readonly id: string; readonly view: string; readonly target: LiveTarget }
  | { readonly action: 'unsubscribe'; readonly id: string };

/** Codes of the `error` frame. */
export type LiveErrorFrameCode = 'UNAUTHORIZED' | 'BAD_REQUEST' | 'UNKNOWN_VIEW' | 'TOO_MANY_SUBSCRIPTIONS' | 'TOO_LARGE';

/** At most this many keys in one subscribe (its rows and snapshot stay one handler's work). */
export const MAX_KEYS_PER_SUBSCRIPTION = 100;
/** At most this many subscriptions per connection. */
export const MAX_SUBSCRIPTIONS_PER_CONNECTION = 100;
/** API Gateway's limit of one WebSocket frame (and of one PostToConnection). */
export const MAX_FRAME_BYTES = 128 * 1024;
/** Snapshot frames aim under API Gateway's 32 KB frame chunk, so a client gets them unfragmented. */
export const SNAPSHOT_FRAME_BYTES = 32 * 1024;
const SUBSCRIPTION_ID = /^[A-Za-z0-9_.:-]{1,64}$/;

/** A parsed request, or the `error` frame that answers a malformed one. */
export function parseRequest(body: string | undefined): { request: LiveRequest } | { error: { id?: string; code: 'BAD_REQUEST'; message: string } } {
  let frame: Record<string, unknown>;
  try {
    frame = JSON.parse(body ?? '') as Record<string, unknown>;
  } catch {
    return { error: { code: 'BAD_REQUEST', message: `a frame must be JSON, received ${JSON.stringify(String(body).slice(0, 100))}` } };
  }
  if (frame === null || typeof frame !== 'object' || Array.isArray(frame)) {
    return { error: { code: 'BAD_REQUEST', message: `a frame must be a JSON object with "action", received ${JSON.stringify(frame)}` } };
  }
  const id = frame.id;
  if (typeof id !== 'string' || !SUBSCRIPTION_ID.test(id)) {
    return { error: { code: 'BAD_REQUEST', message: `"id" must be 1-64 letters, digits, "_", ".", ":" or "-", received ${JSON.stringify(id)}` } };
  }
  if (frame.action === 'unsubscribe') return { request: { action: 'unsubscribe', id } };
  if (frame.action !== 'subscribe') {
    return { error: { id, code: 'BAD_REQUEST', message: `"action" must be "subscribe" or "unsubscribe", received ${JSON.stringify(frame.action)}` } };
  }
  if (typeof frame.view !== 'string' || frame.view === '') {
    return { error: { id, code: 'BAD_REQUEST', message: `subscribe "${id}": "view" must be a view name, received ${JSON.stringify(frame.view)}` } };
  }
  const hasKeys = frame.keys !== undefined;
  const hasPrefix = frame.prefix !== undefined;
  if (hasKeys === hasPrefix) {
    return { error: { id, code: 'BAD_REQUEST', message: `subscribe "${id}": give exactly one of "keys" (a list of keys) or "prefix" (a string)` } };
  }
  if (hasPrefix) {
    if (typeof frame.prefix !== 'string') {
      return { error: { id, code: 'BAD_REQUEST', message: `subscribe "${id}": "prefix" must be a string, received ${JSON.stringify(frame.prefix)}` } };
    }
    return { request: { action: 'subscribe', id, view: frame.view, target: { prefix: frame.prefix } } };
  }
  const keys = frame.keys;
  if (!Array.isArray(keys) || keys.length === 0 || keys.some((k) => (typeof k !== 'string' && typeof k !== 'number') || k === '')) {
    return { error: { id, code: 'BAD_REQUEST', message: `subscribe "${id}": "keys" must be a non-empty list of keys (strings or numbers), received ${JSON.stringify(keys).slice(0, 200)}` } };
  }
  if (keys.length > MAX_KEYS_PER_SUBSCRIPTION) {
    return {
      error: { id, code: 'BAD_REQUEST', message: `subscribe "${id}": ${keys.length} keys, at most ${MAX_KEYS_PER_SUBSCRIPTION} per subscription; split them over several subscriptions or use a prefix` },
    };
  }
  return { request: { action: 'subscribe', id, view: frame.view, target: { keys: [...new Set(keys.map(String))] } } };
}

/** One item of a snapshot: an absent key is version 0 with state null. */
export interface SnapshotItem {
  readonly key: string;
  readonly version: number;
  /** The state in its tagged JSON form (bigints as `{"$bigint":"…"}`), null when absent. */
  readonly state: unknown;
  /** For a windowed view: the window of this item (a key's snapshot is its newest window). */
  readonly window?: { readonly start: number; readonly end: number };
}

/**
 * The snapshot frames of a subscription: items packed up to {@link SNAPSHOT_FRAME_BYTES} per
 * frame, `done` on the last; an item whose frame alone passes {@link MAX_FRAME_BYTES} becomes a
 * `TOO_LARGE` error frame instead (returned in `tooLarge`).
 */
export function snapshotFrames(id: string, items: readonly SnapshotItem[], done = true): { frames: string[]; tooLarge: string[] } {
  const frames: string[] = [];
  const tooLarge: string[] = [];
  const envelope = (parts: string[], last: boolean) => `{"type":"snapshot","id":${JSON.stringify(id)},"items":[${parts.join(',')}],"done":${last}}`;
  const overhead = Buffer.byteLength(envelope([], false)) + 1;
  let parts: string[] = [];
  let bytes = overhead;
  for (const item of items) {
    const json = JSON.stringify({ key: item.key, version: item.version, state: item.state, ...(item.window !== undefined ? { window: item.window } : {}) });
    const size = Buffer.byteLength(json) + 1;
    if (size + overhead > MAX_FRAME_BYTES) {
      tooLarge.push(errorFrame(id, 'TOO_LARGE', `key "${item.key}": its state is ${size} bytes, more than one ${MAX_FRAME_BYTES}-byte frame holds`));
      continue;
    }
    if (parts.length > 0 && bytes + size > SNAPSHOT_FRAME_BYTES) {
      frames.push(envelope(parts, false));
      parts = [];
      bytes = overhead;
    }
    parts.push(json);
    bytes += size;
  }
  if (parts.length > 0 || done) frames.push(envelope(parts, done));
  return { frames, tooLarge };
}

/** The `change` frame of one subscription. */
export function changeFrame(id: string, change: Change): string {
  return JSON.stringify({
    type: 'change',
    id,
    view: change.view,
    key: change.key,
    version: change.version,
    ...(change.beforeVersion !== undefined ? { beforeVersion: change.beforeVersion } : {}),
    ...(change.viewVersion !== undefined ? { viewVersion: change.viewVersion } : {}),
    ...(change.window !== undefined ? { window: { start: change.window.start, end: change.window.end } } : {}),
    ...(change.deleted === true || change.after === undefined ? { deleted: true } : { state: change.after }),
  });
}

/** An `error` frame. */
export function errorFrame(id: string | undefined, code: LiveErrorFrameCode | 'BAD_REQUEST', message: string): string {
  return JSON.stringify({ type: 'error', ...(id !== undefined ? { id } : {}), code, message });
}

/** A `resync` frame: the client must resubscribe for a fresh snapshot. */
export function resyncFrame(id: string, reason: string): string {
  return JSON.stringify({ type: 'resync', id, reason });
}
