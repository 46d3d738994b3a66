/**
 * Final results of `emit: 'final'` views (docs/architecture.md, "Windows"): finds the windows
 * that have closed through the sparse `closing` index, delivers one change per window with
 * `final: true` through the trigger path (the same {@link ChangeSink}: dispatcher, ordering,
 * retries, dead letters), and only then removes the item's closing attributes. A crash before
 * the removal delivers the window again (at least once, with the same idempotency key).
 *
 * Which stream time closes a window: the least over every partition of the view's source, read
 * from the checkpoint items ({@link closingStreamTime}), under the view version's stream-time
 * key. A view version built from history closes nothing while its build runs, and owes no change
 * for a window that closed in that history (`finalsFrom`, recorded by the swap). The index is eventually consistent:
 * every item it names is read again (consistently) and judged on what it holds; nothing is
 * assumed from the index alone, and every round scans again.
 */
import type { Change, Trigger, View } from '../../sdk/index.ts';
import { viewSegment, type ItemKey, type ViewItem } from '../../sdk/contract/index.ts';
import type { ChangeOrigin, ChangeSink, DeadLetterSink } from './change-sink.ts';
import type { TriggerDeadLetterEntry } from './dead-letter.ts';
import { errorInfo } from './errors.ts';
import { itemId } from './fold.ts';
import { changeIdempotencyKey } from './ledger.ts';
import { buildCheckpointTopic, type CheckpointState } from './processor.ts';
import { closeShardOf, closingStreamTime, streamTimeKey } from './windows.ts';

/** Closing-index items per query page. */
export const CLOSING_PAGE_SIZE = 100;

/** One page of the closing index. */
export interface ClosingPage {
  readonly keys: readonly ItemKey[];
  /** Where the next page starts; undefined on the last page. */
  readonly next?: Readonly<Record<string, unknown>>;
}

/** What the closer needs of the views table. */
export interface ClosingStore {
  /** Every checkpoint of `topic`, with its stream times. */
  readCheckpointStates(topic: string): Promise<readonly CheckpointState[]>;
  /** Items of closing shard `shard` whose `closeAt` is below `closedBelow`, in `closeAt` order (eventually consistent). */
  queryClosing(shard: string, closedBelow: number, limit: number, startAfter?: Readonly<Record<string, unknown>>): Promise<ClosingPage>;
  /** Reads items consistently; keyed by item id. */
  readItems(keys: readonly { id: string; key: ItemKey }[]): Promise<Map<string, ViewItem>>;
  /**
   * Removes the closing attributes of `item` if it is still at its version and shard; false
   * when it was not (another task cleared it, or it changed).
   */
  clearClosing(item: ViewItem): Promise<boolean>;
}

/** Dependencies of a {@link WindowCloser}. */
export interface WindowCloserDeps {
  readonly views: readonly View<any, any>[];
  readonly triggers: readonly Trigger<any>[];
  readonly store: ClosingStore;
  readonly changes: ChangeSink;
  readonly deadLetters: DeadLetterSink;
  /** Partitions of a source topic; undefined while unknown (nothing closes meanwhile). */
  partitionCount(topic: string): number | undefined;
  /** Called for each item whose final change was delivered and whose attributes were removed. */
  closed?(id: string): void;
  /**
   * Where `view`'s final changes start (build.ts, `readFinalsFrom`): a closed window whose
   * `closeAt` is below it closed in the history its build folded, and is cleared without a
   * change. Undefined while the view's build runs: nothing of it closes yet.
   * @default every window's change is owed (`-Infinity`)
   */
  finalsFrom?(view: View<any, any>): Promise<number | undefined>;
}

/** What one {@link WindowCloser.closeDue} round did. */
export interface CloseResult {
  /** Windows whose final change was settled (delivered, skipped by `when`, or dead-lettered, or none owed: history) and cleared. */
  readonly closed: number;
  /** Final changes handed to triggers. */
  readonly delivered: number;
}

/** The one change of a closed window. */
export function finalChange(item: ViewItem, viewVersion = 1): Change {
  const window = { start: item.windowStart!, end: item.windowEnd! };
  return {
    view: item.view,
    key: item.key,
    window,
    before: undefined,
    after: structuredClone(item.state),
    version: item.version,
    offsets: { ...item.offsets },
    idempotencyKey: changeIdempotencyKey(viewSegment(item.view, viewVersion), item.key, window, item.version),
    ...(viewVersion > 1 ? { viewVersion } : {}),
    final: true,
  };
}

/**
 * Delivers the final results of the windows that closed on one source partition's shards.
 *
 * @example
 * const closer = new WindowCloser({ views: app.views, triggers: app.triggers, store, changes, deadLetters, partitionCount });
 * await closer.closeDue('bookings', 3, { right });
 */
export class WindowCloser {
  private readonly finalViews: readonly View<any, any>[];

  constructor(private readonly deps: WindowCloserDeps) {
    this.finalViews = deps.views.filter((v) => v.window?.emit === 'final');
  }

  /** Whether any view of `topic` emits final results. */
  closes(topic: string): boolean {
    return this.finalViews.some((v) => v.source === topic);
  }

  /**
   * The stream time that closes `view`'s windows now, from the checkpoints; undefined when
   * unknown. A partition whose live checkpoint has none for the view version yet (live folding
   * has not folded it there since its build) has the one its build left, when the build got at
   * least as far: that is the stream time live folding takes there (`adoptBuildStreamTimes`).
   */
  async closingTime(view: View<any, any>): Promise<number | undefined> {
    const count = this.deps.partitionCount(view.source);
    if (count === undefined || count <= 0) return undefined;
    const states = await this.deps.store.readCheckpointStates(view.source);
    const key = streamTimeKey(view);
    const byPartition = new Map(states.map((s) => [s.partition, s.streamTime[key]]));
    const missing = Array.from({ length: count }, (_, p) => p).filter((p) => byPartition.get(p) === undefined);
    if (missing.length > 0) {
      const live = new Map(states.map((s) => [s.partition, BigInt(s.offset)]));
      for (const built of await this.deps.store.readCheckpointStates(buildCheckpointTopic(view.source, key))) {
        const time = built.streamTime[key];
        if (time !== undefined && missing.includes(built.partition) && BigInt(built.offset) >= (live.get(built.partition) ?? 0n)) byPartition.set(built.partition, time);
      }
    }
    return closingStreamTime(Array.from({ length: count }, (_, p) => byPartition.get(p)));
  }

  /**
   * Delivers the final change of every window of `topic`'s final views in the shards of
   * `partition` that has closed, then clears it. Rejects when a delivery could not be settled
   * (nothing of that page is cleared; the next round delivers it again).
   */
  async closeDue(topic: string, partition: number, origin: ChangeOrigin = {}): Promise<CloseResult> {
    let closed = 0;
    let delivered = 0;
    for (const view of this.finalViews) {
      if (view.source !== topic) continue;
      const from = this.deps.finalsFrom === undefined ? Number.NEGATIVE_INFINITY : await this.deps.finalsFrom(view);
      if (from === undefined) continue;
      const closing = await this.closingTime(view);
      if (closing === undefined) continue;
      const shard = closeShardOf(viewSegment(view.name, view.version), topic, partition);
      let startAfter: Readonly<Record<string, unknown>> | undefined;
      do {
        const page = await this.deps.store.queryClosing(shard, closing, CLOSING_PAGE_SIZE, startAfter);
        startAfter = page.next;
        if (page.keys.length === 0) break;
        const outcome = await this.closePage(view, shard, closing, page.keys, origin, from);
        closed += outcome.closed;
        delivered += outcome.delivered;
      } while (startAfter !== undefined);
    }
    return { closed, delivered };
  }

  private async closePage(view: View<any, any>, shard: string, closing: number, keys: readonly ItemKey[], origin: ChangeOrigin, finalsFrom: number): Promise<CloseResult> {
    const { store, changes, deadLetters } = this.deps;
    const read = await store.readItems(keys.map((key) => ({ id: itemId(key), key })));
    // The index may lag behind the table: only what the item itself says counts.
    const due = keys
      .map((key) => read.get(itemId(key)))
      .filter((item): item is ViewItem => item !== undefined && item.closeShard === shard && item.closeAt !== undefined && item.closeAt < closing)
      .sort((a, b) => a.closeAt! - b.closeAt! || (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
    if (due.length === 0) return { closed: 0, delivered: 0 };
    // Windows that closed in the history a build folded owe no change (build.ts, the swap).
    const owed = due.filter((item) => item.closeAt! >= finalsFrom);
    const letters: TriggerDeadLetterEntry[] = [];
    let delivered = 0;
    await Promise.all(
      this.deps.triggers
        .filter((trigger) => trigger.view.name === view.name)
        .map(async (trigger) => {
          const accepted: Change[] = [];
          for (const item of owed) {
            const change = finalChange(item, view.version);
            try {
              if (trigger.when(change) === true) accepted.push(change);
            } catch (error) {
              letters.push({
                kind: 'trigger',
                code: 'TRIGGER_WHEN_FAILED',
                reason: `trigger "${trigger.name}": when() threw for the final change of key "${item.key}" window [${change.window!.start}, ${change.window!.end}): ${errorInfo(error).message}; make when() return a boolean for every change`,
                trigger: trigger.name,
                view: view.name,
                key: item.key,
                function: trigger.function,
                change,
                error: errorInfo(error),
              });
            }
          }
          if (accepted.length === 0) return;
          await changes.deliver(trigger, accepted, origin);
          delivered += accepted.length;
        }),
    );
    if (letters.length > 0) await deadLetters.send(letters);
    let closed = 0;
    for (const item of due) {
      if (await store.clearClosing(item)) {
        closed += 1;
        this.deps.closed?.(itemId(item));
      }
    }
    return { closed, delivered };
  }
}
