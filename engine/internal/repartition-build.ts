/**
 * Builds of a repartitioned view version (`repartition: true`, repartition.ts): a view added to
 * an app whose source has history, or a version bump. They run before the task joins its group
 * (build.ts `buildsInBackground`), in two legs, each a consumer group of its own with the
 * build's checkpoints, then the swap:
 *
 * 1. **Forward.** The source's records below the live group's position (build.ts `liveTargets`)
 *    go through the view (decode, filter, key; poison dead-lettered) and are produced to the
 *    version's own repartition topic (`repartitionTopic(app, view, version)`), exactly as live
 *    batches forward: one idempotent producer, in offset order per source partition, and a
 *    partition's build checkpoint (`<source>@<segment>`) written only after the produce is
 *    acknowledged. A crash re-forwards from that checkpoint, so a copy is repeated only after
 *    its first copy, which is what the fold's origin fence needs (repartition.ts, header).
 * 2. **Ends.** Once every source partition's build checkpoint reached its target, the
 *    repartition topic's high watermarks are recorded once on the view's registry item
 *    (`versions.<v>.repartitionEnds`, partition → offset, `if_not_exists`): every first copy of
 *    the history sits below them. The first task to record them wins; every task (and a
 *    restart) folds to the recorded ends, never to a later watermark, so a record live folding
 *    forwards after the swap is never folded by the build (its trigger changes stay live's).
 * 3. **Fold.** The repartition topic below the ends is folded into the version's items
 *    (checkpoints `<repartition topic>@<segment>`), with the fence and conditional writes of
 *    live folding and no triggers: a crash re-reads from the fold's commit and applies nothing
 *    twice.
 * 4. **Swap**, as build.ts. Live folding then forwards the source from its position on into the
 *    same topic (after the ends), and folds the topic from the ends on: the processor leaves the
 *    records below them out (`ProcessorDeps.repartitionFloors`), so history is neither folded
 *    again nor delivered to triggers, and every later record is folded live, with its changes.
 */
import { GetCommand, UpdateCommand, type DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import type { Consumer } from 'kafkajs';
import { buildGroupId, repartitionFoldGroupId, viewRegistryKey, viewSegment } from '../../sdk/contract/index.ts';
import type { App, SourceRecord, View } from '../../sdk/index.ts';
import { repartitionTopic } from '../../sdk/index.ts';
import { checkpointsUnder, historyGone, liveTargets, noChanges, swap, type BuildDeps } from './build.ts';
import { EngineError, errorInfo } from './errors.ts';
import { BatchProcessor, buildCheckpointTopic } from './processor.ts';
import { createRepartitionProducer } from './repartition.ts';
import { toSourceRecord } from './kafka-consumer.ts';
import { StateCache } from './state-cache.ts';

/** What a repartitioned view's registry item says about a version's build. */
interface RepartitionBuildState {
  readonly live: number | undefined;
  /** Partition of the version's repartition topic → the offset its build folds up to. */
  readonly ends: Readonly<Record<string, number>> | undefined;
}

async function readState(client: DynamoDBDocumentClient, tableName: string, view: View<any, any>): Promise<RepartitionBuildState> {
  try {
    const { Item } = await client.send(new GetCommand({ TableName: tableName, Key: viewRegistryKey(view.name), ConsistentRead: true }));
    const version = (Item?.versions as Record<string, { repartitionEnds?: Record<string, number> }> | undefined)?.[String(view.version)];
    return { live: typeof Item?.live === 'number' ? Item.live : undefined, ends: version?.repartitionEnds };
  } catch (error) {
    throw storageFailure('reading the build state', view, error);
  }
}

/** Records the ends once (the first task's stand) and returns the recorded ones. */
async function recordEnds(deps: BuildDeps, ends: Record<string, number>): Promise<Readonly<Record<string, number>>> {
  const { view } = deps;
  try {
    await deps.documentClient.send(
      new UpdateCommand({
        TableName: deps.tableName,
        Key: viewRegistryKey(view.name),
        UpdateExpression: 'SET versions.#v.repartitionEnds = if_not_exists(versions.#v.repartitionEnds, :ends)',
        ConditionExpression: 'attribute_exists(versions.#v)',
        ExpressionAttributeNames: { '#v': String(view.version) },
        ExpressionAttributeValues: { ':ends': ends },
      }),
    );
  } catch (error) {
    throw storageFailure('recording the repartition ends', view, error);
  }
  const stored = (await readState(deps.documentClient, deps.tableName, view)).ends;
  if (stored === undefined) throw new EngineError('INTERNAL_ERROR', `view "${view.name}" version ${view.version}: the repartition ends just recorded read back as absent`, { context: { view: view.name } });
  return stored;
}

/**
 * Per repartition topic of `app`, the offsets below which its view's build folded it (the
 * recorded `repartitionEnds` of the version in the code), for {@link BatchProcessor}'s
 * `repartitionFloors`. Read after the builds, before the task joins its group.
 */
export async function repartitionFloors(client: DynamoDBDocumentClient, tableName: string, app: App): Promise<Map<string, Map<number, bigint>>> {
  const floors = new Map<string, Map<number, bigint>>();
  for (const view of app.views) {
    if (view.repartition !== true) continue;
    const { ends } = await readState(client, tableName, view);
    if (ends === undefined) continue;
    floors.set(repartitionTopic(app.name, view.name, view.version), new Map(Object.entries(ends).map(([p, offset]) => [Number(p), BigInt(offset)])));
  }
  return floors;
}

/**
 * Builds `deps.view`, a repartitioned view, before the task joins its group (see the module
 * header); resolves `true` once its alias names the version, `false` when the task's stop came
 * first (the build resumes at the next start). Throws `BUILD_HISTORY_INCOMPLETE` as build.ts,
 * `BUILD_FAILED` (retriable) when a leg's Kafka clients fail, `STORAGE_FAILED` for the registry.
 */
export async function buildRepartitionedView(deps: BuildDeps, live: number | undefined): Promise<boolean> {
  const { view, app } = deps;
  if (live !== undefined && live >= view.version) return true;
  const segment = viewSegment(view.name, view.version);
  const source = view.source;
  const internal = repartitionTopic(app.name, view.name, view.version);
  const offsets = await deps.admin.fetchTopicOffsets(source);
  const partitions = offsets.map((o) => o.partition).sort((a, b) => a - b);
  const low = new Map(offsets.map((o) => [o.partition, BigInt(o.low)]));
  const targets = await liveTargets(deps, partitions);
  const gone = historyGone(view, partitions, low, targets);
  const start = new Map(partitions.map((p) => [p, gone.includes(p) ? low.get(p)! : 0n]));
  const retainedFrom = gone.length > 0 ? Object.fromEntries(gone.map((p) => [String(p), String(low.get(p))])) : undefined;

  const state = await readState(deps.documentClient, deps.tableName, view);
  if (state.live !== undefined && state.live >= view.version) return true;
  const forwardTotal = partitions.reduce((sum, p) => sum + Number(targets.get(p)! - start.get(p)!), 0);
  if (forwardTotal === 0 && state.ends === undefined) {
    // The live group never folded the source: nothing to build, and live folding delivers every change.
    await swap(deps, retainedFrom);
    return true;
  }
  const buildApp: App = { ...app, views: [view], triggers: [], sourceTopics: [source], internalTopics: [internal], functions: [] };
  const repartition = createRepartitionProducer(deps.kafka);
  const processor = new BatchProcessor({
    app: buildApp,
    store: checkpointsUnder(deps.store, [source, internal], segment),
    cache: new StateCache({ maxEntries: 10_000, maxBytes: 64 * 1024 * 1024 }),
    deadLetters: deps.deadLetters,
    changes: noChanges,
    limits: deps.limits,
    repartition: repartition.sink,
  });
  let ends = state.ends;
  const foldTotal = () => (ends === undefined ? forwardTotal : Object.values(ends).reduce((sum, n) => sum + n, 0));
  const startedMs = Date.now();
  let doneAtStart: number | undefined;
  const report = (done: number) => {
    doneAtStart ??= done;
    const elapsed = (Date.now() - startedMs) / 1000;
    const rate = elapsed > 0 ? (done - doneAtStart) / elapsed : 0;
    const total = forwardTotal + foldTotal();
    deps.progress({ view: view.name, version: view.version, done, total, rate: Math.round(rate), etaSeconds: rate > 0 ? Math.ceil((total - done) / rate) : undefined });
  };
  try {
    if (ends === undefined) {
      await repartition.producer.connect();
      const forwarded = await consumeUpTo(deps, processor, {
        topic: source,
        groupId: buildGroupId(deps.groupId, segment),
        checkpointTopic: buildCheckpointTopic(source, segment),
        start,
        targets,
        report: (done) => report(done),
      });
      if (!forwarded) return false;
      // Every first copy of the history is acknowledged (each partition's checkpoint came after its produce).
      const high = await deps.admin.fetchTopicOffsets(internal);
      ends = await recordEnds(deps, Object.fromEntries(high.map((o) => [String(o.partition), Number(o.high)])));
    }
    const folded = await consumeUpTo(deps, processor, {
      topic: internal,
      groupId: repartitionFoldGroupId(deps.groupId, segment),
      checkpointTopic: buildCheckpointTopic(internal, segment),
      start: new Map(Object.keys(ends).map((p) => [Number(p), 0n])),
      targets: new Map(Object.entries(ends).map(([p, offset]) => [Number(p), BigInt(offset)])),
      report: (done) => report(forwardTotal + done),
    });
    if (!folded) return false;
  } catch (error) {
    if (error instanceof EngineError) throw error;
    throw new EngineError('BUILD_FAILED', `the build of view "${view.name}" version ${view.version} failed: ${errorInfo(error).message}`, {
      retriable: true,
      cause: error,
      context: { view: view.name, topic: internal },
    });
  } finally {
    await repartition.producer.disconnect().catch(() => {});
  }
  report(forwardTotal + foldTotal());
  await swap(deps, retainedFrom);
  await deps.admin.deleteGroups([buildGroupId(deps.groupId, segment), repartitionFoldGroupId(deps.groupId, segment)]).catch(() => {});
  return true;
}

/** One leg of a build: a topic consumed from `start` to `targets` (both per partition) through the build's processor. */
interface Leg {
  readonly topic: string;
  readonly groupId: string;
  /** Where this leg's checkpoints are kept (the processor's store maps `topic` to it). */
  readonly checkpointTopic: string;
  readonly start: ReadonlyMap<number, bigint>;
  readonly targets: ReadonlyMap<number, bigint>;
  /** Records done in this leg so far (all partitions, other tasks' included). */
  readonly report: (done: number) => void;
}

/**
 * Consumes a leg until every partition's checkpoint (this task's or another's) reaches its
 * target; `false` when the task's stop came first. Each batch is applied, checkpointed and
 * committed before the next, so a crash re-reads from the commit.
 */
async function consumeUpTo(deps: BuildDeps, processor: BatchProcessor, leg: Leg): Promise<boolean> {
  const { view } = deps;
  const partitions = [...leg.targets.keys()].sort((a, b) => a - b);
  const position = new Map<number, bigint>();
  for (const p of partitions) {
    const checkpoint = await deps.store.readCheckpoint(leg.checkpointTopic, p);
    const at = checkpoint !== undefined ? BigInt(checkpoint) : leg.start.get(p)!;
    position.set(p, at > leg.start.get(p)! ? at : leg.start.get(p)!);
  }
  const remaining = () => partitions.filter((p) => position.get(p)! < leg.targets.get(p)!);
  const done = () => partitions.reduce((sum, p) => sum + Number((position.get(p)! < leg.targets.get(p)! ? position.get(p)! : leg.targets.get(p)!) - leg.start.get(p)!), 0);
  if (remaining().length === 0) return true;
  leg.report(done());
  const consumer: Consumer = deps.kafka.consumer({
    groupId: leg.groupId,
    sessionTimeout: deps.limits.sessionTimeoutMs,
    heartbeatInterval: deps.limits.heartbeatIntervalMs,
    maxBytesPerPartition: deps.limits.maxBytesPerPartition,
    allowAutoTopicCreation: false,
  });
  let failure: unknown;
  let finish!: () => void;
  const finished = new Promise<void>((resolve) => (finish = resolve));
  const timer = setInterval(() => leg.report(done()), deps.progressIntervalMs);
  let poll: ReturnType<typeof setInterval> | undefined;
  try {
    await consumer.connect();
    await consumer.subscribe({ topics: [leg.topic], fromBeginning: true });
    await consumer.run({
      autoCommit: false,
      eachBatchAutoResolve: false,
      eachBatch: async ({ batch, resolveOffset, heartbeat, isRunning, isStale }) => {
        const p = batch.partition;
        const target = leg.targets.get(p);
        if (target === undefined) return;
        const records: SourceRecord[] = [];
        for (const m of batch.messages) {
          if (BigInt(m.offset) >= target) break;
          if (BigInt(m.offset) < leg.start.get(p)!) continue;
          records.push(toSourceRecord(leg.topic, p, m));
        }
        if (!isRunning() || isStale()) return;
        if (records.length > 0) {
          await processor.apply(leg.topic, p, records);
          const next = (BigInt(records[records.length - 1]!.offset) + 1n).toString();
          await processor.checkpoint(leg.topic, p, next);
          await consumer.commitOffsets([{ topic: leg.topic, partition: p, offset: next }]);
          resolveOffset(records[records.length - 1]!.offset);
          if (BigInt(next) > position.get(p)!) position.set(p, BigInt(next));
        }
        await heartbeat();
        // A fetch past the target (a gap before it: transaction markers) still reaches it.
        const last = batch.messages[batch.messages.length - 1];
        if (last !== undefined && BigInt(last.offset) + 1n >= target && position.get(p)! < target) position.set(p, target);
        if (position.get(p)! >= target) consumer.pause([{ topic: leg.topic, partitions: [p] }]);
        if (remaining().length === 0) finish();
      },
    });
    consumer.on(consumer.events.CRASH, (event) => {
      if (!event.payload.restart) {
        failure = event.payload.error;
        finish();
      }
    });
    // Other tasks may build some partitions: their checkpoints say how far they got.
    let polling = false;
    poll = setInterval(() => {
      if (polling) return;
      polling = true;
      void Promise.all(
        remaining().map(async (p) => {
          const checkpoint = await deps.store.readCheckpoint(leg.checkpointTopic, p);
          if (checkpoint !== undefined && BigInt(checkpoint) > position.get(p)!) position.set(p, BigInt(checkpoint));
        }),
      )
        .then(() => {
          if (remaining().length === 0) finish();
        })
        .finally(() => (polling = false))
        .catch(() => {});
    }, 1_000);
    const stopped = await Promise.race([finished.then(() => false), deps.stopRequested.then(() => true)]);
    if (failure !== undefined) throw failure;
    leg.report(done());
    return !stopped;
  } catch (error) {
    if (error instanceof EngineError) throw error;
    throw new EngineError('BUILD_FAILED', `the build of view "${view.name}" version ${view.version} failed reading "${leg.topic}": ${errorInfo(error).message}`, {
      retriable: true,
      cause: error,
      context: { view: view.name, topic: leg.topic },
    });
  } finally {
    clearInterval(timer);
    if (poll !== undefined) clearInterval(poll);
    await consumer.disconnect().catch(() => {});
  }
}

function storageFailure(what: string, view: View<any, any>, error: unknown): EngineError {
  return new EngineError('STORAGE_FAILED', `${what} of view "${view.name}" version ${view.version} failed: ${errorInfo(error).message}`, {
    retriable: true,
    cause: error,
    context: { view: view.name },
  });
}
