/**
 * Repartitioned views (`defineView({ repartition: true })`): one defined order for a view keyed
 * unlike its source's Kafka key, as Kafka Streams' repartition topics give. Pure; the processor
 * drives it and the runtime (or the test driver) produces what it forwards.
 *
 * Two legs (docs/architecture.md, "Repartitioned views"):
 * - **Forward.** A batch of the source topic is routed through the view (decode, filter, key, so
 *   poison is dead-lettered here with its own coordinates) and each kept record is produced to
 *   `<app>.<view>.repartition`, keyed by the view key, with its original topic, partition,
 *   offset, timestamp and key in headers. The batch is durable (and its offsets committed) only
 *   once the produce is acknowledged.
 * - **Fold.** The view folds the repartition topic. Each record is turned back into the original
 *   one (what `decode`, `key` and `reduce` see), and the item's fence is kept on the *original*
 *   coordinates (`origin:<topic>/<partition>`): a record re-produced after a crash or by a task
 *   that lost the partition carries an original offset at or below the stored one and is
 *   skipped. Why that suffices: every task produces a source partition's records in offset order
 *   and without gaps from where it started, so in a key's repartition partition the first copy of
 *   each original record comes after the first copies of all its predecessors, and any later
 *   copy comes after its first. The item also records the repartition offset it applied last
 *   under the repartition partition's own key, which is what the trigger bookkeeping proves
 *   delivered against that partition's checkpoint (ledger.ts); origin keys prove nothing there.
 *
 * The view's result is thus the fold, per key, of the repartition topic's records in their
 * order, each original record once (its first copy).
 */
import { Partitioners, type Admin, type Producer } from 'kafkajs';
import type { App, SourceRecord, View } from '../../sdk/index.ts';
import { repartitionTopic } from '../../sdk/index.ts';
import { offsetsKey } from '../../sdk/contract/index.ts';
import type { PoisonDeadLetter } from './dead-letter.ts';
import { EngineError, errorInfo } from './errors.ts';
import type { Logger } from './log.ts';
import { compareOffsets, type ItemEvents, type RoutedEvent } from './fold.ts';

/** Headers a forwarded record carries: where it came from. */
export const ORIGIN_HEADERS = {
  topic: 'tributary-origin-topic',
  partition: 'tributary-origin-partition',
  offset: 'tributary-origin-offset',
  timestamp: 'tributary-origin-timestamp',
  /** The original Kafka key; absent when it had none. */
  key: 'tributary-origin-key',
} as const;

const ORIGIN_PREFIX = 'origin:';

/** The fence key of an original partition in a repartitioned view's offsets vector. */
export function originKey(topic: string, partition: number): string {
  return `${ORIGIN_PREFIX}${offsetsKey(topic, partition)}`;
}

/** Whether an offsets-vector key names an original partition (no checkpoint of its own proves it). */
export function isOriginKey(partitionKey: string): boolean {
  return partitionKey.startsWith(ORIGIN_PREFIX);
}

/** One record to produce to a repartition topic. */
export interface RepartitionMessage {
  /** The view key in its stored string form: all of a key's records land in one partition. */
  readonly key: string;
  readonly value: Buffer | null;
  readonly headers: Readonly<Record<string, Buffer>>;
  /** Epoch ms, decimal (the original record's timestamp). */
  readonly timestamp: string;
}

/** What the processor hands over to be produced; resolves once the brokers acknowledged all of it. */
export interface RepartitionSink {
  /** Produces each topic's messages in the given order (an idempotent producer, acks from all replicas). */
  forward(batches: readonly { topic: string; messages: readonly RepartitionMessage[] }[]): Promise<void>;
}

/** Where the repartition record of a folded event sits (what the trigger bookkeeping proves against). */
export interface RepartitionCoordinates {
  /** `offsetsKey` of the repartition partition. */
  readonly partitionKey: string;
  readonly offset: string;
}

/** Which views of an app fold directly, which forward, and which repartition topic feeds which view. */
export class RepartitionPlan {
  /** Views folded from their own source (every view without `repartition`). */
  readonly directViews: readonly View<any, any>[];
  private readonly forwarding = new Map<string, View<any, any>[]>();
  private readonly internal = new Map<string, View<any, any>>();

  constructor(app: App) {
    this.directViews = app.views.filter((v) => v.repartition !== true);
    for (const view of app.views) {
      if (view.repartition !== true) continue;
      const list = this.forwarding.get(view.source) ?? [];
      list.push(view);
      this.forwarding.set(view.source, list);
      this.internal.set(repartitionTopic(app.name, view.name, view.version), view);
    }
  }

  /** Whether the app has repartitioned views at all. */
  get active(): boolean {
    return this.internal.size > 0;
  }

  /** The repartitioned views whose source is `topic` (their records are forwarded). */
  forwardedFrom(topic: string): readonly View<any, any>[] {
    return this.forwarding.get(topic) ?? [];
  }

  /** The view `topic` is the repartition topic of, if any. */
  viewOf(topic: string): View<any, any> | undefined {
    return this.internal.get(topic);
  }
}

/**
 * The messages that forward the items a source batch routed to repartitioned views, per
 * repartition topic, in the source partition's offset order.
 */
export function forwardMessages(app: App, items: Iterable<ItemEvents>): { topic: string; messages: RepartitionMessage[] }[] {
  const byTopic = new Map<string, { offset: string; message: RepartitionMessage }[]>();
  for (const item of items) {
    const topic = repartitionTopic(app.name, item.view.name, item.view.version);
    const list = byTopic.get(topic) ?? [];
    byTopic.set(topic, list);
    for (const { record } of item.events) list.push({ offset: record.offset, message: messageOf(item.key, record) });
  }
  return [...byTopic].map(([topic, list]) => ({
    topic,
    messages: list.sort((a, b) => compareOffsets(a.offset, b.offset)).map((entry) => entry.message),
  }));
}

function messageOf(key: string, record: SourceRecord): RepartitionMessage {
  const headers: Record<string, Buffer> = {};
  for (const [name, value] of Object.entries(record.headers)) {
    if (value !== undefined && !name.startsWith('tributary-origin-')) headers[name] = value;
  }
  headers[ORIGIN_HEADERS.topic] = Buffer.from(record.topic);
  headers[ORIGIN_HEADERS.partition] = Buffer.from(String(record.partition));
  headers[ORIGIN_HEADERS.offset] = Buffer.from(record.offset);
  headers[ORIGIN_HEADERS.timestamp] = Buffer.from(String(record.timestampMs));
  if (record.key !== null) headers[ORIGIN_HEADERS.key] = record.key;
  return { key, value: record.value, headers, timestamp: String(record.timestampMs) };
}

/**
 * The original records of a batch of a repartition topic (what the view's callbacks see), each
 * with where its repartition copy sits; a record the engine did not write is poison.
 */
export function originalRecords(
  view: View<any, any>,
  records: readonly SourceRecord[],
): { records: SourceRecord[]; via: Map<SourceRecord, RepartitionCoordinates>; deadLetters: PoisonDeadLetter[] } {
  const out: SourceRecord[] = [];
  const via = new Map<SourceRecord, RepartitionCoordinates>();
  const deadLetters: PoisonDeadLetter[] = [];
  for (const record of records) {
    const text = (name: string): string | undefined => record.headers[name]?.toString('utf8');
    const topic = text(ORIGIN_HEADERS.topic);
    const partition = text(ORIGIN_HEADERS.partition);
    const offset = text(ORIGIN_HEADERS.offset);
    const timestamp = text(ORIGIN_HEADERS.timestamp);
    if (topic === undefined || partition === undefined || !/^\d+$/.test(partition) || offset === undefined || !/^\d+$/.test(offset)) {
      deadLetters.push({
        kind: 'poison',
        code: 'DECODE_FAILED',
        reason: `view "${view.name}": record at ${record.topic}/${record.partition}@${record.offset} of its repartition topic has no ${ORIGIN_HEADERS.topic}/-partition/-offset headers, so the engine did not write it; only the engine produces to a repartition topic`,
        view: view.name,
        record,
      });
      continue;
    }
    const headers: Record<string, Buffer | undefined> = {};
    for (const [name, value] of Object.entries(record.headers)) if (!name.startsWith('tributary-origin-')) headers[name] = value;
    const original: SourceRecord = {
      topic,
      partition: Number(partition),
      offset,
      key: record.headers[ORIGIN_HEADERS.key] ?? null,
      value: record.value,
      timestampMs: timestamp !== undefined && /^\d+$/.test(timestamp) ? Number(timestamp) : record.timestampMs,
      headers,
    };
    out.push(original);
    via.set(original, { partitionKey: offsetsKey(record.topic, record.partition), offset: record.offset });
  }
  return { records: out, via, deadLetters };
}

/** Marks each routed event of a repartition batch with where its repartition copy sits. */
export function attachVia(items: Iterable<ItemEvents>, via: ReadonlyMap<SourceRecord, RepartitionCoordinates>): void {
  for (const item of items) {
    item.events.forEach((entry, i) => {
      const at = via.get(entry.record);
      if (at !== undefined) item.events[i] = { ...entry, via: at } satisfies RoutedEvent;
    });
  }
}

/**
 * Views of a direct batch whose key differs from the record's Kafka key (as UTF-8), for a
 * one-time warning: such a view's result depends on how the source's partitions interleave
 * unless its reducer is insensitive to order (README, "Re-keyed views").
 */
export function rekeyedViews(items: Iterable<ItemEvents>): Set<string> {
  const out = new Set<string>();
  for (const item of items) {
    if (item.view.table === true || item.view.over !== undefined || out.has(item.view.name)) continue;
    const first = item.events[0];
    if (first === undefined) continue;
    if (first.record.key === null || first.record.key.toString('utf8') !== item.key) out.add(item.view.name);
  }
  return out;
}

/** The Kafka clients the runtime's repartition leg needs (kafkajs shapes, so it can be injected). */
export interface RepartitionKafka {
  producer(config: { idempotent: true; maxInFlightRequests: 1; allowAutoTopicCreation: false; createPartitioner: typeof Partitioners.DefaultPartitioner }): Producer;
}

/**
 * Creates each repartition topic that does not exist yet, with as many partitions as its view's
 * source (Kafka Streams' rule: the same parallelism), and the default replication. A topic that
 * exists is used as it is, so an operator may pre-create it (e.g. without topic-create rights).
 */
export async function ensureRepartitionTopics(admin: Admin, app: App, log: Logger): Promise<void> {
  if (app.internalTopics.length === 0) return;
  const existing = new Set(await admin.listTopics());
  const missing = app.views.filter((v) => v.repartition === true && !existing.has(repartitionTopic(app.name, v.name, v.version)));
  if (missing.length === 0) return;
  const { topics } = await admin.fetchTopicMetadata({ topics: [...new Set(missing.map((v) => v.source))] });
  const partitionsOf = new Map(topics.map((t) => [t.name, t.partitions.length]));
  const wanted = missing.map((v) => ({ topic: repartitionTopic(app.name, v.name, v.version), numPartitions: partitionsOf.get(v.source) ?? 1 }));
  try {
    await admin.createTopics({ topics: wanted, waitForLeaders: true });
  } catch (error) {
    // Another task may have created them at the same time.
    const now = new Set(await admin.listTopics());
    const still = wanted.filter((w) => !now.has(w.topic));
    if (still.length > 0) {
      throw new EngineError(
        'KAFKA_FAILED',
        `could not create the repartition topic(s) ${still.map((w) => `"${w.topic}" (${w.numPartitions} partitions)`).join(', ')}: ${errorInfo(error).message}; grant the engine CreateTopics, or create them yourself with as many partitions as the view's source`,
        { cause: error },
      );
    }
  }
  for (const w of wanted) log.info('created repartition topic', { topic: w.topic, partitions: w.numPartitions });
}

/**
 * The runtime's repartition producer: idempotent (no duplicates or reordering from its own
 * retries), one request in flight, acknowledged by all in-sync replicas. Duplicates across
 * producers (a crash, a rebalance) are what the original-coordinate fence is for.
 */
export function createRepartitionProducer(kafka: RepartitionKafka): { sink: RepartitionSink; producer: Producer } {
  const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1, allowAutoTopicCreation: false, createPartitioner: Partitioners.DefaultPartitioner });
  const sink: RepartitionSink = {
    async forward(batches) {
      await producer.sendBatch({
        acks: -1,
        topicMessages: batches.map(({ topic, messages }) => ({
          topic,
          messages: messages.map((m) => ({ key: m.key, value: m.value, headers: { ...m.headers }, timestamp: m.timestamp })),
        })),
      });
    },
  };
  return { sink, producer };
}
