/**
 * The wire protocol of live subscriptions (JSON text frames), as the server side (`live/`) and
 * the local WebSocket emulator speak it. docs/architecture.md ("Live subscriptions") is the
 * reference; this module only types and checks the frames the client sends and receives.
 */

/** Bounds of a window, `start` inclusive and `end` exclusive, epoch ms. */
export interface WireWindow {
  readonly start: number;
  readonly end: number;
}

/** Client → server: subscribe to keys or to a key prefix of one view. */
export type SubscribeFrame =
  | { readonly action: 'subscribe'; readonly id: string; readonly view: string; readonly keys: readonly string[] }
  | { readonly action: 'subscribe'; readonly id: string; readonly view: string; readonly prefix: string };

/** Client → server: end a subscription. */
export interface UnsubscribeFrame {
  readonly action: 'unsubscribe';
  readonly id: string;
}

/** One item of a snapshot: `version` 0 and `state` null for an absent key. */
export interface SnapshotItem {
  readonly key: string;
  readonly version: number;
  readonly state: unknown;
  readonly window?: WireWindow;
  /** The view's definition version, when the server sends it (absent: version 1). */
  readonly viewVersion?: number;
}

/** Server → client: the current state of a subscription's keys; `done` on its last frame. */
export interface SnapshotFrame {
  readonly type: 'snapshot';
  readonly id: string;
  readonly items: readonly SnapshotItem[];
  readonly done: boolean;
}

/** Server → client: one change of one item. */
export interface ChangeFrame {
  readonly type: 'change';
  readonly id: string;
  readonly view: string;
  readonly key: string;
  readonly version: number;
  /** Version of the state the change starts from, as last delivered; absent for a new item. */
  readonly beforeVersion?: number;
  readonly state?: unknown;
  readonly deleted?: boolean;
  readonly window?: WireWindow;
  readonly viewVersion?: number;
}

/** Server → client: a subscription was refused or failed. */
export interface ErrorFrame {
  readonly type: 'error';
  readonly id?: string;
  readonly code: string;
  readonly message: string;
}

/** Server → client: messages of a subscription were dropped; resubscribe for a fresh snapshot. */
export interface ResyncFrame {
  readonly type: 'resync';
  readonly id: string;
  readonly reason?: string;
}

/** Server → client: an `unsubscribe` was done. */
export interface UnsubscribedFrame {
  readonly type: 'unsubscribed';
  readonly id: string;
}

/** Every frame the server sends. */
export type ServerFrame = SnapshotFrame | ChangeFrame | ErrorFrame | ResyncFrame | UnsubscribedFrame;

/** The key of a bigint's tagged JSON form, `{ "$bigint": "<decimal>" }`, as states are stored and sent. */
const BIGINT_TAG = '$bigint';

/**
 * Turns the tagged bigints of a state received (`{ "$bigint": "9007199254740993" }`) back into
 * `bigint`, as the SDK's reads do; returns `value` itself when it holds none.
 */
export function decodeTaggedState(value: unknown): unknown {
  if (value === null || typeof value !== 'object') return value;
  if (Array.isArray(value)) {
    let out: unknown[] | undefined;
    value.forEach((element, i) => {
      const decoded = decodeTaggedState(element);
      if (decoded !== element) (out ??= [...value])[i] = decoded;
    });
    return out ?? value;
  }
  const fields = Object.keys(value);
  const tag = (value as Record<string, unknown>)[BIGINT_TAG];
  if (fields.length === 1 && typeof tag === 'string' && /^-?\d+$/.test(tag)) return BigInt(tag);
  let out: Record<string, unknown> | undefined;
  for (const [name, field] of Object.entries(value)) {
    const decoded = decodeTaggedState(field);
    if (decoded !== field) (out ??= { ...value })[name] = decoded;
  }
  return out ?? value;
}

const isObject = (value: unknown): value is Record<string, unknown> =>
  typeof value === 'object' && value !== null && !Array.isArray(value);

const isVersion = (value: unknown): value is number => typeof value === 'number' && Number.isInteger(value) && value >= 0;

const isWindow = (value: unknown): boolean =>
  value === undefined || (isObject(value) && typeof value.start === 'number' && typeof value.end === 'number');

function snapshotItemProblem(item: unknown): string | undefined {
  if (!isObject(item)) return 'an item is not an object';
  if (typeof item.key !== 'string') return 'an item has no string "key"';
  if (!isVersion(item.version)) return `item "${item.key}" has no integer "version" >= 0`;
  if (!isWindow(item.window)) return `item "${item.key}" has a malformed "window"`;
  return undefined;
}

/**
 * Parses one text frame from the server. Returns the frame, or a string saying what is wrong
 * with it (the client reports it and goes on: one bad frame never stops the others).
 */
export function parseServerFrame(text: string): ServerFrame | string {
  let frame: unknown;
  try {
    frame = JSON.parse(text);
  } catch (error) {
    return `not JSON (${(error as Error).message})`;
  }
  if (!isObject(frame)) return 'not a JSON object';
  switch (frame.type) {
    case 'snapshot': {
      if (typeof frame.id !== 'string') return 'a snapshot frame has no string "id"';
      if (!Array.isArray(frame.items)) return `snapshot "${frame.id}" has no "items" array`;
      for (const item of frame.items) {
        const problem = snapshotItemProblem(item);
        if (problem !== undefined) return `snapshot "${frame.id}": ${problem}`;
      }
      const items = (frame.items as SnapshotItem[]).map((item) => ({ ...item, state: decodeTaggedState(item.state) }));
      return { type: 'snapshot', id: frame.id, items, done: frame.done !== false };
    }
    case 'change': {
      if (typeof frame.id !== 'string') return 'a change frame has no string "id"';
      if (typeof frame.key !== 'string') return `change of subscription "${frame.id}" has no string "key"`;
      if (!isVersion(frame.version)) return `change of key "${frame.key}" has no integer "version" >= 0`;
      if (frame.beforeVersion !== undefined && !isVersion(frame.beforeVersion)) {
        return `change of key "${frame.key}" has a "beforeVersion" that is not an integer >= 0`;
      }
      if (!isWindow(frame.window)) return `change of key "${frame.key}" has a malformed "window"`;
      return { ...(frame as unknown as ChangeFrame), ...(frame.state === undefined ? {} : { state: decodeTaggedState(frame.state) }) };
    }
    case 'error':
      if (typeof frame.code !== 'string') return 'an error frame has no string "code"';
      return {
        type: 'error',
        ...(typeof frame.id === 'string' ? { id: frame.id } : {}),
        code: frame.code,
        message: typeof frame.message === 'string' ? frame.message : '',
      };
    case 'unsubscribed':
      if (typeof frame.id !== 'string') return 'an unsubscribed frame has no string "id"';
      return { type: 'unsubscribed', id: frame.id };
    case 'resync':
      if (typeof frame.id !== 'string') return 'a resync frame has no string "id"';
      return { type: 'resync', id: frame.id, ...(typeof frame.reason === 'string' ? { reason: frame.reason } : {}) };
    default:
      return `unknown frame type ${JSON.stringify(frame.type)}`;
  }
}
