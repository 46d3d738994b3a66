import type { StandardSchemaV1 } from '@standard-schema/spec';

/**
 * View, trigger and app definitions: the contract shared by the engine (which folds),
 * the functions (which read and react), the local stack and the CDK app (which deploy).
 *
 * Everything here is pure data plus user callbacks; no I/O.
 */

/** Coordinates and raw content of one Kafka record, as handed to user callbacks. */
export interface SourceRecord {
  readonly topic: string;
  readonly partition: number;
  /** Kafka offset as a decimal string (offsets are int64). */
  readonly offset: string;
  readonly key: Buffer | null;
  readonly value: Buffer | null;
  /** Record timestamp in epoch milliseconds. */
  readonly timestampMs: number;
  readonly headers: Readonly<Record<string, Buffer | undefined>>;
}

/** Turns a raw record value into an event. Throwing marks the record as poison. */
export type Decoder<E> = (value: Buffer, record: SourceRecord) => E;

/**
 * A view key: a string (`''` included), a `bigint`, or a finite number within ±(2^53−1) (a larger
 * number is refused, since a double cannot tell 9007199254740992 from 9007199254740993).
 * Numbers and bigints are stored in their decimal form, so `5` and `5n` name the same item.
 */
export type ViewKey = string | number | bigint;

/**
 * The built-in JSON decoders of a view's `decode`:
 * - `'json'`: `JSON.parse` of the UTF-8 value, except that an integer a double cannot hold
 *   exactly (e.g. 9007199254740993) makes the record poison (`DECODE_FAILED`) instead of being
 *   rounded;
 * - `'json-bigint'`: integers past ±(2^53−1) decode to `bigint`, exactly; a non-integer a double
 *   cannot hold without losing digits makes the record poison.
 */
export type JsonDecoding = 'json' | 'json-bigint';

/** A Standard Schema (zod, valibot, arktype, ...) whose output is the event type `E`. */
export type EventSchema<E> = StandardSchemaV1<unknown, E>;

/** What a view build folds: the whole topic, or what it still retains. */
export type ViewBackfill = 'all' | 'retained';

/** What to do with a poison record (undecodable, no key, throwing reducer, oversized state). */
export type PoisonPolicy = 'dead-letter' | 'stop';

/** Bounds of one window in epoch milliseconds: `start` inclusive, `end` exclusive. */
export interface WindowBounds {
  readonly start: number;
  readonly end: number;
}

/**
 * A window as the {@link tumbling}, {@link hopping} and {@link session} helpers describe it,
 * before `defineView` compiles it with the view's grace period, retention and emission.
 */
export type WindowSpec =
  | { readonly kind: 'tumbling'; readonly sizeMs: number }
  | { readonly kind: 'hopping'; readonly sizeMs: number; readonly advanceMs: number }
  | { readonly kind: 'session'; readonly gapMs: number };

/**
 * When a windowed view's triggers hear of a window: `'changes'`, every update of it (like an
 * unwindowed view); `'final'`, exactly one change per window, with `final: true`, once it has
 * closed (stream time past its end plus `graceMs`), never before.
 */
export type WindowEmit = 'changes' | 'final';

/**
 * What happens to a late event (one whose window has closed): `'dead-letter'`, counted and sent
 * to the dead-letter topic with code `LATE` and how late it was; `'drop'`, counted only.
 */
export type LatePolicy = 'drop' | 'dead-letter';

/** The event time of an event, in epoch milliseconds (a non-negative integer). */
export type EventTime<E> = (event: E, record: SourceRecord) => number;

/** What every compiled window has, whatever its kind. Durations in milliseconds. */
export interface WindowCommon {
  /** How long past a window's end (in stream time) events are still applied to it. */
  readonly graceMs: number;
  /** How long past its end a window is kept (its item's DynamoDB TTL); resolved, never undefined. */
  readonly retentionMs: number;
  readonly emit: WindowEmit;
  readonly onLate: LatePolicy;
  /** Wall-clock quiet time after which a partition's stream time advances by itself; undefined = never. */
  readonly idleCloseMs: number | undefined;
  /** Event time of an event; undefined = the record timestamp. */
  readonly timestamp: EventTime<any> | undefined;
}

/**
 * A view's window as compiled by `defineView` (the `tumbling`, `hopping` and `session` helpers
 * build it). Every duration is in milliseconds; `retentionMs` is resolved (never undefined).
 */
export type WindowDefinition =
  | (WindowCommon & { readonly kind: 'tumbling'; readonly sizeMs: number })
  | (WindowCommon & { readonly kind: 'hopping'; readonly sizeMs: number; readonly advanceMs: number })
  | (WindowCommon & { readonly kind: 'session'; readonly gapMs: number });

/** Options of {@link defineView}. */
export interface ViewOptions<E, S> {
  /** Unique name within the app: letters, digits, `_` and `-`. */
  readonly name: string;
  /** Source Kafka topic. */
  readonly source: string;
  /**
   * The version of this view's definition, an integer from 1. Bump it whenever a change of the
   * code changes what the view's state would be (reducer, key, initial state, filter, window):
   * the engine then builds the new version from the source topic's history instead of mixing
   * old and new states. The engine records each deployed version with a fingerprint of the
   * definition, and refuses to start when the fingerprint changed but the version did not
   * (README, "Changing a view").
   * @default 1
   */
  readonly version?: number;
  /**
   * What a build of this version (a new view, or a version bump) folds: `'all'`, the source
   * topic from its first record, and a build whose early records Kafka no longer has stops with
   * `BUILD_HISTORY_INCOMPLETE`, saying where history starts; `'retained'`, what the topic
   * still has (the view registry records from which offsets).
   * @default 'all'
   */
  readonly backfill?: ViewBackfill;
  /**
   * Turns the record value into an event: a function, or one of the built-in JSON decoders
   * ({@link JsonDecoding}; `'json-bigint'` to read integers past 2^53 exactly as `bigint`).
   * With a `schema`, its result is the schema's input.
   * @default 'json'
   */
  readonly decode?: Decoder<E> | JsonDecoding;
  /**
   * Validates each decoded event through the Standard Schema interface (zod, valibot, arktype);
   * the event type is the schema's output. An event it rejects is poison (`SCHEMA_FAILED`, with
   * the schema's messages and paths); the schema's output (with its defaults and transforms) is
   * what `filter`, `key` and `reduce` see. Validation runs synchronously: a schema that returns
   * a Promise (async refinements) makes its records poison too.
   * @default no validation
   */
  readonly schema?: EventSchema<E>;
  /**
   * Events for which this returns false are skipped (their offsets still count as applied).
   * @default every event is kept
   */
  readonly filter?: (event: E, record: SourceRecord) => boolean;
  /** The view key of an event. Returning `undefined`, `null` or `''` marks the record as poison. */
  readonly key: (event: E, record: SourceRecord) => ViewKey | undefined | null;
  /** The state of a key before its first event. A function, so each key gets a fresh object. */
  readonly initial: () => S;
  /** Folds one event into the state of its key. Must not mutate `state`; return a new value. */
  readonly reduce: (state: S, event: E, record: SourceRecord) => S;
  /**
   * Largest serialized state per item, in bytes. A state past it is poison, never truncated.
   * @default 100_000 (DynamoDB items are capped at 400 KB; this leaves room for bookkeeping)
   */
  readonly maxStateBytes?: number;
  /**
   * What a poison record does: go to the dead-letter topic and let processing continue, or stop the engine.
   * @default 'dead-letter'
   */
  readonly onPoison?: PoisonPolicy;
  /**
   * Makes the view windowed: one item per key and window, built with {@link tumbling},
   * {@link hopping} or {@link session}. Requires `graceMs`.
   * @default no window: one item per key
   */
  readonly window?: WindowSpec;
  /**
   * How long past a window's end, in stream time, its events are still applied; an event that
   * comes later is late. Required with `window`, and deliberately without a default: how out
   * of order a source is, and how long a result may wait for stragglers, is the app's decision
   * (a hidden default either drops data or delays every final result). 0 is allowed.
   */
  readonly graceMs?: number;
  /**
   * Event time of an event, in epoch milliseconds (a non-negative integer). A record whose time
   * cannot be read (this throws, or returns something else) is poison (`TIMESTAMP_FAILED`,
   * `TIMESTAMP_INVALID`). Only with `window`.
   * @default the record timestamp
   */
  readonly timestamp?: EventTime<E>;
  /**
   * When triggers hear of a window ({@link WindowEmit}). Only with `window`.
   * @default 'changes'
   */
  readonly emit?: WindowEmit;
  /**
   * What happens to a late event ({@link LatePolicy}); either way it is counted per view
   * (`LateEvents`). Only with `window`.
   * @default 'dead-letter' (nothing is lost silently; choose 'drop' for sources where stragglers are expected and worthless)
   */
  readonly onLate?: LatePolicy;
  /**
   * How long a window is kept past its end (DynamoDB TTL on its item), at least `graceMs`.
   * Only with `window`.
   * @default 2 × (size + graceMs), for sessions 2 × (gapMs + graceMs)
   */
  readonly retentionMs?: number;
  /**
   * When a source partition has read no record for this long (wall clock), its stream time
   * advances to at least the wall clock minus `idleCloseMs`, so windows close, and final
   * results appear, although no new event arrives. Trades exactness for liveness: an event
   * that comes after such an advance with an older time is late. Only with `window`.
   * @default undefined: stream time advances only with events, as in Kafka Streams
   */
  readonly idleCloseMs?: number;
  /**
   * Merges the states of two sessions of one key that an event bridges (`a` the earlier).
   * Required for session windows, refused otherwise.
   */
  readonly merge?: (a: S, b: S) => S;
}

/** A compiled view definition; `E` is the event type and `S` the state type. */
export interface View<E = unknown, S = unknown> {
  readonly kind: 'view';
  readonly name: string;
  readonly source: string;
  /** Version of the definition (an integer from 1; see {@link ViewOptions.version}). */
  readonly version: number;
  /** What a build folds ({@link ViewOptions.backfill}). */
  readonly backfill: ViewBackfill;
  /**
   * Decoder of the record value. With a `schema`, its result is the schema's input, which only
   * becomes an `E` once validated.
   */
  readonly decode: Decoder<E>;
  readonly schema: EventSchema<E> | undefined;
  readonly filter: (event: E, record: SourceRecord) => boolean;
  readonly key: (event: E, record: SourceRecord) => ViewKey | undefined | null;
  readonly initial: () => S;
  readonly reduce: (state: S, event: E, record: SourceRecord) => S;
  readonly maxStateBytes: number;
  readonly onPoison: PoisonPolicy;
  /** The view's window; undefined for an unwindowed view (one item per key). */
  readonly window?: WindowDefinition;
  /** Merges two sessions' states (session windows only). */
  readonly merge?: (a: S, b: S) => S;
}

// `any`, not `unknown`, for the other parameter: View is invariant in both (reduce takes and
// returns S, filter takes E), so against `unknown` every view would give `never`.
/** The state type of a view. */
export type StateOf<V> = V extends View<any, infer S> ? S : never;
/** The event type of a view (with a `schema`, the schema's output). */
export type EventOf<V> = V extends View<infer E, any> ? E : never;

/** One change of one view item, as delivered to trigger functions. */
export interface Change<S = unknown> {
  readonly view: string;
  readonly key: string;
  /** The item's window, for windowed views: `start` inclusive, `end` exclusive, epoch ms. */
  readonly window?: WindowBounds;
  /** Set on the one change of a closed window of an `emit: 'final'` view. */
  readonly final?: true;
  /** State last delivered to this trigger, or undefined for a new item. */
  readonly before: S | undefined;
  readonly after: S;
  /** Item version after the change; strictly increasing per item. */
  readonly version: number;
  /** Last applied offset per source partition, e.g. `{ "bookings/0": "1841" }`. */
  readonly offsets: Readonly<Record<string, string>>;
  /**
   * `(view, key, window start, version)` joined (the view as `<view>@<viewVersion>` from view
   * version 2); equal for redeliveries of the same change.
   */
  readonly idempotencyKey: string;
  /**
   * The view's definition version (`defineView({ version })`) whose item changed; absent for
   * version 1. A rebuilt version's items count `version` from 1 again, so compare versions of
   * one key only within one `viewVersion`.
   */
  readonly viewVersion?: number;
}

/** Retry policy of a trigger. */
export interface RetryOptions {
  /** @default 5 attempts in all, the first included */
  readonly maxAttempts?: number;
  /** @default 100 */
  readonly initialBackoffMs?: number;
  /** @default 5_000 */
  readonly maxBackoffMs?: number;
}

/** Options of {@link defineTrigger}. */
export interface TriggerOptions<S> {
  /** The view whose changes are delivered. */
  readonly view: View<any, S>;
  /** Logical function name; resolved to a deployed name or ARN by the engine's `functionNames`. */
  readonly function: string;
  /**
   * Trigger name, unique in the app.
   * @default `${view.name}-${function}`
   */
  readonly name?: string;
  /**
   * Changes for which this returns false are not delivered.
   * @default every change is delivered
   */
  readonly when?: (change: Change<S>) => boolean;
  /** @default 100 changes per invocation */
  readonly batchSize?: number;
  /**
   * Lambda's batching window: a batch smaller than `batchSize` waits until its oldest change has
   * waited this long, so changes of several partitions share an invocation. A full batch never
   * waits. 0 sends each batch as soon as an invocation slot is free.
   * @default 0
   */
  readonly maxBatchWaitMs?: number;
  readonly retry?: RetryOptions;
  /** Invocations in flight at once for this trigger. @default 8 */
  readonly concurrency?: number;
  /**
   * Which changes the trigger gets. `'every'`: one change per applied event that changed the
   * state, each with its own `before`, `after` and `version`, in order, so a condition on a
   * transition (`before.status === 'shipped' && after.status === 'cancelled'`) holds whatever the
   * batching. `'coalesced'`: at most one change per item and consumer batch, from the state last
   * judged to the batch's final state; fewer invocations, but a transition inside one batch is
   * invisible. See {@link TriggerChanges}.
   * @default 'every'
   */
  readonly changes?: TriggerChanges;
}

/**
 * How a trigger's changes relate to the events: `'every'` never skips an intermediate state,
 * `'coalesced'` folds a consumer batch's events of one item into one change.
 */
export type TriggerChanges = 'every' | 'coalesced';

/** A compiled trigger definition. */
export interface Trigger<S = unknown> {
  readonly kind: 'trigger';
  readonly name: string;
  readonly view: View<any, S>;
  readonly function: string;
  readonly when: (change: Change<S>) => boolean;
  readonly batchSize: number;
  readonly maxBatchWaitMs: number;
  readonly retry: Required<RetryOptions>;
  readonly concurrency: number;
  readonly changes: TriggerChanges;
}

/** Options of {@link defineApp}. */
export interface AppOptions {
  /** App name: names the consumer group, the table and the stack. Letters, digits and `-`. */
  readonly name: string;
  readonly views: readonly View<any, any>[];
  readonly triggers?: readonly Trigger<any>[];
  /**
   * Topic that receives poison records and undeliverable changes.
   * @default `${name}.dead-letter`
   */
  readonly deadLetterTopic?: string;
}

/** A compiled app: what the engine runs, the CDK app deploys and `npm run dev` starts. */
export interface App {
  readonly kind: 'app';
  readonly name: string;
  readonly views: readonly View<any, any>[];
  readonly triggers: readonly Trigger<any>[];
  readonly deadLetterTopic: string;
  /** Distinct source topics of all views. */
  readonly sourceTopics: readonly string[];
  /** Distinct logical function names named by triggers. */
  readonly functions: readonly string[];
}
