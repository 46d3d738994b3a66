/**
 * Builds of a view version: a view the table has never had live, or a version above the live
 * one, is folded from its source topic's earliest offset into its own items (view segment
 * `<view>@<version>`, see `viewSegment`) before the task joins its consumer group; then the
 * view's alias (`live` on its registry item) flips to it in one conditional write.
 *
 * - **Target.** Per partition, the live group's position: the larger of its committed offset
 *   and its checkpoint. Every record below it was applied and its trigger changes delivered
 *   from the version live before; the build folds exactly those, with no triggers. The live
 *   group resumes from its commit after the swap and folds the rest into the new version, with
 *   triggers: no change is delivered twice, none skipped.
 * - **Exactness.** The build is a BatchProcessor of this one view under its own consumer group
 *   (`<group>.build.<segment>`), with its own checkpoints (topic `<topic>@<segment>`, a name no
 *   Kafka topic can have): the same offset fence and conditional writes as live folding, so a
 *   crash or a rebalance in a build re-reads from its commit and applies nothing twice.
 * - **History gone.** When a partition's earliest retained offset is above 0 the build cannot be
 *   exact and stops with `BUILD_HISTORY_INCOMPLETE`, unless the view says `backfill: 'retained'`;
 *   then it folds what is there and the registry records from where.
 */
import { UpdateCommand, type DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import type { Admin, Consumer, Kafka } from 'kafkajs';
import { viewRegistryKey, viewSegment } from '../../sdk/contract/index.ts';
import type { App, SourceRecord, View } from '../../sdk/index.ts';
import type { ChangeSink, DeadLetterSink } from './change-sink.ts';
import { EngineError, errorInfo } from './errors.ts';
import type { ItemStore } from './processor.ts';
import { BatchProcessor } from './processor.ts';
import { StateCache } from './state-cache.ts';

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
}

const noChanges: ChangeSink = {
  deliver: async () => {
    throw new TypeError('a build delivers no trigger changes');
  },
};

/** The topic a build's checkpoints are kept under: `@` never occurs in a Kafka topic name. */
export function buildCheckpointTopic(topic: string, segment: string): string {
  return `${topic}@${segment}`;
}

/** Consumer group of a view version's build. */
export function buildGroupId(groupId: string, segment: string): string {
  return `${groupId}.build.${segment}`;
}

async function liveTargets(deps: BuildDeps, partitions: readonly number[]): Promise<Map<number, bigint>> {
  const topic = deps.view.source;
  const [committed] = await deps.admin.fetchOffsets({ groupId: deps.groupId, topics: [topic] });
  const targets = new Map<number, bigint>();
  for (const partition of partitions) {
    const commit = committed?.partitions.find((p) => p.partition === partition)?.offset;
    const fromCommit = commit !== undefined && /^\d+$/.test(commit) ? BigInt(commit) : 0n;
    const checkpoint = await deps.store.readCheckpoint(topic, partition);
    const fromCheckpoint = checkpoint !== undefined && /^\d+$/.test(checkpoint) ? BigInt(checkpoint) : 0n;
    targets.set(partition, fromCommit > fromCheckpoint ? fromCommit : fromCheckpoint);
  }
  return targets;
}

/**
 * Builds `deps.view` (the version in the code) unless its alias already names it; resolves once
 * the alias names it. Throws `BUILD_HISTORY_INCOMPLETE` (see the module header) or rejects with
 * what stopped the build; a build stopped by the task's stop resolves with `false`.
 */
export async function buildView(deps: BuildDeps, live: number | undefined): Promise<boolean> {
  const { view } = deps;
  if (live !== undefined && live >= view.version) return true;
  const segment = viewSegment(view.name, view.version);
  const topic = view.source;
  const offsets = await deps.admin.fetchTopicOffsets(topic);
  const partitions = offsets.map((o) => o.partition).sort((a, b) => a - b);
  const low = new Map(offsets.map((o) => [o.partition, BigInt(o.low)]));
  const targets = await liveTargets(deps, partitions);
  const gone = partitions.filter((p) => low.get(p)! > 0n && targets.get(p)! > 0n);
  if (gone.length > 0 && view.backfill !== 'retained') {
    const where = gone.map((p) => `${topic}/${p} starts at offset ${low.get(p)}`).join(', ');
    throw new EngineError(
      'BUILD_HISTORY_INCOMPLETE',
      `view "${view.name}" version ${view.version} needs a build from the start of topic "${topic}", but its early records are no longer in Kafka (${where}; retention or deleted records): a build from what is left would not be exact. ` +
        `Give the view backfill: 'retained' to build from the retained history (the registry records from which offsets), or raise the topic's retention before the next rebuild`,
      { context: { view: view.name, topic, earliest: Object.fromEntries(gone.map((p) => [p, String(low.get(p))])) } },
    );
  }
  const start = new Map(partitions.map((p) => [p, gone.includes(p) ? low.get(p)! : 0n]));
  const total = partitions.reduce((sum, p) => sum + Number(targets.get(p)! - start.get(p)!), 0);
  const position = new Map<number, bigint>();
  for (const p of partitions) {
    const checkpoint = await deps.store.readCheckpoint(buildCheckpointTopic(topic, segment), p);
    const at = checkpoint !== undefined ? BigInt(checkpoint) : start.get(p)!;
    position.set(p, at > start.get(p)! ? at : start.get(p)!);
  }
  const remaining = () => partitions.filter((p) => position.get(p)! < targets.get(p)!);
  const done = () => partitions.reduce((sum, p) => sum + Number((position.get(p)! < targets.get(p)! ? position.get(p)! : targets.get(p)!) - start.get(p)!), 0);
  const startedMs = Date.now();
  const doneAtStart = done();
  const report = () => {
    const elapsed = (Date.now() - startedMs) / 1000;
    const rate = elapsed > 0 ? (done() - doneAtStart) / elapsed : 0;
    deps.progress({ view: view.name, version: view.version, done: done(), total, rate: Math.round(rate), etaSeconds: rate > 0 ? Math.ceil((total - done()) / rate) : undefined });
  };

  if (remaining().length > 0) {
    const buildApp: App = { ...deps.app, views: [view], triggers: [], sourceTopics: [topic], functions: [] };
    const processor = new BatchProcessor({
      app: buildApp,
      store: checkpointsUnder(deps.store, topic, segment),
      cache: new StateCache({ maxEntries: 10_000, maxBytes: 64 * 1024 * 1024 }),
      deadLetters: deps.deadLetters,
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
          for (const m of batch.messages) {
            if (BigInt(m.offset) >= target) break;
            if (BigInt(m.offset) < start.get(p)!) continue;
            records.push({
              topic,
              partition: p,
              offset: m.offset,
              key: m.key,
              value: m.value,
              timestampMs: Number(m.timestamp),
              headers: Object.fromEntries(Object.entries(m.headers ?? {}).map(([k, v]) => [k, Array.isArray(v) ? (v[0] === undefined ? undefined : Buffer.from(v[0])) : v === undefined ? undefined : Buffer.from(v)])),
            });
          }
          if (!isRunning() || isStale()) return;
          if (records.length > 0) {
            await processor.apply(topic, p, records);
            const next = (BigInt(records[records.length - 1]!.offset) + 1n).toString();
            await processor.checkpoint(topic, p, next);
            await consumer.commitOffsets([{ topic, partition: p, offset: next }]);
            resolveOffset(records[records.length - 1]!.offset);
            position.set(p, BigInt(next));
          }
          await heartbeat();
          const last = batch.messages[batch.messages.length - 1];
          if (last !== undefined && BigInt(last.offset) + 1n >= target && position.get(p)! < target) position.set(p, target);
          if (position.get(p)! >= target) consumer.pause([{ topic, partitions: [p] }]);
          if (remaining().length === 0) finish();
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
      // Other tasks may build some partitions: their checkpoints say how far they got.
      const poll = setInterval(() => {
        void Promise.all(
          remaining().map(async (p) => {
            const checkpoint = await deps.store.readCheckpoint(buildCheckpointTopic(topic, segment), p);
            if (checkpoint !== undefined && BigInt(checkpoint) > position.get(p)!) position.set(p, BigInt(checkpoint));
          }),
        ).then(() => {
          if (remaining().length === 0) finish();
        }, () => {});
      }, 1_000);
      if (remaining().length === 0) finish();
      const stopped = await Promise.race([finished.then(() => false), deps.stopRequested.then(() => true)]);
      clearInterval(poll);
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
      await consumer.disconnect().catch(() => {});
    }
  }
  report();
  await swap(deps, gone.length > 0 ? Object.fromEntries(gone.map((p) => [String(p), String(low.get(p))])) : undefined);
  await deps.admin.deleteGroups([buildGroupId(deps.groupId, segment)]).catch(() => {});
  return true;
}

/** The alias flip: `live` becomes this version, once, conditionally on it being lower (or absent). */
async function swap(deps: BuildDeps, retainedFrom: Record<string, string> | undefined): Promise<void> {
  const { view } = deps;
  try {
    await deps.documentClient.send(
      new UpdateCommand({
        TableName: deps.tableName,
        Key: viewRegistryKey(view.name),
        UpdateExpression: `SET live = :v, swappedAt = :now${retainedFrom !== undefined ? ', versions.#v.retainedFrom = :from' : ''}`,
        ConditionExpression: 'attribute_not_exists(live) OR live < :v',
        ExpressionAttributeValues: { ':v': view.version, ':now': new Date().toISOString(), ...(retainedFrom !== undefined ? { ':from': retainedFrom } : {}) },
        ...(retainedFrom !== undefined ? { ExpressionAttributeNames: { '#v': String(view.version) } } : {}),
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

/** The store a build folds through: its checkpoints kept apart from the live group's. */
function checkpointsUnder(store: ItemStore, topic: string, segment: string): ItemStore {
  const own = (t: string) => (t === topic ? buildCheckpointTopic(topic, segment) : t);
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
