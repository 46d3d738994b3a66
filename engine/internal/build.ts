/**
 * Builds of a view version: a view the table has never had live, or a version above the live
 * one, is folded from its source topic's earliest offset into its own items (view segment
 * `<view>@<version>`, see `viewSegment`); then the view's alias (`live` on its registry item)
 * flips to it in one conditional write. Most builds run beside live folding (see
 * {@link BuildGate} for the handover, {@link buildsInBackground} for which); the others before
 * the task joins its consumer group.
 *
 * - **Target.** Per partition, the live group's position: the largest of its committed offset,
 *   its checkpoint and (in the background) the offset up to which live batches left the view to
 *   the build. Every record below it was applied and its trigger changes delivered from the
 *   version live before, or was skipped for this view by a live batch; the build folds exactly
 *   those, with no triggers. Live folding folds the rest into the new version, with triggers: no
 *   change is delivered twice. A partition's target stops at its recorded handover offset
 *   (`versions.<v>.handedOver[p]`): every record from there on gets its change from live folding.
 * - **Exactness.** The build is a BatchProcessor of this one view under its own consumer group
 *   (`<group>.build.<segment>`), with its own checkpoints (topic `<topic>@<segment>`, a name no
 *   Kafka topic can have): the same offset fence and conditional writes as live folding, so a
 *   crash or a rebalance in a build re-reads from its commit and applies nothing twice.
 * - **History gone.** When a partition's earliest retained offset is above 0 the build cannot be
 *   exact and stops with `BUILD_HISTORY_INCOMPLETE`, unless the view says `backfill: 'retained'`;
 *   then it folds what is there and the registry records from where.
 * - **Table aggregations** (a view `over` a table) have no events of their own: they are the
 *   table's row changes. Their build folds the table's source topic into a private copy of the
 *   table (segment {@link buildTableCopy}) together with the aggregation, so the row changes are
 *   derived from the copy's rows exactly as live folding derives them from the table's. Its
 *   target also covers every record the stored table rows already applied (a batch that wrote
 *   rows and crashed before its checkpoint): live folding derives no change from those again.
 *
 * A repartitioned view builds through repartition-build.ts instead (its history goes through
 * the version's repartition topic first), with this module's targets, history check and swap.
 */
import { GetCommand, ScanCommand, UpdateCommand, type DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import type { Admin, Consumer, Kafka } from 'kafkajs';
import { buildGroupId, offsetsKey, VIEW_PK_PREFIX, viewRegistryKey, viewSegment } from '../../sdk/contract/index.ts';
import type { App, SourceRecord, Table, View } from '../../sdk/index.ts';
import type { ChangeSink, DeadLetterSink } from './change-sink.ts';
import type { TestPausePoint } from './config.ts';
import { delay } from './concurrency.ts';
import { EngineError, errorInfo } from './errors.ts';
import type { ItemStore } from './processor.ts';
import { BatchProcessor, buildCheckpointTopic } from './processor.ts';
import { toSourceRecord } from './kafka-consumer.ts';
import { StateCache } from './state-cache.ts';
import { closingStreamTime, streamTimeKey } from './windows.ts';

/** Progress of one build, as logs, `/health` and the metric report it. */
export interface BuildProgress {
  readonly view: string;
  readonly version: number;
  /** Records folded (or fenced) so far, and in all. */
  readonly done: number;
  readonly total: number;
  /** Records per second since the build (re)started here. */
  readonly rate: number;
  /** Seconds left at that rate; undefined before the rate is known. */
  readonly etaSeconds: number | undefined;
}

/** What a build needs from the running task. */
export interface BuildDeps {
  readonly app: App;
  readonly view: View<any, any>;
  readonly groupId: string;
  readonly kafka: Kafka;
  readonly admin: Admin;
  readonly store: ItemStore;
  readonly documentClient: DynamoDBDocumentClient;
  readonly tableName: string;
  readonly deadLetters: DeadLetterSink;
  readonly limits: {
    readonly writeConcurrency: number;
    readonly maxConflictRetries: number;
    readonly sessionTimeoutMs: number;
    readonly heartbeatIntervalMs: number;
    readonly maxBytesPerPartition: number;
  };
  /** Called about every `progressIntervalMs` and at the end. */
  readonly progress: (progress: BuildProgress) => void;
  readonly progressIntervalMs: number;
  /** Resolves when the task is asked to stop: the build ends, resumable. */
  readonly stopRequested: Promise<void>;
  /**
   * The build runs beside live folding (see {@link BuildGate}): it chases the live group's
   * position and hands over before the swap. Otherwise it runs before the task joins its group.
   */
  readonly background?: boolean;
  /**
   * Test-only (`TRIBUTARY_TEST_PAUSE_AT`): called at `before-swap` (the build reached its target)
   * and `after-swap` (the alias names the version); resolves true when the build stopped there
   * until the task was asked to stop, false at once elsewhere.
   */
  readonly pausePoint?: (point: TestPausePoint) => Promise<boolean>;
}

/** The change sink of a build: a build delivers no trigger changes (see the module header). */
export const noChanges: ChangeSink = {
  deliver: async () => {
    throw new TypeError('a build delivers no trigger changes');
  },
};

/**
 * The private copy of `table` that the build of an aggregation's version (`segment`) folds: the
 * table under the name `<table>~build~<segment>` (`~` cannot occur in a view name, so no view's
 * segment is this one), its poison dead-lettered (and dropped: the table's fold letters it).
 * Its items are removed after the swap (retire.ts, `removeTableCopies`).
 */
export function buildTableCopy(table: Table<any>, segment: string): Table<any> {
  return Object.freeze({ ...table, name: buildTableCopyName(table.name, segment), version: 1, onPoison: 'dead-letter' as const });
}

/** The name (and segment) of the table copy of an aggregation version's build, see {@link buildTableCopy}. */
export function buildTableCopyName(table: string, segment: string): string {
  return `${table}~build~${segment}`;
}

/**
 * Per partition of the table's source, one past the largest offset its stored rows (the
 * table's version in the code) have applied, by a Scan of the rows' offsets: a batch writes its
 * rows before its checkpoint, so after a crash the rows can be ahead of the live position, and
 * the records they applied derive no row change again when live folding re-reads them.
 */
async function rowsReach(deps: BuildDeps, table: View<any, any>): Promise<Map<number, bigint>> {
  const prefix = `${VIEW_PK_PREFIX}${viewSegment(table.name, table.version)}#`;
  const reach = new Map<number, bigint>();
  const topicPrefix = offsetsKey(table.source, 0).replace(/0$/, '');
  let start: Record<string, unknown> | undefined;
  try {
    do {
      const page = await deps.documentClient.send(
        new ScanCommand({
          TableName: deps.tableName,
          FilterExpression: 'begins_with(pk, :prefix)',
          ProjectionExpression: 'offsets',
          ExpressionAttributeValues: { ':prefix': prefix },
          ExclusiveStartKey: start,
          ConsistentRead: true,
        }),
      );
      for (const item of page.Items ?? []) {
        for (const [at, offset] of Object.entries((item.offsets ?? {}) as Record<string, string>)) {
          if (!at.startsWith(topicPrefix) || !/^\d+$/.test(offset)) continue;
          const partition = Number(at.slice(topicPrefix.length));
          const next = BigInt(offset) + 1n;
          if (next > (reach.get(partition) ?? 0n)) reach.set(partition, next);
        }
      }
      start = page.LastEvaluatedKey;
    } while (start !== undefined);
  } catch (error) {
    throw new EngineError('STORAGE_FAILED', `reading the rows of table "${table.name}" for a build failed: ${errorInfo(error).message}`, {
      retriable: true,
      cause: error,
      context: { view: table.name },
    });
  }
  return reach;
}

/**
 * Per partition, the live group's position: the largest of its committed offset, its checkpoint
 * and (for a build in the background) the offsets up to which live batches skipped the view;
 * for a partition handed over to live folding (`handedOver`), at most its handover offset: every
 * record from there on is folded live, with its trigger changes, never by the build.
 */
export async function liveTargets(
  deps: BuildDeps,
  partitions: readonly number[],
  skipped: Readonly<Record<string, number>> = {},
  handedOver: Readonly<Record<string, number>> = {},
): Promise<Map<number, bigint>> {
  const topic = deps.view.source;
  const [committed] = await deps.admin.fetchOffsets({ groupId: deps.groupId, topics: [topic] });
  const targets = new Map<number, bigint>();
  for (const partition of partitions) {
    const commit = committed?.partitions.find((p) => p.partition === partition)?.offset;
    const fromCommit = commit !== undefined && /^\d+$/.test(commit) ? BigInt(commit) : 0n;
    const checkpoint = await deps.store.readCheckpoint(topic, partition);
    const fromCheckpoint = checkpoint !== undefined && /^\d+$/.test(checkpoint) ? BigInt(checkpoint) : 0n;
    targets.set(partition, partitionTarget(fromCommit, fromCheckpoint, skipped[String(partition)], handedOver[String(partition)]));
  }
  return targets;
}

/**
 * One partition's build target (see {@link liveTargets}): the largest of the live group's commit,
 * its checkpoint and the skip, at most the handover offset when one is recorded.
 *
 * @example
 * partitionTarget(10n, 12n, 20, 15); // 15n: from 15 on, live folding folds every record
 */
export function partitionTarget(commit: bigint, checkpoint: bigint, skipped: number | undefined, handedOver: number | undefined): bigint {
  let target = commit > checkpoint ? commit : checkpoint;
  if (skipped !== undefined && BigInt(skipped) > target) target = BigInt(skipped);
  if (handedOver !== undefined && BigInt(handedOver) < target) target = BigInt(handedOver);
  return target;
}

/**
 * The partitions whose history below the live position is no longer in Kafka; throws
 * `BUILD_HISTORY_INCOMPLETE` for them unless the view says `backfill: 'retained'`.
 */
export function historyGone(view: View<any, any>, partitions: readonly number[], low: ReadonlyMap<number, bigint>, targets: ReadonlyMap<number, bigint>): number[] {
  const topic = view.source;
  const gone = partitions.filter((p) => low.get(p)! > 0n && targets.get(p)! > 0n);
  if (gone.length > 0 && view.backfill !== 'retained') {
    const where = gone.map((p) => `${topic}/${p} starts at offset ${low.get(p)}`).join(', ');
    const fix =
      view.over !== undefined
        ? `A table aggregation builds only from the whole history (a row missing from it would later be subtracted without having been added): keep the table's topic whole (compaction keeps it so, retention and deleted records do not) and deploy the aggregation again`
        : `Give the view backfill: 'retained' to build from the retained history (the registry records from which offsets), or raise the topic's retention before the next rebuild`;
    throw new EngineError(
      'BUILD_HISTORY_INCOMPLETE',
      `view "${view.name}" version ${view.version} needs a build from the start of topic "${topic}", but its early records are no longer in Kafka (${where}; retention or deleted records): a build from what is left would not be exact. ${fix}`,
      { context: { view: view.name, topic, earliest: Object.fromEntries(gone.map((p) => [p, String(low.get(p))])) } },
    );
  }
  return gone;
}

/**
 * Builds `deps.view` (the version in the code) unless its alias already names it; resolves once
 * the alias names it. Throws `BUILD_HISTORY_INCOMPLETE` (see the module header) or rejects with
 * what stopped the build; a build stopped by the task's stop resolves with `false`.
 */
export async function buildView(deps: BuildDeps, live: number | undefined): Promise<boolean> {
  const { view } = deps;
  if (live !== undefined && live >= view.version) return true;
  const background = deps.background === true;
  const segment = viewSegment(view.name, view.version);
  const topic = view.source;
  const offsets = await deps.admin.fetchTopicOffsets(topic);
  const partitions = offsets.map((o) => o.partition).sort((a, b) => a - b);
  const low = new Map(offsets.map((o) => [o.partition, BigInt(o.low)]));
  let handover = background ? await readHandover(deps.documentClient, deps.tableName, view) : undefined;
  let targets = await liveTargets(deps, partitions, handover?.skipped, handover?.handedOver);
  if (view.over !== undefined) {
    // Before the join only (buildsInBackground): the rows stand still while the build runs.
    for (const [p, reached] of await rowsReach(deps, view.over)) if (targets.has(p) && reached > targets.get(p)!) targets.set(p, reached);
  }
  const gone = historyGone(view, partitions, low, targets);
  const start = new Map(partitions.map((p) => [p, gone.includes(p) ? low.get(p)! : 0n]));
  const total = () => partitions.reduce((sum, p) => sum + Number(targets.get(p)! - start.get(p)!), 0);
  const position = new Map<number, bigint>();
  for (const p of partitions) {
    const checkpoint = await deps.store.readCheckpoint(buildCheckpointTopic(topic, segment), p);
    const at = checkpoint !== undefined ? BigInt(checkpoint) : start.get(p)!;
    position.set(p, at > start.get(p)! ? at : start.get(p)!);
  }
  const remaining = () => partitions.filter((p) => position.get(p)! < targets.get(p)!);
  const done = () => partitions.reduce((sum, p) => sum + Number((position.get(p)! < targets.get(p)! ? position.get(p)! : targets.get(p)!) - start.get(p)!), 0);
  // In the background the targets move until the handover closes (see BuildGate): the build is done once they stand still and are reached.
  let closing = handover?.closing === true;
  let closed = false;
  const finishedHere = () => remaining().length === 0 && (!background || closed);
  const startedMs = Date.now();
  const doneAtStart = done();
  const report = () => {
    const elapsed = (Date.now() - startedMs) / 1000;
    const rate = elapsed > 0 ? (done() - doneAtStart) / elapsed : 0;
    const all = total();
    deps.progress({ view: view.name, version: view.version, done: done(), total: all, rate: Math.round(rate), etaSeconds: rate > 0 ? Math.ceil((all - done()) / rate) : undefined });
  };

  if (!finishedHere()) {
    // At once, so `/health` and the stats show the build from its start.
    report();
    const copy = view.over !== undefined ? buildTableCopy(view.over, segment) : undefined;
    const views: View<any, any>[] = copy !== undefined ? [copy, Object.freeze({ ...view, over: copy })] : [view];
    const buildApp: App = { ...deps.app, views, triggers: [], sourceTopics: [topic], functions: [] };
    const processor = new BatchProcessor({
      app: buildApp,
      store: checkpointsUnder(deps.store, topic, segment),
      cache: new StateCache({ maxEntries: 10_000, maxBytes: 64 * 1024 * 1024 }),
      // The copy's poison is the table's, dead-lettered by the table's own fold already.
      deadLetters: copy !== undefined ? { send: (letters) => deps.deadLetters.send(letters.filter((l) => l.kind !== 'poison' || l.view !== copy.name)) } : deps.deadLetters,
      changes: noChanges,
      limits: deps.limits,
    });
    const consumer: Consumer = deps.kafka.consumer({
      groupId: buildGroupId(deps.groupId, segment),
      sessionTimeout: deps.limits.sessionTimeoutMs,
      heartbeatInterval: deps.limits.heartbeatIntervalMs,
      maxBytesPerPartition: deps.limits.maxBytesPerPartition,
      allowAutoTopicCreation: false,
    });
    let failure: unknown;
    let finish!: () => void;
    const finished = new Promise<void>((resolve) => (finish = resolve));
    const timer = setInterval(report, deps.progressIntervalMs);
    let poll: ReturnType<typeof setInterval> | undefined;
    try {
      await consumer.connect();
      await consumer.subscribe({ topics: [topic], fromBeginning: true });
      await consumer.run({
        autoCommit: false,
        eachBatchAutoResolve: false,
        eachBatch: async ({ batch, resolveOffset, heartbeat, isRunning, isStale }) => {
          const p = batch.partition;
          const target = targets.get(p)!;
          const records: SourceRecord[] = [];
          let beyond = false;
          for (const m of batch.messages) {
            if (BigInt(m.offset) >= target) {
              beyond = true;
              break;
            }
            if (BigInt(m.offset) < start.get(p)!) continue;
            records.push(toSourceRecord(topic, p, m));
          }
          if (!isRunning() || isStale()) return;
          if (records.length > 0) {
            await processor.apply(topic, p, records);
            const next = (BigInt(records[records.length - 1]!.offset) + 1n).toString();
            await processor.checkpoint(topic, p, next);
            await consumer.commitOffsets([{ topic, partition: p, offset: next }]);
            resolveOffset(records[records.length - 1]!.offset);
            if (BigInt(next) > position.get(p)!) position.set(p, BigInt(next));
          }
          await heartbeat();
          const last = batch.messages[batch.messages.length - 1];
          if (last !== undefined && BigInt(last.offset) + 1n >= target && position.get(p)! < target) position.set(p, target);
          if (background) {
            // Unresolved records are fetched again: wait a little for the live position to move past them.
            if (records.length === 0 && beyond) await delay(200);
          } else if (position.get(p)! >= target) consumer.pause([{ topic, partitions: [p] }]);
          if (finishedHere()) finish();
        },
      });
      // As live folding does on a join: another build task may have moved a partition's stream time on.
      consumer.on(consumer.events.GROUP_JOIN, () => processor.forgetStreamTimes());
      consumer.on(consumer.events.CRASH, (event) => {
        if (!event.payload.restart) {
          failure = event.payload.error;
          finish();
        }
      });
      // Other tasks may build some partitions: their checkpoints say how far they got. In the
      // background, the live position is read again, and the handover closed once the build is near it.
      let polling = false;
      poll = setInterval(() => {
        if (polling) return;
        polling = true;
        void (async () => {
          await Promise.all(
            remaining().map(async (p) => {
              const checkpoint = await deps.store.readCheckpoint(buildCheckpointTopic(topic, segment), p);
              if (checkpoint !== undefined && BigInt(checkpoint) > position.get(p)!) position.set(p, BigInt(checkpoint));
            }),
          );
          if (background && !closed) {
            handover = await readHandover(deps.documentClient, deps.tableName, view);
            closing ||= handover.closing;
            if (!closing) {
              targets = await liveTargets(deps, partitions, handover.skipped, handover.handedOver);
              const behind = partitions.reduce((sum, p) => sum + (position.get(p)! < targets.get(p)! ? Number(targets.get(p)! - position.get(p)!) : 0), 0);
              if (behind <= HANDOVER_LAG) {
                await closeHandover(deps.documentClient, deps.tableName, view);
                closing = true;
              }
            }
            if (closing) {
              // Read after the close: no live batch skips the view any more, so these targets stand.
              handover = await readHandover(deps.documentClient, deps.tableName, view);
              targets = await liveTargets(deps, partitions, handover.skipped, handover.handedOver);
              closed = true;
            }
          }
          if (finishedHere()) finish();
        })().then(
          () => (polling = false),
          () => (polling = false),
        );
      }, background ? 300 : 1_000);
      if (finishedHere()) finish();
      const stopped = await Promise.race([finished.then(() => false), deps.stopRequested.then(() => true)]);
      if (failure !== undefined) throw failure;
      if (stopped) return false;
    } catch (error) {
      if (error instanceof EngineError) throw error;
      throw new EngineError('BUILD_FAILED', `the build of view "${view.name}" version ${view.version} failed: ${errorInfo(error).message}`, {
        retriable: true,
        cause: error,
        context: { view: view.name },
      });
    } finally {
      clearInterval(timer);
      if (poll !== undefined) clearInterval(poll);
      await consumer.disconnect().catch(() => {});
    }
  }
  report();
  const finals = view.window?.emit === 'final' ? await buildFinalsFrom(deps, partitions, segment) : undefined;
  if (await deps.pausePoint?.('before-swap')) return false;
  // In the background, a partition no live batch handed over before the swap is handed over by it, at its target.
  const handedOverAt = background ? new Map(partitions.map((p) => [p, targets.get(p)!])) : undefined;
  await swap(deps, gone.length > 0 ? Object.fromEntries(gone.map((p) => [String(p), String(low.get(p))])) : undefined, finals, handedOverAt);
  if (await deps.pausePoint?.('after-swap')) return true;
  await deps.admin.deleteGroups([buildGroupId(deps.groupId, segment)]).catch(() => {});
  return true;
}

/**
 * Where the final changes of a built `emit: 'final'` view start: the closing stream time its build
 * reached, the least over the partitions that had an event for it of the stream time on its
 * build checkpoints (`closingStreamTime`, partitions without one left out). A window whose close
 * (`closeAt`) is below it closed in history: the closer clears it without a change. Every later
 * window gets its final change once it closes live. Undefined when no partition had an event.
 */
async function buildFinalsFrom(deps: BuildDeps, partitions: readonly number[], segment: string): Promise<number | undefined> {
  const key = streamTimeKey(deps.view);
  const times: number[] = [];
  for (const p of partitions) {
    const state = await deps.store.readCheckpointState(buildCheckpointTopic(deps.view.source, segment), p);
    const time = state?.streamTime[key];
    if (time !== undefined) times.push(time);
  }
  return closingStreamTime(times);
}

/**
 * The alias flip: `live` becomes this version, once, conditionally on it being lower (or absent);
 * with it, for a final view, where its final changes start (`versions.<v>.finalsFrom`), and, for
 * a build in the background, `handedOverAt`: the build's final target of each partition, recorded
 * as its handover offset where no live batch recorded one (every record from the target on is
 * folded live after the close, with its trigger changes; none below it is).
 */
export async function swap(deps: BuildDeps, retainedFrom: Record<string, string> | undefined, finalsFrom?: number, handedOverAt?: ReadonlyMap<number, bigint>): Promise<void> {
  const { view } = deps;
  const sets = ['live = :v', 'swappedAt = :now'];
  const values: Record<string, unknown> = { ':v': view.version, ':now': new Date().toISOString() };
  const names: Record<string, string> = { '#v': String(view.version) };
  for (const [partition, at] of handedOverAt ?? []) {
    sets.push(`versions.#v.handedOver.#h${partition} = if_not_exists(versions.#v.handedOver.#h${partition}, :h${partition})`);
    names[`#h${partition}`] = String(partition);
    values[`:h${partition}`] = Number(at);
  }
  if (retainedFrom !== undefined) {
    sets.push('versions.#v.retainedFrom = :from');
    values[':from'] = retainedFrom;
  }
  if (finalsFrom !== undefined) {
    sets.push('versions.#v.finalsFrom = :finals');
    values[':finals'] = finalsFrom;
  }
  try {
    await deps.documentClient.send(
      new UpdateCommand({
        TableName: deps.tableName,
        Key: viewRegistryKey(view.name),
        UpdateExpression: `SET ${sets.join(', ')}`,
        ConditionExpression: 'attribute_not_exists(live) OR live < :v',
        ExpressionAttributeValues: values,
        ...(sets.length > 2 ? { ExpressionAttributeNames: names } : {}),
      }),
    );
  } catch (error) {
    // Another task swapped first: the alias already names this version (or a later one).
    if ((error as { name?: string }).name === 'ConditionalCheckFailedException') return;
    throw new EngineError('STORAGE_FAILED', `swapping view "${view.name}" to version ${view.version} failed: ${errorInfo(error).message}`, {
      retriable: true,
      cause: error,
      context: { view: view.name },
    });
  }
}

/** The store a build folds through: the checkpoints of `topics` kept apart from the live group's. */
export function checkpointsUnder(store: ItemStore, topics: string | readonly string[], segment: string): ItemStore {
  const built = new Set(typeof topics === 'string' ? [topics] : topics);
  const own = (t: string) => (built.has(t) ? buildCheckpointTopic(t, segment) : t);
  return {
    readItems: (keys) => store.readItems(keys),
    readItem: (key) => store.readItem(key),
    putItem: (item, expected) => store.putItem(item, expected),
    writeCheckpoint: (t, p, next, streamTime) => store.writeCheckpoint(own(t), p, next, streamTime),
    readCheckpoint: (t, p) => store.readCheckpoint(own(t), p),
    readCheckpointState: (t, p) => store.readCheckpointState(own(t), p),
    readWindows: (pk, below, above) => store.readWindows(pk, below, above),
    writeAtomically: (puts, deletes) => store.writeAtomically(puts, deletes),
  };
}

/**
 * How far behind the live position (records, all partitions together) a build in the background
 * closes its handover: from then on live batches wait for it instead of skipping its view.
 */
export const HANDOVER_LAG = 500;

/** How long a live batch waits for a build to fold the records before it, before the batch is retried. */
const HANDOVER_WAIT_MS = 120_000;

/** The handover state of a version's build, on the view's registry item (`versions.<v>`). */
interface Handover {
  /** Per partition, the offset below which live batches skipped the view: the build folds up to it. */
  readonly skipped: Readonly<Record<string, number>>;
  /** Set once the build is near the live position: no live batch skips the view after it. */
  readonly closing: boolean;
  /**
   * Per partition, the handover offset: the build folded every record before it (and no record at
   * or past it), live batches fold the view from it on, with trigger changes, in every task and
   * group generation (no live batch skips the partition after it).
   */
  readonly handedOver: Readonly<Record<string, number>>;
  /** The live version (the alias). */
  readonly live: number | undefined;
}

function storageFailure(what: string, view: View<any, any>, error: unknown): EngineError {
  return new EngineError('STORAGE_FAILED', `${what} of view "${view.name}" version ${view.version} failed: ${errorInfo(error).message}`, {
    retriable: true,
    cause: error,
    context: { view: view.name },
  });
}

const isConditionFailure = (error: unknown) => (error as { name?: string }).name === 'ConditionalCheckFailedException';

async function readHandover(client: DynamoDBDocumentClient, tableName: string, view: View<any, any>): Promise<Handover> {
  try {
    const { Item } = await client.send(new GetCommand({ TableName: tableName, Key: viewRegistryKey(view.name), ConsistentRead: true }));
    const version = (Item?.versions as Record<string, { skipped?: Record<string, number>; closing?: string; handedOver?: Record<string, number> }> | undefined)?.[
      String(view.version)
    ];
    return {
      skipped: version?.skipped ?? {},
      closing: version?.closing !== undefined,
      handedOver: version?.handedOver ?? {},
      live: typeof Item?.live === 'number' ? Item.live : undefined,
    };
  } catch (error) {
    throw storageFailure('reading the build state', view, error);
  }
}

/**
 * Where the final changes of a view version start (its swap recorded it, see `buildFinalsFrom`):
 * a closed window whose `closeAt` is below it is history and gets no change. `-Infinity` when
 * nothing was recorded (a version never built from history: every window's change is owed).
 */
export async function readFinalsFrom(client: DynamoDBDocumentClient, tableName: string, view: View<any, any>): Promise<number> {
  try {
    const { Item } = await client.send(new GetCommand({ TableName: tableName, Key: viewRegistryKey(view.name), ConsistentRead: true }));
    const from = (Item?.versions as Record<string, { finalsFrom?: unknown }> | undefined)?.[String(view.version)]?.finalsFrom;
    return typeof from === 'number' ? from : Number.NEGATIVE_INFINITY;
  } catch (error) {
    throw storageFailure('reading where final changes start', view, error);
  }
}

/**
 * Makes the registry ready for a build in the background: empty maps of skipped offsets and of
 * handed-over partitions on the version's entry (recorded by the start-up check). Called before
 * the task joins its group.
 */
export async function prepareBackgroundBuild(client: DynamoDBDocumentClient, tableName: string, view: View<any, any>): Promise<void> {
  try {
    await client.send(
      new UpdateCommand({
        TableName: tableName,
        Key: viewRegistryKey(view.name),
        UpdateExpression: 'SET versions.#v.skipped = if_not_exists(versions.#v.skipped, :empty), versions.#v.handedOver = if_not_exists(versions.#v.handedOver, :empty)',
        ConditionExpression: 'attribute_exists(versions.#v)',
        ExpressionAttributeNames: { '#v': String(view.version) },
        ExpressionAttributeValues: { ':empty': {} },
      }),
    );
  } catch (error) {
    throw storageFailure('preparing the build', view, error);
  }
}

async function closeHandover(client: DynamoDBDocumentClient, tableName: string, view: View<any, any>): Promise<void> {
  try {
    await client.send(
      new UpdateCommand({
        TableName: tableName,
        Key: viewRegistryKey(view.name),
        UpdateExpression: 'SET versions.#v.closing = if_not_exists(versions.#v.closing, :now)',
        ExpressionAttributeNames: { '#v': String(view.version) },
        ExpressionAttributeValues: { ':now': new Date().toISOString() },
      }),
    );
  } catch (error) {
    throw storageFailure('closing the handover', view, error);
  }
}

/**
 * What a live batch may do with a view being built, as the registry decided: leave it to the
 * build (`skipped`), fold it (`handed-over`: the partition was handed over, or the view swapped),
 * or wait for the build (`closing`).
 */
type SkipClaim = 'skipped' | 'handed-over' | 'closing';

/** Records that live batches skip the view below `next` on `partition`, unless the partition was handed over or the handover is closing. */
async function claimSkip(client: DynamoDBDocumentClient, tableName: string, view: View<any, any>, partition: number, next: number): Promise<SkipClaim> {
  try {
    await client.send(
      new UpdateCommand({
        TableName: tableName,
        Key: viewRegistryKey(view.name),
        UpdateExpression: 'SET versions.#v.skipped.#p = :next',
        ConditionExpression:
          'attribute_not_exists(versions.#v.closing) AND attribute_not_exists(versions.#v.handedOver.#p) AND (attribute_not_exists(live) OR live < :version) AND (attribute_not_exists(versions.#v.skipped.#p) OR versions.#v.skipped.#p < :next)',
        ExpressionAttributeNames: { '#v': String(view.version), '#p': String(partition) },
        ExpressionAttributeValues: { ':next': next, ':version': view.version },
      }),
    );
    return 'skipped';
  } catch (error) {
    if (!isConditionFailure(error)) throw storageFailure('recording a skipped batch', view, error);
    const state = await readHandover(client, tableName, view);
    if (state.handedOver[String(partition)] !== undefined || (state.live !== undefined && state.live >= view.version)) return 'handed-over';
    // A larger offset recorded already (a batch read again) still covers this one.
    return state.closing ? 'closing' : 'skipped';
  }
}

/**
 * Records that live batches fold the view on `partition` from `at` on, once, while no live batch
 * left a record at or past `at` to the build (`skipped[p] <= at`): the build must have folded
 * every skipped record before live folding starts, and the handover offset must be where its
 * trigger changes start. False when it was not recorded for that reason (a skip moved on).
 */
async function recordHandover(client: DynamoDBDocumentClient, tableName: string, view: View<any, any>, partition: number, at: bigint): Promise<boolean> {
  try {
    await client.send(
      new UpdateCommand({
        TableName: tableName,
        Key: viewRegistryKey(view.name),
        UpdateExpression: 'SET versions.#v.handedOver.#p = :at',
        ConditionExpression: 'attribute_not_exists(versions.#v.handedOver.#p) AND (attribute_not_exists(versions.#v.skipped.#p) OR versions.#v.skipped.#p <= :at)',
        ExpressionAttributeNames: { '#v': String(view.version), '#p': String(partition) },
        ExpressionAttributeValues: { ':at': Number(at) },
      }),
    );
    return true;
  } catch (error) {
    if (!isConditionFailure(error)) throw storageFailure('recording a handover', view, error);
    // Recorded already (by this batch read again, or another task), or a skip past `at` stands.
    return (await readHandover(client, tableName, view)).handedOver[String(partition)] !== undefined;
  }
}

/**
 * The live side of builds in the background. For a view being built, a live batch of partition
 * p starting at offset f:
 * - folds the view when p was handed over (`versions.<v>.handedOver[p]` on the registry item):
 *   in any task, after any restart or rebalance, also when the build's checkpoint of p is behind
 *   f again (live folding ran ahead of it);
 * - otherwise, when the build's checkpoint of p is at or past the handover offset h, records the
 *   handover of p at h and folds the view. h is the largest of f, the skip (`skipped[p]`: a
 *   batch that skipped up to past f was read again, uncommitted, after a rebalance or a crash)
 *   and the live checkpoint of p (records of a batch before a crash, read again): every record
 *   below h was left to the build or applied before the build by the live group, the build has
 *   folded it (the batch's overlap is fenced, quiet), and the build never folds a record at or
 *   past h (its target stops there, see `liveTargets`), so from h on every record's change comes
 *   from live folding, once;
 * - otherwise, until the build closes its handover, skips the view, after recording on the
 *   registry that the build must fold up to the batch's end (the build chases that offset);
 * - once the handover is closing, waits (the batch heartbeats meanwhile) for the build's
 *   checkpoint to reach h: every record before it was skipped by a recorded batch or is below
 *   the live group's position, both of which the build reaches before it swaps;
 * - after the swap, folds the view: every record below the live position was folded by the
 *   build, every later one by a live batch that did not skip it.
 * No skip is recorded once p is handed over, and no handover below a recorded skip (conditional
 * writes), so a recorded handover means: every record of p before it was folded by the build,
 * every skipped one too, and live batches fold the rest. Records the build folds deliver no
 * trigger changes. The handover waits for the build to pass the skip because a stale owner's
 * batch past the skip, folding once p is handed over, would otherwise fence out records below it
 * the build has not folded. A live batch never folds the view before the handover is recorded: a
 * fold racing the build over records it still owes would give some of them changes and leave
 * the others, the build's, quiet.
 */
export class BuildGate {
  private readonly building = new Map<string, View<any, any>>();
  /** `<view>/<partition>` of the partitions whose handover is recorded on the registry. */
  private readonly handedOver = new Set<string>();

  constructor(
    private readonly deps: {
      readonly documentClient: DynamoDBDocumentClient;
      readonly tableName: string;
      readonly store: ItemStore;
      readonly stopping: () => boolean;
      /**
       * The live processor's next undecided offset of a partition with windowed views
       * (`BatchProcessor.nextUndecided`): a windowed view's build must have folded up to it, so
       * that live folding can take the build's stream time there.
       */
      readonly nextUndecided?: (topic: string, partition: number) => Promise<bigint>;
    },
    views: readonly View<any, any>[],
  ) {
    for (const view of views) this.building.set(view.name, view);
  }

  /** The view's alias names the built version: live batches fold it without asking. */
  swapped(view: string): void {
    this.building.delete(view);
  }

  /** Whether `view`'s build runs and its alias does not name it yet: its windows close nothing live, its stream time is not advanced idly. */
  isBuilding(view: string): boolean {
    return this.building.has(view);
  }

  /** The views a live batch of `records` (one partition, offset order) leaves to their builds; waits when a handover is closing. */
  async skip(topic: string, partition: number, records: readonly SourceRecord[]): Promise<ReadonlySet<string> | undefined> {
    if (this.building.size === 0 || records.length === 0) return undefined;
    const first = BigInt(records[0]!.offset);
    const next = Number(BigInt(records[records.length - 1]!.offset) + 1n);
    let skip: Set<string> | undefined;
    for (const view of [...this.building.values()]) {
      if (view.source !== topic) continue;
      const key = `${view.name}/${partition}`;
      if (this.handedOver.has(key)) continue;
      if (await this.handOver(view, partition, first, key)) continue;
      const claim = await claimSkip(this.deps.documentClient, this.deps.tableName, view, partition, next);
      if (claim === 'skipped') {
        (skip ??= new Set()).add(view.name);
        continue;
      }
      if (claim === 'handed-over') {
        this.handedOver.add(key);
        continue;
      }
      await this.waitFor(view, partition, first, key);
    }
    return skip;
  }

  private async buildCheckpoint(view: View<any, any>, partition: number): Promise<bigint | undefined> {
    const checkpoint = await this.deps.store.readCheckpoint(buildCheckpointTopic(view.source, viewSegment(view.name, view.version)), partition);
    return checkpoint !== undefined ? BigInt(checkpoint) : undefined;
  }

  /**
   * Hands `partition` over at the batch of `first` when the build has folded every record live
   * folding does not fold from there (see the class): true once the handover is recorded (here
   * or by another task), false while the build is not that far.
   */
  private async handOver(view: View<any, any>, partition: number, first: bigint, key: string): Promise<boolean> {
    const built = await this.buildCheckpoint(view, partition);
    if (built === undefined || built < first) return false;
    // A windowed view also needs the build past every record the live side decided (a batch
    // read again after a crash starts below them): its stream time is taken from there.
    if (view.window !== undefined && this.deps.nextUndecided !== undefined && built < (await this.deps.nextUndecided(view.source, partition))) return false;
    const state = await readHandover(this.deps.documentClient, this.deps.tableName, view);
    if (state.handedOver[String(partition)] === undefined) {
      const claim = state.skipped[String(partition)];
      const live = await this.deps.store.readCheckpoint(view.source, partition);
      let at = first;
      if (typeof claim === 'number' && BigInt(claim) > at) at = BigInt(claim);
      if (live !== undefined && /^\d+$/.test(live) && BigInt(live) > at) at = BigInt(live);
      if (built < at || !(await recordHandover(this.deps.documentClient, this.deps.tableName, view, partition, at))) return false;
    }
    this.handedOver.add(key);
    return true;
  }

  private async waitFor(view: View<any, any>, partition: number, first: bigint, key: string): Promise<void> {
    const deadline = Date.now() + HANDOVER_WAIT_MS;
    for (;;) {
      if (await this.handOver(view, partition, first, key)) return;
      const state = await readHandover(this.deps.documentClient, this.deps.tableName, view);
      if (state.live !== undefined && state.live >= view.version) {
        this.swapped(view.name);
        return;
      }
      if (state.handedOver[String(partition)] !== undefined) {
        this.handedOver.add(key);
        return;
      }
      if (this.deps.stopping() || Date.now() > deadline) {
        throw new EngineError(
          'BUILD_FAILED',
          `a live batch of ${view.source}/${partition} waited ${HANDOVER_WAIT_MS} ms for the build of view "${view.name}" version ${view.version} to fold the records before offset ${first}; the batch is retried`,
          { retriable: true, context: { view: view.name, topic: view.source, partition } },
        );
      }
      await delay(100);
    }
  }
}

/**
 * Whether a view's build can run beside live folding ({@link BuildGate}). Not yet for a table
 * aggregation or a table other views look up or aggregate (their events and rows come from
 * other views' batches; an aggregation's build relies on the table's rows standing still, see
 * the module header), nor a repartitioned one: those build before the task joins its group.
 * A windowed view builds beside it: its version's stream time is its own (`streamTimeKey`), the
 * build advances it on its checkpoints, and live folding takes it at the handover
 * (`BatchProcessor.adoptBuildStreamTimes`).
 */
export function buildsInBackground(app: App, view: View<any, any>): boolean {
  if (view.over !== undefined || view.repartition === true) return false;
  const used = app.views.some((v) => v.over?.name === view.name || Object.values(v.lookup ?? {}).some((l) => l.table.name === view.name));
  return !used;
}

/**
 * Whether a build of `deps.view` has records to fold: false when the live group never folded
 * its source (a first deployment) and no live batch skipped the view yet, so the swap can be
 * made at once, before the task joins its group, and live folding delivers every change.
 */
export async function buildNeeded(deps: BuildDeps, live: number | undefined): Promise<boolean> {
  const { view } = deps;
  if (live !== undefined && live >= view.version) return false;
  const segment = viewSegment(view.name, view.version);
  const offsets = await deps.admin.fetchTopicOffsets(view.source);
  const partitions = offsets.map((o) => o.partition);
  const handover = await readHandover(deps.documentClient, deps.tableName, view);
  const targets = await liveTargets(deps, partitions, handover.skipped, handover.handedOver);
  // Before the task joins its group: a build that cannot be exact stops the start.
  historyGone(view, partitions, new Map(offsets.map((o) => [o.partition, BigInt(o.low)])), targets);
  if (handover.closing || Object.keys(handover.skipped).length > 0) return true;
  for (const p of partitions) {
    const checkpoint = await deps.store.readCheckpoint(buildCheckpointTopic(view.source, segment), p);
    if ((checkpoint !== undefined ? BigInt(checkpoint) : 0n) < targets.get(p)!) return true;
  }
  return false;
}
