/**
 * Consumer lag of the partitions a task owns, from the brokers' offsets rather than from the
 * batches it finished: a task that restarts behind a large backlog reports it at once, while
 * its first batch is still being worked on (autoscaling and the lag alarm key on it).
 */

/** Broker offsets of one partition (kafkajs `admin.fetchTopicOffsets`). */
export interface PartitionWatermarks {
  readonly partition: number;
  /** Next offset the log will hold. */
  readonly high: string;
  /** First offset still in the log; where a group without a committed offset starts (`fromBeginning`). */
  readonly low: string;
}

/** What the lag of one partition is measured from. */
export interface LagInputs {
  readonly watermarks: PartitionWatermarks;
  /** The group's committed offset; undefined (or negative, kafkajs' "-1") when none. */
  readonly committed?: string | undefined;
  /** Next offset this task has made durable, when ahead of the commit. */
  readonly processed?: bigint | undefined;
}

/**
 * Records behind the high watermark: `high - max(committed, processed)`, where a partition with
 * no committed offset is read from its low watermark. Never negative.
 *
 * @example
 * partitionLag({ watermarks: { partition: 0, high: '27500', low: '0' } }); // 27500
 * partitionLag({ watermarks: { partition: 0, high: '27500', low: '0' }, committed: '500', processed: 900n }); // 26600
 */
export function partitionLag(inputs: LagInputs): number {
  const high = BigInt(inputs.watermarks.high);
  let position = BigInt(inputs.watermarks.low);
  if (inputs.committed !== undefined && BigInt(inputs.committed) >= 0n && BigInt(inputs.committed) > position) {
    position = BigInt(inputs.committed);
  }
  if (inputs.processed !== undefined && inputs.processed > position) position = inputs.processed;
  return high > position ? Number(high - position) : 0;
}
