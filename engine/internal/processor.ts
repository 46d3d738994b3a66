/**
 * Processes one consumer batch (one topic-partition) end to end, independent of Kafka:
 * route -> load states (cache, then one batched read) -> fold and write each changed item once,
 * conditionally (re-read and re-fold on a lost condition) -> dead letters -> trigger changes
 * -> checkpoint (trigger bookkeeping is cleared in the cache and settled by the checkpoint, see
 * `settle`). The caller commits offsets after it resolves.
 * Used by the Kafka runtime and by the in-memory test driver.
 */
import type { App, Change, SourceRecord, Trigger } from '../../sdk/index.ts';
import { offsetsKey, type ItemKey, type ViewItem } from '../../sdk/contract/index.ts';
import type { ChangeOrigin, ChangeOutcome, ChangeSink, DeadLetterSink } from './change-sink.ts';
import { KeyedMutex, mapLimit } from './concurrency.ts';
import type { DeadLetter, PoisonDeadLetter } from './dead-letter.ts';
import { EngineError, errorInfo } from './errors.ts';
import {
  advancePending,
  clearPending,
  foldItem,
  pendingDeliveries,
  routeRecords,
  snapshotOf,
  type ItemEvents,
  type ItemSnapshot,
  type JudgedState,
  type PendingDelivery,
} from './fold.ts';
import { StateCache } from './state-cache.ts';

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
  /** Records that everything below `nextOffset` of the partition is durable. */
  writeCheckpoint(topic: string, partition: number, nextOffset: string): Promise<void>;
  /** The partition's checkpoint (next offset to consume), read consistently; undefined when none. */
  readCheckpoint(topic: string, partition: number): Promise<string | undefined>;
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
  readonly deadLetters: number;
  readonly changesDelivered: number;
  /** Milliseconds spent loading states, folding and writing, delivering changes and dead letters. */
  readonly timings: { readonly loadMs: number; readonly writeMs: number; readonly deliverMs: number };
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
}

/**
 * What this process judged of one item's triggers while batches touching it are unfinished.
 * Batches of several partitions can write one item (a view key unlike the Kafka key); each
 * write keeps the stored bookkeeping of the changes still owed, so a later batch's change would
 * start from an older `before`. Judging them one batch after the other, in write order, against
 * what the earlier batch judged keeps `before` = the state the trigger last judged.
 */
interface ItemJudging {
  /** Resolves once the latest registered batch judged this item and handed its changes on. */
  tail: Promise<void> | undefined;
  /** Per trigger, the latest version judged and its state. */
  readonly judged: Map<string, JudgedState>;
  /** Batches registered and not finished: the entry is dropped at 0, so memory stays bounded. */
  holders: number;
}

/** One batch's place in an item's judging order. */
interface JudgeGate {
  readonly id: string;
  /** The previous batch's turn; this batch judges after it. */
  readonly prev: Promise<void> | undefined;
  readonly open: () => void;
  opened: boolean;
  dropped: boolean;
}

/** The gates one batch registered; closed once the batch finished or failed. */
interface GateList {
  readonly gates: JudgeGate[];
  closed: boolean;
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
}

/**
 * Processes consumer batches of one app. One instance per engine process; safe to call
 * concurrently for different partitions (items shared by them are folded one at a time).
 */
export class BatchProcessor {
  private readonly mutex = new KeyedMutex();
  /**
   * Next offset known durable per `topic/partition` (this processor's own checkpoints, and ones
   * read from the store); only grows. A lower value than the truth only costs a redelivery.
   */
  private readonly durableUpTo = new Map<string, bigint>();
  private readonly triggersByView = new Map<string, Trigger<any>[]>();
  private readonly triggerNames: Set<string>;
  /** Per item id, only while batches that owe its changes are unfinished (see {@link ItemJudging}). */
  private readonly judging = new Map<string, ItemJudging>();

  constructor(private readonly deps: ProcessorDeps) {
    for (const trigger of deps.app.triggers) {
      const list = this.triggersByView.get(trigger.view.name) ?? [];
      list.push(trigger);
      this.triggersByView.set(trigger.view.name, list);
    }
    this.triggerNames = new Set(deps.app.triggers.map((t) => t.name));
  }

  /**
   * Applies `records` (consecutive records of one partition, in offset order): resolves once
   * the view writes, dead letters and trigger deliveries of `records` are durable. The caller must then call {@link checkpoint}
   * (and only after it, commit) with `nextOffset`, in batch order per partition. `origin` fences
   * the trigger deliveries (see {@link ChangeOrigin}); a lost right rejects with `PARTITION_LOST`.
   */
  async apply(topic: string, partition: number, records: readonly SourceRecord[], origin: ChangeOrigin = {}): Promise<BatchResult> {
    const { app, store, cache, limits } = this.deps;
    const now = this.deps.now ?? (() => new Date());
    const started = Date.now();
    const routed = routeRecords(app.views, records);
    this.stopOnPoison(routed.deadLetters);

    // Load: cache first, then one batched consistent read for the misses.
    const items = [...routed.items.values()];
    const snapshots = new Map<string, ItemSnapshot>();
    const misses: { id: string; key: ItemKey }[] = [];
    for (const item of items) {
      const cached = cache.get(item.id);
      if (cached !== undefined) snapshots.set(item.id, cached);
      else misses.push({ id: item.id, key: item.itemKey });
    }
    let reads = misses.length;
    if (misses.length > 0) {
      const loaded = await store.readItems(misses);
      const read = misses.map((miss) => snapshotOf(loaded.get(miss.id)));
      await this.refreshCheckpoints(read);
      // Not cached yet: foldAndWrite caches each item once, after its write. Caching here as
      // well would make a batch with more new keys than the cache holds evict every key twice
      // (once loaded, once written).
      misses.forEach((miss, i) => snapshots.set(miss.id, this.settle(read[i]!)));
    }

    const loaded = Date.now();
    const gates: GateList = { gates: [], closed: false };
    // The batch's turns to judge items (see `deliverPending`) end with it, whatever happens.
    try {
      // Fold and write, one conditional write per changed item.
      const outcomes = await mapLimit(items, limits.writeConcurrency, (item) =>
        this.mutex.run(item.id, () => this.foldAndWrite(item, snapshots.get(item.id)!, now(), gates)),
      );

      // Dead letters, then trigger changes; both must be durable before the commit.
      const letters: DeadLetter[] = [...routed.deadLetters];
      let applied = 0;
      let skipped = 0;
      let writes = 0;
      let conflicts = 0;
      for (const outcome of outcomes) {
        letters.push(...outcome.deadLetters);
        applied += outcome.applied;
        skipped += outcome.skipped;
        writes += outcome.wrote ? 1 : 0;
        conflicts += outcome.conflicts;
        reads += outcome.reads;
      }
      const written = Date.now();
      const changesDelivered = await this.deliverPending(outcomes, letters, gates, origin);
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
      return {
        topic,
        partition,
        records: records.length,
        nextOffset,
        applied,
        skipped,
        filtered: routed.filtered,
        writes,
        conflicts,
        reads,
        deadLetters: letters.length,
        changesDelivered,
        timings: { loadMs: loaded - started, writeMs: written - loaded, deliverMs: Date.now() - written },
      };
    } finally {
      gates.closed = true;
      for (const gate of gates.gates) this.dropGate(gate);
    }
  }

  private stopOnPoison(letters: readonly PoisonDeadLetter[]): void {
    for (const letter of letters) {
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

  /** Takes the next turn to judge item `id`'s triggers, after the batches registered before. */
  private registerGate(id: string, gates: GateList): JudgeGate | undefined {
    if (gates.closed) return undefined;
    let judging = this.judging.get(id);
    if (judging === undefined) {
      judging = { tail: undefined, judged: new Map(), holders: 0 };
      this.judging.set(id, judging);
    }
    let open!: () => void;
    const turn = new Promise<void>((resolve) => {
      open = resolve;
    });
    const gate: JudgeGate = { id, prev: judging.tail, open, opened: false, dropped: false };
    judging.tail = turn;
    judging.holders += 1;
    gates.gates.push(gate);
    return gate;
  }

  /** Lets the next batch judge the item (this one judged it, or never will). */
  private openGate(gate: JudgeGate): void {
    if (gate.opened) return;
    gate.opened = true;
    gate.open();
  }

  /** The batch is finished with the item: once no batch holds it, forget what was judged. */
  private dropGate(gate: JudgeGate): void {
    this.openGate(gate);
    if (gate.dropped) return;
    gate.dropped = true;
    const judging = this.judging.get(gate.id);
    if (judging === undefined) return;
    judging.holders -= 1;
    if (judging.holders <= 0) this.judging.delete(gate.id);
  }

  private async foldAndWrite(item: ItemEvents, loaded: ItemSnapshot, now: Date, gates: GateList): Promise<ItemOutcome> {
    const { store, cache, limits } = this.deps;
    const triggers = this.triggersByView.get(item.view.name) ?? [];
    // Another batch of this process may have written the item since it was loaded.
    let snapshot = cache.peek(item.id) ?? loaded;
    let conflicts = 0;
    let reads = 0;
    for (;;) {
      const result = foldItem(item.view, item.key, snapshot, item.events, { triggers, now });
      this.stopOnPoison(result.deadLetters);
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
        };
      }
      try {
        await store.putItem(result.write.item, result.write.expectedVersion);
      } catch (error) {
        if (!(error instanceof EngineError) || error.code !== 'WRITE_CONFLICT') {
          cache.delete(item.id);
          throw error;
        }
        conflicts += 1;
        if (conflicts >= limits.maxConflictRetries) {
          cache.delete(item.id);
          throw new EngineError(
            'CONFLICT_RETRIES_EXHAUSTED',
            `view "${item.view.name}" key "${item.key}": the item changed under ${conflicts} consecutive conditional writes; the batch is retried. Many engine tasks writing one hot key cause this; raise maxConflictRetries or spread the key`,
            { retriable: true, context: { view: item.view.name, key: item.key } },
          );
        }
        // Someone else wrote the item: re-read it and fold this batch's events again;
        // the offset fence drops the events the other writer already applied.
        reads += 1;
        const reread = snapshotOf(await store.readItem(item.itemKey));
        await this.refreshCheckpoints([reread]);
        snapshot = this.settle(reread);
        cache.set(item.id, snapshot);
        continue;
      }
      cache.set(item.id, result.write.snapshot);
      // Registered under the item's lock, right after the write: turns follow version order.
      const gate = result.write.snapshot.pending !== undefined ? this.registerGate(item.id, gates) : undefined;
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
      };
    }
  }

  /**
   * Delivers every pending change of the batch's items (new ones and those left over by a
   * crash), then clears the bookkeeping of what was delivered, skipped or dead-lettered.
   * An item another batch of this process wrote before, and has not finished with, is judged
   * after that batch judged it, from the state it judged (see {@link ItemJudging}); its changes
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
      const pending = outcome.snapshot.pending!;
      const triggers = this.triggersByView.get(outcome.item.view.name) ?? [];
      const judging = gate !== undefined ? this.judging.get(gate.id) : undefined;
      const deliveries = pendingDeliveries(outcome.item.view, outcome.item.key, outcome.snapshot, triggers, judging?.judged);
      if (judging !== undefined && outcome.snapshot.stateJson !== undefined) {
        for (const { trigger } of deliveries) {
          const last = judging.judged.get(trigger.name);
          if (last === undefined || last.version < outcome.snapshot.version) {
            judging.judged.set(trigger.name, { version: outcome.snapshot.version, stateJson: outcome.snapshot.stateJson });
          }
        }
      }
      // Bookkeeping of triggers removed from the app since the write: nothing to deliver.
      const unknown = Object.keys(pending).filter(
        (name) => !this.triggerNames.has(name) || !triggers.some((t) => t.name === name),
      );
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
      const gate = outcome.gate ?? this.registerGate(outcome.item.id, gates);
      if (gate?.prev !== undefined) {
        waiting.push({ outcome, gate });
        continue;
      }
      group(judge(outcome, gate), byTrigger);
      if (gate !== undefined) ready.push(gate);
    }
    const sends: Promise<void>[] = [...byTrigger].map(([trigger, changes]) => send(trigger, changes));
    // deliver() queues its changes before it returns: the next batch's changes go behind them.
    for (const gate of ready) this.openGate(gate);
    // The others: each after the batch before it judged the item.
    for (const { outcome, gate } of waiting) {
      sends.push(
        (async () => {
          try {
            await gate.prev;
            const own = new Map<Trigger<any>, Change[]>();
            group(judge(outcome, gate), own);
            const mine = [...own].map(([trigger, changes]) => send(trigger, changes));
            this.openGate(gate);
            await Promise.all(mine);
          } finally {
            this.openGate(gate);
          }
        })(),
      );
    }
    await Promise.all(sends);
    if (perItem.length === 0) return 0;
    // Everything judged. The bookkeeping is cleared in the cache only, not with a write of its
    // own: the item's next write (a whole-item put from the cache) drops it, and until then the
    // checkpoint this batch writes next proves it delivered (see `settle`). A write of its own
    // would cost one UpdateItem per changed item and batch, as many requests as the view writes,
    // and be the slowest serial step of a batch with triggers. If the item moved on meanwhile
    // (another batch wrote it, keeping the older bookkeeping), the bookkeeping advances to this
    // version, so a change built from it later starts where this one ended.
    const { cache } = this.deps;
    await Promise.all(
      perItem.map(({ outcome, deliveries, unknown }) => {
        const judged = deliveries.map((d) => d.trigger.name);
        const cleared = [...judged, ...unknown];
        if (cleared.length === 0) return undefined;
        return this.mutex.run(outcome.item.id, async () => {
          const cached = cache.peek(outcome.item.id);
          if (cached === undefined) return;
          if (cached.version === outcome.snapshot.version) {
            cache.set(outcome.item.id, clearPending(cached, cleared));
          } else if (cached.version > outcome.snapshot.version && outcome.snapshot.stateJson !== undefined && judged.length > 0) {
            const advanced = advancePending(cached, judged, outcome.snapshot.version, outcome.snapshot.stateJson);
            if (advanced !== cached) cache.set(outcome.item.id, advanced);
          }
        });
      }),
    );
    return delivered;
  }

  /** Records that everything of the partition below `nextOffset` is durable (after {@link apply}). */
  async checkpoint(topic: string, partition: number, nextOffset: string): Promise<void> {
    await this.deps.store.writeCheckpoint(topic, partition, nextOffset);
    this.noteDurable(offsetsKey(topic, partition), BigInt(nextOffset));
  }

  /**
   * Reads the checkpoints that could prove trigger bookkeeping of `snapshots` delivered, for the
   * partitions where what is known so far does not.
   */
  private async refreshCheckpoints(snapshots: readonly ItemSnapshot[]): Promise<void> {
    const unknown = new Set<string>();
    for (const snapshot of snapshots) {
      if (snapshot.pending === undefined) continue;
      for (const [partitionKey, offset] of Object.entries(snapshot.offsets)) {
        if ((this.durableUpTo.get(partitionKey) ?? -1n) <= BigInt(offset)) unknown.add(partitionKey);
      }
    }
    await Promise.all(
      [...unknown].map(async (partitionKey) => {
        const slash = partitionKey.lastIndexOf('/');
        const next = await this.deps.store.readCheckpoint(partitionKey.slice(0, slash), Number(partitionKey.slice(slash + 1)));
        if (next !== undefined) this.noteDurable(partitionKey, BigInt(next));
      }),
    );
  }

  private noteDurable(partitionKey: string, nextOffset: bigint): void {
    if ((this.durableUpTo.get(partitionKey) ?? -1n) < nextOffset) this.durableUpTo.set(partitionKey, nextOffset);
  }

  /**
   * Drops trigger bookkeeping that is already delivered. A batch delivers (or dead-letters)
   * every change pending on each item it wrote before it checkpoints, so bookkeeping is settled
   * once, for every partition the item has applied events of, a checkpoint has passed the
   * item's offset: the batch that wrote it last has finished. Otherwise the changes are owed
   * (a crash between write and delivery) and are delivered again (docs/architecture.md, invariant 4).
   */
  private settle(snapshot: ItemSnapshot): ItemSnapshot {
    if (snapshot.pending === undefined) return snapshot;
    const offsets = Object.entries(snapshot.offsets);
    if (offsets.length === 0) return snapshot;
    for (const [partitionKey, offset] of offsets) {
      if ((this.durableUpTo.get(partitionKey) ?? -1n) <= BigInt(offset)) return snapshot;
    }
    return clearPending(snapshot, Object.keys(snapshot.pending));
  }
}
