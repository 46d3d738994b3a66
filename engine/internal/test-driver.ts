/**
 * An in-memory driver for unit tests (like Kafka Streams' TopologyTestDriver): push records
 * through an app's views and read the resulting state, writes, trigger changes and dead
 * letters. It runs the engine's own batch processor against an in-memory table with the same
 * conditional-write semantics as DynamoDB, so tests exercise the real fold, fence and
 * bookkeeping code.
 */
import type { App, Change, SourceRecord, Trigger, ViewKey, WindowBounds } from '../../sdk/index.ts';
import { checkpointKey, decodeState, encodeViewKey, viewItemKey, type ItemKey, type ViewItem } from '../../sdk/contract/index.ts';
import type { ChangeOutcome, ChangeSink, DeadLetterSink } from './change-sink.ts';
import type { DeadLetter } from './dead-letter.ts';
import { EngineError, WriteConflictError } from './errors.ts';
import { itemId } from './fold.ts';
import { BatchProcessor, type BatchResult, type CheckpointState, type ItemStore } from './processor.ts';
import { WindowCloser, type ClosingPage, type ClosingStore } from './window-closer.ts';
import { StateCache } from './state-cache.ts';
import { CommitPipeline } from './commit-pipeline.ts';
import { createLogger } from './log.ts';
import { idleAdvances, streamTimeKey } from './windows.ts';
import { Partitioners } from 'kafkajs';
import { repartitionTopic } from '../../sdk/index.ts';
import type { RepartitionSink } from './repartition.ts';

/** An item store in memory, with DynamoDB's conditional-write semantics. */
export class MemoryItemStore implements ItemStore, ClosingStore {
  readonly items = new Map<string, ViewItem>();
  readonly checkpoints = new Map<string, string>();
  /** Stream times per checkpoint (by sort key), as stored with it. */
  readonly streamTimes = new Map<string, Record<string, number>>();
  reads = 0;
  writes = 0;
  conflicts = 0;
  /** Called before each put is applied; tests use it to interleave a competing writer. */
  beforePut: ((item: ViewItem, expectedVersion: number) => void) | undefined;
  /**
   * Whether a lost conditional put returns the stored item, as DynamoDB does with
   * `ReturnValuesOnConditionCheckFailure` (false: the writer must read it, as from a store that cannot).
   */
  returnsStoredOnConflict = true;
  /** Called before each checkpoint write; throw from it to make the write fail. */
  beforeCheckpoint: ((topic: string, partition: number, nextOffset: string) => void) | undefined;

  async readItems(keys: readonly { id: string; key: ItemKey }[]): Promise<Map<string, ViewItem>> {
    const out = new Map<string, ViewItem>();
    for (const { id } of keys) {
      this.reads += 1;
      const item = this.items.get(id);
      if (item !== undefined) out.set(id, structuredClone(item));
    }
    return out;
  }

  async readItem(key: ItemKey): Promise<ViewItem | undefined> {
    this.reads += 1;
    const item = this.items.get(itemId(key));
    return item === undefined ? undefined : structuredClone(item);
  }

  async putItem(item: ViewItem, expectedVersion: number): Promise<void> {
    this.beforePut?.(item, expectedVersion);
    const id = itemId(item);
    const stored = this.items.get(id);
    if ((stored?.version ?? 0) !== expectedVersion) {
      this.conflicts += 1;
      throw new WriteConflictError(
        `item ${id} is at version ${stored?.version ?? 0}, not ${expectedVersion}`,
        this.returnsStoredOnConflict && stored !== undefined ? { item: structuredClone(stored) } : undefined,
        { retriable: true },
      );
    }
    this.writes += 1;
    this.items.set(id, structuredClone(item));
  }

  async readWindows(pk: string, startBelow: number, endAbove: number): Promise<ViewItem[]> {
    this.reads += 1;
    return [...this.items.values()]
      .filter((item) => item.pk === pk && item.windowStart !== undefined && item.windowStart < startBelow && item.windowEnd! > endAbove)
      .sort((a, b) => a.windowStart! - b.windowStart!)
      .map((item) => structuredClone(item));
  }

  async writeAtomically(puts: readonly { item: ViewItem; expectedVersion: number }[], deletes: readonly { key: ItemKey; version: number }[]): Promise<void> {
    for (const { item, expectedVersion } of puts) this.beforePut?.(item, expectedVersion);
    const stale =
      puts.find(({ item, expectedVersion }) => (this.items.get(itemId(item))?.version ?? 0) !== expectedVersion) ??
      deletes.find(({ key, version }) => this.items.get(itemId(key))?.version !== version);
    if (stale !== undefined) {
      this.conflicts += 1;
      throw new EngineError('WRITE_CONFLICT', 'a transaction condition failed: an item changed since it was read', { retriable: true });
    }
    for (const { key } of deletes) this.items.delete(itemId(key));
    for (const { item } of puts) {
      this.writes += 1;
      this.items.set(itemId(item), structuredClone(item));
    }
  }

  async writeCheckpoint(topic: string, partition: number, nextOffset: string, streamTime?: Readonly<Record<string, number>>): Promise<void> {
    this.beforeCheckpoint?.(topic, partition, nextOffset);
    const sk = checkpointKey(topic, partition).sk;
    const stored = this.checkpoints.get(sk);
    // As in DynamoDB: a checkpoint never moves backwards, and the same offset again only raises
    // stream times (a stale task's checkpoint there may carry older ones).
    if (stored !== undefined && BigInt(stored) > BigInt(nextOffset)) return;
    if (stored !== undefined && BigInt(stored) === BigInt(nextOffset)) {
      if (streamTime === undefined) return;
      const times = this.streamTimes.get(sk) ?? {};
      for (const [view, time] of Object.entries(streamTime)) if (!(times[view]! >= time)) times[view] = time;
      this.streamTimes.set(sk, times);
      return;
    }
    this.checkpoints.set(sk, nextOffset);
    if (streamTime !== undefined) this.streamTimes.set(sk, { ...streamTime });
    else this.streamTimes.delete(sk);
  }

  async readCheckpoint(topic: string, partition: number): Promise<string | undefined> {
    return this.checkpoints.get(checkpointKey(topic, partition).sk);
  }

  async readCheckpointState(topic: string, partition: number): Promise<CheckpointState | undefined> {
    const sk = checkpointKey(topic, partition).sk;
    const offset = this.checkpoints.get(sk);
    return offset === undefined ? undefined : { partition, offset, streamTime: { ...this.streamTimes.get(sk) } };
  }

  async readCheckpointStates(topic: string): Promise<CheckpointState[]> {
    const prefix = checkpointKey(topic, 0).sk.slice(0, -1);
    const out: CheckpointState[] = [];
    for (const [sk, offset] of this.checkpoints) {
      if (!sk.startsWith(prefix) || !/^\d+$/.test(sk.slice(prefix.length))) continue;
      out.push({ partition: Number(sk.slice(prefix.length)), offset, streamTime: { ...this.streamTimes.get(sk) } });
    }
    return out;
  }

  async queryClosing(shard: string, closedBelow: number, limit: number, startAfter?: Readonly<Record<string, unknown>>): Promise<ClosingPage> {
    const due = [...this.items.values()]
      .filter((item) => item.closeShard === shard && item.closeAt !== undefined && item.closeAt < closedBelow)
      .sort((a, b) => a.closeAt! - b.closeAt! || itemId(a).localeCompare(itemId(b)));
    const from = startAfter === undefined ? 0 : due.findIndex((item) => itemId(item) === startAfter.id) + 1;
    const page = due.slice(from, from + limit);
    const last = page[page.length - 1];
    return {
      keys: page.map((item) => ({ pk: item.pk, sk: item.sk })),
      ...(from + limit < due.length && last !== undefined ? { next: { id: itemId(last) } } : {}),
    };
  }

  async clearClosing(item: ViewItem): Promise<boolean> {
    const stored = this.items.get(itemId(item));
    if (stored === undefined || stored.version !== item.version || stored.closeShard !== item.closeShard) return false;
    const { closeShard: _s, closeAt: _a, ...rest } = stored;
    this.items.set(itemId(item), rest);
    return true;
  }
}

/** A record to push through the driver. `value` objects and strings are JSON/UTF-8 encoded. */
export interface TestRecord {
  readonly value: unknown;
  readonly key?: string | Buffer | null;
  /** @default 0 */
  readonly partition?: number;
  readonly headers?: Record<string, string | Buffer>;
  /** @default the driver clock */
  readonly timestampMs?: number;
}

/** A change as seen by a trigger in the driver. */
export interface DeliveredChange {
  readonly trigger: string;
  readonly function: string;
  readonly change: Change;
}

/** Options of {@link createTestDriver}. */
export interface TestDriverOptions {
  /**
   * Makes a trigger's delivery fail (the driver then dead-letters the change, as the
   * dispatcher does after its retries). Return true to fail.
   * @default every delivery succeeds
   */
  failDelivery?: (trigger: Trigger<any>, change: Change) => boolean;
  /**
   * Cache size of the driver's engine; 0 disables the cache (every batch reads the table).
   * @default 10_000
   */
  cacheMaxEntries?: number;
  /**
   * The wall clock's starting point; {@link TestDriver.advanceWallClock} moves it on.
   * @default () => new Date(0) — deterministic timestamps
   */
  now?: () => Date;
  /**
   * Partitions per source topic, for windowed views: a final result waits for the stream time
   * of every partition of its source (see {@link TestDriver.advanceStreamTime}).
   * @default one more than the highest partition records were sent to
   */
  partitions?: Readonly<Record<string, number>>;
}

/** The in-memory engine of {@link createTestDriver}. */
export interface TestDriver {
  /**
   * Appends records to `topic` (offsets assigned per partition) and processes them, one batch
   * per partition, like one consumer poll.
   */
  send(topic: string, records: readonly TestRecord[]): Promise<BatchResult[]>;
  /**
   * Processes the already-sent records of a partition from `fromOffset` again, as Kafka does
   * after a crash before the commit. The offset fence must make this a no-op for the views.
   */
  redeliver(topic: string, partition: number, fromOffset: number): Promise<BatchResult>;
  /** Forgets the engine's cache, as a restarted engine process would. */
  restart(): void;
  /**
   * Current state of a view key (bigints as `bigint`, as reads return them), or undefined when
   * the key has no item; for a windowed view, of the key's window starting at `windowStart`.
   */
  state<S = unknown>(view: string, key: ViewKey, windowStart?: number): S | undefined;
  /** The stored item of a view key (state in its stored form, bigints tagged; version, offsets, bookkeeping), of one window for a windowed view. */
  item(view: string, key: ViewKey, windowStart?: number): ViewItem | undefined;
  /** A windowed view key's stored windows, earliest first, with their states. */
  windows<S = unknown>(view: string, key: ViewKey): { window: WindowBounds; state: S }[];
  /**
   * Raises the stream time of every windowed view of `topic` on `partition` to at least
   * `timeMs`, as if an event of that time had been read (it is checkpointed), then delivers
   * the final results that closes.
   */
  advanceStreamTime(topic: string, partition: number, timeMs: number): Promise<void>;
  /**
   * Moves the wall clock on by `ms` (record timestamps default to it). Partitions quiet for a
   * view's `idleCloseMs` get their stream time advanced, and the final results that closes are
   * delivered.
   */
  advanceWallClock(ms: number): Promise<void>;
  /** The wall clock now, epoch ms. */
  wallClockMs(): number;
  /** Late events counted per windowed view. */
  readonly lateEvents: Readonly<Record<string, number>>;
  /** Every change handed to triggers, in delivery order. */
  readonly changes: readonly DeliveredChange[];
  /** Every dead letter, in order. */
  readonly deadLetters: readonly DeadLetter[];
  /** Next offset to consume per `topic/partition`, as the engine checkpointed it. */
  checkpoint(topic: string, partition: number): string | undefined;
  /** The consumer group's committed offset per `topic/partition` (committed after the checkpoint). */
  committed(topic: string, partition: number): string | undefined;
  /** The in-memory table (writes, reads, conflicts counters; `beforePut` hook). */
  readonly store: MemoryItemStore;
  /**
   * The records of a partition as appended so far: those sent, and those the engine produced to
   * a repartition topic (`<app>.<view>.repartition`, folded as soon as a batch forwarded them).
   */
  records(topic: string, partition: number): readonly SourceRecord[];
}

/**
 * Creates an in-memory engine for an app.
 *
 * @example
 * const driver = createTestDriver(app);
 * await driver.send('bookings', [{ value: { classId: 'yoga', type: 'booked' } }]);
 * expect(driver.state('classAttendance', 'yoga')).toEqual({ booked: 1 });
 */
export function createTestDriver(app: App, options: TestDriverOptions = {}): TestDriver {
  if (!app || app.kind !== 'app') {
    throw new EngineError('INVALID_ARGUMENT', `createTestDriver needs a defineApp() result, received ${String(app)}`);
  }
  const startClock = options.now ?? (() => new Date(0));
  let wallAdvanceMs = 0;
  const now = (): Date => new Date(startClock().getTime() + wallAdvanceMs);
  const createdAtMs = now().getTime();
  /** Wall clock of the last record sent per `topic/partition` (idle close). */
  const lastReadMs = new Map<string, number>();
  const lateEvents: Record<string, number> = {};
  const store = new MemoryItemStore();
  const log = new Map<string, SourceRecord[]>();
  const changes: DeliveredChange[] = [];
  const deadLetters: DeadLetter[] = [];
  const deadLetterSink: DeadLetterSink = {
    async send(letters) {
      deadLetters.push(...letters);
    },
  };
  const changeSink: ChangeSink = {
    async deliver(trigger, batch) {
      const outcomes: ChangeOutcome[] = [];
      for (const change of batch) {
        if (options.failDelivery?.(trigger, change) === true) {
          deadLetters.push({
            kind: 'trigger',
            code: 'TRIGGER_DELIVERY_FAILED',
            reason: `trigger "${trigger.name}": delivery failed in the test driver`,
            trigger: trigger.name,
            view: trigger.view.name,
            key: change.key,
            function: trigger.function,
            change,
          });
          outcomes.push('dead-lettered');
        } else {
          changes.push({ trigger: trigger.name, function: trigger.function, change: structuredClone(change) });
          outcomes.push('delivered');
        }
      }
      return outcomes;
    },
  };
  const cacheMaxEntries = options.cacheMaxEntries ?? 10_000;
  let processor!: BatchProcessor;
  let cache!: StateCache;
  const partitionCount = (topic: string): number | undefined => {
    const given = options.partitions?.[topic];
    if (given !== undefined) return given;
    let highest = -1;
    for (const key of log.keys()) {
      const slash = key.lastIndexOf('/');
      if (key.slice(0, slash) === topic) highest = Math.max(highest, Number(key.slice(slash + 1)));
    }
    return highest < 0 ? undefined : highest + 1;
  };
  const closer = new WindowCloser({
    views: app.views,
    triggers: app.triggers,
    store,
    changes: changeSink,
    deadLetters: deadLetterSink,
    partitionCount,
    closed: (id) => cache.delete(id),
  });
  // The final results due on every partition (in the driver, one task owns them all).
  const closeWindows = async (): Promise<void> => {
    for (const topic of app.sourceTopics) {
      if (!closer.closes(topic)) continue;
      const count = partitionCount(topic) ?? 0;
      for (let partition = 0; partition < count; partition++) await closer.closeDue(topic, partition);
    }
  };
  // The group's committed offsets; the production commit pipeline writes them, as in a task.
  const committed = new Map<string, string>();
  // A checkpoint that fails fails the driver call with the store's own error, as process() would.
  let checkpointError: unknown;
  const newCommitPipeline = (): CommitPipeline => new CommitPipeline({
    checkpoint: async (topic, partition, nextOffset) => {
      try {
        await processor.checkpoint(topic, partition, nextOffset);
      } catch (error) {
        checkpointError ??= error;
        throw error;
      }
    },
    commit: async (topic, partition, nextOffset) => {
      committed.set(`${topic}/${partition}`, nextOffset);
    },
    generation: () => 0,
    failed: () => false,
    fail: () => {},
    // The memory store never fails transiently: one attempt, no waiting.
    retryPolicy: { maxAttempts: 1, storageOutageBudgetMs: 0, initialBackoffMs: 0, maxBackoffMs: 0 },
    degraded: () => {},
    log: createLogger('error', () => {}),
  });
  let commits = newCommitPipeline();
  // Repartitioned views: forwarded records are appended to the repartition topic (partitioned by
  // the view key as the runtime's producer does) and folded after the batch that forwarded them.
  const repartitionTopics = new Set(app.internalTopics);
  const repartitionFolded = new Map<string, number>();
  const partitioner = Partitioners.DefaultPartitioner();
  const repartitionSink: RepartitionSink = {
    async forward(batches) {
      for (const { topic, messages } of batches) {
        const source = app.views.find((v) => repartitionTopic(app.name, v.name, v.version) === topic)!.source;
        const count = options.partitions?.[topic] ?? options.partitions?.[source] ?? partitionCount(source) ?? 1;
        const partitionMetadata = Array.from({ length: count }, (_, partitionId) => ({ partitionId, leader: 0, replicas: [0], isr: [0], partitionErrorCode: 0 }));
        for (const message of messages) {
          const partition = partitioner({ topic, partitionMetadata, message: { key: message.key, value: message.value } });
          const partitionLog = log.get(`${topic}/${partition}`) ?? [];
          log.set(`${topic}/${partition}`, partitionLog);
          partitionLog.push({ topic, partition, offset: String(partitionLog.length), key: Buffer.from(message.key), value: message.value, timestampMs: Number(message.timestamp), headers: { ...message.headers } });
        }
      }
    },
  };
  const foldRepartitioned = async (): Promise<BatchResult[]> => {
    const results: BatchResult[] = [];
    for (const [key, records] of log) {
      const slash = key.lastIndexOf('/');
      const topic = key.slice(0, slash);
      if (!repartitionTopics.has(topic)) continue;
      const from = repartitionFolded.get(key) ?? 0;
      if (from >= records.length) continue;
      repartitionFolded.set(key, records.length);
      results.push(await run(topic, Number(key.slice(slash + 1)), records.slice(from)));
    }
    return results;
  };
  // One batch of one partition as a task runs it: apply, then checkpoint and commit behind it.
  const run = async (topic: string, partition: number, records: readonly SourceRecord[]): Promise<BatchResult> => {
    const result = await processor.apply(topic, partition, records);
    if (records.length > 0) await commits.schedule(topic, partition, result.nextOffset, 0).tail;
    if (repartitionTopics.has(topic) && records.length > 0) {
      const key = `${topic}/${partition}`;
      repartitionFolded.set(key, Math.max(repartitionFolded.get(key) ?? 0, Number(result.nextOffset)));
    }
    if (checkpointError !== undefined) {
      const error = checkpointError;
      checkpointError = undefined;
      throw error;
    }
    for (const [view, count] of Object.entries(result.late)) lateEvents[view] = (lateEvents[view] ?? 0) + count;
    await closeWindows();
    return result;
  };
  // A stream time raised without a record: checkpointed (through the pipeline) before anything closes by it.
  const advance = async (topic: string, partition: number, view: string, timeMs: number): Promise<void> => {
    const offset = await processor.advanceStreamTime(topic, partition, view, timeMs);
    if (offset !== undefined) await commits.schedule(topic, partition, offset, 0).tail;
  };
  const build = () => {
    // A restart is a new process: a new pipeline, as a task has.
    commits = newCommitPipeline();
    cache = new StateCache({ maxEntries: cacheMaxEntries, maxBytes: 64 * 1024 * 1024 });
    processor = new BatchProcessor({
      app,
      store,
      cache,
      deadLetters: deadLetterSink,
      changes: changeSink,
      limits: { writeConcurrency: 4, maxConflictRetries: 10 },
      now,
      repartition: repartitionSink,
    });
  };
  build();

  const toBuffer = (value: unknown): Buffer | null => {
    if (value === null) return null;
    if (Buffer.isBuffer(value)) return value;
    if (typeof value === 'string') return Buffer.from(value, 'utf8');
    return Buffer.from(JSON.stringify(value), 'utf8');
  };

  return {
    async send(topic, records) {
      const byPartition = new Map<number, SourceRecord[]>();
      for (const input of records) {
        const partition = input.partition ?? 0;
        const partitionLog = log.get(`${topic}/${partition}`) ?? [];
        log.set(`${topic}/${partition}`, partitionLog);
        const headers: Record<string, Buffer> = {};
        for (const [name, value] of Object.entries(input.headers ?? {})) headers[name] = toBuffer(value)!;
        const record: SourceRecord = {
          topic,
          partition,
          offset: String(partitionLog.length),
          key: input.key === undefined || input.key === null ? null : toBuffer(input.key),
          value: toBuffer(input.value),
          timestampMs: input.timestampMs ?? now().getTime(),
          headers,
        };
        partitionLog.push(record);
        lastReadMs.set(`${topic}/${partition}`, now().getTime());
        const batch = byPartition.get(partition) ?? [];
        batch.push(record);
        byPartition.set(partition, batch);
      }
      const results: BatchResult[] = [];
      for (const [partition, batch] of byPartition) results.push(await run(topic, partition, batch));
      await foldRepartitioned();
      return results;
    },
    async redeliver(topic, partition, fromOffset) {
      const records = (log.get(`${topic}/${partition}`) ?? []).slice(fromOffset);
      const result = await run(topic, partition, records);
      await foldRepartitioned();
      return result;
    },
    records(topic, partition) {
      return [...(log.get(`${topic}/${partition}`) ?? [])];
    },
    restart() {
      build();
    },
    state<S>(view: string, key: ViewKey, windowStart?: number): S | undefined {
      const item = store.items.get(itemId(viewItemKey(view, key, windowStart)));
      // A tombstone (deleted by its reducer) reads as no item, as in the SDK's reads.
      return item === undefined || item.state === undefined ? undefined : decodeState<S>(item.state);
    },
    item(view, key, windowStart) {
      const item = store.items.get(itemId(viewItemKey(view, encodeViewKey(key), windowStart)));
      return item === undefined ? undefined : structuredClone(item);
    },
    windows<S>(view: string, key: ViewKey) {
      const { pk } = viewItemKey(view, key, 0);
      return [...store.items.values()]
        .filter((item) => item.pk === pk && item.windowStart !== undefined && item.windowEnd !== undefined && item.state !== undefined)
        .sort((a, b) => a.windowStart! - b.windowStart!)
        .map((item) => ({ window: { start: item.windowStart!, end: item.windowEnd! }, state: decodeState<S>(item.state) }));
    },
    async advanceStreamTime(topic, partition, timeMs) {
      for (const view of app.views) {
        if (view.window !== undefined && view.source === topic) await advance(topic, partition, streamTimeKey(view), timeMs);
      }
      await closeWindows();
    },
    async advanceWallClock(ms) {
      if (!Number.isFinite(ms) || ms < 0) throw new EngineError('INVALID_ARGUMENT', `advanceWallClock needs a non-negative number of ms, received ${String(ms)}`);
      wallAdvanceMs += ms;
      const wall = now().getTime();
      for (const topic of app.sourceTopics) {
        const count = partitionCount(topic) ?? 0;
        for (let partition = 0; partition < count; partition++) {
          const last = lastReadMs.get(`${topic}/${partition}`) ?? createdAtMs;
          for (const { view, timeMs } of idleAdvances(app.views, topic, last, wall)) await advance(topic, partition, view, timeMs);
        }
      }
      await closeWindows();
    },
    wallClockMs: () => now().getTime(),
    lateEvents,
    changes,
    deadLetters,
    checkpoint(topic, partition) {
      return store.checkpoints.get(checkpointKey(topic, partition).sk);
    },
    committed(topic, partition) {
      return committed.get(`${topic}/${partition}`);
    },
    store,
  };
}
