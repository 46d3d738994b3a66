/**
 * Whether this engine task may still hand a partition's trigger changes to functions. Views are
 * fenced by item version and commits by generation, but an invocation is not: a task frozen
 * past its session timeout (a long GC pause, a throttled container, SIGSTOP) wakes up with
 * changes in hand after the partition's new owner delivered newer versions of the same keys.
 * This module owns the rule that keeps it from invoking them. Pure: the runtime feeds it kafkajs
 * events and the clock.
 */

/**
 * What a task may do with a change it holds: `owned` deliver it; `doubtful` deliver it only
 * after re-reading that the item's stored trigger bookkeeping has not moved past it; `lost`
 * deliver nothing (another task may own the partition now).
 */
export type DeliveryRight = 'owned' | 'doubtful' | 'lost';

/** A {@link DeliveryRight} with what caused it, for logs and errors. */
export interface DeliveryVerdict {
  readonly right: DeliveryRight;
  readonly reason?: string;
}

/**
 * kafkajs heartbeat errors after which the member must rejoin before it owns anything: the
 * group is rebalancing, or the coordinator no longer knows this member or generation.
 */
export const OWNERSHIP_LOSING_ERRORS: ReadonlySet<string> = new Set([
  'REBALANCE_IN_PROGRESS',
  'UNKNOWN_MEMBER_ID',
  'ILLEGAL_GENERATION',
  'FENCED_INSTANCE_ID',
]);

/** Options of {@link PartitionOwnership}. */
export interface PartitionOwnershipOptions {
  /** The consumer's session timeout: past it without a heartbeat, the coordinator expels the member. */
  readonly sessionTimeoutMs: number;
  /**
   * The clock, in milliseconds.
   * @default Date.now
   */
  readonly now?: () => number;
}

/**
 * Tracks the group membership of one engine task: the generation and assignment of its last
 * join, its last successful heartbeat, and a heartbeat error that proved it was expelled.
 *
 * - `lost` when the generation moved on since the batch was fetched, the partition is not in
 *   the assignment, a heartbeat failed with one of {@link OWNERSHIP_LOSING_ERRORS} (until the
 *   next join or successful heartbeat), or the last confirmation (join or successful
 *   heartbeat) is a session timeout old: the coordinator has expelled the member by then,
 *   whether or not kafkajs noticed yet.
 * - `doubtful` when the last confirmation is more than half a session timeout old: healthy
 *   heartbeats come every heartbeat interval (a third of the session or less), so this is a
 *   task that was starved or frozen and may be past its expulsion by the time it invokes.
 *
 * @example
 * const ownership = new PartitionOwnership({ sessionTimeoutMs: 30_000 });
 * consumer.on(consumer.events.GROUP_JOIN, (e) => ownership.joined(e.payload.memberAssignment));
 * consumer.on(consumer.events.HEARTBEAT, () => ownership.heartbeatSucceeded());
 * if (ownership.verdict('bookings', 2, generation).right === 'lost') return; // deliver nothing
 */
export class PartitionOwnership {
  private generationValue = 0;
  private assignment = new Set<string>();
  private confirmedAtMs: number | undefined;
  private lostReason: string | undefined;
  private readonly now: () => number;

  constructor(private readonly options: PartitionOwnershipOptions) {
    this.now = options.now ?? Date.now;
  }

  /** Generation of the last join (0 before the first one). */
  get generation(): number {
    return this.generationValue;
  }

  /** The task (re)joined the group with `assignment` (topic -> partitions); returns the new generation. */
  joined(assignment: Readonly<Record<string, readonly number[]>>): number {
    this.generationValue += 1;
    this.assignment = new Set(Object.entries(assignment).flatMap(([topic, partitions]) => partitions.map((p) => `${topic}/${p}`)));
    this.confirmedAtMs = this.now();
    this.lostReason = undefined;
    return this.generationValue;
  }

  /** The coordinator accepted a heartbeat of the current generation: the member was never expelled. */
  heartbeatSucceeded(): void {
    this.confirmedAtMs = this.now();
    this.lostReason = undefined;
  }

  /** A heartbeat failed; an error that proves expulsion (or a rebalance) makes every partition lost until the next join. */
  heartbeatFailed(error: unknown): void {
    const type = (error as { type?: unknown } | null)?.type;
    if (typeof type === 'string' && OWNERSHIP_LOSING_ERRORS.has(type)) this.lostReason = `a heartbeat failed with ${type}`;
  }

  /** May a change of `topic/partition`, from a batch fetched in `generation`, be delivered now? */
  verdict(topic: string, partition: number, generation: number): DeliveryVerdict {
    if (generation !== this.generationValue) {
      return { right: 'lost', reason: `the group rebalanced (generation ${generation} -> ${this.generationValue}) since the batch was fetched` };
    }
    if (!this.assignment.has(`${topic}/${partition}`)) return { right: 'lost', reason: `${topic}/${partition} is not assigned to this task` };
    if (this.lostReason !== undefined) return { right: 'lost', reason: this.lostReason };
    const ageMs = this.confirmedAtMs === undefined ? Number.POSITIVE_INFINITY : this.now() - this.confirmedAtMs;
    if (ageMs >= this.options.sessionTimeoutMs) {
      return {
        right: 'lost',
        reason: `no successful heartbeat for ${ageMs} ms, at least the session timeout of ${this.options.sessionTimeoutMs} ms (the task was paused or starved)`,
      };
    }
    // Half the session: far above a healthy heartbeat's age, still before the coordinator acts.
    if (ageMs > this.options.sessionTimeoutMs / 2) return { right: 'doubtful', reason: `no successful heartbeat for ${ageMs} ms` };
    return { right: 'owned' };
  }
}
