/**
 * The engine's source of records behind one interface: a consumer group member that hands over
 * batches of one partition, says when it joined and what it was assigned, and commits offsets.
 * {@link createKafkajsConsumer} puts kafkajs behind it; another client (one with the
 * cooperative rebalance protocol, say) can be put behind it without touching the batch loop.
 */
import type { Consumer, EachBatchPayload, Kafka, KafkaMessage } from 'kafkajs';
import type { SourceRecord } from '../../sdk/index.ts';

/** One fetched batch of one partition, as the batch loop needs it. */
export interface SourceBatch {
  readonly topic: string;
  readonly partition: number;
  /** The records to apply, in offset order (never empty). */
  readonly records: readonly SourceRecord[];
  /** The partition's high watermark when it was fetched. */
  readonly highWatermark: string;
  /**
   * The last offset the fetch covered: past the last record when the fetch ended in records the
   * consumer never hands over (transaction markers, aborted records).
   */
  readonly lastOffset: string;
  /** Keeps the membership alive while a batch takes long. */
  heartbeat(): Promise<void>;
  /** False once the consumer is stopping. */
  isRunning(): boolean;
  /** True once a rebalance made this batch's partition someone else's to fetch. */
  isStale(): boolean;
  /** The consumer's own position: the next fetch of the partition starts after `offset`. */
  resolveOffset(offset: string): void;
}

/** What the batch loop is told. */
export interface SourceConsumerHandlers {
  /** A batch to apply; the next batch of the partition comes after this resolves. */
  batch(batch: SourceBatch): Promise<void>;
  /** Joined the group (again): the partitions now assigned, per topic. */
  joined(assignment: Readonly<Record<string, readonly number[]>>, memberId: string): void;
  /** A heartbeat was accepted: the membership is alive. */
  heartbeat(): void;
  /** A fetch held only records the consumer never hands over; the offsets past them still count. */
  skipped(topic: string, partition: number, lastOffset: string, highWatermark: string): void;
  /** The consumer crashed; `restarting` says whether the client restarts it by itself. */
  crashed(error: unknown, restarting: boolean): void;
}

/** A consumer group member feeding the engine. */
export interface SourceConsumer {
  /** Connects, subscribes to `topics` from the beginning (where no offset is committed) and starts handing over batches. */
  start(topics: readonly string[], handlers: SourceConsumerHandlers): Promise<void>;
  /** Commits the group's offset of a partition (the next offset to consume). */
  commit(topic: string, partition: number, nextOffset: string): Promise<void>;
  /** Waits for the batch in flight, leaves the group and disconnects. */
  stop(): Promise<void>;
}

/** Options of {@link createKafkajsConsumer}. */
export interface KafkajsConsumerOptions {
  readonly groupId: string;
  readonly sessionTimeoutMs: number;
  readonly heartbeatIntervalMs: number;
  readonly maxBytesPerPartition: number;
  readonly partitionsConsumedConcurrently: number;
}

/** The broker answers a fetch as soon as data arrives; the wait only bounds idle polls and shutdown. */
const FETCH_MAX_WAIT_MS = 1_000;

/**
 * A kafkajs consumer behind {@link SourceConsumer}: manual commits only (offsets move when the
 * engine says its effects are durable, invariant 2), no auto-created topics.
 *
 * @example
 * const source = createKafkajsConsumer(kafka, { groupId: 'gym', sessionTimeoutMs: 30_000, ... });
 * await source.start(app.sourceTopics, { batch: applyBatch, joined, heartbeat, skipped, crashed });
 */
export function createKafkajsConsumer(kafka: Kafka, options: KafkajsConsumerOptions): SourceConsumer {
  const consumer: Consumer = kafka.consumer({
    groupId: options.groupId,
    sessionTimeout: options.sessionTimeoutMs,
    heartbeatInterval: options.heartbeatIntervalMs,
    maxBytesPerPartition: options.maxBytesPerPartition,
    maxWaitTimeInMs: FETCH_MAX_WAIT_MS,
    allowAutoTopicCreation: false,
  });
  return {
    async start(topics, handlers) {
      consumer.on(consumer.events.GROUP_JOIN, (event) => handlers.joined(event.payload.memberAssignment, event.payload.memberId));
      consumer.on(consumer.events.HEARTBEAT, () => handlers.heartbeat());
      // kafkajs hands no batch to eachBatch when a fetch held only transaction markers or
      // aborted records; it reports it as a batch of size 0.
      consumer.on(consumer.events.START_BATCH_PROCESS, (event) => {
        const { batchSize, topic, partition, lastOffset, highWatermark } = event.payload;
        if (batchSize === 0) handlers.skipped(topic, partition, lastOffset, highWatermark);
      });
      consumer.on(consumer.events.CRASH, (event) => handlers.crashed(event.payload.error, event.payload.restart));
      await consumer.connect();
      await consumer.subscribe({ topics: [...topics], fromBeginning: true });
      await consumer.run({
        autoCommit: false,
        eachBatchAutoResolve: false,
        partitionsConsumedConcurrently: options.partitionsConsumedConcurrently,
        eachBatch: async (payload) => {
          if (payload.batch.messages.length === 0) return;
          await handlers.batch(toSourceBatch(payload));
        },
      });
    },
    async commit(topic, partition, nextOffset) {
      await consumer.commitOffsets([{ topic, partition, offset: nextOffset }]);
    },
    stop: () => consumer.disconnect(),
  };
}

function toSourceBatch(payload: EachBatchPayload): SourceBatch {
  const { batch } = payload;
  return {
    topic: batch.topic,
    partition: batch.partition,
    records: batch.messages.map((m) => toSourceRecord(batch.topic, batch.partition, m)),
    highWatermark: batch.highWatermark,
    lastOffset: batch.lastOffset(),
    heartbeat: () => payload.heartbeat(),
    isRunning: () => payload.isRunning(),
    isStale: () => payload.isStale(),
    resolveOffset: (offset) => payload.resolveOffset(offset),
  };
}

function toBuffer(value: Buffer | string | (Buffer | string)[] | undefined): Buffer | undefined {
  if (value === undefined) return undefined;
  const first = Array.isArray(value) ? value[0] : value;
  if (first === undefined) return undefined;
  return typeof first === 'string' ? Buffer.from(first) : first;
}

/** A kafkajs message as the engine's {@link SourceRecord}. */
export function toSourceRecord(topic: string, partition: number, message: KafkaMessage): SourceRecord {
  const headers: Record<string, Buffer | undefined> = {};
  for (const [name, value] of Object.entries(message.headers ?? {})) headers[name] = toBuffer(value);
  return {
    topic,
    partition,
    offset: message.offset,
    key: message.key ?? null,
    value: message.value ?? null,
    timestampMs: Number(message.timestamp),
    headers,
  };
}
