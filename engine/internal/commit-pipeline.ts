/**
 * The commit pipeline (invariant 2, docs/architecture.md): after a batch is durable (view
 * writes, dead letters, trigger deliveries), its checkpoint is written and only then its
 * consumer offset committed, in batch order per partition. The production runtime commits to
 * Kafka; the in-memory test driver commits to a map, through this same code.
 */
import { delay } from './concurrency.ts';
import type { EngineError } from './errors.ts';
import type { Logger } from './log.ts';
import { retrying, type RetryPolicy } from './retry-policy.ts';

/** What the pipeline needs from its task. */
export interface CommitPipelineDeps {
  /** Makes "everything below `nextOffset` of the partition is durable" durable itself: the checkpoint item. */
  checkpoint(topic: string, partition: number, nextOffset: string): Promise<void>;
  /** Commits the consumer offset. A failure means the partition moved on: logged, not retried. */
  commit(topic: string, partition: number, nextOffset: string): Promise<void>;
  /** The group generation now; a batch fetched in an older one leaves its offsets to the partition's owner. */
  generation(): number;
  /** Whether the task has failed, or given up on its stop's grace period: queued checkpoints then stop. */
  failed(): boolean;
  /**
   * Waits before a checkpoint is retried.
   * @default a plain timer
   */
  wait?(ms: number): Promise<void>;
  /** Stops the task: a checkpoint could not be written within the retry policy. */
  fail(error: EngineError): void;
  readonly retryPolicy: RetryPolicy;
  /** Marks an operation as retrying (the task reports degraded meanwhile), or done retrying. */
  degraded(operation: string, failing: { sinceMs: number; error: EngineError } | undefined): void;
  /** Called once per offset commit that succeeded. */
  committed?(): void;
  /** Told how long each checkpoint write (retries included) and each offset commit took. */
  timed?(stage: 'checkpoint' | 'commit', ms: number): void;
  readonly log: Logger;
}

/** The queued work of one partition. */
export interface ScheduledCheckpoint {
  /** The partition's checkpoint and commit queued before this one (undefined when none was). */
  readonly previous: Promise<void> | undefined;
  /** This one; never rejects. */
  readonly tail: Promise<void>;
}

/** Checkpoints, then commits, per partition in batch order. */
export class CommitPipeline {
  private readonly tails = new Map<string, Promise<void>>();
  /** Per partition, the highest offset queued and in which generation. */
  private readonly queued = new Map<string, { offset: bigint; generation: number }>();

  constructor(private readonly deps: CommitPipelineDeps) {}

  /**
   * Queues the checkpoint and commit of `nextOffset` behind the partition's previous one. An
   * offset below one already queued in the same generation is not queued: a checkpoint never
   * moves back. The same offset again is (a re-applied batch settles its bookkeeping with it).
   *
   * @example
   * const { previous, tail } = pipeline.schedule('bookings', 2, '1842', generation);
   * await previous; // bounds the pipeline to one outstanding tail per partition
   */
  schedule(topic: string, partition: number, nextOffset: string, generation: number): ScheduledCheckpoint {
    const key = `${topic}/${partition}`;
    const previous = this.tails.get(key);
    const queued = this.queued.get(key);
    if (queued !== undefined && queued.generation === generation && BigInt(nextOffset) < queued.offset) {
      return { previous, tail: previous ?? Promise.resolve() };
    }
    this.queued.set(key, { offset: BigInt(nextOffset), generation });
    const tail = (previous ?? Promise.resolve()).then(() => this.checkpointAndCommit(topic, partition, nextOffset, generation));
    this.tails.set(key, tail);
    void tail.finally(() => {
      if (this.tails.get(key) === tail) this.tails.delete(key);
    });
    return { previous, tail };
  }

  /** Resolves once every checkpoint and commit queued so far is done (or given up). */
  settled(): Promise<void> {
    return Promise.allSettled([...this.tails.values()]).then(() => undefined);
  }

  /**
   * Writes the checkpoint, then commits. A checkpoint that cannot be written is retried under the
   * task's retry policy, then fails the task: nothing past it is committed, and the partition's
   * next owner re-reads from the last commit (the offset fence skips what was applied). The
   * commit is skipped when the group rebalanced since the batch was fetched: the partition may
   * belong to another task, and a late commit must not move its offset back. Never rejects.
   */
  private async checkpointAndCommit(topic: string, partition: number, nextOffset: string, generation: number): Promise<void> {
    const { deps } = this;
    const started = performance.now();
    const checkpointed = await retrying(`checkpoint ${topic}/${partition}`, () => deps.checkpoint(topic, partition, nextOffset), {
      policy: deps.retryPolicy,
      log: deps.log,
      message: 'checkpoint failed; retrying',
      fields: { topic, partition },
      degraded: deps.degraded,
      fail: deps.fail,
      // A stop does not cut this short: shutdown waits (within its grace) for checkpoints in flight.
      wait: deps.wait ?? delay,
      proceed: () => !deps.failed(),
    });
    if (checkpointed === undefined) return;
    const committing = performance.now();
    deps.timed?.('checkpoint', committing - started);
    if (generation !== deps.generation()) {
      deps.log.debug('rebalanced since the batch; its offsets are left to the partition owner', { topic, partition, offset: nextOffset });
      return;
    }
    try {
      await deps.commit(topic, partition, nextOffset);
      deps.timed?.('commit', performance.now() - committing);
      deps.committed?.();
    } catch (error) {
      // The partition moved to another task (rebalance): it re-reads from the last commit and
      // the offset fence skips what this batch applied.
      deps.log.warn('offset commit failed; the next owner of the partition re-reads from the last commit', {
        topic,
        partition,
        offset: nextOffset,
        error,
      });
    }
  }
}
