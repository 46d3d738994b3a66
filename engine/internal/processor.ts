/**
 * Processes one consumer batch (one topic-partition) end to end, independent of Kafka:
 * route -> load states (cache, then one batched read) -> fold and write each changed item once,
 * conditionally (re-read and re-fold on a lost condition) -> dead letters -> trigger changes
 * -> checkpoint (trigger bookkeeping is cleared in the cache and settled by the checkpoint; the
 * rules are the ledger's, see `ledger.ts`). The caller commits offsets after it resolves.
 * Used by the Kafka runtime and by the in-memory test driver.
 */
import type { App, Change, SourceRecord, Trigger, View } from '../../sdk/index.ts';
import { offsetsKey, type ItemKey, type ViewItem } from '../../sdk/contract/index.ts';
import type { ChangeOrigin, ChangeOutcome, ChangeSink, DeadLetterSink } from './change-sink.ts';
import { KeyedMutex, mapLimit } from './concurrency.ts';
import type { DeadLetter, PoisonDeadLetter } from './dead-letter.ts';
import { EngineError, errorInfo, WriteConflictError } from './errors.ts';
import { attachLookups, deriveGroupEvents, LookupCache } from './tables.ts';
import { foldItem, itemId, routeRecords, snapshotOf, type ItemEvents, type ItemSnapshot } from './fold.ts';
import { clearPending, settleJudged, TriggerLedger, type GateList, type JudgeGate, type PendingDelivery } from './ledger.ts';
import { planSessions, sessionReadRange } from './sessions.ts';
import { coordinates } from './dead-letter.ts';
import { NO_STREAM_TIME, StreamClock, streamTimeKey, type PartitionStreamTime } from './windows.ts';
import { StateCache } from './state-cache.ts';
import { attachVia, forwardMessages, originalRecords, RepartitionPlan, rekeyedViews, type RepartitionSink } from './repartition.ts';

/** DynamoDB-shaped storage of view items and checkpoints, as the processor needs it. */
export interface ItemStore {
  /** Reads items by key (consistently); absent items are missing from the map. Keyed by item id. */
  readItems(keys: readonly { id: string; key: ItemKey }[]): Promise<Map<string, ViewItem>>;
  /** Reads one item consistently. */
  readItem(key: ItemKey): Promise<ViewItem | undefined>;
  /**
   * Writes a whole item if its stored version is `expectedVersion` (0 = must not exist).
   * Throws an {@link EngineError} `WRITE_CONFLICT` when the condition fails.
   */
  putItem(item: ViewItem, expectedVersion: number): Promise<void>;
  /**
   * Records that everything below `nextOffset` of the partition is durable, with the stream
   * time of its windowed views at that offset (view -> epoch ms; omitted for a topic without).
   */
  writeCheckpoint(topic: string, partition: number, nextOffset: string, streamTime?: Readonly<Record<string, number>>): Promise<void>;
  /** The partition's checkpoint (next offset to consume), read consistently; undefined when none. */
  readCheckpoint(topic: string, partition: number): Promise<string | undefined>;
  /** The partition's checkpoint with its stream times, read consistently; undefined when none. */
  readCheckpointState(topic: string, partition: number): Promise<CheckpointState | undefined>;
  /**
   * The windowed items of one key (item collection `pk`) that start below `startBelow` and end
   * above `endAbove`, read consistently (session views: the sessions a batch may touch).
   */
  readWindows(pk: string, startBelow: number, endAbove: number): Promise<ViewItem[]>;
  /**
   * Puts and deletes items atomically (one transaction), each conditional on its stored
   * version (0 = must not exist). Throws `WRITE_CONFLICT` when any condition fails.
   */
  writeAtomically(puts: readonly { item: ViewItem; expectedVersion: number }[], deletes: readonly { key: ItemKey; version: number }[]): Promise<void>;
}

/** A checkpoint as the window logic reads it. */
export interface CheckpointState {
  readonly partition: number;
  /** Next offset to consume, decimal. */
  readonly offset: string;
  /** View -> stream time at `offset` (epoch ms). */
  readonly streamTime: Readonly<Record<string, number>>;
}

/** Limits of a {@link BatchProcessor}. */
export interface ProcessorLimits {
  /** Item writes in flight at once per batch. */
  readonly writeConcurrency: number;
  /** Conditional-write attempts per item and batch before giving up. */
  readonly maxConflictRetries: number;
}

/** Counters of one processed batch. */
export interface BatchResult {
  readonly topic: string;
  readonly partition: number;
  readonly records: number;
  /** Offset to commit: one past the batch's last record. */
  readonly nextOffset: string;
  /** Events folded into view states (per view). */
  readonly applied: number;
  /** Events skipped by the offset fence (already applied before, e.g. after a crash). */
  readonly skipped: number;
  readonly filtered: number;
  readonly writes: number;
  readonly conflicts: number;
  /** Items read from the table (cache misses and re-reads). */
  readonly reads: number;
  /**
   * Cache misses written first without a read, as keys never written before (see
   * {@link NewKeyShare}), and of those, the ones that existed after all (folded again from the
   * item the lost write returned).
   */
  readonly firstWrites: { readonly unread: number; readonly existed: number };
  readonly deadLetters: number;
  readonly changesDelivered: number;
  /** Late events per windowed view (not applied; dead-lettered or dropped by the view's `onLate`). */
  readonly late: Readonly<Record<string, number>>;
  /**
   * Milliseconds spent reading the states the cache did not hold, decoding and folding (CPU),
   * writing items (wall time, writes in flight together), delivering changes and dead letters.
   */
  readonly timings: { readonly readMs: number; readonly decodeFoldMs: number; readonly writeMs: number; readonly deliverMs: number };
}

/** Log callback of the processor. */
export type ProcessorLog = (level: 'debug' | 'info' | 'warn' | 'error', msg: string, fields?: Record<string, unknown>) => void;

/** Dependencies of a {@link BatchProcessor}. */
export interface ProcessorDeps {
  readonly app: App;
  readonly store: ItemStore;
  readonly cache: StateCache;
  readonly deadLetters: DeadLetterSink;
  readonly changes: ChangeSink;
  readonly limits: ProcessorLimits;
  readonly log?: ProcessorLog;
  readonly now?: () => Date;
  /** Produces the records of repartitioned views to their repartition topics (required when the app has any). */
  readonly repartition?: RepartitionSink;
  /**
   * Per repartition topic, per partition, the offset below which the view's build folded the
   * topic (`versions.<v>.repartitionEnds`, repartition-build.ts): live batches leave those
   * records out (no item reads, writes or dead letters for them), so what the build folded is
   * not folded again and a poison copy is not dead-lettered twice.
   */
  readonly repartitionFloors?: ReadonlyMap<string, ReadonlyMap<number, bigint>>;
  /**
   * Live folding beside builds (build.ts): a windowed view takes the stream time its build left
   * on a partition, once per stint (see `BatchProcessor.adoptBuildStreamTimes`).
   * @default false (a build's own processor, the test driver)
   */
  readonly followsBuilds?: boolean;
}

/** The topic a view version's build keeps its checkpoints under: `@` never occurs in a Kafka topic name. */
export function buildCheckpointTopic(topic: string, segment: string): string {
  return `${topic}@${segment}`;
}

/** Outcome of folding and writing one item. */
interface ItemOutcome {
  readonly item: ItemEvents;
  /** This batch's turn to judge the item's triggers (set when the item has changes owed). */
  readonly gate?: JudgeGate;
  readonly snapshot: ItemSnapshot;
  readonly applied: number;
  readonly skipped: number;
  readonly wrote: boolean;
  readonly conflicts: number;
  readonly reads: number;
  readonly deadLetters: PoisonDeadLetter[];
  /** Events left for a later write of this batch (see `FoldResult.deferred`). */
  readonly deferred: ItemEvents['events'];
}

/**
 * Processes consumer batches of one app. One instance per engine process; safe to call
 * concurrently for different partitions (items shared by them are folded one at a time).
 */
export class BatchProcessor {
  private readonly mutex = new KeyedMutex();
  /** Trigger bookkeeping: judging turns, `before`s, settling (see {@link TriggerLedger}). */
  private readonly ledger: TriggerLedger;

  /** Source topics of windowed views: their partitions keep a stream time. */
  private readonly windowedSources: ReadonlySet<string>;
  /** Whether a view aggregates a table (its events are derived from the table's rows, tables.ts). */
  private readonly aggregatesTables: boolean;
  /** Whether a view has enrichment lookups (tables.ts `attachLookups`). */
  private readonly looksUp: boolean;
  /** Per view, how often its cache misses were keys never written: whether a miss is read before its first write. */
  private readonly newKeys = new Map<string, NewKeyShare>();
  /**
   * Views other views aggregate over (tables.ts): their stored rows give the group events
   * before the rows are written, so a miss of theirs is always read first.
   */
  private readonly readFirst: ReadonlySet<string>;
  /** Per `topic/partition`, the stream time left by its last durable batch here (see windows.ts). */
  private readonly clocks = new Map<string, PartitionStreamTime>();
  /**
   * Per `topic/partition`, the stream times at the next offsets of batches applied and not yet
   * checkpointed, oldest first: a checkpoint stores the stream time of exactly its offset.
   */
  private readonly streamTimesAt = new Map<string, { next: bigint; times: Record<string, number>; earlierStint?: true }[]>();
  /** Per source topic, its windowed views: each may have a build's stream time to take. */
  private readonly builtWindowed = new Map<string, View<any, any>[]>();
  /** `<topic>/<partition>#<stream-time key>` whose build's stream time this stint has looked at. */
  private readonly adopted = new Set<string>();

  /** Rows of looked-up tables this task read or wrote, with when (tables.ts `LookupCache`). */
  private readonly lookupRows = new LookupCache();
  /** Names of the tables some view looks up: their writes here refresh {@link lookupRows}. */
  private readonly lookedUpTables: ReadonlySet<string>;
  /** Which views fold directly and which through a repartition topic (repartition.ts). */
  private readonly repartition: RepartitionPlan;
  /** Views already warned about as keyed unlike their Kafka key. */
  private readonly warnedRekeyed = new Set<string>();

  constructor(private readonly deps: ProcessorDeps) {
    this.ledger = new TriggerLedger(deps.app.triggers);
    this.repartition = new RepartitionPlan(deps.app);
    this.lookedUpTables = new Set(deps.app.views.flatMap((v) => Object.values(v.lookup ?? {}).map((l) => l.table.name)));
    this.windowedSources = new Set(deps.app.views.filter((v) => v.window !== undefined).map((v) => v.source));
    this.aggregatesTables = deps.app.views.some((v) => v.over !== undefined);
    this.looksUp = deps.app.views.some((v) => v.lookup !== undefined);
    this.readFirst = new Set(deps.app.views.flatMap((v) => (v.over !== undefined ? [v.over.name] : [])));
    if (deps.followsBuilds === true) {
      for (const view of deps.app.views) {
        if (view.window === undefined) continue;
        this.builtWindowed.set(view.source, [...(this.builtWindowed.get(view.source) ?? []), view]);
      }
    }
  }

  private newKeyShare(view: string): NewKeyShare {
    let share = this.newKeys.get(view);
    if (share === undefined) {
      share = new NewKeyShare();
      this.newKeys.set(view, share);
    }
    return share;
  }

  /**
   * Applies `records` (consecutive records of one partition, in offset order): resolves once
   * the view writes, dead letters and trigger deliveries of `records` are durable. The caller must then call {@link checkpoint}
   * (and only after it, commit) with `nextOffset`, in batch order per partition. `origin` fences
   * the trigger deliveries (see {@link ChangeOrigin}); a lost right rejects with `PARTITION_LOST`.
   */
  async apply(topic: string, partition: number, records: readonly SourceRecord[], origin: ChangeOrigin = {}): Promise<BatchResult> {
    if (!this.windowedSources.has(topic)) return this.applyBatch(topic, partition, records, origin);
    // One at a time with the partition's stream-time advances (idle close): a batch judges
    // lateness from the stream time an advance left, and an advance starts from the batch's.
    return this.mutex.run(streamLock(topic, partition), () => this.applyBatch(topic, partition, records, origin));
  }

  private async applyBatch(topic: string, partition: number, records: readonly SourceRecord[], origin: ChangeOrigin): Promise<BatchResult> {
    const { app, store, cache, limits } = this.deps;
    const now = this.deps.now ?? (() => new Date());
    if (this.builtWindowed.has(topic)) await this.adoptBuildStreamTimes(topic, partition, (v) => origin.skipViews?.has(v.name) !== true);
    const clock = this.windowedSources.has(topic) ? new StreamClock(await this.streamTimeOf(topic, partition)) : undefined;
    const started = performance.now();
    const { routed, forwarding } = this.route(topic, partition, records, clock, origin.skipViews);
    // Per batch: CPU of decoding, routing and folding, summed over its items (see foldAndWrite),
    // and the misses written first without a read.
    const routedMs = performance.now() - started;
    const cpu: BatchWork = { foldMs: routedMs, unread: new Set(), existed: 0 };
    this.stopOnPoison(routed.deadLetters);

    // Load: cache first, then one batched consistent read for the misses.
    const items = [...routed.items.values()];
    const lateByView: Record<string, number> = { ...routed.late };
    const snapshots = new Map<string, ItemSnapshot>();
    let reads = 0;
    const load = async (of: readonly ItemEvents[]): Promise<void> => {
      const misses: { id: string; key: ItemKey; view: string }[] = [];
      const uncached = of.filter((item) => {
        if (item.session) return false; // read through readWindows when folded
        const cached = cache.get(item.id);
        if (cached !== undefined) snapshots.set(item.id, cached);
        return cached === undefined;
      });
      // A light batch (few misses) is where a read is most of the latency, and the lost writes
      // of a wrong guess are few.
      const light = uncached.length <= LIGHT_BATCH_MISSES;
      for (const item of uncached) {
        if (!this.readFirst.has(item.view.name) && this.newKeyShare(item.view.name).worthGuessing(light)) {
          // Probably a key never written: its first write is conditional on the item not
          // existing, and a lost condition returns the item to fold again from (foldAndWrite).
          snapshots.set(item.id, snapshotOf(undefined));
          cpu.unread.add(item.id);
        } else misses.push({ id: item.id, key: item.itemKey, view: item.view.name });
      }
      reads += misses.length;
      if (misses.length > 0) {
        const loaded = await store.readItems(misses);
        for (const miss of misses) this.newKeyShare(miss.view).note(!loaded.has(miss.id));
        const read = misses.map((miss) => snapshotOf(loaded.get(miss.id)));
        await this.refreshCheckpoints(read);
        // Not cached yet: foldAndWrite caches each item once, after its write. Caching here as
        // well would make a batch with more new keys than the cache holds evict every key twice
        // (once loaded, once written).
        misses.forEach((miss, i) => snapshots.set(miss.id, this.ledger.settle(read[i]!)));
      }
    };
    const loadStarted = performance.now();
    await load(items);
    // Table aggregations: the group events of the rows' changes, derived from the rows as stored
    // (tables.ts); their items are written before the rows (`first`).
    const derived = this.aggregatesTables ? deriveGroupEvents(app.views, items, snapshots) : undefined;
    const first = derived?.items ?? [];
    if (derived !== undefined) {
      this.stopOnPoison(derived.deadLetters);
      await load(first);
    }
    // Enrichment lookups: the rows the events ask for, one consistent batched read (tables.ts).
    const looked = this.looksUp ? await attachLookups(items, (keys) => store.readItems(keys), { rows: this.lookupRows, nowMs: now().getTime() }) : undefined;
    if (looked !== undefined) {
      this.stopOnPoison(looked.deadLetters);
      reads += looked.reads;
    }

    const loaded = performance.now();
    const gates = this.ledger.openGates();
    // The batch's turns to judge items (see `deliverPending`) end with it, whatever happens.
    try {
      // Fold and write, one conditional write per changed item.
      const foldAll = (of: readonly ItemEvents[]) =>
        mapLimit(of, limits.writeConcurrency, (item) =>
          this.mutex.run(item.id, () =>
            item.session
              ? this.foldSessions(item, now(), gates, lateByView)
              : this.foldAndWrite(item, snapshots.get(item.id)!, now(), gates, true, cpu).then((o) => [o]),
          ),
        );
      const outcomes = [...(first.length > 0 ? (await foldAll(first)).flat() : []), ...(await foldAll(items)).flat()];

      // Dead letters, then trigger changes; both must be durable before the commit.
      const letters: DeadLetter[] = [...routed.deadLetters, ...(derived?.deadLetters ?? []), ...(looked?.deadLetters ?? [])];
      let applied = 0;
      let skipped = 0;
      let writes = 0;
      let conflicts = 0;
      const tally = (round: readonly ItemOutcome[]): void => {
        for (const outcome of round) {
          // A looked-up row this task just wrote is the freshest there is.
          if (outcome.wrote && this.lookedUpTables.has(outcome.item.view.name)) this.lookupRows.set(outcome.item.id, outcome.snapshot.stateJson, now().getTime());
          letters.push(...outcome.deadLetters);
          applied += outcome.applied;
          skipped += outcome.skipped;
          writes += outcome.wrote ? 1 : 0;
          conflicts += outcome.conflicts;
          reads += outcome.reads;
        }
      };
      tally(outcomes);
      const written = performance.now();
      let changesDelivered = await this.deliverPending(outcomes, letters, gates, origin);
      // A burst of one item's events whose states would not fit its bookkeeping (a trigger
      // takes every change) was split: the rest is folded and written now that the changes of
      // the first part are delivered, as often as it takes (each later write applies at least one).
      for (let round = outcomes; round.some((o) => o.deferred.length > 0); ) {
        round = await mapLimit(
          round.filter((o) => o.deferred.length > 0),
          limits.writeConcurrency,
          // From the cache, else the last write with its changes settled (the round before judged them all).
          (o) =>
            this.mutex.run(o.item.id, () =>
              this.foldAndWrite({ ...o.item, events: o.deferred }, clearPending(o.snapshot, Object.keys(o.snapshot.pending ?? {})), now(), gates, false, cpu),
            ),
        );
        tally(round);
        changesDelivered += await this.deliverPending(round, letters, gates, origin);
      }
      await forwarding;
      if (letters.length > 0) {
        try {
          await this.deps.deadLetters.send(letters);
        } catch (error) {
          throw new EngineError(
            'DEAD_LETTER_FAILED',
            `could not write ${letters.length} dead letter(s) of ${topic}/${partition} to "${app.deadLetterTopic}"; offsets stay uncommitted and the batch is retried`,
            { retriable: true, cause: error, context: { topic, partition } },
          );
        }
      }

      const last = records[records.length - 1];
      const nextOffset = last === undefined ? '0' : (BigInt(last.offset) + 1n).toString();
      if (clock !== undefined) this.noteStreamTime(topic, partition, clock.state());
      return {
        topic,
        partition,
        records: records.length,
        nextOffset,
        applied,
        skipped: skipped + routed.settled,
        filtered: routed.filtered,
        writes,
        conflicts,
        reads,
        firstWrites: { unread: cpu.unread.size, existed: cpu.existed },
        deadLetters: letters.length,
        changesDelivered,
        late: lateByView,
        timings: {
          readMs: loaded - loadStarted,
          decodeFoldMs: cpu.foldMs,
          // The fold of each item runs between its writes: what is left of the phase is writing.
          writeMs: Math.max(0, written - loaded - (cpu.foldMs - routedMs)),
          deliverMs: performance.now() - written,
        },
      };
    } finally {
      this.ledger.closeGates(gates);
    }
  }

  /**
   * Routes a batch: a repartition topic's records, turned back into the original ones, to their
   * view; a source's records to the views folding it directly, and (produced now, awaited before
   * the batch is durable) to the repartition topics of those folding it through one.
   */
  private route(topic: string, partition: number, records: readonly SourceRecord[], clock: StreamClock | undefined, skip?: ReadonlySet<string>): { routed: ReturnType<typeof routeRecords>; forwarding: Promise<void> } {
    const { app } = this.deps;
    const plan = this.repartition;
    const internal = plan.viewOf(topic);
    if (internal !== undefined) {
      const floor = this.deps.repartitionFloors?.get(topic)?.get(partition);
      const kept = floor === undefined ? records : records.filter((r) => BigInt(r.offset) >= floor);
      const originals = originalRecords(internal, kept);
      const routed = routeRecords([internal], originals.records);
      attachVia(routed.items.values(), originals.via);
      return { routed: { ...routed, deadLetters: [...originals.deadLetters, ...routed.deadLetters] }, forwarding: Promise.resolve() };
    }
    const direct = plan.active ? plan.directViews : app.views;
    const routed = routeRecords(skip === undefined || skip.size === 0 ? direct : direct.filter((v) => !skip.has(v.name)), records, clock);
    this.warnRekeyed(routed.items.values());
    const forwarded = plan.forwardedFrom(topic);
    if (forwarded.length === 0) return { routed, forwarding: Promise.resolve() };
    const sideways = routeRecords(forwarded, records);
    const batches = forwardMessages(app, sideways.items.values()).filter((b) => b.messages.length > 0);
    const sink = this.deps.repartition;
    let forwarding: Promise<void> = Promise.resolve();
    if (batches.length > 0) {
      if (sink === undefined) {
        throw new EngineError(
          'INTERNAL_ERROR',
          `view(s) ${forwarded.map((v) => `"${v.name}"`).join(', ')} fold through a repartition topic, but this processor has nothing to produce to it (give it a RepartitionSink)`,
          { context: { topic, partition } },
        );
      }
      forwarding = sink.forward(batches).catch((error: unknown) => {
        throw new EngineError(
          'REPARTITION_FAILED',
          `could not produce ${batches.reduce((n, b) => n + b.messages.length, 0)} record(s) of ${topic}/${partition} to ${batches.map((b) => `"${b.topic}"`).join(', ')} (${errorInfo(error).message}); offsets stay uncommitted and the batch is retried`,
          { retriable: true, cause: error, context: { topic, partition } },
        );
      });
      // Awaited before the batch is durable; until then a rejection must not go unhandled.
      forwarding.catch(() => {});
    }
    return {
      routed: { ...routed, deadLetters: [...routed.deadLetters, ...sideways.deadLetters], filtered: routed.filtered + sideways.filtered },
      forwarding,
    };
  }

  /** Logs once per view that it is keyed unlike its source's Kafka key (repartition.ts `rekeyedViews`). */
  private warnRekeyed(items: Iterable<ItemEvents>): void {
    const log = this.deps.log;
    if (log === undefined) return;
    for (const name of rekeyedViews(items)) {
      if (this.warnedRekeyed.has(name)) continue;
      this.warnedRekeyed.add(name);
      log('info', `view "${name}" is keyed unlike its source's Kafka key: events of one view key come from several partitions, so its state is one defined answer only if its reduce gives the same result in any interleaving of them (count, sum, min, max, a set); an order-sensitive reduce (latest, earliest, a capped list, topK) needs repartition: true (README, "Re-keyed views")`, { view: name });
    }
  }

  private stopOnPoison(letters: readonly PoisonDeadLetter[]): void {
    for (const letter of letters) {
      if (letter.code === 'LATE') continue; // late is not poison: the view's onLate decides
      const view = this.deps.app.views.find((v) => v.name === letter.view);
      if (view?.onPoison === 'stop') {
        throw new EngineError(
          'POISON_RECORD',
          `${letter.reason} (view "${letter.view}" has onPoison: 'stop', so the engine stops; fix the record or the view, or set onPoison: 'dead-letter')`,
          {
            context: {
              view: letter.view,
              topic: letter.record.topic,
              partition: letter.record.partition,
              offset: letter.record.offset,
              poisonCode: letter.code,
              ...(letter.key !== undefined ? { key: letter.key } : {}),
            },
          },
        );
      }
    }
  }

  /** `deferWhenFull`: see `FoldOptions.deferWhenFull` (the first round of a batch, not the later ones). */
  private async foldAndWrite(
    item: ItemEvents,
    loaded: ItemSnapshot,
    now: Date,
    gates: GateList,
    deferWhenFull: boolean,
    cpu: BatchWork,
  ): Promise<ItemOutcome> {
    const { store, cache, limits } = this.deps;
    const triggers = this.ledger.triggersOf(item.view.name);
    // Another batch of this process may have written the item since it was loaded.
    let snapshot = cache.peek(item.id) ?? loaded;
    let conflicts = 0;
    let reads = 0;
    /** Whether an unread miss was since read, or returned by a lost write. */
    let verified = false;
    for (;;) {
      const foldStarted = performance.now();
      const result = foldItem(item.view, item.key, snapshot, item.events, {
        triggers,
        now,
        deferWhenFull,
        ...(item.window !== undefined ? { window: item.window } : {}),
      });
      cpu.foldMs += performance.now() - foldStarted;
      this.stopOnPoison(result.deadLetters);
      // A miss written without a read: the first write tells whether the key was new.
      const unread = !verified && cpu.unread.has(item.id) && snapshot === loaded;
      if (result.write === undefined && unread) {
        // Nothing to write, so no condition tells whether the key existed: read it after all,
        // so that what a stored item owes (trigger bookkeeping left by a crash) is seen.
        reads += 1;
        verified = true;
        const read = snapshotOf(await store.readItem(item.itemKey));
        this.newKeyShare(item.view.name).note(read.version === 0);
        await this.refreshCheckpoints([read]);
        snapshot = this.ledger.settle(read);
        continue;
      }
      if (result.write === undefined) {
        if (cache.peek(item.id) === undefined) cache.set(item.id, snapshot);
        return {
          item,
          snapshot,
          applied: 0,
          skipped: result.skipped,
          wrote: false,
          conflicts,
          reads,
          deadLetters: result.deadLetters,
          deferred: result.deferred,
        };
      }
      try {
        await store.putItem(result.write.item, result.write.expectedVersion);
        if (unread) this.newKeyShare(item.view.name).note(true);
      } catch (error) {
        if (!(error instanceof EngineError) || error.code !== 'WRITE_CONFLICT') {
          cache.delete(item.id);
          throw error;
        }
        const stored = error instanceof WriteConflictError ? error.stored : undefined;
        verified = true;
        if (unread) {
          // Not a conflict with another writer: the key existed, unknown to this task.
          this.newKeyShare(item.view.name).note(false);
          cpu.existed += 1;
        } else conflicts += 1;
        if (conflicts >= limits.maxConflictRetries) {
          cache.delete(item.id);
          throw new EngineError(
            'CONFLICT_RETRIES_EXHAUSTED',
            `view "${item.view.name}" key "${item.key}": the item changed under ${conflicts} consecutive conditional writes; the batch is retried. Many engine tasks writing one hot key cause this; raise maxConflictRetries or spread the key`,
            { retriable: true, context: { view: item.view.name, key: item.key } },
          );
        }
        // Someone else wrote the item: fold this batch's events again from it as stored (as the
        // lost write returned it, else read again); the offset fence drops the events the other
        // writer already applied.
        if (stored === undefined) reads += 1;
        const reread = snapshotOf(stored !== undefined ? stored.item : await store.readItem(item.itemKey));
        await this.refreshCheckpoints([reread]);
        snapshot = this.ledger.settle(reread);
        cache.set(item.id, snapshot);
        continue;
      }
      cache.set(item.id, result.write.snapshot);
      // Registered under the item's lock, right after the write: turns follow version order.
      const gate = result.write.snapshot.pending !== undefined ? this.ledger.registerGate(item.id, gates) : undefined;
      return {
        item,
        ...(gate !== undefined ? { gate } : {}),
        snapshot: result.write.snapshot,
        applied: result.applied,
        skipped: result.skipped,
        wrote: true,
        conflicts,
        reads,
        deadLetters: result.deadLetters,
        deferred: result.deferred,
      };
    }
  }

  /**
   * Folds one session key's events: reads the stored sessions they may touch, plans which
   * sessions form and merge ({@link planSessions}), folds each, and writes each session with the
   * deletes of the sessions it absorbed in one transaction. A lost condition reads and plans again.
   * Session items are not cached: the plan needs the key's neighbouring sessions, one Query.
   */
  private async foldSessions(item: ItemEvents, now: Date, gates: GateList, lateByView: Record<string, number>): Promise<ItemOutcome[]> {
    const { store, limits } = this.deps;
    const view = item.view;
    const triggers = this.ledger.triggersOf(view.name);
    const range = sessionReadRange(view, item.events);
    let conflicts = 0;
    let reads = 0;
    for (;;) {
      reads += 1;
      const read = (await store.readWindows(item.itemKey.pk, range.startBelow, range.endAbove)).filter(
        (i) => i.windowStart !== undefined && i.windowEnd !== undefined,
      );
      // Trigger bookkeeping a checkpoint proves delivered is settled, as for any item read.
      await this.refreshCheckpoints(read.map((i) => snapshotOf(i)));
      const stored = read.map((i) => {
        const settled = this.ledger.settle(snapshotOf(i));
        const { pending: _p, befores: _b, ...rest } = i;
        return { item: settled.pending === undefined ? rest : i, bounds: { start: i.windowStart!, end: i.windowEnd! } };
      });
      const plan = planSessions(view, item.key, stored, item.events, (e) => e.streamTimeMs ?? e.timeMs!);
      if (plan.mergeError !== undefined) {
        throw new EngineError(
          'INTERNAL_ERROR',
          `view "${view.name}": merge() failed for key "${item.key}" merging sessions ${plan.mergeError.sessions.map((b) => `[${b.start}, ${b.end})`).join(', ')}: ${errorInfo(plan.mergeError.error).message}; make merge(a, b) return the combined state for every pair of sessions`,
          { cause: plan.mergeError.error, context: { view: view.name, key: item.key } },
        );
      }
      const letters: PoisonDeadLetter[] = [];
      for (const { event, closed } of plan.late) {
        if (view.window!.onLate === 'dead-letter') letters.push(lateSessionLetter(view, item.key, event, closed));
      }
      const outcomes: ItemOutcome[] = [];
      const puts: { item: ViewItem; expectedVersion: number }[] = [];
      const deletes: { key: ItemKey; version: number }[] = [];
      const results = plan.sessions.map((session) => ({
        session,
        result: foldItem(view, item.key, session.snapshot, session.events, { triggers, now, window: session.bounds }),
      }));
      for (const { session, result } of results) {
        // Only a trigger taking every change defers events, and defineApp refuses one on a session view.
        if (result.deferred.length > 0) {
          throw new EngineError('INTERNAL_ERROR', `view "${view.name}": a session write deferred ${result.deferred.length} event(s) of key "${item.key}"; session views take no changes: 'every' trigger`, {
            context: { view: view.name, key: item.key },
          });
        }
        this.stopOnPoison(result.deadLetters);
        letters.push(...result.deadLetters);
        if (result.write === undefined) continue;
        puts.push({ item: result.write.item, expectedVersion: result.write.expectedVersion });
        for (const absorbed of session.absorbed) deletes.push({ key: { pk: absorbed.item.pk, sk: absorbed.item.sk }, version: absorbed.item.version });
      }
      try {
        if (puts.length > 0) await store.writeAtomically(puts, deletes);
      } catch (error) {
        if (!(error instanceof EngineError) || error.code !== 'WRITE_CONFLICT') throw error;
        conflicts += 1;
        if (conflicts >= limits.maxConflictRetries) {
          throw new EngineError(
            'CONFLICT_RETRIES_EXHAUSTED',
            `view "${view.name}" key "${item.key}": the key's sessions changed under ${conflicts} consecutive transactions; the batch is retried`,
            { retriable: true, context: { view: view.name, key: item.key } },
          );
        }
        continue;
      }
      lateByView[view.name] = (lateByView[view.name] ?? 0) + plan.late.length;
      let first = true;
      for (const { session, result } of results) {
        const id = itemId(session.itemKey);
        const sessionItem: ItemEvents = { id, view, key: item.key, itemKey: session.itemKey, window: session.bounds, events: session.events };
        const snapshot = result.write?.snapshot ?? session.snapshot;
        const gate = result.write?.snapshot.pending !== undefined ? this.ledger.registerGate(id, gates) : undefined;
        outcomes.push({
          item: sessionItem,
          ...(gate !== undefined ? { gate } : {}),
          snapshot,
          applied: result.applied,
          skipped: result.skipped + (first ? plan.skipped : 0),
          wrote: result.write !== undefined,
          conflicts: first ? conflicts : 0,
          reads: first ? reads : 0,
          deadLetters: first ? [...letters] : [],
          deferred: [],
        });
        first = false;
      }
      if (outcomes.length === 0) {
        outcomes.push({ item, snapshot: { version: 0, stateJson: undefined, offsets: {} }, applied: 0, skipped: plan.skipped, wrote: false, conflicts, reads, deadLetters: letters, deferred: [] });
      }
      return outcomes;
    }
  }

  /**
   * Delivers every pending change of the batch's items (new ones and those left over by a
   * crash), then clears the bookkeeping of what was delivered, skipped or dead-lettered.
   * An item another batch of this process wrote before, and has not finished with, is judged
   * after that batch judged it, from the state it judged (see {@link TriggerLedger}); its changes
   * go to the triggers as soon as they are judged, so the dispatcher gets them in version order.
   * Returns the number of changes handed to triggers.
   */
  private async deliverPending(
    outcomes: readonly ItemOutcome[],
    letters: DeadLetter[],
    gates: GateList,
    origin: ChangeOrigin,
  ): Promise<number> {
    if (this.deps.app.triggers.length === 0) return 0;
    const perItem: { outcome: ItemOutcome; deliveries: PendingDelivery[]; unknown: string[] }[] = [];
    const judge = (outcome: ItemOutcome, gate: JudgeGate | undefined): PendingDelivery[] => {
      const { deliveries, unknown } = this.ledger.judge(outcome.item.view, outcome.item.key, outcome.snapshot, gate);
      perItem.push({ outcome, deliveries, unknown });
      for (const delivery of deliveries) if (delivery.deadLetter !== undefined) letters.push(delivery.deadLetter);
      return deliveries;
    };
    let delivered = 0;
    const send = (trigger: Trigger<any>, changes: Change[]): Promise<void> =>
      (async () => {
        try {
          await this.deps.changes.deliver(trigger, changes, origin);
        } catch (error) {
          if ((error as { code?: unknown } | null)?.code === 'PARTITION_LOST') {
            throw new EngineError(
              'PARTITION_LOST',
              `trigger "${trigger.name}": this task may no longer own the partition, so the change(s) of its ${changes.length} still in hand were not delivered (${errorInfo(error).message}); the batch is left uncommitted for the partition's owner`,
              { cause: error, context: { trigger: trigger.name, view: trigger.view.name } },
            );
          }
          throw new EngineError(
            'TRIGGER_DELIVERY_FAILED',
            `trigger "${trigger.name}": ${changes.length} change(s) were neither delivered nor dead-lettered; offsets stay uncommitted and the changes are delivered again`,
            { retriable: true, cause: error, context: { trigger: trigger.name, view: trigger.view.name } },
          );
        }
        delivered += changes.length;
      })();
    const group = (deliveries: readonly PendingDelivery[], byTrigger: Map<Trigger<any>, Change[]>): void => {
      for (const delivery of deliveries) {
        if (!delivery.deliver) continue;
        const list = byTrigger.get(delivery.trigger) ?? [];
        list.push(delivery.change);
        byTrigger.set(delivery.trigger, list);
      }
    };

    // Items no unfinished batch of this process wrote before: judged now, batched per trigger.
    const byTrigger = new Map<Trigger<any>, Change[]>();
    const ready: JudgeGate[] = [];
    const waiting: { outcome: ItemOutcome; gate: JudgeGate }[] = [];
    for (const outcome of outcomes) {
      if (outcome.snapshot.pending === undefined) continue;
      // An item this batch did not write may still owe changes (another batch's, or a crash's).
      const gate = outcome.gate ?? this.ledger.registerGate(outcome.item.id, gates);
      if (gate?.prev !== undefined) {
        waiting.push({ outcome, gate });
        continue;
      }
      group(judge(outcome, gate), byTrigger);
      if (gate !== undefined) ready.push(gate);
    }
    const sends: Promise<void>[] = [...byTrigger].map(([trigger, changes]) => send(trigger, changes));
    // deliver() queues its changes before it returns: the next batch's changes go behind them.
    for (const gate of ready) this.ledger.openGate(gate);
    // The others: each after the batch before it judged the item.
    for (const { outcome, gate } of waiting) {
      sends.push(
        (async () => {
          try {
            await gate.prev;
            const own = new Map<Trigger<any>, Change[]>();
            group(judge(outcome, gate), own);
            const mine = [...own].map(([trigger, changes]) => send(trigger, changes));
            this.ledger.openGate(gate);
            await Promise.all(mine);
          } finally {
            this.ledger.openGate(gate);
          }
        })(),
      );
    }
    await Promise.all(sends);
    if (perItem.length === 0) return 0;
    // Everything judged. The bookkeeping is cleared in the cache only, not with a write of its
    // own: the item's next write (a whole-item put from the cache) drops it, and until then the
    // checkpoint this batch writes next proves it delivered (see `TriggerLedger.settle`). A write
    // of its own would cost one UpdateItem per changed item and batch, as many requests as the
    // view writes, and be the slowest serial step of a batch with triggers. What the cached
    // bookkeeping becomes is the ledger's `settleJudged`.
    const { cache } = this.deps;
    await Promise.all(
      perItem.map(({ outcome, deliveries, unknown }) => {
        const judged = deliveries.map((d) => d.trigger.name);
        const cleared = [...judged, ...unknown];
        if (cleared.length === 0) return undefined;
        return this.mutex.run(outcome.item.id, async () => {
          const cached = cache.peek(outcome.item.id);
          if (cached === undefined) return;
          const settled = settleJudged(cached, outcome.snapshot, judged, cleared);
          if (settled !== undefined) cache.set(outcome.item.id, settled);
        });
      }),
    );
    return delivered;
  }

  /**
   * Records that everything of the partition below `nextOffset` is durable (after {@link apply}),
   * with the stream time of its windowed views at that offset.
   */
  async checkpoint(topic: string, partition: number, nextOffset: string): Promise<void> {
    const streamTime = this.windowedSources.has(topic) ? await this.streamTimeAt(topic, partition, BigInt(nextOffset)) : undefined;
    await this.deps.store.writeCheckpoint(topic, partition, nextOffset, streamTime);
    this.ledger.noteDurable(offsetsKey(topic, partition), BigInt(nextOffset));
    if (streamTime !== undefined) {
      // Entries before the one just stored are done with; it stays for a later checkpoint at the same offset.
      const entries = this.streamTimesAt.get(`${topic}/${partition}`) ?? [];
      const keep = entries.findLastIndex((entry) => entry.next <= BigInt(nextOffset));
      if (keep > 0) entries.splice(0, keep);
    }
  }

  /**
   * Forgets the stream times kept in memory, so each partition's next batch starts from its
   * checkpoint: after a rebalance, another task may have moved a partition on meanwhile.
   */
  forgetStreamTimes(): void {
    this.clocks.clear();
    this.adopted.clear();
    // Kept for the checkpoints of batches still in flight, but another task may have moved the
    // partition on past them: a checkpoint no batch of the new stint reached reads the stored one.
    for (const entries of this.streamTimesAt.values()) for (const entry of entries) entry.earlierStint = true;
  }

  /**
   * Raises `view`'s stream time on a partition to at least `timeMs` (idle close, or a test
   * driver's advance), at the partition's current position. Returns the offset to checkpoint it
   * at when it moved (the caller checkpoints it before any window closes by it), else undefined.
   */
  async advanceStreamTime(topic: string, partition: number, view: string, timeMs: number): Promise<string | undefined> {
    return this.mutex.run(streamLock(topic, partition), async () => {
      // From the stream time its build left, if live folding has not taken it yet (never below it).
      if (this.builtWindowed.has(topic)) await this.adoptBuildStreamTimes(topic, partition, (v) => streamTimeKey(v) === view);
      const known = await this.streamTimeOf(topic, partition);
      const clock = new StreamClock(known);
      if (!clock.advance(view, timeMs)) return undefined;
      const state = clock.state();
      this.noteStreamTime(topic, partition, state);
      return (state.decidedThrough + 1n).toString();
    });
  }

  /**
   * The first offset of the partition not decided yet for its windowed views (as this process
   * knows it, else from its checkpoint): a build must have folded up to it before live folding
   * takes the build's stream time (build.ts, `BuildGate`).
   */
  async nextUndecided(topic: string, partition: number): Promise<bigint> {
    return (await this.streamTimeOf(topic, partition)).decidedThrough + 1n;
  }

  /**
   * Live folding of a windowed view takes, once per stint and partition, the stream time its
   * build left (build.ts), if it had one, before its first batch that folds the view: when the
   * build's checkpoint of the partition is at or past the partition's next undecided offset, the
   * build decided every record below it for that version, and stream time after them is the one
   * it stored. Records below the build's checkpoint are then not judged again for the view.
   * Otherwise live folding took it over at an earlier handover (`BuildGate` folds the view only
   * once the build is that far) and its own stream time stands. Only the views `folds` names are
   * looked at (a batch leaves the others to their builds, an idle advance raises one view).
   */
  private async adoptBuildStreamTimes(topic: string, partition: number, folds: (view: View<any, any>) => boolean): Promise<void> {
    const views = (this.builtWindowed.get(topic) ?? []).filter((v) => folds(v) && !this.adopted.has(`${topic}/${partition}#${streamTimeKey(v)}`));
    if (views.length === 0) return;
    let state = await this.streamTimeOf(topic, partition);
    for (const view of views) {
      const key = streamTimeKey(view);
      const built = await this.deps.store.readCheckpointState(buildCheckpointTopic(topic, key), partition);
      if (built !== undefined && BigInt(built.offset) - 1n >= state.decidedThrough) {
        const clock = new StreamClock(state);
        clock.adopt(key, BigInt(built.offset) - 1n, built.streamTime[key]);
        state = clock.state();
      }
      this.adopted.add(`${topic}/${partition}#${key}`);
    }
    this.clocks.set(`${topic}/${partition}`, state);
  }

  /** The stream time of a partition as this process knows it, else as its checkpoint stored it. */
  async streamTimeOf(topic: string, partition: number): Promise<PartitionStreamTime> {
    const key = `${topic}/${partition}`;
    const known = this.clocks.get(key);
    if (known !== undefined) return known;
    const stored = await this.deps.store.readCheckpointState(topic, partition);
    const state = stored === undefined ? NO_STREAM_TIME : { decidedThrough: BigInt(stored.offset) - 1n, times: { ...stored.streamTime } };
    this.clocks.set(key, state);
    return state;
  }

  private noteStreamTime(topic: string, partition: number, state: PartitionStreamTime): void {
    const key = `${topic}/${partition}`;
    this.clocks.set(key, state);
    const next = state.decidedThrough + 1n;
    const entries = this.streamTimesAt.get(key) ?? [];
    this.streamTimesAt.set(key, entries);
    const last = entries[entries.length - 1];
    // Updated in place when at the same offset (an advance): a checkpoint reads it when it writes.
    if (last !== undefined && last.next === next) {
      Object.assign(last.times, state.times);
      delete last.earlierStint;
    } else entries.push({ next, times: { ...state.times } });
  }

  /** The stream times to store with the checkpoint at `next`: those of exactly that offset. */
  private async streamTimeAt(topic: string, partition: number, next: bigint): Promise<Record<string, number>> {
    const entries = this.streamTimesAt.get(`${topic}/${partition}`) ?? [];
    const entry = entries.findLast((e) => e.next <= next);
    if (entry !== undefined && entry.earlierStint !== true) return { ...entry.times };
    // No batch of this process reached it (a checkpoint past filtered records only): stream
    // time has not moved since the stored checkpoint, if that is not past `next`. An entry of
    // an earlier stint (before a rejoin) may be older than what another task stored meanwhile:
    // per view the later of the two (both are the partition's stream time at or below `next`).
    const stored = await this.deps.store.readCheckpointState(topic, partition);
    const times: Record<string, number> = { ...entry?.times };
    if (stored !== undefined && BigInt(stored.offset) <= next) {
      for (const [view, time] of Object.entries(stored.streamTime)) if (!(times[view]! >= time)) times[view] = time;
    }
    return times;
  }

  /**
   * Reads the checkpoints that could prove trigger bookkeeping of `snapshots` delivered, for the
   * partitions where what is known so far does not.
   */
  private async refreshCheckpoints(snapshots: readonly ItemSnapshot[]): Promise<void> {
    await Promise.all(
      this.ledger.unprovenPartitions(snapshots).map(async (partitionKey) => {
        const slash = partitionKey.lastIndexOf('/');
        const next = await this.deps.store.readCheckpoint(partitionKey.slice(0, slash), Number(partitionKey.slice(slash + 1)));
        if (next !== undefined) this.ledger.noteDurable(partitionKey, BigInt(next));
      }),
    );
  }
}

/** The processor's lock of one partition's stream time (distinct from item ids, which hold a newline). */
function streamLock(topic: string, partition: number): string {
  return `stream-time ${topic}/${partition}`;
}

/** The dead letter of a session event that would have changed a closed session. */
function lateSessionLetter(view: App['views'][number], key: string, event: { record: SourceRecord; timeMs?: number; streamTimeMs?: number }, closed: { start: number; end: number }): PoisonDeadLetter {
  const streamTimeMs = event.streamTimeMs ?? event.timeMs!;
  const lateByMs = streamTimeMs - (closed.end + view.window!.graceMs);
  return {
    kind: 'poison',
    code: 'LATE',
    reason: `view "${view.name}": event at ${coordinates(event.record)} (time ${event.timeMs}) would join the session [${closed.start}, ${closed.end}) of key "${key}", closed ${lateByMs} ms of stream time ago (stream time ${streamTimeMs}, graceMs ${view.window!.graceMs}); it was not applied. Raise graceMs if such delays are normal, or set onLate: 'drop'`,
    view: view.name,
    key,
    record: event.record,
    late: { eventTimeMs: event.timeMs!, streamTimeMs, windows: [closed], lateByMs },
  };
}

/** What one batch tallies across its items while folding and writing. */
interface BatchWork {
  /** CPU milliseconds of decoding, routing and folding. */
  foldMs: number;
  /** Ids of the cache misses written first without a read. */
  readonly unread: Set<string>;
  /** How many of those existed after all. */
  existed: number;
}

/** A batch with at most this many cache misses is light: see {@link NewKeyShare.worthGuessing}. */
export const LIGHT_BATCH_MISSES = 8;

/**
 * How often a view's cache misses were keys never written, as a moving share of the recent
 * misses (each weighs {@link NEW_KEY_WEIGHT}). A miss written first without a read, conditional
 * on the item not existing, takes one round trip instead of two when the key is new; when it
 * existed, the lost write returns the item (no read either), so a wrong guess adds no round
 * trip, only a lost conditional write (a write unit where the read would have cost a read unit).
 * Misses are guessed new while most recent ones were, or, in a light batch (latency matters
 * most, the lost writes are few), while at least one in ten was. It starts at 0: a task started
 * on a table full of keys reads them, as before, until reads find new keys.
 */
export class NewKeyShare {
  private share = 0;

  /** Whether a miss of a batch, `light` or not, is written without a read. */
  worthGuessing(light: boolean): boolean {
    return this.share > (light ? 0.1 : 0.5);
  }

  /** Records whether a miss turned out to be a key never written. */
  note(wasNew: boolean): void {
    this.share += NEW_KEY_WEIGHT * ((wasNew ? 1 : 0) - this.share);
  }
}

/** Weight of the latest miss in {@link NewKeyShare}: seven new keys in a row make a fresh share pass one half. */
const NEW_KEY_WEIGHT = 0.1;
