/**
 * Dead letters: poison records and undeliverable changes, and their encoding as Kafka
 * messages of the app's dead-letter topic. Pure; the runtime produces them.
 */
import type { SourceRecord } from '../../sdk/index.ts';
import type { ErrorInfo } from './errors.ts';

/** Why a record is poison for a view. */
export type PoisonCode =
  /** `decode` threw, or the record has no value. */
  | 'DECODE_FAILED'
  /** `filter` threw. */
  | 'FILTER_FAILED'
  /** The event failed the view's `schema` (or the schema validated asynchronously). */
  | 'SCHEMA_FAILED'
  /** `key` returned `undefined`, `null`, `''` or something that is not a string, bigint or finite number. */
  | 'KEY_MISSING'
  /** `key` returned a number past ±(2^53−1), which a double cannot hold exactly; return a bigint or a string. */
  | 'KEY_NOT_EXACT'
  /** `key` returned a string longer than `MAX_VIEW_KEY_BYTES` (1,000 UTF-8 bytes). */
  | 'KEY_TOO_LONG'
  /** `key` threw. */
  | 'KEY_FAILED'
  /** `reduce` (or `initial`) threw or returned `undefined`. */
  | 'REDUCE_FAILED'
  /** The state after this event is not JSON-serializable. */
  | 'STATE_NOT_SERIALIZABLE'
  /**
   * The state after this event holds what DynamoDB cannot store: a number that is not finite or
   * out of DynamoDB's range, an empty object key, the reserved key `$bigint`, nesting over 31 levels.
   */
  | 'STATE_NOT_STORABLE'
  /** The state after this event is larger than the view's `maxStateBytes`. */
  | 'STATE_TOO_LARGE'
  /** A windowed view's `timestamp` threw. */
  | 'TIMESTAMP_FAILED'
  /** A windowed view's event time (its `timestamp`, or the record timestamp) is not an integer of epoch ms from 0 to 999999999999999. */
  | 'TIMESTAMP_INVALID'
  /** Not poison, but sent the same way when the view's `onLate` is `'dead-letter'`: the event's window(s) had closed. */
  | 'LATE';

/** How late a late event was (dead letters of code `LATE`). */
export interface LateInfo {
  /** The event's time. */
  readonly eventTimeMs: number;
  /** The partition's stream time when the event was read. */
  readonly streamTimeMs: number;
  /** The closed windows the event was not applied to (it was applied to the open ones). */
  readonly windows: readonly { readonly start: number; readonly end: number }[];
  /** Stream time past the close (end + graceMs) of the latest of those windows. */
  readonly lateByMs: number;
}

/** One poison record for one view. */
export interface PoisonDeadLetter {
  readonly kind: 'poison';
  readonly code: PoisonCode;
  /** What was wrong, the value received and how to fix it. */
  readonly reason: string;
  readonly view: string;
  /** View key, when it was known. */
  readonly key?: string;
  readonly record: SourceRecord;
  /** The error thrown by user code, if any. */
  readonly error?: ErrorInfo;
  /** Code `LATE`: how late the event was. */
  readonly late?: LateInfo;
  /** The version of the view that found the record poison (replay only applies a letter to that version). */
  readonly viewVersion?: number;
  /** Set when a replay found the record still poison: the dead letter it replayed (replay.ts). */
  readonly replayOf?: { readonly partition: number; readonly offset: string };
}

/** A change a trigger could not deliver after its retries (or whose `when` threw). */
export interface TriggerDeadLetterEntry {
  readonly kind: 'trigger';
  readonly code: 'TRIGGER_DELIVERY_FAILED' | 'TRIGGER_WHEN_FAILED';
  readonly reason: string;
  readonly trigger: string;
  readonly view: string;
  readonly key: string;
  readonly function: string;
  readonly change: unknown;
  readonly attempts?: number;
  readonly error?: ErrorInfo;
}

/** Anything that goes to the dead-letter topic. */
export type DeadLetter = PoisonDeadLetter | TriggerDeadLetterEntry;

/** A Kafka message ready to produce (kafkajs `Message` shape). */
export interface DeadLetterMessage {
  readonly key: Buffer | null;
  readonly value: string;
  readonly headers: Record<string, string>;
}

/**
 * The largest dead-letter message the engine produces, and the largest group of them it sends
 * in one request. Apache Kafka refuses a record batch over `message.max.bytes` (1,048,588 by
 * default, MSK's too) with MESSAGE_TOO_LARGE, for good: a retry can never succeed. This leaves
 * room for the batch and record framing under that default.
 */
export const DEFAULT_DEAD_LETTER_MAX_BYTES = 1_000_000;

/** Bytes of a message as the broker counts them, near enough: key, value and headers. */
export function deadLetterBytes(message: DeadLetterMessage): number {
  let bytes = (message.key?.length ?? 0) + Buffer.byteLength(message.value);
  for (const [name, value] of Object.entries(message.headers)) bytes += Buffer.byteLength(name) + Buffer.byteLength(value);
  return bytes;
}

/**
 * Groups messages, in order, into sends of at most `maxBytes` each, so a batch of dead letters
 * never becomes one record batch the broker refuses.
 *
 * @example
 * for (const group of groupDeadLetters(messages, 1_000_000)) await producer.send({ topic, messages: group });
 */
export function groupDeadLetters(messages: readonly DeadLetterMessage[], maxBytes: number): DeadLetterMessage[][] {
  const groups: DeadLetterMessage[][] = [];
  let current: DeadLetterMessage[] = [];
  let currentBytes = 0;
  for (const message of messages) {
    const bytes = deadLetterBytes(message);
    if (current.length > 0 && currentBytes + bytes > maxBytes) {
      groups.push(current);
      current = [];
      currentBytes = 0;
    }
    current.push(message);
    currentBytes += bytes;
  }
  if (current.length > 0) groups.push(current);
  return groups;
}

/** Record coordinates in the usual `topic/partition@offset` form. */
export function coordinates(record: Pick<SourceRecord, 'topic' | 'partition' | 'offset'>): string {
  return `${record.topic}/${record.partition}@${record.offset}`;
}

/**
 * Encodes a dead letter as a message of the dead-letter topic: a JSON value with the reason,
 * code, view, source coordinates and the original key/value/headers in base64; headers carry
 * the code, view and coordinates so a consumer can route without parsing.
 *
 * A message that would pass `maxBytes` drops the bulky part and says so in `omitted`: for a
 * poison record its original value (and headers), which stay readable in the source topic at
 * the coordinates the letter carries; for a change its `before` and `after`, which the view item
 * and the change's version identify. A letter is never refused by the broker for its size.
 *
 * @example
 * await producer.send({ topic: app.deadLetterTopic, messages: letters.map((l) => encodeDeadLetter(app.name, l)) });
 */
export function encodeDeadLetter(appName: string, letter: DeadLetter, now: Date = new Date(), maxBytes: number = DEFAULT_DEAD_LETTER_MAX_BYTES): DeadLetterMessage {
  const message = encodeWhole(appName, letter, now);
  if (deadLetterBytes(message) <= maxBytes) return message;
  const value = JSON.parse(message.value) as Record<string, unknown>;
  const bytes = deadLetterBytes(message);
  if (letter.kind === 'poison') {
    const original = value.original as Record<string, unknown>;
    value.original = { key: original.key, value: null, headers: {} };
    value.omitted = {
      fields: ['original.value', 'original.headers'],
      reason: `the dead letter would be ${bytes} bytes, over the ${maxBytes}-byte limit; read the record at ${coordinates(letter.record)} while the topic retains it`,
      originalValueBytes: letter.record.value?.length ?? 0,
    };
  } else {
    const change = (value.change ?? {}) as Record<string, unknown>;
    const { before: _before, after: _after, ...rest } = change;
    value.change = rest;
    value.omitted = {
      fields: ['change.before', 'change.after'],
      reason: `the dead letter would be ${bytes} bytes, over the ${maxBytes}-byte limit; the view item holds the state of this key, and the change's version says which one it was`,
    };
  }
  return { ...message, value: JSON.stringify(value) };
}

function encodeWhole(appName: string, letter: DeadLetter, now: Date): DeadLetterMessage {
  if (letter.kind === 'poison') {
    const { record } = letter;
    const headers: Record<string, string> = {};
    for (const [name, value] of Object.entries(record.headers)) {
      if (value !== undefined) headers[name] = value.toString('base64');
    }
    const value = {
      kind: 'poison',
      app: appName,
      code: letter.code,
      reason: letter.reason,
      view: letter.view,
      ...(letter.key !== undefined ? { key: letter.key } : {}),
      source: {
        topic: record.topic,
        partition: record.partition,
        offset: record.offset,
        timestampMs: record.timestampMs,
      },
      original: {
        key: record.key === null ? null : record.key.toString('base64'),
        value: record.value === null ? null : record.value.toString('base64'),
        headers,
      },
      ...(letter.error !== undefined ? { error: letter.error } : {}),
      ...(letter.late !== undefined ? { late: letter.late } : {}),
      ...(letter.viewVersion !== undefined ? { viewVersion: letter.viewVersion } : {}),
      ...(letter.replayOf !== undefined ? { replayOf: letter.replayOf } : {}),
      deadLetteredAt: now.toISOString(),
    };
    return {
      key: record.key,
      value: JSON.stringify(value),
      headers: {
        'tributary-kind': 'poison',
        'tributary-code': letter.code,
        'tributary-view': letter.view,
        'tributary-source': coordinates(record),
      },
    };
  }
  const value = {
    kind: 'trigger',
    app: appName,
    code: letter.code,
    reason: letter.reason,
    trigger: letter.trigger,
    view: letter.view,
    key: letter.key,
    function: letter.function,
    change: letter.change,
    ...(letter.attempts !== undefined ? { attempts: letter.attempts } : {}),
    ...(letter.error !== undefined ? { error: letter.error } : {}),
    deadLetteredAt: now.toISOString(),
  };
  return {
    key: Buffer.from(`${letter.view}#${letter.key}`),
    value: JSON.stringify(value),
    headers: {
      'tributary-kind': 'trigger',
      'tributary-code': letter.code,
      'tributary-view': letter.view,
      'tributary-trigger': letter.trigger,
    },
  };
}
