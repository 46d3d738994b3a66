/**
 * Delivers view changes to trigger functions (docs/architecture.md, invariant 4): at least
 * once, in version order per item, items in parallel and batched across keys, retried with
 * backoff, then dead-lettered so one bad key never blocks the others.
 */
import { InvokeCommand, LambdaClient } from '@aws-sdk/client-lambda';
import type { Change, Trigger, ViewChangeEvent } from '../../../sdk/index.ts';
import type { DeliveryVerdict } from '../ownership.ts';
import { TriggerError } from './errors.ts';
import {
  DEFAULT_MAX_PAYLOAD_BYTES,
  backoffDelayMs,
  changeBytes,
  coalesceChanges,
  envelopeBytes,
  fitsAlone,
  fitsInBatch,
  itemIdOf,
  readInvocationResult,
  readInvokeError,
  type BatchLimits,
  type DeliveryErrorInfo,
  type InvocationResult,
} from './planning.ts';

/** Bounds the dispatcher's invocations across all triggers (invariant 6), far below Lambda's account default of 1,000. */
export const DEFAULT_MAX_IN_FLIGHT_INVOCATIONS = 64;
/** Lambda's longest timeout is 15 minutes; past it (plus a margin) an invocation has certainly failed. */
export const DEFAULT_INVOCATION_TIMEOUT_MS = 15 * 60_000 + 10_000;
/**
 * Invoke errors (SDK error names, not a function's own errorType) that no retry can fix: the
 * function does not exist. The change goes to the dead-letter topic after its one attempt
 * instead of holding its key back through every backoff.
 */
const PERMANENT_INVOKE_ERRORS: ReadonlySet<string> = new Set(['ResourceNotFoundException']);
/** The smallest payload cap the dispatcher shrinks to after an endpoint refuses a batch as too large. */
const MIN_SHRUNK_PAYLOAD_BYTES = 256 * 1024;

/** A change that could not be delivered, handed to the dead-letter callback. */
export interface TriggerDeadLetter {
  readonly trigger: string;
  readonly view: string;
  /** Logical function name, as in the trigger definition. */
  readonly function: string;
  /** Deployed name or ARN that was invoked. */
  readonly functionName: string;
  /** The change as last sent (coalesced, when coalescing merged several). */
  readonly change: Change;
  /** Idempotency keys of all changes this dead letter stands for (several when coalesced). */
  readonly idempotencyKeys: readonly string[];
  /** Attempts made; 0 when the change could not be sent at all (`when` threw, payload too large). */
  readonly attempts: number;
  readonly error: {
    /** Lambda `errorType`, SDK error name, `BatchItemFailure`, `WhenThrew` or `PayloadTooLarge`. */
    readonly type: string;
    readonly message: string;
  };
  readonly firstAttemptAt?: string;
  readonly lastAttemptAt?: string;
}

/** What happened to one change passed to {@link TriggerDispatcher.deliver}. */
export interface DeliveryOutcome {
  /** The change as passed in. */
  readonly change: Change;
  /**
   * `delivered`: acknowledged by the function (possibly as part of a coalesced change);
   * `dead-lettered`: handed to `deadLetter` after the last attempt;
   * `skipped`: `trigger.when` returned false;
   * `superseded`: not sent, the item's stored bookkeeping had moved past it (see `superseded`).
   */
  readonly status: 'delivered' | 'dead-lettered' | 'skipped' | 'superseded';
  /** Attempts of the change that carried it. */
  readonly attempts: number;
  /** Idempotency key of the change actually sent, when it differs (coalesced into a later one). */
  readonly deliveredAs?: string;
}

/** One invocation, for metrics. */
export interface TriggerInvocationRecord {
  readonly trigger: string;
  readonly functionName: string;
  readonly changes: number;
  readonly payloadBytes: number;
  readonly durationMs: number;
  /** `ok`: all delivered; `partial`: some reported in batchItemFailures; `error`: none delivered. */
  readonly outcome: 'ok' | 'partial' | 'error';
  readonly error?: DeliveryErrorInfo;
}

/** Counters since the dispatcher was created, plus current levels. */
export interface TriggerDispatcherStats {
  readonly invocations: number;
  /** Invocations that failed as a whole or in part. */
  readonly invocationErrors: number;
  readonly deliveredChanges: number;
  readonly deadLetters: number;
  /** Changes merged into a later change of the same item. */
  readonly coalescedChanges: number;
  readonly inFlightInvocations: number;
  /** Changes accepted by `deliver()` and not yet delivered or dead-lettered: the engine's backpressure signal. */
  readonly pendingChanges: number;
}

/** Log levels the dispatcher uses. */
export type TriggerLogLevel = 'debug' | 'info' | 'warn' | 'error';

/** Options of {@link TriggerDispatcher}. */
export interface TriggerDispatcherOptions {
  /**
   * Lambda client used for Invoke. Its own retry settings stack under the dispatcher's.
   * @default a `LambdaClient` from the standard AWS environment (`AWS_REGION`, `AWS_ENDPOINT_URL_LAMBDA`, …)
   */
  readonly lambda?: LambdaClient;
  /**
   * Logical function name -> deployed name or ARN (`TRIBUTARY_FUNCTION_NAMES`).
   * @default each logical name is the deployed name
   */
  readonly functionNames?: Readonly<Record<string, string>>;
  /**
   * Receives each change that could not be delivered (typically writes it to the dead-letter
   * topic). If it rejects, `deliver()` rejects with `DEAD_LETTER_FAILED` and the engine must
   * not commit. Required: there is no safe default for "where undeliverable changes go".
   */
  readonly deadLetter: (entry: TriggerDeadLetter) => Promise<void>;
  /**
   * Log sink.
   * @default no logging
   */
  readonly log?: (level: TriggerLogLevel, message: string, fields?: Record<string, unknown>) => void;
  /**
   * Called after each invocation (metrics: `TriggerInvocations`, `TriggerErrors`, latency).
   * @default none
   */
  readonly onInvocation?: (record: TriggerInvocationRecord) => void;
  /**
   * Invocations in flight across all triggers; each trigger is also bounded by its `concurrency`.
   * @default {@link DEFAULT_MAX_IN_FLIGHT_INVOCATIONS}
   */
  readonly maxInFlightInvocations?: number;
  /**
   * Largest invocation payload in bytes; batches are split to stay under it.
   * @default {@link DEFAULT_MAX_PAYLOAD_BYTES} (Lambda's 6 MB synchronous cap minus a margin)
   */
  readonly maxPayloadBytes?: number;
  /**
   * Merge an item's queued changes into one (first `before`, last `after`) when they wait
   * behind an unacknowledged change. Per trigger, a `coalesce` field on the trigger wins.
   * Off by default: edge-triggered functions (`when` detects a crossing, a cancellation) must
   * see every change, and merging A→B→A into A→A would hide it. Turn it on for level-triggered
   * functions (sync the latest state somewhere) to save invocations.
   * @default false
   */
  readonly coalesce?: boolean;
  /**
   * Client-side timeout of one invocation; a timed-out invocation counts as a failed attempt.
   * @default {@link DEFAULT_INVOCATION_TIMEOUT_MS}
   */
  readonly invocationTimeoutMs?: number;
  /**
   * Apply `trigger.when` in `deliver()`. The engine's batch loop already judges `when` (it
   * records what it judged on the item), so its sink turns this off; direct callers keep it.
   * @default true
   */
  readonly applyWhen?: boolean;
  /**
   * Re-reads, for changes whose delivery right is `doubtful` (see {@link DeliverOptions.right}),
   * whether each item's stored trigger bookkeeping has moved past the change (another task
   * delivered it or a later one): those are not sent and settle as `superseded`. Asked right
   * before the invocation; if it rejects, the changes are sent (at least once beats never).
   * @default none: doubtful changes are sent
   */
  readonly superseded?: (trigger: Trigger<any>, changes: readonly Change[]) => Promise<readonly boolean[]>;
  /**
   * Random source in [0, 1) for backoff jitter (tests pass a fixed one).
   * @default Math.random
   */
  readonly random?: () => number;
}

/** Per-call options of {@link TriggerDispatcher.deliver}. */
export interface DeliverOptions {
  /**
   * Asked right before each invocation carrying one of this call's changes (they may wait in
   * the dispatcher for long): `lost` fails them with `PARTITION_LOST` unsent, `doubtful` has
   * them checked with the dispatcher's `superseded` first. The engine passes whether it still
   * owns the partition the changes came from.
   * @default always `owned`
   */
  readonly right?: () => DeliveryVerdict;
}

interface Call {
  remaining: number;
  readonly right: (() => DeliveryVerdict) | undefined;
  readonly outcomes: DeliveryOutcome[];
  failure: TriggerError | undefined;
  readonly resolve: (outcomes: DeliveryOutcome[]) => void;
  readonly reject: (error: Error) => void;
}

interface Source {
  readonly call: Call;
  readonly index: number;
  readonly change: Change;
}

interface Entry {
  change: Change;
  /** The calls waiting for this change; sources of calls that lost their right are removed. */
  sources: Source[];
  /** Serialized size of `change` in the payload. */
  bytes: number;
  attempts: number;
  firstAttemptAtMs: number | undefined;
  lastAttemptAtMs: number | undefined;
  /** Set when the change must be dead-lettered without being sent (its `when` threw). */
  poison: DeliveryErrorInfo | undefined;
  /** Largest batch this change may travel in; halved each time a batch holding it failed as a whole. */
  maxBatch: number;
}

interface Item {
  readonly id: string;
  /** Pending changes in version order; `entries[0]` is the one being (or next to be) sent. */
  entries: Entry[];
  /** In flight, waiting out a backoff, or being dead-lettered: the next change must wait. */
  busy: boolean;
  /** In the lane's ready queue. */
  queued: boolean;
  /** When it last joined the ready queue: its wait counts against `trigger.maxBatchWaitMs`. */
  readySinceMs: number;
  timer: NodeJS.Timeout | undefined;
}

interface Lane {
  readonly trigger: Trigger<any>;
  readonly functionName: string;
  readonly coalesce: boolean;
  readonly items: Map<string, Item>;
  /** Items whose head change can be sent now, oldest first (fair across keys). */
  readonly ready: Item[];
  readyHead: number;
  inFlight: number;
  limits: BatchLimits;
  /** Armed while a partial batch waits out `trigger.maxBatchWaitMs`. */
  windowTimer: NodeJS.Timeout | undefined;
}

/**
 * Delivers a trigger's changes to its Lambda function.
 *
 * - One invocation carries up to `trigger.batchSize` changes of distinct items, split to stay
 *   under the payload cap; payload `{ trigger, view, changes }` ({@link ViewChangeEvent}).
 * - An item's next change is sent only after the previous one was acknowledged (version order),
 *   also across `deliver()` calls; items go in parallel, up to `trigger.concurrency`
 *   invocations per trigger and `maxInFlightInvocations` overall.
 * - Failures (SDK/network errors, throttling, `FunctionError`, changes named in
 *   `batchItemFailures`) are retried per change with exponential backoff and full jitter
 *   (`trigger.retry`); after the last attempt the change goes to `deadLetter` and the item's
 *   later changes continue. An invocation refused because the function does not exist
 *   (`ResourceNotFoundException`) cannot succeed later: its changes go to `deadLetter` after
 *   that one attempt.
 * - When the function fails a whole batch of several changes (it threw), the batch is bisected
 *   on retry without charging an attempt, so a change the function cannot handle ends up alone,
 *   exhausts its own attempts and is dead-lettered while the other changes get through.
 * - `trigger.when` is applied here (unless `applyWhen: false`); changes for which it returns
 *   false are `skipped`.
 * - Changes are sent as soon as a slot is free, unless `trigger.maxBatchWaitMs` is set: then a
 *   batch smaller than `trigger.batchSize` waits until its oldest change has been ready that
 *   long (Lambda's batching window), gathering the changes of several `deliver()` calls (several
 *   partitions) into one invocation. A full batch never waits. Batches also fill across keys
 *   whenever more items are ready than invocations are allowed.
 *
 * @example
 * const dispatcher = new TriggerDispatcher({
 *   lambda: new LambdaClient({}),
 *   functionNames: JSON.parse(process.env.TRIBUTARY_FUNCTION_NAMES ?? '{}'),
 *   deadLetter: (entry) => produceToDeadLetterTopic(entry),
 * });
 * // after the view writes of a batch are durable, before committing its offsets:
 * const outcomes = await dispatcher.deliver(trigger, changes);
 */
export class TriggerDispatcher {
  readonly #lambda: LambdaClient;
  readonly #functionNames: Readonly<Record<string, string>>;
  readonly #deadLetter: TriggerDispatcherOptions['deadLetter'];
  readonly #log: NonNullable<TriggerDispatcherOptions['log']>;
  readonly #onInvocation: TriggerDispatcherOptions['onInvocation'];
  readonly #maxInFlight: number;
  readonly #maxPayloadBytes: number;
  readonly #coalesce: boolean;
  readonly #invocationTimeoutMs: number;
  readonly #random: () => number;
  readonly #applyWhen: boolean;
  readonly #superseded: TriggerDispatcherOptions['superseded'];
  readonly #lanes = new Map<string, Lane>();
  readonly #invocations = new Set<Promise<void>>();
  #inFlight = 0;
  #closed = false;
  #stats = { invocations: 0, invocationErrors: 0, deliveredChanges: 0, deadLetters: 0, coalescedChanges: 0, pendingChanges: 0 };

  constructor(options: TriggerDispatcherOptions) {
    if (typeof options?.deadLetter !== 'function') {
      throw new TriggerError(
        'INVALID_ARGUMENT',
        `TriggerDispatcher: deadLetter must be a function that stores an undeliverable change, received ${typeof options?.deadLetter}`,
      );
    }
    const maxInFlight = options.maxInFlightInvocations ?? DEFAULT_MAX_IN_FLIGHT_INVOCATIONS;
    const maxPayloadBytes = options.maxPayloadBytes ?? DEFAULT_MAX_PAYLOAD_BYTES;
    const invocationTimeoutMs = options.invocationTimeoutMs ?? DEFAULT_INVOCATION_TIMEOUT_MS;
    for (const [name, value, min] of [
      ['maxInFlightInvocations', maxInFlight, 1],
      ['maxPayloadBytes', maxPayloadBytes, 1_024],
      ['invocationTimeoutMs', invocationTimeoutMs, 1],
    ] as const) {
      if (!Number.isInteger(value) || value < min) {
        throw new TriggerError('INVALID_ARGUMENT', `TriggerDispatcher: ${name} must be an integer >= ${min}, received ${value}`);
      }
    }
    this.#lambda = options.lambda ?? new LambdaClient({});
    this.#functionNames = options.functionNames ?? {};
    this.#deadLetter = options.deadLetter;
    this.#log = options.log ?? (() => {});
    this.#onInvocation = options.onInvocation;
    this.#maxInFlight = maxInFlight;
    this.#maxPayloadBytes = maxPayloadBytes;
    this.#coalesce = options.coalesce ?? false;
    this.#invocationTimeoutMs = invocationTimeoutMs;
    this.#random = options.random ?? Math.random;
    this.#applyWhen = options.applyWhen ?? true;
    this.#superseded = options.superseded;
  }

  /** Counters and current levels (see {@link TriggerDispatcherStats}). */
  get stats(): TriggerDispatcherStats {
    return { ...this.#stats, inFlightInvocations: this.#inFlight };
  }

  /**
   * Delivers `changes` (of `trigger.view`) to the trigger's function. Resolves, with one
   * outcome per change in input order, once every change is delivered, skipped by `when`, or
   * dead-lettered. Rejects with `DEAD_LETTER_FAILED` if a change could be neither delivered
   * nor dead-lettered (then the engine must not commit), or `DISPATCHER_CLOSED` after close().
   *
   * Calls may overlap: an item's changes from a later call wait for its earlier ones.
   *
   * @example
   * const outcomes = await dispatcher.deliver(classNearlyFull, changes);
   * const lastDelivered = Math.max(...outcomes.filter((o) => o.status !== 'skipped').map((o) => o.change.version));
   */
  deliver(trigger: Trigger<any>, changes: readonly Change[], options: DeliverOptions = {}): Promise<DeliveryOutcome[]> {
    if (!trigger || trigger.kind !== 'trigger') {
      return Promise.reject(new TriggerError('INVALID_ARGUMENT', 'deliver: trigger must be a defineTrigger() result'));
    }
    if (!Array.isArray(changes)) {
      return Promise.reject(
        new TriggerError('INVALID_ARGUMENT', `deliver(trigger "${trigger.name}"): changes must be an array`, {
          context: { trigger: trigger.name },
        }),
      );
    }
    if (this.#closed) return Promise.reject(this.#closedError(trigger));
    if (changes.length === 0) return Promise.resolve([]);
    const malformed = changes.find(
      (c) =>
        !c ||
        c.view !== trigger.view.name ||
        typeof c.key !== 'string' ||
        !Number.isFinite(c.version) ||
        typeof c.idempotencyKey !== 'string' ||
        c.idempotencyKey === '',
    );
    if (malformed !== undefined) {
      return Promise.reject(
        new TriggerError(
          'INVALID_ARGUMENT',
          `deliver(trigger "${trigger.name}"): received a change that is not a change of view "${trigger.view.name}" with a string key, a numeric version and an idempotencyKey: ${preview(malformed)}`,
          { context: { trigger: trigger.name, view: trigger.view.name } },
        ),
      );
    }
    const lane = this.#laneOf(trigger);
    return new Promise<DeliveryOutcome[]>((resolve, reject) => {
      const call: Call = {
        remaining: changes.length,
        right: options.right,
        outcomes: new Array(changes.length),
        failure: undefined,
        resolve,
        reject,
      };
      // By version within an item; items keep their first-seen order.
      const order = changes.map((change, index) => ({ change, index }));
      sortWithinItems(order);
      for (const { change, index } of order) {
        let poison: DeliveryErrorInfo | undefined;
        try {
          if (this.#applyWhen && !trigger.when(change)) {
            this.#settle({ call, index, change }, { change, status: 'skipped', attempts: 0 });
            continue;
          }
        } catch (error) {
          const info = readInvokeError(error);
          poison = { type: 'WhenThrew', message: `trigger "${trigger.name}": when() threw ${info.type}: ${info.message}` };
        }
        this.#enqueue(lane, { call, index, change }, poison);
      }
      this.#pump();
    });
  }

  /**
   * Stops delivering: waits for in-flight invocations, then rejects every pending `deliver()`
   * with `DISPATCHER_CLOSED` (retriable: the changes are redelivered after a restart, since their
   * offsets were not committed).
   */
  async close(): Promise<void> {
    this.#closed = true;
    for (const lane of this.#lanes.values()) {
      for (const item of lane.items.values()) if (item.timer) clearTimeout(item.timer);
      if (lane.windowTimer) clearTimeout(lane.windowTimer);
      lane.windowTimer = undefined;
    }
    await Promise.allSettled([...this.#invocations]);
    for (const lane of this.#lanes.values()) {
      for (const item of lane.items.values()) {
        for (const entry of item.entries) for (const source of entry.sources) this.#fail(source, this.#closedError(lane.trigger));
      }
      lane.items.clear();
      lane.ready.length = 0;
      lane.readyHead = 0;
    }
  }

  #closedError(trigger: Trigger<any>): TriggerError {
    return new TriggerError('DISPATCHER_CLOSED', `trigger "${trigger.name}": the dispatcher was closed before delivery`, {
      retriable: true,
      context: { trigger: trigger.name, view: trigger.view.name },
    });
  }

  #laneOf(trigger: Trigger<any>): Lane {
    let lane = this.#lanes.get(trigger.name);
    if (!lane) {
      const own = (trigger as { coalesce?: unknown }).coalesce;
      lane = {
        trigger,
        functionName: this.#functionNames[trigger.function] ?? trigger.function,
        coalesce: typeof own === 'boolean' ? own : this.#coalesce,
        items: new Map(),
        ready: [],
        readyHead: 0,
        windowTimer: undefined,
        inFlight: 0,
        limits: {
          batchSize: trigger.batchSize,
          maxPayloadBytes: this.#maxPayloadBytes,
          envelopeBytes: envelopeBytes(trigger.name, trigger.view.name),
        },
      };
      this.#lanes.set(trigger.name, lane);
    }
    return lane;
  }

  #enqueue(lane: Lane, source: Source, poison: DeliveryErrorInfo | undefined): void {
    this.#stats.pendingChanges++;
    const id = itemIdOf(source.change);
    let item = lane.items.get(id);
    if (!item) {
      item = { id, entries: [], busy: false, queued: false, readySinceMs: 0, timer: undefined };
      lane.items.set(id, item);
    }
    const version = source.change.version;
    const entries = item.entries;
    // The head may already be in flight: never place anything before it.
    const floor = item.busy ? 1 : 0;
    let at = entries.length;
    while (at > floor && entries[at - 1]!.change.version >= version) at--;
    const same = entries[at];
    if (same && same.change.version === version && same.change.idempotencyKey === source.change.idempotencyKey && !poison) {
      same.sources.push(source); // the same change passed twice: deliver once, settle both
    } else {
      entries.splice(at, 0, {
        change: source.change,
        sources: [source],
        bytes: changeBytes(source.change),
        attempts: 0,
        firstAttemptAtMs: undefined,
        lastAttemptAtMs: undefined,
        poison,
        maxBatch: Number.POSITIVE_INFINITY,
      });
    }
    this.#markReady(lane, item);
  }

  #markReady(lane: Lane, item: Item): void {
    if (item.busy || item.queued || item.entries.length === 0 || this.#closed) return;
    item.queued = true;
    item.readySinceMs = Date.now();
    lane.ready.push(item);
  }

  #nextReady(lane: Lane): Item | undefined {
    const item = lane.ready[lane.readyHead];
    if (!item) return undefined;
    lane.readyHead++;
    if (lane.readyHead > 1_024 && lane.readyHead * 2 > lane.ready.length) {
      lane.ready.splice(0, lane.readyHead);
      lane.readyHead = 0;
    }
    item.queued = false;
    return item;
  }

  #peekReady(lane: Lane): Item | undefined {
    return lane.ready[lane.readyHead];
  }

  /** Starts as many invocations as the bounds allow, on every lane. */
  #pump(): void {
    if (this.#closed) return;
    for (const lane of this.#lanes.values()) {
      while (lane.inFlight < lane.trigger.concurrency && this.#inFlight < this.#maxInFlight && this.#peekReady(lane)) {
        if (this.#holdForWindow(lane)) break;
        const batch = this.#takeBatch(lane);
        if (batch.length > 0) this.#startInvocation(lane, batch);
      }
    }
  }

  /**
   * True while the lane's ready changes are fewer than a batch and the oldest of them has waited
   * less than `maxBatchWaitMs`; a timer then pumps again when the window closes.
   */
  #holdForWindow(lane: Lane): boolean {
    const windowMs = lane.trigger.maxBatchWaitMs;
    if (windowMs <= 0 || lane.ready.length - lane.readyHead >= lane.trigger.batchSize) return false;
    const waitedMs = Date.now() - this.#peekReady(lane)!.readySinceMs;
    if (waitedMs >= windowMs) return false;
    if (lane.windowTimer === undefined) {
      lane.windowTimer = setTimeout(() => {
        lane.windowTimer = undefined;
        this.#pump();
      }, windowMs - waitedMs);
    }
    return true;
  }

  #takeBatch(lane: Lane): Array<{ item: Item; entry: Entry }> {
    const batch: Array<{ item: Item; entry: Entry }> = [];
    let bytes = lane.limits.envelopeBytes;
    let cap = Number.POSITIVE_INFINITY;
    for (let item = this.#peekReady(lane); item; item = this.#peekReady(lane)) {
      if (lane.coalesce && item.entries.length > 1 && !item.entries[0]!.poison) this.#coalesceItem(item);
      const entry = item.entries[0]!;
      if (entry.poison || !fitsAlone(entry.bytes, lane.limits)) {
        this.#nextReady(lane);
        const error = entry.poison ?? {
          type: 'PayloadTooLarge',
          message: `change ${entry.change.idempotencyKey} serializes to ${entry.bytes} bytes, over the ${lane.limits.maxPayloadBytes}-byte invocation payload cap; keep view state smaller (maxStateBytes)`,
        };
        this.#deadLetterEntry(lane, item, entry, error);
        continue;
      }
      if (!fitsInBatch(batch.length, bytes, entry.bytes, lane.limits)) break;
      if (batch.length + 1 > Math.min(cap, entry.maxBatch)) break;
      cap = Math.min(cap, entry.maxBatch);
      this.#nextReady(lane);
      item.busy = true;
      bytes += entry.bytes + (batch.length > 0 ? 1 : 0);
      batch.push({ item, entry });
    }
    return batch;
  }

  #coalesceItem(item: Item): void {
    // Only changes not yet poisoned merge; a poisoned one stays to be dead-lettered in order.
    let end = 1;
    while (end < item.entries.length && !item.entries[end]!.poison) end++;
    if (end === 1) return;
    const merged = item.entries.slice(0, end);
    const head = merged[0]!;
    const change = coalesceChanges(merged.map((e) => e.change));
    this.#stats.coalescedChanges += merged.length - 1;
    item.entries.splice(0, end, {
      change,
      sources: merged.flatMap((e) => e.sources),
      bytes: changeBytes(change),
      attempts: head.attempts,
      firstAttemptAtMs: head.firstAttemptAtMs,
      lastAttemptAtMs: head.lastAttemptAtMs,
      poison: undefined,
      maxBatch: Math.min(...merged.map((e) => e.maxBatch)),
    });
  }

  #startInvocation(lane: Lane, batch: Array<{ item: Item; entry: Entry }>): void {
    lane.inFlight++;
    this.#inFlight++;
    const run = this.#invoke(lane, batch)
      .catch((error) => this.#log('error', 'trigger dispatcher: unexpected failure while handling an invocation', { error: String(error) }))
      .finally(() => {
        lane.inFlight--;
        this.#inFlight--;
        this.#invocations.delete(run);
        this.#pump();
      });
    this.#invocations.add(run);
  }

  /**
   * The part of `batch` that may still be sent: the sources of calls whose right is `lost` fail
   * with `PARTITION_LOST`, doubtful changes the item's bookkeeping moved past settle as
   * `superseded`; an entry with nothing left to send is dropped and its item moves on.
   */
  async #fence(lane: Lane, batch: Array<{ item: Item; entry: Entry }>): Promise<Array<{ item: Item; entry: Entry }>> {
    const doubtful = this.#dropLost(lane, batch);
    let live = batch.filter((b) => b.entry.sources.length > 0);
    if (doubtful.size > 0 && this.#superseded !== undefined) {
      const checked = live.filter((b) => doubtful.has(b.entry));
      let verdicts: readonly boolean[] = [];
      try {
        verdicts = await this.#superseded(lane.trigger, checked.map((b) => b.entry.change));
      } catch (error) {
        this.#log('warn', `trigger "${lane.trigger.name}": could not re-read the items of doubtful changes; sending them`, {
          trigger: lane.trigger.name,
          error: String(error),
        });
      }
      checked.forEach(({ item, entry }, i) => {
        if (verdicts[i] !== true) return;
        for (const source of entry.sources) this.#settle(source, { change: source.change, status: 'superseded', attempts: entry.attempts });
        entry.sources = [];
        this.#advance(lane, item);
      });
      // The right may have been lost while the items were read.
      this.#dropLost(lane, live);
      live = live.filter((b) => b.entry.sources.length > 0);
    }
    return live;
  }

  /** Fails the sources of `lost` calls in `batch` (dropping emptied entries); returns the entries only doubtful calls hold. */
  #dropLost(lane: Lane, batch: Array<{ item: Item; entry: Entry }>): Set<Entry> {
    const doubtful = new Set<Entry>();
    for (const { item, entry } of batch) {
      if (entry.sources.length === 0) continue;
      let owned = false;
      const kept: Source[] = [];
      for (const source of entry.sources) {
        const verdict = source.call.right?.() ?? { right: 'owned' as const };
        if (verdict.right === 'lost') {
          this.#fail(
            source,
            new TriggerError(
              'PARTITION_LOST',
              `trigger "${lane.trigger.name}": change ${source.change.idempotencyKey} was not sent: ${verdict.reason ?? 'the partition it came from is no longer owned'}; the partition's owner delivers it`,
              { retriable: true, context: { trigger: lane.trigger.name, view: lane.trigger.view.name, key: source.change.key, version: source.change.version } },
            ),
          );
          continue;
        }
        owned ||= verdict.right === 'owned';
        kept.push(source);
      }
      entry.sources = kept;
      if (kept.length === 0) this.#advance(lane, item);
      else if (!owned) doubtful.add(entry);
    }
    return doubtful;
  }

  async #invoke(lane: Lane, all: Array<{ item: Item; entry: Entry }>): Promise<void> {
    const { trigger } = lane;
    const batch = await this.#fence(lane, all);
    if (batch.length === 0) return;
    const startedMs = Date.now();
    for (const { entry } of batch) {
      entry.attempts++;
      entry.firstAttemptAtMs ??= startedMs;
      entry.lastAttemptAtMs = startedMs;
    }
    const event: ViewChangeEvent = { trigger: trigger.name, view: trigger.view.name, changes: batch.map((b) => b.entry.change) };
    const payload = Buffer.from(JSON.stringify(event), 'utf8');
    const sent = new Set(batch.map((b) => b.entry.change.idempotencyKey));
    // `byFunction`: the function itself failed the whole batch (FunctionError, malformed failure list).
    let result: InvocationResult & { byFunction?: boolean; permanent?: boolean };
    try {
      const response = await this.#lambda.send(
        new InvokeCommand({ FunctionName: lane.functionName, InvocationType: 'RequestResponse', Payload: payload }),
        { abortSignal: AbortSignal.timeout(this.#invocationTimeoutMs) },
      );
      result = { ...readInvocationResult(response, sent), byFunction: true };
    } catch (error) {
      const info = readInvokeError(error);
      if (info.tooLarge && batch.length > 1) {
        // The endpoint's cap is below ours: halve the batch bytes and resend without charging an attempt.
        lane.limits = { ...lane.limits, maxPayloadBytes: Math.max(MIN_SHRUNK_PAYLOAD_BYTES, Math.floor(payload.byteLength / 2)) };
        this.#log('warn', `trigger "${trigger.name}": ${lane.functionName} refused a ${payload.byteLength}-byte payload; splitting batches`, {
          trigger: trigger.name,
        });
        for (const { item, entry } of batch) {
          entry.attempts--;
          item.busy = false;
          this.#markReady(lane, item);
        }
        return;
      }
      result = {
        kind: 'error',
        error: { type: info.type, message: info.message },
        byFunction: false,
        permanent: PERMANENT_INVOKE_ERRORS.has(info.type),
      };
    }
    const durationMs = Date.now() - startedMs;
    this.#stats.invocations++;
    if (result.kind !== 'ok') this.#stats.invocationErrors++;
    const record: TriggerInvocationRecord = {
      trigger: trigger.name,
      functionName: lane.functionName,
      changes: batch.length,
      payloadBytes: payload.byteLength,
      durationMs,
      outcome: result.kind,
      ...(result.kind === 'ok' ? {} : { error: result.error }),
    };
    try {
      this.#onInvocation?.(record);
    } catch {
      // A metrics hook must never break delivery.
    }
    if (result.kind !== 'ok') {
      this.#log('warn', `trigger "${trigger.name}": invocation of ${lane.functionName} failed: ${result.error.type}: ${result.error.message}`, {
        trigger: trigger.name,
        function: lane.functionName,
        changes: batch.length,
        failed: result.kind === 'partial' ? result.failed.size : batch.length,
      });
    }
    // A function that fails a whole batch may be failing on one change only: bisect, as Lambda's
    // event source mappings do, without charging an attempt, so the other changes get through
    // and only the culprit exhausts its attempts (invariant 4: one bad key never blocks).
    const bisect = result.kind === 'error' && result.byFunction === true && batch.length > 1;
    for (const { item, entry } of batch) {
      if (result.kind === 'ok' || (result.kind === 'partial' && !result.failed.has(entry.change.idempotencyKey))) {
        this.#delivered(lane, item, entry);
      } else if (result.kind === 'error' && result.permanent === true) {
        this.#deadLetterEntry(lane, item, entry, result.error);
      } else if (bisect) {
        entry.attempts--;
        entry.maxBatch = Math.ceil(batch.length / 2);
        this.#retryOrDeadLetter(lane, item, entry, result.error);
      } else {
        this.#retryOrDeadLetter(lane, item, entry, result.error);
      }
    }
  }

  #delivered(lane: Lane, item: Item, entry: Entry): void {
    this.#stats.deliveredChanges += entry.sources.length;
    for (const source of entry.sources) {
      this.#settle(source, {
        change: source.change,
        status: 'delivered',
        attempts: entry.attempts,
        ...(source.change.idempotencyKey === entry.change.idempotencyKey ? {} : { deliveredAs: entry.change.idempotencyKey }),
      });
    }
    this.#advance(lane, item);
  }

  #retryOrDeadLetter(lane: Lane, item: Item, entry: Entry, error: DeliveryErrorInfo): void {
    if (entry.attempts >= lane.trigger.retry.maxAttempts) {
      this.#deadLetterEntry(lane, item, entry, error);
      return;
    }
    const delayMs = backoffDelayMs(Math.max(1, entry.attempts), lane.trigger.retry, this.#random);
    this.#log('debug', `trigger "${lane.trigger.name}": retrying ${entry.change.idempotencyKey} in ${delayMs} ms`, {
      attempts: entry.attempts,
    });
    item.busy = true;
    item.timer = setTimeout(() => {
      item.timer = undefined;
      item.busy = false;
      this.#markReady(lane, item);
      this.#pump();
    }, delayMs);
  }

  #deadLetterEntry(lane: Lane, item: Item, entry: Entry, error: DeliveryErrorInfo): void {
    item.busy = true;
    const { trigger } = lane;
    const letter: TriggerDeadLetter = {
      trigger: trigger.name,
      view: trigger.view.name,
      function: trigger.function,
      functionName: lane.functionName,
      change: entry.change,
      idempotencyKeys: entry.sources.map((s) => s.change.idempotencyKey),
      attempts: entry.attempts,
      error: { type: error.type, message: error.message },
      ...(entry.firstAttemptAtMs === undefined ? {} : { firstAttemptAt: new Date(entry.firstAttemptAtMs).toISOString() }),
      ...(entry.lastAttemptAtMs === undefined ? {} : { lastAttemptAt: new Date(entry.lastAttemptAtMs).toISOString() }),
    };
    this.#log('error', `trigger "${trigger.name}": dead-lettering ${entry.change.idempotencyKey} after ${entry.attempts} attempt(s): ${error.type}: ${error.message}`, {
      trigger: trigger.name,
      key: entry.change.key,
      version: entry.change.version,
    });
    let pending: Promise<void>;
    try {
      pending = Promise.resolve(this.#deadLetter(letter));
    } catch (thrown) {
      pending = Promise.reject(thrown);
    }
    pending.then(
      () => {
        this.#stats.deadLetters++;
        for (const source of entry.sources) {
          this.#settle(source, {
            change: source.change,
            status: 'dead-lettered',
            attempts: entry.attempts,
            ...(source.change.idempotencyKey === entry.change.idempotencyKey ? {} : { deliveredAs: entry.change.idempotencyKey }),
          });
        }
        this.#advance(lane, item);
        this.#pump();
      },
      (cause: unknown) => {
        // Neither delivered nor dead-lettered: fail it and, to keep the item's order, every later
        // change of the item, so that no call containing them resolves and nothing gets committed.
        const context = { trigger: trigger.name, view: trigger.view.name, key: entry.change.key, version: entry.change.version };
        const failure = new TriggerError(
          'DEAD_LETTER_FAILED',
          `trigger "${trigger.name}": change ${entry.change.idempotencyKey} failed ${entry.attempts} attempt(s) (${error.type}: ${error.message}) and the dead-letter callback failed too; do not commit, the change is redelivered after a restart`,
          { retriable: true, context, cause },
        );
        for (const later of item.entries) for (const source of later.sources) this.#fail(source, failure);
        item.entries = [];
        item.busy = false;
        lane.items.delete(item.id);
        this.#pump();
      },
    );
  }

  /** The head change of `item` is settled: drop it and let the next one go. */
  #advance(lane: Lane, item: Item): void {
    item.entries.shift();
    item.busy = false;
    if (item.entries.length === 0) lane.items.delete(item.id);
    else this.#markReady(lane, item);
  }

  #settle(source: Source, outcome: DeliveryOutcome): void {
    const { call } = source;
    call.outcomes[source.index] = outcome;
    if (outcome.status !== 'skipped') this.#stats.pendingChanges--;
    this.#finishOne(call);
  }

  #fail(source: Source, error: TriggerError): void {
    const { call } = source;
    this.#stats.pendingChanges--;
    call.failure ??= error;
    this.#finishOne(call);
  }

  #finishOne(call: Call): void {
    call.remaining--;
    if (call.remaining > 0) return;
    if (call.failure) call.reject(call.failure);
    else call.resolve(call.outcomes);
  }
}

/** Sorts entries by version inside each run of equal item ids, keeping the items' first-seen order. */
function sortWithinItems(order: Array<{ change: Change; index: number }>): void {
  const groups = new Map<string, Array<{ change: Change; index: number }>>();
  for (const entry of order) {
    const id = itemIdOf(entry.change);
    const group = groups.get(id);
    if (group) group.push(entry);
    else groups.set(id, [entry]);
  }
  let at = 0;
  for (const group of groups.values()) {
    group.sort((a, b) => a.change.version - b.change.version || a.index - b.index);
    for (const entry of group) order[at++] = entry;
  }
}

function preview(value: unknown): string {
  try {
    const text = JSON.stringify(value) ?? String(value);
    return text.length > 200 ? `${text.slice(0, 200)}…` : text;
  } catch {
    return String(value);
  }
}
