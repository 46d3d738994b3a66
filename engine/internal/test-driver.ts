/**
 * An in-memory driver for unit tests (like Kafka Streams' TopologyTestDriver): push records
 * through an app's views and read the resulting state, writes, trigger changes and dead
 * letters. It runs the engine's own batch processor against an in-memory table with the same
 * conditional-write semantics as DynamoDB, so tests exercise the real fold, fence and
 * bookkeeping code.
 */
import type { App, Change, SourceRecord, Trigger, ViewKey } from '../../sdk/index.ts';
import { checkpointKey, decodeState, encodeViewKey, viewItemKey, type ItemKey, type ViewItem } from '../../sdk/contract/index.ts';
import type { ChangeOutcome, ChangeSink, DeadLetterSink } from './change-sink.ts';
import type { DeadLetter } from './dead-letter.ts';
import { EngineError } from './errors.ts';
import { itemId } from './fold.ts';
import { BatchProcessor, type BatchResult, type ItemStore } from './processor.ts';
import { StateCache } from './state-cache.ts';
import { CommitPipeline } from './commit-pipeline.ts';
import { createLogger } from './log.ts';

/** An item store in memory, with DynamoDB's conditional-write semantics. */
export class MemoryItemStore implements ItemStore {
  readonly items = new Map<string, ViewItem>();
  readonly checkpoints = new Map<string, string>();
  reads = 0;
  writes = 0;
  conflicts = 0;
  /** Called before each put is applied; tests use it to interleave a competing writer. */
  beforePut: ((item: ViewItem, expectedVersion: number) => void) | undefined;
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
      throw new EngineError('WRITE_CONFLICT', `item ${id} is at version ${stored?.version ?? 0}, not ${expectedVersion}`, {
        retriable: true,
      });
    }
    this.writes += 1;
    this.items.set(id, structuredClone(item));
  }

  async writeCheckpoint(topic: string, partition: number, nextOffset: string): Promise<void> {
    this.beforeCheckpoint?.(topic, partition, nextOffset);
    this.checkpoints.set(checkpointKey(topic, partition).sk, nextOffset);
  }

  async readCheckpoint(topic: string, partition: number): Promise<string | undefined> {
    return this.checkpoints.get(checkpointKey(topic, partition).sk);
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
  /** @default () => new Date(0) — deterministic timestamps */
  now?: () => Date;
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
  /** Current state of a view key (bigints as `bigint`, as reads return them), or undefined when the key has no item. */
  state<S = unknown>(view: string, key: ViewKey): S | undefined;
  /** The stored item of a view key (state in its stored form, bigints tagged; version, offsets, bookkeeping). */
  item(view: string, key: ViewKey): ViewItem | undefined;
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
  const now = options.now ?? (() => new Date(0));
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
  // One batch of one partition as a task runs it: apply, then checkpoint and commit behind it.
  const run = async (topic: string, partition: number, records: readonly SourceRecord[]): Promise<BatchResult> => {
    const result = await processor.apply(topic, partition, records);
    if (records.length > 0) await commits.schedule(topic, partition, result.nextOffset, 0).tail;
    if (checkpointError !== undefined) {
      const error = checkpointError;
      checkpointError = undefined;
      throw error;
    }
    return result;
  };
  const build = () => {
    // A restart is a new process: a new pipeline, as a task has.
    commits = newCommitPipeline();
    processor = new BatchProcessor({
      app,
      store,
      cache: new StateCache({ maxEntries: cacheMaxEntries, maxBytes: 64 * 1024 * 1024 }),
      deadLetters: deadLetterSink,
      changes: changeSink,
      limits: { writeConcurrency: 4, maxConflictRetries: 10 },
      now,
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
        const batch = byPartition.get(partition) ?? [];
        batch.push(record);
        byPartition.set(partition, batch);
      }
      const results: BatchResult[] = [];
      for (const [partition, batch] of byPartition) results.push(await run(topic, partition, batch));
      return results;
    },
    async redeliver(topic, partition, fromOffset) {
      const records = (log.get(`${topic}/${partition}`) ?? []).slice(fromOffset);
      return run(topic, partition, records);
    },
    restart() {
      build();
    },
    state<S>(view: string, key: ViewKey): S | undefined {
      const item = store.items.get(itemId(viewItemKey(view, key)));
      return item === undefined ? undefined : decodeState<S>(item.state);
    },
    item(view, key) {
      const item = store.items.get(itemId(viewItemKey(view, encodeViewKey(key))));
      return item === undefined ? undefined : structuredClone(item);
    },
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
