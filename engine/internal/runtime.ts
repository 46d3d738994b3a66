/**
 * The Kafka side of the engine: a kafkajs consumer group feeding the {@link BatchProcessor},
 * offsets committed only after a batch is durable, dead letters produced to the app's
 * dead-letter topic, trigger changes handed to the dispatcher, health endpoint, logs, metrics
 * and graceful shutdown.
 */
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { LambdaClient } from '@aws-sdk/client-lambda';
import {
  Kafka,
  logLevel as kafkaLogLevel,
  Partitioners,
  type Admin,
  type KafkaConfig,
  type LogEntry,
  type Producer,
} from 'kafkajs';
import type { App } from '../../sdk/index.ts';
import { createStorage, METRIC, viewItemKey, viewSegment } from '../../sdk/contract/index.ts';
import type { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import type { ChangeOutcome, ChangeSink, DeadLetterSink } from './change-sink.ts';
import {
  compileConfig,
  DEFAULT_BATCH_RETRY_INITIAL_MS,
  DEFAULT_BATCH_RETRY_MAX_MS,
  kafkaConfigFromEnv,
  type EngineConfig,
  type EngineOptions,
  type EngineTestHooks,
  type TestPausePoint,
} from './config.ts';
import { DEFAULT_DEAD_LETTER_MAX_BYTES, encodeDeadLetter, groupDeadLetters, type DeadLetter } from './dead-letter.ts';
import { DynamoItemStore } from './dynamodb-store.ts';
import { EngineError, errorInfo } from './errors.ts';
import { itemId } from './fold.ts';
import { changeSuperseded } from './ledger.ts';
import { startHealthServer, type HealthServer } from './health.ts';
import { partitionLag } from './lag.ts';
import { BuildGate, buildNeeded, buildsInBackground, buildView, prepareBackgroundBuild, readFinalsFrom, type BuildDeps, type BuildProgress } from './build.ts';
import { checkViewDefinitions, type DefinitionCheck } from './lifecycle.ts';
import { removeReplacedVersions, removeTableCopies } from './retire.ts';
import { checkTriggerFunctions, checkViewsTable } from './preflight.ts';
import { retrying, type RetryPolicy } from './retry-policy.ts';
import { createLogger, emfLine, emfViewLine, type Logger } from './log.ts';
import { PartitionOwnership, type DeliveryVerdict } from './ownership.ts';
import { BatchProcessor, type BatchResult } from './processor.ts';
import { createRepartitionProducer, ensureRepartitionTopics } from './repartition.ts';
import { buildRepartitionedView, repartitionFloors } from './repartition-build.ts';
import { exitLikeSignal, onShutdownSignal } from './shutdown-signals.ts';
import { StateCache } from './state-cache.ts';
import { BatchTimings, type BATCH_STAGES, type BATCH_TIMINGS_WINDOW, type BatchStage, type StageSummary } from './batch-timings.ts';
import type { TriggerDispatcher } from './triggers/dispatcher.ts';
import { createTriggerChangeSink } from './triggers/sink.ts';
import { CommitPipeline } from './commit-pipeline.ts';
import { createKafkajsConsumer, type SourceBatch, type SourceConsumer } from './kafka-consumer.ts';
import { WindowCloser } from './window-closer.ts';
import { idleAdvances } from './windows.ts';

/**
 * Lifecycle of an engine task. `degraded`: running, but a batch or checkpoint is failing and
 * being retried (a storage outage within `storageOutageBudgetMs`); /health still answers 200.
 */
export type EngineState = 'starting' | 'running' | 'degraded' | 'stopping' | 'stopped' | 'failed';

/** Counters of a running engine (since start). */
export interface EngineStats {
  /** Records received from Kafka (including re-reads after a crash). */
  readonly recordsConsumed: number;
  readonly batches: number;
  /** Events folded into view states (one record may feed several views). */
  readonly eventsApplied: number;
  /** Events skipped by the offset fence: already applied before (re-reads after a crash or rebalance). */
  readonly eventsSkipped: number;
  readonly eventsFiltered: number;
  readonly writes: number;
  readonly conflicts: number;
  readonly reads: number;
  /** Cache misses written first without a read, as keys probably never written (see `NewKeyShare`). */
  readonly unreadFirstWrites: number;
  /** Of those, the keys that existed after all: each cost a lost conditional write, no read. */
  readonly unreadFirstWritesExisted: number;
  readonly deadLetters: number;
  readonly commits: number;
  readonly changesDelivered: number;
  readonly triggerInvocations: number;
  readonly triggerErrors: number;
  /** Late events per windowed view (not applied; dead-lettered or dropped by the view's `onLate`). */
  readonly lateEvents: Readonly<Record<string, number>>;
  /** Final changes of closed windows handed to triggers (`emit: 'final'` views). */
  readonly finalChanges: number;
  /** View builds running in this task (before it joins its group), per view: records done / total, rate, ETA. */
  readonly builds: Readonly<Record<string, BuildProgress>>;
  /**
   * Lag per assigned `topic/partition`: records between the high watermark and the group's
   * committed offset or this task's durable position, whichever is further. Probed from the
   * brokers on joining the group and every `metricsIntervalMs`, and updated after each batch.
   */
  readonly lag: Readonly<Record<string, number>>;
  readonly cache: { readonly entries: number; readonly bytes: number; readonly hits: number; readonly misses: number; readonly evictions: number };
  /** Where the time of the last {@link BATCH_TIMINGS_WINDOW} batches went, per stage (see {@link BATCH_STAGES}). */
  readonly batchTimings: Partial<Record<BatchStage, StageSummary>>;
}

/** A running engine task. */
export interface Engine {
  /** Resolves once the task joined its consumer group and serves health checks. */
  readonly ready: Promise<void>;
  /** Resolves after a requested stop; rejects with the {@link EngineError} that stopped the task. */
  readonly done: Promise<void>;
  /** Port of the health endpoint, once ready (undefined when none is served). */
  readonly healthPort: number | undefined;
  state(): EngineState;
  stats(): EngineStats;
  /** Finishes (or, past the grace period, abandons) in-flight batches, commits what is durable, leaves the group. */
  stop(): Promise<void>;
}

function kafkaLogCreator(log: Logger) {
  return () =>
    ({ level, label, log: entry }: LogEntry) => {
      const { message, timestamp: _t, logger: _l, ...fields } = entry as unknown as Record<string, unknown>;
      // kafkajs reports rebalances and retried requests as errors; they are routine for us.
      const mapped = level <= kafkaLogLevel.ERROR ? 'warn' : level === kafkaLogLevel.WARN ? 'warn' : 'debug';
      log.log(mapped, `kafkajs: ${String(message)}`, { component: 'kafkajs', kafkaLevel: label, ...fields });
    };
}

/**
 * Starts an engine task for an app: joins the app's consumer group and folds its source
 * topics into the views table. `testHooks` are for tests only (engine/main.ts passes them from
 * `TRIBUTARY_TEST_PAUSE_AT`, see `testPauseFromEnv`); an app never passes them.
 *
 * @example
 * const engine = startEngine({ app, tableName: 'gym-views', kafka: { brokers: ['127.0.0.1:9092'] } });
 * await engine.ready;
 * // ... later
 * await engine.stop();
 */
export function startEngine(options: EngineOptions, testHooks: EngineTestHooks = {}): Engine {
  const config = compileConfig(options);
  const sink = options.logSink ?? ((line: string) => process.stdout.write(`${line}\n`));
  const log = createLogger(config.logLevel, sink, { app: config.app.name });
  const runtime = new EngineRuntime(config, options, log, testHooks);
  return runtime.start();
}

class EngineRuntime {
  private stateValue: Exclude<EngineState, 'degraded'> = 'starting';
  /** Operations (`batch t/p`, `checkpoint t/p`) failing and being retried: the task is degraded while any is. */
  private readonly degraded = new Map<string, { sinceMs: number; error: EngineError }>();
  private readonly retryPolicy: RetryPolicy;
  private readonly counters = {
    recordsConsumed: 0,
    batches: 0,
    eventsApplied: 0,
    eventsSkipped: 0,
    eventsFiltered: 0,
    writes: 0,
    conflicts: 0,
    reads: 0,
    unreadFirstWrites: 0,
    unreadFirstWritesExisted: 0,
    deadLetters: 0,
    commits: 0,
    changesDelivered: 0,
    triggerInvocations: 0,
    triggerErrors: 0,
  };
  /** Counters at the last EMF line, for deltas. */
  private lastEmitted = { deadLetters: 0, eventsApplied: 0, triggerInvocations: 0, triggerErrors: 0 };
  /** Late events per windowed view since start, and at the last EMF line. */
  private readonly lateEvents: Record<string, number> = {};
  private lastLateEmitted: Record<string, number> = {};
  private finalChanges = 0;
  /** Partitions per source topic, from the lag probe (the closing rule needs every partition's stream time). */
  private readonly partitionCounts = new Map<string, number>();
  /** Wall clock of the last record read per `topic/partition` (idle close), or of its assignment. */
  private readonly lastReadMs = new Map<string, number>();
  private windowTimer: NodeJS.Timeout | undefined;
  private windowTick: Promise<void> | undefined;
  private readonly lag: Record<string, number> = {};
  /** Partitions of this task's current assignment, per topic (from the last GROUP_JOIN). */
  private assignment: Readonly<Record<string, readonly number[]>> = {};
  /** Next offset made durable per `topic/partition`, for lag ahead of the (trailing) commit. */
  private readonly processedUpTo = new Map<string, bigint>();
  private lagAdmin: Admin | undefined;
  private lagProbe: Promise<void> | undefined;
  private readonly cache: StateCache;
  private readonly batchTimings = new BatchTimings();
  private readonly app: App;
  private kafka!: Kafka;
  private kafkaOption: Kafka | KafkaConfig | undefined;
  private source: SourceConsumer | undefined;
  /** Set once shutdown has stopped the source, so a start that raced the stop does not stop it twice. */
  private sourceStopped = false;
  /** Set when the shutdown grace period is over: retries still waiting give up. */
  private abandoned = false;
  /** The waits of {@link waitUnlessAbandoned} in progress, woken when the grace period runs out. */
  private readonly wakers = new Set<() => void>();
  private producer: Producer | undefined;
  /** Produces repartitioned views' records to their repartition topics (repartition.ts). */
  private repartitionProducer: Producer | undefined;
  private admin: Admin | undefined;
  private dispatcher: TriggerDispatcher | undefined;
  private health: HealthServer | undefined;
  private metricsTimer: NodeJS.Timeout | undefined;
  private stopping: Promise<void> | undefined;
  private fatal: EngineError | undefined;
  private requestStop!: () => void;
  /** Per `topic/partition`: the checkpoint and commit of its last durable batch, in flight. */
  private commits: CommitPipeline | undefined;
  /** Group generations seen (GROUP_JOIN events); a commit from an earlier one is skipped. */
  private generation = 0;
  /** Whether this task still owns a partition, asked before each trigger invocation. */
  private readonly ownership: PartitionOwnership;
  /** Per `topic/partition`, the generation of its last batch here: a first batch after a join is in doubt. */
  private readonly batchGenerations = new Map<string, number>();
  /** Resolves when a stop begins, so start-up waits (joining the group) end early. */
  private readonly stopRequested = new Promise<void>((resolve) => (this.requestStop = resolve));
  private resolveDone!: () => void;
  private rejectDone!: (error: Error) => void;
  /** `eachBatch` calls in progress; a stop lets them finish, and commit, before leaving the group. */
  private readonly batchesInFlight = new Set<Promise<void>>();
  /** The start-up check of the views' definitions (versions and fingerprints). */
  private definitions: DefinitionCheck[] = [];
  /** Builds in progress in this task, per view (their last progress report). */
  private readonly builds = new Map<string, BuildProgress>();
  /** Views built beside live folding: which live batches leave them out (build.ts), and the builds. */
  private buildGate: BuildGate | undefined;
  /** The live batch processor, once made (the build gate asks it where a partition's stream time stands). */
  private liveProcessor: BatchProcessor | undefined;
  /** Per final view (swapped), where its final changes start (build.ts, `readFinalsFrom`), read once. */
  private readonly finalsFrom = new Map<string, number>();
  private backgroundBuilds: Promise<unknown> | undefined;
  /** The background removal of replaced view versions' items (retire.ts), awaited on stop. */
  private removals: Promise<unknown> | undefined;
  /** Stops listening for SIGINT/SIGTERM; set while `handleSignals` listens. */
  private releaseSignals: (() => void) | undefined;

  constructor(
    private readonly config: EngineConfig,
    private readonly options: EngineOptions,
    private readonly log: Logger,
    private readonly testHooks: EngineTestHooks,
  ) {
    this.app = config.app;
    this.retryPolicy = {
      maxAttempts: config.maxBatchAttempts,
      storageOutageBudgetMs: config.storageOutageBudgetMs,
      initialBackoffMs: DEFAULT_BATCH_RETRY_INITIAL_MS,
      maxBackoffMs: DEFAULT_BATCH_RETRY_MAX_MS,
    };
    this.cache = new StateCache({ maxEntries: config.cacheMaxEntries, maxBytes: config.cacheMaxBytes });
    this.ownership = new PartitionOwnership({ sessionTimeoutMs: config.sessionTimeoutMs });
  }

  start(): Engine {
    const done = new Promise<void>((resolve, reject) => {
      this.resolveDone = resolve;
      this.rejectDone = reject;
    });
    // `done` is how callers learn about failures; keep an unobserved rejection from crashing Node.
    done.catch(() => {});
    const ready = this.run();
    ready.catch((error) => this.fail(error));
    if (this.config.handleSignals) {
      this.releaseSignals = onShutdownSignal({
        onStop: (signal) => {
          this.log.info('signal received; stopping gracefully', { signal });
          void this.stop();
        },
        onRepeat: (signal, sinceFirstMs) =>
          this.log.info('signal repeated; still stopping gracefully (send it again later to force)', { signal, sinceFirstMs }),
        onForce: (signal) => {
          this.log.warn('signal repeated; exiting without waiting for in-flight batches (they are re-read after restart)', { signal });
          exitLikeSignal(signal);
        },
      });
    }
    const self = this;
    return {
      ready,
      done,
      get healthPort() {
        return self.health?.port;
      },
      state: () => this.state(),
      stats: () => this.stats(),
      stop: () => this.stop(),
    };
  }

  private state(): EngineState {
    return this.stateValue === 'running' && this.degraded.size > 0 ? 'degraded' : this.stateValue;
  }

  /** Why the task is degraded: the longest-failing operation and its error. */
  private degradedReason(): { reason: string; code: string; since: string } | undefined {
    let oldest: { operation: string; sinceMs: number; error: EngineError } | undefined;
    for (const [operation, entry] of this.degraded) {
      if (oldest === undefined || entry.sinceMs < oldest.sinceMs) oldest = { operation, ...entry };
    }
    if (oldest === undefined) return undefined;
    return {
      reason: `${oldest.operation} failing for ${Date.now() - oldest.sinceMs} ms, retrying: ${oldest.error.message}`,
      code: oldest.error.code,
      since: new Date(oldest.sinceMs).toISOString(),
    };
  }

  private stats(): EngineStats {
    return {
      ...this.counters,
      lateEvents: { ...this.lateEvents },
      finalChanges: this.finalChanges,
      builds: Object.fromEntries(this.builds),
      lag: { ...this.lag },
      cache: {
        entries: this.cache.size,
        bytes: this.cache.bytes,
        hits: this.cache.hits,
        misses: this.cache.misses,
        evictions: this.cache.evictions,
      },
      batchTimings: this.batchTimings.summary(),
    };
  }

  private async run(): Promise<void> {
    const { config, options, log, app } = this;
    if (config.healthPort !== null) {
      // Degraded answers 200: an orchestrator replacing the task would not bring DynamoDB back,
      // only lose the partitions' progress; the outage budget ends the task when it lasts.
      this.health = await startHealthServer(config.healthPort, config.healthHost, () => {
        const state = this.state();
        const degraded = state === 'degraded' ? this.degradedReason() : undefined;
        return {
          // A task building a view is healthy: it is making progress, and replacing it would restart the build's batch.
          healthy: state === 'running' || state === 'degraded' || (state === 'starting' && this.builds.size > 0),
          body: {
            state,
            ...(degraded ?? {}),
            app: app.name,
            groupId: config.groupId,
            lag: { ...this.lag },
            views: Object.fromEntries(this.definitions.map((d) => [d.view, { version: d.version, fingerprint: d.fingerprint }])),
            ...(this.builds.size > 0 ? { builds: Object.fromEntries(this.builds) } : {}),
          },
        };
      });
      log.info('health endpoint listening', { port: this.health.port });
    }
    const kafkaOption = options.kafka ?? kafkaConfigFromEnv(process.env);
    this.kafkaOption = kafkaOption;
    this.kafka =
      kafkaOption instanceof Kafka
        ? kafkaOption
        : new Kafka({ clientId: `tributary-${app.name}`, ...kafkaOption, logCreator: kafkaLogCreator(log) });
    const storage = createStorage({ dynamodb: options.dynamodb ?? new DynamoDBClient({}), tableName: config.tableName });
    const store = new DynamoItemStore(storage, config.readConcurrency);
    const lambda = options.lambda ?? new LambdaClient({});

    // Before joining the group: a wrong table, function or broker list stops the task here,
    // with the setting to fix, instead of on the first record after a round of retries.
    await Promise.all([
      checkViewsTable(storage.documentClient, config.tableName),
      checkTriggerFunctions(lambda, app.triggers, config.functionNames),
      this.prepareTopics(),
    ]);
    if (this.stopping) return;
    // After the table check: a view whose code changed without a version bump stops the task here.
    this.definitions = await checkViewDefinitions(storage.documentClient, config.tableName, app.views, config.acceptDefinitionChanges);
    for (const check of this.definitions) {
      if (check.verdict.kind === 'same') continue;
      log.info('view definition recorded', {
        view: check.view,
        version: check.version,
        fingerprint: check.fingerprint,
        verdict: check.verdict.kind,
        ...(check.accepted ? { accepted: true } : {}),
      });
    }
    if (this.stopping) return;

    const producer = this.kafka.producer({ createPartitioner: Partitioners.DefaultPartitioner, allowAutoTopicCreation: false });
    this.producer = producer;
    await producer.connect();
    const repartition = app.internalTopics.length > 0 ? createRepartitionProducer(this.kafka) : undefined;
    this.repartitionProducer = repartition?.producer;
    await repartition?.producer.connect();
    if (this.stopping) return;
    const deadLetters: DeadLetterSink = {
      send: async (letters) => {
        const now = new Date();
        const messages = letters.map((letter) => encodeDeadLetter(app.name, letter, now, DEFAULT_DEAD_LETTER_MAX_BYTES));
        // In order, one request at a time: the letters of one partition keep their order in the topic.
        for (const group of groupDeadLetters(messages, DEFAULT_DEAD_LETTER_MAX_BYTES)) {
          await producer.send({ topic: app.deadLetterTopic, acks: -1, messages: group });
        }
        this.counters.deadLetters += letters.length;
        for (const letter of letters) {
          log.warn('dead letter', {
            code: letter.code,
            view: letter.view,
            reason: letter.reason,
            ...(letter.kind === 'poison'
              ? { topic: letter.record.topic, partition: letter.record.partition, offset: letter.record.offset }
              : { trigger: letter.trigger, key: letter.key }),
          });
        }
      },
    };
    // Views whose version in the code is not live yet are built from history first (build.ts).
    if (!(await this.runBuilds(storage.documentClient, store, deadLetters))) return;
    // Versions the alias no longer names lose their items, in the background (retire.ts).
    const removal = { documentClient: storage.documentClient, tableName: config.tableName, log, stopRequested: this.stopRequested, graceMs: config.replacedVersionGraceMs };
    this.removals = Promise.all([
      ...app.views.map((view) => removeReplacedVersions(removal, view.name)),
      // The table copies the builds of table aggregations folded (build.ts, `buildTableCopy`).
      ...app.views.filter((view) => view.over !== undefined).map((view) => removeTableCopies(removal, view)),
    ]);
    const changes = this.buildChangeSink(deadLetters, store, lambda);
    const processor = new BatchProcessor({
      app,
      store,
      cache: this.cache,
      deadLetters,
      changes,
      limits: { writeConcurrency: config.writeConcurrency, maxConflictRetries: config.maxConflictRetries },
      log: (level, msg, fields) => log.log(level, msg, fields),
      ...(repartition !== undefined ? { repartition: repartition.sink, repartitionFloors: await repartitionFloors(storage.documentClient, config.tableName, app) } : {}),
      followsBuilds: true,
    });
    this.liveProcessor = processor;
    const closer = new WindowCloser({
      views: app.views,
      triggers: app.triggers,
      store,
      changes,
      deadLetters,
      partitionCount: (topic) => this.partitionCounts.get(topic),
      closed: (id) => this.cache.delete(id),
      finalsFrom: async (view) => {
        if (this.buildGate?.isBuilding(view.name) === true) return undefined;
        let from = this.finalsFrom.get(view.name);
        if (from === undefined) {
          from = await readFinalsFrom(storage.documentClient, config.tableName, view);
          this.finalsFrom.set(view.name, from);
        }
        return from;
      },
    });

    const source = createKafkajsConsumer(this.kafka, {
      groupId: config.groupId,
      sessionTimeoutMs: config.sessionTimeoutMs,
      heartbeatIntervalMs: config.heartbeatIntervalMs,
      maxBytesPerPartition: config.maxBytesPerPartition,
      partitionsConsumedConcurrently: config.partitionsConsumedConcurrently,
    });
    this.source = source;
    this.commits = new CommitPipeline({
      checkpoint: (topic, partition, nextOffset) => processor.checkpoint(topic, partition, nextOffset),
      commit: (topic, partition, nextOffset) => source.commit(topic, partition, nextOffset),
      generation: () => this.generation,
      failed: () => this.fatal !== undefined || this.abandoned,
      fail: (error) => this.fail(error),
      wait: (ms) => this.waitUnlessAbandoned(ms),
      retryPolicy: this.retryPolicy,
      degraded: (operation, failing) => {
        if (failing === undefined) this.degraded.delete(operation);
        else this.degraded.set(operation, failing);
      },
      committed: () => {
        this.counters.commits += 1;
      },
      timed: (stage, ms) => this.batchTimings.record(stage, ms),
      log,
    });
    let markJoined!: () => void;
    const joined = new Promise<void>((resolve) => (markJoined = resolve));
    await source.start([...app.sourceTopics, ...app.internalTopics], {
      batch: (batch) => this.trackBatch(this.applyBatch(processor, batch)),
      joined: (assignment, memberId) => {
        log.info('joined consumer group', { groupId: config.groupId, memberId, assignment });
        this.generation = this.ownership.joined(assignment);
        // Another task may have moved a partition's stream time on since this one last had it.
        processor.forgetStreamTimes();
        // A partition is quiet (idle close) from when this task got it, not from an earlier stint.
        const joinedAt = Date.now();
        for (const [topic, partitions] of Object.entries(assignment)) {
          for (const partition of partitions) this.lastReadMs.set(`${topic}/${partition}`, joinedAt);
        }
        this.onAssignment(assignment);
        markJoined();
      },
      heartbeat: () => this.ownership.heartbeatSucceeded(),
      skipped: (topic, partition, lastOffset, highWatermark) => this.onFilteredBatch(topic, partition, lastOffset, highWatermark),
      crashed: (error, restarting) => {
        if (restarting) log.warn('consumer crashed; kafkajs restarts it', { error });
        else this.fail(new EngineError('KAFKA_FAILED', `Kafka consumer crashed: ${errorInfo(error).message}`, { cause: error }));
      },
    });
    await Promise.race([joined, this.stopRequested]);
    if (this.fatal !== undefined) throw this.fatal;
    if (this.stopping) {
      // A stop that came while the consumer was starting found nothing to stop yet.
      if (this.stopping !== undefined && !this.sourceStopped) await source.stop().catch(() => {});
      return;
    }
    this.stateValue = 'running';
    this.metricsTimer = setInterval(() => {
      // Emits what the previous probe found, so a slow broker never delays the metrics.
      this.emitMetrics();
      void this.probeLag();
    }, config.metricsIntervalMs);
    this.metricsTimer.unref();
    if (app.views.some((v) => v.window !== undefined)) {
      this.windowTimer = setInterval(() => {
        this.windowTick ??= this.closeWindows(processor, closer).finally(() => (this.windowTick = undefined));
      }, config.windowCloseIntervalMs);
      this.windowTimer.unref();
    }
    log.info('engine running', {
      groupId: config.groupId,
      topics: app.sourceTopics,
      views: app.views.map((v) => v.name),
      triggers: app.triggers.map((t) => t.name),
      tableName: config.tableName,
    });
  }

  /** The brokers, for messages: what `KAFKA_BROKERS` (or `options.kafka`) said. */
  private brokersSetting(): string {
    const kafka = this.kafkaOption;
    if (kafka === undefined || kafka instanceof Kafka) return 'the brokers of the Kafka client passed as options.kafka';
    return Array.isArray(kafka.brokers) ? `KAFKA_BROKERS=${JSON.stringify(kafka.brokers.join(','))}` : 'KAFKA_BROKERS (brokers given as a function)';
  }

  /** Connects the admin client within `kafkaConnectTimeoutMs`; throws KAFKA_UNREACHABLE. */
  private async connectAdmin(admin: Admin): Promise<void> {
    const { config } = this;
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<'timeout'>((resolve) => {
      timer = setTimeout(() => resolve('timeout'), config.kafkaConnectTimeoutMs);
    });
    const connected = admin.connect().then(
      () => undefined,
      (error: unknown) => error ?? new Error('connect failed'),
    );
    const outcome = await Promise.race([connected, timedOut]);
    clearTimeout(timer);
    if (outcome === undefined) return;
    // Ends kafkajs' connect retries.
    await admin.disconnect().catch(() => {});
    const reason = outcome === 'timeout' ? `no connection within ${config.kafkaConnectTimeoutMs} ms` : errorInfo(outcome).message;
    throw new EngineError(
      'KAFKA_UNREACHABLE',
      `cannot reach the Kafka brokers (${this.brokersSetting()}): ${reason}; set KAFKA_BROKERS to reachable host:port pairs (and KAFKA_AUTH / KAFKA_SSL to what they expect)`,
      { retriable: true, ...(outcome === 'timeout' ? {} : { cause: outcome }) },
    );
  }

  /**
   * Builds every view whose code's version is not the live one (a view new to the table, or a
   * version bump), one after the other. Those a build can hand over to live folding (build.ts,
   * `buildsInBackground`) run beside it, after the task joins its group; the others run before
   * it joins. False when a stop came first (the builds resume at the next start).
   */
  private async runBuilds(documentClient: DynamoDBDocumentClient, store: DynamoItemStore, deadLetters: DeadLetterSink): Promise<boolean> {
    const { app, config, log } = this;
    const pending = this.definitions.filter((d) => d.live === undefined || d.live < d.version);
    if (pending.length === 0) return true;
    const viewOf = (check: DefinitionCheck) => app.views.find((v) => v.name === check.view)!;
    const deps = (view: App['views'][number], admin: Admin, inBackground: boolean): BuildDeps => ({
      app,
      view,
      groupId: config.groupId,
      kafka: this.kafka,
      admin,
      store,
      documentClient,
      tableName: config.tableName,
      deadLetters,
      limits: {
        writeConcurrency: config.writeConcurrency,
        maxConflictRetries: config.maxConflictRetries,
        sessionTimeoutMs: config.sessionTimeoutMs,
        heartbeatIntervalMs: config.heartbeatIntervalMs,
        maxBytesPerPartition: config.maxBytesPerPartition,
      },
      progressIntervalMs: Math.min(config.metricsIntervalMs, 5_000),
      stopRequested: this.stopRequested,
      progress: (progress) => {
        this.builds.set(view.name, progress);
        log.info('view build progress', { ...progress });
        log.raw(emfViewLine(app.name, view.name, { [METRIC.buildRecordsRemaining]: progress.total - progress.done }));
      },
      background: inBackground,
      ...(this.testHooks.pauseAt !== undefined ? { pausePoint: this.testPause(this.testHooks.pauseAt, view) } : {}),
    });
    const build = async (check: DefinitionCheck, admin: Admin, inBackground: boolean): Promise<boolean> => {
      const view = viewOf(check);
      log.info('view build starting', { view: view.name, version: view.version, live: check.live ?? null, background: inBackground });
      // A repartitioned view never builds in the background (build.ts `buildsInBackground`).
      const built = view.repartition === true ? await buildRepartitionedView(deps(view, admin, false), check.live) : await buildView(deps(view, admin, inBackground), check.live);
      if (!built) return false;
      this.buildGate?.swapped(view.name);
      this.builds.delete(view.name);
      log.info('view build swapped', { view: view.name, version: view.version });
      return true;
    };
    const admin = this.kafka.admin();
    await this.connectAdmin(admin);
    const background: DefinitionCheck[] = [];
    try {
      // Before the join: the builds that cannot run beside live folding, and those with nothing to fold.
      for (const check of pending) {
        const view = viewOf(check);
        if (buildsInBackground(app, view) && (await buildNeeded(deps(view, admin, true), check.live))) background.push(check);
        else if (!(await build(check, admin, false))) return false;
      }
    } finally {
      await admin.disconnect().catch(() => {});
    }
    if (background.length === 0) return true;
    for (const check of background) {
      await prepareBackgroundBuild(documentClient, config.tableName, viewOf(check));
      // Shown as under way from now on (`/health`, stats), before its first progress report.
      this.builds.set(check.view, { view: check.view, version: check.version, done: 0, total: 0, rate: 0, etaSeconds: undefined });
    }
    this.buildGate = new BuildGate(
      {
        documentClient,
        tableName: config.tableName,
        store,
        stopping: () => this.stopping !== undefined || this.fatal !== undefined,
        // Made after the builds start, before the first live batch.
        nextUndecided: (topic, partition) => this.liveProcessor!.nextUndecided(topic, partition),
      },
      background.map(viewOf),
    );
    const buildAdmin = this.kafka.admin();
    await this.connectAdmin(buildAdmin);
    this.backgroundBuilds = (async () => {
      try {
        for (const check of background) {
          if (!(await build(check, buildAdmin, true))) return;
          // The start-up removal ran before this swap: the replaced version goes now (retire.ts).
          const removal = { documentClient, tableName: config.tableName, log, stopRequested: this.stopRequested, graceMs: config.replacedVersionGraceMs };
          this.removals = Promise.all([this.removals, removeReplacedVersions(removal, check.view)]);
        }
      } finally {
        await buildAdmin.disconnect().catch(() => {});
      }
    })().catch((error: unknown) => this.fail(error));
    return true;
  }

  /**
   * The test-only pause of a build at `pauseAt` (`TRIBUTARY_TEST_PAUSE_AT`): logs `test_pause` and
   * waits until the task is asked to stop; true once it was.
   */
  private testPause(pauseAt: TestPausePoint, view: App['views'][number]): (point: TestPausePoint) => Promise<boolean> {
    return async (point) => {
      if (point !== pauseAt) return false;
      this.log.warn('test_pause', { point, view: view.name, version: view.version });
      await this.stopRequested;
      return true;
    };
  }

  /** Checks the brokers answer and the source topics exist; creates the dead-letter topic when it is missing. */
  private async prepareTopics(): Promise<void> {
    const { app, log } = this;
    const admin = this.kafka.admin();
    this.admin = admin;
    await this.connectAdmin(admin);
    try {
      const existing = new Set(await admin.listTopics());
      const missing = app.sourceTopics.filter((t) => !existing.has(t));
      if (missing.length > 0) {
        throw new EngineError(
          'TOPIC_NOT_FOUND',
          `source topic(s) ${missing.map((t) => `"${t}"`).join(', ')} do not exist on the brokers (${this.brokersSetting()}); create them (the partition count bounds the engine's parallelism), point KAFKA_BROKERS at the cluster that has them, or fix the views' source in the app module (TRIBUTARY_APP_MODULE)`,
          { context: { topics: missing } },
        );
      }
      await ensureRepartitionTopics(admin, app, log);
      if (!existing.has(app.deadLetterTopic)) {
        try {
          await admin.createTopics({ topics: [{ topic: app.deadLetterTopic, numPartitions: 1 }], waitForLeaders: true });
          log.info('created dead-letter topic', { topic: app.deadLetterTopic });
        } catch (error) {
          // Another task may have created it at the same time.
          if (!(await admin.listTopics()).includes(app.deadLetterTopic)) {
            throw new EngineError(
              'KAFKA_FAILED',
              `could not create the dead-letter topic "${app.deadLetterTopic}": ${errorInfo(error).message}; create it yourself or grant CreateTopics`,
              { cause: error },
            );
          }
        }
      }
    } finally {
      await admin.disconnect().catch(() => {});
      this.admin = undefined;
    }
  }

  private buildChangeSink(deadLetters: DeadLetterSink, store: DynamoItemStore, lambda: LambdaClient): ChangeSink {
    const { app, config, log } = this;
    if (app.triggers.length === 0) {
      return { deliver: async (_t, changes) => changes.map((): ChangeOutcome => 'delivered') };
    }
    // One bridge to the dispatcher: the batch loop has judged when() already, so the sink runs
    // it no second time, and its dead letters keep their code (TRIGGER_WHEN_FAILED or
    // TRIGGER_DELIVERY_FAILED) and say when a coalesced change stood for several.
    const sink = createTriggerChangeSink({
      lambda,
      functionNames: config.functionNames,
      deadLetters,
      log: (level, msg, fields) => log.log(level, msg, { component: 'triggers', ...fields }),
      superseded: async (trigger, changes) => {
        const keys = changes.map((change) => {
          const view = app.views.find((v) => v.name === change.view);
          const key = viewItemKey(viewSegment(change.view, view?.version ?? 1), change.key, change.window);
          return { id: itemId(key), key };
        });
        const items = await store.readItems(keys);
        // A final result is never superseded: its window takes no write after it.
        return changes.map((change, i) => change.final !== true && changeSuperseded(items.get(keys[i]!.id), trigger.name, change.version));
      },
      onInvocation: (record) => {
        this.counters.triggerInvocations += 1;
        if (record.outcome !== 'ok') this.counters.triggerErrors += 1;
      },
    });
    this.dispatcher = sink.dispatcher;
    return sink;
  }

  private async applyBatch(processor: BatchProcessor, batch: SourceBatch): Promise<void> {
    const { resolveOffset, heartbeat, isRunning, isStale } = batch;
    const { config, log } = this;
    if (batch.records.length === 0 || this.stopping !== undefined || this.fatal !== undefined) return;
    const { topic, partition } = batch;
    const generation = this.generation;
    const partitionKey = `${topic}/${partition}`;
    // Its first batch since the join: the cached items may predate another owner's deliveries.
    const firstSinceJoin = this.batchGenerations.get(partitionKey) !== generation;
    this.batchGenerations.set(partitionKey, generation);
    const right = (): DeliveryVerdict => {
      const verdict = this.ownership.verdict(topic, partition, generation);
      return verdict.right === 'owned' && firstSinceJoin
        ? { right: 'doubtful', reason: 'first batch of the partition since this task joined the group' }
        : verdict;
    };
    const records = batch.records;
    const handedAt = performance.now();
    this.batchTimings.record('fetch', Date.now() - records[records.length - 1]!.timestampMs);
    this.counters.recordsConsumed += records.length;
    this.lastReadMs.set(partitionKey, Date.now());
    // Long batches (a slow trigger, throttling) must not cost the partition: keep heartbeating.
    const beat = this.keepHeartbeating(heartbeat);
    let outcome: { value: BatchResult } | undefined;
    try {
      outcome = await retrying(`batch ${topic}/${partition}`, async () => {
        const skipViews = await this.buildGate?.skip(topic, partition, records);
        return processor.apply(topic, partition, records, { right, ...(skipViews !== undefined ? { skipViews } : {}) });
      }, {
        policy: this.retryPolicy,
        log,
        message: 'batch failed; retrying',
        fields: { topic, partition },
        degraded: (operation, failing) => {
          if (failing === undefined) this.degraded.delete(operation);
          else this.degraded.set(operation, failing);
        },
        fail: (error) => this.fail(error),
        wait: (ms) => Promise.race([this.waitUnlessAbandoned(ms), this.stopRequested]),
        // After a backoff, the batch may no longer be this task's to finish.
        proceed: (attempt) => attempt === 1 || (isRunning() && !isStale() && this.stopping === undefined && this.fatal === undefined),
        handled: async (error) => {
          if (error.code === 'PARTITION_LOST') {
            // Not a failure: uncommitted, the batch is re-read by whoever owns the partition (this
            // task too, once it rejoins). The wait keeps a re-fetch from spinning until kafkajs
            // notices the rebalance.
            log.info('partition may be lost; its changes in hand were not delivered, the batch is left to the owner', { topic, partition, error });
            await this.waitUnlessAbandoned(config.heartbeatIntervalMs);
            return true;
          }
          if (this.stopping !== undefined) {
            log.warn('abandoning batch during shutdown; it is re-read after restart', { topic, partition, error });
            return true;
          }
          return false;
        },
      });
    } finally {
      clearInterval(beat);
    }
    if (outcome === undefined) return;
    const result = outcome.value;
    this.batchTimings.record('durable', performance.now() - handedAt);
    this.batchTimings.record('decodeFold', result.timings.decodeFoldMs);
    this.batchTimings.record('read', result.timings.readMs);
    this.batchTimings.record('write', result.timings.writeMs);
    this.batchTimings.record('deliver', result.timings.deliverMs);
    // The fetch may end in records the consumer never sees: transaction markers and aborted
    // records (read-committed). They hold nothing to apply, so the batch covers them too;
    // otherwise the checkpoint and the commit would stop short of the end of the log, lag would
    // never read 0, and a read-your-writes wait for the last offset would never return.
    const fetchedThrough = BigInt(batch.lastOffset) + 1n;
    const nextOffset = fetchedThrough > BigInt(result.nextOffset) ? fetchedThrough.toString() : result.nextOffset;
    resolveOffset((BigInt(nextOffset) - 1n).toString());
    // Everything the commit depends on is durable now (view writes, dead letters, trigger
    // deliveries). The checkpoint write and the offset commit run behind the next fetch instead
    // of before it, which keeps their two serial round trips off the produce->view path.
    const { previous, tail } = this.commits!.schedule(topic, partition, nextOffset, generation);
    // Bounds the pipeline; during shutdown, also waits for this batch's own checkpoint and commit.
    // The previous checkpoint may be riding out a storage outage: keep the partition meanwhile.
    const queued = performance.now();
    await this.whileHeartbeating(heartbeat, this.stopping !== undefined ? tail : previous);
    this.batchTimings.record('queue', performance.now() - queued);
    this.counters.batches += 1;
    this.counters.eventsApplied += result.applied;
    this.counters.eventsSkipped += result.skipped;
    this.counters.eventsFiltered += result.filtered;
    this.counters.writes += result.writes;
    this.counters.conflicts += result.conflicts;
    this.counters.reads += result.reads;
    this.counters.unreadFirstWrites += result.firstWrites.unread;
    this.counters.unreadFirstWritesExisted += result.firstWrites.existed;
    this.counters.changesDelivered += result.changesDelivered;
    for (const [view, count] of Object.entries(result.late)) this.lateEvents[view] = (this.lateEvents[view] ?? 0) + count;
    const lag = Math.max(0, Number(batch.highWatermark) - Number(nextOffset));
    this.processedUpTo.set(`${topic}/${partition}`, BigInt(nextOffset));
    if (this.isAssigned(topic, partition)) this.lag[`${topic}/${partition}`] = lag;
    log.debug('batch durable; checkpoint and commit follow', {
      topic,
      partition,
      records: result.records,
      nextOffset,
      applied: result.applied,
      skipped: result.skipped,
      writes: result.writes,
      conflicts: result.conflicts,
      deadLetters: result.deadLetters,
      lag,
      ...result.timings,
    });
  }

  /**
   * Heartbeats every half interval until the returned timer is cleared; a failed heartbeat tells
   * the ownership tracker (an expelled task must stop delivering), whichever wait it came from.
   */
  private keepHeartbeating(heartbeat: () => Promise<void>): NodeJS.Timeout {
    return setInterval(() => {
      heartbeat().catch((error) => {
        this.ownership.heartbeatFailed(error);
        this.log.debug('heartbeat failed', { error });
      });
    }, Math.max(100, Math.floor(this.config.heartbeatIntervalMs / 2)));
  }

  /**
   * Resolves after `ms`, or at once when the shutdown grace period runs out. The timer never
   * holds the process open.
   */
  private waitUnlessAbandoned(ms: number): Promise<void> {
    if (this.abandoned) return Promise.resolve();
    return new Promise<void>((resolve) => {
      const wake = (): void => {
        clearTimeout(timer);
        this.wakers.delete(wake);
        resolve();
      };
      const timer = setTimeout(wake, ms);
      timer.unref();
      this.wakers.add(wake);
    });
  }

  private async whileHeartbeating(heartbeat: () => Promise<void>, work: Promise<void> | undefined): Promise<void> {
    if (work === undefined) return;
    const beat = this.keepHeartbeating(heartbeat);
    try {
      await work;
    } finally {
      clearInterval(beat);
    }
  }

  /**
   * kafkajs hands no batch to `eachBatch` when a fetch held only transaction markers or aborted
   * records; it reports it as a batch of size 0. The offsets past them are checkpointed and
   * committed all the same, or a partition whose log ends in a marker shows lag forever.
   */
  private onFilteredBatch(topic: string, partition: number, lastOffset: string, highWatermark: string): void {
    if (this.stopping !== undefined || this.fatal !== undefined) return;
    const nextOffset = (BigInt(lastOffset) + 1n).toString();
    this.commits?.schedule(topic, partition, nextOffset, this.generation);
    this.processedUpTo.set(`${topic}/${partition}`, BigInt(nextOffset));
    if (this.isAssigned(topic, partition)) this.lag[`${topic}/${partition}`] = Math.max(0, Number(highWatermark) - Number(nextOffset));
  }

  private isAssigned(topic: string, partition: number): boolean {
    return this.assignment[topic]?.includes(partition) ?? false;
  }

  /** A new assignment: lag is reported for its partitions only, measured at once. */
  private onAssignment(assignment: Readonly<Record<string, readonly number[]>>): void {
    this.assignment = assignment;
    for (const key of Object.keys(this.lag)) {
      const slash = key.lastIndexOf('/');
      if (!this.isAssigned(key.slice(0, slash), Number(key.slice(slash + 1)))) delete this.lag[key];
    }
    void this.probeLag();
  }

  /**
   * Measures the lag of the assigned partitions from the brokers: high watermarks, and the
   * group's committed offsets. Without it, lag read 0 until a task's first batch ended, which
   * after a restart behind a large backlog took minutes. One probe at a time; never rejects.
   */
  private probeLag(): Promise<void> {
    this.lagProbe ??= this.measureLag()
      .catch((error) => this.log.debug('lag probe failed; lag keeps its last value', { error }))
      .finally(() => (this.lagProbe = undefined));
    return this.lagProbe;
  }

  private async measureLag(): Promise<void> {
    const assignment = this.assignment;
    const topics = Object.keys(assignment).filter((t) => (assignment[t]?.length ?? 0) > 0);
    if (topics.length === 0 || this.stopping !== undefined) return;
    if (this.lagAdmin === undefined) {
      const admin = this.kafka.admin();
      this.lagAdmin = admin;
      await admin.connect().catch((error: unknown) => {
        if (this.lagAdmin === admin) this.lagAdmin = undefined;
        throw error;
      });
    }
    const admin = this.lagAdmin;
    const [watermarks, committed] = await Promise.all([
      Promise.all(topics.map(async (topic) => ({ topic, offsets: await admin.fetchTopicOffsets(topic) }))),
      admin.fetchOffsets({ groupId: this.config.groupId, topics }),
    ]);
    for (const { topic, offsets } of watermarks) this.partitionCounts.set(topic, offsets.length);
    if (assignment !== this.assignment || this.stopping !== undefined) return;
    const committedByKey = new Map<string, string>();
    for (const { topic, partitions } of committed) {
      for (const { partition, offset } of partitions) committedByKey.set(`${topic}/${partition}`, offset);
    }
    for (const { topic, offsets } of watermarks) {
      for (const watermark of offsets) {
        if (!this.isAssigned(topic, watermark.partition)) continue;
        const key = `${topic}/${watermark.partition}`;
        this.lag[key] = partitionLag({
          watermarks: { partition: watermark.partition, high: watermark.high, low: watermark.low },
          committed: committedByKey.get(key),
          processed: this.processedUpTo.get(key),
        });
      }
    }
  }

  /**
   * One round of the windows' clock, for each partition this task owns: a quiet one's stream
   * time advances (views with `idleCloseMs`), checkpointed before anything closes by it; then the
   * final results due in its closing shards are delivered. A failure is logged and the next
   * round tries again: the closing attributes stay until a delivery succeeds.
   */
  private async closeWindows(processor: BatchProcessor, closer: WindowCloser): Promise<void> {
    const { app, log } = this;
    const generation = this.generation;
    for (const [topic, partitions] of Object.entries(this.assignment)) {
      if (!app.views.some((v) => v.window !== undefined && v.source === topic)) continue;
      for (const partition of partitions) {
        if (this.stopping !== undefined || this.fatal !== undefined || generation !== this.generation) return;
        const key = `${topic}/${partition}`;
        try {
          const now = Date.now();
          if (!this.lastReadMs.has(key)) this.lastReadMs.set(key, now);
          // A view being built keeps the stream time its build gives it (build.ts).
          const idling = app.views.filter((v) => this.buildGate?.isBuilding(v.name) !== true);
          for (const { view, timeMs } of idleAdvances(idling, topic, this.lastReadMs.get(key)!, now)) {
            const offset = await processor.advanceStreamTime(topic, partition, view, timeMs);
            if (offset !== undefined) await this.commits!.schedule(topic, partition, offset, generation).tail;
          }
          if (!closer.closes(topic)) continue;
          const right = (): DeliveryVerdict => this.ownership.verdict(topic, partition, generation);
          if (right().right === 'lost') continue;
          const { delivered } = await closer.closeDue(topic, partition, { right });
          this.finalChanges += delivered;
        } catch (error) {
          log.warn('closing windows failed; the next round retries', { topic, partition, error });
        }
      }
    }
  }

  /** Waits (within the shutdown grace period) for the checkpoints and commits in flight. */
  private async settleTails(): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    const graceOver = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, this.config.shutdownGraceMs);
    });
    // Batches in flight first: kafkajs drops a commit silently once disconnect() has begun, so
    // their commits must be made before it. Then the tails they and earlier batches left.
    const settled = Promise.allSettled([...this.batchesInFlight]).then(() => this.commits?.settled());
    await Promise.race([settled, graceOver]);
    clearTimeout(timer);
  }

  private trackBatch(batch: Promise<void>): Promise<void> {
    this.batchesInFlight.add(batch);
    void batch.then(
      () => this.batchesInFlight.delete(batch),
      () => this.batchesInFlight.delete(batch),
    );
    return batch;
  }

  private emitMetrics(): void {
    const c = this.counters;
    const last = this.lastEmitted;
    const consumerLag = Object.values(this.lag).reduce((a, b) => a + b, 0);
    this.log.raw(
      emfLine(this.app.name, {
        ConsumerLag: consumerLag,
        DeadLetters: c.deadLetters - last.deadLetters,
        EventsApplied: c.eventsApplied - last.eventsApplied,
        TriggerInvocations: c.triggerInvocations - last.triggerInvocations,
        TriggerErrors: c.triggerErrors - last.triggerErrors,
      }),
    );
    this.log.info('progress', {
      lag: { ...this.lag },
      recordsConsumed: c.recordsConsumed,
      eventsApplied: c.eventsApplied,
      eventsSkipped: c.eventsSkipped,
      writes: c.writes,
      conflicts: c.conflicts,
      deadLetters: c.deadLetters,
      cacheEntries: this.cache.size,
    });
    for (const [view, count] of Object.entries(this.lateEvents)) {
      const delta = count - (this.lastLateEmitted[view] ?? 0);
      if (delta > 0) this.log.raw(emfViewLine(this.app.name, view, { LateEvents: delta }));
    }
    this.lastLateEmitted = { ...this.lateEvents };
    this.lastEmitted = {
      deadLetters: c.deadLetters,
      eventsApplied: c.eventsApplied,
      triggerInvocations: c.triggerInvocations,
      triggerErrors: c.triggerErrors,
    };
  }

  private fail(error: unknown): void {
    if (this.fatal !== undefined) return;
    const engineError =
      error instanceof EngineError
        ? error
        : new EngineError('KAFKA_FAILED', `engine failed: ${errorInfo(error).message}`, { cause: error });
    this.fatal = engineError;
    this.log.error('engine failed; stopping', { error: engineError, code: engineError.code, context: engineError.context });
    void this.stop();
  }

  stop(): Promise<void> {
    this.stopping ??= this.shutdown();
    return this.stopping;
  }

  private async shutdown(): Promise<void> {
    const { log, config } = this;
    this.stateValue = 'stopping';
    this.requestStop();
    log.info('stopping', { graceMs: config.shutdownGraceMs });
    const source = this.source;
    if (source !== undefined) {
      // Batches that start from now on return at once; a batch in flight waits for its own
      // checkpoint and commit, and this waits for the batches in flight and the earlier tails.
      await this.settleTails();
      // disconnect() waits for any batch still in flight, then leaves the group.
      this.sourceStopped = true;
      const left = source.stop().then(
        () => true,
        (error) => {
          log.warn('consumer disconnect failed', { error });
          return true;
        },
      );
      let timer: NodeJS.Timeout | undefined;
      const graceOver = new Promise<false>((resolve) => {
        timer = setTimeout(() => resolve(false), config.shutdownGraceMs);
      });
      const clean = await Promise.race([left, graceOver]);
      clearTimeout(timer);
      if (!clean) {
        this.abandoned = true;
        for (const wake of [...this.wakers]) wake();
        log.warn('shutdown grace period over; abandoning in-flight batches (they are re-read after restart)');
      }
    }
    if (this.windowTimer !== undefined) clearInterval(this.windowTimer);
    await this.windowTick;
    await this.backgroundBuilds;
    await this.removals;
    await this.dispatcher?.close().catch((error) => log.warn('trigger dispatcher close failed', { error }));
    await this.producer?.disconnect().catch(() => {});
    await this.repartitionProducer?.disconnect().catch(() => {});
    await this.admin?.disconnect().catch(() => {});
    await this.lagAdmin?.disconnect().catch(() => {});
    if (this.metricsTimer !== undefined) {
      clearInterval(this.metricsTimer);
      this.emitMetrics();
    }
    await this.health?.close();
    if (this.fatal !== undefined) {
      this.stateValue = 'failed';
      log.error('engine stopped after a failure', { code: this.fatal.code });
      this.rejectDone(this.fatal);
    } else {
      this.stateValue = 'stopped';
      log.info('engine stopped', { stats: this.stats() });
      this.resolveDone();
    }
    this.releaseSignals?.();
  }
}
