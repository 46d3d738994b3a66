import type { StandardSchemaV1 } from '@standard-schema/spec';
import type { LiveApp, LiveAppOptions, LiveView, LiveViewOptions } from './live.ts';

/**
 * View, trigger and app definitions: the contract shared by the engine (which folds),
 * the functions (which read and react), the local stack and the CDK app (which deploy).
 *
 * Everything here is pure data plus user callbacks; no I/O.
 */

/**
 * What `reduce` returns to delete its item: the key disappears for readers (`get`, `getMany`,
 * `query` and the window reads return nothing for it), its triggers get a change with
 * `after: undefined`, and a later event of the key starts again from `initial()`. The engine
 * keeps a state-less tombstone item behind (hidden from reads) as the key's exactly-once fence
 * for the view's `deleteRetentionMs` (docs/architecture.md, "Deleted items").
 *
 * @example
 * reduce: (s, e) => (e.type === 'cancelled' ? DELETE : { ...s, status: e.type })
 */
export const DELETE: unique symbol = Symbol.for('tributary.delete');
/** The type of {@link DELETE}. */
export type Delete = typeof DELETE;

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

/**
 * One enrichment lookup of a view: the row of `table` whose key `key` gives for an event, read
 * when the event is folded and handed to `reduce` (undefined when the table has no such row,
 * or `key` returns undefined or null).
 */
export interface Lookup<E, R> {
  readonly table: Table<R>;
  readonly key: (event: E, record: SourceRecord) => ViewKey | undefined | null;
  /**
   * How old a row the engine task read (or wrote) earlier may be when it serves this lookup from
   * its row cache instead of reading the table: a row another task rewrote within this time may
   * be seen as it was before. Rows this task writes refresh the cache at once. 0 reads every
   * batch's rows (one consistent BatchGetItem for the misses, as always).
   * @default 1_000 (DEFAULT_LOOKUP_MAX_AGE_MS)
   */
  readonly maxAgeMs?: number;
}

/** A view's lookups, by the name `reduce` gets each row under. */
export type Lookups<E> = Readonly<Record<string, Lookup<E, any>>>;

/** The rows a view's lookups found for one event, by lookup name. */
export type LookedUp<L> = { readonly [K in keyof L]: L[K] extends Lookup<any, infer R> ? R | undefined : never };

/** Options of {@link defineView}. */
export interface ViewOptions<E, S, L extends Lookups<E> = {}> {
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
  /**
   * Folds one event into the state of its key. Must not mutate `state`; return a new value, or
   * {@link DELETE} to delete the item (not in session views).
   */
  readonly reduce: (state: S, event: E, record: SourceRecord, rows: LookedUp<L>) => S | Delete;
  /**
   * Enrichment lookups (a stream–table join): for each event, the row of another table of the
   * app, read when the event is folded (one consistent BatchGetItem per batch for the batch's
   * distinct keys) and handed to `reduce` as its fourth argument, by name. A missing row is
   * `undefined`. Replay: an event folded again after a crash reads the table again and may see a
   * newer row; an event already applied is skipped by the fence and keeps what it saw.
   * @example lookup: { member: { table: members, key: (e) => e.memberId } }
   */
  readonly lookup?: L;
  /**
   * Gives a view keyed unlike its source's Kafka key one defined order (as Kafka Streams'
   * repartition topics do): the engine produces each of the source's records the view keeps
   * (after `decode`, `filter` and `key`) to the internal topic `<app>.<view>.repartition`
   * (`<app>.<view>.v<N>.repartition` from version 2: see `repartitionTopic`), keyed by the
   * view key, and folds the view from that topic. All events of one view key are then in
   * one partition, so the view's state is the fold of that topic's records in their order
   * (a record re-produced after a crash is recognised by its original topic, partition and
   * offset and applied once). Use it for an order-sensitive reducer (a capped list, latest,
   * earliest, topK) whose key is not the Kafka key; without it such a view's result depends on
   * how the source's partitions interleave. The engine creates the topic (as many partitions as
   * the source) unless it exists, and needs to create, write and read it. Not with `window`.
   * README, "Re-keyed views".
   * @default false: the view folds its source directly
   */
  readonly repartition?: boolean;
  /**
   * Turns a tombstone (a record whose value is null: a delete on a compacted topic) into an event
   * of the view, which then goes through `filter`, `key` and `reduce` like any other (the
   * `schema` checks decoded values only). Throwing makes the record poison (`DECODE_FAILED`).
   * @default none: a tombstone is poison (`DECODE_FAILED`, "record has no value"), as before
   */
  readonly onTombstone?: (record: SourceRecord) => E;
  /**
   * How long the tombstone of an item deleted by `reduce` (unwindowed views) stays in the table
   * as the key's exactly-once fence before DynamoDB's TTL removes it: a record of the key at or
   * below its offsets that is read again within this time is skipped; after it, it would be
   * applied again (from `initial()`). Only records not yet committed are read again by a
   * running engine, so this bounds how long a deleted key's uncommitted tail may wait (an
   * engine stopped mid-batch, a consumer group offset reset). A windowed item's tombstone
   * expires with its window (`retentionMs`).
   * @default 7 days
   */
  readonly deleteRetentionMs?: number;
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
  /**
   * Makes the view live: browsers and services may subscribe to its keys (README, "Live
   * subscriptions"). `true` lets every connected principal watch every key; `{ authorize }`
   * decides per principal and key.
   * @default not live: every subscription is refused
   */
  readonly live?: true | LiveViewOptions;
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
  /** The options' `reduce`: the new state, or {@link DELETE} to delete the item. */
  readonly reduce: (state: S, event: E, record: SourceRecord) => S | Delete;
  /** The view's enrichment lookups (see {@link ViewOptions.lookup}). */
  readonly lookup?: Lookups<E>;
  /** Turns a tombstone into an event; undefined: tombstones are poison. */
  readonly onTombstone?: (record: SourceRecord) => E;
  /** Set when the view folds through its repartition topic ({@link ViewOptions.repartition}). */
  readonly repartition?: true;
  /** How long a deleted item's tombstone fences its key (unwindowed views), in ms. */
  readonly deleteRetentionMs: number;
  readonly maxStateBytes: number;
  readonly onPoison: PoisonPolicy;
  /** The view's window; undefined for an unwindowed view (one item per key). */
  readonly window?: WindowDefinition;
  /** Merges two sessions' states (session windows only). */
  readonly merge?: (a: S, b: S) => S;
  /** Set on a live view ({@link ViewOptions.live}). */
  readonly live?: LiveView;
  /** Set on a table ({@link Table}): each row's state is the latest value of its key. */
  readonly table?: true;
  /**
   * Set on a view that aggregates a table: its events are the table's row changes
   * ({@link RowChange}), derived by the engine from the table's stored rows, never routed from
   * the topic directly.
   */
  readonly over?: Table<any>;
  /**
   * Set on a view that aggregates a table: the functions it was defined with
   * ({@link TableViewOptions}), which its compiled `key`, `filter` and `reduce` call. The
   * engine's definition fingerprint covers them (a changed `subtract` is a changed definition).
   */
  readonly aggregate?: {
    readonly key: (row: any) => unknown;
    readonly filter?: (row: any) => boolean;
    readonly reduce: (state: any, row: any, record: SourceRecord) => unknown;
    readonly subtract: (state: any, row: any, record: SourceRecord) => unknown;
  };
}

/**
 * A table: a topic read as a changelog (latest value per key, a tombstone deletes the key),
 * stored as items and read like a view (`get`, `getMany`, `query`), built by `defineTable`.
 */
export interface Table<R = unknown> extends View<any, R> {
  readonly table: true;
}

/** Options of `defineTable`. */
export interface TableOptions<R> {
  /** Unique name within the app (views and tables share one namespace). */
  readonly name: string;
  /** The changelog topic (typically compacted). */
  readonly source: string;
  /**
   * The row key of a record. It must come from the record, not the value, so a tombstone names
   * the row it deletes. A record without a usable key is poison (`KEY_MISSING`).
   * @default the record's Kafka key as UTF-8
   */
  readonly key?: (record: SourceRecord) => ViewKey | undefined | null;
  /** @default 'json' */
  readonly decode?: Decoder<R> | JsonDecoding;
  /** Validates each row (not tombstones). */
  readonly schema?: EventSchema<R>;
  /** @default 100_000 */
  readonly maxStateBytes?: number;
  /** @default 'dead-letter' */
  readonly onPoison?: PoisonPolicy;
  /** How long a deleted row's tombstone fences its key. @default 7 days */
  readonly deleteRetentionMs?: number;
}

/**
 * One change of one table row, as a view aggregating the table sees it: the row's value before
 * the record (`old`, undefined for a new row) and after it (`new`, undefined for a delete).
 */
export interface RowChange<R> {
  readonly old: R | undefined;
  readonly new: R | undefined;
}

/**
 * Options of `defineView` over a table (`source` a {@link Table}): the adder/subtractor pair of
 * Kafka Streams' `KTable.groupBy().aggregate()`. When a row changes, the engine subtracts its
 * old value from its old group's state (`subtract`) and adds its new value to its new group's
 * (`reduce`); a delete only subtracts, a new row only adds. Either may return DELETE (e.g. when
 * a group's count falls to 0).
 */
export interface TableViewOptions<R, S> {
  readonly name: string;
  /** The table to aggregate (in the app's views too). */
  readonly source: Table<R>;
  /**
   * The version of this definition, as for a view over a topic: a new aggregation, or a higher
   * version, is built from the whole history of the table's rows (its source topic) before the
   * engine joins its group, and then swapped in (README, "View lifecycle"). There is no
   * `backfill: 'retained'`: a build from part of the rows' history would later subtract rows it
   * never added, so it needs the whole topic (a compacted one is whole).
   * @default 1
   */
  readonly version?: number;
  /** The group of a row. Returning nothing for a row leaves it out of every group (poison). */
  readonly key: (row: R) => ViewKey | undefined | null;
  /** Rows for which this returns false belong to no group. @default every row counts */
  readonly filter?: (row: R) => boolean;
  readonly initial: () => S;
  /** Adds a row to its group's state (the adder). */
  readonly reduce: (state: S, row: R, record: SourceRecord) => S | Delete;
  /** Removes a row added before from its group's state (the subtractor): undoes `reduce`. */
  readonly subtract: (state: S, row: R, record: SourceRecord) => S | Delete;
  readonly maxStateBytes?: number;
  readonly onPoison?: PoisonPolicy;
  readonly deleteRetentionMs?: number;
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
  /** State last delivered to this trigger, or undefined for a new (or re-created) item. */
  readonly before: S | undefined;
  /**
   * The new state. When `reduce` deleted the item ({@link DELETE}), `deleted` is true and
   * `after` is undefined (typed `S` so views that never delete need no check: test `deleted`
   * first in a view that does).
   */
  readonly after: S;
  /** Set when this change deleted the item: `after` is undefined. */
  readonly deleted?: true;
  /** Item version after the change; strictly increasing per item. */
  readonly version: number;
  /**
   * The item version of `before`: the version this trigger last judged (absent when it judged
   * none, as on a new item). Under `changes: 'coalesced'` versions skip; a change whose
   * `beforeVersion` is the version a consumer holds follows it with nothing missed, any other
   * is a gap (a live subscriber then takes a fresh snapshot).
   */
  readonly beforeVersion?: number;
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
  /**
   * Live subscriptions' fan-out batching. Each live view ({@link ViewOptions.live}) gets a
   * built-in trigger (`live-<view>`, function `tributary-live-fanout`, `changes: 'coalesced'`).
   * @default default batching
   */
  readonly live?: LiveAppOptions;
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
  /**
   * The engine's own topics, which it creates, writes and reads: one repartition topic
   * (`repartitionTopic(app, view, version)`) per view with `repartition: true`.
   */
  readonly internalTopics: readonly string[];
  /** Distinct logical function names named by triggers. */
  readonly functions: readonly string[];
  /** The app's live views; undefined when none is live. */
  readonly live?: LiveApp;
}
